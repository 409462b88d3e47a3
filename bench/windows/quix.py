"""bench/windows/quix.py - the per-user windowed count and mean computed with
Quix Streams (PyPI quixstreams: hopping windows, RocksDB state, changelog
topics), the Python library a team would reach for, to run side by side with
kscore's window features over the same preloaded topic (bench/windows/run).

    quix.py run BROKERS IN_TOPIC OUT_TOPIC GROUP STATE_DIR SIZE_MS HOP_MS
        consumes IN_TOPIC (kscore gen's fraud events, keyed by user_id) from
        the beginning until SIGTERM and produces one JSON record per event to
        OUT_TOPIC: {"id", "count", "mean"} of the user's amounts
    quix.py compare KSCORE.jsonl QUIX.jsonl
        joins kscore's output records (features tx_count_1h, avg_amount_1h)
        with Quix's by event id; prints a JSON summary; exit 1 on a mismatch

What is compared. The event time is the event's `ts` (both sides). A Quix
hopping window of SIZE_MS stepping by HOP_MS covers [s, s + SIZE_MS) for every
s that is a multiple of HOP_MS (aligned to the epoch), and with `.current()`
emits, for each event, every window the event falls in, aggregated over the
key's events processed so far. kscore's window feature with size SIZE_MS and
`resolution` HOP_MS covers, for an event at t, the key's events that arrived
no later whose bucket floor(t'/HOP_MS) lies in the SIZE_MS/HOP_MS buckets
ending with t's bucket: the time span [b*HOP - SIZE + HOP, b*HOP + HOP) with
b = floor(t/HOP), which is exactly the Quix window starting at
t - t % HOP + HOP - SIZE (the one of t's windows that closes first). So for
every event we keep that one window's count and mean from Quix's `.current()`
output, and kscore's values at the same event must be equal (the mean to
1e-9 relative: Quix sums floats in arrival order, kscore keeps exact sums).
No event in these runs is late for either (each user's events are in time
order), so lateness rules do not enter.
"""
import datetime
import json
import sys
import time


def run(brokers, in_topic, out_topic, group, state_dir, size_ms, hop_ms):
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Mean

    app = Application(broker_address=brokers, consumer_group=group,
                      auto_offset_reset="earliest", state_dir=state_dir,
                      loglevel="WARNING")

    def event_time(value, headers, timestamp, timestamp_type):
        ts = datetime.datetime.fromisoformat(value["ts"].replace("Z", "+00:00"))
        return int(ts.timestamp() * 1000)

    inp = app.topic(in_topic, value_deserializer="json", timestamp_extractor=event_time)
    out = app.topic(out_topic, value_serializer="json")
    # Quix processes one message at a time through the whole dataframe, so the
    # event's id and the start of the window kscore computes for it can be
    # remembered before the window step and read after it.
    cur = {}

    def remember(value, key, timestamp, headers):
        cur["id"] = value["id"]
        cur["start"] = timestamp - timestamp % hop_ms + hop_ms - size_ms

    sdf = app.dataframe(inp)
    sdf = sdf.update(remember, metadata=True)
    sdf = (sdf.hopping_window(duration_ms=size_ms, step_ms=hop_ms)
           .agg(count=Count(), mean=Mean("amount"))
           .current())
    sdf = sdf.filter(lambda w: w["start"] == cur["start"])
    sdf = sdf.apply(lambda w: {"id": cur["id"], "count": w["count"], "mean": w["mean"]})
    # a window result is stamped with the window's start; stamp it with the
    # wall clock instead, like kscore's records, so that the rate is measured
    # the same way on both (the output records' broker timestamps)
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: int(time.time() * 1000))
    sdf.to_topic(out)
    app.run()


def compare(kscore_path, quix_path):
    k = {}
    with open(kscore_path) as f:
        for line in f:
            r = json.loads(line)
            feats = r["features"]
            k[r["id"]] = (feats["tx_count_1h"], feats["avg_amount_1h"])
    q = {}
    with open(quix_path) as f:
        for line in f:
            r = json.loads(line)
            q[r["id"]] = (r["count"], r["mean"])
    both = sorted(set(k) & set(q))
    count_bad, mean_bad, max_rel = [], [], 0.0
    for i in both:
        (kc, km), (qc, qm) = k[i], q[i]
        if kc != qc:
            count_bad.append(i)
        rel = abs(km - qm) / max(abs(qm), 1e-300)
        max_rel = max(max_rel, rel)
        if rel > 1e-9:
            mean_bad.append(i)
    counts = [q[i][0] for i in both]
    res = {"kscore_records": len(k), "quix_records": len(q), "joined": len(both),
           "count_mismatches": len(count_bad), "mean_mismatches": len(mean_bad),
           "max_rel_mean_diff": float("%.2g" % max_rel),
           "mean_count": (sum(counts) / len(counts)) if counts else 0,
           "max_count": max(counts) if counts else 0,
           "examples": (count_bad + mean_bad)[:5]}
    print(json.dumps(res))
    ok = both and len(both) == len(k) == len(q) and not count_bad and not mean_bad
    return 0 if ok else 1


def main():
    if len(sys.argv) == 9 and sys.argv[1] == "run":
        a = sys.argv[2:]
        run(a[0], a[1], a[2], a[3], a[4], int(a[5]), int(a[6]))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        return compare(sys.argv[2], sys.argv[3])
    print(__doc__.split("What is compared")[0], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

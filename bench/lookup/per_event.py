"""bench/lookup/per_event.py - the hand-written consumer's lookup pattern in
Python, as the fraud design kscore follows writes it: per event, one blocking
redis-py GET of the user's profile, json.loads, read the fields.

Same events (the same user sequence as bench_lookup.c: a 64-bit LCG seeded
with 42), same Redis, same profiles (bench_lookup loads them), in the same
run (bench/lookup/run). Prints one JSON line in bench_lookup's format.

Usage: per_event.py PORT EVENTS USERS
"""
import json
import sys
import time

import redis


def main():
    port, events, users = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    r = redis.Redis(host="127.0.0.1", port=port, db=0)
    seq, s, mask = [], 42, (1 << 64) - 1
    for _ in range(events):
        s = (s * 6364136223846793005 + 1442695040888963407) & mask
        seq.append((s >> 33) % users)
    lat = [0.0] * events
    check = 0.0
    t0 = time.perf_counter()
    for i, u in enumerate(seq):
        a = time.perf_counter()
        raw = r.get("features:u%d" % u)
        prof = json.loads(raw) if raw is not None else {}
        check += float(prof.get("tx_count_1h", 0)) + float(prof.get("avg_amount_1h", 0))
        seg = prof.get("segment", "x")
        lat[i] = time.perf_counter() - a
    secs = time.perf_counter() - t0
    if check < 0 or seg is None:
        print("impossible")
    lat.sort()
    pct = lambda p: lat[int(p * (events - 1))] * 1e6
    print(json.dumps({"mode": "python_per_event", "events": events, "batch": 1,
                      "events_per_s": round(events / secs), "commands_per_event": 1.0,
                      "wait_p50_us": round(pct(0.5), 1), "wait_p99_us": round(pct(0.99), 1),
                      "ns_per_event": round(secs * 1e9 / events, 1),
                      "python": sys.version.split()[0], "redis_py": redis.__version__}),
          flush=True)


if __name__ == "__main__":
    main()

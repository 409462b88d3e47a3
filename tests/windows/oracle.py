#!/usr/bin/env python3
"""oracle.py - brute-force reference for kscore's window features, written from
the definition in docs/windows.md (issue 9), not from the C code.

    oracle.py gen N KEYS SEED events.tsv     deterministic events
    oracle.py config                         the pipeline YAML the features use
    oracle.py expect events.tsv expected.tsv the features of every event
    oracle.py jsonl events.tsv               the events as kscore's JSON lines
                                             (id = offset, ts = t_ms)
    oracle.py check events.jsonl ACTUAL FEATURE...
        kscore's window features of events.jsonl (JSON lines with id,
        user_id, merchant_id, ts as epoch ms or ISO-8601, amount) against
        this oracle, by id: ACTUAL is `kscore features` CSV or output records
        with "features" (JSON lines); each FEATURE names a column of FEATURES
        (the same definition in the pipeline; FEATURE:D when the pipeline
        gives it `default: D`). Counts, sums, distinct counts
        and times must be identical, avg and stddev within 1e-12 relative;
        events the oracle refuses must be absent. Exit 1 on a difference.

events.tsv: offset, user, merchant ('' = missing), t_ms, amount ('' = missing).
expected.tsv: offset, then one column per window feature: repr(float), '' for
missing, or the single word 'error' when the event is refused (a key missing).

Definitions implemented here, per event e at time t of key k, in file order:
  stream  = newest time of the earlier events of the partition (all keys)
  a key whose newest time is older than stream - key_ttl is forgotten first
  prev    = newest time of k's earlier (remembered) events, None if none
  sized feature F (size, res, n = size/res buckets):
    late    = prev is not None and t < prev - (size + grace)
    window  = k's earlier events counted for F (not late for F, `of` present),
              plus e if not late and present, whose bucket floor(t'/res) lies in
              [b - n + 1, b], b = floor(t/res), and is >= the horizon
              floor((prev - size - grace)/res) - n + 1 (what the key still holds)
    count = len, sum = fsum, avg = fsum/len, min, max, stddev (population,
    computed exactly with fractions), count_distinct = len(set)
  time_since_last = (t - prev)/1000, 0 if prev > t, missing if prev is None
  last  = `of` of k's most recent earlier event with `of` present
  ewma  = sum(x_i w_i)/sum(w_i), w_i = 2^((t_i - T)/half_life) over k's events
          with `of` present, e included, T = their newest time
"""
import math
import random
import sys
from fractions import Fraction

GRACE = 5 * 60_000
FEATURES = [
    # name, key, agg, of, size_ms, res_ms, half_life_ms
    ("tx_count_1h", "user_id", "count", None, 3_600_000, 60_000, None),
    ("avg_amount_1h", "user_id", "avg", "amount", 3_600_000, 60_000, None),
    ("sum_amount_10m", "user_id", "sum", "amount", 600_000, 1, None),
    ("min_amount_30m", "user_id", "min", "amount", 1_800_000, 60_000, None),
    ("max_amount_24h", "user_id", "max", "amount", 86_400_000, 3_600_000, None),
    ("std_amount_1h", "user_id", "stddev", "amount", 3_600_000, 60_000, None),
    ("unique_merchants_1h", "user_id", "count_distinct", "merchant_id", 3_600_000, 60_000, None),
    ("n_amounts_5m", "user_id", "count", "amount", 300_000, 5_000, None),
    ("last_amount", "user_id", "last", "amount", None, None, None),
    ("secs_since_last", "user_id", "time_since_last", None, None, None, None),
    ("ewma_amount", "user_id", "ewma", "amount", None, None, 600_000),
    ("merchant_tx_1h", "merchant_id", "count", None, 3_600_000, 60_000, None),
]
KEY_TTL = max(f[4] or 0 for f in FEATURES) + GRACE

def fmt_ms(ms):
    for unit, n in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % n == 0:
            return f"{ms // n}{unit}"
    return f"{ms}ms"

def config():
    lines = [
        "input:",
        "  topics: [events]",
        "  fields:",
        "    user_id:     {type: string, required: true}",
        "    merchant_id: {type: string}",
        "    amount:      {type: number}",
        "    ts:          {type: number, required: true}",
        "windows:",
        "  time: ts",
        "  time_unit: ms",
        f"  grace: {fmt_ms(GRACE)}",
        "features:",
    ]
    for name, key, agg, of, size, res, hl in FEATURES:
        spec = [f"key: {key}", f"agg: {agg}"]
        if of:
            spec.append(f"of: {of}")
        if size:
            spec.append(f"size: {fmt_ms(size)}")
            spec.append(f"resolution: {fmt_ms(res)}")
        if hl:
            spec.append(f"half_life: {fmt_ms(hl)}")
        lines.append(f"  - {{name: {name}, window: {{{', '.join(spec)}}}}}")
    return "\n".join(lines) + "\n"

def gen(n, n_keys, seed, path):
    rng = random.Random(seed)
    clock = 1_700_000_000_000
    step = max(1, (3 * 86_400_000) // n)          # three days of events
    with open(path, "w") as out:
        for off in range(n):
            clock += rng.randint(0, 2 * step)
            r = rng.random()
            if r < 0.90:
                jitter = rng.randint(0, 30_000)        # within the grace
            elif r < 0.96:
                jitter = rng.randint(0, 20 * 60_000)   # late for the 5m/10m windows
            elif r < 0.995:
                jitter = rng.randint(0, 3 * 3_600_000) # late for the hour windows
            else:
                jitter = rng.randint(0, 2 * 86_400_000)
            t = clock - jitter
            user = f"u{int(n_keys * rng.random() ** 1.5)}"
            merchant = "" if rng.random() < 0.02 else f"m{rng.randint(0, 300)}"
            r = rng.random()
            if r < 0.03:
                amount = ""
            elif r < 0.04:
                amount = repr(rng.choice([1e15 + 0.01, 1e-7, -250.5, 0.1, 3e8 + 0.3]))
            else:
                amount = repr(round(rng.random() * 500, 2))
            out.write(f"{off}\t{user}\t{merchant}\t{t}\t{amount}\n")

def stddev(xs):
    n = len(xs)
    s1 = sum(Fraction(x) for x in xs)
    s2 = sum(Fraction(x) * Fraction(x) for x in xs)
    var = (n * s2 - s1 * s1) / (n * n)
    return math.sqrt(var)

def expect(events_path, out_path):
    keys = {}        # (key field, value) -> state of the key's remembered events
    stream = None
    with open(events_path) as f, open(out_path, "w") as out:
        for line in f:
            off, user, merchant, t, amount = line.rstrip("\n").split("\t")
            t = int(t)
            ev = {"user_id": user, "merchant_id": merchant or None,
                  "amount": float(amount) if amount else None}
            if ev["merchant_id"] is None:       # a window key is missing
                out.write(f"{off}\terror\n")
                continue
            touched = {}
            for field in ("user_id", "merchant_id"):
                kk = (field, ev[field])
                st = keys.get(kk)
                if st and stream is not None and st["newest"] < stream - KEY_TTL:
                    st = None                    # idle: forgotten
                if st is None:
                    # per feature, the (time, value) of the events it counted
                    st = keys[kk] = {"newest": None, "events": {}}
                touched[field] = st
            cols = []
            for name, key, agg, of, size, res, hl in FEATURES:
                st = touched[key]
                prev = st["newest"]
                x = ev[of] if of else True
                mine = st["events"].setdefault(name, [])
                if agg == "time_since_last":
                    v = None if prev is None else (0.0 if prev > t else (t - prev) / 1000)
                elif agg == "last":
                    v = mine[-1][1] if mine else None
                    if x is not None:
                        mine.append((t, x))
                        del mine[:-1]            # only the most recent one matters
                elif agg == "ewma":
                    if x is not None:
                        mine.append((t, x))
                    if mine:
                        top = max(tt for tt, _ in mine)
                        # weights below 2^-1100 are exactly 0.0: forgetting them changes nothing
                        mine[:] = [(tt, xx) for tt, xx in mine if (tt - top) / hl > -1100]
                        ws = [2.0 ** ((tt - top) / hl) for tt, _ in mine]
                        v = math.fsum(w * xx for w, (_, xx) in zip(ws, mine)) / math.fsum(ws)
                    else:
                        v = None
                else:
                    late = prev is not None and t < prev - (size + GRACE)
                    n = size // res
                    b = t // res
                    lo = b - n + 1
                    if prev is not None:         # the key's horizon
                        lo = max(lo, (prev - size - GRACE) // res - n + 1)
                    if not late and x is not None:
                        mine.append((t, x))
                    vals = [xx for tt, xx in mine if lo <= tt // res <= b]
                    if agg == "count":
                        v = float(len(vals))
                    elif agg == "sum":
                        v = math.fsum(vals)
                    elif agg == "avg":
                        v = math.fsum(vals) / len(vals) if vals else None
                    elif agg == "min":
                        v = min(vals) if vals else None
                    elif agg == "max":
                        v = max(vals) if vals else None
                    elif agg == "stddev":
                        v = stddev(vals) if vals else None
                    elif agg == "count_distinct":
                        v = float(len(set(vals)))
                    newest = t if prev is None else max(prev, t)
                    horizon = (newest - size - GRACE) // res - n + 1
                    mine[:] = [(tt, xx) for tt, xx in mine if tt // res >= horizon]
                cols.append("" if v is None else repr(float(v)))
            for st in touched.values():
                st["newest"] = t if st["newest"] is None else max(st["newest"], t)
            stream = t if stream is None else max(stream, t)
            out.write(off + "\t" + "\t".join(cols) + "\n")

def to_jsonl(events_path):
    import json
    for line in open(events_path):
        off, user, merchant, t, amount = line.rstrip("\n").split("\t")
        ev = {"id": off, "user_id": user, "ts": int(t)}
        if merchant:
            ev["merchant_id"] = merchant
        if amount:
            ev["amount"] = float(amount)
        sys.stdout.write(json.dumps(ev) + "\n")

def check(events_path, actual_path, names):
    import csv, json, os, tempfile
    from datetime import datetime
    cols = [f[0] for f in FEATURES]
    dflt = {}
    for k, n in enumerate(names):           # NAME:DEFAULT, the feature's `default`
        if ":" in n:
            n, d = n.split(":", 1)
            names[k], dflt[n] = n, d
    for n in names:
        if n not in cols:
            sys.exit(f"oracle.py check: no feature {n!r} in FEATURES")
    with tempfile.TemporaryDirectory() as tmp:
        tsv, exp = os.path.join(tmp, "events.tsv"), os.path.join(tmp, "expected.tsv")
        with open(tsv, "w") as out:
            for line in open(events_path):
                ev = json.loads(line)
                t = ev["ts"]
                if isinstance(t, str):
                    t = round(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)
                a = ev.get("amount")
                out.write(f"{ev['id']}\t{ev['user_id']}\t{ev.get('merchant_id') or ''}\t{int(t)}\t"
                          f"{'' if a is None else repr(float(a))}\n")
        expect(tsv, exp)
        want = {}
        for line in open(exp):
            r = line.rstrip("\n").split("\t")
            want[r[0]] = None if r[1] == "error" else dict(zip(cols, r[1:]))
    have = {}
    with open(actual_path) as f:
        first = f.readline()
        f.seek(0)
        if first.startswith("{"):
            for line in f:
                rec = json.loads(line)
                have[str(rec["id"])] = {n: rec["features"][n] for n in names}
        else:
            for row in csv.DictReader(f):
                have[row["id"]] = {n: (None if row[n] == "" else float(row[n])) for n in names}
    bad = 0
    for i, w in want.items():
        h = have.get(i)
        if w is None or h is None:
            if (w is None) != (h is None):
                bad += 1
                if bad <= 5:
                    print(f"{i}: oracle {'refuses it' if w is None else 'has a row'}, kscore "
                          f"{'has none' if h is None else 'has one'}", file=sys.stderr)
            continue
        for n in names:
            ws, hv = w[n] or dflt.get(n, ""), h[n]
            wv = None if ws == "" else float(ws)
            agg = next(f[2] for f in FEATURES if f[0] == n)
            if wv is None or hv is None:
                ok = wv is None and hv is None
            elif agg in ("avg", "stddev", "ewma"):
                ok = abs(hv - wv) <= 1e-12 * abs(wv)
            else:
                ok = hv == wv
            if not ok:
                bad += 1
                if bad <= 5:
                    print(f"{i}: {n} oracle {wv!r}, kscore {hv!r}", file=sys.stderr)
    extra = len(set(have) - set(want))
    print(f"{len(want)} events, {sum(w is not None for w in want.values())} with features, "
          f"{len(names)} features checked: {bad} differences, {extra} unknown ids")
    sys.exit(1 if bad or extra else 0)

def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "gen" and len(sys.argv) == 6:
        gen(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif cmd == "config":
        sys.stdout.write(config())
    elif cmd == "expect" and len(sys.argv) == 4:
        expect(sys.argv[2], sys.argv[3])
    elif cmd == "jsonl" and len(sys.argv) == 3:
        to_jsonl(sys.argv[2])
    elif cmd == "check" and len(sys.argv) >= 5:
        check(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)

if __name__ == "__main__":
    main()

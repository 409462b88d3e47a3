#!/usr/bin/env python3
"""callgrind_stages.py - instructions per event for each stage of kscore's
scoring path, from `callgrind_annotate --inclusive=yes` output of an offline
`kscore predict` over N events (the same decode -> features -> model ->
encode code the Kafka worker runs). Exact and unaffected by other load on the
machine, unlike a sampling profile; it leaves out Kafka, which the perf
profile of a live run covers.

Usage: callgrind_annotate --inclusive=yes callgrind.out | callgrind_stages.py N
Prints JSON: {"events": N, "total": instr/event, "stages": [{stage, instr_per_event, share}]}
"""
import json
import re
import sys

# (stage, function) pairs; "encode: ..." rows are parts of "encode".
ROWS = [
    ("decode", "ks_decoder_decode"),
    ("features", "ks_features_compute"),
    ("model", "ks_model_predict"),
    ("encode", "encode_run"),
    ("encode: numbers (ks_buf_json_double*, ks_buf_fixed3)",
     ("ks_buf_json_double", "ks_buf_json_double17", "ks_buf_fixed3")),
    ("encode: timestamps (ks_buf_iso8601_ms)", "ks_buf_iso8601_ms"),
]


def cost(incl, fn):
    """Inclusive instructions of a function, or of several that never call
    each other."""
    return sum(incl.get(f, 0) for f in fn) if isinstance(fn, tuple) else incl.get(fn, 0)
TOTAL = "ks_pipeline_predict_stream"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    n = int(sys.argv[1])
    incl = {}
    pat = re.compile(r"^\s*([\d,]+)\s+\([\s\d.]+%\)\s+\S*?:(\w+)(\s|$)")
    for line in sys.stdin:
        m = pat.match(line)
        if m:
            fn, v = m.group(2), int(m.group(1).replace(",", ""))
            incl[fn] = max(incl.get(fn, 0), v)  # a function is listed once per file spelling
    total = incl.get(TOTAL)
    if not total:
        sys.exit("callgrind_stages.py: %s not found in the annotation" % TOTAL)
    stages = []
    for stage, fn in ROWS:
        v = cost(incl, fn)
        stages.append({"stage": stage, "instr_per_event": round(v / n),
                       "share": round(100.0 * v / total, 1)})
    rest = incl.get("encode_run", 0) - sum(cost(incl, fn) for _, fn in ROWS[4:])
    stages.append({"stage": "encode: the rest (strings, labels, keys, buffer)",
                   "instr_per_event": round(rest / n), "share": round(100.0 * rest / total, 1)})
    scored = sum(cost(incl, fn) for _, fn in ROWS[:4])
    stages.append({"stage": "reading and writing lines (offline only)",
                   "instr_per_event": round((total - scored) / n),
                   "share": round(100.0 * (total - scored) / total, 1)})
    json.dump({"events": n, "total": round(total / n), "stages": stages}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

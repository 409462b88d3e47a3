#!/usr/bin/env python3
"""perf_stages.py - turns `perf script -F comm,tid,ip,sym,dso` output of a
kscore run (recorded with --call-graph dwarf) into a per-stage CPU summary,
as JSON on stdout.

Each sample is charged to one stage: walking its call stack from the leaf
towards the thread's start, the first frame that names a stage function wins
(so strtod called by the encoder counts as "encode", a clock read inside a
delivery report as "delivery reports + offsets"). Samples of librdkafka's own
threads (rdk:*) are its network I/O and protocol work; their symbols are
usually unresolved (the packaged library is stripped), so they are one line.

Usage: perf script -i perf.data -F comm,tid,ip,sym,dso | perf_stages.py
"""
import collections
import json
import re
import sys

# (stage, pattern on the symbol) in the order stages are described; the first
# pattern matching the innermost frame decides.
STAGES = [
    ("decode", re.compile(r"^(ks_decoder_decode|ks_decode_)")),
    ("features", re.compile(r"^ks_features_compute")),
    ("model", re.compile(r"^ks_model_predict")),
    ("encode", re.compile(r"^ks_scorer_encode")),
    ("dead letters", re.compile(r"^produce_dead_letter")),
    ("produce (enqueue)", re.compile(r"^(rd_kafka_producev|produce|passthrough_batch|copy_headers)$")),
    ("delivery reports + offsets", re.compile(r"^(on_delivery|ks_offsets_|commit$|on_commit|rd_kafka_poll$|rd_kafka_commit)")),
    ("consume", re.compile(r"^(rd_kafka_consumer_poll|serve_consumer|add_to_batch|take_stash|batch_release|rd_kafka_message_destroy)")),
    ("metrics", re.compile(r"^ks_metric")),
    ("scorer (other)", re.compile(r"^ks_scorer_run")),
]


def classify(comm, frames):
    if comm.startswith("rdk:"):
        return "librdkafka threads (network, protocol)"
    for sym in frames:  # leaf first
        for stage, pat in STAGES:
            if pat.search(sym):
                return stage
    if any(s == "worker_main" for s in frames):
        return "worker loop (other)"
    return "other threads (main, metrics, log)"


def main():
    stages = collections.Counter()
    leaves = collections.Counter()
    total = 0
    comm, frames = None, []

    def flush():
        nonlocal total
        if comm is None:
            return
        total += 1
        stages[classify(comm, frames)] += 1
        if frames:
            leaves[frames[0]] += 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            comm, frames = None, []
            continue
        if not line[0].isspace():
            flush()
            comm, frames = line.split()[0], []
            continue
        parts = line.strip().split(None, 1)
        sym = parts[1] if len(parts) > 1 else "[unknown]"
        sym = re.sub(r"\s*\(.*\)$", "", sym)  # drop " (dso)" and " (inlined)"
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        frames.append(sym)
    flush()
    if total == 0:
        sys.exit("perf_stages.py: no samples")
    out = {
        "samples": total,
        "stages": [{"stage": s, "share": round(100.0 * n / total, 1)}
                   for s, n in stages.most_common()],
        "top_leaf_symbols": [{"symbol": s, "share": round(100.0 * n / total, 1)}
                             for s, n in leaves.most_common(12)],
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

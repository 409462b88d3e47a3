#!/usr/bin/env python3
"""make_eval_fixtures.py - the online-evaluation oracle (tests/unit/test_evaluation.c).

100,000 predictions of two model versions (scores rounded to 3 decimals, so
ties happen) and labels that arrive out of order: a delay of about a day
each (exponential), so labels interleave with later predictions; 6% arrive
after max_wait (7 days: late); 2% come twice (duplicates); 1,000 labels name
ids never predicted (unknown); 8% of predictions never get a label.

The oracle joins them as the contract says - a label joins the prediction
of its id if it is the first label for it and arrives within max_wait - and
computes scikit-learn's roc_auc_score, log_loss and brier_score_loss per
version on the joined pairs: expected.json.

Output (not committed, ~5 MB; the test regenerates it when missing) in the
folder given (default tests/quality/fixtures/eval/):
  predictions.csv  id,time_ms,score,version       (by time)
  labels.csv       arrival_ms,id,label            (by arrival)
  expected.json
"""
import json
import os
import sys

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

DAY = 86400 * 1000
MAX_WAIT = 7 * DAY


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fixtures", "eval")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(2026)
    n = 100_000
    t0 = 1_800_000_000_000
    times = t0 + np.sort(rng.integers(0, 3 * DAY, n))
    version = np.where(rng.random(n) < 0.5, "v1", "v2")
    truth = rng.random(n)
    score = np.round(np.clip(truth + rng.normal(0, 0.25, n), 0.001, 0.999), 3)
    label = (rng.random(n) < truth).astype(int)
    ids = [f"tx-{i}" for i in range(n)]
    with open(os.path.join(out, "predictions.csv"), "w") as f:
        for i in range(n):
            f.write(f"{ids[i]},{int(times[i])},{float(score[i])!r},{version[i]}\n")

    labels = []  # (arrival, id, label)
    for i in range(n):
        u = rng.random()
        if u < 0.08:
            continue  # never labelled
        delay = rng.exponential(DAY) if u > 0.14 else MAX_WAIT + rng.integers(1, 3 * DAY)
        arrival = int(times[i] + max(1, int(delay)))
        labels.append((arrival, ids[i], int(label[i])))
        if rng.random() < 0.02:
            labels.append((arrival + int(rng.integers(1, DAY)), ids[i], int(label[i])))
    for k in range(1000):
        labels.append((int(t0 + rng.integers(0, 4 * DAY)), f"ghost-{k}", int(rng.random() < 0.5)))
    labels.sort(key=lambda x: (x[0], x[1]))
    with open(os.path.join(out, "labels.csv"), "w") as f:
        for a, i, y in labels:
            f.write(f"{a},{i},{y}\n")

    index = {ids[i]: i for i in range(n)}
    joined, seen = {}, set()
    counts = {"joined": 0, "unknown": 0, "duplicate": 0, "late": 0}
    for a, i, y in labels:
        j = index.get(i)
        if j is None or times[j] > a:
            counts["unknown"] += 1
        elif i in seen:
            counts["duplicate"] += 1 if i in joined else 0
            counts["late"] += 0 if i in joined else 1
        elif a - times[j] > MAX_WAIT:
            seen.add(i)
            counts["late"] += 1
        else:
            seen.add(i)
            joined[i] = y
            counts["joined"] += 1
    exp = {"counts": counts, "versions": {}}
    for v in ("v1", "v2"):
        js = [(score[index[i]], y) for i, y in joined.items() if version[index[i]] == v]
        s = np.array([p[0] for p in js])
        y = np.array([p[1] for p in js])
        exp["versions"][v] = {"n": int(len(js)), "auc": float(roc_auc_score(y, s)), "log_loss": float(log_loss(y, s)),
                              "brier": float(brier_score_loss(y, s))}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
    print(json.dumps(exp, indent=1))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""make_fixtures.py - fixtures for the drift tests (tests/unit/test_drift.c).

Trains a real scikit-learn HistGradientBoostingClassifier on generated data
(three features: `amount` normal, `ratio` lognormal with 5% missing, `n_tx`
small integers), exports it with kscore-export and its training reference,
and draws two streams:

  stream_same.csv     a fresh sample of the training distribution
  stream_shifted.csv  the same, `amount` shifted by one standard deviation

For each stream the oracle (numpy, written here independently of kscore:
searchsorted on the reference edges, shares floored at 1e-4, sum of
(a - e) ln(a / e)) computes every feature's PSI and missing-rate change and
the PSI of scikit-learn's own predict_proba scores: expected.json.

Output in tests/quality/fixtures/ (committed, ~0.5 MB):
  model.json (kscore JSON with "reference"), train.csv, stream_*.csv,
  expected.json

Usage: .venv/bin/python tests/quality/make_fixtures.py
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
from kscore_export import export  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
NAMES = ["amount", "ratio", "n_tx"]
EPS = 1e-4


def draw(rng, n, shift=0.0):
    amount = rng.normal(50.0, 10.0, n) + shift * 10.0
    ratio = rng.lognormal(0.0, 0.5, n)
    ratio[rng.random(n) < 0.05] = np.nan
    n_tx = rng.poisson(2.0, n).astype(np.float64)
    X = np.round(np.column_stack([amount, ratio, n_tx]), 6)
    logit = 0.08 * (X[:, 0] - 50) + 0.8 * np.nan_to_num(X[:, 1], nan=1.0) - 0.3 * X[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def write_csv(path, X):
    with open(path, "w") as f:
        f.write(",".join(NAMES) + "\n")
        for row in X:
            f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in row) + "\n")


def psi(edges, frac, values):
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    counts = np.bincount(np.searchsorted(np.asarray(edges), v, side="right"),
                         minlength=len(frac))
    a = np.maximum(counts / v.size, EPS)
    e = np.maximum(np.asarray(frac), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(13)
    X, y = draw(rng, 4000)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    doc = export(model, NAMES, os.path.join(OUT, "model.json"), version="drift-test-1",
                 reference=X)
    write_csv(os.path.join(OUT, "train.csv"), X)
    ref = doc["reference"]
    expected = {}
    for name, shift in (("same", 0.0), ("shifted", 1.0)):
        S, _ = draw(rng, 4000, shift)
        write_csv(os.path.join(OUT, f"stream_{name}.csv"), S)
        out = {"rows": int(S.shape[0]), "psi": {}, "missing_change": {}}
        for j, f in enumerate(ref["features"]):
            out["psi"][f["name"]] = psi(f["edges"], f["fractions"], S[:, j])
            out["missing_change"][f["name"]] = float(np.isnan(S[:, j]).mean() - f["missing_rate"])
        scores = model.predict_proba(S)[:, 1]
        out["score_psi"] = psi(ref["score"]["edges"], ref["score"]["fractions"], scores)
        expected[name] = out
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()

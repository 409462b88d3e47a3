"""Trains the fraud example's model and exports it for kscore.

The training set comes from kscore itself, so training and serving compute
the same features by construction (window features point in time, profiles
as the lookup reads them):

    kscore gen --stdout --fraud 0.002 --labels labels.jsonl --profiles profiles.jsonl
        > events.jsonl                                    # history + chargeback labels
    kscore features -c pipeline.yaml --lookup profile=profiles.jsonl
        < events.jsonl > features.csv                     # id, line, every feature

then a StandardScaler + LogisticRegression on every feature column, exported
to model.json with kscore-export, with the training set as the model's
training reference (kscore then reports drift of the served features and
scores from it: docs/quality.md). Prints the held-out AUC with and without
the window and profile features.

    scripts/python-env && .venv/bin/python examples/fraud/train.py
    (KSCORE_BIN: the kscore binary, default build/kscore)
"""
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import kscore_export

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KSCORE = os.environ.get("KSCORE_BIN", os.path.join(ROOT, "build", "kscore"))
EVENTS, KEYS, SEED, FRAUD = 200000, 1000, 20261122, "0.002"
STATEFUL = ("tx_count_1h", "avg_amount_1h", "unique_merchants_1h", "secs_since_last",
            "log_secs_since_last",
            "chargebacks_90d", "amount_vs_usual", "segment")


def training_set(tmp):
    events, labels, profiles = (os.path.join(tmp, f) for f in
                                ("events.jsonl", "labels.jsonl", "profiles.jsonl"))
    with open(events, "w") as out:
        subprocess.run([KSCORE, "gen", "--stdout", "--count", str(EVENTS), "--keys", str(KEYS),
                        "--seed", str(SEED), "--fraud", FRAUD, "--labels", labels,
                        "--profiles", profiles], stdout=out, stderr=subprocess.DEVNULL, check=True)
    with open(events) as inp:
        rows = subprocess.run([KSCORE, "features", "-c", os.path.join(HERE, "pipeline.yaml"),
                               "--lookup", "profile=" + profiles], stdin=inp,
                              capture_output=True, text=True, check=True).stdout
    y_of = {}
    with open(labels) as f:
        for line in f:
            r = json.loads(line)
            y_of[r["id"]] = r["label"]
    reader = csv.reader(rows.splitlines())
    header = next(reader)
    names = header[2:]  # after id, line
    ids, X = [], []
    for r in reader:
        ids.append(r[0])
        X.append([float(v) if v != "" else np.nan for v in r[2:]])
    X = np.array(X)
    y = np.array([y_of[i] for i in ids])
    return X, y, names


def main():
    with tempfile.TemporaryDirectory() as tmp:
        X, y, names = training_set(tmp)
    if np.isnan(X).any():
        sys.exit("a feature is missing in some rows: give it a default in pipeline.yaml")
    cut = int(len(y) * 0.8)  # train on the past, test on what follows
    plain = [k for k, n in enumerate(names) if n not in STATEFUL]
    for label, cols in (("event features only", plain), ("with window and profile features", None)):
        Xa = X if cols is None else X[:, cols]
        m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        m.fit(Xa[:cut], y[:cut])
        auc = roc_auc_score(y[cut:], m.predict_proba(Xa[cut:])[:, 1])
        print(f"held-out AUC, {label}: {auc:.3f}")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(X, y)
    out = os.path.join(HERE, "model.json")
    kscore_export.export(model, names, out, version="fraud-windows-lr-1", reference=X)
    print(f"trained on {len(y)} rows ({y.mean():.1%} fraud), {len(names)} features, wrote {out}")


if __name__ == "__main__":
    main()

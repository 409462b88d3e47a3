"""Trains the basic example's model (a stateless fraud scorer) and exports it
for kscore.

Synthetic transactions shaped like `kscore gen`'s events go through the same
features as pipeline.yaml declares (computed here with numpy, the offline path),
get a label from a noisy rule (big amounts, young accounts, bursts, risky
merchants and countries, night hours), and train a StandardScaler +
LogisticRegression. The result is exported to model.json with kscore-export.

    scripts/python-env && .venv/bin/python examples/basic/train.py
"""
import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import kscore_export

CATEGORIES = ["grocery", "travel", "online", "restaurant", "fuel", "electronics", "gambling", "other"]
ONEHOT = CATEGORIES[:7]
COUNTRIES = ["US", "GB", "DE", "FR", "BR", "IN", "NG", "JP"]
RISK = {"NG": 2, "BR": 1, "IN": 1}
METHODS = ["card", "wallet", "bank"]


def features(rng, n):
    u = rng.random((n, 3))
    amount = np.round(np.exp(3.0 + 1.4 * (u.sum(axis=1) - 1.5)) * 100) / 100
    cat = rng.integers(0, len(CATEGORIES), n)
    n_tx = np.floor(rng.random(n) * rng.random(n) * 40)
    age = np.floor(rng.random(n) * 3650)
    method = rng.integers(0, len(METHODS), n)
    country = rng.integers(0, len(COUNTRIES), n)
    ts = 1767225600 + rng.integers(0, 31536000, n)
    hour = (ts // 3600) % 24
    dow = ((ts // 86400) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    cols = {
        "amount": amount,
        "log_amount": np.log1p(amount),
        "n_tx_24h": n_tx,
        "tx_per_day_of_age": n_tx / np.maximum(age, 1),
        "new_account": (age < 30).astype(float),
        "hour": hour.astype(float),
        "day_of_week": dow.astype(float),
    }
    for c in ONEHOT:
        cols["mcc=" + c] = (cat == CATEGORIES.index(c)).astype(float)
    cols["country_risk"] = np.array([RISK.get(COUNTRIES[k], 0) for k in country], dtype=float)
    cols["method"] = method.astype(float)
    names = list(cols)
    X = np.column_stack([cols[k] for k in names])
    logit = (-4.0 + 0.9 * np.log1p(amount) / 3 + 1.5 * cols["new_account"] + 0.08 * n_tx
             + 1.2 * cols["mcc=gambling"] + 0.6 * cols["mcc=electronics"] + 0.7 * cols["country_risk"]
             + 0.8 * ((hour < 5).astype(float)) + rng.normal(0, 0.5, n))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y, names


def main():
    rng = np.random.default_rng(20261122)
    X, y, names = features(rng, 50000)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(X, y)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.json")
    kscore_export.export(model, names, out, version="fraud-lr-1")
    print(f"trained on {len(y)} rows ({y.mean():.1%} fraud), wrote {out}")


if __name__ == "__main__":
    main()

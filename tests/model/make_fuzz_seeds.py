#!/usr/bin/env python3
"""make_fuzz_seeds.py - small seed model files for the model loader fuzz
targets (tests/fuzz/fuzz_model_*.c): tiny real models from each library,
plus hand-made hostile variants (cycles, out-of-range indices, truncation).

Usage: .venv/bin/python tests/model/make_fuzz_seeds.py   (writes tests/fuzz/corpus/fuzz_model_*/)
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(kind, name, data):
    d = os.path.join(CORPUS, "fuzz_model_" + kind)
    os.makedirs(d, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(os.path.join(d, name), mode) as f:
        f.write(data)


def main():
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import kscore_export

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    X[:, 2] = rng.integers(0, 5, size=300)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + (X[:, 2] == 3) > 0.3).astype(int)
    Xd = np.nan_to_num(X)

    # XGBoost
    b = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, y), 3)
    raw = b.save_raw("json").decode()
    write("xgboost", "binary.json", raw)
    b = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, xgb.DMatrix(X, y + (X[:, 1] > 1)), 2)
    write("xgboost", "softprob.json", b.save_raw("json").decode())
    doc = json.loads(raw)
    t0 = doc["learner"]["gradient_booster"]["model"]["trees"][0]
    t0["left_children"][1] = 0  # cycle back to the root
    write("xgboost", "cycle.json", json.dumps(doc))
    doc = json.loads(raw)
    doc["learner"]["gradient_booster"]["model"]["trees"][0]["split_indices"][0] = 99
    write("xgboost", "bad_feature.json", json.dumps(doc))
    write("xgboost", "truncated.json", raw[: len(raw) // 2])

    # LightGBM
    m = lgb.train({"objective": "binary", "num_leaves": 4, "verbose": -1, "min_data_in_leaf": 5,
                   "max_cat_to_onehot": 2}, lgb.Dataset(X, y, categorical_feature=[2]), 3)
    txt = m.model_to_string()
    write("lightgbm", "binary_cat.txt", txt)
    m = lgb.train({"objective": "multiclass", "num_class": 3, "num_leaves": 3, "verbose": -1,
                   "zero_as_missing": True}, lgb.Dataset(X, y + (X[:, 1] > 1)), 2)
    write("lightgbm", "multiclass.txt", m.model_to_string())
    write("lightgbm", "truncated.txt", txt[: len(txt) // 2])
    write("lightgbm", "cycle.txt", txt.replace("left_child=", "left_child=0 ", 1).replace("left_child=0 -1", "left_child=0", 1))

    # kscore JSON
    for name, model, Xf in [
        ("logreg.json", make_pipeline(StandardScaler(), LogisticRegression()), Xd),
        ("forest.json", RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0), X),
        ("hgb_cat.json", HistGradientBoostingClassifier(max_iter=2, max_depth=2, categorical_features=[2]), X),
        ("mlp.json", MLPRegressor(hidden_layer_sizes=(3,), max_iter=20), Xd),
    ]:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(Xf, y)
        doc = kscore_export.to_dict(model, ["a", "b", "c"])
        doc["metadata"]["exported_at"] = "2024-01-01T00:00:00Z"
        write("kscore", name, json.dumps(doc))
    doc = kscore_export.to_dict(RandomForestClassifier(n_estimators=1, max_depth=2, random_state=0).fit(X, y), ["a", "b", "c"])
    doc["tree_ensemble"]["trees"][0]["right"][0] = 0
    write("kscore", "cycle.json", json.dumps(doc))
    print("make_fuzz_seeds: done")


if __name__ == "__main__":
    main()

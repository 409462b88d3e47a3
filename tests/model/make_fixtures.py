#!/usr/bin/env python3
"""make_fixtures.py - parity fixtures for kscore's model runtime.

Trains REAL models with the real libraries (XGBoost, LightGBM, scikit-learn,
versions pinned by scripts/python-env) on generated data, writes each model
file in the format kscore reads, a 10,000-row test matrix, and each library's
own predict / predict_proba outputs on it. tests/unit/test_model_parity.c
loads every model with kscore and compares.

The test rows are built to hit the places where runtimes disagree:
  - values exactly on the split thresholds of every trained model, and their
    neighbours (next double up/down, the float32 rounding, the next float32),
  - NaN in every column (models that cannot take NaN get a dense copy),
  - exact zeros, -0.0 and +-1e-35 (LightGBM's zero-as-missing band),
  - categorical codes that were never seen, negative, non-integer, huge,
  - values whose float32 rounding crosses a threshold (a wide-range column).

Output (tests/model/fixtures/, not committed; regenerated when missing):
  MANIFEST                  one line per fixture:
                            name model_file X_file n_outputs kind
                            (kind = proba | regression)
  X_test.bin, X_dense.bin   float64 little-endian, ROWS x FEATURES row-major
  <name>.out.bin            float64, ROWS x n_outputs: the library's outputs
  <name>.json / .txt        the model file

Usage: .venv/bin/python tests/model/make_fixtures.py [--out DIR]
"""

import argparse
import json
import os
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))

ROWS = 10_000
N_TRAIN = 5_000
FEATURES = ["c0", "c1", "c2", "grid", "cat", "nanny", "zeros", "wide"]
NF = len(FEATURES)
CAT = FEATURES.index("cat")


def make_X(rng, n):
    X = np.empty((n, NF))
    X[:, 0] = rng.normal(size=n)
    X[:, 1] = rng.normal(size=n)
    X[:, 2] = rng.uniform(-3, 3, size=n)
    X[:, 3] = rng.integers(-8, 9, size=n) * 0.25
    X[:, 4] = rng.integers(0, 10, size=n)
    X[:, 5] = rng.normal(size=n)
    X[rng.random(n) < 0.15, 5] = np.nan
    X[:, 6] = np.where(rng.random(n) < 0.4, 0.0, rng.normal(size=n))
    X[:, 7] = np.sign(rng.normal(size=n)) * np.exp(rng.normal(scale=3.0, size=n)) * 1e3
    return X


def score(X, rng):
    x = np.nan_to_num(X, nan=0.0)
    s = (1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 3] + 0.4 * (x[:, 4] % 3) - 0.6 * (x[:, 4] == 7)
         + 0.7 * x[:, 5] + 0.5 * np.isnan(X[:, 5]) + 0.4 * (x[:, 6] == 0) + 0.15 * np.sign(x[:, 7])
         * np.log1p(np.abs(x[:, 7]) / 1e3) + 0.5 * x[:, 0] * x[:, 1] + 0.3 * np.sin(2 * x[:, 2]))
    return s + rng.normal(scale=0.4, size=len(s))


def dense(X):
    return np.nan_to_num(X, nan=0.0)


# ------------------------------------------------------------------ models


def train_all(out, Xtr, rng):
    """Returns a list of fixture specs: dict(name, file, data, kind, predict, n_out, thresholds)."""
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier,
                                  GradientBoostingRegressor, HistGradientBoostingClassifier,
                                  HistGradientBoostingRegressor, RandomForestClassifier,
                                  RandomForestRegressor)
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    import kscore_export

    s = score(Xtr, rng)
    y_bin = (s > 0).astype(int)
    y_multi = np.digitize(s, np.quantile(s, [1 / 3, 2 / 3]))
    y_reg = s * 3.0 + 10.0
    y_pois = rng.poisson(np.exp(np.clip(0.4 * s, -5, 3)))
    y_prob = 1 / (1 + np.exp(-s))
    Xd = dense(Xtr)
    specs = []

    # ---- XGBoost
    def xgb_fixture(name, params, y, rounds=40, kind="regression", n_out=1, how="predict"):
        dm = xgb.DMatrix(Xtr, label=y, feature_names=FEATURES)
        p = {"max_depth": 5, "eta": 0.3, "seed": 7, "nthread": 2}
        p.update(params)
        b = xgb.train(p, dm, rounds)
        path = os.path.join(out, name + ".json")
        b.save_model(path)
        doc = json.load(open(path))
        thr = [[] for _ in range(NF)]
        gb = doc["learner"]["gradient_booster"]
        model = gb["model"] if "model" in gb else gb["gbtree"]["model"]
        for t in model["trees"]:
            for l, f, c in zip(t["left_children"], t["split_indices"], t["split_conditions"]):
                if l >= 0:
                    thr[f].append(float(c))

        def predict(X, b=b, how=how):
            if how == "binary":
                p1 = b.inplace_predict(X).astype(np.float32)
                return np.stack([np.float32(1) - p1, p1], axis=1)  # XGBClassifier.predict_proba
            if how == "margin_softmax":
                m = b.predict(xgb.DMatrix(X, feature_names=FEATURES), output_margin=True).astype(np.float64)
                e = np.exp(m - m.max(axis=1, keepdims=True))
                return e / e.sum(axis=1, keepdims=True)
            r = b.inplace_predict(X)
            return r.reshape(len(X), -1)

        specs.append(dict(name=name, file=name + ".json", data="X_test.bin", kind=kind, n_out=n_out,
                          predict=predict, thresholds=thr))

    xgb_fixture("xgb_binary", {"objective": "binary:logistic"}, y_bin, kind="proba", n_out=2, how="binary")
    xgb_fixture("xgb_reg", {"objective": "reg:squarederror"}, y_reg)
    xgb_fixture("xgb_reglogistic", {"objective": "reg:logistic"}, y_prob)
    xgb_fixture("xgb_softprob", {"objective": "multi:softprob", "num_class": 3}, y_multi, kind="proba", n_out=3)
    xgb_fixture("xgb_softmax", {"objective": "multi:softmax", "num_class": 3}, y_multi, kind="proba", n_out=3,
                how="margin_softmax")
    xgb_fixture("xgb_poisson", {"objective": "count:poisson", "max_delta_step": 0.7}, y_pois)
    xgb_fixture("xgb_exact", {"objective": "binary:logistic", "tree_method": "exact", "max_depth": 6}, y_bin,
                kind="proba", n_out=2, how="binary")
    xgb_fixture("xgb_forest", {"objective": "reg:squarederror", "num_parallel_tree": 4, "subsample": 0.7,
                               "colsample_bynode": 0.7}, y_reg, rounds=10)
    xgb_fixture("xgb_dart", {"objective": "binary:logistic", "booster": "dart", "rate_drop": 0.2}, y_bin,
                rounds=20, kind="proba", n_out=2, how="binary")

    # ---- LightGBM
    def lgb_fixture(name, params, y, rounds=40, kind="regression", n_out=1, Xfit=Xtr, cat=None):
        p = {"num_leaves": 15, "learning_rate": 0.2, "verbose": -1, "seed": 7, "num_threads": 2,
             "deterministic": True, "min_data_in_leaf": 10}
        p.update(params)
        ds = lgb.Dataset(Xfit, label=y, feature_name=FEATURES,
                         categorical_feature=cat if cat is not None else "auto", free_raw_data=False)
        b = lgb.train(p, ds, rounds)
        path = os.path.join(out, name + ".txt")
        b.save_model(path)
        thr = [[] for _ in range(NF)]

        def walk(n):
            if "split_feature" in n:
                if n.get("decision_type") == "<=":
                    thr[n["split_feature"]].append(float(n["threshold"]))
                walk(n["left_child"])
                walk(n["right_child"])

        for t in b.dump_model()["tree_info"]:
            walk(t["tree_structure"])

        def predict(X, b=b, n_out=n_out):
            r = b.predict(X)
            if r.ndim == 1 and n_out == 2:
                return np.stack([1.0 - r, r], axis=1)
            return r.reshape(len(X), -1)

        specs.append(dict(name=name, file=name + ".txt", data="X_test.bin", kind=kind, n_out=n_out,
                          predict=predict, thresholds=thr))

    lgb_fixture("lgb_binary", {"objective": "binary"}, y_bin, kind="proba", n_out=2)
    lgb_fixture("lgb_multiclass", {"objective": "multiclass", "num_class": 3}, y_multi, kind="proba", n_out=3)
    lgb_fixture("lgb_ova", {"objective": "multiclassova", "num_class": 3}, y_multi, kind="proba", n_out=3)
    lgb_fixture("lgb_reg", {"objective": "regression"}, y_reg)
    lgb_fixture("lgb_poisson", {"objective": "poisson"}, y_pois)
    lgb_fixture("lgb_cat", {"objective": "binary", "cat_smooth": 1, "min_data_per_group": 5,
                            "max_cat_to_onehot": 2}, y_bin, kind="proba", n_out=2, cat=[CAT])
    lgb_fixture("lgb_cat_onehot", {"objective": "regression", "max_cat_to_onehot": 16}, y_reg, cat=[CAT])
    lgb_fixture("lgb_zero_missing", {"objective": "regression", "zero_as_missing": True}, y_reg)
    lgb_fixture("lgb_no_missing", {"objective": "binary", "use_missing": False}, y_bin, kind="proba", n_out=2)
    lgb_fixture("lgb_rf", {"objective": "regression", "boosting": "rf", "bagging_fraction": 0.7,
                           "bagging_freq": 1, "feature_fraction": 0.8}, y_reg, rounds=20)
    lgb_fixture("lgb_sigmoid2", {"objective": "binary", "sigmoid": 2.0}, y_bin, kind="proba", n_out=2)

    # ---- scikit-learn (through kscore-export)
    def sk_fixture(name, model, y, kind, data="nan"):
        Xfit = Xtr if data == "nan" else Xd
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(Xfit, y)
        kscore_export.export(model, FEATURES, os.path.join(out, name + ".json"), version=name + "-1")
        est = model.steps[-1][1] if hasattr(model, "steps") else model
        thr = [[] for _ in range(NF)]
        trees = []
        if hasattr(est, "tree_"):
            trees = [est.tree_]
        elif hasattr(est, "estimators_"):
            trees = [e.tree_ for e in np.ravel(est.estimators_)]
        for t in trees:
            for f, c, l in zip(t.feature, t.threshold, t.children_left):
                if l >= 0:
                    thr[f].append(float(c))
        if hasattr(est, "_predictors"):
            for it in est._predictors:
                for pr in it:
                    for nd in pr.nodes:
                        if not nd["is_leaf"] and not nd["is_categorical"] and np.isfinite(nd["num_threshold"]):
                            thr[int(nd["feature_idx"])].append(float(nd["num_threshold"]))

        def predict(X, model=model, kind=kind):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "proba":
                    return model.predict_proba(X)
                return model.predict(X).reshape(len(X), 1)

        n_out = 1 if kind == "regression" else len(np.unique(y))
        specs.append(dict(name=name, file=name + ".json", data="X_test.bin" if data == "nan" else "X_dense.bin",
                          kind=kind, n_out=n_out, predict=predict, thresholds=thr))

    sk_fixture("sk_logreg_binary", make_pipeline(StandardScaler(), LogisticRegression(C=0.5)), y_bin, "proba", "dense")
    sk_fixture("sk_logreg_multi", make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=500)), y_multi, "proba",
               "dense")
    sk_fixture("sk_linreg", LinearRegression(), y_reg, "regression", "dense")
    sk_fixture("sk_ridge", make_pipeline(StandardScaler(), Ridge(alpha=3.0)), y_reg, "regression", "dense")
    sk_fixture("sk_dt_clf", DecisionTreeClassifier(max_depth=9, random_state=1), y_multi, "proba")
    sk_fixture("sk_dt_reg", DecisionTreeRegressor(max_depth=9, random_state=1), y_reg, "regression")
    sk_fixture("sk_rf_clf", RandomForestClassifier(n_estimators=12, max_depth=8, random_state=1), y_bin, "proba")
    sk_fixture("sk_rf_multi", RandomForestClassifier(n_estimators=12, max_depth=8, random_state=2), y_multi, "proba")
    sk_fixture("sk_rf_reg", RandomForestRegressor(n_estimators=12, max_depth=8, random_state=1), y_reg, "regression")
    sk_fixture("sk_et_clf", ExtraTreesClassifier(n_estimators=12, max_depth=8, random_state=1), y_bin, "proba")
    sk_fixture("sk_et_reg", ExtraTreesRegressor(n_estimators=12, max_depth=8, random_state=1), y_reg, "regression")
    sk_fixture("sk_gb_clf", GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=1), y_bin, "proba",
               "dense")
    sk_fixture("sk_gb_multi", GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=1), y_multi,
               "proba", "dense")
    sk_fixture("sk_gb_reg", GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=1), y_reg,
               "regression", "dense")
    sk_fixture("sk_hgb_clf", HistGradientBoostingClassifier(max_iter=30, random_state=1), y_bin, "proba")
    sk_fixture("sk_hgb_multi", HistGradientBoostingClassifier(max_iter=15, random_state=1), y_multi, "proba")
    sk_fixture("sk_hgb_reg", HistGradientBoostingRegressor(max_iter=30, random_state=1), y_reg, "regression")
    sk_fixture("sk_hgb_poisson", HistGradientBoostingRegressor(loss="poisson", max_iter=30, random_state=1), y_pois,
               "regression")
    cat_mask = np.zeros(NF, dtype=bool)
    cat_mask[CAT] = True
    sk_fixture("sk_hgb_cat", HistGradientBoostingClassifier(max_iter=30, categorical_features=cat_mask,
                                                            random_state=1), y_bin, "proba")
    sk_fixture("sk_mlp_clf", make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=300, random_state=1)),
               y_bin, "proba", "dense")
    sk_fixture("sk_mlp_multi", make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(12,), activation="tanh", max_iter=300,
                                                                             random_state=1)), y_multi, "proba", "dense")
    sk_fixture("sk_mlp_reg", make_pipeline(MinMaxScaler(), MLPRegressor(hidden_layer_sizes=(16, 16), activation="logistic",
                                                                        max_iter=300, random_state=1)), y_reg,
               "regression", "dense")
    return specs


# -------------------------------------------------------------- test rows


def threshold_neighbours(ts):
    out = []
    for t in ts:
        if not np.isfinite(t):
            continue
        f = np.float32(t)
        out += [t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), float(f),
                float(np.nextafter(f, np.float32(np.inf))), float(np.nextafter(f, np.float32(-np.inf)))]
    return np.array(out, dtype=np.float64)


def make_test(specs, rng):
    X = make_X(rng, ROWS)
    pools = []
    for j in range(NF):
        ts = [t for s in specs for t in s["thresholds"][j]]
        pools.append(threshold_neighbours(ts))
    for j in range(NF):
        if j == CAT or len(pools[j]) == 0:
            continue
        mask = rng.random(ROWS) < 0.35
        X[mask, j] = rng.choice(pools[j], size=mask.sum())
    # Zeros and the zero-as-missing band, in every numeric column.
    specials = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, float(np.float32(1e-35)), 2e-35])
    for j in range(NF):
        if j == CAT:
            continue
        mask = rng.random(ROWS) < 0.04
        X[mask, j] = rng.choice(specials, size=mask.sum())
    # Categorical edge values.
    cat_edges = np.array([-1.0, -0.5, 2.5, 10.0, 15.0, 31.0, 32.0, 1e10, -1e10, 7.0000001])
    mask = rng.random(ROWS) < 0.1
    X[mask, CAT] = rng.choice(cat_edges, size=mask.sum())
    # Missing values everywhere.
    X[rng.random(X.shape) < 0.06] = np.nan
    return X


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "fixtures"))
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240601)
    Xtr = make_X(rng, N_TRAIN)
    specs = train_all(out, Xtr, rng)
    X = make_test(specs, rng)
    Xd = dense(X)
    X.astype("<f8").tofile(os.path.join(out, "X_test.bin"))
    Xd.astype("<f8").tofile(os.path.join(out, "X_dense.bin"))
    lines = [f"# rows {ROWS} features {NF} names {','.join(FEATURES)}"]
    for s in specs:
        Xs = X if s["data"] == "X_test.bin" else Xd
        y = np.asarray(s["predict"](Xs), dtype=np.float64)
        assert y.shape == (ROWS, s["n_out"]), (s["name"], y.shape)
        y.astype("<f8").tofile(os.path.join(out, s["name"] + ".out.bin"))
        lines.append(f"{s['name']} {s['file']} {s['data']} {s['n_out']} {s['kind']}")
    with open(os.path.join(out, "MANIFEST.tmp"), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(os.path.join(out, "MANIFEST.tmp"), os.path.join(out, "MANIFEST"))
    print(f"make_fixtures: {len(specs)} fixtures in {out}")


if __name__ == "__main__":
    main()

"""kscore_export - write scikit-learn models as kscore JSON model files.

The format is documented in docs/model-format.md of the kscore repository.
Every number is written with Python's repr (the shortest string that reads
back to the same double), so kscore evaluates exactly the parameters the
estimator holds; the tree comparison rule and output link written for each
estimator are the ones scikit-learn itself applies in predict/predict_proba.

Public API:
    export(model, feature_names=None, path=None, version=None, reference=None) -> dict
    to_dict(model, feature_names=None, version=None, reference=None) -> dict
    training_reference(X, feature_names, scores=None, score_output=1, bins=10) -> dict

`reference` is a training sample (array or DataFrame, columns in the model's
feature order, NaN = missing): the file then carries the training reference
kscore's drift metrics compare the served data with (docs/quality.md). The
bins are numpy's quantiles, the same doubles `kscore model reference` computes.
    UnsupportedModelError

Anything the format cannot represent exactly is refused by name with
UnsupportedModelError rather than approximated.
"""

import datetime as _dt
import json as _json
import math as _math

import numpy as _np

__version__ = "0.1.0"
__all__ = ["export", "to_dict", "training_reference", "UnsupportedModelError", "__version__"]

SUPPORTED = (
    "LogisticRegression (binary, multinomial), LinearRegression, Ridge, "
    "DecisionTreeClassifier/Regressor, RandomForestClassifier/Regressor, "
    "ExtraTreesClassifier/Regressor, GradientBoostingClassifier/Regressor, "
    "HistGradientBoostingClassifier/Regressor, MLPClassifier/MLPRegressor, "
    "and Pipeline(StandardScaler|MinMaxScaler, one of these)"
)


class UnsupportedModelError(ValueError):
    """The estimator (or one of its settings) cannot be written exactly."""


def _refuse(what, why=None):
    msg = f"kscore-export cannot export {what}"
    if why:
        msg += f": {why}"
    else:
        msg += f". Supported: {SUPPORTED}"
    raise UnsupportedModelError(msg)


def _name(obj):
    return type(obj).__name__


def _floats(a):
    """A list of Python floats; infinities/NaN as the strings the format allows."""
    out = []
    for x in _np.asarray(a, dtype=_np.float64).ravel().tolist():
        if _math.isfinite(x):
            out.append(x)
        elif _math.isnan(x):
            out.append("nan")
        else:
            out.append("inf" if x > 0 else "-inf")
    return out


def _finite_floats(a, what):
    arr = _np.asarray(a, dtype=_np.float64)
    if not _np.all(_np.isfinite(arr)):
        _refuse(what, "it holds infinite or NaN parameters")
    return arr.ravel().tolist()


def _ints(a):
    return [int(x) for x in _np.asarray(a).ravel().tolist()]


def _label(c):
    if isinstance(c, (bool, _np.bool_)):
        return "True" if c else "False"
    if isinstance(c, (int, _np.integer)):
        return str(int(c))
    if isinstance(c, (float, _np.floating)) and float(c).is_integer():
        return str(int(c))
    return str(c)


def _library_versions():
    import sklearn

    return {"library": "scikit-learn", "library_version": sklearn.__version__,
            "numpy_version": _np.__version__}


# --------------------------------------------------------------------- linear


def _linear(model, doc):
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    coef = _np.atleast_2d(_np.asarray(model.coef_, dtype=_np.float64))
    intercept = _np.atleast_1d(_np.asarray(model.intercept_, dtype=_np.float64))
    if isinstance(model, LogisticRegression):
        classes = list(model.classes_)
        doc["task"] = "classification"
        doc["classes"] = [_label(c) for c in classes]
        if len(classes) == 2:
            link = "logistic"
            if coef.shape[0] != 1:
                _refuse("LogisticRegression", "a binary model with more than one coefficient row")
        else:
            multi = getattr(model, "multi_class", "deprecated")
            if multi == "ovr":
                _refuse("LogisticRegression(multi_class='ovr')",
                        "one-vs-rest probabilities are not supported; use the multinomial default")
            link = "softmax"
            if coef.shape[0] != len(classes):
                _refuse("LogisticRegression", "coefficient rows do not match the classes")
    elif isinstance(model, (LinearRegression, Ridge)):
        if coef.shape[0] != 1:
            _refuse(f"{_name(model)} with several targets", "multi-output regression is not supported")
        doc["task"] = "regression"
        link = "identity"
    else:  # pragma: no cover - dispatch guarantees the type
        _refuse(_name(model))
    if intercept.shape[0] == 1 and coef.shape[0] > 1:
        intercept = _np.repeat(intercept, coef.shape[0])
    doc["model_type"] = "linear"
    doc["linear"] = {
        "coef": [_finite_floats(row, _name(model)) for row in coef],
        "intercept": _finite_floats(intercept, _name(model)),
        "link": link,
    }
    return coef.shape[1]


# ----------------------------------------------------------------------- mlp


def _mlp(model, doc):
    from sklearn.neural_network import MLPClassifier

    hidden = model.activation
    if hidden not in ("identity", "relu", "tanh", "logistic"):
        _refuse(f"MLP with activation={hidden!r}")
    out = model.out_activation_
    if isinstance(model, MLPClassifier):
        classes = list(model.classes_)
        if out == "logistic" and model.n_outputs_ == 1 and len(classes) == 2:
            link = "logistic"
        elif out == "softmax":
            link = "softmax"
        else:
            _refuse("MLPClassifier", "multi-label classifiers are not supported")
        doc["task"] = "classification"
        doc["classes"] = [_label(c) for c in classes]
    else:
        if model.n_outputs_ != 1:
            _refuse("MLPRegressor with several targets", "multi-output regression is not supported")
        if out not in ("identity", "exp"):
            _refuse(f"MLPRegressor with output activation {out!r}")
        link = out
        doc["task"] = "regression"
    layers = []
    for W, b in zip(model.coefs_, model.intercepts_):
        W = _np.asarray(W, dtype=_np.float64)
        layers.append({"weights": [_finite_floats(r, _name(model)) for r in W],
                       "bias": _finite_floats(b, _name(model))})
    doc["model_type"] = "mlp"
    doc["mlp"] = {"hidden_activation": hidden, "link": link, "layers": layers}
    return _np.asarray(model.coefs_[0]).shape[0]


# --------------------------------------------------------------------- trees


def _sk_tree(tree, group=0, leaf_scale=None, classes=None):
    """One sklearn Tree (tree_) in the format's parallel-array layout."""
    left = _np.asarray(tree.children_left)
    right = _np.asarray(tree.children_right)
    leaf = left < 0
    value = _np.asarray(tree.value, dtype=_np.float64)
    if value.shape[1] != 1:
        _refuse("a multi-output tree", "multi-output models are not supported")
    if classes is not None:
        v = value[:, 0, :classes]
    else:
        v = value[:, 0, :1]
    if leaf_scale is not None:
        v = v * leaf_scale  # exactly scikit-learn's `scale * value` in predict_stages
    v = _np.where(leaf[:, None], v, 0.0)
    thr = _np.where(leaf, 0.0, _np.asarray(tree.threshold, dtype=_np.float64))
    feat = _np.where(leaf, -2, _np.asarray(tree.feature))
    miss = getattr(tree, "missing_go_to_left", None)
    node = {
        "group": int(group),
        "left": _ints(_np.where(leaf, -1, left)),
        "right": _ints(_np.where(leaf, -1, right)),
        "feature": _ints(feat),
        "threshold": _floats(thr),
        "value": _floats(v),
    }
    if miss is not None:
        node["missing_left"] = _ints(_np.where(leaf, 0, _np.asarray(miss)))
    return node


def _check_tree_features(model):
    n_outputs = getattr(model, "n_outputs_", 1)
    if n_outputs != 1:
        _refuse(f"{_name(model)} with several outputs", "multi-output models are not supported")


def _forest(model, doc):
    """DecisionTree*, RandomForest*, ExtraTrees*: average of per-tree outputs."""
    from sklearn.base import is_classifier
    from sklearn.tree import BaseDecisionTree

    _check_tree_features(model)
    trees = [model] if isinstance(model, BaseDecisionTree) else list(model.estimators_)
    te = {"comparison": "float32", "average": True, "trees": []}
    if is_classifier(model):
        k = int(model.n_classes_)
        doc["task"] = "classification"
        doc["classes"] = [_label(c) for c in model.classes_]
        te.update({"n_raw": k, "leaf_width": k, "base_score": [0.0] * k, "link": "identity"})
        for t in trees:
            te["trees"].append(_sk_tree(t.tree_, classes=k))
    else:
        doc["task"] = "regression"
        te.update({"n_raw": 1, "leaf_width": 1, "base_score": [0.0], "link": "identity"})
        for t in trees:
            te["trees"].append(_sk_tree(t.tree_))
    doc["model_type"] = "tree_ensemble"
    doc["tree_ensemble"] = te
    return int(model.n_features_in_)


def _gradient_boosting(model, doc):
    from sklearn.base import is_classifier

    init = model.init_
    n_features = int(model.n_features_in_)
    if init == "zero":
        base = _np.zeros(model.estimators_.shape[1])
    elif _name(init) in ("DummyClassifier", "DummyRegressor"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = _np.asarray(model._raw_predict_init(_np.zeros((1, n_features), dtype=_np.float32)))[0]
    else:
        _refuse(f"{_name(model)} with init={_name(init)}",
                "only the default (prior / mean) init or init='zero' can be exported")
    lr = float(model.learning_rate)
    te = {"comparison": "float32", "average": False, "leaf_width": 1, "trees": []}
    if is_classifier(model):
        loss = getattr(model, "loss", "log_loss")
        if loss not in ("log_loss", "deviance"):
            _refuse(f"GradientBoostingClassifier(loss={loss!r})", "only log_loss is supported")
        k = int(model.n_classes_)
        doc["task"] = "classification"
        doc["classes"] = [_label(c) for c in model.classes_]
        te["link"] = "logistic" if k == 2 else "softmax"
    else:
        doc["task"] = "regression"
        te["link"] = "identity"
    n_raw = model.estimators_.shape[1]
    te["n_raw"] = int(n_raw)
    te["base_score"] = _finite_floats(base, _name(model))
    for stage in model.estimators_:
        for g, t in enumerate(stage):
            te["trees"].append(_sk_tree(t.tree_, group=g, leaf_scale=lr))
    doc["model_type"] = "tree_ensemble"
    doc["tree_ensemble"] = te
    return n_features


_HGB_LINKS = {"IdentityLink": "identity", "LogLink": "exp", "LogitLink": "logistic",
              "MultinomialLogit": "softmax", "SymmetricMultinomialLogit": "softmax"}


def _hist_gradient_boosting(model, doc):
    from sklearn.base import is_classifier

    n_features = int(model.n_features_in_)
    link_name = _name(model._loss.link)
    if link_name not in _HGB_LINKS:
        _refuse(f"{_name(model)} with loss {_name(model._loss)}", f"link {link_name} is not supported")
    link = _HGB_LINKS[link_name]
    k = int(model.n_trees_per_iteration_)
    base = _np.asarray(model._baseline_prediction, dtype=_np.float64).ravel()
    if is_classifier(model):
        doc["task"] = "classification"
        doc["classes"] = [_label(c) for c in model.classes_]
        if len(model.classes_) == 2 and link != "logistic":
            _refuse(_name(model), "unexpected link for a binary classifier")
    else:
        doc["task"] = "regression"

    # Column remapping and raw categories when categorical features are used:
    # the fitted preprocessor puts the (ordinal-encoded) categorical columns
    # first; node feature indices refer to that order.
    col_map = _np.arange(n_features)
    cat_values = None
    is_cat = getattr(model, "is_categorical_", None)
    if getattr(model, "_preprocessor", None) is not None and is_cat is not None:
        is_cat = _np.asarray(is_cat, dtype=bool)
        col_map = _np.concatenate([_np.flatnonzero(is_cat), _np.flatnonzero(~is_cat)])
        encoder = model._preprocessor.named_transformers_["encoder"]
        cat_values = []
        for cats in encoder.categories_:
            vals = []
            for c in cats:
                try:
                    f = float(c)
                except (TypeError, ValueError):
                    _refuse(f"{_name(model)} with non-numeric categories",
                            "categories must be non-negative integers below 65536")
                if _math.isnan(f):
                    vals.append(None)
                    continue
                if not (f >= 0 and f < 65536 and f.is_integer()):
                    _refuse(f"{_name(model)} with category {c!r}",
                            "categories must be non-negative integers below 65536")
                vals.append(int(f))
            cat_values.append(vals)
        known_bitsets, f_idx_map = model._bin_mapper.make_known_categories_bitsets()

    def raw_bitset(encoded_bits, cat_col):
        """Encoded-code bitset (8 uint32 words) -> bitset over raw values."""
        words = _np.asarray(encoded_bits, dtype=_np.uint64)
        raw = set()
        vals = cat_values[cat_col]
        for code in range(len(words) * 32):
            if (int(words[code // 32]) >> (code % 32)) & 1 and code < len(vals) and vals[code] is not None:
                raw.add(vals[code])
        return raw

    te = {"comparison": "float64", "average": False, "leaf_width": 1, "n_raw": k,
          "base_score": _finite_floats(base, _name(model)), "link": link, "trees": []}
    categories = []
    for iteration in model._predictors:
        for g, pred in enumerate(iteration):
            nodes = pred.nodes
            is_leaf = nodes["is_leaf"].astype(bool)
            feat_t = nodes["feature_idx"].astype(_np.int64)
            feat = _np.where(is_leaf, -2, col_map[_np.where(is_leaf, 0, feat_t)])
            tree = {
                "group": g,
                "left": _ints(_np.where(is_leaf, -1, nodes["left"].astype(_np.int64))),
                "right": _ints(_np.where(is_leaf, -1, nodes["right"].astype(_np.int64))),
                "feature": _ints(feat),
                "threshold": _floats(_np.where(is_leaf, 0.0, nodes["num_threshold"])),
                "missing_left": _ints(_np.where(is_leaf, 0, nodes["missing_go_to_left"])),
                "value": _floats(_np.where(is_leaf, nodes["value"], 0.0)),
            }
            cat_nodes = nodes["is_categorical"].astype(bool) & ~is_leaf
            if cat_nodes.any():
                if cat_values is None:
                    _refuse(_name(model), "categorical splits without the fitted category encoder")
                cat_ref = [-1] * len(nodes)
                for i in _np.flatnonzero(cat_nodes):
                    t_col = int(feat_t[i])  # transformed column = index among categorical columns
                    left_raw = raw_bitset(pred.raw_left_cat_bitsets[nodes["bitset_idx"][i]], t_col)
                    known_raw = raw_bitset(known_bitsets[f_idx_map[t_col]], t_col)
                    n_words = (max(known_raw | left_raw | {0}) // 32) + 1
                    lw, kw = [0] * n_words, [0] * n_words
                    for v in left_raw:
                        lw[v // 32] |= 1 << (v % 32)
                    for v in known_raw:
                        kw[v // 32] |= 1 << (v % 32)
                    cat_ref[i] = len(categories)
                    categories.append({"left": lw, "known": kw})
                tree["categorical"] = cat_ref
            te["trees"].append(tree)
    if categories:
        te["categories"] = categories
    doc["model_type"] = "tree_ensemble"
    doc["tree_ensemble"] = te
    return n_features


# ----------------------------------------------------------------- dispatch

_ESTIMATORS = {
    "LogisticRegression": _linear,
    "LinearRegression": _linear,
    "Ridge": _linear,
    "DecisionTreeClassifier": _forest,
    "DecisionTreeRegressor": _forest,
    "RandomForestClassifier": _forest,
    "RandomForestRegressor": _forest,
    "ExtraTreesClassifier": _forest,
    "ExtraTreesRegressor": _forest,
    "GradientBoostingClassifier": _gradient_boosting,
    "GradientBoostingRegressor": _gradient_boosting,
    "HistGradientBoostingClassifier": _hist_gradient_boosting,
    "HistGradientBoostingRegressor": _hist_gradient_boosting,
    "MLPClassifier": _mlp,
    "MLPRegressor": _mlp,
}


def _scaler_step(scaler, n_features):
    name = _name(scaler)
    if name == "StandardScaler":
        mean = scaler.mean_ if scaler.with_mean else _np.zeros(n_features)
        scale = scaler.scale_ if (scaler.with_std and scaler.scale_ is not None) else _np.ones(n_features)
        return {"type": "standard_scaler", "mean": _finite_floats(mean, name),
                "scale": _finite_floats(scale, name)}
    if name == "MinMaxScaler":
        if getattr(scaler, "clip", False):
            _refuse("MinMaxScaler(clip=True)", "clipping is not supported")
        return {"type": "minmax_scaler", "scale": _finite_floats(scaler.scale_, name),
                "min": _finite_floats(scaler.min_, name)}
    _refuse(f"a Pipeline step {name}", "only StandardScaler or MinMaxScaler may precede the model")


def _hist(values, bins):
    """(edges, fractions, missing share) of one column: numpy quantile edges,
    equal edges merged; bin = searchsorted(edges, x, side='right')."""
    v = _np.asarray(values, dtype=_np.float64).ravel()
    ok = v[~_np.isnan(v)]
    missing = float((v.size - ok.size) / v.size) if v.size else 0.0
    if ok.size == 0:
        return [], [0.0], missing
    edges = _np.unique(_np.quantile(ok, [k / bins for k in range(1, bins)]))
    counts = _np.bincount(_np.searchsorted(edges, ok, side="right"), minlength=edges.size + 1)
    return edges.tolist(), (counts / ok.size).tolist(), missing


def training_reference(X, feature_names, scores=None, score_output=1, bins=10):
    """The "reference" member of a kscore model file (docs/quality.md): per
    feature the quantile bins of the training values and their shares, the
    missing share, and the same bins for the model's scores if given.
    score_output: the output column the score is ("top" for the top class
    probability of a multiclass model)."""
    X = _np.asarray(X, dtype=_np.float64)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"the reference sample must have {len(feature_names)} columns")
    ref = {"format": "kscore-reference", "format_version": 1, "rows": int(X.shape[0]),
           "bins": int(bins), "features": []}
    for j, name in enumerate(feature_names):
        edges, frac, missing = _hist(X[:, j], bins)
        ref["features"].append({"name": str(name), "missing_rate": missing,
                                "edges": edges, "fractions": frac})
    if scores is not None:
        edges, frac, _ = _hist(scores, bins)
        ref["score"] = {"output": score_output, "edges": edges, "fractions": frac}
    return ref


def _model_scores(model, X, task, n_classes):
    """The score the drift metrics watch: P(class 1) for binary classifiers,
    the top probability for multiclass, the prediction for regressors."""
    if task == "classification":
        p = _np.asarray(model.predict_proba(X), dtype=_np.float64)
        return (p[:, 1], 1) if n_classes == 2 else (p.max(axis=1), "top")
    return _np.asarray(model.predict(X), dtype=_np.float64).ravel(), 0


def to_dict(model, feature_names=None, version=None, reference=None):
    """The kscore JSON document (a dict) for a fitted estimator; with
    `reference` (a training sample) it carries the training reference."""
    steps = []
    est = model
    if _name(model) == "Pipeline":
        parts = [s for _, s in model.steps if s not in (None, "passthrough")]
        if not parts:
            _refuse("an empty Pipeline")
        est = parts[-1]
        for s in parts[:-1]:
            steps.append(s)
        if len(steps) > 1:
            _refuse("a Pipeline with more than one pre-processing step",
                    "only one StandardScaler or MinMaxScaler may precede the model")
    name = _name(est)
    if name in ("XGBClassifier", "XGBRegressor", "Booster", "LGBMClassifier", "LGBMRegressor"):
        _refuse(name, "kscore reads XGBoost and LightGBM files directly: use "
                      "save_model('m.json') (XGBoost) or booster_.save_model('m.txt') (LightGBM)")
    if name not in _ESTIMATORS:
        _refuse(name)
    if not hasattr(est, "n_features_in_"):
        _refuse(f"an unfitted {name}", "fit it first")
    doc = {"format": "kscore-model", "format_version": 1}
    body = {}
    n_features = _ESTIMATORS[name](est, body)
    if feature_names is None:
        feature_names = getattr(model, "feature_names_in_", None)
        if feature_names is None:
            feature_names = getattr(est, "feature_names_in_", None)
    if feature_names is None:
        feature_names = [f"f{i}" for i in range(n_features)]
    feature_names = [str(f) for f in feature_names]
    if len(feature_names) != n_features:
        raise ValueError(f"{len(feature_names)} feature names given but the model has {n_features} features")
    if len(set(feature_names)) != len(feature_names):
        raise ValueError("feature names must be unique")
    doc["model_type"] = body.pop("model_type")
    doc["task"] = body.pop("task")
    doc["feature_names"] = feature_names
    if "classes" in body:
        doc["classes"] = body.pop("classes")
    if version is not None:
        doc["version"] = str(version)
    doc["objective"] = name if not steps else f"{_name(steps[0])} + {name}"
    meta = _library_versions()
    meta.update({
        "exported_by": f"kscore-export {__version__}",
        "estimator": name,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    doc["metadata"] = meta
    if steps:
        doc["preprocess"] = [_scaler_step(s, n_features) for s in steps]
    doc.update(body)
    if reference is not None:
        scores, out = _model_scores(model, reference, doc["task"], len(doc.get("classes", [])))
        doc["reference"] = training_reference(reference, feature_names, scores, out)
    return doc


def export(model, feature_names=None, path=None, version=None, reference=None):
    """Writes `model` as a kscore JSON model file at `path` (if given) and
    returns the document. feature_names: the model's input names in column
    order (default: the names it was fitted with, else f0, f1, ...)."""
    doc = to_dict(model, feature_names=feature_names, version=version, reference=reference)
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            _json.dump(doc, f, separators=(",", ":"), allow_nan=False)
            f.write("\n")
    return doc

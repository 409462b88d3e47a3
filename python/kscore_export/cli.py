"""kscore-export command line: load a pickled/joblib'd fitted estimator and
write it as a kscore JSON model file.

    kscore-export model.pkl -o model.json [--feature-names a,b,c] [--version v3]
                  [--reference train.csv]

--reference: a CSV training sample with a header naming the model's features
(other columns ignored); the file then carries the training reference for
kscore's drift metrics (docs/quality.md).

Exit codes: 0 written, 1 the model cannot be exported (message says why),
2 bad usage or unreadable input.
"""

import argparse
import sys

from . import UnsupportedModelError, __version__, export


def _load(path):
    try:
        import joblib

        return joblib.load(path)
    except ImportError:  # pragma: no cover - joblib is a dependency
        import pickle

        with open(path, "rb") as f:
            return pickle.load(f)


def _read_sample(path, model, names):
    """The CSV's columns in the model's feature order, as floats (empty = NaN);
    a DataFrame when the model was fitted with feature names."""
    import csv

    import numpy as np

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    fitted = getattr(model, "feature_names_in_", None)
    want = names or (list(fitted) if fitted is not None else
                     [f"f{i}" for i in range(model.n_features_in_)])
    idx = [header.index(n) for n in want]
    X = np.array([[float(r[i]) if r[i].strip() not in ("", "NA", "nan", "NaN") else np.nan
                   for i in idx] for r in rows[1:] if r], dtype=np.float64)
    if fitted is not None:
        import pandas as pd

        return pd.DataFrame(X, columns=want)
    return X


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="kscore-export",
        description="Write a fitted scikit-learn model (pickle or joblib file) as a kscore JSON model.")
    p.add_argument("model", help="pickle/joblib file holding the fitted estimator or Pipeline")
    p.add_argument("-o", "--output", required=True, help="where to write the kscore JSON model")
    p.add_argument("--feature-names", help="comma-separated input names in column order "
                   "(default: the names the model was fitted with, else f0, f1, ...)")
    p.add_argument("--version", dest="model_version", help="version string stored in the file "
                   "(default: none; kscore then uses a content hash)")
    p.add_argument("--reference", help="CSV training sample (header of feature names) to "
                   "store as the training reference for drift metrics")
    p.add_argument("-V", action="version", version=f"kscore-export {__version__}")
    args = p.parse_args(argv)
    try:
        model = _load(args.model)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a usage error
        print(f"kscore-export: cannot read {args.model}: {e}", file=sys.stderr)
        return 2
    names = args.feature_names.split(",") if args.feature_names else None
    sample = None
    if args.reference:
        try:
            sample = _read_sample(args.reference, model, names)
        except (OSError, ValueError, KeyError) as e:
            print(f"kscore-export: cannot read the reference sample {args.reference}: {e}",
                  file=sys.stderr)
            return 2
    try:
        doc = export(model, names, args.output, version=args.model_version, reference=sample)
    except (UnsupportedModelError, ValueError) as e:
        print(f"kscore-export: {e}", file=sys.stderr)
        return 1
    print(f"kscore-export: wrote {args.output} ({doc['metadata']['estimator']}, "
          f"{len(doc['feature_names'])} features, task {doc['task']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

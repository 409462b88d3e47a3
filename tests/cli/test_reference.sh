#!/usr/bin/env bash
# Training references from the command line (docs/quality.md, "The training
# reference"), against numpy:
#  1. `kscore model reference FILE --sample train.csv` on real XGBoost and
#     LightGBM models (tests/model/fixtures: binary, multiclass softprob,
#     regression) writes the sidecar FILE.reference.json next to the model;
#     its per-feature edges and shares are numpy's quantiles of the sample's
#     columns (numpy.unique(numpy.quantile(x, [.1, ..., .9])), shares by
#     searchsorted(side="right")), bit for bit, its missing rates numpy's;
#     its score bins are numpy's quantiles of the score `kscore model
#     predict` gives (P(class 1), the top probability, the prediction), and
#     that score is the library's own prediction to 1e-6; the model loads
#     with its sidecar; --bins 4 and -o OUT work.
#  2. `kscore-export model.pkl -o m.json --reference train.csv` (the
#     exporter's command line, python/kscore_export/cli.py) on a small
#     scikit-learn model (gradient boosting, which takes the sample's NaNs) embeds a reference equal to numpy's, with
#     scikit-learn's predict_proba as the score, and `kscore model reference`
#     on the exported file writes the same feature bins.
# Needs the project venv (scripts/python-env). The parity fixtures are used
# when present, else generated into this test's temporary directory.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
KS=${KSCORE_BIN:-$ROOT/build/kscore}
PY=$ROOT/.venv/bin/python
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$PY" ] || "$ROOT/scripts/python-env" >&2 || fail "scripts/python-env"

FIX=$ROOT/tests/model/fixtures
if [ ! -f "$FIX/MANIFEST" ]; then
    echo "parity fixtures missing: generating them into $T/fix" >&2
    "$PY" "$ROOT/tests/model/make_fixtures.py" --out "$T/fix" >/dev/null 2>&1 ||
        fail "tests/model/make_fixtures.py failed"
    FIX=$T/fix
fi

# the sample: the first 4,000 test rows as CSV (empty cell = NaN)
"$PY" - "$FIX" "$T/train.csv" <<'PY' || fail "cannot write the sample"
import sys
import numpy as np
fix, out = sys.argv[1:3]
head = open(f"{fix}/MANIFEST").readline().split()
names = head[head.index("names") + 1].split(",")
X = np.fromfile(f"{fix}/X_test.bin", "<f8").reshape(-1, len(names))[:4000]
with open(out, "w") as f:
    f.write(",".join(names) + "\n")
    for r in X:
        f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in r) + "\n")
PY

# ---- 1. kscore model reference on XGBoost and LightGBM models --------------
mkdir -p "$T/m"
for name in xgb_binary.json xgb_softprob.json lgb_binary.txt lgb_reg.txt; do
    cp "$FIX/$name" "$T/m/$name"
    "$KS" model reference "$T/m/$name" --sample "$T/train.csv" 2>"$T/ref.log" ||
        fail "kscore model reference $name exited $?: $(cat "$T/ref.log")"
    [ -f "$T/m/$name.reference.json" ] || fail "$name: no sidecar $name.reference.json"
    "$KS" model predict "$T/m/$name" <"$T/train.csv" >"$T/m/$name.pred" ||
        fail "kscore model predict $name"
    "$KS" model info "$T/m/$name" >/dev/null 2>"$T/info.log" ||
        fail "$name does not load with its sidecar: $(cat "$T/info.log")"
done
"$KS" model reference "$T/m/lgb_binary.txt" --sample "$T/train.csv" --bins 4 \
    -o "$T/m/bins4.json" 2>/dev/null || fail "kscore model reference --bins 4 -o"

"$PY" - "$FIX" "$T/train.csv" "$T/m" <<'PY' || fail "the sidecars differ from numpy"
import json, sys
import numpy as np
fix, sample, d = sys.argv[1:4]
X = np.genfromtxt(sample, delimiter=",", skip_header=1)
names = open(sample).readline().strip().split(",")

def hist(v, bins):
    ok = v[~np.isnan(v)]
    edges = np.unique(np.quantile(ok, [k / bins for k in range(1, bins)]))
    counts = np.bincount(np.searchsorted(edges, ok, side="right"), minlength=edges.size + 1)
    return edges, counts / ok.size, (v.size - ok.size) / v.size

bad = 0
def check(what, cond):
    global bad
    bad += not cond
    if not cond:
        print(f"FAIL: {what}")

cases = {"xgb_binary.json": (1, 2), "xgb_softprob.json": ("top", 3), "lgb_binary.txt": (1, 2),
         "lgb_reg.txt": (0, 1)}
for name, (output, n_out) in cases.items():
    ref = json.load(open(f"{d}/{name}.reference.json"))
    check(f"{name}: format", ref["format"] == "kscore-reference" and ref["rows"] == 4000
          and ref["bins"] == 10)
    check(f"{name}: feature names", [f["name"] for f in ref["features"]] == names)
    for j, f in enumerate(ref["features"]):
        e, fr, miss = hist(X[:, j], 10)
        check(f"{name} {f['name']}: edges {f['edges']} vs numpy {e.tolist()}",
              f["edges"] == e.tolist())
        check(f"{name} {f['name']}: fractions", f["fractions"] == fr.tolist())
        check(f"{name} {f['name']}: missing rate", f["missing_rate"] == miss)
    P = np.loadtxt(f"{d}/{name}.pred", delimiter=",", ndmin=2)
    s = P.max(axis=1) if output == "top" else P[:, output]
    lib = np.fromfile(f"{fix}/{name.rsplit('.', 1)[0]}.out.bin", "<f8").reshape(-1, n_out)[:4000]
    ls = lib.max(axis=1) if output == "top" else lib[:, output]
    check(f"{name}: kscore's score is the library's", np.allclose(s, ls, rtol=1e-6, atol=1e-9))
    e, fr, _ = hist(s, 10)
    check(f"{name}: score output {ref['score']['output']!r}", ref["score"]["output"] == output)
    check(f"{name}: score edges", ref["score"]["edges"] == e.tolist())
    check(f"{name}: score fractions", ref["score"]["fractions"] == fr.tolist())
    print(f"{'ok' if not bad else 'FAIL'}: {name}: 8 features and the score "
          f"({len(e)} score edges) equal numpy's")
b4 = json.load(open(f"{d}/bins4.json"))
e, fr, _ = hist(X[:, 0], 4)
check("--bins 4", b4["bins"] == 4 and b4["features"][0]["edges"] == e.tolist())
sys.exit(1 if bad else 0)
PY

# ---- 2. kscore-export --reference -----------------------------------------
"$PY" - "$T" <<'PY' || fail "cannot train the scikit-learn model"
import sys
import joblib
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
t = sys.argv[1]
rng = np.random.default_rng(7)
X = np.column_stack([rng.normal(50, 20, 3000), rng.exponential(2, 3000),
                     rng.integers(0, 5, 3000).astype(float)])
y = (X[:, 0] / 20 + X[:, 1] + rng.normal(0, 1, 3000) > 4).astype(int)
X[rng.random(3000) < 0.1, 1] = np.nan   # missing values (the model takes NaN)
model = HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=0).fit(X, y)
joblib.dump(model, f"{t}/sk.pkl")
with open(f"{t}/sk_train.csv", "w") as f:
    f.write("amount,ratio,n_tx,ignored\n")
    for r in X:
        f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in r) + ",x\n")
PY
PYTHONPATH="$ROOT/python" "$ROOT/.venv/bin/kscore-export" "$T/sk.pkl" -o "$T/sk.json" \
    --feature-names amount,ratio,n_tx --version sk-ref-1 --reference "$T/sk_train.csv" \
    >"$T/export.log" 2>&1 || fail "kscore-export --reference exited $?: $(cat "$T/export.log")"
"$KS" model reference "$T/sk.json" --sample "$T/sk_train.csv" -o "$T/sk_c.json" 2>/dev/null ||
    fail "kscore model reference on the exported model"
"$PY" - "$T" <<'PY' || fail "the exported reference differs from numpy"
import json, sys
import joblib
import numpy as np
t = sys.argv[1]
doc = json.load(open(f"{t}/sk.json"))
ref = doc.get("reference")
assert ref, "kscore-export --reference wrote no reference"
X = np.genfromtxt(f"{t}/sk_train.csv", delimiter=",", skip_header=1, usecols=(0, 1, 2))
model = joblib.load(f"{t}/sk.pkl")
bad = 0
def hist(v):
    ok = v[~np.isnan(v)]
    edges = np.unique(np.quantile(ok, np.arange(1, 10) / 10))
    counts = np.bincount(np.searchsorted(edges, ok, side="right"), minlength=edges.size + 1)
    return edges.tolist(), (counts / ok.size).tolist(), (v.size - ok.size) / v.size
for j, f in enumerate(ref["features"]):
    e, fr, miss = hist(X[:, j])
    ok = f["name"] == ["amount", "ratio", "n_tx"][j] and f["edges"] == e and \
        f["fractions"] == fr and f["missing_rate"] == miss
    bad += not ok
    print(f"{'ok' if ok else 'FAIL'}: exported {f['name']}: {len(e)} edges, missing {miss}")
e, fr, _ = hist(model.predict_proba(X)[:, 1])
ok = ref["score"]["output"] == 1 and ref["score"]["edges"] == e and ref["score"]["fractions"] == fr
bad += not ok
print(f"{'ok' if ok else 'FAIL'}: exported score bins = numpy quantiles of predict_proba[:, 1]")
side = json.load(open(f"{t}/sk_c.json"))
ok = [f["edges"] for f in side["features"]] == [f["edges"] for f in ref["features"]] and \
    [f["fractions"] for f in side["features"]] == [f["fractions"] for f in ref["features"]]
bad += not ok
print(f"{'ok' if ok else 'FAIL'}: kscore model reference gives the exporter's feature bins")
sys.exit(1 if bad else 0)
PY
echo "ok: training references equal numpy's (kscore model reference, kscore-export --reference)"

#!/usr/bin/env bash
# examples/fraud/backtest.sh as shipped, on 20,000 transactions: the backtest
# of the full design (window features and the profile lookup from its
# snapshot, no broker or Redis) runs; report.md has one row per model; the
# example's model scores equal `kscore predict` of the same events with the
# same snapshot (the backtest is the production code path, windows included);
# each model's AUC and log loss in metrics.json equal scikit-learn's on
# predictions.csv to 1e-9; the window and profile features are worth
# something (AUC at least 0.2 above the events-only candidate's); the plots
# are PNG files. Needs the project venv (scripts/python-env) and gnuplot.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export KSCORE_BIN=${KSCORE_BIN:-$ROOT/build/kscore}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v gnuplot >/dev/null || fail "gnuplot not found (Debian gnuplot-nox; scripts/deps installs it)"
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || "$ROOT/scripts/python-env" >&2 || fail "scripts/python-env"

"$ROOT/examples/fraud/backtest.sh" "$T/out" 20000 >"$T/log" 2>&1 || fail "backtest.sh: $(tail -5 "$T/log")"
for f in report.md metrics.json predictions.csv roc.png calibration.png scores.png; do
    [ -s "$T/out/$f" ] || fail "$f missing"
done
for f in roc calibration scores; do
    head -c 8 "$T/out/$f.png" | od -An -tx1 | grep -q '89 50 4e 47' || fail "$f.png is not a PNG"
done
[ "$(grep -c '^| [01] |' "$T/out/report.md")" -ge 2 ] || fail "report.md lacks a row per model"
"$KSCORE_BIN" predict -c "$ROOT/examples/fraud/pipeline.yaml" \
    --lookup "profile=$T/out/profiles.jsonl" <"$T/out/events.jsonl" >"$T/predict.jsonl" 2>/dev/null
"$PY" - "$T" <<'PY' || fail "the fraud backtest's metrics are wrong"
import csv, json, sys
from sklearn.metrics import log_loss, roc_auc_score
t = sys.argv[1]
rows = list(csv.DictReader(open(f"{t}/out/predictions.csv")))
m = json.load(open(f"{t}/out/metrics.json"))
models = m["models"] if isinstance(m, dict) and "models" in m else m
pred = {r["id"]: r["score"] for r in map(json.loads, open(f"{t}/predict.jsonl"))}
assert len(rows) == 20000, len(rows)
assert all(float(r["score_0"]) == pred[r["id"]] for r in rows), "backtest scores != kscore predict"
y = [int(r["label"]) for r in rows]
auc = []
for k, mod in enumerate(models):
    s = [float(r[f"score_{k}"]) for r in rows]
    want = (roc_auc_score(y, s), log_loss(y, s))
    have = (mod["auc"], mod["log_loss"])
    assert all(abs(a - b) <= 1e-9 for a, b in zip(want, have)), (k, want, have)
    auc.append(want[0])
assert auc[0] > 0.85 and auc[0] - auc[1] >= 0.2, auc
print(f"ok: AUC {auc[0]:.4f} with window and profile features, {auc[1]:.4f} events only; "
      f"metrics equal scikit-learn's; scores equal kscore predict")
PY

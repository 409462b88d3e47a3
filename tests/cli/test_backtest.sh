#!/usr/bin/env bash
# kscore backtest: replays 10,000 fraud-example events through the basic example
# pipeline's model and a candidate, joins labels (with a duplicate, an
# unreadable line and an unknown id thrown in), and the report's AUC, log
# loss, Brier score, precision and recall equal scikit-learn's on the same
# joined pairs (predictions.csv) to 1e-9; the plots are PNG files; report.md
# has one row per model with the contract's columns. Needs the project venv
# (scripts/python-env) and gnuplot (scripts/deps).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
KS=${KSCORE_BIN:-$ROOT/build/kscore}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v gnuplot >/dev/null || fail "gnuplot not found (Debian gnuplot-nox; scripts/deps installs it)"
[ -x "$ROOT/.venv/bin/python" ] || "$ROOT/scripts/python-env" >&2 || fail "scripts/python-env"

"$KS" gen --stdout --count 10000 --seed 21 2>/dev/null >"$T/events.jsonl"
jq -r '[.id, .amount, .payment.country, .n_tx_24h] | @tsv' "$T/events.jsonl" |
    awk -F'\t' 'BEGIN { srand(13) }
        { z = -3 + 0.004 * $2 + ($3 == "NG" ? 1.5 : 0) + 0.03 * $4
          printf "{\"id\":\"%s\",\"label\":%d}\n", $1, rand() < 1 / (1 + exp(-z)) }' >"$T/labels.jsonl"
{ echo '{"id":"e5","label":1}'; echo 'not json'; echo '{"id":"nobody","label":1}'; } >>"$T/labels.jsonl"
jq '.linear.coef[0] |= map(. * 0.7) | .version = "fraud-lr-candidate"' \
    "$ROOT/examples/basic/model.json" >"$T/candidate.json"

"$KS" backtest -c "$ROOT/examples/basic/pipeline.yaml" --events "$T/events.jsonl" \
    --labels "$T/labels.jsonl" --model "$T/candidate.json" --out "$T/out" ||
    fail "kscore backtest exited $?"
for p in roc calibration scores; do
    [ "$(head -c 4 "$T/out/$p.png" | od -An -c | tr -d ' ')" = '211PNG' ] || fail "$p.png is not a PNG"
done
grep -q '| AUC | log loss |' "$T/out/report.md" || fail "report.md lacks the AUC / log loss columns"
[ "$(grep -c '^| [01] | ' "$T/out/report.md")" -ge 2 ] || fail "report.md lacks a row per model"

"$ROOT/.venv/bin/python" - "$T/out" <<'PY' || fail "metrics differ from scikit-learn's"
import csv, json, sys
import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, precision_score, recall_score, roc_auc_score
d = sys.argv[1]
m = json.load(open(f"{d}/metrics.json"))
rows = list(csv.DictReader(open(f"{d}/predictions.csv")))
y = np.array([int(r["label"]) for r in rows])
assert m["joined"] == len(rows) == 10000, (m["joined"], len(rows))
assert m["label_duplicates"] == 1 and m["label_unreadable"] == 1, m
bad = 0
for k, mod in enumerate(m["models"]):
    s = np.array([float(r[f"score_{k}"]) for r in rows])
    want = {"auc": roc_auc_score(y, s), "log_loss": log_loss(y, s), "brier": brier_score_loss(y, s),
            "precision": precision_score(y, s >= mod["threshold"]),
            "recall": recall_score(y, s >= mod["threshold"])}
    for key, w in want.items():
        ok = abs(mod[key] - w) <= 1e-9
        bad += not ok
        print(f"{'ok' if ok else 'FAIL'}: model {k} {key} kscore {mod[key]!r} sklearn {w!r}")
assert m["models"][0]["agreement"] == 1.0 and m["models"][1]["agreement"] < 1.0
sys.exit(1 if bad else 0)
PY
# a bad invocation is a usage error
"$KS" backtest -c "$ROOT/examples/basic/pipeline.yaml" --events "$T/events.jsonl" 2>"$T/err"
[ $? = 2 ] && grep -q "usage: kscore backtest" "$T/err" || fail "missing --labels/--out is not exit 2"
echo "ok: backtest metrics equal scikit-learn's"

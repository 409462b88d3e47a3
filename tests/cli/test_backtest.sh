#!/usr/bin/env bash
# kscore backtest: replays 10,000 fraud-example events through the basic example
# pipeline's model, a candidate that ranks differently (the n_tx_24h weight
# zeroed: the labels depend on it, so its AUC is lower) and a candidate with a
# hostile version string (gnuplot quotes and system(), '|', a newline), joins
# labels (with a duplicate, an unreadable line and an unknown id thrown in),
# and per model the AUC, log loss, Brier score, precision and recall of
# metrics.json equal scikit-learn's on the same joined pairs (predictions.csv)
# to 1e-9, and report.md's table shows the same numbers (4 decimals); the
# plots are PNG files, plots.gp ran no command from the version (the file it
# would touch does not exist) and report.md keeps one row per model.
# Then examples/basic/backtest.sh runs as a user would, into this test's
# temporary directory. Needs the project venv (scripts/python-env) and gnuplot
# (scripts/deps).
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
jq '.linear.coef[0][2] = 0 | .version = "fraud-lr-no-ntx"' \
    "$ROOT/examples/basic/model.json" >"$T/candidate.json"
# a version that would run a command if pasted into plots.gp unquoted and
# break report.md's table; another with a newline (which would end a gnuplot
# command and a table row)
HOSTILE="v' . system(\"touch $T/X\") . 'x | \`y\` <b>"
MULTILINE="two
lines | here"
jq --arg v "$HOSTILE" '.version = $v' "$ROOT/examples/basic/model.json" >"$T/hostile.json"
jq --arg v "$MULTILINE" '.version = $v' "$ROOT/examples/basic/model.json" >"$T/multiline.json"

"$KS" backtest -c "$ROOT/examples/basic/pipeline.yaml" --events "$T/events.jsonl" \
    --labels "$T/labels.jsonl" --model "$T/candidate.json" --model "$T/hostile.json" \
    --out "$T/out" || fail "kscore backtest exited $?"
for p in roc calibration scores; do
    [ "$(head -c 4 "$T/out/$p.png" | od -An -c | tr -d ' ')" = '211PNG' ] || fail "$p.png is not a PNG"
done
[ ! -e "$T/X" ] || fail "a model version ran a command through plots.gp"
grep -q '| AUC | log loss |' "$T/out/report.md" || fail "report.md lacks the AUC / log loss columns"
[ "$(grep -c '^| [012] | ' "$T/out/report.md")" -ge 3 ] || fail "report.md lacks a row per model"

"$ROOT/.venv/bin/python" - "$T/out" "$HOSTILE" <<'PY' || fail "metrics differ from scikit-learn's"
import csv, json, re, sys
import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, precision_score, recall_score, roc_auc_score
d, hostile = sys.argv[1:3]
m = json.load(open(f"{d}/metrics.json"))
rows = list(csv.DictReader(open(f"{d}/predictions.csv")))
y = np.array([int(r["label"]) for r in rows])
assert m["joined"] == len(rows) == 10000, (m["joined"], len(rows))
assert m["label_duplicates"] == 1 and m["label_unreadable"] == 1, m
assert [mod["version"] for mod in m["models"]] == ["fraud-lr-1", "fraud-lr-no-ntx", hostile], \
    [mod["version"] for mod in m["models"]]
# report.md's main table: split on '|' not escaped by a backslash
table = {}
for line in open(f"{d}/report.md"):
    if re.match(r"^\| [0-9] \| ", line) and line.count("|") > 12:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        assert len(cells) == 18, (len(cells), line)
        table[int(cells[0])] = cells
assert sorted(table) == [0, 1, 2], sorted(table)
cols = {"auc": 6, "log_loss": 7, "brier": 8, "threshold": 9, "precision": 10, "recall": 11,
        "agreement": 12, "mean_abs_score_diff": 13, "score_mean": 14}
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
    for key, c in cols.items():
        shown = table[k][c]
        ok = shown == f"{mod[key]:.4f}" and (key not in want or abs(float(shown) - want[key]) <= 5.0001e-5)
        bad += not ok
        if not ok:
            print(f"FAIL: model {k} report.md {key} {shown} vs metrics.json {mod[key]!r}")
    p = table[k][3:6]
    ok = p == [str(mod["predicted"]), str(mod["predicted"] - mod["unlabelled"]), str(mod["positives"])]
    bad += not ok
    if not ok:
        print(f"FAIL: model {k} report.md counts {p} vs metrics.json {mod}")
auc = [mod["auc"] for mod in m["models"]]
print(f"AUC per model: {auc}")
assert auc[1] < auc[0] - 0.01, "the candidate should rank differently (lower AUC)"
assert m["models"][0]["agreement"] == 1.0 and m["models"][1]["agreement"] < 1.0
assert table[2][2].startswith("v' . system(") and "x \\| \\`y\\` \\<b\\>" in table[2][2], table[2][2]
sys.exit(1 if bad else 0)
PY
grep -qF "title '#2 v'' . system(" "$T/out/plots.gp" ||
    fail "plots.gp: the version's quote is not doubled inside its title"
# the newline: one table row, one gnuplot command
head -2000 "$T/events.jsonl" >"$T/events-2k.jsonl"
"$KS" backtest -c "$ROOT/examples/basic/pipeline.yaml" --events "$T/events-2k.jsonl" \
    --labels "$T/labels.jsonl" --model "$T/multiline.json" --out "$T/out-nl" 2>"$T/nl.log" ||
    fail "a version with a newline: kscore backtest exited $?: $(tail -2 "$T/nl.log")"
grep -qxF '| 1 | '"$T/multiline.json"' | two lines \| here | 2000 | 2000 |' \
    <(grep '^| 1 | ' "$T/out-nl/report.md" | cut -d'|' -f1-7 | sed 's/ *$/ |/') ||
    fail "report.md row of a version with a newline: $(grep -A1 '^| 1 | ' "$T/out-nl/report.md")"

# the example's own backtest script, as a user runs it
KSCORE_BIN=$KS bash "$ROOT/examples/basic/backtest.sh" "$T/example" >"$T/example.log" 2>&1 ||
    fail "examples/basic/backtest.sh failed: $(tail -3 "$T/example.log")"
jq -e '(.models | length) == 2 and .joined == 20000 and .models[1].version == "fraud-lr-candidate"
       and (.models[0].auc > 0.5)' "$T/example/metrics.json" >/dev/null ||
    fail "examples/basic/backtest.sh: unexpected metrics.json $(head -c 300 "$T/example/metrics.json")"
[ "$(head -c 4 "$T/example/roc.png" | od -An -c | tr -d ' ')" = '211PNG' ] ||
    fail "examples/basic/backtest.sh: no roc.png"
grep -q '^| 1 | ' "$T/example/report.md" || fail "examples/basic/backtest.sh: report.md lacks the candidate"
# a bad invocation is a usage error
"$KS" backtest -c "$ROOT/examples/basic/pipeline.yaml" --events "$T/events.jsonl" 2>"$T/err"
[ $? = 2 ] && grep -q "usage: kscore backtest" "$T/err" || fail "missing --labels/--out is not exit 2"
echo "ok: backtest metrics equal scikit-learn's"

#!/usr/bin/env bash
# examples/fraud/backtest.sh - a backtest of the fraud example, no broker or
# Redis needed: replays a history of transactions (kscore gen --fraud, another
# seed than train.py's) with the chargeback labels the generator knows, and
# the users' profiles as the lookup's snapshot, through the same stages as
# `kscore run` (window features and the profile lookup included), for the
# example's model and for a candidate: the same model with the window and
# profile features' weights set to zero, i.e. what the events alone give.
#
#   kscore backtest -c examples/fraud/pipeline.yaml --events events.jsonl \
#       --labels labels.jsonl --model events-only.json --out DIR \
#       --set lookups.profile.snapshot=profiles.jsonl
#
#   examples/fraud/backtest.sh [DIR] [EVENTS]
#       (defaults: examples/fraud/backtest-out, 50000 transactions)
#
# Needs jq and gnuplot (scripts/deps). Open DIR/report.md: one row per model
# (AUC, log loss, Brier, precision and recall at output.threshold, agreement),
# calibration by decile, and the ROC, calibration and score plots.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
KS=${KSCORE_BIN:-$ROOT/build/kscore}
OUT=${1:-$HERE/backtest-out}
N=${2:-50000}
mkdir -p "$OUT"

"$KS" gen --stdout --count "$N" --keys 1000 --seed 7 --fraud 0.002 --labels "$OUT/labels.jsonl" \
    --profiles "$OUT/profiles.jsonl" 2>/dev/null >"$OUT/events.jsonl"
# the candidate: every feature kept in kscore's state or looked up weighs nothing
jq '(.feature_names | map(IN("tx_count_1h", "avg_amount_1h", "unique_merchants_1h",
        "secs_since_last", "log_secs_since_last", "chargebacks_90d", "amount_vs_usual",
        "segment"))) as $stateful
    | .linear.coef[0] |= [to_entries[] | if $stateful[.key] then 0 else .value end]
    | .version = "fraud-events-only" | del(.reference)' \
    "$HERE/model.json" >"$OUT/events-only.json"

"$KS" backtest -c "$HERE/pipeline.yaml" --events "$OUT/events.jsonl" --labels "$OUT/labels.jsonl" \
    --model "$OUT/events-only.json" --out "$OUT" --set "lookups.profile.snapshot=$OUT/profiles.jsonl"
echo "report: $OUT/report.md"

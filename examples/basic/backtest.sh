#!/usr/bin/env bash
# examples/basic/backtest.sh - a backtest of the basic example, no broker needed:
# generates a day of transactions (kscore gen), a labels stream for them (a
# fraud rule plus noise: what the chargeback feed would deliver days later),
# a candidate model (the example's with the amount weight halved), and runs
#
#   kscore backtest -c examples/basic/pipeline.yaml --events events.jsonl \
#       --labels labels.jsonl --model candidate.json --out DIR
#
#   examples/basic/backtest.sh [DIR]     (default: examples/basic/backtest-out)
#
# Needs jq, awk and gnuplot (scripts/deps). Open DIR/report.md.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
KS=${KSCORE_BIN:-$ROOT/build/kscore}
OUT=${1:-$HERE/backtest-out}
mkdir -p "$OUT"

"$KS" gen --stdout --count 20000 --seed 11 2>/dev/null >"$OUT/events.jsonl"
# labels.jsonl: {"id": ..., "label": 0|1}, one per transaction
jq -r '[.id, .amount, .payment.country, .n_tx_24h, .merchant_category] | @tsv' "$OUT/events.jsonl" |
    awk -F'\t' 'BEGIN { srand(11) }
        { z = -3.2 + 0.004 * $2 + ($3 == "NG" ? 1.5 : 0) + 0.03 * $4 + ($5 == "gambling" ? 1 : 0)
          printf "{\"id\":\"%s\",\"label\":%d}\n", $1, rand() < 1 / (1 + exp(-z)) }' >"$OUT/labels.jsonl"
jq '.linear.coef[0][0] *= 0.5 | .version = "fraud-lr-candidate"' "$HERE/model.json" >"$OUT/candidate.json"

"$KS" backtest -c "$HERE/pipeline.yaml" --events "$OUT/events.jsonl" --labels "$OUT/labels.jsonl" \
    --model "$OUT/candidate.json" --out "$OUT"
echo "report: $OUT/report.md"

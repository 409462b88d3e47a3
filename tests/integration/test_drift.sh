#!/usr/bin/env bash
# Drift on a running pipeline: the test model of tests/quality/fixtures (a
# scikit-learn model exported with its training reference) scores 4,000
# events drawn from the training distribution: every kscore_feature_psi and
# kscore_score_psi on /metrics equals the numpy oracle (expected.json) to 1e-9
# and stays under 0.1. Then 4,000 events with `amount` shifted by one standard
# deviation arrive in the same window: amount's PSI goes over 0.2 (the
# KscoreFeatureDrift threshold), the others stay under 0.1, and the status
# page lists amount as the worst feature.
source "$(dirname "$0")/lib.sh"
require_broker
FIX=$ROOT/tests/quality/fixtures
IN=$(topic dr-in 3); OUT=$(topic dr-out 3); DLQ=$(topic dr-dlq 1)
cat >"$WORK/pipeline.yaml" <<YAML
input:
  topics: [x]
  fields:
    id: {type: string, required: true}
    amount: {type: number}
    ratio: {type: number}
    n_tx: {type: number}
features:
  - {name: amount, expr: amount}
  - {name: ratio, expr: ratio}
  - {name: n_tx, expr: n_tx}
model:
  path: $FIX/model.json
output:
  topic: x
  id_field: id
dead_letter:
  topic: x
drift:
  window: 15m
  min_rows: 1000
YAML
to_json() { # CSV amount,ratio,n_tx -> events (empty ratio = missing)
    awk -F, -v p="$2" 'NR > 1 { printf "{\"id\":\"%s%d\",\"amount\":%s,%s\"n_tx\":%s}\n", p, NR, $1,
        ($2 == "" ? "" : "\"ratio\":" $2 ","), $3 }' "$1"
}
to_json "$FIX/stream_same.csv" s >"$WORK/same.jsonl"
to_json "$FIX/stream_shifted.csv" h >"$WORK/shifted.jsonl"

ks_start run run -c "$WORK/pipeline.yaml" $(ks_sets "$IN" "$OUT" "$DLQ" "g-dr-$RUN_ID")
URL=$(metrics_url "$WORK/kscore-run.log" 30)
kcat -b "$BROKERS" -P -t "$IN" <"$WORK/same.jsonl" || fail "cannot produce"
wait_count "$OUT" 4000 120
wait_metric "$URL" kscore_drift_window_rows 4000 30
http_get "$URL/metrics" >"$WORK/metrics-same.txt"
python3 - "$WORK/metrics-same.txt" "$FIX/expected.json" <<'PY' || fail "drift metrics differ from the oracle"
import json, re, sys
exp = json.load(open(sys.argv[2]))["same"]
got = {}
for line in open(sys.argv[1]):
    m = re.match(r'kscore_(feature_psi|score_psi)\{(?:feature|model_version)="([^"]+)"\} (\S+)$', line)
    if m:
        got[m.group(2)] = float(m.group(3))
want = dict(exp["psi"], **{"drift-test-1": exp["score_psi"]})
bad = 0
for k, v in want.items():
    ok = abs(got[k] - v) <= 1e-9 and got[k] < 0.1
    bad += not ok
    print(f"{'ok' if ok else 'FAIL'}: PSI {k} kscore {got[k]!r} numpy {v!r}")
sys.exit(bad)
PY
kcat -b "$BROKERS" -P -t "$IN" <"$WORK/shifted.jsonl" || fail "cannot produce"
wait_count "$OUT" 8000 120
wait_metric "$URL" kscore_drift_window_rows 8000 30
http_get "$URL/metrics" >"$WORK/metrics-shifted.txt"
amount=$(metric_sum "$URL" kscore_feature_psi 'feature="amount"')
ratio=$(metric_sum "$URL" kscore_feature_psi 'feature="ratio"')
n_tx=$(metric_sum "$URL" kscore_feature_psi 'feature="n_tx"')
log "after the shift: PSI amount $amount, ratio $ratio, n_tx $n_tx"
awk -v a="$amount" -v r="$ratio" -v n="$n_tx" 'BEGIN { exit !(a > 0.2 && r < 0.1 && n < 0.1) }' ||
    fail "expected amount > 0.2 and the others < 0.1"
http_get "$URL/status.json" >"$WORK/status.json"
jq -e '.drift.active and .drift.rows == 8000 and .drift.worst[0].feature == "amount"' \
    "$WORK/status.json" >/dev/null || fail "status.json drift: $(jq -c .drift "$WORK/status.json")"
ks_stop "$KS_PID" TERM
log "PASS: PSI equals the oracle; a one-sigma shift of amount crosses 0.2"

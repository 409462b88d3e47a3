#!/usr/bin/env bash
# The metrics count exactly what happened: N events (1% malformed, from
# `kscore gen --malformed 0.01`) through a running pipeline, then the
# counters on /metrics must equal the events produced and the records in the
# output and dead-letter topics, class by class; latency histograms count
# every acknowledged record; lag gauges cover every assigned partition and
# reach 0; /healthz and /readyz answer; the sampled feature log holds what
# kscore_feature_log_records_total says, in the documented shape; logs are
# JSON lines with log.format=json; and a second instance on the same
# metrics.listen exits 2 with a message.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-20000}
BAD=$((N / 100))
IN=$(topic mc-tx 4); OUT=$(topic mc-scores 4); DLQ=$(topic mc-dlq 2); FLOG=$(topic mc-features 1)
GROUP=g-mc-$RUN_ID

ks_start run run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") \
    --set log.format=json --set kafka.statistics.interval.ms=1000 \
    --set feature_log.topic="$FLOG" --set feature_log.sample_rate=0.05
PID=$KS_PID
URL=$(metrics_url "$WORK/kscore-run.log" 30)
log "metrics endpoint $URL"
[ "$(http_code "$URL/healthz")" = 200 ] || fail "/healthz is not 200"
wait_http "$URL/readyz" 200 60
http_get "$URL/readyz" >"$WORK/readyz.json"
jq -e '.ready == true and .checks.partitions_assigned.assigned == 4' "$WORK/readyz.json" >/dev/null ||
    fail "readyz: $(cat "$WORK/readyz.json")"

# the same address again: a start-up error, exit 2, saying why
ADDR=${URL#http://}
rc=0
"$KSCORE" run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP-2") --set metrics.listen="$ADDR" \
    >"$WORK/kscore-busy.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "a second instance on $ADDR exited $rc, expected 2"
grep -q "cannot listen: Address already in use" "$WORK/kscore-busy.log" ||
    fail "no bind error message: $(cat "$WORK/kscore-busy.log")"

gen --topic "$IN" --count "$N" --seed 21 --malformed 0.01
wait_count "$OUT" $((N - BAD)) 300
wait_count "$DLQ" "$BAD" 60
# predictions are counted when the broker acknowledges them
wait_metric "$URL" kscore_events_predicted_total $((N - BAD)) 30
wait_metric "$URL" kscore_consumer_lag 0 30   # committed up to the end on every partition
http_get "$URL/metrics" >"$WORK/metrics.txt"

m() { awk -v name="$1" -v filt="${2:-}" '$1 !~ /^#/ { n = $1; sub(/\{.*/, "", n)
        if (n == name && index($1, filt) > 0) s += $NF } END { printf "%.17g\n", s + 0 }' "$WORK/metrics.txt"; }
expect() { [ "$(m "$1" "${3:-}")" = "$2" ] || fail "$1${3:+ [$3]} = $(m "$1" "${3:-}"), expected $2"; }
expect kscore_events_consumed_total "$N"
expect kscore_events_predicted_total $((N - BAD))
expect kscore_events_dead_lettered_total "$BAD"
expect kscore_end_to_end_latency_seconds_count "$N"
expect kscore_stage_duration_seconds_count "$N" 'stage="produce_ack"'
expect kscore_batch_size_sum "$N"
expect kscore_prediction_score_count $((N - BAD))
expect kscore_assigned_partitions 4
[ "$(grep -c '^kscore_consumer_lag{' "$WORK/metrics.txt")" = 4 ] || fail "expected lag for 4 partitions"
grep -q '^kscore_broker_connected{.*} 1$' "$WORK/metrics.txt" || fail "no broker_connected gauge at 1"
grep -q '^kscore_broker_rtt_seconds{client="worker-0/producer",broker=.*,stat="p99"}' "$WORK/metrics.txt" ||
    fail "no producer broker RTT gauge"
for name in process_cpu_seconds_total process_resident_memory_bytes process_start_time_seconds process_open_fds; do
    grep -q "^$name " "$WORK/metrics.txt" || fail "no $name"
done

# dead letters per class: the counter per class equals the records whose
# __kscore.errors.class header says that class
consume "$DLQ" "$WORK/dlq-headers.txt" '%h\n'
tr ',' '\n' <"$WORK/dlq-headers.txt" | sed -n 's/^__kscore\.errors\.class=//p' | sort | uniq -c >"$WORK/dlq-classes.txt"
[ -s "$WORK/dlq-classes.txt" ] || fail "no class headers in the dead-letter topic"
while read -r count cls; do
    expect kscore_events_dead_lettered_total "$count" "class=\"$cls\""
    log "class $cls: $count dead letters = counter"
done <"$WORK/dlq-classes.txt"

# the feature log: what the counter says was delivered is in the topic, about
# 5% of the predictions, each record naming all 16 model features
wait_count "$FLOG" "$(m kscore_feature_log_records_total)" 30
samples=$(end_offsets "$FLOG")
[ "$samples" = "$(m kscore_feature_log_records_total)" ] ||
    fail "feature log topic has $samples records, counter says $(m kscore_feature_log_records_total)"
lo=$(( (N - BAD) * 3 / 100 )); hi=$(( (N - BAD) * 7 / 100 ))
[ "$samples" -ge "$lo" ] && [ "$samples" -le "$hi" ] || fail "$samples samples, expected $lo..$hi (5%)"
expect kscore_feature_log_dropped_total 0
consume "$FLOG" "$WORK/features.jsonl"
jq -e -s 'all(.[]; (.features | length) == 16 and (.id | startswith("e")) and (.model_version | length) > 0
                   and (.score >= 0 and .score <= 1) and (.source.offset >= 0))' \
    "$WORK/features.jsonl" >/dev/null || fail "a feature log record lacks a field: $(head -1 "$WORK/features.jsonl")"

# the status JSON agrees with the counters
http_get "$URL/status.json" >"$WORK/status.json"
jq -e --argjson n "$N" --argjson bad "$BAD" \
    '.totals.consumed == $n and .totals.dead_lettered == $bad and (.kafka.partitions | length) == 4' \
    "$WORK/status.json" >/dev/null || fail "status.json disagrees: $(jq -c .totals "$WORK/status.json")"

ks_stop "$PID" TERM
[ "$KS_RC" = 0 ] || fail "kscore run exited $KS_RC"
# log.format=json: every line is a JSON object with ts, level, msg
jq -e -s 'length > 0 and all(.[]; has("ts") and has("level") and has("msg"))' "$WORK/kscore-run.log" >/dev/null ||
    fail "log lines are not all JSON: $(grep -v '^{' "$WORK/kscore-run.log" | head -2)"
log "PASS: consumed $N = predicted $((N - BAD)) + dead-lettered $BAD (by class: $(awk '{printf "%s=%s ", $2, $1}' "$WORK/dlq-classes.txt")), $samples feature-log samples, lag 0 on 4 partitions"

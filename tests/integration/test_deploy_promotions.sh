#!/usr/bin/env bash
# Promotions during a steady stream (issue 11; the CI-sized version of
# `bench/deploy/run --kafka`): 50,000 events at a fixed rate through the
# basic example (examples/basic) with model.deployments_topic, and 5 `kscore deploy
# --promote` spread over the stream, alternating two model versions.
# Passes when nothing is lost or failed - every input id has exactly one
# output, nothing is dead-lettered, no model error, no refusal - and, in
# every input partition, the outputs' model_version changes exactly once per
# promotion in offset order (never back and forth: each batch is scored by
# one routing). The gaps between batches near a swap and without one
# (kscore_batch_gap_max_seconds) are reported, not judged: this size and a
# shared CI machine say nothing about milliseconds (the benchmark does).
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-50000}
K=${KSCORE_TEST_PROMOTIONS:-5}
RATE=${KSCORE_TEST_RATE:-5000}
IN=$(topic ptx 4); OUT=$(topic pscores 4); DLQ=$(topic pdlq 1); DEP=$(topic pdeploy 1)
SETS="$(ks_sets "$IN" "$OUT" "$DLQ" "g-promote-$RUN_ID") --set model.deployments_topic=$DEP"

ks_start run run -c "$EXAMPLE" $SETS
URL=$(metrics_url "$WORK/kscore-run.log" 60)
wait_log "$WORK/kscore-run.log" "deployments: .* read to offset" 60
gen --topic "$IN" --count "$N" --rate "$RATE" --seed 41 &
GEN=$!; PIDS+=("$GEN")
promote_alternating "$OUT" "$N" "$K" "$WORK/kscore-run.log" "$EXAMPLE" $SETS
wait "$GEN" || fail "generator failed"
wait_count "$OUT" "$N" 300
near=$(metric_max "$URL" kscore_batch_gap_max_seconds 'model_swap="near"')
none=$(metric_max "$URL" kscore_batch_gap_max_seconds 'model_swap="none"')
gaps_near=$(metric_sum "$URL" kscore_batch_gap_seconds_count 'model_swap="near"')
errors=$(metric_sum "$URL" kscore_model_errors_total)
refused=$(metric_sum "$URL" kscore_deployments_refused_total)
ks_stop "$KS_PID" TERM
[ "$KS_RC" = 0 ] || fail "kscore exited $KS_RC"

outputs_by_partition "$IN" "$OUT" >"$WORK/partitions.txt"
log "per input partition (partition events missing repeated changes): $(tr '\n' ';' <"$WORK/partitions.txt")"
[ "$(awk '{ s += $2 } END { print s + 0 }' "$WORK/partitions.txt")" = "$N" ] ||
    fail "the input topic holds $(awk '{ s += $2 } END { print s + 0 }' "$WORK/partitions.txt") events, expected $N"
awk '$3 || $4 { bad = 1 } END { exit !bad }' "$WORK/partitions.txt" &&
    fail "events lost or scored twice (missing / repeated per partition above)"
[ "$(wc -l <"$WORK/out-versions.txt")" = "$N" ] ||
    fail "$(wc -l <"$WORK/out-versions.txt") output records for $N events"
[ "$(end_offsets "$DLQ")" = 0 ] || fail "$(end_offsets "$DLQ") dead letters"
[ "$errors" = 0 ] || fail "$errors model errors"
[ "$refused" = 0 ] || fail "$refused deployments refused"
awk -v k="$K" '$5 != k { bad = 1 } END { exit !bad }' "$WORK/partitions.txt" &&
    fail "model_version does not change exactly $K times in every partition"
grep -q 'level=error' "$WORK/kscore-run.log" && fail "errors in the log: $(grep 'level=error' "$WORK/kscore-run.log" | head -3)"
# each swap marks, per worker, the gap it fell in and its two neighbours
W=$(grep -c 'assigned [1-9]' "$WORK/kscore-run.log" || true)
[ "${gaps_near%.*}" -ge "$K" ] && [ "${gaps_near%.*}" -le $((3 * K * W)) ] ||
    fail "$gaps_near batch gaps near a swap for $K swaps on $W worker(s): expected $K to $((3 * K * W))"
log "PASS: $N events, $K promotions: one output each, 0 dead letters, 0 errors, $K version changes per partition; largest batch gap near a swap $(awk -v s="$near" 'BEGIN { printf "%.1f", s * 1e3 }') ms, without $(awk -v s="$none" 'BEGIN { printf "%.1f", s * 1e3 }') ms ($gaps_near gaps near a swap)"

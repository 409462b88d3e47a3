#!/usr/bin/env bash
# Evidence 4: SIGTERM -> exit 0 within a few seconds, and the committed
# offsets are exact.
#  1. After the stream: every input partition's committed offset equals its
#     end offset (checked partition by partition: a partition with nothing
#     committed fails, it does not count as 0).
#  2. Mid-stream: SIGTERM while events still arrive -> exit 0; a restart in
#     the same group then finishes the stream, and since the first run
#     committed exactly what it had output, every event has exactly one
#     output or dead letter in all (no loss, no repeat); committed == end
#     again after the second SIGTERM.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-20000}

# records_in TOPIC... : records in all of them (end offsets)
records_in() {
    local t s=0
    for t in "$@"; do s=$((s + $(end_offsets "$t"))); done
    echo "$s"
}

# ---- 1. SIGTERM after the stream ---------------------------------------------
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1); GROUP=g-term-$RUN_ID
gen --topic "$IN" --count "$N" --seed 5 --malformed 0.02
ks_start run run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set commit.interval_ms=60000
wait_for "outputs and dead letters" "$N" 120 0.2 records_in "$OUT" "$DLQ"
t0=$SECONDS
ks_stop "$KS_PID" TERM; rc=$KS_RC
took=$((SECONDS - t0))
[ "$rc" = 0 ] || fail "exit code $rc after SIGTERM"
[ "$took" -le 10 ] || fail "shutdown took ${took}s"
check_committed_at_end "$GROUP" "$IN"
log "after the stream: exit 0 in ${took}s; committed = end on every partition"

# ---- 2. SIGTERM mid-stream -------------------------------------------------------
IN2=$(topic tx2 4); OUT2=$(topic scores2 4); DLQ2=$(topic dlq2 1); GROUP2=g-term2-$RUN_ID
SETS2="$(ks_sets "$IN2" "$OUT2" "$DLQ2" "$GROUP2") --set commit.interval_ms=60000"
# an open-loop stream over ~12 s, so that the SIGTERM lands while events arrive
"$KSCORE" gen --brokers "$BROKERS" --topic "$IN2" --count "$N" --rate $((N / 12)) --seed 6 \
    --malformed 0.02 2>>"$WORK/gen.log" &
GEN=$!; PIDS+=("$GEN")
ks_start mid1 run -c "$EXAMPLE" $SETS2
wait_count "$OUT2" $((N / 4)) 120
t0=$SECONDS
ks_stop "$KS_PID" TERM; rc=$KS_RC
took=$((SECONDS - t0))
[ "$rc" = 0 ] || fail "exit code $rc after a SIGTERM mid-stream"
[ "$took" -le 10 ] || fail "shutdown mid-stream took ${took}s"
first=$(records_in "$OUT2" "$DLQ2")
kill -0 "$GEN" 2>/dev/null || log "warning: the generator had finished before the SIGTERM"
log "mid-stream: exit 0 in ${took}s with $first outputs and dead letters"
group_offsets "$GROUP2" "$IN2" | awk '$2 == "-" { exit 1 }' ||
    fail "the mid-stream SIGTERM left a partition with nothing committed: $(tr '\n' ';' <"$WORK/group-$GROUP2.txt")"
wait "$GEN" || fail "generator failed"
ks_start mid2 run -c "$EXAMPLE" $SETS2
wait_for "outputs and dead letters after the restart" "$N" 120 0.2 records_in "$OUT2" "$DLQ2"
ks_stop "$KS_PID" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "the restarted run exited $rc"
check_committed_at_end "$GROUP2" "$IN2"
total=$(( $(count "$OUT2") + $(count "$DLQ2") ))
[ "$total" -eq "$N" ] || fail "$total outputs and dead letters for $N events after a SIGTERM \
mid-stream and a restart (expected exactly $N: the first run must commit exactly what it output)"
ids=$(distinct_ids "$OUT2")
[ "$ids" -eq "$(count "$OUT2")" ] || fail "$OUT2 holds $(count "$OUT2") records for $ids ids"
log "PASS: SIGTERM after the stream and mid-stream exit 0; committed = end on every partition; \
$N events -> exactly $N outputs and dead letters across the restart"

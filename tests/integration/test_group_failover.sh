#!/usr/bin/env bash
# Evidence 5: two instances in one consumer group; one stops mid-run ->
# the other takes over its partitions and nothing is lost.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-100000}
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1); GROUP=g-pair-$RUN_ID
SETS="$(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set workers=1"

ks_start a run -c "$EXAMPLE" $SETS; A=$KS_PID
ks_start b run -c "$EXAMPLE" $SETS; B=$KS_PID
for _ in $(seq 300); do   # both members hold partitions (bounded: 60 s)
    grep -q assigned "$WORK/kscore-a.log" && grep -q assigned "$WORK/kscore-b.log" && break
    sleep 0.2
done
grep -q "assigned" "$WORK/kscore-b.log" || fail "instance b never got partitions"
# an open-loop stream of N events over ~10 s, so the stop lands mid-run
"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --count "$N" --rate $((N / 10)) --seed 9 \
    2>>"$WORK/gen.log" &
GEN=$!; PIDS+=("$GEN")
wait_count "$OUT" $((N / 4)) 120
ks_stop "$B" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "instance b exited $rc"
log "stopped instance b with $(end_offsets "$OUT") outputs so far"
wait "$GEN" || fail "generator failed"
wait_ids "$OUT" "$N" 300
ks_stop "$A" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "instance a exited $rc"
log "PASS: all $N ids scored across the failover; $(( $(count "$OUT") - N )) duplicates"

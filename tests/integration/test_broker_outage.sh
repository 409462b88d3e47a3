#!/usr/bin/env bash
# Evidence 6: the broker stops for 10 s mid-run and restarts -> the pipeline
# recovers by itself and nothing is lost.
source "$(dirname "$0")/lib.sh"
require_broker
RATE=${KSCORE_TEST_RATE:-5000}; SECS=30; N=$((RATE * SECS))
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1); GROUP=g-outage-$RUN_ID

restart_broker() { "$ROOT/scripts/kafka" start-node 1 >>"$WORK/broker.log" 2>&1 || true; }
trap 'rc=$?; restart_broker; cleanup $rc' EXIT

ks_start run run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP")
"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --count "$N" --rate "$RATE" --seed 13 \
    2>>"$WORK/gen.log" &
GEN=$!; PIDS+=("$GEN")
wait_count "$OUT" $((RATE * 5)) 120
log "stopping the broker for 10 s"
"$ROOT/scripts/kafka" stop-node 1 >>"$WORK/broker.log" 2>&1
sleep 10   # the outage itself is the scenario
"$ROOT/scripts/kafka" start-node 1 >>"$WORK/broker.log" 2>&1 || fail "broker did not restart"
log "broker back"
wait "$GEN" || fail "generator failed (it should ride out the outage)"
wait_ids "$OUT" "$N" 300
kill -0 "$KS_PID" 2>/dev/null || fail "kscore died during the outage"
ks_stop "$KS_PID" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "kscore exited $rc"
log "PASS: all $N ids scored across a 10 s broker outage; $(( $(count "$OUT") - N )) duplicates"

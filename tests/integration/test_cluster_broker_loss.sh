#!/usr/bin/env bash
# Reliability on a 3-node cluster (RF 3, min.insync.replicas 2): one broker is
# killed with SIGKILL mid-stream and later restarted. Leadership moves, kscore
# follows it by itself, and every event still gets exactly one output or more
# (nothing lost). The cluster is this test's own: a separate state folder and
# ports, stopped at the end.
source "$(dirname "$0")/lib.sh"
export KSCORE_KAFKA_DIR=$ROOT/.kafka-cluster KSCORE_KAFKA_PORT=${KSCORE_CLUSTER_PORT:-19292}
BROKERS=127.0.0.1:$KSCORE_KAFKA_PORT,127.0.0.1:$((KSCORE_KAFKA_PORT + 2)),127.0.0.1:$((KSCORE_KAFKA_PORT + 4))
RATE=${KSCORE_TEST_RATE:-4000}; SECS=30; N=$((RATE * SECS))

stop_cluster() { "$ROOT/scripts/kafka" stop >>"$WORK/cluster.log" 2>&1 || true; }
trap 'rc=$?; stop_cluster; cleanup $rc' EXIT
log "starting a 3-node cluster on $BROKERS"
"$ROOT/scripts/kafka" --nodes 3 start >>"$WORK/cluster.log" 2>&1 || { tail -20 "$WORK/cluster.log" >&2; fail "cluster did not start"; }
IN=$(topic tx 4 3); OUT=$(topic scores 4 3); DLQ=$(topic dlq 2 3)

ks_start run run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "g-cluster-$RUN_ID") \
    --set kafka.producer.acks=all
"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --count "$N" --rate "$RATE" --seed 17 \
    2>>"$WORK/gen.log" &
GEN=$!; PIDS+=("$GEN")
wait_count "$OUT" $((RATE * 5)) 120
victim=$(kcat -b "$BROKERS" -L -t "$OUT" 2>/dev/null | awk '$1 == "partition" { print $4; exit }' | tr -d ,)
log "killing broker node $victim (leader of $OUT partition 0) with SIGKILL"
kill -KILL "$(cat "$KSCORE_KAFKA_DIR/node$victim/pid")"
wait_count "$OUT" $((RATE * 12)) 120   # progress while a broker is down
log "restarting node $victim"
"$ROOT/scripts/kafka" start-node "$victim" >>"$WORK/cluster.log" 2>&1 || fail "node $victim did not restart"
wait "$GEN" || fail "generator failed"
wait_ids "$OUT" "$N" 300
kill -0 "$KS_PID" 2>/dev/null || fail "kscore died"
ks_stop "$KS_PID" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "kscore exited $rc"
log "PASS: all $N ids scored while a broker of 3 was killed and restarted; $(( $(count "$OUT") - N )) duplicates"

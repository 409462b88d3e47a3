#!/usr/bin/env bash
# Evidence 4: SIGTERM -> exit 0 within a few seconds; afterwards the group's
# committed offsets equal the partitions' end offsets (lag 0 everywhere).
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-20000}
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1); GROUP=g-term-$RUN_ID

gen --topic "$IN" --count "$N" --seed 5 --malformed 0.02
ks_start run run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set commit.interval_ms=60000
wait_count "$OUT" $((N - N / 50)) 120
t0=$SECONDS
ks_stop "$KS_PID" TERM; rc=$KS_RC
took=$((SECONDS - t0))
[ "$rc" = 0 ] || fail "exit code $rc after SIGTERM"
[ "$took" -le 10 ] || fail "shutdown took ${took}s"
lag=$(group_lag "$GROUP")
[ "$lag" = 0 ] || { cat "$WORK/group-$GROUP.txt" >&2; fail "committed offsets lag the end by $lag"; }
log "PASS: exit 0 in ${took}s; committed offsets = end offsets on all partitions"

#!/usr/bin/env bash
# Evidence 3: kill -9 the pipeline 3 times during a 200,000-event run and
# restart it each time -> every input id has at least one output; the number
# of duplicates (bounded by what followed the last commit) is reported.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-200000}
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1); GROUP=g-crash-$RUN_ID
SETS="$(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set commit.interval_ms=500"

gen --topic "$IN" --count "$N" --seed 3
for k in 1 2 3; do
    ks_start "run$k" run -c "$EXAMPLE" $SETS
    wait_count "$OUT" $((N * k / 4)) 300
    kill -KILL "$KS_PID"
    wait "$KS_PID" 2>/dev/null || true
    log "killed run $k (kill -9) with $(count "$OUT") outputs so far"
done
ks_start final run -c "$EXAMPLE" $SETS
wait_ids "$OUT" "$N" 300
ks_stop "$KS_PID" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "final run exited $rc"

total=$(count "$OUT")
ids=$(distinct_ids "$OUT")
[ "$ids" -eq "$N" ] || fail "only $ids of $N ids have an output"
dups=$((total - N))
log "PASS: all $N ids have outputs after 3 kill -9; duplicates: $dups ($(awk -v d=$dups -v n=$N 'BEGIN{printf "%.2f", 100*d/n}')%)"
echo "duplicates=$dups" >"$WORK/result"

#!/usr/bin/env bash
# Evidence 3: kill -9 the pipeline 3 times during a 200,000-event run and
# restart it each time -> the set of ids in the outputs is exactly the set of
# ids in the input (compared id by id: nothing lost, nothing that was not an
# input); the number of duplicates (bounded by what followed the last
# commit) is reported.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-200000}
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1); GROUP=g-crash-$RUN_ID
# session.timeout.ms at the broker's minimum so a killed member leaves the
# group quickly instead of after librdkafka's default 45 s.
SETS="$(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set commit.interval_ms=500
      --set kafka.consumer.session.timeout.ms=6000"

# an open-loop stream over ~40 s, so that each kill lands mid-stream
"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --count "$N" --rate $((N / 40)) --seed 3 \
    2>>"$WORK/gen.log" &
GEN=$!; PIDS+=("$GEN")
for k in 1 2 3; do
    ks_start "run$k" run -c "$EXAMPLE" $SETS
    wait_count "$OUT" $((N * k / 4)) 300
    kill -KILL "$KS_PID"
    wait "$KS_PID" 2>/dev/null || true
    log "killed run $k (kill -9) with $(end_offsets "$OUT") outputs so far"
done
ks_start final run -c "$EXAMPLE" $SETS
wait "$GEN" || fail "generator failed"
wait_ids "$OUT" "$N" 300
ks_stop "$KS_PID" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "final run exited $rc"

total=$(count "$OUT")
kcat -b "$BROKERS" -C -t "$IN" -o beginning -e -q -f '%s\n' 2>/dev/null | jq -r .id | sort -u \
    >"$WORK/ids-in.txt" || fail "cannot read the input ids"
kcat -b "$BROKERS" -C -t "$OUT" -o beginning -e -q -f '%s\n' 2>/dev/null | jq -r .id | sort -u \
    >"$WORK/ids-out.txt" || fail "cannot read the output ids"
n_in=$(wc -l <"$WORK/ids-in.txt")
[ "$n_in" -eq "$N" ] || fail "the input holds $n_in distinct ids, expected $N"
lost=$(comm -23 "$WORK/ids-in.txt" "$WORK/ids-out.txt" | wc -l)
extra=$(comm -13 "$WORK/ids-in.txt" "$WORK/ids-out.txt" | wc -l)
[ "$lost" -eq 0 ] || fail "$lost input ids have no output, e.g. $(comm -23 "$WORK/ids-in.txt" "$WORK/ids-out.txt" | head -3 | tr '\n' ' ')"
[ "$extra" -eq 0 ] || fail "$extra output ids are not input ids, e.g. $(comm -13 "$WORK/ids-in.txt" "$WORK/ids-out.txt" | head -3 | tr '\n' ' ')"
dlq=$(count "$DLQ")
[ "$dlq" -eq 0 ] || fail "$dlq dead letters for a stream without malformed events"
dups=$((total - N))
log "PASS: output ids = input ids ($N) after 3 kill -9; duplicates: $dups ($(awk -v d=$dups -v n=$N 'BEGIN{printf "%.2f", 100*d/n}')%)"
echo "duplicates=$dups" >"$WORK/result"

#!/usr/bin/env bash
# Window state survives crashes and rebalances: the basic example with the
# issue's window features (per user: count, avg, distinct merchants over 1h,
# seconds since the previous event, max over 24h) and
# output.include_features, on a 4-partition topic keyed by user.
#
#   reference   one uninterrupted run (its own group and changelog)
#   offline     `kscore predict` over the same events in file order
#   crashes     another group: kill -9 three times mid-stream, restarting
#               each time; then a second instance joins (rebalance) and the
#               first stops (SIGTERM, its partitions move again)
#
# Passes when every output record of the crash run - duplicates from
# at-least-once replays included - carries exactly the window features the
# reference gave the same event, and the reference equals the offline run.
# KSCORE_TEST_CRASH_SETS="--set delivery=exactly_once" runs the crash run
# with Kafka transactions (the changelog rides in them; an abort restores the
# committed prefix) and then allows no duplicates: test_windows_exactly_once.sh.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-60000}
KEYS=${KSCORE_TEST_KEYS:-400}
IN=$(topic wtx 4); DLQ=$(topic wdlq 1)
REF_OUT=$(topic wref 4); CRASH_OUT=$(topic wcrash 4)
REF_GROUP=g-wref-$RUN_ID; CRASH_GROUP=g-wcrash-$RUN_ID

windows_pipeline "$WORK/pipeline.yaml"
CFG=$WORK/pipeline.yaml
common="--set commit.interval_ms=500 --set kafka.consumer.session.timeout.ms=6000 --set workers=2"

# wait_out TOPIC N : until TOPIC holds N records, failing at once if the
# kscore started last ($KS_PID) has exited
alive_count() {
    kill -0 "$KS_PID" 2>/dev/null || { echo -1; return; }
    end_offsets "$1"
}
wait_out() {
    local start=$SECONDS have=0
    while [ $((SECONDS - start)) -lt 300 ]; do
        have=$(alive_count "$1")
        [ "$have" -lt 0 ] && fail "kscore (pid $KS_PID) exited while $1 had fewer than $2 records"
        [ "$have" -ge "$2" ] && return 0
        sleep 0.2
    done
    fail "records in $1: $have after 300s, expected $2"
}

# the events: an open-loop stream over ~40 s, so that the kills land mid-stream
"$KSCORE" gen --stdout --count "$N" --keys "$KEYS" --seed 11 >"$WORK/events.jsonl" 2>/dev/null
"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --count "$N" --keys "$KEYS" --seed 11 \
    --rate $((N / 40)) 2>>"$WORK/gen.log" &
GEN=$!; PIDS+=("$GEN")

# the crash run (first, while the stream is live)
# KSCORE_TEST_CRASH_SETS: extra --set for the crash run only (e.g. state.changelog=false,
# which must make this test fail)
SETS="$(ks_sets "$IN" "$CRASH_OUT" "$DLQ" "$CRASH_GROUP") $common ${KSCORE_TEST_CRASH_SETS:-}"
for k in 1 2 3; do
    ks_start "crash$k" run -c "$CFG" $SETS
    wait_out "$CRASH_OUT" $((N * k / 5))
    kill -KILL "$KS_PID"
    wait "$KS_PID" 2>/dev/null || true
    log "killed run $k (kill -9) with $(end_offsets "$CRASH_OUT") outputs so far"
done
ks_start crash4 run -c "$CFG" $SETS; A=$KS_PID
wait_out "$CRASH_OUT" $((N * 4 / 5))
# its own transaction.instance_id: with delivery: exactly_once two instances on
# one host must not share one (the default is the host name); ignored otherwise
ks_start crash5 run -c "$CFG" $SETS --set transaction.instance_id=second; B=$KS_PID
wait_for "second instance assigned" 1 120 0.5 \
    bash -c "grep -c 'assigned [1-9]' '$WORK/kscore-crash5.log' || true"
ks_stop "$A" TERM
[ "$KS_RC" = 0 ] || fail "the first instance exited $KS_RC on SIGTERM"
log "rebalanced: instance 1 stopped, instance 2 carries on"
wait "$GEN" || fail "generator failed"
wait_ids "$CRASH_OUT" "$N" 300
ks_stop "$B" TERM
[ "$KS_RC" = 0 ] || fail "the second instance exited $KS_RC"
grep -h "restored" "$WORK"/kscore-crash*.log | sed 's/^/    /' >&2 || true

# the reference: one uninterrupted run over the whole topic
ks_start ref run -c "$CFG" $(ks_sets "$IN" "$REF_OUT" "$DLQ" "$REF_GROUP") $common
wait_ids "$REF_OUT" "$N" 300
ks_stop "$KS_PID" TERM
[ "$KS_RC" = 0 ] || fail "the reference run exited $KS_RC"

# offline, in file order, through the same code
"$KSCORE" predict -c "$CFG" <"$WORK/events.jsonl" 2>"$WORK/predict.log" |
    window_features_tsv |
    sort >"$WORK/offline.tsv"

window_features "$REF_OUT" | sort >"$WORK/ref.tsv"
window_features "$CRASH_OUT" | sort >"$WORK/crash.tsv"
[ "$(wc -l <"$WORK/ref.tsv")" -eq "$N" ] || fail "the reference has $(wc -l <"$WORK/ref.tsv") records, not $N"
cmp -s "$WORK/ref.tsv" "$WORK/offline.tsv" ||
    fail "online (uninterrupted) and offline window features differ: $(diff "$WORK/ref.tsv" "$WORK/offline.tsv" | head -4)"
sort -u "$WORK/crash.tsv" >"$WORK/crash-distinct.tsv"
cmp -s "$WORK/ref.tsv" "$WORK/crash-distinct.tsv" ||
    fail "features after crashes and rebalances differ from the uninterrupted run: $(diff "$WORK/ref.tsv" "$WORK/crash-distinct.tsv" | head -6)"
dups=$(($(wc -l <"$WORK/crash.tsv") - N))
case "${KSCORE_TEST_CRASH_SETS:-}" in
*exactly_once*) [ "$dups" = 0 ] || fail "$dups duplicate outputs with delivery: exactly_once" ;;
esac
nonzero=$(awk -F'\t' '$2 > 1' "$WORK/ref.tsv" | wc -l)
[ "$nonzero" -gt $((N / 4)) ] || fail "only $nonzero events saw earlier events of their key: the test proves little"
log "PASS: $N events, $KEYS keys: every output after 3 kill -9 and a rebalance ($dups duplicates, identical features) equals the uninterrupted run, which equals offline"

#!/usr/bin/env bash
# Window state restored from local snapshots (state.dir) and from the
# changelog alone: the fraud example with the issue's window features on a
# 4-partition topic keyed by user, one consumer group run in phases over a
# growing topic, each phase a fresh kscore process (1 worker, so that each
# start restores every partition once):
#
#   1  first run: nothing committed; SIGTERM writes a snapshot per partition
#   2  restart: every partition restored from its snapshot + the changelog tail
#   3  state dir wiped: every partition restored from the changelog alone
#   4  commits held back (commit.interval_ms = 1 h) while periodic snapshots
#      run every 200 ms over a live stream, then kill -9: the snapshots are
#      ahead of the committed offset
#   5  restart: the stale snapshots are refused (log line, metric) and the
#      events after the committed offset are processed again
#   6  two partitions' snapshots damaged (a flipped byte, a truncation) and
#      their .prev removed: refused, those two restored from the changelog
#
# Passes when every output record of the group (duplicates from the kill -9
# replays included) carries exactly the window features one uninterrupted
# run over the whole topic gives the same event, and each phase restored
# from the source it should have (kscore's "restored ... (K from a snapshot)"
# and "snapshot ... not used (reason)" lines, kscore_window_* metrics).
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-6000}     # events per phase
KEYS=${KSCORE_TEST_KEYS:-300}
IN=$(topic rtx 4); DLQ=$(topic rdlq 1); OUT=$(topic rout 4); REF_OUT=$(topic rref 4)
GROUP=g-restore-$RUN_ID; REF_GROUP=g-rref-$RUN_ID
STATE=$WORK/state
windows_pipeline "$WORK/pipeline.yaml"
CFG=$WORK/pipeline.yaml
SETS="$(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set commit.interval_ms=500 --set workers=1
      --set kafka.consumer.session.timeout.ms=6000 --set state.dir=$STATE"
TOTAL=0

# produce N [gen args] : the next N events (ids e<TOTAL>...), keyed by user
produce() {
    gen --topic "$IN" --start "$TOTAL" --count "$1" --keys "$KEYS" --seed 11 "${@:2}"
    TOTAL=$((TOTAL + $1))
}

# wait_all TOPIC N : until TOPIC has outputs for N distinct ids, failing at
# once if the kscore started last has exited
wait_all() {
    local start=$SECONDS have=0
    while [ $((SECONDS - start)) -lt 240 ]; do
        kill -0 "$KS_PID" 2>/dev/null || fail "kscore (pid $KS_PID) exited before $1 had $2 ids"
        have=$(distinct_ids "$1")
        [ "$have" -ge "$2" ] && return 0
        sleep 1
    done
    fail "distinct ids in $1: $have after 240 s, expected $2"
}

# phase NAME [--set ...] : kscore over everything produced so far, then SIGTERM
phase() {
    local name=$1
    ks_start "$name" run -c "$CFG" $SETS "${@:2}"
    wait_all "$OUT" "$TOTAL"
    wait_for "phase $name: group $GROUP committed to the end" 1 120 1 committed_at_end "$GROUP" "$IN"
    ks_stop "$KS_PID" TERM
    [ "$KS_RC" = 0 ] || fail "phase $name: kscore exited $KS_RC"
}

# restores NAME : "<partitions restored> <from a snapshot>" of a phase's log
restores() {
    sed -n 's/.*restored [0-9]* keys of \([0-9]*\) partition(s) (\([0-9]*\) from a snapshot).*/\1 \2/p' \
        "$WORK/kscore-$1.log" | awk '{ p += $1; s += $2 } END { print p + 0, s + 0 }'
}
# refused NAME REASON : how many snapshots a phase refused for REASON
refused() { grep -c "not used ($2)" "$WORK/kscore-$1.log" || true; }
snaps() { find "$STATE" -name '*.snap' 2>/dev/null | wc -l; }

produce "$N"
phase p1
check_committed_at_end "$GROUP" "$IN"
[ "$(snaps)" = 4 ] || fail "after a clean stop: $(snaps) snapshot files, expected 4 ($(find "$STATE" | tr '\n' ' '))"
log "1: $TOTAL events; stopped with a snapshot per partition"

produce "$N"
phase p2
[ "$(restores p2)" = "4 4" ] || fail "phase 2 restored (partitions, from a snapshot) = $(restores p2), expected 4 4"
log "2: restored 4 partitions from their snapshots: $(grep -o 'restored .* in [0-9.]* s' "$WORK/kscore-p2.log" | tr '\n' ';')"

rm -rf "$STATE"
produce "$N"
phase p3
[ "$(restores p3)" = "4 0" ] || fail "phase 3 (state dir wiped) restored $(restores p3), expected 4 0"
[ "$(refused p3 missing)" = 4 ] || fail "phase 3: $(refused p3 missing) 'missing' lines, expected 4"
log "3: state dir wiped: restored 4 partitions from the changelog alone"

# 4: a live stream, commits held back, snapshots every 200 ms, then kill -9
"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --start "$TOTAL" --count "$N" --keys "$KEYS" \
    --seed 11 --rate $((N / 12)) 2>>"$WORK/gen.log" &
GEN=$!; PIDS+=("$GEN")
TOTAL=$((TOTAL + N))
ks_start p4 run -c "$CFG" $SETS --set commit.interval_ms=3600000 --set state.snapshot_interval_ms=200
URL=$(metrics_url "$WORK/kscore-p4.log" 30)
written_now() { metric_sum "$URL" kscore_window_snapshots_written_total | cut -d. -f1; }
wait_for "snapshots written while the stream runs" 12 90 0.5 written_now
written=$(metric_sum "$URL" kscore_window_snapshots_written_total)
kill -KILL "$KS_PID"; wait "$KS_PID" 2>/dev/null || true
wait "$GEN" || fail "generator failed"
log "4: killed (kill -9) after $written periodic snapshots, commits held back"

phase p5
stale=$(refused p5 stale)
[ "$stale" -ge 1 ] || fail "phase 5: no snapshot refused as stale: $(grep -h 'snapshot' "$WORK/kscore-p5.log" | head -5)"
log "5: $stale stale snapshot(s) refused; restored $(restores p5) (partitions, from a snapshot)"

# 6: damage two partitions' snapshots; the others stay good
f0=$(find "$STATE" -name '*-0.snap'); f1=$(find "$STATE" -name '*-1.snap')
[ -f "$f0" ] && [ -f "$f1" ] || fail "no snapshots of partitions 0 and 1 after phase 5"
python3 - "$f0" "$f1" <<'PY'
import os, sys
a, b = sys.argv[1], sys.argv[2]
d = bytearray(open(a, "rb").read()); d[len(d) // 2] ^= 0x5a; open(a, "wb").write(d)
os.truncate(b, os.path.getsize(b) // 2)
PY
rm -f "$f0.prev" "$f1.prev"
produce "$N"
phase p6
[ "$(refused p6 corrupt)" = 2 ] || fail "phase 6: $(refused p6 corrupt) snapshots refused as corrupt, expected 2"
[ "$(restores p6)" = "4 2" ] || fail "phase 6 restored $(restores p6), expected 4 2"
log "6: a flipped byte and a truncation refused; those partitions restored from the changelog"

# the reference: one uninterrupted run over the whole topic
ks_start ref run -c "$CFG" $(ks_sets "$IN" "$REF_OUT" "$DLQ" "$REF_GROUP") --set workers=2
wait_all "$REF_OUT" "$TOTAL"
ks_stop "$KS_PID" TERM
window_features "$REF_OUT" | sort >"$WORK/ref.tsv"
window_features "$OUT" | sort >"$WORK/phases.tsv"
[ "$(wc -l <"$WORK/ref.tsv")" -eq "$TOTAL" ] || fail "the reference has $(wc -l <"$WORK/ref.tsv") records, not $TOTAL"
sort -u "$WORK/phases.tsv" >"$WORK/phases-distinct.tsv"
cmp -s "$WORK/ref.tsv" "$WORK/phases-distinct.tsv" ||
    fail "features after snapshot/changelog restores differ from the uninterrupted run: $(diff "$WORK/ref.tsv" "$WORK/phases-distinct.tsv" | head -6)"
dups=$(($(wc -l <"$WORK/phases.tsv") - TOTAL))
[ "$dups" -gt 0 ] || fail "no replayed events after the kill -9: the stale case proved nothing"
nonzero=$(awk -F'\t' '$2 > 1' "$WORK/ref.tsv" | wc -l)
[ "$nonzero" -gt $((TOTAL / 4)) ] || fail "only $nonzero events saw earlier events of their key"
log "PASS: $TOTAL events, $KEYS keys, 6 phases (snapshot, changelog alone, stale and corrupt snapshots refused; $dups replays): every output's features equal the uninterrupted run's"

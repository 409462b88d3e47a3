#!/usr/bin/env bash
# One million window keys: the memory bound and the restore targets of
# issue 9. The fraud example with the issue's five window features (count,
# avg, count_distinct over 1h, time_since_last, max over 24h) runs over
# 1,000,000 events of 1,000,000 distinct users (4 partitions keyed by user,
# 2 workers), so its changelog holds a million keys. The restarts run one
# worker: with two, the first to join may take (and restore) every
# partition before a rebalance splits them, and each partition is restored
# twice.
#
#   memory      peak RSS (VmHWM) of the run that builds the state, and of
#               a restore, below 1 GB (KSCORE_TEST_MAX_RSS_MB)
#   changelog   with the state dir moved away, a restart restores the million
#               keys from the changelog alone in under 10 s
#               (KSCORE_TEST_MAX_RESTORE_S; the slower worker's time)
#   snapshot    a restart with the snapshots written at the last SIGTERM
#               restores the same keys faster than from the changelog
#
# Times come from kscore's "restored K keys of P partition(s) (S from a
# snapshot) with R changelog records in T s" lines. KSCORE_TEST_KEYS
# shrinks the run for a quick look.
source "$(dirname "$0")/lib.sh"
require_broker
KEYS=${KSCORE_TEST_KEYS:-1000000}
MAX_RSS_MB=${KSCORE_TEST_MAX_RSS_MB:-1024}
MAX_RESTORE_S=${KSCORE_TEST_MAX_RESTORE_S:-10}
IN=$(topic mtx 4); DLQ=$(topic mdlq 1); OUT=$(topic mout 4)
GROUP=g-million-$RUN_ID
STATE=$WORK/state
windows_pipeline "$WORK/pipeline.yaml"
CFG=$WORK/pipeline.yaml
SETS="$(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set state.dir=$STATE
      --set state.snapshot_interval_ms=0 --set batch.max_size=2000"

# the events: user u<i> once each, spread over 20 hours (within the largest
# window, so no key goes idle), keyed by user (murmur2, the partitioner
# kscore's keying check expects)
python3 - "$KEYS" >"$WORK/events.tsv" <<'PY'
import sys, random
rnd = random.Random(5)
cats = ["grocery", "online", "travel", "restaurant", "fuel"]
w = sys.stdout.write
for i in range(int(sys.argv[1])):
    s = i * 72000 // int(sys.argv[1])
    w('u%d\t{"id":"e%d","user_id":"u%d","amount":%.2f,"merchant_category":"%s","n_tx_24h":%d,'
      '"account_age_days":%d,"ts":"2026-01-01T%02d:%02d:%02dZ","payment":{"method":"card","country":"US"}}\n'
      % (i, i, i, rnd.uniform(1, 500), cats[i % 5], i % 30, 100 + i % 3000,
         s // 3600, s // 60 % 60, s % 60))
PY
t0=$SECONDS
kcat -b "$BROKERS" -P -t "$IN" -K '\t' -X partitioner=murmur2_random -X linger.ms=50 \
    -X batch.num.messages=10000 -z lz4 <"$WORK/events.tsv" || fail "kcat could not produce the events"
[ "$(end_offsets "$IN")" = "$KEYS" ] || fail "the input holds $(end_offsets "$IN") events, not $KEYS"
log "produced $KEYS events of $KEYS users in $((SECONDS - t0)) s"

hwm_mb() { awk '/^VmHWM/ { printf "%d\n", $2 / 1024 }' "/proc/$1/status"; }
rss_mb() { awk '/^VmRSS/ { printf "%d\n", $2 / 1024 }' "/proc/$1/status"; }

# restored NAME : "<keys> <partitions from a snapshot> <slowest worker's seconds> <records>"
restored() {
    sed -n 's/.*restored \([0-9]*\) keys of [0-9]* partition(s) (\([0-9]*\) from a snapshot) with \([0-9]*\) changelog records in \([0-9.]*\) s.*/\1 \2 \4 \3/p' \
        "$WORK/kscore-$1.log" | awk '{ k += $1; s += $2; r += $4; if ($3 > t) t = $3 }
                                    END { printf "%d %d %.2f %d\n", k, s, t, r }'
}
# restart NAME : starts kscore with one worker (KS_PID), waits for its restore line
restart() {
    ks_start "$1" run -c "$CFG" $SETS --set workers=1
    wait_log "$WORK/kscore-$1.log" "restored [0-9]* keys" 120 1
}

# 1. the state: one run over every event
t0=$SECONDS
ks_start build run -c "$CFG" $SETS --set workers=2
wait_for "group $GROUP committed to the end" 1 240 2 committed_at_end "$GROUP" "$IN"
build_hwm=$(hwm_mb "$KS_PID")
log "built the state of $KEYS keys in $((SECONDS - t0)) s; peak RSS $build_hwm MB"
ks_stop "$KS_PID" TERM
[ "$KS_RC" = 0 ] || fail "the first run exited $KS_RC"
grep -h 'snapshot of' "$WORK/kscore-build.log" | sed 's/^.*windows: /    /' >&2 || true
[ "$build_hwm" -lt "$MAX_RSS_MB" ] || fail "peak RSS $build_hwm MB with $KEYS keys, above $MAX_RSS_MB MB"

# 2. from the changelog alone
mv "$STATE" "$STATE.kept"
restart changelog
read -r keys snap secs records <<<"$(restored changelog)"
rss=$(rss_mb "$KS_PID"); hwm=$(hwm_mb "$KS_PID")
ks_stop "$KS_PID" TERM
log "changelog alone: $keys keys from $records records in $secs s; RSS $rss MB (peak $hwm MB)"
[ "$keys" = "$KEYS" ] || fail "restored $keys keys from the changelog, expected $KEYS"
[ "$snap" = 0 ] || fail "$snap partitions came from a snapshot with the state dir moved away"
awk -v s="$secs" -v m="$MAX_RESTORE_S" 'BEGIN { exit !(s < m) }' ||
    fail "restoring $KEYS keys from the changelog took $secs s, not under $MAX_RESTORE_S s"
[ "$hwm" -lt "$MAX_RSS_MB" ] || fail "peak RSS $hwm MB after restoring $KEYS keys, above $MAX_RSS_MB MB"

# 3. from the snapshots the last SIGTERM wrote
restart snapshot
read -r skeys ssnap ssecs srecords <<<"$(restored snapshot)"
shwm=$(hwm_mb "$KS_PID")
ks_stop "$KS_PID" TERM
log "snapshot: $skeys keys ($ssnap partitions from a snapshot, $srecords changelog records after them) in $ssecs s; peak RSS $shwm MB"
[ "$skeys" = "$KEYS" ] || fail "restored $skeys keys from snapshots, expected $KEYS"
[ "$ssnap" = 4 ] || fail "$ssnap partitions came from a snapshot, expected 4"
awk -v s="$ssecs" -v c="$secs" 'BEGIN { exit !(s < c) }' ||
    fail "the snapshot restore ($ssecs s) was not faster than the changelog's ($secs s)"
log "PASS: $KEYS keys: peak RSS $build_hwm MB building, $hwm MB restoring; restore from the changelog $secs s, from snapshots $ssecs s"

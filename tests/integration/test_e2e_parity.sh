#!/usr/bin/env bash
# Evidence 1: 100,000 events over 4 partitions -> exactly 100,000 output
# records, each equal to what `kscore predict` computes offline for the same
# event (same prediction bits: numbers are printed round-trip exact, so equal
# text means equal bits). Also reports the throughput seen.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-100000}
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1); GROUP=g-parity-$RUN_ID

log "producing $N events to $IN"
gen --topic "$IN" --count "$N" --seed 7 --keys 5000
log "scoring the same events offline"
"$KSCORE" gen --stdout --count "$N" --seed 7 --keys 5000 2>/dev/null |
    "$KSCORE" predict -c "$EXAMPLE" >"$WORK/offline.jsonl" 2>"$WORK/offline-dlq.jsonl" ||
    fail "kscore predict failed"

ks_start run run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP")
wait_count "$OUT" "$N" 300
ks_stop "$KS_PID" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "kscore run exited $rc after SIGTERM"

consume "$OUT" "$WORK/online.jsonl"
have=$(wc -l <"$WORK/online.jsonl")
[ "$have" -eq "$N" ] || fail "expected exactly $N output records, got $have"
[ "$(count "$DLQ")" -eq 0 ] || fail "unexpected dead letters"

# id, prediction, probabilities, score, label: everything but the times
proj='[.id, .user_id, .amount, .prediction, .probabilities, .score, .confidence, .label, .model_version] | tostring'
jq -r "$proj" "$WORK/online.jsonl" | sort >"$WORK/online.key"
jq -r "$proj" "$WORK/offline.jsonl" | sort >"$WORK/offline.key"
uniq_ids=$(jq -r .id "$WORK/online.jsonl" | sort -u | wc -l)
[ "$uniq_ids" -eq "$N" ] || fail "expected $N distinct ids, got $uniq_ids"
if ! cmp -s "$WORK/online.key" "$WORK/offline.key"; then
    diff "$WORK/online.key" "$WORK/offline.key" | head -5 >&2
    fail "online and offline predictions differ"
fi

# throughput from the records' own prediction times
jq -r .prediction_time "$WORK/online.jsonl" | sort | sed -n '1p;$p' >"$WORK/span"
first=$(date -d "$(sed -n 1p "$WORK/span")" +%s.%N); last=$(date -d "$(sed -n 2p "$WORK/span")" +%s.%N)
rate=$(awk -v n="$N" -v a="$first" -v b="$last" 'BEGIN { d = b - a; printf "%.0f", (d > 0 ? n / d : 0) }')
log "PASS: $N records, identical to offline predict; throughput ~$rate events/s (workers: $(awk '/^workers:/ {print $2}' "$EXAMPLE"))"
echo "throughput_events_per_s=$rate" >"$WORK/result"

#!/usr/bin/env bash
# kscore backtest --topic T --from A --to B: two batches of events are
# produced, the range covers only the first; the backtest reads exactly those
# records (every partition) and reports what the same backtest over a file of
# them reports (metrics.json identical).
source "$(dirname "$0")/lib.sh"
require_broker
IN=$(topic bt-tx 3)
iso() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
FROM=$(iso)
gen --topic "$IN" --count 2000 --seed 8
wait_count "$IN" 2000 60
# the range ends 1 ms after the first batch's last record timestamp; the
# second batch must start later than that (wait for the clock, bounded)
LAST=$(kcat -b "$BROKERS" -C -t "$IN" -o beginning -e -q -f '%T\n' | sort -n | tail -1)
TO=$(date -u -d "@$(((LAST + 1) / 1000)).$(printf %03d $(((LAST + 1) % 1000)))" +%Y-%m-%dT%H:%M:%S.%3NZ)
for i in $(seq 100); do [ "$(date +%s%3N)" -gt $((LAST + 1)) ] && break; sleep 0.01; done
gen --topic "$IN" --count 500 --seed 9
wait_count "$IN" 2500 60
consume "$IN" "$WORK/all.jsonl"
# the first batch: the records with timestamps before TO
kcat -b "$BROKERS" -C -t "$IN" -o beginning -e -q -f '%T %s\n' |
    awk -v to="$(date -u -d "$TO" +%s%3N)" '$1 < to { sub(/^[0-9]+ /, ""); print }' >"$WORK/first.jsonl"
[ "$(wc -l <"$WORK/first.jsonl")" = 2000 ] || fail "expected 2000 records before $TO, got $(wc -l <"$WORK/first.jsonl")"
jq -r '.id' "$WORK/all.jsonl" | awk 'BEGIN { srand(8) } { printf "{\"id\":\"%s\",\"label\":%d}\n", $1, rand() < 0.2 }' \
    >"$WORK/labels.jsonl"

"$KSCORE" backtest -c "$EXAMPLE" --set "kafka.bootstrap.servers=$BROKERS" --topic "$IN" \
    --from "$FROM" --to "$TO" --labels "$WORK/labels.jsonl" --out "$WORK/range" \
    2>"$WORK/range.log" || fail "backtest --topic: $(cat "$WORK/range.log")"
grep -q "read 2000 records of $IN" "$WORK/range.log" || fail "$(cat "$WORK/range.log")"
"$KSCORE" backtest -c "$EXAMPLE" --events "$WORK/first.jsonl" --labels "$WORK/labels.jsonl" \
    --out "$WORK/file" 2>"$WORK/file.log" || fail "backtest --events: $(cat "$WORK/file.log")"
jq -e '.joined == 2000' "$WORK/range/metrics.json" >/dev/null || fail "joined: $(jq .joined "$WORK/range/metrics.json")"
cmp -s <(jq -S .models "$WORK/range/metrics.json") <(jq -S .models "$WORK/file/metrics.json") ||
    fail "the topic range and the file give different metrics"
log "PASS: the range [$FROM, $TO) is the first 2000 records; same metrics as from a file"

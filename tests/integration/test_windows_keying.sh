#!/usr/bin/env bash
# Window state is per partition, so the input must be keyed by the window
# key. 2,000 events keyed by user (kscore gen) plus 40 events of user u1
# forced into each of the 4 partitions: the events outside u1's partition are
# counted in kscore_window_wrong_partition_total (exactly 30) and warned
# about; the correctly keyed ones are not.
source "$(dirname "$0")/lib.sh"
require_broker
IN=$(topic wktx 4); OUT=$(topic wkout 4); DLQ=$(topic wkdlq 1); GROUP=g-wkey-$RUN_ID
cp "$ROOT/examples/basic/model.json" "$WORK/"
python3 - "$EXAMPLE" "$WORK/pipeline.yaml" <<'PY'
import sys
s = open(sys.argv[1]).read().replace("features:\n", """windows: {time: ts}
features:
  - {name: tx_count_1h, window: {key: user_id, agg: count, size: 1h}}
""", 1)
open(sys.argv[2], "w").write(s)
PY
gen --topic "$IN" --count 2000 --seed 4
"$KSCORE" gen --stdout --count 40 --seed 9 --start 100000 2>/dev/null |
    jq -c '.user_id = "u1"' >"$WORK/u1.jsonl"
for p in 0 1 2 3; do
    sed -n "$((p * 10 + 1)),$((p * 10 + 10))p" "$WORK/u1.jsonl" |
        kcat -b "$BROKERS" -P -t "$IN" -p "$p" -k u1 || fail "cannot produce to partition $p"
done
ks_start run run -c "$WORK/pipeline.yaml" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP")
wait_count "$OUT" 2040 120
wrong=$(metric_sum "$(metrics_url "$WORK/kscore-run.log" 30)" kscore_window_wrong_partition_total)
ks_stop "$KS_PID" TERM
[ "$wrong" = 30 ] || fail "kscore_window_wrong_partition_total is '$wrong', expected 30 (u1's 10 in its own partition are keyed right)"
grep -q "hashes to partition" "$WORK/kscore-run.log" || fail "no keying warning in the log"
log "PASS: the 30 events outside their key's partition were counted and warned about, none of the 2,010 others"

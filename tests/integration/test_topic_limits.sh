#!/usr/bin/env bash
# Topic size limits (issue 8): an output topic created with
# max.message.bytes=20000, far below the producer's default batch (1 MB).
# One event in 50 carries a 25,000-byte field that its output record carries
# too (output.carry_fields), so exactly those outputs are too large for the
# topic. The broker refuses a batch larger than the topic's limit as a whole,
# every record in it, so kscore must keep its batches under the limit (it
# reads max.message.bytes at start-up and caps batch.size) for the other
# events to go through. Checked: exactly the oversized events are
# dead-lettered (class delivery, stage output, headers naming the input
# event), every other event has exactly one output, kscore exits 0 and the
# committed offsets reach the end.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-4000}
IN=$(topic limits-in 4); DLQ=$(topic limits-dlq 1); GROUP=g-limits-$RUN_ID
OUT=limits-out-$RUN_ID
"$ROOT/scripts/kafka" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" \
    --create --topic "$OUT" --partitions 4 --replication-factor 1 \
    --config max.message.bytes=20000 >"$WORK/topic.log" 2>&1 || fail "cannot create $OUT"

# the events, keyed by id; e7, e57, e107, ... carry the large field
"$KSCORE" gen --stdout --count "$N" --seed 5 2>>"$WORK/gen.log" >"$WORK/events.jsonl" ||
    fail "kscore gen failed"
python3 - "$WORK/events.jsonl" "$WORK/input.tsv" "$WORK/fat.txt" <<'PY' || fail "cannot write the input"
import json, sys
fat = []
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for i, line in enumerate(src):
        ev = json.loads(line)
        if i % 50 == 7:
            ev["pad"] = "x" * 25000
            fat.append(ev["id"])
        out.write(ev["id"] + "\t" + json.dumps(ev, separators=(",", ":")) + "\n")
open(sys.argv[3], "w").write("\n".join(sorted(fat)) + "\n")
PY
FAT=$(wc -l <"$WORK/fat.txt")
kcat -b "$BROKERS" -P -t "$IN" -K $'\t' -X message.max.bytes=1000000 -l "$WORK/input.tsv" ||
    fail "cannot produce the input"
wait_count "$IN" "$N" 30

ks_start run run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") \
    --set workers=1 --set input.fields.pad.type=string --set 'input.fields.pad.default=' \
    --set output.carry_fields=user_id,amount,pad
wait_count "$OUT" $((N - FAT)) 120
wait_count "$DLQ" "$FAT" 60
wait_for "committed offsets at the end" 1 60 1 committed_at_end "$GROUP" "$IN"
ks_stop "$KS_PID" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "kscore run exited $rc"
grep -q "batch.size .* capped to 20000 bytes" "$WORK/kscore-run.log" ||
    fail "kscore did not cap batch.size to the output topic's max.message.bytes"

# every event but the large ones has exactly one output, the large ones none
consume "$OUT" "$WORK/out.txt" '%s\n'
grep -o '"id":"e[0-9]*"' "$WORK/out.txt" | cut -d'"' -f4 | sort >"$WORK/out-ids.txt"
dups=$(uniq -d "$WORK/out-ids.txt" | wc -l)
[ "$dups" -eq 0 ] || fail "$dups ids have more than one output"
cut -f1 "$WORK/input.tsv" | sort | comm -23 - "$WORK/fat.txt" >"$WORK/want-ids.txt"
cmp -s "$WORK/out-ids.txt" "$WORK/want-ids.txt" ||
    fail "the outputs' ids differ from the events' without the large ones: $(diff "$WORK/want-ids.txt" "$WORK/out-ids.txt" | head -5 | tr '\n' ' ')"

# the dead letters are exactly the large events', saying why and where from
consume "$IN" "$WORK/in.tsv" '%p\t%o\t%k\n'
consume "$DLQ" "$WORK/dlq.tsv" '%h\n'
awk -F'\t' -v topic="$IN" '
    NR == FNR { id[$1 "/" $2] = $3; next }
    {
        n = split($0, hs, ","); delete h
        for (i = 1; i <= n; i++) { eq = index(hs[i], "="); h[substr(hs[i], 1, eq - 1)] = substr(hs[i], eq + 1) }
        where = h["__kscore.errors.partition"] "/" h["__kscore.errors.offset"]
        if (h["__kscore.errors.topic"] != topic || !(where in id)) { print "BAD no source event at " where; next }
        if (h["__kscore.errors.class"] != "delivery" || h["__kscore.errors.stage"] != "output")
            print "BAD class/stage " h["__kscore.errors.class"] "/" h["__kscore.errors.stage"] " at " where
        if (h["__kscore.errors.message"] !~ /refused/) print "BAD message: " h["__kscore.errors.message"]
        print id[where]
    }' "$WORK/in.tsv" "$WORK/dlq.tsv" >"$WORK/dlq-ids.txt"
if grep -q '^BAD' "$WORK/dlq-ids.txt"; then
    grep '^BAD' "$WORK/dlq-ids.txt" | head -5 >&2
    fail "dead letters without the right headers"
fi
sort "$WORK/dlq-ids.txt" | cmp -s - "$WORK/fat.txt" ||
    fail "the dead letters are not exactly the $FAT large events': $(sort "$WORK/dlq-ids.txt" | diff "$WORK/fat.txt" - | head -5 | tr '\n' ' ')"
check_committed_at_end "$GROUP" "$IN"
log "PASS: $((N - FAT)) outputs, exactly the $FAT oversized events dead-lettered; batch.size capped to 20000"

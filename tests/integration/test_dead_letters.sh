#!/usr/bin/env bash
# Evidence 2: 1,000 malformed events (bad JSON, wrong types, missing required
# fields, invalid UTF-8) mixed into 100,000 -> 99,000 predictions and exactly
# 1,000 dead-letter records carrying the original bytes and key and headers
# that say why and where from.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-100000}
BAD=$((N / 100))
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 2); GROUP=g-dlq-$RUN_ID

gen --topic "$IN" --count "$N" --seed 11 --malformed 0.01
ks_start run run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP")
wait_count "$OUT" $((N - BAD)) 300
wait_count "$DLQ" "$BAD" 60
ks_stop "$KS_PID" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "kscore run exited $rc"

[ "$(count "$OUT")" -eq $((N - BAD)) ] || fail "expected $((N - BAD)) predictions, got $(count "$OUT")"
[ "$(count "$DLQ")" -eq "$BAD" ] || fail "expected $BAD dead letters, got $(count "$DLQ")"

# The original records, keyed by partition/offset, and the dead letters with
# the source coordinates from their headers: values and keys must match.
consume "$IN" "$WORK/input.tsv" '%p\t%o\t%k\t%s\n'
consume "$DLQ" "$WORK/dlq.tsv" '%k\t%h\t%s\n'
awk -F'\t' -v topic="$IN" '
    NR == FNR { key[$1 "/" $2] = $3; val[$1 "/" $2] = $4; next }
    {
        n = split($2, hs, ","); delete h
        for (i = 1; i <= n; i++) { eq = index(hs[i], "="); h[substr(hs[i], 1, eq - 1)] = substr(hs[i], eq + 1) }
        where = h["__kscore.errors.partition"] "/" h["__kscore.errors.offset"]
        if (h["__kscore.errors.topic"] != topic) { print "bad topic header: " $2; bad++ }
        if (!(where in val)) { print "no source record at " where; bad++; next }
        if (val[where] != $3) { print "value differs at " where; bad++ }
        if (key[where] != $1) { print "key differs at " where; bad++ }
        cls[h["__kscore.errors.class"]]++
        if (h["__kscore.errors.message"] == "") { print "empty message header"; bad++ }
    }
    END {
        for (c in cls) printf "class %s: %d\n", c, cls[c] > "/dev/stderr"
        exit bad > 0
    }' "$WORK/input.tsv" "$WORK/dlq.tsv" >"$WORK/check.txt" 2>"$WORK/classes.txt" ||
    { head -5 "$WORK/check.txt" >&2; fail "dead-letter records do not match their sources"; }
for c in deserialization type_mismatch missing_field; do
    grep -q "class $c:" "$WORK/classes.txt" || fail "no dead letter of class $c"
done
log "PASS: $((N - BAD)) predictions, $BAD dead letters with original bytes; $(tr '\n' ' ' <"$WORK/classes.txt")"

#!/usr/bin/env bash
# delivery: exactly_once with a shadow model (issue 11): shadow records are
# produced by the worker's transactional producer, inside the transaction of
# the batch they belong to, so they are committed with the outputs and the
# input offsets, or aborted with them. 20,000 events (1% malformed) over
# ~40 s; a shadow deployment of a candidate (v2) with shadow.topic set;
# kscore killed with SIGKILL twice mid-stream and restarted. A
# read_committed reader sees
#   - exactly one output per good input id, one dead letter per bad one
#     (lib.sh check_exact, as in test_exactly_once.sh);
#   - exactly one shadow record per good input id, for exactly the ids of
#     the outputs, each with shadow_of = the champion (fraud-lr-1),
#     model_version = v2, variant = shadow;
#   - each shadow record's probabilities equal `kscore model predict` of v2
#     on the features the champion scored for that event (the feature log,
#     sample_rate 1, also written in the transactions).
# One broker is enough for this point (the broker-side faults are
# test_exactly_once.sh's): it runs on the suite's broker.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-20000}
MALFORMED=0.01
N_BAD=$(awk -v n="$N" -v f=$MALFORMED 'BEGIN { printf "%d", n * f + 0.5 }')
IN=$(topic stx 4); OUT=$(topic sscores 4); DLQ=$(topic sdlq 1); DEP=$(topic sdeploy 1)
SHADOW=$(topic sshadow 4); FLOG=$(topic sfeatures 4)
M=$ROOT/examples/basic/model.json
jq -c '.version = "v2" | .linear.intercept[0] += 0.75' "$M" >"$WORK/v2.json"
SETS="$(ks_sets "$IN" "$OUT" "$DLQ" "g-eos-shadow-$RUN_ID") --set delivery=exactly_once
  --set transaction.instance_id=shadow --set commit.interval_ms=200
  --set transaction.timeout_ms=20000 --set kafka.consumer.session.timeout.ms=6000
  --set kafka.consumer.heartbeat.interval.ms=500 --set workers=2
  --set model.deployments_topic=$DEP --set shadow.topic=$SHADOW
  --set feature_log.topic=$FLOG --set feature_log.sample_rate=1"
"$KSCORE" deploy -c "$EXAMPLE" $SETS --model "$WORK/v2.json" --version v2 --shadow \
    >>"$WORK/deploy.log" 2>&1 || fail "kscore deploy --shadow: $(tail -1 "$WORK/deploy.log")"
txn_ready "$EXAMPLE" $SETS

"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --count "$N" --rate $((N / 40)) \
    --malformed $MALFORMED --seed 8 2>>"$WORK/gen.log" &
GEN=$!; PIDS+=("$GEN")
# kill_mid K PREDICTED : once run K has had PREDICTED outputs acknowledged
# (its own metric: fast, unlike a read_committed count, which waits for open
# transactions), kill -9 it; the stream must still be flowing then
kill_mid() {
    local url
    url=$(metrics_url "$WORK/kscore-run$1.log" 60)
    wait_for "outputs acknowledged in run $1" "$2" 120 0.2 metric_sum "$url" kscore_events_predicted_total
    grep -q "(shadow v2) applied" "$WORK/kscore-run$1.log" || fail "run $1 did not apply the shadow deployment"
    kill -0 "$GEN" 2>/dev/null || fail "kill $1 would land after the stream ended"
    kill -KILL "$KS_PID"
    wait "$KS_PID" 2>/dev/null || true
    log "killed run $1 (kill -9) after $2 acknowledged outputs, mid-stream"
}
ks_start run1 run -c "$EXAMPLE" $SETS
kill_mid 1 $((N / 4))
ks_start run2 run -c "$EXAMPLE" $SETS
kill_mid 2 $((N / 4))
ks_start final run -c "$EXAMPLE" $SETS
URL=$(metrics_url "$WORK/kscore-final.log" 60)
wait "$GEN" || fail "generator failed"
wait_for "committed records" "$N" 300 1 committed_total "$OUT" "$DLQ"
dropped=$(metric_sum "$URL" kscore_shadow_records_dropped_total)
ks_stop "$KS_PID" TERM
[ "$KS_RC" = 0 ] || fail "final run exited $KS_RC"
[ "$dropped" = 0 ] || fail "the final run dropped $dropped shadow record(s) (a full producer queue?)"
check_exact "$OUT" "$DLQ"
GOOD=$((N - N_BAD))

# shadow records: read_committed, one per output id
records "$SHADOW" '%s\n' 45 >"$WORK/shadow.jsonl"
shadows=$(wc -l <"$WORK/shadow.jsonl")
grep -o '"id":"[^"]*"' "$WORK/out.jsonl" | sort >"$WORK/out-ids.txt"
grep -o '"id":"[^"]*"' "$WORK/shadow.jsonl" | sort >"$WORK/shadow-ids.txt"
log "read_committed: $shadows shadow records ($(sort -u "$WORK/shadow-ids.txt" | wc -l) distinct ids) for $GOOD good events"
[ "$(sort -u "$WORK/shadow-ids.txt" | wc -l)" = "$shadows" ] ||
    fail "$((shadows - $(sort -u "$WORK/shadow-ids.txt" | wc -l))) shadow record(s) seen twice"
cmp -s "$WORK/out-ids.txt" "$WORK/shadow-ids.txt" ||
    fail "the shadow records' ids differ from the outputs' ($shadows shadow records, $(wc -l <"$WORK/out-ids.txt") outputs)"
bad=$(jq -c 'select(.shadow_of != "fraud-lr-1" or .model_version != "v2" or .variant != "shadow")' \
    "$WORK/shadow.jsonl" | head -3)
[ -z "$bad" ] || fail "shadow records not of v2 shadowing fraud-lr-1: $bad"
grep -q '"variant":"shadow"' "$WORK/out.jsonl" && fail "a shadow record reached the output topic"
# the kills must have left shadow records of aborted transactions in the log
# (which read_committed skips): otherwise this test proves nothing
written=$(timeout 45 kcat -b "$BROKERS" -C -t "$SHADOW" -o beginning -e -q \
    -X isolation.level=read_uncommitted -f 'x\n' 2>/dev/null | wc -l || true)
[ "$written" -gt "$shadows" ] ||
    fail "the shadow topic holds $written records, all committed: the kills aborted no transaction with shadow records"
log "the shadow topic holds $written records, $((written - shadows)) of them in aborted transactions"

# the candidate's scores against `kscore model predict` of v2 on the same
# features (the feature log's rows, by the model's feature names)
records "$FLOG" '%s\n' 45 >"$WORK/features.jsonl"
[ "$(grep -o '"id":"[^"]*"' "$WORK/features.jsonl" | sort -u | wc -l)" = "$GOOD" ] ||
    fail "the feature log has rows of $(grep -o '"id":"[^"]*"' "$WORK/features.jsonl" | sort -u | wc -l) ids, expected $GOOD"
jq -r --slurpfile m "$WORK/v2.json" '$m[0].feature_names as $f
    | [.id] + [.features[$f[]] | if . == null then "" else tostring end] | join(",")' \
    "$WORK/features.jsonl" | sort -u >"$WORK/rows.csv"
{ jq -r '.feature_names | @csv' "$WORK/v2.json" | tr -d '"'; cut -d, -f2- "$WORK/rows.csv"; } |
    "$KSCORE" model predict "$WORK/v2.json" >"$WORK/predict.csv" 2>"$WORK/predict.err" ||
    fail "kscore model predict: $(tail -1 "$WORK/predict.err")"
paste -d' ' <(cut -d, -f1 "$WORK/rows.csv") <(tr ',' ' ' <"$WORK/predict.csv") |
    sort >"$WORK/offline.txt"
jq -r '"\(.id) \(.probabilities["0"]) \(.probabilities["1"])"' "$WORK/shadow.jsonl" | sort >"$WORK/online.txt"
[ "$(wc -l <"$WORK/offline.txt")" = "$GOOD" ] || fail "$(wc -l <"$WORK/offline.txt") offline predictions for $GOOD rows"
# the same numbers: both print the shortest text that reads back as the double
diff <(awk '{ printf "%s %.17g %.17g\n", $1, $2, $3 }' "$WORK/offline.txt") \
     <(awk '{ printf "%s %.17g %.17g\n", $1, $2, $3 }' "$WORK/online.txt") >"$WORK/score-diff.txt" ||
    fail "$(grep -c '^<' "$WORK/score-diff.txt") shadow score(s) differ from kscore model predict of v2: $(head -4 "$WORK/score-diff.txt" | tr '\n' ' ')"
log "PASS: after 2 kill -9, read_committed sees one output and one shadow record per good event ($GOOD), $N_BAD dead letters; every shadow score equals kscore model predict of v2"

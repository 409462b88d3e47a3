#!/usr/bin/env bash
# Online evaluation with two instances in one consumer group, against the
# real broker. Instances A and B (2 workers each, a store of their own, an
# ephemeral metrics port each) share a 4-partition input topic; once the
# group has settled (2 partitions each), 20,000 events are scored; which
# instance scored an event is known from the input partitions each one holds
# (/status.json), checked against each one's kscore_events_predicted_total.
# Then the labels of 14,000 of the events arrive, shuffled and keyed by id,
# on a 3-partition labels topic: every instance reads every label, so each
# label is joined by the instance that holds its prediction and counted
# `unknown` by the other: joined adds up to exactly the labels sent, each
# instance joins exactly the labels of its own events, nothing is duplicate
# or late (and the group did not rebalance meanwhile). B is restarted
# (SIGTERM, same store): it resumes each labels partition at the position its
# store kept (the log line names the offsets, equal to the partitions' ends)
# and the other 6,000 labels, for predictions made before the restart, are
# all joined: A's joins equal the events it scored, B's two processes' joins
# equal the events B scored, B reads no label twice (no duplicate).
# evaluation.topic holds exactly one record per label (no id twice), each
# with the score the output carried and the label sent; each instance's
# kscore_eval_auc, _log_loss and _brier equal scikit-learn's on the pairs it
# joined (A: all its pairs; B: before and after the restart), to 1e-9.
source "$(dirname "$0")/lib.sh"
require_broker
N=20000
N1=14000
IN=$(topic evm-tx 4); OUT=$(topic evm-scores 4); DLQ=$(topic evm-dlq 1)
LABELS=$(topic evm-labels 3); JOINED=$(topic evm-joined 2)
GROUP=g-evm-$RUN_ID
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || "$ROOT/scripts/python-env" >&2 || fail "scripts/python-env"
SETS=($(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set workers=2
      --set "evaluation.labels_topic=$LABELS" --set "evaluation.topic=$JOINED")

# labels NAME URL OUTCOME : that instance's kscore_eval_labels_total{outcome}
labels() { metric_sum "$1" kscore_eval_labels_total "outcome=\"$2\""; }
# parts URL : the input partitions the instance's workers hold, "0,2"
parts() {
    http_get "$1/status.json" |
        jq -r --arg t "$IN" '[.kafka.partitions[] | select(.topic == $t) | .partition] | sort | join(",")'
}
# settled : 1 when A and B hold 2 input partitions each, 4 in all
settled() {
    local a b
    a=$(parts "$URL_A"); b=$(parts "$URL_B")
    [ "$(echo "$a" | tr ',' '\n' | grep -c .)" = 2 ] && [ "$(echo "$b" | tr ',' '\n' | grep -c .)" = 2 ] &&
        [ "$(echo "$a,$b" | tr ',' '\n' | sort -u | wc -l)" = 4 ] && echo 1 || echo 0
}
joined_sum() {
    local s=0 u
    for u in "$@"; do s=$((s + $(labels "$u" joined))); done
    echo "$s"
}
read_by() { echo $(($(labels "$1" joined) + $(labels "$1" unknown))); }
# produce_labels FILE : the labels, keyed by id (so spread over the labels
# partitions; without a key the producer's sticky partitioner may put a
# fast burst in one)
produce_labels() {
    jq -rc '.id + "\t" + tojson' "$1" | kcat -b "$BROKERS" -P -t "$LABELS" -K $'\t' ||
        fail "cannot produce labels"
}
rebalances() { echo "$(metric_sum "$URL_A" kscore_rebalances_total) $(metric_sum "$URL_B" kscore_rebalances_total)"; }

ks_start A run -c "$EXAMPLE" "${SETS[@]}" --set "evaluation.store=$WORK/evalA.log"
PID_A=$KS_PID
ks_start B run -c "$EXAMPLE" "${SETS[@]}" --set "evaluation.store=$WORK/evalB.log"
PID_B=$KS_PID
URL_A=$(metrics_url "$WORK/kscore-A.log" 30)
URL_B=$(metrics_url "$WORK/kscore-B.log" 30)
wait_for "instances holding 2 input partitions each" 1 120 0.5 settled
PARTS_A=$(parts "$URL_A"); PARTS_B=$(parts "$URL_B")
REBALANCES=$(rebalances)
log "A holds input partitions $PARTS_A, B holds $PARTS_B"

gen --topic "$IN" --count "$N" --seed 7
wait_count "$OUT" "$N" 300
wait_for "events predicted by A and B" "$N" 120 0.5 eval \
    'echo $(($(metric_sum "$URL_A" kscore_events_predicted_total) + $(metric_sum "$URL_B" kscore_events_predicted_total)))'
PRED_A=$(metric_sum "$URL_A" kscore_events_predicted_total)
PRED_B=$(metric_sum "$URL_B" kscore_events_predicted_total)
consume "$OUT" "$WORK/scores.jsonl"
kcat -b "$BROKERS" -C -t "$IN" -o beginning -e -q -f '%p %s\n' 2>/dev/null |
    sed -nE 's/^([0-9]+) .*"id":"([^"]*)".*/\1 \2/p' >"$WORK/in-parts.txt" || fail "cannot consume $IN"
[ "$(wc -l <"$WORK/in-parts.txt")" = "$N" ] || fail "$(wc -l <"$WORK/in-parts.txt") input events, expected $N"
# the ids each instance scored: those of its input partitions
awk -v pa=",$PARTS_A," 'index(pa, "," $1 ",") { print $2 }' "$WORK/in-parts.txt" | sort >"$WORK/ids-A.txt"
awk -v pb=",$PARTS_B," 'index(pb, "," $1 ",") { print $2 }' "$WORK/in-parts.txt" | sort >"$WORK/ids-B.txt"
[ "$(wc -l <"$WORK/ids-A.txt")" = "$PRED_A" ] && [ "$(wc -l <"$WORK/ids-B.txt")" = "$PRED_B" ] ||
    fail "A predicted $PRED_A, B $PRED_B; their partitions hold $(wc -l <"$WORK/ids-A.txt") and $(wc -l <"$WORK/ids-B.txt") events"
[ "$(rebalances)" = "$REBALANCES" ] || fail "the group rebalanced while scoring ($REBALANCES -> $(rebalances))"
log "A scored $PRED_A events, B $PRED_B"

# labels drawn with the model's own probability, shuffled, in two batches
split_labels "$WORK/scores.jsonl" 7 "$N1"
# in_batch BATCH IDS : labels of BATCH whose id is in IDS
in_batch() { jq -r .id "$WORK/labels$1.jsonl" | sort | comm -12 - "$WORK/ids-$2.txt" | wc -l; }
L1_A=$(in_batch 1 A); L1_B=$(in_batch 1 B); L2_A=$(in_batch 2 A); L2_B=$(in_batch 2 B)

produce_labels "$WORK/labels1.jsonl"
partition_end_offsets "$LABELS" >"$WORK/labels-ends1.txt"
awk '$2 == 0 { exit 1 }' "$WORK/labels-ends1.txt" || fail "a labels partition got no label: $(tr '\n' ' ' <"$WORK/labels-ends1.txt")"
wait_for "labels read by A" "$N1" 120 0.5 read_by "$URL_A"
wait_for "labels read by B" "$N1" 120 0.5 read_by "$URL_B"
for x in "A $URL_A $L1_A $L1_B" "B $URL_B $L1_B $L1_A"; do
    set -- $x
    j=$(labels "$2" joined) u=$(labels "$2" unknown) d=$(labels "$2" duplicate) l=$(labels "$2" late)
    log "$1: $j joined (its own events' labels: $3), $u unknown (the other's: $4), $d duplicate, $l late"
    [ "$j" = "$3" ] && [ "$u" = "$4" ] && [ "$d" = 0 ] && [ "$l" = 0 ] ||
        fail "instance $1 after the first $N1 labels: joined $j unknown $u duplicate $d late $l, expected $3 $4 0 0"
done
wait_count "$JOINED" "$N1" 60
wait_metric "$URL_B" kscore_eval_pairs "$L1_B" 30
http_get "$URL_B/metrics" >"$WORK/metrics-B1.txt"
[ "$(rebalances)" = "$REBALANCES" ] || fail "the group rebalanced during the test ($REBALANCES -> $(rebalances))"

log "restart B: the other $((N - N1)) labels arrive now"
ks_stop "$PID_B" TERM
[ "$KS_RC" = 0 ] || fail "B exited $KS_RC on SIGTERM"
grep '^O ' "$WORK/evalB.log" >"$WORK/evalB-positions.txt" || true
ks_start B2 run -c "$EXAMPLE" "${SETS[@]}" --set "evaluation.store=$WORK/evalB.log"
PID_B=$KS_PID
URL_B=$(metrics_url "$WORK/kscore-B2.log" 30)
wait_log "$WORK/kscore-B2.log" "evaluation: reading 3 partition(s) of $LABELS" 60
want=$(awk '{ printf "%s[%s] at %s", (NR > 1 ? ", " : ""), $1, $2 }' "$WORK/labels-ends1.txt")
grep -qF "(every instance reads all of them): $want\"" "$WORK/kscore-B2.log" ||
    fail "B did not resume at the labels' ends ($want): $(grep 'evaluation: reading' "$WORK/kscore-B2.log")"
produce_labels "$WORK/labels2.jsonl"
wait_for "labels read by A" "$N" 120 0.5 read_by "$URL_A"
wait_for "labels read by B after its restart" "$((N - N1))" 120 0.5 read_by "$URL_B"
JA=$(labels "$URL_A" joined) JB2=$(labels "$URL_B" joined) JB1=$L1_B
log "A joined $JA (scored $PRED_A); B joined $JB1 + $JB2 across its restart (scored $PRED_B)"
[ $((JA + JB1 + JB2)) = "$N" ] || fail "$((JA + JB1 + JB2)) labels joined in all, expected $N"
[ "$JA" = "$PRED_A" ] || fail "A joined $JA labels, it scored $PRED_A events"
[ $((JB1 + JB2)) = "$PRED_B" ] || fail "B joined $((JB1 + JB2)) labels, it scored $PRED_B events"
[ "$JB2" = "$L2_B" ] || fail "B joined $JB2 of the second batch, expected $L2_B"
[ "$(labels "$URL_B" unknown)" = "$L2_A" ] || fail "B counted $(labels "$URL_B" unknown) unknown, expected $L2_A"
for u in "$URL_A" "$URL_B"; do
    [ "$(labels "$u" duplicate)" = 0 ] && [ "$(labels "$u" late)" = 0 ] ||
        fail "$u: $(labels "$u" duplicate) duplicate, $(labels "$u" late) late labels, expected none"
done
wait_count "$JOINED" "$N" 60
wait_metric "$URL_A" kscore_eval_pairs "$PRED_A" 30
wait_metric "$URL_B" kscore_eval_pairs "$L2_B" 30
http_get "$URL_A/metrics" >"$WORK/metrics-A.txt"
http_get "$URL_B/metrics" >"$WORK/metrics-B2.txt"
consume "$JOINED" "$WORK/joined.jsonl"

"$PY" - "$WORK" "$N" <<'PY' || fail "the joined records are wrong"
import json, sys
w, n = sys.argv[1], int(sys.argv[2])
joined = [json.loads(l) for l in open(f"{w}/joined.jsonl")]
ids = [j["id"] for j in joined]
assert len(ids) == n and len(set(ids)) == n, f"{len(ids)} joined records, {len(set(ids))} ids, expected {n}"
score = {r["id"]: r["score"] for r in map(json.loads, open(f"{w}/scores.jsonl"))}
label = {}
for b in (1, 2):
    for l in open(f"{w}/labels{b}.jsonl"):
        r = json.loads(l)
        label[r["id"]] = (r["label"], b)
bad = [j["id"] for j in joined if j["score"] != score[j["id"]] or j["label"] != label[j["id"]][0]]
assert not bad, f"{len(bad)} joined records differ from the outputs or the labels: {bad[:3]}"
by = {j["id"]: j for j in joined}
mine = {x: set(open(f"{w}/ids-{x}.txt").read().split()) for x in "AB"}
# each instance's pairs: A's all, B's before (batch 1) and after (batch 2) its restart
for name, pick in (("A", mine["A"]), ("B1", {i for i in mine["B"] if label[i][1] == 1}),
                   ("B2", {i for i in mine["B"] if label[i][1] == 2})):
    with open(f"{w}/pairs-{name}.txt", "w") as f:
        for i in sorted(pick):
            print(repr(by[i]["score"]), by[i]["label"], file=f)
PY
check_eval_metrics "A" "$WORK/metrics-A.txt" "$WORK/pairs-A.txt"
check_eval_metrics "B before its restart" "$WORK/metrics-B1.txt" "$WORK/pairs-B1.txt"
check_eval_metrics "B after its restart" "$WORK/metrics-B2.txt" "$WORK/pairs-B2.txt"
ks_stop "$PID_A" TERM
[ "$KS_RC" = 0 ] || fail "A exited $KS_RC on SIGTERM"
ks_stop "$PID_B" TERM
[ "$KS_RC" = 0 ] || fail "B exited $KS_RC on SIGTERM"
log "PASS: $N labels over two instances, each joined once by the instance that scored it, across a restart; metrics equal scikit-learn's"

#!/usr/bin/env bash
# Online evaluation with delayed labels against the real broker: 3,000 events
# are scored with evaluation.labels_topic set; labels for half of them (plus
# 5 unknown ids and 3 duplicates) arrive and are joined; kscore restarts
# (SIGTERM, same store file) and the other half's labels, arriving after the
# restart, still find their predictions (the store survived) and the first
# half is not read again (the store kept the labels' positions); the joined
# records on evaluation.topic are one per event; kscore_eval_auc, _log_loss
# and _brier equal scikit-learn's on the pairs the second process joined, to
# 1e-9; duplicates and unknown ids are counted; /status.json shows it.
# While the first process runs, `kscore predict` and `kscore validate` on the
# same config leave its store file alone (same inode, every prediction still
# there after the restart) and a second `kscore run` on it is refused: exit
# 2, naming the file.
source "$(dirname "$0")/lib.sh"
require_broker
N=3000
HALF=$((N / 2))
IN=$(topic ev-tx 4); OUT=$(topic ev-scores 4); DLQ=$(topic ev-dlq 1)
LABELS=$(topic ev-labels 2); JOINED=$(topic ev-joined 1)
GROUP=g-ev-$RUN_ID
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || "$ROOT/scripts/python-env" >&2 || fail "scripts/python-env"
SETS=($(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set "evaluation.labels_topic=$LABELS"
      --set "evaluation.topic=$JOINED" --set "evaluation.store=$WORK/eval.log")

ks_start run1 run -c "$EXAMPLE" "${SETS[@]}"
PID=$KS_PID
URL=$(metrics_url "$WORK/kscore-run1.log" 30)
gen --topic "$IN" --count "$N" --seed 5
wait_count "$OUT" "$N" 300
consume "$OUT" "$WORK/scores.jsonl"
# labels: drawn with the model's own probability (a calibrated model), in a
# shuffled order, in two halves
split_labels "$WORK/scores.jsonl" 5 "$HALF"
{ cat "$WORK/labels1.jsonl"; head -3 "$WORK/labels1.jsonl"
  for k in 1 2 3 4 5; do echo "{\"id\":\"ghost-$k\",\"label\":1}"; done; } |
    kcat -b "$BROKERS" -P -t "$LABELS" || fail "cannot produce labels"
wait_metric "$URL" kscore_eval_labels_total "$HALF" 120 'outcome="joined"'
wait_metric "$URL" kscore_eval_labels_total 3 30 'outcome="duplicate"'
wait_metric "$URL" kscore_eval_labels_total 5 30 'outcome="unknown"'
wait_metric "$URL" kscore_eval_waiting $((N - HALF)) 30

# the store belongs to the running process: other commands leave it alone
inode=$(stat -c %i "$WORK/eval.log")
"$KSCORE" gen --stdout --count 100 --seed 6 2>/dev/null | "$KSCORE" predict -c "$EXAMPLE" "${SETS[@]}" >/dev/null 2>&1 ||
    fail "kscore predict failed"
"$KSCORE" validate -c "$EXAMPLE" "${SETS[@]}" >/dev/null 2>&1 || fail "kscore validate failed"
[ "$(stat -c %i "$WORK/eval.log")" = "$inode" ] || fail "predict/validate replaced the store file"
rc=0
timeout 120 "$KSCORE" run -c "$EXAMPLE" "${SETS[@]}" --set "input.group_id=$GROUP-second" \
    >"$WORK/second.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "a second kscore run on the same store exited $rc, expected 2: $(tail -3 "$WORK/second.log")"
grep -q "evaluation.store $WORK/eval.log is in use by another process (pid $PID " "$WORK/second.log" ||
    fail "the refusal does not name the store and its holder: $(tail -3 "$WORK/second.log")"
[ "$(stat -c %i "$WORK/eval.log")" = "$inode" ] || fail "the refused run replaced the store file"
log "predict and validate left the store alone; a second run was refused (exit 2)"
ks_stop "$PID" TERM
[ "$KS_RC" = 0 ] || fail "kscore exited $KS_RC on SIGTERM"

log "restart: the other half's labels arrive now"
ks_start run2 run -c "$EXAMPLE" "${SETS[@]}"
PID=$KS_PID
URL=$(metrics_url "$WORK/kscore-run2.log" 30)
kcat -b "$BROKERS" -P -t "$LABELS" <"$WORK/labels2.jsonl" || fail "cannot produce labels"
wait_metric "$URL" kscore_eval_labels_total $((N - HALF)) 120 'outcome="joined"'
wait_metric "$URL" kscore_eval_waiting 0 30
# it resumed where the first process stopped reading: nothing read twice
for o in duplicate unknown; do
    [ "$(metric_sum "$URL" kscore_eval_labels_total "outcome=\"$o\"")" = 0 ] ||
        fail "the restarted process read labels again: $o $(metric_sum "$URL" kscore_eval_labels_total "outcome=\"$o\"")"
done
wait_metric "$URL" kscore_eval_pairs $((N - HALF)) 30
wait_count "$JOINED" "$N" 60
http_get "$URL/metrics" >"$WORK/metrics.txt"
http_get "$URL/status.json" >"$WORK/status.json"
jq -e --argjson n $((N - HALF)) '.evaluation.active and .evaluation.waiting == 0
    and .evaluation.groups[0].pairs == $n and .evaluation.labels.joined == $n
    and (.evaluation.groups[0].auc | type) == "number"' "$WORK/status.json" >/dev/null ||
    fail "status.json evaluation: $(jq -c .evaluation "$WORK/status.json")"
jq -e '.drift.active == false' "$WORK/status.json" >/dev/null ||
    fail "status.json drift: $(jq -c .drift "$WORK/status.json")"
consume "$JOINED" "$WORK/joined.jsonl"

"$PY" - "$WORK" <<'PY' || fail "the joined records are not one per event"
import json, sys
w = sys.argv[1]
joined = [json.loads(l) for l in open(f"{w}/joined.jsonl")]
assert len({j["id"] for j in joined}) == len(joined) == 3000, len(joined)
second = {json.loads(l)["id"] for l in open(f"{w}/labels2.jsonl")}
with open(f"{w}/pairs2.txt", "w") as f:
    for j in joined:
        if j["id"] in second:
            print(repr(j["score"]), j["label"], file=f)
PY
check_eval_metrics "the second process" "$WORK/metrics.txt" "$WORK/pairs2.txt"
ks_stop "$PID" TERM
log "PASS: $N predictions joined across a restart; metrics equal scikit-learn's"

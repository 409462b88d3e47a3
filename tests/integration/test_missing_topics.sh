#!/usr/bin/env bash
# A topic that does not exist stops kscore at start-up instead of leaving it
# waiting (or, with a broker that auto-creates, writing to a topic made with
# the broker's defaults): `kscore run` and `kscore validate --online`, each
# with one of the topics missing - an input (alone, and the second of two),
# the output, the dead-letter topic, evaluation.labels_topic and
# evaluation.topic - exit 2 within 20 s, and their one message names the
# topic, its config key and how to create it. Afterwards the missing topics
# still do not exist (kscore never creates topics; scripts/kafka's broker has
# auto.create.topics.enable=false, checked here too). With every topic
# present, `validate --online` exits 0 and says how many it checked.
source "$(dirname "$0")/lib.sh"
require_broker
LIMIT_S=20
grep -q '^auto.create.topics.enable=false' "$ROOT/scripts/kafka" ||
    fail "scripts/kafka's broker no longer sets auto.create.topics.enable=false: this test would not see a missing topic"

IN=$(topic mt-in 2); OUT=$(topic mt-out 2); DLQ=$(topic mt-dlq 1)
LABELS=$(topic mt-labels 1); JOINED=$(topic mt-joined 1)
GROUP=g-mt-$RUN_ID
GHOST=mt-missing-$RUN_ID # never created
EVAL=(--set "evaluation.labels_topic=$LABELS" --set "evaluation.topic=$JOINED"
      --set "evaluation.store=$WORK/eval.log")

# topics_on_cluster : every topic name the broker lists (listing creates nothing)
topics_on_cluster() {
    kcat -b "$BROKERS" -L -J 2>/dev/null | jq -r '.topics[].topic' || fail "cannot list topics"
}

# refuse CASE TOPIC KEY ARGS... : `kscore run ARGS` and `kscore validate ARGS
# --online` each exit 2 within LIMIT_S, saying "topic TOPIC (KEY) does not
# exist" and how to create it
refuse() {
    local case=$1 missing=$2 key=$3 cmd rc t0 ms msg
    shift 3
    for cmd in run validate; do
        local extra=()
        [ "$cmd" = validate ] && extra=(--online)
        rc=0
        t0=$(date +%s%N)
        timeout $((LIMIT_S + 10)) "$KSCORE" "$cmd" -c "$EXAMPLE" "$@" "${extra[@]}" \
            >"$WORK/$case-$cmd.out" 2>"$WORK/$case-$cmd.err" || rc=$?
        ms=$((($(date +%s%N) - t0) / 1000000))
        msg=$(grep '^kscore: ' "$WORK/$case-$cmd.err" || true)
        [ "$rc" = 2 ] || fail "$case: kscore $cmd exited $rc after $ms ms (want 2): $(tail -3 "$WORK/$case-$cmd.err")"
        [ "$ms" -le $((LIMIT_S * 1000)) ] || fail "$case: kscore $cmd took $ms ms to refuse (limit ${LIMIT_S} s)"
        [ "$(grep -c . <<<"$msg")" = 1 ] || fail "$case: kscore $cmd: want one 'kscore:' line, got: $msg"
        [[ "$msg" == *"topic $missing ($key) does not exist"* ]] ||
            fail "$case: kscore $cmd does not name the topic and its key ('topic $missing ($key) does not exist'): $msg"
        [[ "$msg" == *"kafka-topics.sh --bootstrap-server"*"--create --topic $missing --partitions"* ]] ||
            fail "$case: kscore $cmd does not say how to create $missing: $msg"
        log "$case: kscore $cmd -> 2 in $ms ms"
    done
}

refuse input "$GHOST-in" input.topics $(ks_sets "$GHOST-in" "$OUT" "$DLQ" "$GROUP")
refuse second-input "$GHOST-in2" input.topics $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") \
    --set "input.topics=[$IN, $GHOST-in2]"
refuse output "$GHOST-out" output.topic $(ks_sets "$IN" "$GHOST-out" "$DLQ" "$GROUP")
refuse dead-letter "$GHOST-dlq" dead_letter.topic $(ks_sets "$IN" "$OUT" "$GHOST-dlq" "$GROUP")
refuse labels "$GHOST-labels" evaluation.labels_topic $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") \
    "${EVAL[@]}" --set "evaluation.labels_topic=$GHOST-labels"
refuse joined "$GHOST-joined" evaluation.topic $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") \
    "${EVAL[@]}" --set "evaluation.topic=$GHOST-joined"

created=$(topics_on_cluster | grep -c -F "$GHOST" || true)
[ "$created" = 0 ] || fail "$created missing topic(s) exist after the runs: $(topics_on_cluster | grep -F "$GHOST" | tr '\n' ' ')"
log "none of the 6 missing topics was created"

# every topic present: validate --online says what it checked
present() { # present N ARGS...
    local n=$1 rc=0
    shift
    timeout $((LIMIT_S + 10)) "$KSCORE" validate -c "$EXAMPLE" "$@" --online \
        >"$WORK/present-$n.out" 2>"$WORK/present-$n.err" || rc=$?
    [ "$rc" = 0 ] || fail "validate --online with every topic present exited $rc: $(tail -2 "$WORK/present-$n.err")"
    grep -qx "topics: all $n exist on the cluster" "$WORK/present-$n.out" ||
        fail "validate --online did not print 'topics: all $n exist on the cluster': $(cat "$WORK/present-$n.out")"
    log "every topic present: validate --online -> 0, 'topics: all $n exist on the cluster'"
}
present 3 $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP")
present 5 $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") "${EVAL[@]}"
log "PASS: 6 missing topics x (run, validate --online) refused with exit 2 within ${LIMIT_S} s, naming topic, key and how to create it"

#!/usr/bin/env bash
# test_validate.sh - `kscore validate` (no broker) refuses, with exit 2 and one
# line saying why, the settings that would break the delivery guarantee
# (producer acks other than all, enable.idempotence false, exactly_once with
# mode: passthrough) and malformed configs, named by file, line and key. The
# same settings pass when they keep the guarantee, so each refusal is the
# setting's, not the example's. (test_window_config.sh fuzzes the window
# keys; test_cli.sh has the unknown key and the bad model file.)
set -euo pipefail
KS=$(realpath "${KSCORE_BIN:?}")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EX=$ROOT/examples/basic/pipeline.yaml
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cp "$ROOT/examples/basic/model.json" "$T/"
fails=0
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# refused DESC PREFIX WHY -- ARGS... : `kscore validate ARGS` exits 2 and its
# stderr is one line starting with PREFIX and containing WHY (both literal)
refused() {
    local desc=$1 prefix=$2 why=$3 rc=0 err
    shift 4
    timeout 10 "$KS" validate "$@" >"$T/out" 2>"$T/err" || rc=$?
    err=$(cat "$T/err")
    if [ "$rc" != 2 ]; then
        bad "$desc: exit $rc (want 2): $err"
    elif [ "$(wc -l <"$T/err")" != 1 ] || [[ "$err" != "$prefix"* ]] || [[ "$err" != *"$why"* ]]; then
        bad "$desc: want one line '$prefix...$why...', got: $err"
    elif grep -q 'is valid' "$T/out"; then
        bad "$desc: exit 2 but also 'is valid' on stdout"
    else
        echo "ok: $desc -> 2: $err"
    fi
}
# accepted DESC ARGS... : `kscore validate ARGS` exits 0
accepted() {
    local desc=$1 rc=0
    shift
    timeout 10 "$KS" validate "$@" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" = 0 ] && echo "ok: $desc -> 0" || bad "$desc: exit $rc (want 0): $(head -2 "$T/err")"
}
# config NAME SED_SCRIPT : the example edited by sed, in $T/NAME.yaml (model
# next to it); fails the test when the edit did not apply
config() {
    sed -e "$2" "$EX" >"$T/$1.yaml"
    cmp -s "$EX" "$T/$1.yaml" && bad "config $1: the edit '$2' changed nothing (the example changed?)"
    return 0
}
# line_of NAME TEXT : the line number of TEXT's first occurrence in $T/NAME.yaml
line_of() { grep -n -F -- "$2" "$T/$1.yaml" | head -1 | cut -d: -f1; }

# ---- settings that would break the guarantee (README "exit codes") --------
# (a --set is named "--set:1", whichever its position)
refused "acks=0 by --set" "kscore: --set:1: kafka.producer.acks: must be all (or -1)" "acks=0" \
    -- -c "$EX" --set kafka.producer.acks=0
refused "acks=1 for both clients" "kscore: --set:1: kafka.acks: must be all (or -1)" "acks=1" \
    -- -c "$EX" --set kafka.acks=1
refused "request.required.acks=1 (the alias)" \
    "kscore: --set:1: kafka.producer.request.required.acks: must be all (or -1)" "acks=1" \
    -- -c "$EX" --set workers=1 --set kafka.producer.request.required.acks=1
refused "enable.idempotence=false by --set" \
    "kscore: --set:1: kafka.producer.enable.idempotence: must stay true" "idempotent producer" \
    -- -c "$EX" --set kafka.producer.enable.idempotence=false
config acks 's/^  # any librdkafka property goes here.*/  producer:\n    acks: 1/'
refused "acks: 1 in the file" "kscore: $T/acks.yaml:$(line_of acks 'acks: 1'): kafka.producer.acks: must be all" \
    "acks=1" -- -c "$T/acks.yaml"
refused "exactly_once with mode: passthrough by --set" \
    "kscore: --set:1: delivery: exactly_once is not available with mode: passthrough" "at-least-once" \
    -- -c "$EX" --set mode=passthrough --set delivery=exactly_once
printf 'mode: passthrough\ndelivery: exactly_once\n' | cat "$EX" - >"$T/pt.yaml"
refused "exactly_once with mode: passthrough in the file" \
    "kscore: $T/pt.yaml:$(line_of pt 'delivery: exactly_once'): delivery: exactly_once is not available" \
    "mode: passthrough" -- -c "$T/pt.yaml"
accepted "acks=all" -c "$EX" --set kafka.producer.acks=all
accepted "acks=-1" -c "$EX" --set kafka.acks=-1
accepted "enable.idempotence=true" -c "$EX" --set kafka.producer.enable.idempotence=true
accepted "mode: passthrough at least once" -c "$EX" --set mode=passthrough
accepted "delivery: exactly_once scoring" -c "$EX" --set delivery=exactly_once

# ---- malformed configs: file, line and key --------------------------------
config type 's/^  max_size: 500/  max_size: lots/'
refused "a number's wrong type" "kscore: $T/type.yaml:$(line_of type 'max_size: lots'): batch.max_size: expected an integer" \
    '"lots"' -- -c "$T/type.yaml"
printf 'delivery: twice\n' | cat "$EX" - >"$T/enum.yaml"
refused "an enum's unknown value" "kscore: $T/enum.yaml:$(line_of enum 'delivery: twice'): delivery: expected one of at_least_once|exactly_once" \
    '"twice"' -- -c "$T/enum.yaml"
config kprop 's/^  bootstrap.servers: .*/&\n  no.such.property: 1/'
refused "an unknown librdkafka property" "kscore: $T/kprop.yaml:$(line_of kprop 'no.such.property'): kafka.no.such.property: invalid librdkafka property" \
    'No such configuration property' -- -c "$T/kprop.yaml"
config dup 's/^  group_id: kscore-fraud/&\n  group_id: again/'
refused "a key given twice" "kscore: $T/dup.yaml:$(line_of dup 'group_id: again'): duplicate key 'group_id'" \
    "" -- -c "$T/dup.yaml"
config yaml 's/^  max_size: 500/&: 1/'
refused "broken YAML" "kscore: $T/yaml.yaml:$(line_of yaml 'max_size: 500: 1'): YAML syntax error" \
    "mapping values are not allowed" -- -c "$T/yaml.yaml"
config noout '/^  topic: fraud-scores/d'
# a missing key has no line: the message names the file and the key
refused "a required key missing" "kscore: $T/noout.yaml: missing required key 'output.topic'" \
    "" -- -c "$T/noout.yaml"

[ "$fails" = 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo PASS >&2

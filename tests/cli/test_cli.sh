#!/usr/bin/env bash
# test_cli.sh - the kscore command's contract without a broker: documented exit
# codes (0 ok, 2 bad usage/config/model), messages naming file:line:key, and
# `kscore predict` scoring every event or dead-lettering it.
set -euo pipefail
KS=${KSCORE_BIN:?}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EX=$ROOT/examples/basic/pipeline.yaml
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
expect() { # expect CODE PATTERN -- CMD...
    local want=$1 pat=$2 rc=0
    shift 3
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    if [ "$rc" != "$want" ] || ! grep -q -- "$pat" "$T/out" "$T/err"; then
        echo "FAIL: '$*' exited $rc (want $want), output lacks '$pat':" >&2
        head -3 "$T/err" >&2
        fails=$((fails + 1))
    else
        echo "ok: $* -> $rc"
    fi
}
expect 0 "kscore " -- "$KS" version
expect 0 "Usage" -- "$KS" --help
expect 2 "Usage" -- "$KS"
expect 2 "unknown command" -- "$KS" frobnicate
expect 2 "missing -c" -- "$KS" run
expect 2 "cannot open" -- "$KS" validate -c "$T/none.yaml"
expect 0 "is valid" -- "$KS" validate -c "$EX"
expect 2 "batch.max_size: expected an integer" -- "$KS" validate -c "$EX" --set batch.max_size=x
sed 's/max_wait_ms: 5/max_wait_ms: 5\n  colour: red/' "$EX" >"$ROOT/examples/basic/.test-bad.yaml"
expect 2 ".test-bad.yaml:[0-9]*: unknown key 'batch.colour'" -- "$KS" validate -c "$ROOT/examples/basic/.test-bad.yaml"
rm -f "$ROOT/examples/basic/.test-bad.yaml"
echo '{"format": "kscore-model"' >"$T/bad.json"
expect 2 "bad.json" -- "$KS" validate -c "$EX" --set "model.path=$T/bad.json"
expect 2 "bad.json" -- "$KS" model info "$T/bad.json"
expect 0 "version: fraud-lr-1" -- "$KS" model info "$ROOT/examples/basic/model.json"
# model reference: the sidecar next to the model, read back with it
cp "$ROOT/tests/quality/fixtures/model.json" "$T/drift.json"
expect 0 "wrote .*drift.json.reference.json (4000 rows, 3 features, score)" -- \
    "$KS" model reference "$T/drift.json" --sample "$ROOT/tests/quality/fixtures/train.csv"
expect 0 "version: drift-test-1" -- "$KS" model info "$T/drift.json"
expect 2 "usage: kscore model reference" -- "$KS" model reference "$T/drift.json"
printf 'x,y\n1,2\n' >"$T/xy.csv"
expect 2 "the header has no column 'amount'" -- "$KS" model reference "$T/drift.json" --sample "$T/xy.csv"
# the example model has no reference: drift.enabled true refuses it
expect 2 "has no training reference" -- "$KS" validate -c "$EX" --set drift.enabled=true
expect 2 "drift.window 'soon' is not a duration" -- "$KS" validate -c "$EX" --set drift.window=soon
# docs/config.md is generated from the config table and must stay in sync
if ! "$KS" config-reference --markdown | cmp -s - "$ROOT/docs/config.md"; then
    echo "FAIL: docs/config.md is stale: run kscore config-reference --markdown > docs/config.md" >&2
    fails=$((fails + 1))
fi

# predict: 10,000 events, 1% malformed -> 9,900 predictions + 100 dead letters
"$KS" gen --stdout --count 10000 --malformed 0.01 --seed 4 2>/dev/null >"$T/events.jsonl"
"$KS" predict -c "$EX" <"$T/events.jsonl" >"$T/pred.jsonl" 2>"$T/dlq.jsonl"
p=$(wc -l <"$T/pred.jsonl"); d=$(grep -c '"error_class"' "$T/dlq.jsonl" || true)
if [ "$p" != 9900 ] || [ "$d" != 100 ]; then
    echo "FAIL: predict gave $p predictions and $d dead letters (want 9900 and 100)" >&2
    fails=$((fails + 1))
else
    echo "ok: predict 9900 + 100"
fi
# the same events twice give the same bits
"$KS" predict -c "$EX" <"$T/events.jsonl" 2>/dev/null | jq -c '[.id,.probabilities]' >"$T/a"
jq -c '[.id,.probabilities]' "$T/pred.jsonl" >"$T/b"
cmp -s "$T/a" "$T/b" || { echo "FAIL: predict is not deterministic" >&2; fails=$((fails + 1)); }

# output.format: compact: exactly id, score (binary) or prediction (others) and
# model_version, with the very same number text as the full record, for a
# binary classifier (the example), a regressor and a 3-class model made from it
compact_check() { # compact_check NAME CONFIG MEMBER
    local name=$1 cfg=$2 member=$3
    "$KS" predict -c "$cfg" <"$T/events.jsonl" 2>/dev/null >"$T/full-$name.jsonl"
    "$KS" predict -c "$cfg" --set output.format=compact <"$T/events.jsonl" 2>/dev/null \
        >"$T/compact-$name.jsonl"
    local keys want n
    keys=$(jq -c 'keys_unsorted' "$T/compact-$name.jsonl" | sort -u)
    want=$(jq -nc --arg m "$member" '["id", $m, "model_version"]')
    n=$(wc -l <"$T/compact-$name.jsonl")
    # the members' text as written (jq would re-format the numbers)
    sed -E "s/^\{(\"id\":[^,]*),.*(\"$member\":[^,}]*).*(,\"model_version\":\"[^\"]*\").*/{\1,\2\3}/" \
        "$T/full-$name.jsonl" >"$T/want-$name.jsonl"
    if [ "$keys" != "$want" ] || [ "$n" != 9900 ] ||
        ! cmp -s "$T/want-$name.jsonl" "$T/compact-$name.jsonl"; then
        echo "FAIL: compact records ($name): members $keys (want $want), $n records, " \
            "first: $(head -1 "$T/compact-$name.jsonl") (want $(head -1 "$T/want-$name.jsonl"))" >&2
        fails=$((fails + 1))
    else
        echo "ok: output.format compact ($name): $want, same numbers as full"
    fi
}
compact_check binary "$EX" score
jq '.task = "regression" | del(.classes) | .linear.link = "identity" | .version = "reg-1"' \
    "$ROOT/examples/basic/model.json" >"$T/reg.json"
jq '.classes = ["low", "mid", "high"] | .version = "three-1" | .linear.link = "softmax"
    | .linear.intercept = [0, 0.1, -0.1]
    | .linear.coef = [.linear.coef[0], (.linear.coef[0] | map(-.)), (.linear.coef[0] | map(. / 2))]' \
    "$ROOT/examples/basic/model.json" >"$T/three.json"
for m in reg three; do
    sed -e '/threshold:/d' -e "s#path: model.json#path: $T/$m.json#" "$EX" >"$T/$m.yaml"
done
compact_check regression "$T/reg.yaml" prediction
compact_check multiclass "$T/three.yaml" prediction
expect 2 "output.format" -- "$KS" validate -c "$EX" --set output.format=tiny
[ $fails = 0 ]

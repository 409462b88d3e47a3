#!/usr/bin/env bash
# test_cli.sh - the kscore command's contract without a broker: documented exit
# codes (0 ok, 2 bad usage/config/model), messages naming file:line:key, and
# `kscore predict` scoring every event or dead-lettering it.
set -euo pipefail
KS=${KSCORE_BIN:?}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EX=$ROOT/examples/fraud/pipeline.yaml
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
sed 's/max_wait_ms: 5/max_wait_ms: 5\n  colour: red/' "$EX" >"$ROOT/examples/fraud/.test-bad.yaml"
expect 2 ".test-bad.yaml:[0-9]*: unknown key 'batch.colour'" -- "$KS" validate -c "$ROOT/examples/fraud/.test-bad.yaml"
rm -f "$ROOT/examples/fraud/.test-bad.yaml"
echo '{"format": "kscore-model"' >"$T/bad.json"
expect 2 "bad.json" -- "$KS" validate -c "$EX" --set "model.path=$T/bad.json"
expect 2 "bad.json" -- "$KS" model info "$T/bad.json"
expect 0 "version: fraud-lr-1" -- "$KS" model info "$ROOT/examples/fraud/model.json"
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
[ $fails = 0 ]

#!/usr/bin/env bash
# Hot swap under load: while events stream through, the model file is
# replaced (1) by a corrupt file, (2) by a model whose features do not fit
# the pipeline - both refused, the model in service stays - then (3) by a
# good new version, which is swapped in with no pause and no lost event.
# Every output must equal what `kscore predict` computes with the model
# version the record names. (SIGHUP triggers the same reload; see test_cli.)
source "$(dirname "$0")/lib.sh"
require_broker
RATE=${KSCORE_TEST_RATE:-3000}; SECS=20; N=$((RATE * SECS))
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1)
cp "$EXAMPLE" "$WORK/pipeline.yaml"
cp "$ROOT/examples/basic/model.json" "$WORK/model.json"
V1=$(jq -r .version "$WORK/model.json")
jq -c '.version = "hot-v2" | .linear.intercept[0] += 1.5' "$WORK/model.json" >"$WORK/v2.json"
jq -c '.version = "hot-bad" | .feature_names[0] = "no_such_feature"' "$WORK/model.json" >"$WORK/misfit.json"
swap() { cp "$1" "$WORK/model.json.tmp" && mv "$WORK/model.json.tmp" "$WORK/model.json"; }
wait_log() { # wait_log PATTERN TIMEOUT_S
    local start=$SECONDS
    while [ $((SECONDS - start)) -lt "$2" ]; do
        grep -q "$1" "$WORK/kscore-run.log" && return 0
        sleep 0.2
    done
    fail "no '$1' in kscore's log after $2 s"
}

ks_start run run -c "$WORK/pipeline.yaml" $(ks_sets "$IN" "$OUT" "$DLQ" "g-swap-$RUN_ID") \
    --set model.watch_interval_ms=200
"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --count "$N" --rate "$RATE" --seed 21 \
    2>>"$WORK/gen.log" &
GEN=$!; PIDS+=("$GEN")
wait_count "$OUT" $((RATE * 3)) 120

printf '{"format": "kscore-model", "format_version": 1, "model_ty' >"$WORK/corrupt.json"
swap "$WORK/corrupt.json"
wait_log "model reload refused" 30
swap "$WORK/misfit.json"
wait_log "expects feature 'no_such_feature'" 30
log "corrupt and misfit models refused"
wait_count "$OUT" $((RATE * 8)) 120
swap "$WORK/v2.json"
wait_log "model hot-v2 is in service" 30
log "hot-v2 swapped in"
kill -HUP "$KS_PID"          # the same file again: reloaded, same version, no swap
wait_log "SIGHUP: reloading" 30
wait_count "$OUT" $((RATE * 12)) 120
kill -0 "$KS_PID" || fail "kscore died"

wait "$GEN" || fail "generator failed"
wait_ids "$OUT" "$N" 300
ks_stop "$KS_PID" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "kscore exited $rc"
[ "$(grep -c 'is in service' "$WORK/kscore-run.log")" -eq 1 ] || fail "expected exactly one swap"

# Each record equals offline predict with the model version it names.
consume "$OUT" "$WORK/online.jsonl"
"$KSCORE" gen --stdout --count "$N" --rate 0 --seed 21 2>/dev/null >"$WORK/events.jsonl"
cp "$ROOT/examples/basic/model.json" "$WORK/model.json"
"$KSCORE" predict -c "$WORK/pipeline.yaml" <"$WORK/events.jsonl" 2>/dev/null >"$WORK/off-v1.jsonl"
cp "$WORK/v2.json" "$WORK/model.json"
"$KSCORE" predict -c "$WORK/pipeline.yaml" <"$WORK/events.jsonl" 2>/dev/null >"$WORK/off-v2.jsonl"
proj='[.id, .model_version, .probabilities] | tostring'
cat "$WORK/off-v1.jsonl" "$WORK/off-v2.jsonl" | jq -r "$proj" | sort -u >"$WORK/offline.key"
jq -r "$proj" "$WORK/online.jsonl" | sort -u >"$WORK/online.key"
bad=$(comm -23 "$WORK/online.key" "$WORK/offline.key" | wc -l)
[ "$bad" -eq 0 ] || { comm -23 "$WORK/online.key" "$WORK/offline.key" | head -3 >&2; fail "$bad records differ from offline predict with their model version"; }
v1=$(grep -c "\"model_version\":\"$V1\"" "$WORK/online.jsonl" || true)
v2=$(grep -c '"model_version":"hot-v2"' "$WORK/online.jsonl" || true)
[ "$v1" -gt 0 ] && [ "$v2" -gt 0 ] || fail "expected records from both versions ($v1 v1, $v2 v2)"
log "PASS: 2 bad files refused, 1 swap under load; $N ids scored ($v1 by $V1, $v2 by hot-v2), each equal to offline predict with its version"

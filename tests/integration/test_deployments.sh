#!/usr/bin/env bash
# Model deployments on a real broker (docs/deployments.md):
#  1. `kscore deploy` writes a shadow of v2 before any instance runs; it
#     refuses (exit 2) a model every replica would refuse. Raw messages a
#     replica must refuse - corrupt file, wrong sha256, feature mismatch, NaN
#     outputs, unreadable path, not JSON - are refused by the instance at
#     start-up with a status record, a log line and a metric each; routing
#     unchanged.
#  2. Shadow: every event's shadow record equals offline `kscore predict`
#     with the candidate; it never reaches the output topic.
#  3. Canary 10 %: instance B, started after the deployment, routes 100,000
#     keys exactly like A (10 +- 1 % on the candidate); after A restarts the
#     same keys land on the same variants.
#  4. Guard: a candidate returning NaN on live events, then a slow one, are
#     rolled back automatically on both instances (status records, metric,
#     the rollback written to the deployments topic), and nothing is lost.
source "$(dirname "$0")/lib.sh"
require_broker
IN=$(topic tx 4); OUT_A=$(topic scores-a 4); OUT_B=$(topic scores-b 4); DLQ=$(topic dlq 1)
DEP=$(topic deployments 1); STATUS=$(topic deploy-status 1); SHADOW=$(topic shadow 4)
"$ROOT/scripts/kafka" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" \
    --alter --topic "$DEP" --config cleanup.policy=compact >/dev/null 2>&1 || true
cp "$EXAMPLE" "$WORK/pipeline.yaml"
cp "$ROOT/examples/basic/model.json" "$WORK/model.json"
M=$ROOT/examples/basic/model.json
jq -c '.version = "v2" | .linear.intercept[0] += 0.75' "$M" >"$WORK/v2.json"
jq -c '.version = "v3" | .linear.coef[0][0] = 1e300 | .linear.coef[0][2] = -1e300' "$M" >"$WORK/v3.json"
jq -c '.version = "nan" | .preprocess[0].scale = [range(16) | 0]' "$M" >"$WORK/nan.json"
jq -c '.version = "misfit" | .feature_names[1] = "no_such_feature"' "$M" >"$WORK/misfit.json"
head -c 300 "$M" >"$WORK/corrupt.json"
python3 "$ROOT/tests/integration/make_slow_mlp.py" "$M" slow "$WORK/slow.json"
sha() { sha256sum "$1" | cut -d' ' -f1; }

SETS="$(ks_sets "$IN" "$OUT_A" "$DLQ" "g-dep-a-$RUN_ID") --set model.deployments_topic=$DEP
  --set model.deployments_status_topic=$STATUS --set shadow.topic=$SHADOW
  --set guard.max_error_rate=0.05 --set guard.max_p99_ms=50 --set guard.window=10s
  --set guard.min_events=100 --set guard.interval_ms=200"
SETS_B=$(echo "$SETS" | sed "s/$OUT_A/$OUT_B/; s/g-dep-a-/g-dep-b-/")
deploy() { "$KSCORE" deploy -c "$WORK/pipeline.yaml" $SETS "$@" 2>>"$WORK/deploy.log"; }
raw() { printf '%s\n' "$1" | kcat -b "$BROKERS" -P -t "$DEP" -K '|' || fail "kcat -P"; }

# ---- 1. deployments written before any instance, refusals ----------------
deploy --model "$WORK/v2.json" --version v2 --shadow >"$WORK/msg.json" || fail "deploy --shadow"
jq -e --arg s "$(sha "$WORK/v2.json")" '.action == "shadow" and .sha256 == $s' "$WORK/msg.json" \
    >/dev/null || fail "unexpected message $(cat "$WORK/msg.json")"
rc=0; deploy --model "$WORK/nan.json" --version nan --canary 10 >/dev/null || rc=$?
[ "$rc" = 2 ] || fail "kscore deploy of a NaN model exited $rc, expected 2"
grep -q "warmup_nan" "$WORK/deploy.log" || fail "kscore deploy did not name the reason"
msg() { echo "$1|{\"action\":\"shadow\",\"version\":\"$1\",\"path\":\"$2\",\"sha256\":\"$3\"}"; }
raw "$(msg corrupt "$WORK/corrupt.json" "$(sha "$WORK/corrupt.json")")"
raw "$(msg wrongsha "$WORK/v2.json" "$(sha "$WORK/nan.json")")"
raw "$(msg misfit "$WORK/misfit.json" "$(sha "$WORK/misfit.json")")"
raw "$(msg nan "$WORK/nan.json" "$(sha "$WORK/nan.json")")"
raw "$(msg gone "$WORK/no-such-file.json" "$(sha "$WORK/v2.json")")"
raw "junk|{\"action\": \"shadow\", oops"
log "1 good and 6 bad deployments written"

ks_start a run -c "$WORK/pipeline.yaml" $SETS
A=$KS_PID
wait_log "$WORK/kscore-a.log" "deployments: .* read to offset 6 (1 applied, 6 refused)" 60
for why in load_failed sha256_mismatch feature_mismatch warmup_nan unreadable invalid_message; do
    wait_for "status records of $why" 1 30 0.5 \
        sh -c "kcat -b $BROKERS -C -t $STATUS -o beginning -e -q | grep -c '\"result\":\"refused\",\"reason\":\"$why\"' || true"
done
URL_A=$(metrics_url "$WORK/kscore-a.log" 30)
[ "$(metric_sum "$URL_A" kscore_deployments_refused_total)" = 6 ] || fail "refusal metric"
grep -c "refused, routing unchanged" "$WORK/kscore-a.log" | grep -qx 6 || fail "refusal log lines"
log "refusals: 6 status records, log lines and metrics; shadow v2 applied"

# ---- 2. shadow ------------------------------------------------------------
N1=20000
gen --topic "$IN" --count $N1 --rate 0 --seed 31
wait_ids "$OUT_A" $N1 120
wait_count "$SHADOW" $N1 60
consume "$SHADOW" "$WORK/shadow.jsonl"
consume "$OUT_A" "$WORK/out1.jsonl"
grep -q '"variant":"shadow"' "$WORK/out1.jsonl" && fail "a shadow record reached the output topic"
[ "$(jq -r 'select(.shadow_of == "fraud-lr-1" and .model_version == "v2") | .id' "$WORK/shadow.jsonl" | sort -u | wc -l)" = $N1 ] ||
    fail "expected one shadow record of v2 per event"
"$KSCORE" gen --stdout --count $N1 --rate 0 --seed 31 2>/dev/null >"$WORK/events1.jsonl"
"$KSCORE" predict -c "$WORK/pipeline.yaml" --set model.path="$WORK/v2.json" <"$WORK/events1.jsonl" \
    2>/dev/null | jq -r '[.id, .probabilities] | tostring' | sort >"$WORK/offline-v2.key"
jq -r '[.id, .probabilities] | tostring' "$WORK/shadow.jsonl" | sort -u >"$WORK/shadow.key"
cmp -s "$WORK/offline-v2.key" "$WORK/shadow.key" || fail "shadow outputs differ from offline predict with v2"
log "shadow: $N1 records equal to offline predict with v2, none in the output"

# ---- 3. canary: a second instance and a restart agree ---------------------
deploy --version v2 --canary 10 >/dev/null || fail "deploy --canary"
wait_log "$WORK/kscore-a.log" "(canary v2) applied" 30
ks_start b run -c "$WORK/pipeline.yaml" $SETS_B
B=$KS_PID
wait_log "$WORK/kscore-b.log" "deployments: .* read to offset 7" 60
"$KSCORE" deployments -c "$WORK/pipeline.yaml" $SETS --json >"$WORK/state.json" || fail "kscore deployments"
jq -e '.routing[0].variant == "canary" and .routing[0].percent == 10 and .shadow == "v2"' \
    "$WORK/state.json" >/dev/null || fail "kscore deployments: $(cat "$WORK/state.json")"
N2=100000
gen --topic "$IN" --count $N2 --start 100000 --rate 0 --seed 32
want=$((N1 + N2))
wait_ids "$OUT_A" $want 300
wait_ids "$OUT_B" $want 300
variants() { # TOPIC -> "id variant" for the canary-era ids, sorted unique
    kcat -b "$BROKERS" -C -t "$1" -o beginning -e -q 2>/dev/null |
        jq -r 'select((.id | ltrimstr("e") | tonumber) >= 100000) | "\(.id) \(.variant)"' | sort -u
}
variants "$OUT_A" >"$WORK/var-a.txt"
variants "$OUT_B" >"$WORK/var-b.txt"
[ "$(wc -l <"$WORK/var-a.txt")" = $N2 ] || fail "A: $(wc -l <"$WORK/var-a.txt") id/variant pairs for $N2 ids"
cmp -s "$WORK/var-a.txt" "$WORK/var-b.txt" || fail "instances A and B route keys differently"
on=$(grep -c ' canary$' "$WORK/var-a.txt" || true)
[ "$on" -ge 9000 ] && [ "$on" -le 11000 ] || fail "$on of $N2 keys on the canary, expected 10 +- 1 %"
awk '$2 == "canary" { print $1; exit }' "$WORK/var-a.txt" >"$WORK/one-canary-id"
[ "$(kcat -b "$BROKERS" -C -t "$OUT_A" -o beginning -e -q |
    jq -r --arg id "$(cat "$WORK/one-canary-id")" 'select(.id == $id) | .model_version')" = v2 ] ||
    fail "canary record not by v2"
http_get "$URL_A/status.json" | jq -e '.deployments.variants[0] | .variant == "canary" and
    .model_version == "v2" and .share == 0.1 and .predictions > 0' >/dev/null ||
    fail "status.json: $(http_get "$URL_A/status.json" | jq -c .deployments)"
http_get "$URL_A/status.json" | jq -e '.deployments.shadow | .model_version == "v2" and
    .compared > 0 and .agreement > 0.5 and .mean_abs_delta > 0' >/dev/null ||
    fail "status.json shadow: $(http_get "$URL_A/status.json" | jq -c .deployments.shadow)"
http_get "$URL_A/metrics" | grep -q 'kscore_route_share{model_version="v2",variant="canary"} 0.1' ||
    fail "/metrics has no canary share"
log "canary: $on of $N2 keys on v2; instance B routes every key alike; status page and /metrics show it"
ks_stop "$A" TERM
[ "$KS_RC" = 0 ] || fail "A exited $KS_RC"
ks_start a run -c "$WORK/pipeline.yaml" $SETS
A=$KS_PID
wait_log "$WORK/kscore-a.log" "deployments: .* read to offset" 60 2
URL_A=$(grep -o 'metrics: http://[^/]*' "$WORK/kscore-a.log" | tail -1 | cut -d' ' -f2)
gen --topic "$IN" --count $N2 --start 100000 --rate 0 --seed 32 # the same keys again
wait_count "$OUT_A" $((want + N2)) 300
variants "$OUT_A" >"$WORK/var-a2.txt"
cmp -s "$WORK/var-a.txt" "$WORK/var-a2.txt" || fail "after a restart, keys moved between variants"
log "restart: the same $N2 keys on the same variants"

# ---- 4. guard -------------------------------------------------------------
deploy --model "$WORK/v3.json" --version v3 --canary 50 >/dev/null || fail "deploy v3"
wait_log "$WORK/kscore-a.log" "(canary v3) applied" 30
wait_log "$WORK/kscore-b.log" "(canary v3) applied" 30
for i in $(seq 4000); do
    echo "{\"id\":\"g$i\",\"amount\":1e306,\"n_tx_24h\":1e306,\"account_age_days\":100,\"ts\":\"2026-01-01T00:00:00Z\"}"
done | kcat -b "$BROKERS" -P -t "$IN" || fail "kcat -P"
# whichever instance's guard fires first writes the rollback; the other
# applies it (or finds it already done by its own guard)
guard_fired() { # VERSION REASON_TEXT : some instance's guard rolled VERSION back for it
    wait_for "a guard rollback of $1 ($2)" 1 60 0.2 \
        sh -c "cat '$WORK'/kscore-[ab].log | grep -c 'guard: $1 rolled back: $2' || true"
    wait_log "$WORK/kscore-a.log" "guard: $1 rolled back\|(rollback $1) applied" 60
    wait_log "$WORK/kscore-b.log" "guard: $1 rolled back\|(rollback $1) applied" 60
}
guard_fired v3 "error rate"
wait_for "rollbacks of v3 in the deployments topic" 1 30 0.5 \
    sh -c "kcat -b $BROKERS -C -t $DEP -o beginning -e -q | grep -c '\"action\":\"rollback\",\"version\":\"v3\"' || true"
URL_B=$(metrics_url "$WORK/kscore-b.log" 30)
[ "$(( $(metric_sum "$URL_A" kscore_deployment_rollbacks_total 'reason="error_rate"') +
       $(metric_sum "$URL_B" kscore_deployment_rollbacks_total 'reason="error_rate"') ))" -ge 1 ] ||
    fail "rollback metric"
log "guard: the NaN candidate v3 rolled back on both instances"

deploy --model "$WORK/slow.json" --version slow --canary 20 >/dev/null || fail "deploy slow"
wait_log "$WORK/kscore-a.log" "(canary slow) applied" 30
gen --topic "$IN" --count 5000 --start 300000 --rate 0 --seed 33
# whichever instance's guard fires first writes the rollback; the other applies it
guard_fired slow "p99 model compute time"
log "guard: the slow candidate rolled back"
"$KSCORE" deployments -c "$WORK/pipeline.yaml" $SETS --json >"$WORK/state2.json" || fail "kscore deployments"
jq -e '.champion == "fraud-lr-1" and (.routing | length) == 1' "$WORK/state2.json" >/dev/null ||
    fail "after the rollbacks: $(cat "$WORK/state2.json")"
kcat -b "$BROKERS" -C -t "$STATUS" -o beginning -e -q | grep -q '"result":"rolled_back","reason":"p99"' ||
    fail "no status record of the p99 rollback"

# nothing lost: every id scored or dead-lettered, on both instances
total=$((want + 4000 + 5000))
wait_for "ids scored or dead-lettered by A" $total 300 2 sh -c \
    "{ kcat -b $BROKERS -C -t $OUT_A -o beginning -e -q | jq -r .id; kcat -b $BROKERS -C -t $DLQ -o beginning -e -q | jq -r .id 2>/dev/null; } | sort -u | wc -l"
ks_stop "$A" TERM; [ "$KS_RC" = 0 ] || fail "A exited $KS_RC"
ks_stop "$B" TERM; [ "$KS_RC" = 0 ] || fail "B exited $KS_RC"
log "PASS: refusals, shadow equal to offline predict, canary alike on 2 instances and after a restart, 2 guard rollbacks"

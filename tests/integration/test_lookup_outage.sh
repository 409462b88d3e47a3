#!/usr/bin/env bash
# Feature-store lookups, evidence 2 (issue 10): Redis killed in the middle of
# a stream, then restarted, without restarting kscore.
#   - no event lost: exactly one output per event (the exact id set), none
#     dead-lettered;
#   - outputs scored while Redis was down carry "degraded": ["profile"] and
#     the defaults, and were encoded during the outage; every other output's
#     values equal Redis's;
#   - the circuit breaker opens (kscore_lookup_breaker_opens_total,
#     kscore_lookup_breaker_open on /metrics) and closes after the restart,
#     and outputs after it are served from Redis again (full service).
# Events arrive at a fixed rate so the outage falls mid-stream.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-12000} RATE=1000 USERS=10000
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1); GROUP=g-lookup-out-$RUN_ID
iso_now() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }

redis_start
profiles_load "$USERS"
rcli save >/dev/null || fail "redis SAVE failed"
lookup_pipeline "$WORK/pipeline.yaml" "$REDIS_URL" false 1000
ks_start run run -c "$WORK/pipeline.yaml" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP")
URL=$(metrics_url "$WORK/kscore-run.log" 30)
wait_http "$URL/readyz" 200 60

"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --count "$N" --rate "$RATE" --seed 31 \
    --keys "$USERS" 2>>"$WORK/gen.log" &
GEN_PID=$!
PIDS+=("$GEN_PID")
wait_count "$OUT" 2000 60

KILLED=$(iso_now)
log "killing Redis (pid $REDIS_PID) at $KILLED"
redis_kill
wait_for "kscore_lookup_breaker_opens_total" 1 30 0.2 metric_sum "$URL" kscore_lookup_breaker_opens_total
wait_for "kscore_lookup_breaker_open" 1 30 0.2 metric_sum "$URL" kscore_lookup_breaker_open
wait_for "degraded events" 500 30 0.2 metric_sum "$URL" kscore_lookup_degraded_total
code=$(http_code "$URL/readyz")
[ "$code" = 200 ] || fail "/readyz answers $code during the outage: a lookup that is not required must not make kscore unready"

RESTARTED=$(iso_now)
log "restarting Redis at $RESTARTED"
redis_start
wait_metric "$URL" kscore_lookup_breaker_open 0 30
CLOSED=$(iso_now)
wait "$GEN_PID" || fail "kscore gen failed: $(tail -1 "$WORK/gen.log")"
wait_count "$OUT" "$N" 120
opens=$(metric_sum "$URL" kscore_lookup_breaker_opens_total)
degraded=$(metric_sum "$URL" kscore_lookup_degraded_total)
ks_stop "$KS_PID" TERM
[ "$KS_RC" = 0 ] || fail "kscore run exited $KS_RC after SIGTERM"

consume "$OUT" "$WORK/out.jsonl"
[ "$(count "$DLQ")" -eq 0 ] || fail "events were dead-lettered because of Redis"
check_ids_exact "$WORK/out.jsonl" "$N"
read -r n deg wrong <<<"$(check_profiles "$WORK/out.jsonl")"
[ "$n" -eq "$N" ] || fail "checked $n records, expected $N"
[ "$wrong" -eq 0 ] || fail "$wrong records have looked-up values that are neither Redis's nor the flagged defaults"
[ "$deg" -gt 0 ] || fail "no output was flagged degraded during the outage"
[ "$deg" -eq "$degraded" ] || fail "$deg degraded outputs but kscore_lookup_degraded_total is $degraded"
# degraded outputs were encoded during the outage (the breaker closed at $CLOSED)
early=$(jq -r --arg t "$KILLED" 'select(.degraded and .prediction_time < $t) | .id' "$WORK/out.jsonl" | wc -l)
late=$(jq -r --arg t "$CLOSED" 'select(.degraded and .prediction_time > $t) | .id' "$WORK/out.jsonl" | wc -l)
[ "$early" -eq 0 ] && [ "$late" -eq 0 ] || fail "$early degraded outputs before the kill, $late after the breaker closed"
after=$(jq -r --arg t "$CLOSED" 'select((.degraded | not) and .prediction_time > $t) | .id' "$WORK/out.jsonl" | wc -l)
[ "$after" -gt 0 ] || fail "no output served from Redis after the restart"
log "PASS: $N outputs, exact id set, $deg degraded during the outage (defaults), $after served from Redis after the restart, breaker opened $opens time(s) and closed"

#!/usr/bin/env bash
# Feature-store lookups, offline (issue 10): `kscore predict` reading a real
# Redis and `kscore predict --lookup profile=FILE.jsonl` reading a snapshot
# dumped from that Redis give the same outputs for the same events (every
# member but the times), so offline runs are reproducible without Redis.
# 9,000 of the 10,000 users have a profile: missing keys take the defaults
# in both. Then `required: true` offline: with Redis down, predict waits
# and writes nothing, and once Redis is back writes the same outputs. No
# broker needed.
source "$(dirname "$0")/lib.sh"
N=20000 USERS=10000

redis_start
profiles_load 9000
# the snapshot: every key and value as Redis holds them
rcli --scan --pattern 'features:*' >"$WORK/keys"
sed 's/^/GET /' "$WORK/keys" | rcli >"$WORK/values"
[ "$(wc -l <"$WORK/values")" -eq 9000 ] || fail "dumped $(wc -l <"$WORK/values") values, expected 9000"
paste -d '\n' "$WORK/keys" "$WORK/values" |
    jq -R -c '. as $k | input as $v | {key: $k, value: ($v | fromjson)}' >"$WORK/profile.jsonl" ||
    fail "cannot write the snapshot"
lookup_pipeline "$WORK/pipeline.yaml" "$REDIS_URL"
"$KSCORE" gen --stdout --count "$N" --seed 41 --keys "$USERS" 2>/dev/null >"$WORK/events.jsonl"

"$KSCORE" predict -c "$WORK/pipeline.yaml" <"$WORK/events.jsonl" >"$WORK/redis.jsonl" \
    2>"$WORK/redis.err" || fail "kscore predict (Redis) failed: $(tail -2 "$WORK/redis.err")"
rcli save >/dev/null || fail "redis SAVE failed" # restarted below from this dump
redis_kill # the snapshot run must not need it
"$KSCORE" predict -c "$WORK/pipeline.yaml" --lookup "profile=$WORK/profile.jsonl" \
    <"$WORK/events.jsonl" >"$WORK/snapshot.jsonl" 2>"$WORK/snapshot.err" ||
    fail "kscore predict --lookup failed: $(tail -2 "$WORK/snapshot.err")"

for f in redis snapshot; do
    [ "$(wc -l <"$WORK/$f.jsonl")" -eq "$N" ] || fail "$f: $(wc -l <"$WORK/$f.jsonl") outputs, expected $N"
    jq -c 'del(.prediction_time, .latency_ms)' "$WORK/$f.jsonl" >"$WORK/$f.key"
done
if ! cmp -s "$WORK/redis.key" "$WORK/snapshot.key"; then
    diff "$WORK/redis.key" "$WORK/snapshot.key" | head -4 >&2
    fail "kscore predict with Redis and with the snapshot differ"
fi
grep -q '"degraded"' "$WORK/redis.key" && fail "outputs degraded with Redis up"
missing=$(jq -r 'select(.["profile.segment"] == "unknown") | .id' "$WORK/redis.key" | wc -l)
[ "$missing" -gt 0 ] || fail "no event of a user without a profile: the defaults were not compared"
# and the values are Redis's (users u9000.. have none: defaults, checked apart)
jq -c 'select((.user_id | ltrimstr("u") | tonumber) < 9000)' "$WORK/redis.jsonl" >"$WORK/with-profile.jsonl"
read -r n deg wrong <<<"$(check_profiles "$WORK/with-profile.jsonl")"
[ "$wrong" -eq 0 ] && [ "$deg" -eq 0 ] || fail "$wrong outputs' values differ from Redis ($deg degraded)"

# required: true offline: with Redis down, kscore predict waits (says so on
# stderr) instead of writing defaults; once Redis is back it writes the same
# outputs as above
lookup_pipeline "$WORK/required.yaml" "$REDIS_URL" true
head -1000 "$WORK/events.jsonl" >"$WORK/events-1000.jsonl"
"$KSCORE" predict -c "$WORK/required.yaml" <"$WORK/events-1000.jsonl" >"$WORK/required.jsonl" \
    2>"$WORK/required.err" &
PRED_PID=$!
PIDS+=("$PRED_PID")
waiting() { grep -c "waiting for the required lookup 'profile'" "$WORK/required.err" || true; }
wait_for "kscore predict saying it waits for Redis" 1 30 0.2 waiting
[ -s "$WORK/required.jsonl" ] && fail "kscore predict wrote outputs while a required lookup had no Redis"
redis_start # loads the dump before it answers: no window with missing keys
[ "$(rcli dbsize)" -eq 9000 ] || fail "the restarted Redis holds $(rcli dbsize) keys, expected 9000"
wait "$PRED_PID" || fail "kscore predict (required) failed: $(tail -2 "$WORK/required.err")"
jq -c 'del(.prediction_time, .latency_ms)' "$WORK/required.jsonl" >"$WORK/required.key"
cmp -s "$WORK/required.key" <(head -1000 "$WORK/redis.key") ||
    fail "kscore predict with a required lookup that waited for Redis differs from the run with Redis up"
log "PASS: $N outputs identical with Redis and with --lookup profile=snapshot ($n with a profile, $missing with defaults); required: true waited for Redis and then matched"

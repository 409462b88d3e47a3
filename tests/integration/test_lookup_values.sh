#!/usr/bin/env bash
# Feature-store lookups, evidence 1 (issue 10): 10,000 users' profiles in a
# real Redis (started here on a free loopback port), 20,000 events of those
# users through `kscore run` over 4 partitions: exactly one output per event
# (the exact id set), none degraded, none dead-lettered, and every output's
# looked-up values (carried as "profile.<field>") equal the profile stored in
# Redis for its user. The lookup runs with the cache on, so values served
# from the cache are checked too.
source "$(dirname "$0")/lib.sh"
require_broker
N=${KSCORE_TEST_EVENTS:-20000}
USERS=10000
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1); GROUP=g-lookup-$RUN_ID

redis_start
profiles_load "$USERS"
lookup_pipeline "$WORK/pipeline.yaml" "$REDIS_URL"
log "producing $N events of $USERS users to $IN"
gen --topic "$IN" --count "$N" --seed 11 --keys "$USERS"

ks_start run run -c "$WORK/pipeline.yaml" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP")
URL=$(metrics_url "$WORK/kscore-run.log" 30)
wait_count "$OUT" "$N" 180
# Redis was asked in batches: at most one command per event, fewer round trips
cmds=$(metric_sum "$URL" kscore_lookup_commands_total)
trips=$(metric_sum "$URL" kscore_lookup_round_trip_seconds_count)
[ "$cmds" -gt 0 ] && [ "$cmds" -le "$N" ] || fail "kscore_lookup_commands_total is $cmds for $N events"
[ "$trips" -gt 0 ] && [ "$trips" -lt "$cmds" ] || fail "$trips round trips for $cmds commands: not batched"
ks_stop "$KS_PID" TERM
[ "$KS_RC" = 0 ] || fail "kscore run exited $KS_RC after SIGTERM"

consume "$OUT" "$WORK/out.jsonl"
[ "$(count "$DLQ")" -eq 0 ] || fail "unexpected dead letters"
check_ids_exact "$WORK/out.jsonl" "$N"
read -r n deg wrong <<<"$(check_profiles "$WORK/out.jsonl")"
[ "$n" -eq "$N" ] || fail "checked $n records, expected $N"
[ "$deg" -eq 0 ] || fail "$deg records degraded with Redis up"
[ "$wrong" -eq 0 ] || fail "$wrong records' looked-up values differ from Redis"
users=$(jq -r .user_id "$WORK/out.jsonl" | sort -u | wc -l)
log "PASS: $N outputs, exact id set, $users distinct users, every looked-up value equals Redis's ($cmds Redis commands in $trips round trips)"

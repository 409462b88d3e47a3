# tests/integration/lib.sh - shared helpers for integration tests against the
# real broker started by scripts/kafka (sourced, not run).
#
# Each test uses fresh topics and a fresh consumer group (names carry a
# per-run suffix), starts kscore processes through ks_start (PIDs recorded),
# and the EXIT trap stops every process it started. Waits are bounded loops on
# conditions, never fixed sleeps.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KSCORE=${KSCORE_BIN:-$ROOT/build/kscore}
BROKERS=${KSCORE_BROKERS:-127.0.0.1:9092}
RUN_ID=${RUN_ID:-$(date +%s)$$}
TEST_NAME=$(basename "$0" .sh)
WORK=$ROOT/tests/out/$TEST_NAME
rm -rf "$WORK"
mkdir -p "$WORK"
PIDS=()

log() { printf '[%s %s] %s\n' "$TEST_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

cleanup() {
    local rc=${1:-$?}
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    done
    if [ $rc -ne 0 ]; then
        for f in "$WORK"/kscore-*.log; do
            [ -f "$f" ] && { log "---- tail of $f"; tail -20 "$f" >&2; }
        done
    fi
    exit $rc
}
trap cleanup EXIT

require_broker() {
    "$ROOT/scripts/kafka" status >/dev/null 2>&1 ||
        fail "no broker on $BROKERS: run scripts/kafka start first (the README test command does)"
}

# topic NAME PARTITIONS -> creates "NAME-RUN_ID" and prints its name
topic() {
    local name="$1-$RUN_ID"
    "$ROOT/scripts/kafka" topic-create "$name" "$2" 1 >/dev/null 2>&1 ||
        fail "cannot create topic $name"
    echo "$name"
}

# ks_start NAME ARGS... : starts `kscore ARGS` in the background, logs to
# $WORK/kscore-NAME.log; sets KS_PID.
ks_start() {
    local name=$1
    shift
    "$KSCORE" "$@" >>"$WORK/kscore-$name.log" 2>&1 &
    KS_PID=$!
    PIDS+=("$KS_PID")
}

# ks_stop PID [SIGNAL] : signals and waits (bounded 30 s); sets KS_RC to the
# exit code (run it in this shell, not in $(...): only the parent can wait).
ks_stop() {
    local pid=$1 sig=${2:-TERM} i
    kill -"$sig" "$pid" 2>/dev/null || true
    for i in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; fail "pid $pid did not exit within 30 s"; }
    KS_RC=0
    wait "$pid" || KS_RC=$?
}

# consume TOPIC FILE [FORMAT] : the whole topic (to the current end) into FILE.
consume() {
    kcat -b "$BROKERS" -C -t "$1" -o beginning -e -q -f "${3:-%s\n}" >"$2" 2>/dev/null ||
        fail "cannot consume $1"
}

# count TOPIC : records currently in the topic.
count() {
    kcat -b "$BROKERS" -C -t "$1" -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l
}

# end_offsets TOPIC : sum of the partitions' end offsets (a cheap metadata
# query; equals the record count for non-transactional topics).
end_offsets() {
    local parts args=() p
    parts=$(kcat -b "$BROKERS" -L -t "$1" 2>/dev/null | awk '$1 == "partition" { sub(",", "", $2); print $2 }')
    for p in $parts; do args+=(-t "$1:$p:-1"); done
    [ ${#args[@]} -gt 0 ] || { echo 0; return; }
    kcat -b "$BROKERS" -Q "${args[@]}" 2>/dev/null | awk '{ s += $NF } END { print s + 0 }'
}

# wait_count TOPIC N TIMEOUT_S : until TOPIC holds at least N records.
wait_count() {
    local topic=$1 want=$2 timeout=$3 have=0 start=$SECONDS
    while [ $((SECONDS - start)) -lt "$timeout" ]; do
        have=$(end_offsets "$topic")
        [ "$have" -ge "$want" ] && return 0
        sleep 0.2
    done
    fail "$topic has $have records after ${timeout}s, expected $want"
}

# gen ARGS... : kscore gen against the test broker; fails the test if it fails.
gen() {
    "$KSCORE" gen --brokers "$BROKERS" "$@" 2>>"$WORK/gen.log" || fail "kscore gen failed: $(tail -1 "$WORK/gen.log")"
}

# group_lag GROUP : prints the total lag of a consumer group (committed vs end),
# or fails if some partition has no committed offset.
group_lag() {
    local out
    out=$("$ROOT/scripts/kafka" run-class org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
        --bootstrap-server "$BROKERS" --describe --group "$1" 2>/dev/null) || fail "cannot describe group $1"
    echo "$out" >"$WORK/group-$1.txt"
    echo "$out" | awk '$1 != "GROUP" && NF >= 6 {
        if ($4 == "-") { missing = 1 } else { lag += $6 } }
        END { if (missing) print "missing"; else print lag + 0 }'
}

# pipeline_config OUT IN_TOPIC OUT_TOPIC DLQ_TOPIC GROUP [extra --set ...]:
# the fraud example's pipeline pointed at test topics, as --set arguments.
# The metrics endpoint binds an ephemeral port so that several instances (and
# other runs on the machine) never collide; a later --set overrides it.
ks_sets() {
    echo --set "kafka.bootstrap.servers=$BROKERS" --set "input.topics=$1" \
         --set "output.topic=$2" --set "dead_letter.topic=$3" --set "input.group_id=$4" \
         --set "metrics.listen=127.0.0.1:0"
}
EXAMPLE=$ROOT/examples/fraud/pipeline.yaml

# distinct_ids TOPIC : number of distinct "id" values in a topic of JSON records.
distinct_ids() {
    kcat -b "$BROKERS" -C -t "$1" -o beginning -e -q -f '%s\n' 2>/dev/null | jq -r .id | sort -u | wc -l
}

# wait_ids TOPIC N TIMEOUT_S : until TOPIC has outputs for N distinct ids.
wait_ids() {
    local topic=$1 want=$2 timeout=$3 have=0 start=$SECONDS
    while [ $((SECONDS - start)) -lt "$timeout" ]; do
        have=$(distinct_ids "$topic")
        [ "$have" -ge "$want" ] && return 0
        sleep 2
    done
    fail "$topic has outputs for $have distinct ids after ${timeout}s, expected $want"
}

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
# the broker scripts/kafka runs (KSCORE_KAFKA_DIR/KSCORE_KAFKA_PORT pick which)
BROKERS=${KSCORE_BROKERS:-$("$ROOT/scripts/kafka" bootstrap 2>/dev/null || echo 127.0.0.1:9092)}
RUN_ID=${RUN_ID:-$(date +%s)$$}
TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}
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

# topic NAME PARTITIONS [RF] -> creates "NAME-RUN_ID" and prints its name
topic() {
    local name="$1-$RUN_ID"
    "$ROOT/scripts/kafka" topic-create "$name" "$2" "${3:-1}" >/dev/null 2>&1 ||
        fail "cannot create topic $name"
    echo "$name"
}

# ks_start NAME ARGS... : starts `kscore ARGS` in the background, logs to
# $WORK/kscore-NAME.log; sets KS_PID. With KS_NICE set, at that nice value.
ks_start() {
    local name=$1
    shift
    ${KS_NICE:+nice -n "$KS_NICE"} "$KSCORE" "$@" >>"$WORK/kscore-$name.log" 2>&1 &
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

# end_offsets TOPIC [ISOLATION] : sum of the partitions' end offsets (a cheap
# metadata query; equals the record count for non-transactional topics).
# ISOLATION: read_committed (librdkafka's default) gives the last stable
# offsets, read_uncommitted the high watermarks.
end_offsets() {
    local parts args=() p
    # (a broker may be down on purpose: a failed query counts as 0, the caller retries)
    parts=$( (kcat -b "$BROKERS" -L -t "$1" 2>/dev/null || true) |
        awk '$1 == "partition" { sub(",", "", $2); print $2 }')
    for p in $parts; do args+=(-t "$1:$p:-1"); done
    [ ${#args[@]} -gt 0 ] || { echo 0; return; }
    (kcat -b "$BROKERS" ${2:+-X "isolation.level=$2"} -Q "${args[@]}" 2>/dev/null || true) |
        awk '$NF ~ /^[0-9]+$/ { s += $NF } END { print s + 0 }'
}

# replication_factor TOPIC : the fewest replicas any partition of TOPIC has
# (0 when the cluster lists no partition).
replication_factor() {
    (kcat -b "$BROKERS" -L -t "$1" 2>/dev/null || true) |
        awk '$1 == "partition" && $5 == "replicas:" { sub(/,$/, "", $6); n = split($6, r, ",")
                 if (min == "" || n < min) min = n }
             END { print min + 0 }'
}

# partition_end_offsets TOPIC : one "PARTITION END" line per partition.
partition_end_offsets() {
    local parts args=() p
    parts=$(kcat -b "$BROKERS" -L -t "$1" 2>/dev/null |
        awk '$1 == "partition" { sub(",", "", $2); print $2 }') || fail "cannot list $1"
    for p in $parts; do args+=(-t "$1:$p:-1"); done
    [ ${#args[@]} -gt 0 ] || fail "topic $1 has no partitions"
    kcat -b "$BROKERS" -Q "${args[@]}" 2>/dev/null |
        awk '$NF ~ /^-?[0-9]+$/ { p = $0; sub(/.* \[/, "", p); sub(/\].*/, "", p); print p, $NF }' |
        sort -n
}

# group_offsets GROUP TOPIC : one "PARTITION COMMITTED END" line per partition
# of TOPIC, COMMITTED "-" where the group has committed nothing (from
# ConsumerGroupCommand --describe; its table is also saved in $WORK).
group_offsets() {
    local out
    out=$("$ROOT/scripts/kafka" run-class org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
        --bootstrap-server "$BROKERS" --describe --group "$1" 2>/dev/null) || fail "cannot describe group $1"
    echo "$out" >"$WORK/group-$1.txt"
    partition_end_offsets "$2" | while read -r p end; do
        c=$(echo "$out" | awk -v t="$2" -v p="$p" '$2 == t && $3 == p { print $4 }' | head -1)
        echo "$p ${c:--} $end"
    done
}

# check_committed_at_end GROUP TOPIC : fails unless every partition of TOPIC
# has a committed offset for GROUP equal to its end offset.
check_committed_at_end() {
    local rows bad
    rows=$(group_offsets "$1" "$2")
    bad=$(echo "$rows" | awk '$2 != $3')
    [ -n "$rows" ] || fail "no partitions found for $2"
    [ -z "$bad" ] || fail "group $1 on $2: committed offsets differ from end offsets (partition committed end):
$bad
(all: $(echo "$rows" | tr '\n' ';'))"
}

# committed_at_end GROUP TOPIC : prints 1 when every partition of TOPIC has
# a committed offset for GROUP equal to its end offset, else 0 (for wait_for).
committed_at_end() {
    group_offsets "$1" "$2" | awk '$2 != $3 { bad = 1 } END { print (NR > 0 && !bad) ? 1 : 0 }'
}

# wait_for WHAT N TIMEOUT_S PAUSE_S CMD... : until CMD prints a number >= N;
# fails naming WHAT and the last value seen.
wait_for() {
    local what=$1 want=$2 timeout=$3 pause=$4 have=0 start=$SECONDS
    shift 4
    while [ $((SECONDS - start)) -lt "$timeout" ]; do
        have=$("$@")
        [ "$have" -ge "$want" ] && return 0
        sleep "$pause"
    done
    fail "$what: $have after ${timeout}s, expected $want"
}

# wait_count TOPIC N TIMEOUT_S : until TOPIC holds at least N records.
wait_count() { wait_for "records in $1" "$2" "$3" 0.2 end_offsets "$1"; }

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
# the basic example's pipeline pointed at test topics, as --set arguments.
# The metrics endpoint binds an ephemeral port so that several instances (and
# other runs on the machine) never collide; a later --set overrides it.
ks_sets() {
    echo --set "kafka.bootstrap.servers=$BROKERS" --set "input.topics=$1" \
         --set "output.topic=$2" --set "dead_letter.topic=$3" --set "input.group_id=$4" \
         --set "metrics.listen=127.0.0.1:0"
}
EXAMPLE=$ROOT/examples/basic/pipeline.yaml

# ---- window features (issue 9) -------------------------------------------

# windows_pipeline OUT : the fraud example with the issue's window features
# (per user: count, avg, distinct merchants over 1h, seconds since the
# previous event, max over 24h) and output.include_features; the model is
# copied next to OUT.
WINDOW_FEATS='tx_count_1h avg_amount_1h unique_merchants_1h secs_since_last max_amount_24h'
windows_pipeline() {
    cp "$ROOT/examples/basic/model.json" "$(dirname "$1")/"
    python3 - "$EXAMPLE" "$1" <<'PY' || fail "windows_pipeline: cannot write $1"
import sys
s = open(sys.argv[1]).read()
s = s.replace("features:\n", """windows:
  time: ts
  grace: 5m
features:
  - {name: tx_count_1h,         window: {key: user_id, agg: count, size: 1h}}
  - {name: avg_amount_1h,       window: {key: user_id, agg: avg, of: amount, size: 1h}}
  - {name: unique_merchants_1h, window: {key: user_id, agg: count_distinct, of: merchant_category, size: 1h}}
  - {name: secs_since_last,     window: {key: user_id, agg: time_since_last}}
  - {name: max_amount_24h,      window: {key: user_id, agg: max, of: amount, size: 24h, resolution: 1h}}
""", 1)
s = s.replace("  threshold: 0.5\n", "  threshold: 0.5\n  include_features: true\n", 1)
open(sys.argv[2], "w").write(s)
PY
}

# window_features_tsv : output records (JSON lines on stdin) as "id <tab>
# the window features"; window_features TOPIC : the same for every record of
# a topic (duplicates kept), in topic order. Both topic readers below go
# through `records` (defined with the exactly-once helpers): read_committed
# as before (librdkafka's default), but bounded in time, since a partition
# that ends with an aborted transaction can keep `kcat -e` waiting for more
# records. The bounds are far above a full read of these tests' topics
# (60,000 records read in about a second).
window_features_tsv() {
    jq -r --arg f "$WINDOW_FEATS" '[.id] + [.features[($f | split(" "))[]] | tostring] | @tsv'
}
window_features() { records "$1" '%s\n' 120 | window_features_tsv; }

# distinct_ids TOPIC : number of distinct "id" values in a topic of JSON
# records (read for at most 30 s: wait_ids polls it, and a stalled read
# returns a lower bound, which the poll retries).
distinct_ids() { records "$1" '%s\n' 30 | jq -r .id | sort -u | wc -l; }

# wait_ids TOPIC N TIMEOUT_S : until TOPIC has outputs for N distinct ids.
wait_ids() { wait_for "distinct ids in $1" "$2" "$3" 2 distinct_ids "$1"; }

# check_ids_exact FILE N : the records of FILE (JSON lines) carry exactly the
# ids e0..e(N-1) that `kscore gen` gives N events, each once
check_ids_exact() {
    jq -r .id "$1" | sort >"$WORK/ids.have"
    seq 0 $(($2 - 1)) | sed 's/^/e/' | sort >"$WORK/ids.want"
    cmp -s "$WORK/ids.have" "$WORK/ids.want" ||
        fail "the output ids are not exactly e0..e$(($2 - 1)) once each ($(wc -l <"$WORK/ids.have") records)"
}

# ---- online evaluation ---------------------------------------------------

# split_labels SCORES SEED N1 : a label for each output record of SCORES
# (JSON lines with "id" and "score"), drawn with the model's own probability
# (a calibrated model) from awk's srand(SEED), in a shuffled order:
# $WORK/labels.jsonl, its first N1 lines in $WORK/labels1.jsonl, the rest in
# $WORK/labels2.jsonl ({"id", "label"} records).
split_labels() {
    jq -r '[.id, .score] | @tsv' "$1" |
        awk -F'\t' -v seed="$2" 'BEGIN { srand(seed) } {
            printf "%.6f {\"id\":\"%s\",\"label\":%d}\n", rand(), $1, rand() < $2 }' |
        sort -n | cut -d' ' -f2 >"$WORK/labels.jsonl"
    head -n "$3" "$WORK/labels.jsonl" >"$WORK/labels1.jsonl"
    tail -n +"$(($3 + 1))" "$WORK/labels.jsonl" >"$WORK/labels2.jsonl"
}

# check_eval_metrics NAME METRICS PAIRS : kscore_eval_auc, _log_loss and
# _brier in METRICS (a /metrics scrape, one model version) equal
# scikit-learn's on PAIRS (lines "score label") to 1e-9; prints a line per
# metric and fails the test naming NAME otherwise.
check_eval_metrics() {
    "$ROOT/.venv/bin/python" - "$@" <<'PY' || fail "$1: evaluation metrics differ from scikit-learn's"
import re, sys
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
name, metrics, pairs = sys.argv[1:4]
s, y = [], []
for line in open(pairs):
    score, label = line.split()
    s.append(float(score)); y.append(int(label))
want = {"auc": roc_auc_score(y, s), "log_loss": log_loss(y, s), "brier": brier_score_loss(y, s)}
got = {}
for line in open(metrics):
    m = re.match(r"kscore_eval_(auc|log_loss|brier)\{.*\} (\S+)$", line)
    if m:
        got[m.group(1)] = float(m.group(2))
bad = 0
for k, v in want.items():
    ok = k in got and abs(got[k] - v) <= 1e-9
    bad += not ok
    print(f"{'ok' if ok else 'FAIL'}: {name}: {k} kscore {got.get(k)!r} sklearn {v!r} ({len(y)} pairs)")
sys.exit(bad)
PY
}

# ---- observability helpers (metrics endpoint, Prometheus) ----------------

# http_get URL : prints the body (any status); fails the test if nothing answers.
http_get() {
    python3 - "$1" <<'PY' || fail "GET $1: no answer"
import sys, urllib.request, urllib.error
try:
    body = urllib.request.urlopen(sys.argv[1], timeout=10).read()
except urllib.error.HTTPError as e:
    body = e.read()
sys.stdout.buffer.write(body)
PY
}

# http_code URL : prints the HTTP status, or 000 if nothing answers.
http_code() {
    python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

# metrics_url LOGFILE TIMEOUT_S : waits for kscore's "metrics: http://..." log
# line and prints the endpoint's base URL (e.g. http://127.0.0.1:40123).
metrics_url() {
    local logf=$1 timeout=$2 start=$SECONDS url=""
    while [ $((SECONDS - start)) -lt "$timeout" ]; do
        url=$(grep -o 'metrics: http://[^/]*' "$logf" 2>/dev/null | head -1 | cut -d' ' -f2)
        [ -n "$url" ] && { echo "$url"; return 0; }
        sleep 0.2
    done
    fail "no metrics endpoint announced in $logf after ${timeout}s"
}

# metric_sum URL NAME [LABEL_FILTER] : the sum of every sample of NAME (exact
# family, no _bucket/_sum suffix matching) whose labels contain LABEL_FILTER.
# metric_max: the largest such sample (0 when there is none).
metric_fold() {
    http_get "$2/metrics" | awk -v op="$1" -v name="$3" -v filt="${4:-}" '
        $1 !~ /^#/ {
            n = $1; sub(/\{.*/, "", n)
            if (n == name && index($1, filt) > 0) {
                v = $NF + 0
                s = op == "max" ? (v > s ? v : s) : s + v
            }
        }
        END { printf "%.17g\n", s + 0 }'
}
metric_sum() { metric_fold sum "$@"; }
metric_max() { metric_fold max "$@"; }

# wait_metric URL NAME VALUE TIMEOUT_S [LABEL_FILTER] : until metric_sum == VALUE.
wait_metric() {
    local have="" start=$SECONDS
    while [ $((SECONDS - start)) -lt "$4" ]; do
        have=$(metric_sum "$1" "$2" "${5:-}")
        [ "$have" = "$3" ] && return 0
        sleep 0.5
    done
    fail "$2${5:+ [$5]} is $have after ${4}s, expected $3"
}

# wait_http URL CODE TIMEOUT_S : until GET URL answers CODE.
wait_http() {
    local have="" start=$SECONDS
    while [ $((SECONDS - start)) -lt "$3" ]; do
        have=$(http_code "$1")
        [ "$have" = "$2" ] && return 0
        sleep 0.3
    done
    fail "GET $1 answers $have after ${3}s, expected $2: $(http_get "$1" 2>/dev/null | head -c 400)"
}

# free_port : prints a TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# prom_query PROM_URL QUERY : prints the instant query's result as JSON
# ({"status":..., "data":{"result":[...]}}).
prom_query() {
    python3 - "$1" "$2" <<'PY' || fail "Prometheus query failed: $2"
import sys, urllib.parse, urllib.request, urllib.error
url = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
try:
    body = urllib.request.urlopen(url, timeout=10).read()
except urllib.error.HTTPError as e:
    body = e.read()
sys.stdout.buffer.write(body)
PY
}

# prom_value PROM_URL QUERY : the single scalar/vector value of a query, or
# "none" when the result is empty.
prom_value() {
    prom_query "$1" "$2" | jq -r 'if .status != "success" then "error: " + (.error // "?")
        elif (.data.result | length) == 0 then "none"
        elif .data.resultType == "scalar" then .data.result[1]
        else .data.result[0].value[1] end'
}

# ---- Redis (feature-store lookups) ---------------------------------------

# redis_start : starts a private redis-server (Debian's) on a free loopback
# port (REDIS_PORT, kept across restarts), waits (bounded) for PING; sets
# REDIS_PID and REDIS_URL. The EXIT trap kills it like every process here.
REDIS_PORT=
redis_start() {
    command -v redis-server >/dev/null || fail "redis-server not found (scripts/deps installs it)"
    [ -n "$REDIS_PORT" ] || REDIS_PORT=$(free_port)
    mkdir -p "$WORK/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" </dev/null >/dev/null 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
    local i
    for i in $(seq 200); do
        [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "$REDIS_PID" 2>/dev/null || fail "redis-server exited: $(tail -3 "$WORK/redis/redis.log")"
        sleep 0.05
    done
    fail "redis-server on $REDIS_PORT did not answer within 10 s"
}

# redis_kill : SIGKILLs our redis-server and waits for it (its data is gone).
redis_kill() {
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
}

# rcli ARGS... : redis-cli against our server.
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# snapshot_load FILE : SETs every key of a lookup snapshot (JSON lines
# {"key", "value"}, e.g. `kscore gen --profiles`) in our Redis, through
# scripts/redis load (the one loader, also the demo's).
snapshot_load() {
    KSCORE_REDIS_PORT=$REDIS_PORT KSCORE_REDIS_DIR=$WORK/redis "$ROOT/scripts/redis" load "$1" \
        2>>"$WORK/redis-load.log" || fail "loading $1 into Redis failed: $(tail -1 "$WORK/redis-load.log")"
}

# profiles_load N : SETs features:u0..u(N-1) to a JSON profile derived from the
# user number; profile_of U prints it.
profile_of() { printf '{"tx_count_1h": %d, "avg_amount_1h": %d.25, "segment": "seg%d"}' $(($1 % 97)) $(($1 % 1000)) $(($1 % 7)); }
profiles_load() {
    local u
    for ((u = 0; u < $1; u++)); do
        printf '{"key": "features:u%d", "value": ' "$u"; profile_of "$u"; printf '}\n'
    done >"$WORK/profiles.jsonl"
    snapshot_load "$WORK/profiles.jsonl"
    [ "$(rcli dbsize)" -ge "$1" ] || fail "Redis holds $(rcli dbsize) keys, expected $1"
}

# lookup_pipeline FILE URL [REQUIRED] [TTL_MS] : the basic example with a
# `profile` lookup of features:{user_id} (3 fields with defaults -1, -2,
# "unknown") whose values are carried to every output record as
# "profile.tx_count_1h", "profile.avg_amount_1h", "profile.segment".
# timeout_ms is 1000: these tests check values and outages, and the machine
# they share may stall a round trip well past the usual 20 ms (a dead Redis
# refuses connections at once, so outages are still seen at once).
lookup_pipeline() {
    sed -e "s|^  path: model.json|  path: $ROOT/examples/basic/model.json|" \
        -e 's|^  carry_fields: \[user_id, amount\]|  carry_fields: [user_id, amount, profile.tx_count_1h, profile.avg_amount_1h, profile.segment]|' \
        "$EXAMPLE" >"$1"
    grep -q 'profile.segment' "$1" || fail "lookup_pipeline: the example's output section changed"
    cat >>"$1" <<YAML

lookups:
  - name: profile
    redis: {url: "$2", timeout_ms: 1000}
    key: "features:{user_id}"
    type: json
    fields:
      tx_count_1h:   {type: number, default: -1}
      avg_amount_1h: {type: number, default: -2}
      segment:       {type: string, default: unknown}
    cache: {ttl_ms: ${4:-5000}, max_entries: 100000}
    breaker: {failures: 2, cooldown_ms: 300}
    required: ${3:-false}
YAML
}

# check_profiles FILE : every record's profile.* values equal the profile of
# its user (users u<N> with a profile in Redis) unless the record is degraded;
# prints "<records> <degraded> <wrong>".
check_profiles() {
    jq -r '[.user_id, .["profile.tx_count_1h"], .["profile.avg_amount_1h"], .["profile.segment"], (.degraded // [] | join(","))] | @tsv' "$1" |
        awk -F'\t' '{
            n++
            if ($5 == "profile") { d++; if ($2 != -1 || $3 != -2 || $4 != "unknown") w++; next }
            if ($5 != "") { w++; next }
            u = substr($1, 2) + 0
            if ($2 != u % 97 || $3 != (u % 1000) + 0.25 || $4 != "seg" (u % 7)) w++
        } END { print n + 0, d + 0, w + 0 }'
}

# check_snapshot_values RECORDS SNAPSHOT NAME FIELD=DEFAULT... : every output
# record's carried "NAME.FIELD" equals the value the snapshot (Redis's
# content, JSON lines {"key": "features:<user_id>", "value": {...}}) holds for
# its user, or FIELD's DEFAULT (null: none) when the user has no profile or
# the record says "degraded": [NAME]; prints "<records> <degraded> <wrong>".
check_snapshot_values() {
    python3 - "$@" <<'PY'
import json, sys
recs, snap, name, specs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
dflt = {f: json.loads(d) for f, d in (x.split("=", 1) for x in specs)}
prof = {}
for line in open(snap):
    r = json.loads(line)
    prof[r["key"]] = r["value"]
n = deg = wrong = 0
for line in open(recs):
    rec = json.loads(line)
    n += 1
    p = prof.get("features:" + rec["user_id"])
    if name in rec.get("degraded", []):
        deg += 1
        p = None
    for f, d in dflt.items():
        want = d if p is None else p.get(f, d)
        if rec.get(name + "." + f) != want:
            wrong += 1
            if wrong <= 3:
                print(f"{rec['id']}: {name}.{f} = {rec.get(name + '.' + f)!r}, expected {want!r}", file=sys.stderr)
            break
print(n, deg, wrong)
PY
}

# wait_log FILE PATTERN TIMEOUT_S [COUNT] : until FILE has COUNT (default 1)
# lines matching the grep pattern.
wait_log() {
    local f=$1 pat=$2 timeout=$3 want=${4:-1} start=$SECONDS
    while [ $((SECONDS - start)) -lt "$timeout" ]; do
        [ "$(grep -c -- "$pat" "$f" 2>/dev/null || true)" -ge "$want" ] && return 0
        sleep 0.2
    done
    fail "no $want line(s) matching '$pat' in $f after ${timeout}s"
}

# ---- exactly-once (delivery: exactly_once) --------------------------------

# txn_ready CONFIG ARGS... : until `kscore validate -c CONFIG ARGS --online`
# passes (bounded, 120 s): it initializes a throwaway transactional
# producer, so the cluster's transaction log is created and loaded before a
# test's clock starts.
txn_ready() {
    local cfg=$1 i
    shift
    for i in $(seq 60); do
        "$KSCORE" validate -c "$cfg" "$@" --online >>"$WORK/validate.log" 2>&1 && return 0
        sleep 2
    done
    fail "the cluster's transactions are not ready after 120 s: $(tail -2 "$WORK/validate.log")"
}

# records TOPIC FORMAT [SECONDS] : the read_committed view of a topic, one
# line per record, read for at most SECONDS (default 20). Bounded because a
# read_committed consumer may not see the end of a partition whose last
# records are an aborted transaction until more records arrive (librdkafka
# 2.0.2: kcat -e then waits); what was read by then is still exact (only
# committed records), so the waits below see a lower bound and retry.
records() {
    timeout "${3:-20}" kcat -b "$BROKERS" -C -t "$1" -o beginning -e -q \
        -X isolation.level=read_committed -f "$2" 2>/dev/null || true
}

# check_exact OUT DLQ : one record per input, nothing twice, nothing missing:
# N events of which N_BAD (both set by the caller) are dead letters
check_exact() {
    records "$1" '%s\n' 45 >"$WORK/out.jsonl"
    records "$2" '%h\n' 45 >"$WORK/dlq-headers.txt"
    local outs ids dlqs srcs
    outs=$(wc -l <"$WORK/out.jsonl")
    ids=$(grep -o '"id":"[^"]*"' "$WORK/out.jsonl" | sort -u | wc -l)
    dlqs=$(wc -l <"$WORK/dlq-headers.txt")
    # the dead letter's source position identifies its input event
    srcs=$(grep -o '__kscore.errors.partition=[0-9]*,__kscore.errors.offset=[0-9]*' \
        "$WORK/dlq-headers.txt" | sort -u | wc -l)
    log "read_committed: $outs outputs ($ids distinct ids), $dlqs dead letters ($srcs distinct sources)"
    [ "$outs" -eq "$ids" ] || fail "$((outs - ids)) output(s) seen twice"
    [ "$dlqs" -eq "$srcs" ] || fail "$((dlqs - srcs)) dead letter(s) seen twice"
    [ "$dlqs" -eq "$N_BAD" ] || fail "$dlqs dead letters, expected $N_BAD"
    [ $((outs + dlqs)) -eq "$N" ] || fail "$((outs + dlqs)) records for $N events"
}

# open_txn_offsets TOPIC : how many offsets of TOPIC lie past the last stable
# offsets (high watermarks - LSOs, summed over its partitions): above 0 exactly
# while a transaction that wrote records to TOPIC is open, which a
# read_committed reader cannot see past. 0 when a query fails (a broker down).
open_txn_offsets() {
    local hw lso
    hw=$(end_offsets "$1" read_uncommitted) # first: an LSO read later is no smaller
    lso=$(end_offsets "$1" read_committed)
    [ "$hw" -gt 0 ] && [ "$lso" -gt 0 ] && echo $((hw - lso)) || echo 0
}

# committed_total OUT DLQ : outputs + dead letters visible to read_committed
committed_total() {
    echo $(($(records "$1" 'x\n' | wc -l) + $(records "$2" 'x\n' | wc -l)))
}


# ---- model deployments ---------------------------------------------------

# promote_alternating OUT N K LOGFILE CONFIG ARGS... : promotes K times while
# OUT fills with the outputs of a stream of N events: the k-th promotion once
# OUT holds k*N/(K+1) records, so they spread over the stream whatever its
# pace. Versions alternate between "promoted" ($WORK/promoted.json: the
# example's model with another intercept, made here with jq) and the
# example's own (fraud-lr-1); each is written with `kscore deploy -c CONFIG
# ARGS` and waited for (bounded) until LOGFILE says it was applied.
promote_alternating() {
    local out=$1 n=$2 k=$3 logf=$4 cfg=$5 i model version
    shift 5
    local m=$ROOT/examples/basic/model.json
    jq -c '.version = "promoted" | .linear.intercept[0] += 0.5' "$m" >"$WORK/promoted.json"
    for i in $(seq "$k"); do
        wait_for "outputs before promotion $i" $((i * n / (k + 1))) 600 0.2 end_offsets "$out"
        if [ $((i % 2)) = 1 ]; then model=$WORK/promoted.json version=promoted
        else model=$m version=fraud-lr-1; fi
        "$KSCORE" deploy -c "$cfg" "$@" --model "$model" --version "$version" --promote \
            >>"$WORK/deploy.log" 2>&1 || fail "kscore deploy --promote $version: $(tail -1 "$WORK/deploy.log")"
        wait_log "$logf" "(promote $version) applied" 60 $(((i + 1) / 2))
    done
}

# outputs_by_partition IN OUT : joins every event of IN (by "id") with its
# records in OUT and prints one line per partition of IN:
#   PARTITION EVENTS MISSING REPEATED CHANGES
# MISSING: events without an output; REPEATED: events with more than one;
# CHANGES: how often the model_version of the partition's outputs changes in
# offset order (one worker scores a partition's events in order, each batch
# by one routing, so it changes once per promotion that fell in the
# partition's stream, and never back and forth).
outputs_by_partition() {
    kcat -b "$BROKERS" -C -t "$2" -o beginning -e -q -f '%s\n' 2>/dev/null |
        sed -nE 's/.*"id":"([^"]*)".*"model_version":"([^"]*)".*/\1 \2/p' >"$WORK/out-versions.txt" ||
        fail "cannot consume $2"
    kcat -b "$BROKERS" -C -t "$1" -o beginning -e -q -f '%p %o %s\n' 2>/dev/null |
        sed -nE 's/^([0-9]+) ([0-9]+) .*"id":"([^"]*)".*/\1 \2 \3/p' |
        sort -k1,1n -k2,2n >"$WORK/in-ids.txt" || fail "cannot consume $1"
    awk 'NR == FNR { seen[$1]++; version[$1] = $2; next }
        {
            p = $1; events[p]++
            if (!($3 in seen)) { missing[p]++; next }
            if (seen[$3] > 1) repeated[p]++
            if ((p in last) && last[p] != version[$3]) changes[p]++
            last[p] = version[$3]
        }
        END { for (p in events) print p, events[p], missing[p] + 0, repeated[p] + 0, changes[p] + 0 }' \
        "$WORK/out-versions.txt" "$WORK/in-ids.txt" | sort -n
}

#!/usr/bin/env bash
# bench/deploy/kafka.sh - `bench/deploy/run --kafka`: model promotions end to
# end on Kafka (issue 11). Two runs of the same stream, one after the other
# in one invocation: EVENTS events from `kscore gen --rate RATE` (open loop,
# steady) through `kscore run` on the basic example (examples/basic) with
# model.deployments_topic,
#   baseline    no deployment during the stream;
#   promotions  PROMOTIONS `kscore deploy --promote` spread over the stream
#               (by its progress), alternating two model versions (the
#               second made with jq from the example's model.json).
# Each run checks that nothing was lost or failed: every input id has
# exactly one output, nothing dead-lettered, no model error, no refusal, no
# error in kscore's log, and (promotions) the model_version of every input
# partition's outputs changes once per promotion in offset order. Gaps
# between consecutive batches come from kscore itself:
# kscore_batch_gap_max_seconds{model_swap="near"|"none"} (largest over the
# workers; engine/worker.c says what "near" means) and the
# kscore_batch_gap_seconds histogram. One JSON line per run.
#
# kscore also logs, per worker and swap, the gaps around it (engine/worker.c);
# the JSON line lists each swap's largest over the workers.
#
# Usage: bench/deploy/kafka.sh [--update-benchmarks] [--nice N] [EVENTS [RATE [PROMOTIONS]]]
# (defaults 1000000 events, 20000 events/s, 10 promotions). --nice N runs
# kscore (not the broker or the generator) at nice N, e.g. -15 on a machine
# busy with other work: gaps are wall-clock times. The broker is
# scripts/kafka's (KSCORE_KAFKA_PORT, KSCORE_KAFKA_DIR): started if it is
# not running, and then stopped again at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
UPDATE=
[ "${1:-}" = --update-benchmarks ] && { UPDATE=1; shift; }
[ "${1:-}" = --nice ] && { export KS_NICE=$2; shift 2; }
EVENTS=${1:-1000000} RATE=${2:-20000} PROMOTIONS=${3:-10}
STARTED=
if ! "$ROOT/scripts/kafka" status >/dev/null 2>&1; then
    "$ROOT/scripts/kafka" start >&2 || { echo "kafka.sh: the broker did not start" >&2; exit 1; }
    STARTED=1
fi
export TEST_NAME=bench-deploy-kafka
source "$ROOT/tests/integration/lib.sh"
trap 'rc=$?; [ -z "$STARTED" ] || "$ROOT/scripts/kafka" stop >&2 || true; cleanup $rc' EXIT
require_broker
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1e3 }'; }

# one_run NAME PROMOTIONS : prints the run's JSON line (run it in this
# shell, not in $(...): the EXIT trap must see the processes it starts)
one_run() {
    local name=$1 k=$2 in out dlq dep sets url t0 t1
    in=$(topic "$name-tx" 4); out=$(topic "$name-scores" 4); dlq=$(topic "$name-dlq" 1)
    dep=$(topic "$name-deploy" 1)
    sets="$(ks_sets "$in" "$out" "$dlq" "g-$name-$RUN_ID") --set model.deployments_topic=$dep"
    ks_start "$name" run -c "$EXAMPLE" $sets
    local pid=$KS_PID
    url=$(metrics_url "$WORK/kscore-$name.log" 60)
    wait_log "$WORK/kscore-$name.log" "deployments: .* read to offset" 60
    log "$name: $EVENTS events at $RATE/s, $k promotion(s)"
    t0=$SECONDS
    gen --topic "$in" --count "$EVENTS" --rate "$RATE" --seed 51 &
    local gen_pid=$!
    PIDS+=("$gen_pid")
    [ "$k" = 0 ] || promote_alternating "$out" "$EVENTS" "$k" "$WORK/kscore-$name.log" "$EXAMPLE" $sets
    wait "$gen_pid" || fail "generator failed"
    wait_count "$out" "$EVENTS" 600
    t1=$SECONDS
    local near none n_near n_none sum_none errors refused dlqs
    near=$(metric_max "$url" kscore_batch_gap_max_seconds 'model_swap="near"')
    none=$(metric_max "$url" kscore_batch_gap_max_seconds 'model_swap="none"')
    n_near=$(metric_sum "$url" kscore_batch_gap_seconds_count 'model_swap="near"')
    n_none=$(metric_sum "$url" kscore_batch_gap_seconds_count 'model_swap="none"')
    sum_none=$(metric_sum "$url" kscore_batch_gap_seconds_sum 'model_swap="none"')
    # gaps without a swap longer than 10 ms / 50 ms (histogram bounds)
    local over10 over50
    over10=$(awk -v n="$n_none" -v b="$(metric_sum "$url" kscore_batch_gap_seconds_bucket 'model_swap="none",le="0.01"')" 'BEGIN { print n - b }')
    over50=$(awk -v n="$n_none" -v b="$(metric_sum "$url" kscore_batch_gap_seconds_bucket 'model_swap="none",le="0.05"')" 'BEGIN { print n - b }')
    local near50
    near50=$(awk -v n="$n_near" -v b="$(metric_sum "$url" kscore_batch_gap_seconds_bucket 'model_swap="near",le="0.05"')" 'BEGIN { print n - b }')
    errors=$(metric_sum "$url" kscore_model_errors_total)
    refused=$(metric_sum "$url" kscore_deployments_refused_total)
    ks_stop "$pid" TERM
    [ "$KS_RC" = 0 ] || fail "$name: kscore exited $KS_RC"
    dlqs=$(end_offsets "$dlq")
    outputs_by_partition "$in" "$out" >"$WORK/$name-partitions.txt"
    local events missing repeated outs changes
    events=$(awk '{ s += $2 } END { print s + 0 }' "$WORK/$name-partitions.txt")
    missing=$(awk '{ s += $3 } END { print s + 0 }' "$WORK/$name-partitions.txt")
    repeated=$(awk '{ s += $4 } END { print s + 0 }' "$WORK/$name-partitions.txt")
    changes=$(awk '{ printf "%s%d", (NR > 1 ? "," : ""), $5 }' "$WORK/$name-partitions.txt")
    outs=$(wc -l <"$WORK/out-versions.txt")
    # each swap's largest gap over the workers (the i-th line of each worker
    # is the i-th swap)
    local per_swap
    per_swap=$(sed -nE 's/.*(worker-[0-9]+): batch gaps around a model swap: ([0-9., ]+) ms.*/\1 \2/p' \
        "$WORK/kscore-$name.log" | awk '{ w = $1; k = ++n[w]; for (i = 2; i <= NF; i++) { v = $i + 0; if (v > m[k]) m[k] = v }; if (k > K) K = k }
            END { for (k = 1; k <= K; k++) printf "%s%.1f", (k > 1 ? "," : ""), m[k] }')
    [ "$events" = "$EVENTS" ] || fail "$name: $events events in the input topic, expected $EVENTS"
    [ "$missing" = 0 ] && [ "$repeated" = 0 ] && [ "$outs" = "$EVENTS" ] ||
        fail "$name: $missing event(s) without an output, $repeated with several, $outs outputs for $EVENTS events"
    [ "$dlqs" = 0 ] || fail "$name: $dlqs dead letters"
    [ "$errors" = 0 ] && [ "$refused" = 0 ] || fail "$name: $errors model errors, $refused refusals"
    ! grep -q 'level=error' "$WORK/kscore-$name.log" ||
        fail "$name: errors in kscore's log: $(grep 'level=error' "$WORK/kscore-$name.log" | head -2)"
    awk -v k="$k" '$5 != k { bad = 1 } END { exit bad }' "$WORK/$name-partitions.txt" ||
        fail "$name: model_version changes per partition $changes, expected $k each"
    printf '{"bench":"kafka","run":"%s","events":%s,"rate":%s,"promotions":%s,"wall_s":%s,' \
        "$name" "$EVENTS" "$RATE" "$k" $((t1 - t0))
    printf '"lost":%s,"repeated":%s,"dead_letters":%s,"model_errors":%s,"refused":%s,"version_changes_per_partition":"%s",' \
        "$missing" "$repeated" "$dlqs" "$errors" "$refused" "$changes"
    printf '"max_gap_near_swap_ms":%s,"max_gap_without_swap_ms":%s,"gaps_near_swap":%s,"gaps_without_swap":%s,' \
        "$(ms "$near")" "$(ms "$none")" "${n_near%.*}" "${n_none%.*}"
    printf '"mean_gap_without_swap_ms":%s,"gaps_without_swap_over_10ms":%s,"gaps_without_swap_over_50ms":%s,' \
        "$(awk -v s="$sum_none" -v n="$n_none" 'BEGIN { printf "%.2f", n ? s / n * 1e3 : 0 }')" "$over10" "$over50"
    printf '"gaps_near_swap_over_50ms":%s,"largest_gap_per_swap_ms":"%s","nice":"%s"}\n' "$near50" "$per_swap" "${KS_NICE:-0}"
}

one_run baseline 0 >"$WORK/baseline.json"
cat "$WORK/baseline.json"
one_run promotions "$PROMOTIONS" >"$WORK/promotions.json"
cat "$WORK/promotions.json"
OUT=$(cat "$WORK/baseline.json" "$WORK/promotions.json")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
[ -n "$UPDATE" ] || exit 0

f() { jq -r "select(.run == \"$1\") | .$2" <<<"$OUT"; }
verdict=$(awk -v a="$(f promotions max_gap_near_swap_ms)" -v b="$(f promotions max_gap_without_swap_ms)" \
    'BEGIN { print (a <= b + 5) ? "within" : "**not** within" }')
nice_txt=${KS_NICE:+--nice $KS_NICE }
part=$(cat <<MD
<!-- deploy-kafka:begin -->
**End to end on Kafka** (\`bench/deploy/run --kafka --update-benchmarks ${nice_txt}$EVENTS $RATE $PROMOTIONS\`, run of $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $LOAD_BEFORE before and $LOAD_AFTER after: the broker (one node, scripts/kafka), \`kscore gen\` and other agents' work share the machine${KS_NICE:+; kscore at nice $KS_NICE, the broker and the generator not}). $EVENTS events at $RATE events/s (\`kscore gen --rate\`, open loop) into 4 partitions, \`kscore run\` on the basic example (examples/basic: 16 features, logistic regression; 2 workers, batches up to 500, max_wait 5 ms) with \`model.deployments_topic\`; $PROMOTIONS \`kscore deploy --promote\` spread over the stream, alternating two versions. Gaps are kscore's own: \`kscore_batch_gap_max_seconds\` (a worker's batch end to its next; "near" a swap when the swap fell in the gap or a neighbouring one), largest over both workers, and the \`kscore_batch_gap_seconds\` histogram.

| run | lost / repeated / dead letters / errors | model_version changes per input partition | largest gap near a swap | largest gap without a swap | mean gap without | gaps over 50 ms: near / without | wall |
| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |
| no promotions | $(f baseline lost) / $(f baseline repeated) / $(f baseline dead_letters) / $(f baseline model_errors) | $(f baseline version_changes_per_partition) | - | $(f baseline max_gap_without_swap_ms) ms | $(f baseline mean_gap_without_swap_ms) ms | - / $(f baseline gaps_without_swap_over_50ms) of $(f baseline gaps_without_swap) | $(f baseline wall_s) s |
| $PROMOTIONS promotions | $(f promotions lost) / $(f promotions repeated) / $(f promotions dead_letters) / $(f promotions model_errors) | $(f promotions version_changes_per_partition) | **$(f promotions max_gap_near_swap_ms) ms** | **$(f promotions max_gap_without_swap_ms) ms** | $(f promotions mean_gap_without_swap_ms) ms | $(f promotions gaps_near_swap_over_50ms) of $(f promotions gaps_near_swap) / $(f promotions gaps_without_swap_over_50ms) of $(f promotions gaps_without_swap) | $(f promotions wall_s) s |

Every input id had exactly one output in both runs, and each input partition's outputs changed model_version once per promotion. With promotions, the largest gap near a swap is $verdict the largest gap without one plus 5 ms. Each swap's largest gap (over both workers; kscore logs the gaps around every swap): $(f promotions largest_gap_per_swap_ms) ms.
<!-- deploy-kafka:end -->
MD
)
F=$ROOT/BENCHMARKS.md
grep -q '<!-- deploy:end -->' "$F" || { echo "kafka.sh: BENCHMARKS.md has no deployments block (run bench/deploy/run --update-benchmarks first)" >&2; exit 1; }
python3 - "$F" "$part" <<'PY'
import re, sys
path, part = sys.argv[1], sys.argv[2]
text = open(path).read()
if "<!-- deploy-kafka:begin -->" in text:
    text = re.sub(r"<!-- deploy-kafka:begin -->.*?<!-- deploy-kafka:end -->", lambda m: part, text, flags=re.S)
else:
    text = text.replace("<!-- deploy:end -->", "\n" + part + "\n<!-- deploy:end -->", 1)
open(path, "w").write(text)
PY
echo "BENCHMARKS.md updated (deploy-kafka)" >&2

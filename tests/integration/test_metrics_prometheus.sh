#!/usr/bin/env bash
# Debian's real Prometheus server scrapes a running pipeline (loopback, a temp
# data dir, scrape and rule evaluation every second, deploy/kscore.rules.yml and
# deploy/kscore-quality.rules.yml loaded): its HTTP API must return the event
# counters equal to the events the test produced (dead letters included), a
# finite end-to-end latency quantile from histogram_quantile over
# kscore_end_to_end_latency_seconds_bucket, the lag series, every deploy rule
# healthy, and every Grafana dashboard query evaluating without error. The
# pipeline runs the basic example's model with a training reference (drift)
# and online evaluation fed by a labels topic, so the drift and evaluation
# series (kscore_feature_psi, kscore_score_psi, kscore_eval_*) are there for
# the quality rules and the dashboard's quality panels.
source "$(dirname "$0")/lib.sh"
require_broker
command -v prometheus >/dev/null || fail "prometheus not found (Debian package prometheus; scripts/deps installs it)"
N=${KSCORE_TEST_EVENTS:-20000}
RATE=${KSCORE_TEST_RATE:-2000}
BAD=$((N / 100))
IN=$(topic mp-tx 3); OUT=$(topic mp-scores 3); DLQ=$(topic mp-dlq 1); GROUP=g-mp-$RUN_ID
LABELS=$(topic mp-labels 1)

# the model with a training reference (features of other events, as training would)
cp "$ROOT/examples/basic/model.json" "$WORK/model.json"
"$KSCORE" gen --stdout --count 5000 --seed 7 2>/dev/null |
    "$KSCORE" features -c "$EXAMPLE" >"$WORK/train.csv" 2>/dev/null || fail "kscore features"
"$KSCORE" model reference "$WORK/model.json" --sample "$WORK/train.csv" 2>/dev/null ||
    fail "kscore model reference"
ks_start run run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set kafka.statistics.interval.ms=1000 \
    --set "model.path=$WORK/model.json" --set drift.min_rows=100 \
    --set "evaluation.labels_topic=$LABELS" --set "evaluation.store=$WORK/eval.log"
KPID=$KS_PID
URL=$(metrics_url "$WORK/kscore-run.log" 30)
wait_http "$URL/readyz" 200 60

PROM_PORT=$(free_port)
PROM=http://127.0.0.1:$PROM_PORT
mkdir -p "$WORK/prometheus/data"
cp "$ROOT/deploy/kscore.rules.yml" "$ROOT/deploy/kscore-quality.rules.yml" "$WORK/prometheus/"
cat >"$WORK/prometheus/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [kscore.rules.yml, kscore-quality.rules.yml]
scrape_configs:
  - job_name: kscore
    static_configs:
      - targets: ["${URL#http://}"]
YML
prometheus --config.file="$WORK/prometheus/prometheus.yml" --storage.tsdb.path="$WORK/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
PIDS+=("$PROM_PID")
log "prometheus pid $PROM_PID on $PROM scraping $URL"
wait_http "$PROM/-/ready" 200 60
start=$SECONDS
until [ "$(http_get "$PROM/api/v1/targets" | jq -r '.data.activeTargets[0].health // "unknown"')" = up ]; do
    [ $((SECONDS - start)) -lt 30 ] || fail "the kscore target is not up in Prometheus: $(http_get "$PROM/api/v1/targets" | head -c 600)"
    sleep 0.5
done

# events at a steady rate, so rates and latency quantiles have a few samples
gen --topic "$IN" --count "$N" --rate "$RATE" --seed 31 --malformed 0.01
wait_count "$OUT" $((N - BAD)) 300
wait_count "$DLQ" "$BAD" 60
wait_metric "$URL" kscore_events_predicted_total $((N - BAD)) 30
# the delayed labels: drawn with the model's own probability
consume "$OUT" "$WORK/scores.jsonl"
jq -r '[.id, .score] | @tsv' "$WORK/scores.jsonl" |
    awk -F'\t' 'BEGIN { srand(3) } { printf "{\"id\":\"%s\",\"label\":%d}\n", $1, rand() < $2 }' |
    kcat -b "$BROKERS" -P -t "$LABELS" || fail "cannot produce labels"
wait_metric "$URL" kscore_eval_labels_total $((N - BAD)) 120 'outcome="joined"'
wait_metric "$URL" kscore_drift_window_rows $((N - BAD)) 30

# Prometheus has the final counters after its next scrapes
wait_prom() { # QUERY VALUE TIMEOUT
    local have="" start=$SECONDS
    while [ $((SECONDS - start)) -lt "$3" ]; do
        have=$(prom_value "$PROM" "$1")
        [ "$have" = "$2" ] && return 0
        sleep 0.5
    done
    fail "Prometheus: $1 = $have after ${3}s, expected $2"
}
wait_prom 'sum(kscore_events_consumed_total{job="kscore"})' "$N" 30
wait_prom 'sum(kscore_events_predicted_total{job="kscore"})' $((N - BAD)) 10
wait_prom 'sum(kscore_events_dead_lettered_total{job="kscore"})' "$BAD" 10
for cls in $(http_get "$URL/metrics" | sed -n 's/^kscore_events_dead_lettered_total{class="\([a-z_]*\)"} [1-9].*/\1/p'); do
    wait_prom "sum(kscore_events_dead_lettered_total{job=\"kscore\",class=\"$cls\"})" \
        "$(metric_sum "$URL" kscore_events_dead_lettered_total "class=\"$cls\"")" 10
done
wait_prom 'count(kscore_consumer_lag{job="kscore"})' 3 30
wait_prom 'max(kscore_assigned_partitions{job="kscore"})' 3 10
# drift and evaluation series: one PSI per model feature, finite; the
# joined pairs' AUC
nfeat=$(jq '.feature_names | length' "$WORK/model.json")
wait_prom 'count(kscore_feature_psi{job="kscore"} >= 0)' "$nfeat" 30
wait_prom 'count(kscore_score_psi{job="kscore",model_version="fraud-lr-1"} >= 0)' 1 10
wait_prom 'sum(kscore_drift_window_rows{job="kscore"})' $((N - BAD)) 10
wait_prom 'sum(kscore_eval_pairs{job="kscore"})' $((N - BAD)) 30
wait_prom 'count(kscore_eval_auc{job="kscore",variant="primary"} > 0.5)' 1 10

# latency quantiles over the run, from the histogram buckets
p50=$(prom_value "$PROM" 'histogram_quantile(0.50, sum by (le) (increase(kscore_end_to_end_latency_seconds_bucket{job="kscore"}[5m])))')
p95=$(prom_value "$PROM" 'histogram_quantile(0.95, sum by (le) (increase(kscore_end_to_end_latency_seconds_bucket{job="kscore"}[5m])))')
p99=$(prom_value "$PROM" 'histogram_quantile(0.99, sum by (le) (rate(kscore_end_to_end_latency_seconds_bucket{job="kscore"}[5m])))')
log "end-to-end latency from Prometheus: p50 ${p50}s p95 ${p95}s p99 ${p99}s"
awk -v a="$p50" -v b="$p95" -v c="$p99" 'BEGIN { exit !(a > 0 && a <= b && b <= c && c < 60) }' ||
    fail "latency quantiles not sane: p50=$p50 p95=$p95 p99=$p99"
# the recording rule from deploy/ gives a value too
wait_prom 'count(kscore:end_to_end_latency_seconds:p95_5m)' 1 20

# every rule of deploy/kscore.rules.yml evaluates without error on real data
http_get "$PROM/api/v1/rules" >"$WORK/rules.json"
nrules=$(jq '[.data.groups[].rules[]] | length' "$WORK/rules.json")
[ "$nrules" -ge 15 ] || fail "Prometheus loaded $nrules rules"
[ "$(jq '[.data.groups[] | select(.name == "kscore.quality") | .rules[]] | length' "$WORK/rules.json")" = 5 ] ||
    fail "deploy/kscore-quality.rules.yml not loaded: $(jq -c '[.data.groups[].name]' "$WORK/rules.json")"
bad=$(jq -r '[.data.groups[].rules[] | select(.health != "ok" and .health != "unknown") | .name + ": " + (.lastError // "")] | join("; ")' "$WORK/rules.json")
[ -z "$bad" ] || fail "rules unhealthy: $bad"

# every dashboard query runs on the server (Grafana's variables substituted)
jq -r '.panels[].targets[]?.expr' "$ROOT/deploy/grafana/kscore-dashboard.json" |
    sed -e 's/\$__rate_interval/1m/g' -e 's/\$job/.*/g' -e 's/\$instance/.*/g' >"$WORK/dashboard-queries.txt"
nq=0; nonempty=0
while IFS= read -r q; do
    out=$(prom_query "$PROM" "$q")
    [ "$(echo "$out" | jq -r .status)" = success ] || fail "dashboard query fails: $q: $(echo "$out" | jq -r .error)"
    nq=$((nq + 1))
    [ "$(echo "$out" | jq '.data.result | length')" -gt 0 ] && nonempty=$((nonempty + 1))
done <"$WORK/dashboard-queries.txt"
[ "$nonempty" -ge $((nq * 2 / 3)) ] || fail "only $nonempty of $nq dashboard queries returned data"

kill -TERM "$PROM_PID"; wait "$PROM_PID" 2>/dev/null || true
ks_stop "$KPID" TERM
[ "$KS_RC" = 0 ] || fail "kscore run exited $KS_RC"
log "PASS: Prometheus sees consumed=$N predicted=$((N - BAD)) dead-lettered=$BAD, e2e p50=${p50}s p95=${p95}s, $nrules rules healthy, $nq dashboard queries ok ($nonempty with data)"

#!/usr/bin/env bash
# Hot swap under load: while events stream through, the model file is
# replaced (1) by a corrupt file, (2) by a model whose features do not fit
# the pipeline - both refused, the model in service stays - then (3) by a
# good new version, which is swapped in with no pause and no lost event;
# (4) SIGHUP reloads that same file: same version, nothing swapped, a log
# line and kscore_model_reload_unchanged_total 1; (5) a regressor replaces
# the classifier (the pipeline sets no output.threshold, which only binary
# classifiers take). Every output must equal what `kscore predict` computes
# with the model version the record names, and each version's
# kscore_prediction_score histogram on /metrics has its task's buckets (unit
# interval for the classifiers, the regression bounds for the regressor; the
# status page's distribution: the regressor's) and counts equal to the
# histogram of that version's output records.
source "$(dirname "$0")/lib.sh"
require_broker
RATE=${KSCORE_TEST_RATE:-3000}; SECS=20; N=$((RATE * SECS))
IN=$(topic tx 4); OUT=$(topic scores 4); DLQ=$(topic dlq 1)
sed '/^  threshold:/d' "$EXAMPLE" >"$WORK/pipeline.yaml"
cp "$ROOT/examples/basic/model.json" "$WORK/model.json"
V1=$(jq -r .version "$WORK/model.json")
jq -c '.version = "hot-v2" | .linear.intercept[0] += 1.5' "$WORK/model.json" >"$WORK/v2.json"
jq -c '.version = "hot-bad" | .feature_names[0] = "no_such_feature"' "$WORK/model.json" >"$WORK/misfit.json"
jq -c '.version = "hot-reg" | .task = "regression" | del(.classes) | .linear.link = "identity"' \
    "$WORK/model.json" >"$WORK/reg.json"
swap() { cp "$1" "$WORK/model.json.tmp" && mv "$WORK/model.json.tmp" "$WORK/model.json"; }
wait_log() { # wait_log PATTERN TIMEOUT_S
    local start=$SECONDS
    while [ $((SECONDS - start)) -lt "$2" ]; do
        grep -q "$1" "$WORK/kscore-run.log" && return 0
        sleep 0.2
    done
    fail "no '$1' in kscore's log after $2 s"
}

# check_score_histograms METRICS STATUS_JSON RECORDS : for every version on
# /metrics, the kscore_prediction_score buckets are its task's (classifiers:
# 0.05..1 by 0.05; regressors: the regression bounds) and each cumulative
# count equals the number of that version's records whose score (binary
# classifier: "score", regressor: "prediction") is <= the bound; the
# versions are exactly the three that scored; status.json's distribution
# has the bounds of the version in service (the regressor)
check_score_histograms() {
    python3 - "$@" "$V1" <<'PY' || fail "score histograms: see above"
import json, sys
from collections import defaultdict
metrics, status, records, v1 = sys.argv[1:5]
unit = [round(0.05 * i, 2) for i in range(1, 21)]
regression = [-1e6, -1e4, -1e3, -100, -10, -1, -0.1, 0, 0.1, 1, 10, 100, 1e3, 1e4, 1e6]
want_bounds = {v1: unit, "hot-v2": unit, "hot-reg": regression}
buckets = defaultdict(list)  # version -> [(le, cumulative count)]
for line in open(metrics):
    if line.startswith("kscore_prediction_score_bucket{"):
        labels, value = line.rsplit(" ", 1)
        lab = dict(kv.split("=", 1) for kv in labels[labels.index("{") + 1:-1].split(","))
        buckets[lab["model_version"].strip('"')].append((float(lab["le"].strip('"')), int(value)))
scores = defaultdict(list)
for line in open(records):
    r = json.loads(line)
    scores[r["model_version"]].append(r["score"] if "score" in r else r["prediction"])
bad = []
if sorted(buckets) != sorted(want_bounds):
    bad.append(f"versions on /metrics: {sorted(buckets)}, expected {sorted(want_bounds)}")
for v, bs in sorted(buckets.items()):
    les = [le for le, _ in bs]
    if v in want_bounds and les != want_bounds[v] + [float("inf")]:
        bad.append(f"{v}: buckets {les}, expected {want_bounds[v]} and +Inf")
    for le, n in bs:
        want = sum(1 for s in scores[v] if s <= le)
        if n != want:
            bad.append(f"{v}: le={le}: {n} on /metrics, {want} records")
            break
st = json.load(open(status))["score_distribution"]["bounds"]
if st != regression:
    bad.append(f"status.json score_distribution bounds {st}, expected the regressor's {regression}")
for b in bad:
    print("score histograms:", b, file=sys.stderr)
if not bad:
    print("score histograms: " + ", ".join(f"{v} {len(scores[v])} records in {len(bs)} buckets"
          for v, bs in sorted(buckets.items())), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

ks_start run run -c "$WORK/pipeline.yaml" $(ks_sets "$IN" "$OUT" "$DLQ" "g-swap-$RUN_ID") \
    --set model.watch_interval_ms=200
"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --count "$N" --rate "$RATE" --seed 21 \
    2>>"$WORK/gen.log" &
GEN=$!; PIDS+=("$GEN")
URL=$(metrics_url "$WORK/kscore-run.log" 60)
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
wait_log "model reload: $WORK/model.json has the version in service (hot-v2); nothing to swap" 30
wait_metric "$URL" kscore_model_reload_unchanged_total 1 30
log "SIGHUP with the same version: logged, counted, nothing swapped"
wait_count "$OUT" $((RATE * 12)) 120
swap "$WORK/reg.json"
wait_log "model hot-reg is in service (was hot-v2)" 30
log "the regressor hot-reg swapped in for the classifier"
kill -0 "$KS_PID" || fail "kscore died"

wait "$GEN" || fail "generator failed"
wait_ids "$OUT" "$N" 300
wait_metric "$URL" kscore_events_predicted_total "$(end_offsets "$OUT")" 30
http_get "$URL/metrics" >"$WORK/metrics.txt"
http_get "$URL/status.json" >"$WORK/status.json"
ks_stop "$KS_PID" TERM; rc=$KS_RC
[ "$rc" = 0 ] || fail "kscore exited $rc"
[ "$(grep -c 'is in service' "$WORK/kscore-run.log")" -eq 2 ] || fail "expected exactly two swaps"
unchanged=$(awk '$1 == "kscore_model_reload_unchanged_total" { print $2 }' "$WORK/metrics.txt")
reloads=$(awk '$1 == "kscore_model_reloads_total" { print $2 }' "$WORK/metrics.txt")
refused=$(awk '$1 == "kscore_model_reload_failures_total" { print $2 }' "$WORK/metrics.txt")
[ "$unchanged/$reloads/$refused" = 1/2/2 ] ||
    fail "reloads unchanged/swapped/refused on /metrics: $unchanged/$reloads/$refused, expected 1/2/2"
consume "$OUT" "$WORK/online.jsonl"
check_score_histograms "$WORK/metrics.txt" "$WORK/status.json" "$WORK/online.jsonl"

# Each record equals offline predict with the model version it names.
"$KSCORE" gen --stdout --count "$N" --rate 0 --seed 21 2>/dev/null >"$WORK/events.jsonl"
cp "$ROOT/examples/basic/model.json" "$WORK/model.json"
"$KSCORE" predict -c "$WORK/pipeline.yaml" <"$WORK/events.jsonl" 2>/dev/null >"$WORK/off-v1.jsonl"
cp "$WORK/v2.json" "$WORK/model.json"
"$KSCORE" predict -c "$WORK/pipeline.yaml" <"$WORK/events.jsonl" 2>/dev/null >"$WORK/off-v2.jsonl"
cp "$WORK/reg.json" "$WORK/model.json"
"$KSCORE" predict -c "$WORK/pipeline.yaml" <"$WORK/events.jsonl" 2>/dev/null >"$WORK/off-reg.jsonl"
proj='[.id, .model_version, .prediction, .probabilities] | tostring'
cat "$WORK/off-v1.jsonl" "$WORK/off-v2.jsonl" "$WORK/off-reg.jsonl" | jq -r "$proj" | sort -u >"$WORK/offline.key"
jq -r "$proj" "$WORK/online.jsonl" | sort -u >"$WORK/online.key"
bad=$(comm -23 "$WORK/online.key" "$WORK/offline.key" | wc -l)
[ "$bad" -eq 0 ] || { comm -23 "$WORK/online.key" "$WORK/offline.key" | head -3 >&2; fail "$bad records differ from offline predict with their model version"; }
v1=$(grep -c "\"model_version\":\"$V1\"" "$WORK/online.jsonl" || true)
v2=$(grep -c '"model_version":"hot-v2"' "$WORK/online.jsonl" || true)
reg=$(grep -c '"model_version":"hot-reg"' "$WORK/online.jsonl" || true)
[ "$v1" -gt 0 ] && [ "$v2" -gt 0 ] && [ "$reg" -gt 0 ] ||
    fail "expected records from the three versions ($v1 $V1, $v2 hot-v2, $reg hot-reg)"
log "PASS: 2 bad files refused, 1 same-version reload counted, 2 swaps under load (classifier, then regressor); $N ids scored ($v1 by $V1, $v2 by hot-v2, $reg by hot-reg), each equal to offline predict with its version; score histograms per version match the records"

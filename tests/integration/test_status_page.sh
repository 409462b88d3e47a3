#!/usr/bin/env bash
# The live status page in a real browser: headless Chromium (Debian's
# chromium, fresh profile, no network beyond loopback) loads / from a running
# pipeline while events flow, lets the page poll /status.json for a few
# seconds of virtual time, and the DOM must show charts drawn with non-zero
# throughput (each chart canvas records what it drew in data-* attributes),
# the model version, per-partition lag and the ready badge. The screenshot
# is kept as a test artifact: tests/out/test_status_page/status-page.png.
source "$(dirname "$0")/lib.sh"
require_broker
CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || fail "chromium not found (Debian package chromium; scripts/deps installs it)"
IN=$(topic sp-tx 3); OUT=$(topic sp-scores 3); DLQ=$(topic sp-dlq 1); GROUP=g-sp-$RUN_ID

ks_start run run -c "$EXAMPLE" $(ks_sets "$IN" "$OUT" "$DLQ" "$GROUP") --set kafka.statistics.interval.ms=1000
KPID=$KS_PID
URL=$(metrics_url "$WORK/kscore-run.log" 30)
wait_http "$URL/readyz" 200 60

# a steady stream for the whole test (stopped by the EXIT trap if still running)
"$KSCORE" gen --brokers "$BROKERS" --topic "$IN" --rate 1000 --duration 60 --seed 41 --malformed 0.01 \
    >>"$WORK/gen.log" 2>&1 &
PIDS+=("$!")
wait_count "$OUT" 3000 60   # a few seconds of traffic in the page's history

chrome() { # ARGS... : headless Chromium, bounded in time, fresh profile per run
    local profile
    profile=$(mktemp -d "$WORK/chromium-profile.XXXXXX")
    timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --no-default-browser-check \
        --disable-extensions --disable-dev-shm-usage --user-data-dir="$profile" --window-size=1280,1400 --hide-scrollbars \
        --virtual-time-budget=5000 "$@" 2>>"$WORK/chromium.log"
}
chrome --dump-dom "$URL/" >"$WORK/dom.html" || fail "chromium --dump-dom failed: $(tail -3 "$WORK/chromium.log")"

attr() { # CANVAS_ID ATTR
    grep -o "<canvas id=\"$1\"[^>]*>" "$WORK/dom.html" | grep -o "data-$2=\"[^\"]*\"" | cut -d'"' -f2
}
text() { # ELEMENT_ID
    grep -o "id=\"$1\"[^>]*>[^<]*" "$WORK/dom.html" | sed 's/.*>//'
}
for c in chart-throughput chart-latency chart-score chart-dist chart-lag; do
    [ -n "$(attr "$c" points)" ] || fail "the page did not draw $c (the script did not run?)"
    log "$c: points=$(attr "$c" points) max=$(attr "$c" max) last=$(attr "$c" last)"
done
nonzero() { awk -v v="$1" 'BEGIN { exit !(v + 0 > 0) }'; }
nonzero "$(attr chart-throughput points)" || fail "throughput chart has no points"
nonzero "$(attr chart-throughput max)" || fail "throughput chart shows no throughput"
nonzero "$(attr chart-throughput last)" || fail "throughput chart's latest point is zero"
nonzero "$(attr chart-latency max)" || fail "latency chart is empty"
nonzero "$(attr chart-dist max)" || fail "prediction distribution is empty"
[ "$(attr chart-lag points)" = 3 ] || fail "lag chart shows $(attr chart-lag points) partitions, expected 3"
consumed=$(text t-consumed)
nonzero "${consumed//[^0-9.]/}" || fail "the consumed/s tile shows '$consumed'"
[ "$(text ready)" = READY ] || fail "the badge says '$(text ready)'"
grep -q "model fraud-" "$WORK/dom.html" || fail "no model version on the page"
log "tiles: consumed/s=$consumed predicted/s=$(text t-predicted) dlq/s=$(text t-dlq) latency=$(text t-latency) lag=$(text t-lag)"

chrome --screenshot="$WORK/status-page.png" "$URL/" || fail "chromium --screenshot failed: $(tail -3 "$WORK/chromium.log")"
[ "$(head -c 8 "$WORK/status-page.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
    fail "no PNG screenshot"
size=$(stat -c %s "$WORK/status-page.png")
[ "$size" -gt 20000 ] || fail "screenshot is only $size bytes (blank page?)"
rm -rf "$WORK"/chromium-profile.*

ks_stop "$KPID" TERM
[ "$KS_RC" = 0 ] || fail "kscore run exited $KS_RC"
log "PASS: charts drawn with non-zero throughput; screenshot $WORK/status-page.png ($size bytes)"

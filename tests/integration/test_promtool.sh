#!/usr/bin/env bash
# deploy/ is valid: `promtool check rules` accepts every deploy/*.rules.yml,
# `promtool test rules` shows each alert firing on synthetic series (and not
# firing where it should not), the example scrape config passes `promtool
# check config`, and every PromQL query of the Grafana dashboard parses (each
# is checked by promtool as a recording rule, with Grafana's variables
# substituted). No broker needed.
source "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null || fail "promtool not found (Debian package prometheus; scripts/deps installs it)"
DEPLOY=$ROOT/deploy

rules=("$DEPLOY"/*.rules.yml)
[ -f "${rules[0]}" ] || fail "no deploy/*.rules.yml"
promtool check rules "${rules[@]}" >"$WORK/check-rules.txt" 2>&1 ||
    { cat "$WORK/check-rules.txt" >&2; fail "promtool check rules"; }
log "$(grep -c SUCCESS "$WORK/check-rules.txt") rule file(s): $(grep -o '[0-9]* rules found' "$WORK/check-rules.txt" | tr '\n' ' ')"

for t in "$DEPLOY"/*.rules.test.yml; do
    (cd "$DEPLOY" && promtool test rules "$(basename "$t")") >"$WORK/test-rules.txt" 2>&1 ||
        { cat "$WORK/test-rules.txt" >&2; fail "promtool test rules $(basename "$t")"; }
done

(cd "$DEPLOY" && promtool check config prometheus.yml) >"$WORK/check-config.txt" 2>&1 ||
    { cat "$WORK/check-config.txt" >&2; fail "promtool check config deploy/prometheus.yml"; }

DASH=$DEPLOY/grafana/kscore-dashboard.json
jq -e '.panels | length > 0' "$DASH" >/dev/null || fail "$DASH is not a dashboard JSON"
{
    echo "groups:"
    echo "  - name: dashboard"
    echo "    rules:"
    jq -r '.panels[].targets[]?.expr' "$DASH" |
        sed -e 's/\$__rate_interval/1m/g' -e 's/\$job/.*/g' -e 's/\$instance/.*/g' |
        awk '{ gsub(/'"'"'/, "'"''"'"); printf "      - record: dashboard:q%d\n        expr: '"'"'%s'"'"'\n", NR, $0 }'
} >"$WORK/dashboard.rules.yml"
n=$(jq '[.panels[].targets[]?.expr] | length' "$DASH")
promtool check rules "$WORK/dashboard.rules.yml" >"$WORK/check-dashboard.txt" 2>&1 ||
    { cat "$WORK/check-dashboard.txt" >&2; fail "a dashboard query does not parse"; }
grep -q "SUCCESS: $n rules found" "$WORK/check-dashboard.txt" || fail "expected $n dashboard queries checked"
log "PASS: rules checked and unit-tested, scrape config valid, $n dashboard queries parse"

#!/usr/bin/env bash
# test_features.sh - `kscore features`, no broker: point-in-time feature rows
# for training sets, through the same stages as `kscore predict`.
#
#   1. oracle: 4,000 events of tests/windows/oracle.py (200 users, times out
#      of order within and beyond the grace, missing values) through the
#      oracle's own config, which has no model: all 12 window columns equal
#      the brute force by id; the events the oracle refuses (a missing window
#      key) are the dead letters on stderr, and are the only rows missing.
#   2. the fraud example (window features, a profile lookup from a snapshot,
#      a model): on 5,000 `kscore gen --fraud` events, every row of
#      `kscore features` equals, column for column and bit for bit, the
#      "features" object `kscore predict` writes for the same event, in the
#      same order; its window columns equal the oracle; its profile columns
#      equal the snapshot's values.
#   3. usage: the header, a bad argument.
set -euo pipefail
KS=${KSCORE_BIN:?}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${KSCORE_PYTHON:-python3}
ORACLE=$ROOT/tests/windows/oracle.py
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. the oracle's events and config (no model section)
"$PY" "$ORACLE" gen 4000 200 5 "$T/ev.tsv"
"$PY" "$ORACLE" jsonl "$T/ev.tsv" >"$T/ev.jsonl"
{ "$PY" "$ORACLE" config | sed 's/^  fields:$/  fields:\n    id:          {type: string, required: true}/'
  printf 'output: {topic: o, id_field: id}\ndead_letter: {topic: d}\n'; } >"$T/oracle.yaml"
grep -q '^model' "$T/oracle.yaml" && fail "the oracle's config has a model section"
"$KS" features -c "$T/oracle.yaml" <"$T/ev.jsonl" >"$T/oracle.csv" 2>"$T/oracle.dlq" ||
    fail "kscore features exited $? on the oracle's config: $(head -2 "$T/oracle.dlq")"
feats=$("$PY" -c "import sys; sys.path.insert(0, '$ROOT/tests/windows'); import oracle; print(' '.join(f[0] for f in oracle.FEATURES))")
# shellcheck disable=SC2086
"$PY" "$ORACLE" check "$T/ev.jsonl" "$T/oracle.csv" $feats || fail "window columns differ from the oracle"
refused=$(jq -r 'select(.merchant_id == null) | .id' "$T/ev.jsonl" | wc -l)
[ "$(jq -r .error_class "$T/oracle.dlq" | grep -c missing_field)" = "$refused" ] ||
    fail "dead letters: $(wc -l <"$T/oracle.dlq"), expected $refused missing_field"
[ "$(($(wc -l <"$T/oracle.csv") - 1 + refused))" = 4000 ] || fail "rows + dead letters != 4000"
echo "ok: 12 window columns of $((4000 - refused)) rows equal the oracle; $refused dead letters"

# 2. the fraud example: features == predict's features, == oracle, == snapshot
EX=$ROOT/examples/fraud/pipeline.yaml
"$KS" gen --stdout --count 5000 --keys 300 --seed 5 --fraud 0.003 --malformed 0.01 \
    2>/dev/null >"$T/fraud.jsonl"
"$KS" gen --profiles "$T/profiles.jsonl" --keys 250  # users u250.. have no profile: defaults
"$KS" features -c "$EX" --lookup "profile=$T/profiles.jsonl" <"$T/fraud.jsonl" \
    >"$T/fraud.csv" 2>"$T/fraud.dlq"
"$KS" predict -c "$EX" --lookup "profile=$T/profiles.jsonl" <"$T/fraud.jsonl" \
    >"$T/fraud.out" 2>"$T/predict.dlq"
cmp -s "$T/fraud.dlq" "$T/predict.dlq" || fail "features and predict dead-lettered differently"
[ "$(wc -l <"$T/fraud.dlq")" = 50 ] || fail "$(wc -l <"$T/fraud.dlq") dead letters, expected the 50 malformed events"
"$PY" - "$T/fraud.csv" "$T/fraud.out" "$T/profiles.jsonl" <<'PY' || fail "features rows differ from predict's features"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
recs = [json.loads(l) for l in open(sys.argv[2])]
prof = {json.loads(l)["key"][9:]: json.loads(l)["value"] for l in open(sys.argv[3])}
assert len(rows) == len(recs) == 4950, (len(rows), len(recs))
names = list(recs[0]["features"])
head = list(rows[0])
assert head[:2] == ["id", "line"] and head[2:] == names, head
seg = {"new": 0, "regular": 1, "premium": 2}
for r, rec in zip(rows, recs):
    assert r["id"] == rec["id"], (r["id"], rec["id"])
    for n in names:
        want = rec["features"][n]
        have = None if r[n] == "" else float(r[n])
        assert have == want, (r["id"], n, have, want)
    p = prof.get(rec["user_id"])
    f = rec["features"]
    if p is None:
        assert f["chargebacks_90d"] == 0 and f["segment"] == -1 and f["amount_vs_usual"] == 1, rec
    else:
        assert f["chargebacks_90d"] == p["chargebacks_90d"] and f["segment"] == seg[p["segment"]], rec
        assert f["amount_vs_usual"] == rec["amount"] / p["avg_amount_90d"], rec
print(f"{len(rows)} rows x {len(names)} columns equal predict's features; profile columns equal the snapshot")
PY
# the oracle sees the events kscore did not dead-letter (by line number)
awk 'NR == FNR { bad[$1] = 1; next } !(FNR in bad)' <(jq -r .line "$T/fraud.dlq") "$T/fraud.jsonl" \
    >"$T/fraud-good.jsonl"
"$PY" "$ORACLE" check "$T/fraud-good.jsonl" "$T/fraud.csv" tx_count_1h avg_amount_1h unique_merchants_1h secs_since_last:86400 >/dev/null ||
    fail "the fraud example's window columns differ from the oracle"
echo "ok: the fraud example's features equal predict's, the oracle's and the snapshot's"

# 3. usage
"$KS" --help | grep -q "kscore features -c pipeline.yaml" || fail "kscore --help lacks features"
rc=0; "$KS" features -c "$EX" --bogus </dev/null >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "a bad argument exited $rc, expected 2"
echo "PASS"

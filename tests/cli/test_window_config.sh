#!/usr/bin/env bash
# Malformed window configs (windows:, features' window:, state.*) are refused
# with exit 2 and a message naming the file, the line and the key; none
# crashes or hangs.
#
#   corpus    each tests/fuzz/corpus/fuzz_config/windows_bad_*.yaml (also
#             replayed by the fuzz_config target) starts with "# expect: KEY":
#             `kscore validate` must exit 2 with "kscore: FILE:LINE: KEY..."
#   mutants   250 seeded mutations of the corpus's windows.yaml (a token
#             replaced, a character dropped, a line duplicated or dropped,
#             brackets cut): each exits 0 or 2, never by a signal or a
#             timeout, and an exit 2 says "kscore: ..." in one line
set -euo pipefail
KS=$(realpath "${KSCORE_BIN:?}")
CORPUS=tests/fuzz/corpus/fuzz_config
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fails=0
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

n=0
for f in "$CORPUS"/windows_bad_*.yaml; do
    want=$(sed -n '1s/^# expect: //p' "$f")
    [ -n "$want" ] || { bad "$f has no '# expect:' line"; continue; }
    rc=0
    out=$(timeout 10 "$KS" validate -c "$f" 2>&1 >/dev/null) || rc=$?
    n=$((n + 1))
    [ "$rc" = 2 ] || { bad "$f: exit $rc, expected 2 ($out)"; continue; }
    re='^kscore: ([^:]*):([0-9]+): (.*)$'
    if ! [[ "$out" =~ $re ]] || [ "${BASH_REMATCH[1]}" != "$f" ] ||
        [[ "${BASH_REMATCH[3]}" != "$want"* ]]; then
        bad "$f: expected 'kscore: $f:LINE: $want...', got: $out"
    fi
done
[ "$n" -ge 20 ] || bad "only $n malformed window configs in $CORPUS"

cp examples/basic/model.json "$WORK/"
python3 - "$CORPUS/windows.yaml" "$WORK" <<'PY'
import random, sys
src = open(sys.argv[1]).read().splitlines(keepends=True)
tokens = ["", "0", "-1", "1h", "0s", "1ms", "99999999999999999999d", "[]", "{}", "[a, b]", "null",
          "~", "count", "ewma", "last", "user_id", "amount", "ts", "processing", "\"\"", ":", "{",
          "]", "1e308", "nan", "5m5m", "key", "window", "size", "of", "agg", "time_since_last"]
rnd = random.Random(9)
for i in range(250):
    lines = list(src)
    for _ in range(1 + rnd.randrange(3)):
        j = rnd.randrange(len(lines))
        line, op = lines[j], rnd.randrange(5)
        if op == 0:   # a token replaced
            words = [w for w in line.replace(",", " ").replace("}", " ").split() if w]
            if words:
                lines[j] = line.replace(rnd.choice(words), rnd.choice(tokens), 1)
        elif op == 1 and len(line) > 1:  # a character dropped
            k = rnd.randrange(len(line) - 1)
            lines[j] = line[:k] + line[k + 1:]
        elif op == 2:
            lines.insert(j, line)
        elif op == 3:
            del lines[j]
        else:         # cut at a random point
            lines[j] = line[:rnd.randrange(len(line) + 1)] + "\n"
    open("%s/m%03d.yaml" % (sys.argv[2], i), "w").write("".join(lines))
PY
codes=""
for f in "$WORK"/m*.yaml; do
    rc=0
    out=$(cd "$WORK" && timeout 10 "$KS" validate -c "$(basename "$f")" 2>&1 >/dev/null) || rc=$?
    codes="$codes $rc"
    case $rc in
    0) ;;
    2) [ "$(grep -c '^kscore: ' <<<"$out")" -ge 1 ] || bad "$f: exit 2 without a 'kscore:' message: $out" ;;
    *) bad "$f: exit $rc (signal or hang): $out"; cp "$f" "tests/out-$(basename "$f")" 2>/dev/null || true ;;
    esac
done
echo "$n malformed window configs refused with file:line: key; mutants' exit codes:" \
    "$(tr ' ' '\n' <<<"$codes" | grep . | sort | uniq -c | tr '\n' ' ')" >&2
[ "$fails" = 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo PASS >&2

#!/usr/bin/env bash
# test_layers.sh - the folder tree is the architecture: includes point down
# only. A file may include headers of its own folder and of the layers below
# it, never above or beside:
#
#   base  <-  decode, model  <-  features  <-  kafka, lookup, state  <-  engine  <-  obs  <-  cli
#
# (features compile expressions over decoded values; kafka knows clients,
# produce, commits and offsets, not batches; lookup is the feature-store
# client (Redis); state is the window features' per-partition store; the
# engine runs batches through stages and sinks on Kafka workers; obs reads
# the engine through engine/status.h; cli is the command and its tools.)
#
# Above the engine, its headers are private but for a small surface:
#   - obs may include engine/status.h only (never pipeline.h, batch.h...);
#   - cli's tools may include engine/config.h only (backtest reads the
#     config table), and src/cli/main.c uses nothing but the public
#     include/kscore/kscore.h and cli's own headers, transitively (the
#     cli headers it includes may not pull internals in either).
# include/kscore/kscore.h is the engine's public API: engine and above may
# include it; it includes no internal header itself.
#
# Both include forms are read: "..." and <...> (src/ is on the include path,
# so <engine/pipeline.h> compiles too); a <...> whose first folder is not a
# layer is a system header. Relative paths ("../engine/pipeline.h", a bare
# "x.h" next to the file) are resolved to the file they name.
#
#   test_layers.sh          checks the tree, then proves that the check
#                           fails: it runs itself on a copy of src/ and
#                           include/ with one violation of each rule
#                           injected and expects exactly those reported
#   test_layers.sh ROOT     checks the tree under ROOT only
#
# Each violation is printed as FILE:LINE: the include and why; exits 1 if any.
set -euo pipefail
SELF=$(realpath "${BASH_SOURCE[0]}")
if [ $# -gt 0 ]; then
    cd "$1"
    SELF_TEST=0
else
    cd "$(dirname "$SELF")/../.."
    SELF_TEST=1
fi

rank() {
    case "$1" in
    base) echo 0 ;;
    decode | model) echo 1 ;;
    features) echo 2 ;;
    kafka | lookup | state) echo 3 ;;
    engine) echo 4 ;;
    obs) echo 5 ;;
    cli) echo 6 ;;
    kscore) echo 4 ;; # include/kscore/kscore.h: implemented by the engine
    *) echo -1 ;;
    esac
}

# engine headers a layer above the engine may include ("" = any: the engine itself)
engine_surface() {
    case "$1" in
    obs) echo "engine/status.h" ;;
    cli) echo "engine/config.h" ;;
    *) echo "" ;;
    esac
}

# resolve FILE QUOTE TARGET -> the included file as LAYER/PATH (e.g.
# engine/pipeline.h), "" for a system header, "?PATH" for a path outside
# src/ and include/
resolve() {
    local file=$1 q=$2 target=$3 path
    if [ "$q" = '<' ]; then
        [[ "$target" == */* ]] && [ "$(rank "${target%%/*}")" -ge 0 ] && echo "$target"
        return 0
    fi
    if [[ "$target" == ./* || "$target" == ../* || "$target" != */* ]]; then
        # relative to the including file (where the compiler looks first)
        path=$(realpath -m --relative-to=. "$(dirname "$file")/$target")
        case "$path" in
        src/*) echo "${path#src/}" ;;
        include/*) echo "${path#include/}" ;;
        *) echo "?$path" ;;
        esac
    else
        echo "$target"
    fi
}

bad=0
checked=0
declare -A INCS # file -> its resolved internal includes ("LINE:TARGET" lines)
re='^[[:space:]]*#[[:space:]]*include[[:space:]]*([<"])([^">]+)[">]'
while IFS= read -r file; do
    case "$file" in
    include/*) layer=${file#include/} ;;
    *) layer=${file#src/} ;;
    esac
    layer=${layer%%/*}
    lr=$(rank "$layer")
    if [ "$lr" -lt 0 ]; then
        echo "$file: folder ${file%/*} is not a known layer (add it to tests/unit/test_layers.sh)"
        bad=1
        continue
    fi
    surface=$(engine_surface "$layer")
    while IFS=: read -r line inc; do
        [[ "$inc" =~ $re ]] || continue
        target=$(resolve "$file" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")
        [ -n "$target" ] || continue # a system header
        shown="${BASH_REMATCH[1]}${BASH_REMATCH[2]}${BASH_REMATCH[1]/</>}"
        checked=$((checked + 1))
        INCS[$file]+="$line:$target"$'\n'
        tl=${target%%/*}
        tr=$(rank "$tl")
        if [[ "$target" == \?* ]]; then
            echo "$file:$line: includes $shown, outside src/ and include/"
            bad=1
        elif [ "$tr" -lt 0 ]; then
            echo "$file:$line: includes $shown from no known layer"
            bad=1
        elif [[ "$file" == include/* ]]; then
            [ "$tl" = kscore ] || {
                echo "$file:$line: includes $shown: the public header may include no internal header"
                bad=1
            }
        elif [ "$tl" = kscore ]; then
            [ "$lr" -ge 4 ] || {
                echo "$file:$line: includes $shown: the public API is for the engine and above ($layer is layer $lr)"
                bad=1
            }
        elif [ "$tl" != "$layer" ] && [ "$tr" -ge "$lr" ]; then
            echo "$file:$line: includes $shown: $layer (layer $lr) may not depend on $tl (layer $tr)"
            bad=1
        elif [ "$tl" = engine ] && [ -n "$surface" ] && [ "$target" != "$surface" ]; then
            echo "$file:$line: includes $shown: $layer may include only $surface of the engine's headers"
            bad=1
        fi
    done < <(grep -n -E "$re" "$file" || true)
done < <(find src include -name '*.[ch]' | sort)

# src/cli/main.c: the public API and cli's own headers, transitively
if [ -f src/cli/main.c ]; then
    declare -A seen=([src/cli/main.c]=1)
    queue=(src/cli/main.c)
    while [ ${#queue[@]} -gt 0 ]; do
        f=${queue[0]}
        queue=("${queue[@]:1}")
        while IFS=: read -r line target; do
            [ -n "$target" ] || continue
            case "$target" in
            kscore/kscore.h) continue ;;
            cli/*)
                if [ -z "${seen[src/$target]:-}" ] && [ -f "src/$target" ]; then
                    seen[src/$target]=1
                    queue+=("src/$target")
                fi
                ;;
            *)
                echo "$f:$line: includes \"$target\": src/cli/main.c (through $f) uses only" \
                    "kscore/kscore.h and cli's headers"
                bad=1
                ;;
            esac
        done <<<"${INCS[$f]:-}"
    done
fi

# the check itself must see the tree: a refactor that empties src/ or changes
# the include style would otherwise pass silently
if [ "$checked" -lt 100 ]; then
    echo "only $checked includes checked: is the tree or the include style different?"
    bad=1
fi
[ "$bad" = 0 ] && echo "layers ok: $checked includes point down"
[ "$SELF_TEST" = 1 ] && [ "$bad" = 0 ] || exit "$bad"

# ---- the check can fail: one violation of each rule in a copy ------------
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cp -r src include "$T/"
inject() { # inject FILE LINE_TEXT EXPECTED_MESSAGE_PART: appended to FILE
    echo "$2" >>"$T/$1"
    WANT+=("$1:$(wc -l <"$T/$1"): ${3}")
}
WANT=()
inject src/obs/http.c '#include "engine/pipeline.h"' \
    'includes "engine/pipeline.h": obs may include only engine/status.h'
inject src/obs/obs.c '#include <engine/batch.h>' \
    'includes <engine/batch.h>: obs may include only engine/status.h'
inject src/obs/kafka_stats.c '#include "../engine/worker.h"' \
    'includes "../engine/worker.h": obs may include only engine/status.h'
inject src/cli/backtest.c '  #  include "engine/pipeline.h"' \
    'includes "engine/pipeline.h": cli may include only engine/config.h'
inject src/cli/main.c '#include "base/common.h"' \
    'includes "base/common.h": src/cli/main.c (through src/cli/main.c) uses only'
inject src/cli/cli.h '#include "model/model.h"' \
    'includes "model/model.h": src/cli/main.c (through src/cli/cli.h) uses only'
inject src/kafka/client.c '#include <engine/stage.h>' \
    'includes <engine/stage.h>: kafka (layer 3) may not depend on engine (layer 4)'
inject src/base/log.c '#include "kscore/kscore.h"' \
    'includes "kscore/kscore.h": the public API is for the engine and above'
inject src/engine/worker.c '#include "obs/http.h"' \
    'includes "obs/http.h": engine (layer 4) may not depend on obs (layer 5)'
inject src/features/expr.c '#include "lookup/lookup.h"' \
    'includes "lookup/lookup.h": features (layer 2) may not depend on lookup (layer 3)'
inject include/kscore/kscore.h '#include "base/common.h"' \
    'includes "base/common.h": the public header may include no internal header'
inject src/state/window.c '#include "../../tests/unit/test.h"' \
    'includes "../../tests/unit/test.h", outside src/ and include/'
mkdir "$T/src/extra" && echo '/* a folder that is no layer */' >"$T/src/extra/x.c"
WANT+=("src/extra/x.c: folder src/extra is not a known layer")

rc=0
bash "$SELF" "$T" >"$T/report" || rc=$?
fails=0
[ "$rc" = 1 ] || { echo "self-test: the check exited $rc on a tree with violations (want 1)"; fails=1; }
for w in "${WANT[@]}"; do
    grep -qF -- "$w" "$T/report" || { echo "self-test: not reported: $w"; fails=1; }
done
got=$(grep -c . "$T/report" || true)
if [ "$got" != "${#WANT[@]}" ]; then
    echo "self-test: ${#WANT[@]} violations injected, $got lines reported:"
    cat "$T/report"
    fails=1
fi
[ "$fails" = 0 ] && echo "self-test ok: the ${#WANT[@]} injected violations (each rule, both include forms) are reported"
exit "$fails"

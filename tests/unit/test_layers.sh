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
# engine runs batches through
# stages and sinks on Kafka workers; obs reads the engine through
# engine/status.h; cli is the command and its tools.) The public header
# include/kscore/kscore.h is the engine's API: engine and above only.
# Each violation is printed as FILE:LINE: the include and why; exits 1 if any.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

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

bad=0
checked=0
while IFS= read -r file; do
    layer=${file#src/}
    layer=${layer%%/*}
    lr=$(rank "$layer")
    if [ "$lr" -lt 0 ]; then
        echo "$file: folder src/$layer is not a known layer (add it to tests/unit/test_layers.sh)"
        bad=1
        continue
    fi
    while IFS=: read -r line inc; do
        target=$(sed -E 's/^#include "([^"]+)".*/\1/' <<<"$inc")
        tl=${target%%/*}
        [ "$tl" = "$target" ] && continue # same-folder include without a path
        tr=$(rank "$tl")
        checked=$((checked + 1))
        if [ "$tr" -lt 0 ]; then
            echo "$file:$line: includes \"$target\" from no known layer"
            bad=1
        elif [ "$tl" = kscore ] && [ "$lr" -ge 4 ]; then
            :
        elif [ "$tl" != "$layer" ] && [ "$tr" -ge "$lr" ]; then
            echo "$file:$line: includes \"$target\": $layer (layer $lr) may not depend on $tl (layer $tr)"
            bad=1
        fi
    done < <(grep -n '^#include "' "$file" || true)
done < <(find src -name '*.[ch]' | sort)

# the check itself must see the tree: a refactor that empties src/ or changes
# the include style would otherwise pass silently
if [ "$checked" -lt 100 ]; then
    echo "only $checked includes checked: is the tree or the include style different?"
    bad=1
fi
[ "$bad" = 0 ] && echo "layers ok: $checked includes point down"
exit "$bad"

#!/bin/sh
# Enforce the one-way rule util <- core <- formats <- plan <- (daemon, cli) on
# #include lines: a layer may include its own headers, those of the layers
# below it, the public headers of the layers below it, and the libraries it
# is allowed. The private headers of the layers above are found in the tree.
set -u
src=${top_srcdir:-.}/src
fail=0

headers_of() { # the private header names of the given layers, as a regex alternation
    for d in "$@"; do
        for h in "$src/$d"/*.h "$src/$d"/*/*.h "$src/$d"/*/*/*.h; do
            [ -f "$h" ] && basename "$h"
        done
    done | sed 's/\./\\./g' | sort -u | paste -sd'|' -
}

check() { # layer, forbidden library/public headers (regex), higher layers...
    layer=$1 libs=$2
    shift 2
    private=$(headers_of "$@")
    re="^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"](${libs}${private:+|(.*/)?($private)}|($(echo "$@" | tr ' ' '|'))/)[\">]"
    hits=$(find "$src/$layer" -name '*.[ch]' -exec grep -nHE "$re" {} + 2>/dev/null)
    if [ -n "$hits" ]; then
        echo "layer $layer includes what it must not:"
        echo "$hits"
        fail=1
    fi
}

check util 'jansson\.h|microhttpd\.h|uv\.h|uv/|squant/(squant|tensor|quant|format|plan)\.h' core formats plan daemon cli
check core 'jansson\.h|microhttpd\.h|uv\.h|uv/|squant/(squant|format|plan)\.h' formats plan daemon cli
check formats 'microhttpd\.h|uv\.h|uv/|squant/(squant|plan)\.h' plan daemon cli
check plan 'microhttpd\.h|uv\.h|uv/' daemon cli
check cli 'microhttpd\.h' daemon
[ $fail -eq 0 ] && echo "layers: ok"
exit $fail

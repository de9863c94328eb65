#!/bin/sh
# Enforce the one-way rule util <- core <- formats <- plan <- (daemon, cli)
# on #include lines: a layer may include its own headers, the headers of the
# layers below it, the public headers and the libraries it is allowed.
set -u
src=${top_srcdir:-.}/src
fail=0
check() { # layer, extended regex of forbidden includes
    hits=$(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($2)" "$src/$1"/*.[ch] "$src/$1"/*/*.[ch] "$src/$1"/*/*/*.[ch] 2>/dev/null)
    if [ -n "$hits" ]; then
        echo "layer $1 includes what it must not:"; echo "$hits"; fail=1
    fi
}
check util  'jansson|microhttpd|uv\.h|uv/|core/|formats/|plan/|daemon/|cli/|squant/(format|plan)\.h|.*(npy|safetensors|plan|http|config)\.h'
check core  'jansson|microhttpd|uv\.h|uv/|formats/|plan/|daemon/|cli/|squant/(format|plan)\.h|(npy|safetensors|plan|http|config)\.h'
check formats 'microhttpd|uv\.h|uv/|plan/|daemon/|cli/|squant/plan\.h|(plan|http|config)\.h'
check plan  'microhttpd|uv\.h|uv/|daemon/|cli/|(http|config)\.h'
check cli   'microhttpd|daemon/'
if [ $fail -eq 0 ]; then echo "layers: ok"; fi
exit $fail

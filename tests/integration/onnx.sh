#!/bin/sh
# ONNX over HTTP: application/onnx and magic-byte detection, ONNX out by
# default, format= and Accept, multipart external-data parts named by their
# location (sync and async), and answers byte-identical to the CLI's.
. "${top_srcdir:-.}/tests/integration/lib.sh"
$PYTHON "$top_srcdir/tests/onnx/gen_models.py" "$T" || fail "gen_models.py"
start_daemon

"$SQUANT" quantize -q -b 4 "$T/ops13.onnx" -o "$T/cli.onnx"
http POST '/v1/quantize?bits=4' -H 'Content-Type: application/onnx' --data-binary @"$T/ops13.onnx"
expect_status 200 "ONNX in"
check "ONNX out by default" [ "$(header Content-Type)" = application/onnx ]
check "the answer is the CLI's, byte for byte" cmp -s "$T/body" "$T/cli.onnx"
http POST '/v1/quantize?bits=4' --data-binary @"$T/ops13.onnx"
expect_status 200 "ONNX recognized by its first bytes"
check "the same bytes without a Content-Type" cmp -s "$T/body" "$T/cli.onnx"

"$SQUANT" quantize -q -b 3 --dequantized "$T/opset9.onnx" -o "$T/cli.d.onnx"
http POST '/v1/quantize?bits=3&format=dequantized' -H 'Content-Type: application/onnx' \
    --data-binary @"$T/opset9.onnx"
expect_status 200 "format=dequantized"
check "dequantized ONNX is application/onnx" [ "$(header Content-Type)" = application/onnx ]
check "dequantized: the CLI's bytes" cmp -s "$T/body" "$T/cli.d.onnx"
"$SQUANT" quantize -q -b 3 --format safetensors "$T/opset9.onnx" -o "$T/cli.st"
http POST '/v1/quantize?bits=3' -H 'Accept: application/vnd.safetensors' --data-binary @"$T/opset9.onnx"
expect_status 200 "Accept: safetensors for an ONNX input"
check "safetensors of an ONNX input: the CLI's bytes" cmp -s "$T/body" "$T/cli.st"

# group-wise QDQ: blocked DequantizeLinear (opset 21) and Cast/Sub/Mul (13)
for gm in groups21 groups13; do
    "$SQUANT" quantize -q -b 4 -g 4 "$T/$gm.onnx" -o "$T/cli.$gm.onnx"
    http POST '/v1/quantize?bits=4&group=4' -H 'Content-Type: application/onnx' --data-binary @"$T/$gm.onnx"
    expect_status 200 "$gm with group=4"
    check "$gm, group=4: the CLI's bytes" cmp -s "$T/body" "$T/cli.$gm.onnx"
done
http POST '/v1/quantize?bits=4&group=4&scale_dtype=F16' -H 'Content-Type: application/onnx' \
    --data-binary @"$T/groups21.onnx"
expect_error 400 bad_parameter "scale_dtype=F16 with ONNX output"

# external data: a part per file, named by its location
"$SQUANT" quantize -q -b 4 "$T/external.onnx" -o "$T/cli.ext.onnx"
http POST '/v1/quantize?bits=4' -F model=@"$T/external.onnx" -F external.bin=@"$T/external.bin"
expect_status 200 "multipart with an external data part"
check "external data: the CLI's bytes" cmp -s "$T/body" "$T/cli.ext.onnx"
http POST '/v1/quantize?bits=4' -F model=@"$T/external.onnx"
expect_error 400 bad_format "external data part missing"
check "the missing part is named" grep -q "external data file 'external.bin' was not given" "$T/body"
http POST '/v1/quantize?bits=4' -F model=@"$T/external.onnx" -F external.bin=@"$T/external.bin" \
    -F external.bin=@"$T/external.bin"
expect_error 400 bad_parameter "two parts of the same name"
http POST /v1/jobs -F model=@"$T/external.onnx" -F external.bin=@"$T/external.bin" -F bits=4
expect_status 202 "async job with external data"
id=$(jget "$T/body" 'd["id"]')
i=0
while [ $i -lt 200 ]; do
    http GET "/v1/jobs/$id"
    [ "$(jget "$T/body" 'd["state"]')" = done ] && break
    sleep 0.05
    i=$((i + 1))
done
http GET "/v1/jobs/$id/result"
expect_status 200 "async result"
check "async result is application/onnx" [ "$(header Content-Type)" = application/onnx ]
check "async external data: the CLI's bytes" cmp -s "$T/body" "$T/cli.ext.onnx"

# an ONNX Content-Type on something else, and packing below opset 21
printf 'not a model' >"$T/junk"
http POST /v1/quantize -H 'Content-Type: application/onnx' --data-binary @"$T/junk"
expect_error 400 bad_format "junk as application/onnx"
http POST '/v1/quantize?bits=4&packing=int4' -H 'Content-Type: application/onnx' --data-binary @"$T/ops13.onnx"
expect_error 422 bad_dtype "int4 packing below opset 21"
check "the refusal names the opset" grep -q "this model's opset is 13" "$T/body"

still_serving "ONNX requests"
stop_daemon
finish

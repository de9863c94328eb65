#!/bin/sh
# Hostile and broken requests: each gets the right 4xx with a JSON error,
# and the daemon keeps serving. Run under the sanitizer build, the daemon's
# log must stay free of reports (checked by stop_daemon).
. "${top_srcdir:-.}/tests/integration/lib.sh"
start_daemon

ST='Content-Type: application/vnd.safetensors'
NPY='Content-Type: application/x-npy'
RAW='Content-Type: application/octet-stream'
$GEN npy "$T/w.npy" 16,8,3,3
$GEN npy "$T/nan.npy" 16,8,3,3 --nan 77
$GEN raw "$T/nan.raw" 16,8,3,3 --nan 77
$GEN npy "$T/bias.npy" 16
$GEN safetensors "$T/two.st" a=8,4,3,3 b=8,4,3,3
$GEN safetensors "$T/bf.st" w=8,4,3,3:BF16 b=8:F16
head -c 200 "$MODEL" >"$T/trunc.st"
head -c 1000 "$T/w.npy" >"$T/trunc.npy"
head -c 100 "$T/w.npy" >"$T/trunc-header.npy"
printf 'this is not a model file at all' >"$T/garbage"
: >"$T/empty"
# safetensors whose header length is absurd, whose JSON is broken, whose offsets overlap or overflow
printf '\377\377\377\377\377\377\377\177{}' >"$T/hugelen.st"
printf '\020\000\000\000\000\000\000\000{"a":{"dtype":' >"$T/badjson.st"
hdr='{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"v":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}}'
printf "$(printf '\\%03o' $((${#hdr} % 256)) $((${#hdr} / 256)) 0 0 0 0 0 0)%s" "$hdr" >"$T/overlap.st"
head -c 24 /dev/zero >>"$T/overlap.st"
hdr='{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}'
printf "$(printf '\\%03o' $((${#hdr} % 256)) $((${#hdr} / 256)) 0 0 0 0 0 0)%s" "$hdr" >"$T/bigshape.st"
head -c 16 /dev/zero >>"$T/bigshape.st"
hdr='{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,18446744073709551615]}}'
printf "$(printf '\\%03o' $((${#hdr} % 256)) $((${#hdr} / 256)) 0 0 0 0 0 0)%s" "$hdr" >"$T/bigoff.st"
head -c 16 /dev/zero >>"$T/bigoff.st"
# .npy with a broken header dict, a non-float dtype, big-endian data, Fortran order
mknpy() { # file header-dict
    h="$2"
    pad=$(( (64 - (10 + ${#h} + 1) % 64) % 64 ))
    { printf '\223NUMPY\001\000'; printf "$(printf '\\%03o' $(((${#h} + pad + 1) % 256)) $(((${#h} + pad + 1) / 256)))";
      printf '%s%*s\n' "$h" "$pad" ''; head -c 64 /dev/zero; } >"$1"
}
mknpy "$T/baddict.npy" "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), "
mknpy "$T/int.npy" "{'descr': '<i4', 'fortran_order': False, 'shape': (4, 4), }"
mknpy "$T/fortran.npy" "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 4), }"
mknpy "$T/short.npy" "{'descr': '<f4', 'fortran_order': False, 'shape': (400, 400), }"
mknpy "$T/negshape.npy" "{'descr': '<f4', 'fortran_order': False, 'shape': (-4, 4), }"

# description | status | code | curl arguments (word-split; no spaces inside)
while IFS='|' read -r desc want code args; do
    [ -n "$desc" ] || continue
    # shellcheck disable=SC2086
    eval "http POST $args"
    expect_error "$want" "$code" "$desc"
done <<CASES
truncated safetensors|400|bad_format|/v1/quantize -H '$ST' --data-binary @$T/trunc.st
truncated npy data|400|bad_format|/v1/quantize -H '$NPY' --data-binary @$T/trunc.npy
truncated npy header|400|bad_format|/v1/quantize -H '$NPY' --data-binary @$T/trunc-header.npy
empty body|400|bad_format|/v1/quantize -H '$ST' --data-binary @$T/empty
empty body without type|400|bad_format|/v1/quantize --data-binary @$T/empty
garbage as safetensors|400|bad_format|/v1/quantize -H '$ST' --data-binary @$T/garbage
garbage as npy|400|bad_format|/v1/quantize -H '$NPY' --data-binary @$T/garbage
garbage without a type|415|unsupported_format|/v1/quantize --data-binary @$T/garbage
safetensors sent as npy|400|bad_format|/v1/quantize -H '$NPY' --data-binary @$MODEL
npy sent as safetensors|400|bad_format|/v1/quantize -H '$ST' --data-binary @$T/w.npy
text/plain|415|unsupported_format|/v1/quantize -H 'Content-Type: text/plain' --data-binary @$T/w.npy
npy sent as onnx|400|bad_format|/v1/quantize -H 'Content-Type: application/onnx' --data-binary @$T/w.npy
application/x-tflite|415|unsupported_format|/v1/quantize -H 'Content-Type: application/x-tflite' --data-binary @$T/w.npy
absurd safetensors header length|400|bad_format|/v1/quantize -H '$ST' --data-binary @$T/hugelen.st
broken safetensors JSON|400|bad_format|/v1/quantize -H '$ST' --data-binary @$T/badjson.st
overlapping safetensors offsets|400|bad_format|/v1/quantize -H '$ST' --data-binary @$T/overlap.st
absurd safetensors shape|413|limit_exceeded|/v1/quantize -H '$ST' --data-binary @$T/bigshape.st
absurd safetensors offset|400|bad_format|/v1/quantize -H '$ST' --data-binary @$T/bigoff.st
broken npy header|400|bad_format|/v1/quantize -H '$NPY' --data-binary @$T/baddict.npy
integer npy|422|no_tensor|/v1/quantize -H '$NPY' --data-binary @$T/int.npy
fortran-order npy|400|bad_format|/v1/quantize -H '$NPY' --data-binary @$T/fortran.npy
npy shorter than its shape|400|bad_format|/v1/quantize -H '$NPY' --data-binary @$T/short.npy
negative npy shape|422|bad_shape|/v1/quantize -H '$NPY' --data-binary @$T/negshape.npy
NaN weight|422|nonfinite_weight|/v1/quantize -H '$NPY' --data-binary @$T/nan.npy
1-D tensor only|422|no_tensor|/v1/quantize -H '$NPY' --data-binary @$T/bias.npy
include matching nothing|422|no_tensor|'/v1/quantize?include=nothing*' -H '$ST' --data-binary @$MODEL
npy output of two tensors|400|bad_parameter|'/v1/quantize?format=npy' -H '$ST' --data-binary @$T/two.st
bits too small|400|bad_parameter|'/v1/quantize?bits=1' -H '$NPY' --data-binary @$T/w.npy
bits not a number|400|bad_parameter|'/v1/quantize?bits=four' -H '$NPY' --data-binary @$T/w.npy
bits empty|400|bad_parameter|'/v1/quantize?bits=' -H '$NPY' --data-binary @$T/w.npy
unknown mode|400|bad_parameter|'/v1/quantize?mode=magic' -H '$NPY' --data-binary @$T/w.npy
unknown scheme|400|bad_parameter|'/v1/quantize?scheme=diagonal' -H '$NPY' --data-binary @$T/w.npy
unknown format|400|bad_parameter|'/v1/quantize?format=tflite' -H '$NPY' --data-binary @$T/w.npy
format onnx for an npy input|400|bad_parameter|'/v1/quantize?format=onnx' -H '$NPY' --data-binary @$T/w.npy
unknown parameter|400|bad_parameter|'/v1/quantize?colour=blue' -H '$NPY' --data-binary @$T/w.npy
bad bits_for|400|bad_parameter|'/v1/quantize?bits_for=fc.*=99' -H '$ST' --data-binary @$MODEL
glob that is a literal bracket|422|no_tensor|'/v1/quantize?include=%5B' -H '$ST' --data-binary @$MODEL
dtype with npy|400|bad_parameter|'/v1/quantize?dtype=F32' -H '$NPY' --data-binary @$T/w.npy
raw without dtype|400|bad_parameter|'/v1/quantize?shape=4,4' -H '$RAW' --data-binary @$T/garbage
raw without anything|400|bad_parameter|/v1/quantize -H '$RAW' --data-binary @$T/garbage
raw integer dtype|400|bad_parameter|'/v1/quantize?dtype=I8&shape=4,4' -H '$RAW' --data-binary @$T/garbage
raw zero dimension|400|bad_parameter|'/v1/quantize?dtype=F32&shape=0,4' -H '$RAW' --data-binary @$T/garbage
raw nine dimensions|400|bad_parameter|'/v1/quantize?dtype=F32&shape=1,1,1,1,1,1,1,1,1' -H '$RAW' --data-binary @$T/garbage
raw shape syntax|400|bad_parameter|'/v1/quantize?dtype=F32&shape=4;4' -H '$RAW' --data-binary @$T/garbage
raw shape overflow|400|bad_parameter|'/v1/quantize?dtype=F32&shape=99999999999999999999,4' -H '$RAW' --data-binary @$T/garbage
raw length mismatch|422|bad_shape|'/v1/quantize?dtype=F32&shape=64,64' -H '$RAW' --data-binary @$T/garbage
raw absurd shape|413|limit_exceeded|'/v1/quantize?dtype=F32&shape=4294967296,4294967296,4294967296' -H '$RAW' --data-binary @$T/garbage
raw NaN|422|nonfinite_weight|'/v1/quantize?dtype=F32&shape=16,8,3,3' -H '$RAW' --data-binary @$T/nan.raw
multipart without boundary|400|bad_format|/v1/quantize -H 'Content-Type: multipart/form-data' --data-binary @$T/w.npy
multipart garbage|400|bad_parameter|/v1/quantize -H 'Content-Type: multipart/form-data; boundary=XyZ' --data-binary @$T/garbage
multipart without model|400|bad_parameter|/v1/quantize -F 'options={"bits":3}'
multipart bad options JSON|400|bad_parameter|/v1/quantize -F model=@$T/w.npy -F 'options={bits:3'
multipart options not an object|400|bad_parameter|/v1/quantize -F model=@$T/w.npy -F 'options=[1,2]'
multipart options bad value|400|bad_parameter|/v1/quantize -F model=@$T/w.npy -F 'options={"bits":1.5}'
multipart two models|400|bad_parameter|/v1/quantize -F model=@$T/w.npy -F model=@$T/w.npy
multipart bad field|400|bad_parameter|/v1/quantize -F model=@$T/w.npy -F bits=99
async bad parameter|400|bad_parameter|'/v1/jobs?mode=magic' -H '$NPY' --data-binary @$T/w.npy
async wrong type|415|unsupported_format|/v1/jobs -H 'Content-Type: text/plain' --data-binary @$T/w.npy
CASES

# A multipart body cut short: the closing boundary never comes.
printf -- '--XyZ\r\nContent-Disposition: form-data; name="model"; filename="w.npy"\r\n\r\n' >"$T/cut.mp"
head -c 500 "$T/w.npy" >>"$T/cut.mp"
http POST /v1/quantize -H 'Content-Type: multipart/form-data; boundary=XyZ' --data-binary @"$T/cut.mp"
case "$STATUS" in 400|422) pass ;; *) fail "multipart cut short: $STATUS" ;; esac
# A part without Content-Disposition (NULL name from libmicrohttpd) once crashed the daemon.
printf -- '--XyZb\r\n\r\nx\r\n--XyZb--\r\n' >"$T/noname.mp"
http POST /v1/quantize -H 'Content-Type: multipart/form-data; boundary=XyZb' --data-binary @"$T/noname.mp"
expect_error 400 bad_parameter "multipart part without Content-Disposition"
printf -- '--XyZb\r\nContent-Disposition: form-data; name=""\r\n\r\nx\r\n--XyZb--\r\n' >"$T/emptyname.mp"
http POST /v1/quantize -H 'Content-Type: multipart/form-data; boundary=XyZb' --data-binary @"$T/emptyname.mp"
expect_error 400 bad_parameter "multipart part with an empty name"
still_serving "after nameless multipart parts"
# The client promises more than it sends, then hangs up (truncated upload).
(printf 'POST /v1/quantize HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-npy\r\nContent-Length: 100000\r\n\r\n'; head -c 1000 "$T/w.npy") |
    timeout 5 curl -s --max-time 3 telnet://127.0.0.1:"$PORT" >/dev/null 2>&1 || true
# Raw bytes that are not HTTP at all.
head -c 5000 /dev/urandom | timeout 5 curl -s --max-time 2 telnet://127.0.0.1:"$PORT" >/dev/null 2>&1 || true
still_serving "truncated and garbage connections"
sleep 0.3
http GET /metrics
check "abandoned uploads hold nothing: only this request in flight" grep -q '^squantd_requests_in_flight 1$' "$T/body"
check "and no job" grep -q '^squantd_jobs_running 0$' "$T/body"
check "no upload file left" [ -z "$(ls "$T/spool/tmp")" ]

# Inputs that are fine: a BF16/F16 model passes, and the daemon still answers correctly.
http POST /v1/quantize -H "$ST" --data-binary @"$T/bf.st"
expect_status 200 "BF16 weights with an F16 bias"
http POST /v1/quantize -H "$NPY" --data-binary @"$T/w.npy"
expect_status 200 "a good request after all the bad ones"
http GET /metrics
check "4xx counted" grep -q 'route="/v1/quantize",method="POST",status="400"} [1-9]' "$T/body"
stop_daemon 0
finish

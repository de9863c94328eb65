#!/bin/sh
# POST /v1/quantize in every input and output format: the answer is
# byte-identical to `squant quantize` with the same parameters.
. "${top_srcdir:-.}/tests/integration/lib.sh"
start_daemon

# same_as_cli DESC -- CLI flags -- INPUT: the last answer equals the CLI's output.
same_as_cli() {
    desc=$1; in=$2; shift 2
    if ! "$SQUANT" quantize -q "$@" "$in" -o "$T/cli.out" 2>"$T/cli.err"; then
        fail "$desc: the CLI failed: $(cat "$T/cli.err")"; return
    fi
    if cmp -s "$T/body" "$T/cli.out"; then pass; else fail "$desc: differs from the CLI's output"; fi
}

ST='Content-Type: application/vnd.safetensors'
NPY='Content-Type: application/x-npy'

http POST /v1/quantize -H "$ST" --data-binary @"$MODEL"
expect_status 200 "safetensors, defaults"
check "safetensors content type" [ "$(header Content-Type)" = application/vnd.safetensors ]
check "layers header" [ -n "$(header X-Squant-Layers)" ]
check "Server-Timing header" sh -c "echo '$(header Server-Timing)' | grep -q 'quantize;dur='"
same_as_cli "safetensors, defaults" "$MODEL"

# No Content-Type of ours (curl sends x-www-form-urlencoded): the magic bytes decide.
http POST /v1/quantize --data-binary @"$MODEL"
expect_status 200 "detected safetensors"
same_as_cli "detected safetensors" "$MODEL"

# Parameters: query string -> sq_options_set, the same keys as the CLI flags.
for case in \
    "bits=2&mode=rtn|--bits 2 --mode rtn" \
    "bits=3&mode=squant-k&scheme=symmetric|--bits 3 --mode squant-k --scheme symmetric" \
    "bits=5&mode=squant-c|--bits 5 --mode squant-c" \
    "mode=squant-e&bits=8|--mode squant-e --bits 8" \
    "include=layer*&exclude=*down*|--include layer* --exclude *down*" \
    "bits=4&bits_for=fc.*=8&bits_for=stem.*=2|--bits 4 --bits-for fc.*=8 --bits-for stem.*=2" \
    "include=*.weight,fc.*&bits=6|--include *.weight --include fc.* --bits 6"; do
    q=${case%%|*}
    flags=${case#*|}
    http POST "/v1/quantize?$q" -H "$ST" --data-binary @"$MODEL"
    expect_status 200 "params $q"
    # shellcheck disable=SC2086
    same_as_cli "params $q" "$MODEL" $flags
done

# Output formats: format parameter or Accept.
http POST "/v1/quantize?format=json&bits=3" -H "$ST" --data-binary @"$MODEL"
expect_status 200 "format=json"
check "json content type" [ "$(header Content-Type)" = application/json ]
same_as_cli "format=json" "$MODEL" --format json --bits 3
http POST "/v1/quantize?bits=3" -H "$ST" -H 'Accept: application/json' --data-binary @"$MODEL"
expect_status 200 "Accept json"
same_as_cli "Accept json" "$MODEL" --format json --bits 3
http POST "/v1/quantize?format=safetensors" -H 'Accept: application/json' -H "$ST" --data-binary @"$MODEL"
check "format wins over Accept" [ "$(header Content-Type)" = application/vnd.safetensors ]

# .npy in, every format out.
$GEN npy "$T/w.npy" 64,64,3,3 --seed 7
http POST /v1/quantize -H "$NPY" --data-binary @"$T/w.npy"
expect_status 200 "npy in"
same_as_cli "npy in" "$T/w.npy"
http POST "/v1/quantize?format=npy&bits=2" -H "$NPY" --data-binary @"$T/w.npy"
expect_status 200 "npy out"
check "npy content type" [ "$(header Content-Type)" = application/x-npy ]
same_as_cli "npy out" "$T/w.npy" --format npy --bits 2
http POST "/v1/quantize?bits=2" -H "$NPY" -H 'Accept: application/x-npy' --data-binary @"$T/w.npy"
same_as_cli "Accept npy" "$T/w.npy" --format npy --bits 2
http POST "/v1/quantize?name=conv1.weight" -H "$NPY" --data-binary @"$T/w.npy"
expect_status 200 "npy with a name"
check "npy name used" grep -q 'conv1.weight' "$T/body"
for v in 2 3; do
    $GEN npy "$T/w$v.npy" 16,8,3,3 --version $v
    http POST /v1/quantize -H "$NPY" --data-binary @"$T/w$v.npy"
    expect_status 200 "npy version $v"
    same_as_cli "npy version $v" "$T/w$v.npy"
done
for dt in f2 f8; do
    $GEN npy "$T/w$dt.npy" 32,16,3,3 --dtype $dt
    http POST /v1/quantize -H "$NPY" --data-binary @"$T/w$dt.npy"
    expect_status 200 "npy $dt"
    same_as_cli "npy $dt" "$T/w$dt.npy"
done

# Raw blobs: the same bytes as the .npy's data give the same result.
$GEN raw "$T/w.raw" 64,64,3,3 --seed 7
http POST "/v1/quantize?dtype=F32&shape=64,64,3,3" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$T/w.raw"
expect_status 200 "raw F32"
same_as_cli "raw F32" "$T/w.npy"
for dt in F16 BF16 F64; do
    $GEN raw "$T/w$dt.raw" 8,4,3,3 --dtype $dt
    http POST "/v1/quantize?dtype=$dt&shape=8,4,3,3&format=json" \
        -H 'Content-Type: application/octet-stream' --data-binary @"$T/w$dt.raw"
    expect_status 200 "raw $dt"
done
$GEN npy "$T/wf2b.npy" 8,4,3,3 --dtype f2
http POST "/v1/quantize?dtype=F16&shape=8,4,3,3" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$T/wF16.raw"
same_as_cli "raw F16 = npy f2" "$T/wf2b.npy"

# multipart/form-data: the model part, a JSON options part, form fields.
http POST /v1/quantize -F model=@"$MODEL" -F 'options={"bits":3,"mode":"squant-k"}'
expect_status 200 "multipart with options"
same_as_cli "multipart with options" "$MODEL" --bits 3 --mode squant-k
http POST /v1/quantize -F model=@"$MODEL" \
    -F 'options={"bits":4,"include":["layer*","fc.*"],"exclude":"*down*","bits_for":{"fc.*":8}}'
expect_status 200 "multipart with lists"
same_as_cli "multipart with lists" "$MODEL" --bits 4 --include 'layer*' --include 'fc.*' \
    --exclude '*down*' --bits-for 'fc.*=8'
http POST "/v1/quantize?bits=2" -F "model=@$T/w.npy;type=application/x-npy"
expect_status 200 "multipart npy part + query"
same_as_cli "multipart npy part + query" "$T/w.npy" --bits 2
http POST /v1/quantize -F "model=@$T/w.raw" -F dtype=F32 -F shape=64,64,3,3 -F format=npy
expect_status 200 "multipart raw fields"
same_as_cli "multipart raw fields" "$T/w.npy" --format npy
http POST /v1/quantize -F "model=@$T/w.raw" -F 'options={"dtype":"F32","shape":[64,64,3,3]}'
expect_status 200 "multipart raw in options"
same_as_cli "multipart raw in options" "$T/w.npy"

http GET /metrics
check "tensors counted" grep -q '^squantd_tensors_quantized_total [1-9]' "$T/body"
check "weights counted" grep -q '^squantd_weights_quantized_total [1-9]' "$T/body"
check "histogram counted" grep -q '^squantd_quantize_seconds_count [1-9]' "$T/body"

stop_daemon 0
finish

#!/bin/sh
# Group mode over HTTP: query parameters, the multipart options part and an
# async job give byte-identical results to `squant quantize` with the same
# flags; /v1/info lists it; bad values are 400; the result dequantizes.
. "${top_srcdir:-.}/tests/integration/lib.sh"
start_daemon

same_as_cli() {
    desc=$1; in=$2; shift 2
    if ! "$SQUANT" quantize -q "$@" "$in" -o "$T/cli.out" 2>"$T/cli.err"; then
        fail "$desc: the CLI failed: $(cat "$T/cli.err")"; return
    fi
    if cmp -s "$T/body" "$T/cli.out"; then pass; else fail "$desc: differs from the CLI's output"; fi
}

ST='Content-Type: application/vnd.safetensors'

http GET /v1/info
expect_status 200 "info"
check "info group" [ "$(jget "$T/body" '"%d %d %d" % (d["group"]["min"], d["group"]["max"], d["group"]["default"])')" = "0 1073741824 0" ]
check "info scale dtypes" [ "$(jget "$T/body" '",".join(d["scale_dtypes"])')" = "F32,F16" ]

for case in \
    "group=32|--group 32" \
    "group=5&bits=3&mode=squant-k|--group 5 --bits 3 --mode squant-k" \
    "group=8&group_for=fc.*=0&mode=squant-c&scheme=symmetric|--group 8 --group-for fc.*=0 --mode squant-c --scheme symmetric" \
    "group_for=layer3.*=16&bits=2|--group-for layer3.*=16 --bits 2" \
    "group=10&scale_dtype=F16&bits=6|--group 10 --scale-dtype F16 --bits 6" \
    "scale_dtype=F16|--scale-dtype F16" \
    "group=4&format=json&mode=rtn|--group 4 --format json --mode rtn"; do
    q=${case%%|*}
    flags=${case#*|}
    http POST "/v1/quantize?$q" -H "$ST" --data-binary @"$MODEL"
    expect_status 200 "params $q"
    # shellcheck disable=SC2086
    same_as_cli "params $q" "$MODEL" $flags
done

http POST /v1/quantize -F model=@"$MODEL" \
    -F 'options={"bits":3,"group":32,"group_for":{"fc.*":0,"stem.*":4},"scale_dtype":"F16"}'
expect_status 200 "multipart with group options"
same_as_cli "multipart with group options" "$MODEL" --bits 3 --group 32 --group-for 'fc.*=0' \
    --group-for 'stem.*=4' --scale-dtype F16

http POST '/v1/jobs?group=16&bits=3' -H "$ST" --data-binary @"$MODEL"
expect_status 202 "async job with a group"
id=$(jget "$T/body" 'd["id"]')
i=0
while [ $i -lt 100 ]; do
    http GET "/v1/jobs/$id"
    [ "$(jget "$T/body" 'd["state"]')" = done ] && break
    sleep 0.1
    i=$((i + 1))
done
http GET "/v1/jobs/$id/result"
expect_status 200 "async result"
same_as_cli "async job with a group" "$MODEL" --group 16 --bits 3
cp "$T/body" "$T/g16.safetensors"
check "layer scales are [O, G]" sh -c "'$SQUANT' inspect '$T/g16.safetensors' | grep -q '^layer3.1.conv2.weight.scale  *F32  *64x4 '"
check "dequantize reads the group" "$SQUANT" dequantize "$T/g16.safetensors" -o "$T/g16.float.safetensors"
check "dequantized weights are F32 in the input's shape" sh -c "'$SQUANT' inspect '$T/g16.float.safetensors' | grep -q '^layer3.1.conv2.weight  *F32  *64x64x3x3 '"

for bad in 'group=-1' 'group=x' 'group=1073741825' 'group_for=fc' 'group_for=fc.*=x' 'scale_dtype=BF16'; do
    http POST "/v1/quantize?$bad" -H "$ST" --data-binary @"$MODEL"
    expect_error 400 bad_parameter "$bad"
done
http POST /v1/quantize -F model=@"$MODEL" -F 'options={"group_for":{"fc.*":"x"}}'
expect_error 400 bad_parameter "group_for value not an integer"

stop_daemon 0
finish

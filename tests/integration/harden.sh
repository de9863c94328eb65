#!/bin/sh
# Rejections found by attacking the daemon from outside: each answers the
# documented JSON error with the right status, only meaningful fields, no
# machine paths, and the daemon keeps serving.
. "${top_srcdir:-.}/tests/integration/lib.sh"
start_daemon --max-body-size 4M

NPY='Content-Type: application/x-npy'
$GEN npy "$T/w.npy" 16,8,3,3
$GEN npy "$T/huge.npy" 16,8,3,3 --huge 77

# jfield KEY: the error object has KEY (prints yes/no).
jfield() { jget "$T/body" "'yes' if '$1' in d['error'] else 'no'" 2>/dev/null || echo '?'; }

# Finite weights near +-FLT_MAX: the step would be infinite. 422 naming tensor and channel.
http POST /v1/quantize -H "$NPY" --data-binary @"$T/huge.npy"
expect_error 422 nonfinite_weight "weights spanning more than the float range"
check "no Retry-After on the 422" [ -z "$(header Retry-After)" ]
check "the tensor is named ($(head -c 300 "$T/body"))" [ "$(jget "$T/body" 'd["error"]["tensor"]')" = weight ]
check "the channel is named" [ "$(jget "$T/body" 'd["error"]["channel"]')" = 1 ]
rc=0
"$SQUANT" quantize "$T/huge.npy" -o "$T/huge.out" 2>"$T/cli.err" || rc=$?
check "the CLI fails on huge weights" [ "$rc" != 0 ]
check "the CLI names the channel, not memory ($(cat "$T/cli.err"))" \
    sh -c "grep -q 'channel 1' '$T/cli.err' && ! grep -q 'out of memory' '$T/cli.err'"

# An options part over 64 KiB: 413 with the JSON error, not a reset connection.
$PYTHON -c 'import sys; sys.stdout.write("{\"bits\":4,\"x\":\"" + "a" * 70000 + "\"}")' >"$T/bigopts.json"
http POST /v1/quantize -F model=@"$T/w.npy" -F "options=<$T/bigopts.json"
expect_error 413 limit_exceeded "an options part over 64 KiB"
still_serving "a big options part"

# %00 in a path or a parameter: 400, and nothing is cut short.
http POST /v1/jobs -H "$NPY" --data-binary @"$T/w.npy"
expect_status 202 "an async job to aim at"
id=$(jget "$T/body" 'd["id"]')
http DELETE "/v1/jobs/$id%00/result"
expect_error 400 bad_parameter "DELETE with %00 in the path"
http GET "/v1/jobs/$id"
expect_status 200 "the job was not deleted"
http POST '/v1/quantize?name=a%00b' -H "$NPY" --data-binary @"$T/w.npy"
expect_error 400 bad_parameter "%00 in a parameter"
http POST '/v1/quantize?name=a%00b' -H "$NPY"
expect_error 400 bad_parameter "%00 in a parameter, no body"
printf -- '--XyZb\r\nContent-Disposition: form-data; name="name"\r\n\r\na\000b\r\n--XyZb\r\nContent-Disposition: form-data; name="model"\r\n\r\nx\r\n--XyZb--\r\n' >"$T/nul.mp"
http POST /v1/quantize -H 'Content-Type: multipart/form-data; boundary=XyZb' --data-binary @"$T/nul.mp"
expect_error 400 bad_parameter "a NUL in a form field"

# A one-character multipart boundary is valid (RFC 2046: 1 to 70 characters).
{ printf -- '--a\r\nContent-Disposition: form-data; name="bits"\r\n\r\n3\r\n'
  printf -- '--a\r\nContent-Disposition: form-data; name="model"; filename="w.npy"\r\nContent-Type: application/x-npy\r\n\r\n'
  cat "$T/w.npy"; printf -- '\r\n--a--\r\n'; } >"$T/onechar.mp"
http POST /v1/quantize -H 'Content-Type: multipart/form-data; boundary=a' -H 'Accept: application/json' --data-binary @"$T/onechar.mp"
expect_status 200 "a one-character multipart boundary"
check "its bits field was read" [ "$(jget "$T/body" 'd["report"]["params"]["bits"]')" = 3 ]
http POST /v1/quantize -H "Content-Type: multipart/form-data; boundary=$($PYTHON -c 'print("b" * 71)')" --data-binary @"$T/onechar.mp"
expect_error 400 bad_format "a 71-character boundary"

# Errors carry only the fields that mean something.
http POST '/v1/quantize?dtype=F32&shape=4;4' -H 'Content-Type: application/octet-stream' --data-binary @"$T/w.npy"
expect_error 400 bad_parameter "a bad shape parameter"
check "no offset/channel/index on a parameter error ($(head -c 300 "$T/body"))" \
    [ "$(jfield offset)$(jfield channel)$(jfield index)" = nonono ]
http POST /v1/quantize -F model=@"$T/w.npy" -F 'options={"bits":1.5}'
expect_error 400 bad_parameter "a bad options value"
check "no offset/channel/index on an options error ($(head -c 300 "$T/body"))" \
    [ "$(jfield offset)$(jfield channel)$(jfield index)" = nonono ]
http POST /v1/quantize -F 'options={"bits":3}'
expect_error 400 bad_parameter "multipart without a model"
check "no offset/channel/index on a multipart error ($(head -c 300 "$T/body"))" \
    [ "$(jfield offset)$(jfield channel)$(jfield index)" = nonono ]

# A chunked body over max-body-size: 413 answered after the rest is dropped.
head -c 6000000 /dev/zero >"$T/big.bin"
rc=0
STATUS=$(curl -sS --max-time 60 -o "$T/body" -D "$T/hdr" -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
    -H "$NPY" --data-binary @"$T/big.bin" "$BASE/v1/quantize" 2>"$T/curl.err") || rc=$?
check "chunked over the limit: curl got an answer (curl $rc: $(cat "$T/curl.err"))" [ "$rc" = 0 ]
expect_error 413 limit_exceeded "a chunked body over max-body-size"
sleep 0.2
check "logged as 413" sh -c "grep 'path=/v1/quantize' '$T/daemon.log' | tail -n1 | grep -q status=413"
still_serving "a chunked body over the limit"

# Accept: q-values decide, 406 when nothing we write is acceptable, Vary: Accept.
http POST /v1/quantize -H "$NPY" -H 'Accept: application/x-npy;q=0.5, application/json' --data-binary @"$T/w.npy"
expect_status 200 "Accept with q-values"
check "the higher q wins ($(header Content-Type))" [ "$(header Content-Type)" = application/json ]
check "Vary: Accept ($(header Vary))" [ "$(header Vary)" = Accept ]
http POST /v1/quantize -H "$NPY" -H 'Accept: application/json;q=0, application/x-npy;q=0.3' --data-binary @"$T/w.npy"
check "q=0 excludes a type ($(header Content-Type))" [ "$(header Content-Type)" = application/x-npy ]
http POST /v1/quantize -H "$NPY" -H 'Accept: text/html' --data-binary @"$T/w.npy"
expect_error 406 not_acceptable "Accept that admits nothing we write"
check "Vary on the 406" [ "$(header Vary)" = Accept ]
http POST /v1/quantize -F model=@"$T/w.npy" -H 'Accept: text/html'
expect_error 406 not_acceptable "Accept that admits nothing, multipart"
http POST /v1/jobs -H "$NPY" --data-binary @"$T/w.npy"
jid=$(jget "$T/body" 'd["id"]')
i=0; while [ $i -lt 300 ]; do http GET "/v1/jobs/$jid"; [ "$(jget "$T/body" 'd["state"]')" = done ] && break; sleep 0.1; i=$((i + 1)); done
http GET "/v1/jobs/$jid/result" -H 'Accept: application/json'
expect_error 406 not_acceptable "a safetensors result asked for as JSON"
http GET "/v1/jobs/$jid/result" -H 'Accept: application/*'
expect_status 200 "a result under a wildcard"

# A UUID as X-Request-Id is kept.
uuid=123e4567-e89b-12d3-a456-426614174000
http GET /healthz -H "X-Request-Id: $uuid"
check "a UUID request id is echoed ($(header X-Request-Id))" [ "$(header X-Request-Id)" = "$uuid" ]

# 404 and 405 on a known path are counted under that path's route.
http PATCH /v1/jobs/abc
expect_error 405 method_not_allowed "PATCH on a job"
http GET "/v1/jobs/$($PYTHON -c 'print("a" * 200)')"
expect_error 404 not_found "an overlong job id"
http GET /metrics
check "405 under the job's route" grep -q 'route="/v1/jobs/{id}",method="other",status="405"} 1' "$T/body"
check "404 under the job's route" grep -q 'route="/v1/jobs/{id}",method="GET",status="404"} 1' "$T/body"

# The access log names the client, the query string and the job.
http POST '/v1/jobs?bits=3' -H "$NPY" --data-binary @"$T/w.npy"
jid2=$(jget "$T/body" 'd["id"]')
sleep 0.2
check "access log: client, query and job" \
    grep -q "path=/v1/jobs status=202 .* client=127.0.0.1 query=bits=3 job=$jid2" "$T/daemon.log"

# Oversized request lines and headers: JSON, not libmicrohttpd's HTML page.
long=$($PYTHON -c 'print("a" * 100000)')
http GET "/v1/info?x=$long"
expect_error 414 limit_exceeded "a URL over connection-memory"
http GET /v1/info -H "X-Big: $long"
expect_error 431 limit_exceeded "headers over connection-memory"
http POST /v1/quantize -H "X-Big: $long" -H "$NPY" --data-binary @"$T/w.npy"
expect_error 431 limit_exceeded "headers over connection-memory on an upload"
# shellcheck disable=SC2046
http GET /v1/info $(i=0; while [ $i -lt 150 ]; do printf -- '-H X-H%d:v ' $i; i=$((i + 1)); done)
expect_error 431 limit_exceeded "too many header fields"
still_serving "oversized requests"

# "Expect: 100-continue" on a request without a body, with bytes after its
# headers: answered at once (it was never answered, and the daemon's HTTP
# thread spun at full CPU for as long as the connection stayed open).
for case in 'GET /nothing 404' 'GET /healthz 200' 'POST /v1/info 405' \
    'POST /v1/quantize?bits=99 400' 'POST /v1/quantize 400' 'POST /v1/jobs 202'; do
    req=${case% *}
    answer=$($PYTHON -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode() + b" HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\nab")
s.settimeout(10)
out = b""
try:
    while True:  # to the end of the stream: the daemon closes after its answer
        r = s.recv(4096)
        if not r:
            break
        out += r
except OSError:
    pass
print(b" ".join(out.split(b" ", 2)[:2]).decode("latin-1"))' "$PORT" "$req")
    check "$req with Expect and stray bytes is answered ($answer)" \
        [ "$answer" = "HTTP/1.1 ${case##* }" ]
done
still_serving "Expect without a body"

stop_daemon
finish

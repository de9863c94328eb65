#!/bin/sh
# Every endpoint that needs no model: health, readiness, info, metrics,
# unknown routes and methods, request ids.
. "${top_srcdir:-.}/tests/integration/lib.sh"
start_daemon

http GET /healthz
expect_status 200 "healthz"
check "healthz body" [ "$(jget "$T/body" 'd["status"]')" = ok ]
check "X-Request-Id on every answer" [ -n "$(header X-Request-Id)" ]

http GET /readyz
expect_status 200 "readyz"
check "readyz body" [ "$(jget "$T/body" 'd["status"]')" = ready ]

http HEAD /healthz -I
expect_status 200 "HEAD healthz"

http GET /healthz -H 'X-Request-Id: pipeline-42'
check "a client request id is echoed" [ "$(header X-Request-Id)" = pipeline-42 ]
http GET /healthz -H 'X-Request-Id: bad id with spaces'
check "a bad client request id is replaced" [ "$(header X-Request-Id)" != "bad id with spaces" ]

http GET /v1/info
expect_status 200 "info"
check "info version" [ "$(jget "$T/body" 'd["version"]')" = "$(jget "$T/body" 'd["version"]')" ]
check "info modes" [ "$(jget "$T/body" '",".join(d["modes"])')" = "squant,squant-k,squant-c,rtn" ]
check "info bits" [ "$(jget "$T/body" '"%d-%d" % (d["bits"]["min"], d["bits"]["max"])')" = 2-8 ]
check "info limits" [ "$(jget "$T/body" 'd["limits"]["max-body-size"]')" = 1073741824 ]
check "info threads" [ "$(jget "$T/body" 'd["threads"] >= 1')" = True ]
check "info output formats" [ "$(jget "$T/body" '",".join(d["formats"]["output"])')" = "safetensors,onnx,dequantized,npy,json" ]
check "info input formats" [ "$(jget "$T/body" '",".join(d["formats"]["input"])')" = "safetensors,onnx,npy,raw,multipart" ]
check "info implementation" [ -n "$(jget "$T/body" 'd["implementation"]["in_use"]')" ]

http GET /metrics
expect_status 200 "metrics"
case "$(header Content-Type)" in text/plain*) pass ;; *) fail "metrics content type" ;; esac
for m in squantd_requests_total squantd_request_bytes_total squantd_response_bytes_total \
    squantd_requests_in_flight squantd_queue_depth squantd_jobs_total squantd_async_jobs \
    squantd_tensors_quantized_total squantd_weights_quantized_total \
    squantd_quantize_seconds_bucket squantd_quantize_seconds_sum squantd_worker_threads; do
    check "metric $m" grep -q "^$m" "$T/body"
done
check "healthz counted" grep -q 'squantd_requests_total{route="/healthz",method="GET",status="200"} [1-9]' "$T/body"

http GET /nope
expect_error 404 not_found "unknown path"
http GET /v1/jobs/0123/extra
expect_error 404 not_found "unknown nested path"
http GET /v1/quantize
expect_error 405 method_not_allowed "GET on quantize"
check "405 has Allow" [ "$(header Allow)" = POST ]
http PUT /v1/jobs/0123456789abcdef0123456789abcdef
expect_error 405 method_not_allowed "PUT on a job"
check "405 Allow lists GET and DELETE" [ "$(header Allow)" = "GET, HEAD, DELETE" ]
http DELETE /healthz
expect_error 405 method_not_allowed "DELETE healthz"
http GET /v1/jobs/not-an-id
expect_error 404 not_found "malformed job id"
http GET /v1/jobs/0123456789abcdef0123456789abcdef
expect_error 404 not_found "unknown job id"
http DELETE /v1/jobs/0123456789abcdef0123456789abcdef
expect_error 404 not_found "DELETE unknown job"
http GET /v1/jobs/0123456789abcdef0123456789abcdef/result
expect_error 404 not_found "result of unknown job"
# A request line far past the connection memory: MHD answers it; we must survive.
long=$(head -c 100000 /dev/zero | tr '\0' a)
http GET "/$long"
case "$STATUS" in 4*) pass ;; *) fail "huge URL: $STATUS" ;; esac
still_serving "a huge URL"

stop_daemon 0
check "access log lines" grep -q 'access id=.* method=GET path=/healthz status=200 in=0 out=16 ms=' "$T/daemon.log"
finish

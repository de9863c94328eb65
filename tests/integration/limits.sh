#!/bin/sh
# Limits: 413 before the body is read, chunked bodies cut off at the limit,
# 503 + Retry-After when the queue is full, and model limits (tensors, rank,
# dimensions, elements, response size).
. "${top_srcdir:-.}/tests/integration/lib.sh"

head -c 48000000 /dev/zero >"$T/big.bin"
export SQUANTD_TEST_ITEM_DELAY_MS=1500
start_daemon --max-body-size 1M --threads 1 --max-active-jobs 1 --max-queued-jobs 1 \
    --max-tensors 4 --max-rank 4 --max-dim 4096 --max-tensor-elements 100000 \
    --retry-after 7
unset SQUANTD_TEST_ITEM_DELAY_MS

# A declared Content-Length over the limit is refused before a byte of body is read.
start=$(date +%s%N)
http POST /v1/quantize -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/big.bin"
end=$(date +%s%N)
expect_error 413 limit_exceeded "Content-Length over max-body-size"
check "413 came fast ($(( (end - start) / 1000000 )) ms)" [ $(( (end - start) / 1000000 )) -lt 5000 ]
sleep 0.2
line=$(grep 'status=413' "$T/daemon.log" | tail -n1)
check "the body was not read ($line)" sh -c "echo '$line' | grep -q ' in=0 '"
http POST /v1/jobs -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/big.bin"
expect_error 413 limit_exceeded "async Content-Length over max-body-size"
check "no spool entry for a refused job" [ -z "$(ls "$T/spool/jobs")" ]
still_serving "413"

# A chunked body (no Content-Length) over the limit is answered 413 after the
# rest is dropped, up to 64 MiB past the limit (the connection is closed beyond).
STATUS=$(curl -sS --max-time 60 -o "$T/body" -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
    -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/big.bin" \
    "$BASE/v1/quantize" 2>/dev/null) || true
check "chunked over the limit: 413 ($STATUS)" [ "$STATUS" = 413 ]
sleep 0.2
line=$(grep 'path=/v1/quantize' "$T/daemon.log" | tail -n1)
inb=$(echo "$line" | sed -n 's/.* in=\([0-9]*\) .*/\1/p')
check "chunked: read no more than 64 MiB past the limit ($inb bytes)" [ "${inb:-0}" -le $((1048576 + 67108864 + 1048576)) ]
still_serving "a chunked body over the limit"

# Queue: one active job and one waiting; the third gets 503 + Retry-After at once.
$GEN npy "$T/w.npy" 64,64,3,3
curl -s -o "$T/a.out" -w '%{http_code}' -H 'Content-Type: application/x-npy' \
    --data-binary @"$T/w.npy" "$BASE/v1/quantize" >"$T/a.status" &
pa=$!
curl -s -o "$T/b.out" -w '%{http_code}' -H 'Content-Type: application/x-npy' \
    --data-binary @"$T/w.npy" "$BASE/v1/quantize" >"$T/b.status" &
pb=$!
i=0
while [ $i -lt 100 ]; do
    http GET /metrics
    grep -q '^squantd_queue_depth 1' "$T/body" && grep -q '^squantd_jobs_running 1' "$T/body" && break
    sleep 0.05; i=$((i + 1))
done
http POST /v1/quantize -H 'Content-Type: application/x-npy' --data-binary @"$T/w.npy"
expect_error 503 queue_full "third sync request"
check "Retry-After" [ "$(header Retry-After)" = 7 ]
http POST /v1/jobs -H 'Content-Type: application/x-npy' --data-binary @"$T/w.npy"
expect_error 503 queue_full "async request on a full queue"
http GET /healthz
expect_status 200 "healthz while the queue is full"
wait $pa $pb
check "first queued request done" [ "$(cat "$T/a.status")" = 200 ]
check "second queued request done" [ "$(cat "$T/b.status")" = 200 ]
check "both the same" cmp -s "$T/a.out" "$T/b.out"
http POST /v1/quantize -H 'Content-Type: application/x-npy' --data-binary @"$T/w.npy"
expect_status 200 "room again after the queue drained"
http GET /metrics
check "rejections counted" grep -q '^squantd_queue_rejected_total [1-9]' "$T/body"

# Model limits from the configuration.
$GEN safetensors "$T/many.st" a=2,2 b=2,2 c=2,2 d=2,2 e=2,2
http POST /v1/quantize -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/many.st"
expect_error 413 limit_exceeded "more tensors than max-tensors"
$GEN npy "$T/r5.npy" 2,2,2,2,2
http POST /v1/quantize -H 'Content-Type: application/x-npy' --data-binary @"$T/r5.npy"
expect_error 413 limit_exceeded "rank over max-rank"
$GEN npy "$T/wide.npy" 2,5000
http POST /v1/quantize -H 'Content-Type: application/x-npy' --data-binary @"$T/wide.npy"
expect_error 413 limit_exceeded "dimension over max-dim"
$GEN npy "$T/elems.npy" 400,400
http POST /v1/quantize -H 'Content-Type: application/x-npy' --data-binary @"$T/elems.npy"
expect_error 413 limit_exceeded "elements over max-tensor-elements"
http POST '/v1/quantize?dtype=F32&shape=4096,4096,4096,4096' -H 'Content-Type: application/octet-stream' \
    --data-binary @"$T/w.npy"
case "$STATUS" in 413|422) pass ;; *) fail "absurd raw shape: $STATUS" ;; esac
still_serving "model limits"
stop_daemon 0

start_daemon --max-response-size 1K
http POST /v1/quantize -H 'Content-Type: application/x-npy' --data-binary @"$T/w.npy"
expect_error 413 limit_exceeded "result over max-response-size"
http POST /v1/quantize -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
expect_error 413 limit_exceeded "streamed safetensors result over max-response-size"
still_serving "max-response-size"
stop_daemon 0
finish

#!/bin/sh
# Operations: bearer-token auth (and its reload on SIGHUP), graceful
# shutdown on SIGTERM (running requests finish, exit 0), a client that
# disconnects mid-job, and the command line (--check-config, --help).
. "${top_srcdir:-.}/tests/integration/lib.sh"

# --- auth
printf '# tokens\nsecret-one\n  secret-two  \n' >"$T/tokens"
start_daemon --auth-token-file "$T/tokens"
http GET /v1/info
expect_error 401 unauthorized "no token"
check "WWW-Authenticate" sh -c "echo '$(header WWW-Authenticate)' | grep -q '^Bearer'"
http GET /v1/info -H 'Authorization: Bearer wrong'
expect_error 401 unauthorized "wrong token"
http GET /v1/info -H 'Authorization: Bearer secret-on'
expect_error 401 unauthorized "token prefix"
http GET /v1/info -H 'Authorization: Bearer secret-one2'
expect_error 401 unauthorized "token with a suffix"
http GET /v1/info -H 'Authorization: Basic c2VjcmV0LW9uZQ=='
expect_error 401 unauthorized "basic auth"
http GET /v1/info -H 'Authorization: Bearer secret-one'
expect_status 200 "first token"
http GET /v1/info -H 'Authorization: Bearer secret-two'
expect_status 200 "second token"
http GET /healthz
expect_status 200 "healthz needs no token"
http GET /readyz
expect_status 200 "readyz needs no token"
http POST /v1/quantize -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
expect_error 401 unauthorized "quantize without a token"
http GET /metrics
expect_error 401 unauthorized "metrics without a token"
printf 'secret-three\n' >"$T/tokens"
kill -HUP "$SQD_PID"
sleep 0.5
http GET /v1/info -H 'Authorization: Bearer secret-three'
expect_status 200 "token added by SIGHUP"
http GET /v1/info -H 'Authorization: Bearer secret-one'
expect_error 401 unauthorized "token removed by SIGHUP"
: >"$T/tokens"
kill -HUP "$SQD_PID"
sleep 0.5
http GET /v1/info -H 'Authorization: Bearer secret-three'
expect_status 200 "an empty token file on SIGHUP keeps the old tokens"
check "reload failure logged" grep -q 'SIGHUP: .*holds no token' "$T/daemon.log"
stop_daemon 0

# --- a client that goes away mid-job: its work is dropped
export SQUANTD_TEST_ITEM_DELAY_MS=200
start_daemon --threads 1
unset SQUANTD_TEST_ITEM_DELAY_MS
curl -s --max-time 1 -o /dev/null -H 'Content-Type: application/vnd.safetensors' \
    --data-binary @"$MODEL" "$BASE/v1/quantize" || true
sleep 1.5
http GET /metrics
check "abandoned job cancelled" grep -q '^squantd_jobs_total{state="cancelled"} 1' "$T/body"
check "nothing left running" grep -q '^squantd_jobs_running 0' "$T/body"
check "nothing in flight but this request" grep -q '^squantd_requests_in_flight 1' "$T/body"
stop_daemon 0

# --- SIGTERM: the running request finishes, new connections are refused, exit 0
export SQUANTD_TEST_ITEM_DELAY_MS=100
start_daemon --threads 1 --drain-timeout 30
unset SQUANTD_TEST_ITEM_DELAY_MS
curl -s -o "$T/drain.out" -w '%{http_code}' -H 'Content-Type: application/vnd.safetensors' \
    --data-binary @"$MODEL" "$BASE/v1/quantize" >"$T/drain.status" &
pc=$!
# A keep-alive connection opened before the signal sees /readyz turn 503.
wait_running() {
    i=0
    while [ $i -lt 200 ] && [ "$(curl -s "$BASE/metrics" | sed -n 's/^squantd_jobs_running //p')" != 1 ]; do
        sleep 0.05; i=$((i + 1))
    done
}
wait_running
kill -TERM "$SQD_PID"
sleep 0.3
check "new connections refused while draining" sh -c "! curl -s --max-time 2 '$BASE/healthz' >/dev/null"
wait $pc || true
check "the running request finished: $(cat "$T/drain.status")" [ "$(cat "$T/drain.status")" = 200 ]
"$SQUANT" quantize -q "$MODEL" -o "$T/cli.out"
check "and its answer is complete" cmp -s "$T/drain.out" "$T/cli.out"
rc=0
wait "$SQD_WRAPPER" || rc=$?
SQD_PID=; SQD_WRAPPER=
check "exit status 0 after SIGTERM ($rc)" [ "$rc" = 0 ]
check "draining logged" grep -q 'draining' "$T/daemon.log"
check_log_clean

# --- /readyz turns 503 on a connection that was open before SIGTERM
export SQUANTD_TEST_ITEM_DELAY_MS=300
start_daemon --threads 1 --drain-timeout 30
unset SQUANTD_TEST_ITEM_DELAY_MS
curl -s -o /dev/null -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL" \
    "$BASE/v1/quantize" &
pc=$!
wait_running
$PYTHON - "$PORT" "$SQD_PID" >"$T/ready.out" 2>&1 <<'PY' || true
import http.client, os, signal, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", "/readyz"); r = c.getresponse(); r.read(); print("before", r.status)
os.kill(int(sys.argv[2]), signal.SIGTERM); time.sleep(0.5)
c.request("GET", "/readyz"); r = c.getresponse(); body = r.read().decode(); print("after", r.status, body.strip())
c.request("POST", "/v1/quantize", body=b"x", headers={"Content-Type": "application/x-npy"})
r = c.getresponse(); print("post", r.status, r.getheader("Retry-After"))
PY
wait $pc || true
rc=0
wait "$SQD_WRAPPER" || rc=$?
SQD_PID=; SQD_WRAPPER=
check "readyz 200 before SIGTERM" grep -q '^before 200' "$T/ready.out"
check "readyz 503 draining after ($(cat "$T/ready.out" | tr '\n' ' '))" grep -q '^after 503 .*"draining"' "$T/ready.out"
check "new work refused with 503 + Retry-After while draining" grep -q '^post 503 [0-9]' "$T/ready.out"
check "exit 0 after the drain" [ "$rc" = 0 ]
check_log_clean

# --- large sync bodies go through a spool file and give the same bytes
start_daemon --memory-body-limit 4K
http POST /v1/quantize -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
expect_status 200 "body spilled to a file"
"$SQUANT" quantize -q "$MODEL" -o "$T/cli.out"
check "spilled body: same result" cmp -s "$T/body" "$T/cli.out"
check "no upload file left behind" [ -z "$(ls "$T/spool/tmp")" ]
stop_daemon 0

# --- the command line
"$SQUANTD" --help >"$T/help" 2>&1
check "--help lists the keys" grep -q -- '--max-body-size' "$T/help"
"$SQUANTD" --version >"$T/version"
check "--version" grep -q '^squantd ' "$T/version"
"$SQUANTD" --check-config --config "$top_srcdir/etc/squantd.conf" >"$T/cc" 2>&1
check "shipped config passes --check-config" grep -q 'configuration OK' "$T/cc"
rc=0; "$SQUANTD" --check-config --no-such-key 1 >"$T/cc" 2>&1 || rc=$?
check "unknown flag: exit 2 ($rc)" [ "$rc" = 2 ]
rc=0; "$SQUANTD" --check-config --threads lots >"$T/cc" 2>&1 || rc=$?
check "bad value: exit 2 and a message" sh -c "[ $rc = 2 ] && grep -q 'threads must be' '$T/cc'"
printf 'listen = 127.0.0.1:8080\nmax-body-size = 12Q\n' >"$T/bad.conf"
rc=0; "$SQUANTD" --check-config --config "$T/bad.conf" >"$T/cc" 2>&1 || rc=$?
check "bad file: names the line ($(cat "$T/cc"))" sh -c "[ $rc = 2 ] && grep -q 'bad.conf:2' '$T/cc'"
rc=0; "$SQUANTD" --check-config --listen nonsense >"$T/cc" 2>&1 || rc=$?
check "bad listen address" [ "$rc" = 2 ]
rc=0; "$SQUANTD" --check-config --auth-token-file "$T/nope" >"$T/cc" 2>&1 || rc=$?
check "missing token file: exit 1" [ "$rc" = 1 ]
# Port in use: a clean error, not a crash.
start_daemon
rc=0; timeout 10 "$SQUANTD" --listen "127.0.0.1:$PORT" --spool-dir "$T/spool2" >"$T/cc" 2>&1 || rc=$?
check "port in use: exit 1 ($rc)" [ "$rc" = 1 ]
stop_daemon 0
finish

#!/bin/sh
# drain-delay: after SIGTERM the daemon keeps accepting connections for
# drain-delay seconds, answering /readyz and new quantize requests with 503
# (+ Retry-After), so that a load balancer sees it leave instead of a
# refused connection; then it closes the listener and exits.
. "${top_srcdir:-.}/tests/integration/lib.sh"
$GEN npy "$T/w.npy" 16,8,3,3
start_daemon --drain-delay 3 --retry-after 4

kill -TERM "$SQD_PID"
sleep 0.5
http GET /readyz
expect_error 503 draining "/readyz during drain-delay"
http GET /healthz
expect_status 200 "/healthz during drain-delay"
http POST /v1/quantize -H 'Content-Type: application/x-npy' --data-binary @"$T/w.npy"
expect_error 503 draining "quantize during drain-delay"
check "Retry-After on the 503 ($(header Retry-After))" [ "$(header Retry-After)" = 4 ]
check "still running during drain-delay" kill -0 "$SQD_PID"
grep -q 'the listener closes in 3 s' "$T/daemon.log" || fail "drain-delay not logged"

# After the delay the listener closes and the daemon exits 0.
rc=0
wait "$SQD_WRAPPER" || rc=$?
check "exit status 0 after drain-delay ($rc)" [ "$rc" = 0 ]
SQD_PID=
SQD_WRAPPER=
check_log_clean
check "refused once stopped" sh -c "! curl -s --max-time 2 '$BASE/healthz' >/dev/null"
finish

#!/bin/sh
# Named instances: job ids carry the instance name, another instance's id
# is answered 404 wrong_instance (never looked up), and a second daemon on
# the same spool-dir is refused at start-up.
. "${top_srcdir:-.}/tests/integration/lib.sh"

wait_done() {
    i=0
    while [ $i -lt 600 ]; do
        http GET "/v1/jobs/$1"
        [ "$STATUS" = 200 ] && [ "$(jget "$T/body" 'd["state"]')" = done ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    fail "job $1 did not finish: $(cat "$T/body")"
}

start_daemon --instance squantd-a
http POST '/v1/jobs?bits=3' -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
expect_status 202 "POST /v1/jobs on a named instance"
id=$(jget "$T/body" 'd["id"]')
check "id is NAME.32hex: $id" sh -c "echo '$id' | grep -Eq '^squantd-a\.[0-9a-f]{32}$'"
check "Location has the id" [ "$(header Location)" = "/v1/jobs/$id" ]
check "spool directory named by the id" [ -d "$T/spool/jobs/$id" ]
wait_done "$id"
check "status document's id" [ "$(jget "$T/body" 'd["id"]')" = "$id" ]
check "result url" [ "$(jget "$T/body" 'd["result"]["url"]')" = "/v1/jobs/$id/result" ]
http GET "/v1/jobs/$id/result"
expect_status 200 "result on the owning instance"
"$SQUANT" quantize -q --bits 3 "$MODEL" -o "$T/cli.out"
check "result = CLI" cmp -s "$T/body" "$T/cli.out"

hex=${id#squantd-a.}
for other in "squantd-b.$hex" "$hex" "squantd.$hex" "squantd-a-x.$hex"; do
    http GET "/v1/jobs/$other"
    expect_error 404 wrong_instance "GET of another instance's id $other"
    check "the message names this instance" grep -q 'this is instance \\"squantd-a\\"' "$T/body"
    http GET "/v1/jobs/$other/result"
    expect_error 404 wrong_instance "GET result of another instance's id $other"
    http DELETE "/v1/jobs/$other"
    expect_error 404 wrong_instance "DELETE of another instance's id $other"
done
check "the job is untouched by those" [ -f "$T/spool/jobs/$id/result" ]
http GET "/v1/jobs/squantd-a.0123456789abcdef0123456789abcdef"
expect_error 404 not_found "an own-form id that does not exist"
http GET "/v1/jobs/Squantd-a.$hex"
expect_error 404 not_found "an id of no valid form"

# A second daemon on the same spool: refused, with the reason, whatever its name.
for name in squantd-a squantd-b; do
    rc=0
    timeout -s KILL 60 "$SQUANTD" --listen 127.0.0.1:0 --spool-dir "$T/spool" --instance $name \
        2>"$T/second.log" || rc=$?
    check "second daemon ($name) on a held spool exits 1 (got $rc)" [ "$rc" = 1 ]
    check "and says why: $(cat "$T/second.log")" grep -q "is in use by another squantd (pid $SQD_PID holds" "$T/second.log"
done
check "the start-up log names the instance" grep -q "instance squantd-a: job ids start with" "$T/daemon.log"
check "the lock file names the holder" [ "$(cat "$T/spool/lock")" = "$SQD_PID" ]
still_serving "a refused second daemon"
stop_daemon 0

# The lock goes with the process, even after kill -9.
start_daemon --instance squantd-a
kill9_daemon
start_daemon --instance squantd-a
http GET "/v1/jobs/$id"
expect_status 200 "the job is kept across a restart on the same spool"
stop_daemon 0

# Renamed: the old name's jobs are not served and not removed.
start_daemon --instance squantd-b
http GET "/v1/jobs/$id"
expect_error 404 wrong_instance "the old name's id on a renamed instance"
check "left alone on disk" [ -f "$T/spool/jobs/$id/result" ]
check "and logged" grep -q "1 job(s) of another instance name left alone" "$T/daemon.log"
stop_daemon 0

# An invalid name stops the start-up.
rc=0
"$SQUANTD" --check-config --spool-dir "$T/spool" --instance 'Bad.Name' 2>"$T/bad.log" || rc=$?
check "an invalid instance name is refused (rc $rc)" [ "$rc" = 2 ]
check "with a message: $(cat "$T/bad.log")" grep -q 'instance "Bad.Name" must be' "$T/bad.log"
finish

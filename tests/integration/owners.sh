#!/bin/sh
# Job ownership with auth: an async job belongs to the token that created
# it; any other token gets 404 for it (status, result, DELETE), across a
# restart, and the spool keeps only a hash of the token.
. "${top_srcdir:-.}/tests/integration/lib.sh"

printf 'alpha-token-1111\nbravo-token-2222\n' >"$T/tokens"
A='Authorization: Bearer alpha-token-1111'
B='Authorization: Bearer bravo-token-2222'
NPY='Content-Type: application/x-npy'
$GEN npy "$T/w.npy" 16,8,3,3
start_daemon --auth-token-file "$T/tokens"

wait_done() { # ID: poll with token A until done
    i=0
    while [ $i -lt 600 ]; do
        http GET "/v1/jobs/$1" -H "$A"
        [ "$STATUS" = 200 ] && [ "$(jget "$T/body" 'd["state"]')" = done ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    fail "job $1 did not finish: $(cat "$T/body")"
}

http POST /v1/jobs -H "$A" -H "$NPY" --data-binary @"$T/w.npy"
expect_status 202 "A creates a job"
id=$(jget "$T/body" 'd["id"]')
check "the job's document names no owner" sh -c "! grep -q owner '$T/body'"
wait_done "$id"

for how in "GET /v1/jobs/$id" "GET /v1/jobs/$id/result" "GET /v1/jobs/$id/report" "DELETE /v1/jobs/$id"; do
    # shellcheck disable=SC2086
    http $how -H "$B"
    expect_error 404 not_found "B: $how"
done
http GET "/v1/jobs/$id/result" -H "$A"
expect_status 200 "A reads its result"
http GET /v1/jobs -H "$B"
expect_status 200 "B lists jobs"
check "B's list does not show A's job" sh -c "! grep -q '$id' '$T/body'"
http GET /v1/jobs -H "$A"
check "A's list shows its job" grep -q "$id" "$T/body"
check "the spool holds no token" sh -c "! grep -rq 'alpha-token' '$T/spool'"
check "the spool holds the owner id" grep -q '"owner"' "$T/spool/jobs/$id/state.json"

# Ownership survives a restart.
stop_daemon
start_daemon --auth-token-file "$T/tokens"
http GET "/v1/jobs/$id" -H "$B"
expect_error 404 not_found "B after a restart"
http GET "/v1/jobs/$id" -H "$A"
expect_status 200 "A after a restart"
http DELETE "/v1/jobs/$id" -H "$A"
expect_status 204 "A deletes its job"

stop_daemon
finish

#!/bin/sh
# Async jobs: 202 + Location, status, result, DELETE (cancel and forget),
# failures, expiry, and jobs that survive kill -9 and finish after a restart.
. "${top_srcdir:-.}/tests/integration/lib.sh"

# wait_state ID STATE [seconds]: poll GET /v1/jobs/ID until it reaches STATE.
wait_state() {
    i=0; lim=$((${3:-60} * 10))
    while [ $i -lt $lim ]; do
        http GET "/v1/jobs/$1"
        if [ "$STATUS" = 200 ] && [ "$(jget "$T/body" 'd["state"]')" = "$2" ]; then return 0; fi
        sleep 0.1; i=$((i + 1))
    done
    fail "job $1 did not reach $2: $(cat "$T/body")"
}

start_daemon --result-ttl 60

# Submit, poll, fetch.
http POST '/v1/jobs?bits=3' -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
expect_status 202 "POST /v1/jobs"
id=$(jget "$T/body" 'd["id"]')
check "job id is 32 hex digits" sh -c "echo $id | grep -Eq '^[0-9a-f]{32}$'"
check "Location header" [ "$(header Location)" = "/v1/jobs/$id" ]
check "202 body state" sh -c "case $(jget "$T/body" 'd["state"]') in queued|running|done) true;; *) false;; esac"
check "the input is on disk before 202" sh -c "[ -f '$T/spool/jobs/$id/input' ] || [ -f '$T/spool/jobs/$id/result' ]"
wait_state "$id" done
layers=$(jget "$T/body" 'd["layers"]["total"]')
check "layers done = total" [ "$(jget "$T/body" 'd["layers"]["done"]')" = "$layers" ]
check "layers counted" [ "$layers" -ge 1 ]
check "items done = total" [ "$(jget "$T/body" 'd["items"]["done"] == d["items"]["total"]')" = True ]
check "timings present" [ "$(jget "$T/body" 'd["timings_ms"]["quantize"] >= 0')" = True ]
check "finished_at set" [ "$(jget "$T/body" 'd["finished_at"] is not None')" = True ]
check "result url" [ "$(jget "$T/body" 'd["result"]["url"]')" = "/v1/jobs/$id/result" ]
http GET "/v1/jobs/$id/result"
expect_status 200 "GET result"
check "result content type" [ "$(header Content-Type)" = application/vnd.safetensors ]
"$SQUANT" quantize -q --bits 3 "$MODEL" -o "$T/cli.out"
check "async result = CLI" cmp -s "$T/body" "$T/cli.out"
http GET "/v1/jobs/$id/result"
check "result can be fetched twice" cmp -s "$T/body" "$T/cli.out"
http DELETE "/v1/jobs/$id"
expect_status 204 "DELETE a finished job forgets it"
http GET "/v1/jobs/$id"
expect_error 404 not_found "forgotten job"
check "forgotten job's files are gone" [ ! -d "$T/spool/jobs/$id" ]

# Multipart and npy output through the async path.
$GEN npy "$T/w.npy" 64,32,3,3
http POST /v1/jobs -F "model=@$T/w.npy" -F 'options={"format":"npy","bits":2}'
expect_status 202 "multipart job"
id=$(jget "$T/body" 'd["id"]')
wait_state "$id" done
http GET "/v1/jobs/$id/result"
check "npy result type" [ "$(header Content-Type)" = application/x-npy ]
"$SQUANT" quantize -q --bits 2 --format npy "$T/w.npy" -o "$T/cli.npy"
check "async npy = CLI" cmp -s "$T/body" "$T/cli.npy"

# A job that fails: a broken file is accepted (parsing is asynchronous) and fails.
head -c 100 "$MODEL" >"$T/broken.safetensors"
http POST /v1/jobs -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/broken.safetensors"
expect_status 202 "broken job accepted"
id=$(jget "$T/body" 'd["id"]')
wait_state "$id" failed
check "failed job carries the error" [ "$(jget "$T/body" 'd["error"]["code"]')" = bad_format ]
http GET "/v1/jobs/$id/result"
expect_error 400 bad_format "result of a failed job"
# Bad parameters are refused before anything is stored.
http POST '/v1/jobs?bits=12' -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
expect_error 400 bad_parameter "bad bits on /v1/jobs"
check "nothing stored for a refused job" [ "$(ls "$T/spool/jobs" | wc -l)" -le 2 ]
stop_daemon 0

# Cancel: one worker, one active job, and every work item slowed down by the
# test hook so that the jobs are caught while they wait and run.
export SQUANTD_TEST_ITEM_DELAY_MS=300
start_daemon --threads 1 --max-active-jobs 1
unset SQUANTD_TEST_ITEM_DELAY_MS
http POST /v1/jobs -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
big=$(jget "$T/body" 'd["id"]')
http POST '/v1/jobs?bits=2' -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
small=$(jget "$T/body" 'd["id"]')
wait_state "$big" running 10
http GET "/v1/jobs/$small"
check "second job waits" [ "$(jget "$T/body" 'd["state"]')" = queued ]
http GET "/v1/jobs/$small/result"
expect_error 409 not_ready "result before the job ran"
http DELETE "/v1/jobs/$small"
expect_status 200 "DELETE cancels a queued job"
check "cancelled state" [ "$(jget "$T/body" 'd["state"]')" = cancelled ]
http DELETE "/v1/jobs/$big"
expect_status 200 "DELETE cancels a running job"
wait_state "$big" cancelled 30
check "cancelled before the end" [ "$(jget "$T/body" 'd["layers"]["done"] < d["layers"]["total"]')" = True ]
http GET "/v1/jobs/$big/result"
expect_error 409 cancelled "result of a cancelled job"
wait_state "$small" cancelled 30
sleep 0.5
check "cancelled job's input is dropped" [ ! -f "$T/spool/jobs/$big/input" ]
http GET /metrics
check "cancelled jobs counted" grep -q '^squantd_jobs_total{state="cancelled"} [1-9]' "$T/body"
stop_daemon 0

# kill -9 while one job runs and another is queued; the restart finishes both.
export SQUANTD_TEST_ITEM_DELAY_MS=300
start_daemon --threads 1 --max-active-jobs 1
unset SQUANTD_TEST_ITEM_DELAY_MS
http POST '/v1/jobs?bits=5' -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
big=$(jget "$T/body" 'd["id"]')
http POST '/v1/jobs?bits=2&mode=rtn' -F "model=@$T/w.npy"
small=$(jget "$T/body" 'd["id"]')
wait_state "$big" running 10
http GET "/v1/jobs/$small"
st_small=$(jget "$T/body" 'd["state"]')
kill9_daemon
check "small job was queued at the crash ($st_small)" [ "$st_small" = queued ]
start_daemon --threads 2
wait_state "$small" done 60
http GET "/v1/jobs/$small/result"
"$SQUANT" quantize -q --bits 2 --mode rtn "$T/w.npy" -o "$T/cli.out"
check "resumed queued job = CLI" cmp -s "$T/body" "$T/cli.out"
wait_state "$big" done 60
http GET "/v1/jobs/$big/result"
"$SQUANT" quantize -q --bits 5 "$MODEL" -o "$T/cli.out"
check "resumed running job = CLI" cmp -s "$T/body" "$T/cli.out"
check "resume logged" grep -q 'job(s) resumed' "$T/daemon.log"
stop_daemon 0

# Finished jobs survive a clean restart; results expire after result-ttl.
start_daemon --result-ttl 5
http GET "/v1/jobs/$small"
check "finished job remembered across restarts" [ "$(jget "$T/body" 'd["state"]')" = done ]
http POST /v1/jobs -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
id=$(jget "$T/body" 'd["id"]')
wait_state "$id" done
sleep 6
http GET "/v1/jobs/$id"
expect_error 404 not_found "expired job"
check "expired job's files removed" [ ! -d "$T/spool/jobs/$id" ]
stop_daemon 0
finish

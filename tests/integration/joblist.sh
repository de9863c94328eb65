#!/bin/sh
# GET /v1/jobs (newest first, paged by limit and cursor) and
# GET /v1/jobs/{id}/report (the stored report of a done job, the same
# document the result's metadata holds), across a restart.
. "${top_srcdir:-.}/tests/integration/lib.sh"

wait_state() {
    i=0; lim=$((${3:-60} * 10))
    while [ $i -lt $lim ]; do
        http GET "/v1/jobs/$1"
        if [ "$STATUS" = 200 ] && [ "$(jget "$T/body" 'd["state"]')" = "$2" ]; then return 0; fi
        sleep 0.1; i=$((i + 1))
    done
    fail "job $1 did not reach $2: $(cat "$T/body")"
}

# The "squant" metadata string of a safetensors file, as parsed JSON, to stdout.
st_report() {
    $PYTHON -c 'import json,struct,sys
b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]
print(json.dumps(json.loads(json.loads(b[8:8+n])["__metadata__"]["squant"]), sort_keys=True))' "$1"
}

start_daemon --result-ttl 600

http GET /v1/jobs
expect_status 200 "empty list"
check "no jobs yet" [ "$(jget "$T/body" 'd["jobs"] == [] and d["next_cursor"] is None')" = True ]

ids=""
for b in 2 3 4; do
    http POST "/v1/jobs?bits=$b" -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
    expect_status 202 "POST job bits=$b"
    ids="$ids $(jget "$T/body" 'd["id"]')"
done
for id in $ids; do wait_state "$id" done; done

# One page of all: newest first by (created_at, id), every job once.
http GET /v1/jobs
expect_status 200 "list"
cp "$T/body" "$T/all.json"
check "three jobs listed" [ "$(jget "$T/all.json" 'len(d["jobs"])')" = 3 ]
check "the listed ids are the submitted ones" [ "$(jget "$T/all.json" 'sorted(j["id"] for j in d["jobs"])')" = \
    "$($PYTHON -c 'import json,sys; print(json.dumps(sorted(sys.argv[1:])))' $ids)" ]
check "newest first" [ "$(jget "$T/all.json" '[(j["created_at"], j["id"]) for j in d["jobs"]] == sorted([(j["created_at"], j["id"]) for j in d["jobs"]], reverse=True)')" = True ]
check "records are the job documents" [ "$(jget "$T/all.json" 'all(j["state"] == "done" and j["result"]["url"] == "/v1/jobs/%s/result" % j["id"] for j in d["jobs"])')" = True ]

# Pages of two: the cursor continues where the page ended.
http GET '/v1/jobs?limit=2'
expect_status 200 "page 1"
check "page 1 has two" [ "$(jget "$T/body" 'len(d["jobs"])')" = 2 ]
cursor=$(jget "$T/body" 'd["next_cursor"]')
p1=$(jget "$T/body" '[j["id"] for j in d["jobs"]]')
check "page 1 has a cursor" [ "$cursor" != None ]
http GET "/v1/jobs?limit=2&cursor=$cursor"
expect_status 200 "page 2"
check "page 2 has the last one and no cursor" [ "$(jget "$T/body" 'len(d["jobs"]) == 1 and d["next_cursor"] is None')" = True ]
p2=$(jget "$T/body" '[j["id"] for j in d["jobs"]]')
check "pages = the whole list in order" [ "$($PYTHON -c 'import json,sys; print(json.loads(sys.argv[1]) + json.loads(sys.argv[2]) == [j["id"] for j in json.load(open(sys.argv[3]))["jobs"]])' "$p1" "$p2" "$T/all.json")" = True ]

for bad in 'limit=0' 'limit=101' 'limit=abc' 'limit=-1' 'cursor=nonsense' 'cursor=12.abc'; do
    http GET "/v1/jobs?$bad"
    expect_error 400 bad_parameter "GET /v1/jobs?$bad"
done

# The report: the document stored in the result's metadata, as JSON.
first=$(echo $ids | cut -d' ' -f1)
http GET "/v1/jobs/$first/report"
expect_status 200 "GET report"
check "report is JSON" [ "$(header Content-Type)" = application/json ]
cp "$T/body" "$T/report.json"
check "report names 2 bits" [ "$(jget "$T/report.json" 'd["params"]["bits"]')" = 2 ]
check "report has the layers" [ "$(jget "$T/report.json" 'len(d["layers"]) == d["total"]["layers"] > 0')" = True ]
http GET "/v1/jobs/$first/result"
cp "$T/body" "$T/result.st"
check "report = the result's metadata" [ "$(st_report "$T/result.st")" = \
    "$($PYTHON -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$T/report.json")" ]

"$SQUANT" report --json "$T/result.st" >"$T/cli-report.json"
check "report = squant report --json of the result, byte for byte" cmp -s "$T/cli-report.json" "$T/report.json"
check "report leads with the residual reductions" [ "$(jget "$T/report.json" 'all(-1 < l["kernel_residual_reduction"] <= 1 and abs(l["channel_residual_reduction"] - (1 - l["max_channel_residual"] / l["rtn_max_channel_residual"])) < 1e-12 for l in d["layers"])')" = True ]

http GET /v1/jobs/0123456789abcdef0123456789abcdef/report
expect_error 404 not_found "report of an unknown job"
head -c 100 "$MODEL" >"$T/broken.safetensors"
http POST /v1/jobs -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/broken.safetensors"
bad=$(jget "$T/body" 'd["id"]')
wait_state "$bad" failed
http GET "/v1/jobs/$bad/report"
expect_error 400 bad_format "report of a failed job is its error"

# Survives a restart: the list and the report come back from the spool.
stop_daemon 0
start_daemon --result-ttl 600
http GET /v1/jobs
check "four jobs after the restart" [ "$(jget "$T/body" 'len(d["jobs"])')" = 4 ]
http GET "/v1/jobs/$first/report"
expect_status 200 "report after restart"
check "same report after restart" cmp -s "$T/body" "$T/report.json"
stop_daemon 0

# A running job's report is not ready.
SQUANTD_TEST_ITEM_DELAY_MS=300 start_daemon
http POST /v1/jobs -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
slow=$(jget "$T/body" 'd["id"]')
http GET "/v1/jobs/$slow/report"
expect_error 409 not_ready "report of a running job"
http DELETE "/v1/jobs/$slow"
stop_daemon 0

# Ids with an instance prefix page the same way (the cursor carries the whole id).
start_daemon --instance east-1
for b in 2 3; do
    http POST "/v1/jobs?bits=$b" -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
    wait_state "$(jget "$T/body" 'd["id"]')" done
done
http GET '/v1/jobs?limit=1'
cursor=$(jget "$T/body" 'd["next_cursor"]')
first=$(jget "$T/body" 'd["jobs"][0]["id"]')
check "prefixed ids listed" sh -c "echo '$first' | grep -q '^east-1\.'"
http GET "/v1/jobs?limit=1&cursor=$cursor"
expect_status 200 "page 2 with a prefixed cursor"
check "page 2 is the other job, the last" [ "$(jget "$T/body" 'len(d["jobs"]) == 1 and d["jobs"][0]["id"] != "'"$first"'" and d["next_cursor"] is None')" = True ]
stop_daemon 0

# With auth the list needs the token.
echo secret-token >"$T/tokens"
start_daemon --auth-token-file "$T/tokens"
http GET /v1/jobs
expect_error 401 unauthorized "list without a token"
http GET /v1/jobs -H 'Authorization: Bearer secret-token'
expect_status 200 "list with the token"
stop_daemon 0
finish

#!/bin/sh
# Three squantd instances behind the real nginx, configured by the shipped
# etc/nginx/squantd.conf (only its ports are replaced): sync requests are
# spread over the instances, async jobs are routed by the instance prefix
# of their ids, one instance is killed (-9) while its jobs wait and is
# restarted on its spool, and every job still ends with the CLI's bytes.
# Loopback only; every process is started here and stopped by its pid.
. "${top_srcdir:-.}/tests/integration/lib.sh"

NGINX=${NGINX:-}
[ -n "$NGINX" ] || NGINX=$(command -v nginx 2>/dev/null || true)
[ -n "$NGINX" ] || [ ! -x /usr/sbin/nginx ] || NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then
    # scripts/bootstrap installs nginx-light; in CI its absence is a failure.
    if [ "${CI:-}" = true ]; then echo "FAIL: nginx not found (scripts/bootstrap installs nginx-light)"; exit 1; fi
    echo "SKIP: nginx not found (scripts/bootstrap installs nginx-light)"; exit 77
fi
SYNC=${SYNC:-100}
JOBS=${JOBS:-30}
NAMES="a b c"

# bg NAME CMD...: run CMD under a hard time limit; NAME_WRAP and NAME_PID are its pids.
bg() {
    name=$1; shift
    timeout -s KILL "$SQD_LIFETIME" "$@" &
    eval "${name}_WRAP=$!"
    eval "${name}_PID="
    i=0
    while [ $i -lt 100 ]; do
        p=$(ps -o pid= --ppid "$(eval echo "\$${name}_WRAP")" 2>/dev/null | tr -d ' ' | head -n1)
        if [ -n "$p" ]; then eval "${name}_PID=$p"; return 0; fi
        sleep 0.02; i=$((i + 1))
    done
    echo "$name did not start"; exit 1
}

# stop NAME [SIGNAL]: signal the process (TERM by default), wait for it.
stop() {
    p=$(eval echo "\${${1}_PID:-}"); w=$(eval echo "\${${1}_WRAP:-}")
    [ -n "$p" ] || return 0
    kill -"${2:-TERM}" "$p" 2>/dev/null || true
    rc=0; wait "$w" || rc=$?
    eval "${1}_PID="; eval "${1}_WRAP="
    return $rc
}

stop_all() {
    stop NGX KILL >/dev/null 2>&1 || true
    for n in $NAMES; do stop "SQD_$n" KILL >/dev/null 2>&1 || true; done
}
trap 'stop_all; cleanup' EXIT

# start_inst NAME [LISTEN]: squantd instance NAME on its own spool; port in $T/NAME.port.
start_inst() {
    rm -f "$T/$1.port"
    bg "SQD_$1" "$SQUANTD" --instance "$1" --listen "${2:-127.0.0.1:0}" --port-file "$T/$1.port" \
        --spool-dir "$T/spool-$1" --threads 1 --max-active-jobs 1 --max-queued-jobs 256 \
        --result-ttl 600 2>>"$T/$1.log"
    i=0
    while [ $i -lt 200 ]; do
        if [ -s "$T/$1.port" ] &&
            [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$(cat "$T/$1.port")/readyz")" = 200 ]; then
            return 0
        fi
        kill -0 "$(eval echo "\$SQD_${1}_PID")" 2>/dev/null || { echo "instance $1 exited:"; cat "$T/$1.log"; exit 1; }
        sleep 0.05; i=$((i + 1))
    done
    echo "instance $1 did not become ready"; cat "$T/$1.log"; exit 1
}

# Every work item sleeps a little, so that jobs are still waiting when an
# instance is killed (the test hook of docs/internals/daemon-jobs.md).
export SQUANTD_TEST_ITEM_DELAY_MS=${ITEM_DELAY_MS:-40}
for n in $NAMES; do start_inst "$n"; done
PA=$(cat "$T/a.port"); PB=$(cat "$T/b.port"); PC=$(cat "$T/c.port")

# nginx's config: the shipped file with the instances' ports and a free port
# of its own; the rest (private pid, logs and temp paths) wraps it.
mkdir -p "$T/nginx"
free_port() { $PYTHON -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
write_conf() {
    sed -e "s/127\.0\.0\.1:8081\([; ]\)/127.0.0.1:$PA\1/" -e "s/127\.0\.0\.1:8082\([; ]\)/127.0.0.1:$PB\1/" \
        -e "s/127\.0\.0\.1:8083\([; ]\)/127.0.0.1:$PC\1/" -e "s/^\( *\)listen 8080;/\1listen 127.0.0.1:$NP;/" \
        "$top_srcdir/etc/nginx/squantd.conf" >"$T/nginx/squantd.conf"
    user=
    [ "$(id -u)" != 0 ] || user="user $(id -un) $(id -gn);"
    cat >"$T/nginx/nginx.conf" <<EOF
$user
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log info;
events { worker_connections 512; }
http {
    access_log $T/nginx/access.log;
    client_body_temp_path $T/nginx/client_body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    include $T/nginx/squantd.conf;
}
EOF
}
tries=0
while :; do
    NP=$(free_port)
    write_conf
    if [ $tries = 0 ]; then
        check "every instance's address replaced in the shipped config" \
            [ "$(grep -Ec "127\.0\.0\.1:($PA|$PB|$PC)[; ]" "$T/nginx/squantd.conf")" = 6 ]
        check "no shipped port left" [ "$(grep -Ec '127\.0\.0\.1:808[0-9]\b|listen 8080' "$T/nginx/squantd.conf")" = 0 ]
        check "nginx listens on loopback" grep -q "listen 127.0.0.1:$NP;" "$T/nginx/squantd.conf"
        rc=0
        "$NGINX" -t -q -p "$T/nginx/" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" >"$T/nginx/t.out" 2>&1 || rc=$?
        check "nginx -t accepts the shipped config: $(cat "$T/nginx/t.out")" [ "$rc" = 0 ]
        [ "$rc" = 0 ] || { cat "$T/nginx/error.log"; finish; exit 1; }
    fi
    bg NGX "$NGINX" -p "$T/nginx/" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" -g 'daemon off;'
    i=0
    while [ $i -lt 100 ] && [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$NP/healthz")" != 200 ]; do
        kill -0 "$NGX_PID" 2>/dev/null || break
        sleep 0.05; i=$((i + 1))
    done
    kill -0 "$NGX_PID" 2>/dev/null && break
    stop NGX || true
    tries=$((tries + 1))
    [ $tries -lt 3 ] || { echo "nginx did not start:"; cat "$T/nginx/error.log"; exit 1; }
done
BASE=http://127.0.0.1:$NP

# ---- sync: SYNC requests through nginx, spread over the instances
$GEN npy "$T/small.npy" 16,16,3,3 --seed 5
"$SQUANT" quantize -q --bits 3 "$T/small.npy" -o "$T/small.expected"
# sync_one: one sync request through nginx, counted in `same` if it is 200
# with the CLI's bytes; otherwise what came instead is printed.
sync_one() {
    http POST '/v1/quantize?bits=3' -H 'Content-Type: application/x-npy' --data-binary @"$T/small.npy"
    if [ "$STATUS" = 200 ] && cmp -s "$T/body" "$T/small.expected"; then
        same=$((same + 1))
        return
    fi
    echo "nginx: sync request $i: status $STATUS, $(wc -c <"$T/body") bytes" \
        "(expected $(wc -c <"$T/small.expected")); headers and start of the body:"
    tr -d '\r' <"$T/hdr"
    head -c 300 "$T/body" | tr -c '[:print:]\n' '.'
    echo
}
i=0; same=0
while [ $i -lt "$SYNC" ]; do
    sync_one
    i=$((i + 1))
done
check "$SYNC sync answers through nginx, all 200 and = CLI ($same)" [ "$same" = "$SYNC" ]
# quantize_count PORT: POST /v1/quantize answered 200, from that instance's /metrics.
quantize_count() {
    curl -s --max-time 10 "http://127.0.0.1:$1/metrics" |
        awk '/^squantd_requests_total\{route="\/v1\/quantize",method="POST",status="200"\}/ { print $2; f=1 } END { if (!f) print 0 }'
}
qa=$(quantize_count "$PA"); qb=$(quantize_count "$PB"); qc=$(quantize_count "$PC")
echo "nginx: sync requests per instance: a=$qa b=$qb c=$qc"
check "the instances' counts add up to $SYNC ($qa+$qb+$qc)" [ $((qa + qb + qc)) = "$SYNC" ]
for q in "$qa" "$qb" "$qc"; do
    check "each instance served a share (>= $((SYNC / 5)) of $SYNC: $qa $qb $qc)" [ "$q" -ge $((SYNC / 5)) ]
done

# ---- async: JOBS jobs through nginx, in four bit widths
for b in 2 3 4 8; do "$SQUANT" quantize -q --bits $b "$MODEL" -o "$T/cli.$b"; done
: >"$T/jobs"
i=0
while [ $i -lt "$JOBS" ]; do
    b=$(echo "2 3 4 8" | cut -d' ' -f$((i % 4 + 1)))
    http POST "/v1/jobs?bits=$b" -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL"
    expect_status 202 "POST /v1/jobs #$i through nginx"
    id=$(jget "$T/body" 'd["id"]' 2>/dev/null || echo none)
    [ "$(header Location)" = "/v1/jobs/$id" ] || fail "Location of job $id: $(header Location)"
    echo "$id $b" >>"$T/jobs"
    i=$((i + 1))
done
check "$JOBS ids of the form NAME.32hex" [ "$(grep -Ec '^[abc]\.[0-9a-f]{32} ' "$T/jobs")" = "$JOBS" ]
for n in $NAMES; do
    check "instance $n got jobs" grep -q "^$n\." "$T/jobs"
    check "instance $n spools only its own" sh -c "! ls '$T/spool-$n/jobs' | grep -v '^$n\.'"
done

# ---- kill -9 instance b while its jobs wait
bjob=$(grep '^b\.' "$T/jobs" | tail -n1 | cut -d' ' -f1)
http GET "/v1/jobs/$bjob"
state=$(jget "$T/body" 'd["state"]' 2>/dev/null || echo "?")
check "b's last job is not finished before the kill ($state)" sh -c "[ '$state' = queued ] || [ '$state' = running ]"
stop SQD_b KILL || true
http GET "/v1/jobs/$bjob"
expect_error 503 instance_unavailable "a job of the dead instance, through nginx"
check "with Retry-After" [ -n "$(header Retry-After)" ]
ajob=$(grep '^a\.' "$T/jobs" | head -n1 | cut -d' ' -f1)
http GET "/v1/jobs/$ajob"
expect_status 200 "a job of a live instance while b is down"
# New work fails over: a refused connection goes to the next instance.
i=0; same=0
while [ $i -lt 6 ]; do
    sync_one
    i=$((i + 1))
done
check "sync requests while b is down all answered (6 = $same)" [ "$same" = 6 ]

# Restart b on its spool and its port: its queued jobs resume.
start_inst b "127.0.0.1:$PB"
check "b resumed its jobs from the spool" grep -q 'spool: [1-9][0-9]* job(s) resumed' "$T/b.log"

# ---- every job's status and result through nginx
deadline=1200 # x 0.1 s
while read -r id b; do
    while [ $deadline -gt 0 ]; do
        http GET "/v1/jobs/$id"
        if [ "$STATUS" = 200 ]; then
            st=$(jget "$T/body" 'd["state"]')
            [ "$st" = queued ] || [ "$st" = running ] || break
        fi
        sleep 0.1; deadline=$((deadline - 1))
    done
    st=none
    [ "$STATUS" != 200 ] || st=$(jget "$T/body" 'd["state"]')
    check "job $id done ($STATUS $st $(head -c 200 "$T/body"))" [ "$st" = done ]
    check "status document of $id names it" [ "$(jget "$T/body" 'd["id"]')" = "$id" ]
    http GET "/v1/jobs/$id/result"
    expect_status 200 "result of $id through nginx"
    check "result of $id (bits $b) = squant quantize" cmp -s "$T/body" "$T/cli.$b"
done <"$T/jobs"

# ---- a job id sent to the wrong instance, and one of no instance
http GET "/v1/jobs/$bjob" # through nginx: routed to b
expect_status 200 "b's job through nginx after the restart"
BASE=http://127.0.0.1:$PA
http GET "/v1/jobs/$bjob"
expect_error 404 wrong_instance "b's job asked of instance a directly"
http GET "/v1/jobs/$bjob/result"
expect_error 404 wrong_instance "b's result asked of instance a directly"
BASE=http://127.0.0.1:$NP
http GET "/v1/jobs/z.0123456789abcdef0123456789abcdef"
expect_error 404 wrong_instance "an id of no configured instance, through nginx"
http DELETE "/v1/jobs/$ajob"
expect_status 204 "DELETE through nginx reaches the owner"
http GET "/v1/jobs/$ajob"
expect_error 404 not_found "the deleted job, through nginx"

# ---- stop everything by its pid; each daemon drains and exits 0
rc=0; stop NGX QUIT || rc=$?
check "nginx stopped (status $rc)" [ "$rc" = 0 ]
for n in $NAMES; do
    rc=0; stop "SQD_$n" TERM || rc=$?
    check "instance $n exited 0 on SIGTERM (got $rc)" [ "$rc" = 0 ]
    if grep -E 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$T/$n.log" >/dev/null; then
        fail "sanitizer report in instance $n's log"; grep -E -A30 'ERROR: |runtime error:' "$T/$n.log" | head -60
    fi
done
check "no error in nginx's log" sh -c "! grep -E '\[(emerg|alert|crit)\]' '$T/nginx/error.log'"
finish

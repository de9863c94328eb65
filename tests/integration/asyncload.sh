#!/bin/sh
# Many async uploads at once (bounded: 16 clients x 2 uploads of 1 MiB,
# loopback only), while a poller asks /healthz over and over: the fsync of
# each upload's spool file runs on the worker pool, not on the thread that
# serves every connection, so /healthz is answered while they run. Every
# 202 means the job is on disk: a kill -9 right after the last 202 loses
# none of them.
. "${top_srcdir:-.}/tests/integration/lib.sh"
CLIENTS=${CLIENTS:-16}
PER_CLIENT=${PER_CLIENT:-2}
# Jobs stay queued (one runs at a time, each item sleeps), so that the
# restart below finds every accepted job still to do.
export SQUANTD_TEST_ITEM_DELAY_MS=2000
start_daemon --threads 2 --max-active-jobs 1 --max-queued-jobs 256 --max-connections 128 \
    --max-connections-per-ip 128
unset SQUANTD_TEST_ITEM_DELAY_MS

$GEN npy "$T/w.npy" 64,64,8,8 --seed 7

# The poller: /healthz until the uploads are over (bounded), one status per line;
# "during" marks the answers that came while uploads were still in flight.
cat >"$T/poll.sh" <<'SH'
base=$1; dir=$2
i=0
while [ $i -lt 100000 ] && [ ! -f "$dir/uploads.done" ]; do
    during=; [ -f "$dir/uploads.running" ] && during=during
    code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$base/healthz")
    [ -f "$dir/uploads.running" ] || during=
    echo "$code $during"
    i=$((i + 1))
done
SH
# client N: PER_CLIENT async uploads; prints "STATUS ID" per upload.
cat >"$T/client.sh" <<'SH'
n=$1; base=$2; dir=$3; per=$4
i=0
while [ $i -lt "$per" ]; do
    code=$(curl -s --max-time 120 -o "$dir/out.$n.$i" -D "$dir/hdr.$n.$i" -w '%{http_code}' \
        -H 'Content-Type: application/x-npy' --data-binary @"$dir/w.npy" "$base/v1/jobs?bits=3")
    loc=$(tr -d '\r' <"$dir/hdr.$n.$i" | sed -n 's/^[Ll]ocation: \/v1\/jobs\///p')
    echo "$code ${loc:--}"
    i=$((i + 1))
done
SH
: >"$T/uploads.running"
sh "$T/poll.sh" "$BASE" "$T" >"$T/polls" &
poller=$!
seq 1 "$CLIENTS" | xargs -P "$CLIENTS" -I{} sh "$T/client.sh" {} "$BASE" "$T" "$PER_CLIENT" >"$T/codes"
rm -f "$T/uploads.running"
: >"$T/uploads.done"
wait "$poller"
# Crash at once: only what was on disk before each 202 can come back.
kill9_daemon

total=$((CLIENTS * PER_CLIENT))
ok=$(grep -c '^202 [^-]' "$T/codes" || true)
check "all $total uploads answered 202 with a Location ($(cut -d' ' -f1 "$T/codes" | sort | uniq -c | tr '\n' ' '))" \
    [ "$ok" = "$total" ]
check "each 202 names its own job" [ "$(cut -d' ' -f2 "$T/codes" | sort -u | wc -l)" = "$total" ]
polls=$(wc -l <"$T/polls")
during=$(grep -c ' during$' "$T/polls" || true)
check "/healthz always answered 200 ($polls polls: $(cut -d' ' -f1 "$T/polls" | sort | uniq -c | tr '\n' ' '))" \
    [ "$polls" -gt 0 ] && [ "$(grep -cv '^200' "$T/polls" || true)" = 0 ]
check "/healthz answered while uploads were in flight ($during times)" [ "$during" -gt 0 ]
echo "asyncload: $total async uploads, $polls /healthz answers ($during during the uploads)"

# Every accepted job is on disk: input renamed into place, request and state
# written (or, for the one that may have run already, its result).
missing=0
for id in $(cut -d' ' -f2 "$T/codes"); do
    d=$T/spool/jobs/$id
    if [ -f "$d/result" ] && [ -f "$d/state.json" ]; then
        continue
    fi
    if [ ! -f "$d/input" ] || [ ! -f "$d/request.json" ] || [ ! -f "$d/state.json" ] || [ -e "$d/input.part" ]; then
        missing=$((missing + 1))
    fi
done
check "every 202'd job is complete on disk after kill -9 ($missing incomplete)" [ "$missing" = 0 ]

# And the restart takes every one of them back.
start_daemon --threads 2
lost=0
for id in $(cut -d' ' -f2 "$T/codes"); do
    http GET "/v1/jobs/$id"
    [ "$STATUS" = 200 ] || lost=$((lost + 1))
done
check "no accepted job lost across kill -9 ($lost lost)" [ "$lost" = 0 ]
check "resume logged" grep -q 'job(s) resumed' "$T/daemon.log"
stop_daemon 0
finish

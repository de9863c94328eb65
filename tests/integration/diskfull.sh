#!/bin/sh
# A full disk: 507 insufficient_storage with no path of the machine in the
# message, and an async job that cannot store its result keeps its input and
# runs again at the next start. The disk is "full" through an LD_PRELOAD
# hook (libenospc.so) that fails write(2) on matching files with ENOSPC.
. "${top_srcdir:-.}/tests/integration/lib.sh"

HOOK=$top_builddir/tests/integration/libenospc.so
[ -f "$HOOK" ] || { echo "SKIP: $HOOK not built"; exit 77; }
# The sanitizer runtime must otherwise come first in the library list.
export ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0"

wait_state() { # ID STATE: poll until the job reaches STATE
    i=0
    while [ $i -lt 600 ]; do
        http GET "/v1/jobs/$1"
        if [ "$STATUS" = 200 ] && [ "$(jget "$T/body" 'd["state"]')" = "$2" ]; then return 0; fi
        sleep 0.1; i=$((i + 1))
    done
    fail "job $1 did not reach $2: $(cat "$T/body")"
}
no_path() { # DESC: the last answer names no path of this machine
    if grep -q "$T" "$T/body" || grep -q '/spool' "$T/body"; then fail "$1: a path in the answer: $(cat "$T/body")"; else pass; fi
}

NPY='Content-Type: application/x-npy'
$GEN npy "$T/w.npy" 16,8,3,3

# Uploads: a sync body that spills to the spool, and an async input.
LD_PRELOAD=$HOOK SQ_ENOSPC_PATH="$T/spool/tmp/" start_daemon --memory-body-limit 0
http POST /v1/quantize -H "$NPY" --data-binary @"$T/w.npy"
expect_error 507 insufficient_storage "a sync body on a full disk"
no_path "a sync body on a full disk"
check "no Retry-After on 507" [ -z "$(header Retry-After)" ]
stop_daemon

LD_PRELOAD=$HOOK SQ_ENOSPC_PATH="input.part" start_daemon
http POST /v1/jobs -H "$NPY" --data-binary @"$T/w.npy"
expect_error 507 insufficient_storage "an async input on a full disk"
no_path "an async input on a full disk"
check "nothing left in the spool" [ -z "$(ls "$T/spool/jobs")" ]
stop_daemon

# The result cannot be stored: the job fails with 507 and keeps its input.
LD_PRELOAD=$HOOK SQ_ENOSPC_PATH="result.tmp" start_daemon
http POST /v1/jobs -H "$NPY" --data-binary @"$T/w.npy"
expect_status 202 "an async job"
id=$(jget "$T/body" 'd["id"]')
wait_state "$id" failed
check "the job's error is insufficient_storage ($(head -c 300 "$T/body"))" \
    [ "$(jget "$T/body" '"%s %s" % (d["error"]["code"], d["error"]["status"])')" = "insufficient_storage 507" ]
no_path "a result on a full disk"
check "the input is kept" [ -f "$T/spool/jobs/$id/input" ]
grep -q "job $id" "$T/daemon.log" || true
stop_daemon

# Space is back: at the next start the job runs again from its input.
start_daemon
grep -q '1 of them had run out of disk space' "$T/daemon.log" || fail "the restart did not say it retried the job"
wait_state "$id" done
http GET "/v1/jobs/$id/result"
expect_status 200 "the retried job's result"
check "the input is dropped once done" [ ! -f "$T/spool/jobs/$id/input" ]
stop_daemon
finish

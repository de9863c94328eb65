# Shared helpers for the integration tests: each test script sources this
# file, starts the real squantd on 127.0.0.1 with an ephemeral port (read
# back from --port-file), drives it with curl, and stops it by its pid.
# Nothing here touches a process it did not start.
set -eu

: "${top_srcdir:=.}"
: "${top_builddir:=.}"
SQUANTD=${SQUANTD:-$top_builddir/src/daemon/squantd}
SQUANT=${SQUANT:-$top_builddir/src/cli/squant}
# The system Python (stdlib only); a version-manager shim would add ~0.1 s to every call.
if [ -z "${PYTHON:-}" ]; then
    if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
GEN="$PYTHON $top_srcdir/tests/integration/gen.py"
MODEL=${SQ_MODEL:-$top_srcdir/examples/fmnist-resnet14.safetensors}
# Hard limit on one daemon's life: a hang fails the test instead of stalling CI.
SQD_LIFETIME=${SQD_LIFETIME:-300}

command -v curl >/dev/null 2>&1 || { echo "SKIP: curl not found"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/squantd-it.XXXXXX")
if [ ! -f "$MODEL" ]; then
    # Without the example model, a generated one with the same kinds of tensors stands in.
    $GEN safetensors "$T/model.safetensors" \
        stem.weight=16,1,3,3 stem.bias=16 layer1.conv.weight=32,16,3,3 layer1.conv.bias=32 \
        layer2.down.weight=64,32,1,1 fc.weight=10,64 fc.bias=10
    MODEL=$T/model.safetensors
fi
SQD_PID=
SQD_WRAPPER=
PORT=
BASE=
FAILS=0
CHECKS=0

# Sanitizer reports go to the daemon's log, which is checked when it stops.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:print_summary=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

cleanup() {
    if [ -n "$SQD_WRAPPER" ] && kill -0 "$SQD_WRAPPER" 2>/dev/null; then
        [ -n "$SQD_PID" ] && kill -KILL "$SQD_PID" 2>/dev/null || true
        wait "$SQD_WRAPPER" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { CHECKS=$((CHECKS + 1)); }
check() { # description, command...
    desc=$1; shift
    if "$@"; then pass; else fail "$desc"; fi
}

# start_daemon [squantd options...]: start, wait until /readyz answers 200.
start_daemon() {
    rm -f "$T/port"
    : >>"$T/daemon.log"
    timeout -s KILL "$SQD_LIFETIME" "$SQUANTD" --listen 127.0.0.1:0 --port-file "$T/port" \
        --spool-dir "$T/spool" "$@" 2>>"$T/daemon.log" &
    SQD_WRAPPER=$!
    SQD_PID=
    i=0
    while [ $i -lt 200 ]; do
        [ -z "$SQD_PID" ] && SQD_PID=$(ps -o pid= --ppid "$SQD_WRAPPER" 2>/dev/null | tr -d ' ' | head -n1)
        if [ -s "$T/port" ] && [ -n "$SQD_PID" ]; then
            PORT=$(cat "$T/port")
            BASE=http://127.0.0.1:$PORT
            if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz")" = 200 ]; then
                return 0
            fi
        fi
        if ! kill -0 "$SQD_WRAPPER" 2>/dev/null; then
            echo "squantd exited during start-up:"; cat "$T/daemon.log"; exit 1
        fi
        sleep 0.05
        i=$((i + 1))
    done
    echo "squantd did not become ready"; cat "$T/daemon.log"; exit 1
}

# Sanitizer or crash reports in the log fail the test.
check_log_clean() {
    if grep -E 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$T/daemon.log" >/dev/null; then
        fail "sanitizer report in the daemon log:"
        grep -E -A30 'ERROR: |runtime error:' "$T/daemon.log" | head -80
    fi
}

# stop_daemon [expected exit status]: SIGTERM, wait, check status and log.
stop_daemon() {
    want=${1:-0}
    [ -n "$SQD_PID" ] || return 0
    kill -TERM "$SQD_PID" 2>/dev/null || true
    rc=0
    wait "$SQD_WRAPPER" || rc=$?
    SQD_PID=
    SQD_WRAPPER=
    [ "$rc" = "$want" ] || fail "squantd exited with $rc, expected $want"
    check_log_clean
}

# kill9_daemon: crash it (for restart tests).
kill9_daemon() {
    kill -KILL "$SQD_PID"
    wait "$SQD_WRAPPER" 2>/dev/null || true
    SQD_PID=
    SQD_WRAPPER=
}

# http METHOD PATH [curl args...]: body in $T/body, headers in $T/hdr, status in $STATUS.
http() {
    m=$1; p=$2; shift 2
    STATUS=$(curl -sS --max-time 120 -X "$m" -o "$T/body" -D "$T/hdr" -w '%{http_code}' "$@" "$BASE$p") || STATUS=000
}

# header NAME: value of a response header of the last http call.
header() {
    tr -d '\r' <"$T/hdr" | awk -v n="$(echo "$1" | tr 'A-Z' 'a-z')" -F': ' \
        'tolower($1) == n { sub(/^[^:]*: /, ""); print; exit }'
}

# jget FILE EXPR: a value from a JSON file, EXPR in Python syntax on `d` (e.g. d["error"]["code"]).
jget() {
    $PYTHON -c 'import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(json.dumps(v) if isinstance(v,(dict,list)) else v)' "$1" "$2"
}

# expect_status CODE DESC: the last answer had status CODE.
expect_status() {
    if [ "$STATUS" = "$1" ]; then pass; else fail "$2: status $STATUS, expected $1 ($(head -c 300 "$T/body"))"; fi
}

# expect_error STATUS CODE DESC: a JSON error with that status and code.
expect_error() {
    expect_status "$1" "$3"
    [ "$STATUS" = "$1" ] || return 0
    got=$(jget "$T/body" '"%s %s %d" % (d["error"]["code"], d["error"]["status"], len(d["error"]["message"]) > 0)' 2>/dev/null || echo '? ? 0')
    if [ "$got" = "$2 $1 1" ]; then pass; else
        fail "$3: error '$got', expected '$2 $1 1' ($(head -c 300 "$T/body"))"; fi
    case "$(header Content-Type)" in application/json*) pass ;; *) fail "$3: not JSON" ;; esac
}

# still_serving: the daemon answers after whatever the test did.
still_serving() {
    http GET /healthz
    expect_status 200 "still serving after: $1"
}

finish() {
    echo "$(basename "$0"): $CHECKS checks passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
}

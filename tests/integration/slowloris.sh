#!/bin/sh
# Slow clients: 300 connections that send their headers one byte a second
# must not keep normal requests from being answered (the reserve closes the
# oldest slow connection when slots run short), slow connections are closed
# at header-timeout, a slow upload is closed under min-body-rate, and the
# per-address connection limit holds. Latencies are printed, not asserted:
# the bar is that every normal request is answered at all within 5 s.
. "${top_srcdir:-.}/tests/integration/lib.sh"

# Source addresses other than 127.0.0.1 are needed to spread the slow clients.
if ! $PYTHON -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2", 0))' 2>/dev/null; then
    echo "SKIP: cannot bind 127.0.0.2"; exit 77
fi
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 1024 ] || ulimit -n 1024 2>/dev/null || {
    echo "SKIP: too few file descriptors"; exit 77; }

start_daemon --max-connections 256 --connection-reserve 16 --max-connections-per-ip 40 \
    --header-timeout 4 --min-body-rate 1K

$PYTHON "$top_srcdir/tests/integration/slowclient.py" "$PORT" 300 8 >"$T/slow.out" 2>&1 || true
cat "$T/slow.out"
get() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$T/slow.out" | head -n1; }
normal=$(get normal)
ok=$(get ok)
check "normal requests were made during the slowloris (${normal:-none})" [ "${normal:-0}" -ge 8 ]
check "every normal request answered 200 within 5 s ($ok of $normal)" [ "${ok:-0}" = "${normal:-x}" ]
check "slow connections were closed by the daemon ($(get closed_by_server) of 300)" \
    [ "$(get closed_by_server)" -ge 250 ]
grep -q 'past header-timeout' "$T/daemon.log" || fail "no header-timeout closure in the log"
grep -q 'connection-reserve' "$T/daemon.log" || fail "no reserve eviction in the log"
http GET /metrics
check "closures counted in /metrics" grep -q 'squantd_connections_closed_total{reason="reserve"} [1-9]' "$T/body"
check "deadline closures counted" grep -q 'squantd_connections_closed_total{reason="deadline"} [1-9]' "$T/body"
still_serving "the slowloris"

# A slow upload: 100 bytes a second against min-body-rate 1K, closed after header-timeout.
$PYTHON - "$PORT" >"$T/slowbody.out" 2>&1 <<'PY' || true
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"POST /v1/quantize HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-npy\r\n"
          b"Content-Length: 1000000\r\n\r\n")
t0 = time.monotonic()
closed = False
while time.monotonic() - t0 < 12:
    try:
        s.sendall(b"x" * 100)
        s.settimeout(1)
        if s.recv(4096) == b"":
            closed = True
            break
    except socket.timeout:
        pass
    except OSError:
        closed = True
        break
print("closed=%d after=%.1f" % (closed, time.monotonic() - t0))
s.close()
PY
cat "$T/slowbody.out"
check "a slow upload is closed" grep -q 'closed=1' "$T/slowbody.out"
sleep 0.3
grep 'path=/v1/quantize' "$T/daemon.log" | tail -n1 | grep -q 'status=408' ||
    fail "the slow upload is not logged as 408: $(grep 'path=/v1/quantize' "$T/daemon.log" | tail -n1)"

# The per-address limit: 41 idle connections from one address, the last is refused.
$PYTHON - "$PORT" >"$T/perip.out" 2>&1 <<'PY' || true
import socket, sys
socks, refused = [], 0
for i in range(41):
    s = socket.socket()
    s.bind(("127.0.0.3", 0))
    s.connect(("127.0.0.1", int(sys.argv[1])))
    socks.append(s)
s = socks[-1]
s.settimeout(3)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
try:
    data = s.recv(100)
except OSError:
    data = b""
print("last=%s" % ("answered" if data.startswith(b"HTTP/") else "refused"))
for s in socks:
    s.close()
PY
cat "$T/perip.out"
check "the 41st connection from one address is refused" grep -q 'last=refused' "$T/perip.out"
still_serving "the per-address limit"

# An idle keep-alive connection outlives header-timeout (a proxy's pool relies on it).
$PYTHON - "$PORT" >"$T/idle.out" 2>&1 <<'PY' || true
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
def answer():
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}\n"):
        b = s.recv(4096)
        if not b:
            return data
        data += b
    return data
s.sendall(req)
first = answer()
time.sleep(5.5)
try:
    s.sendall(req)
    second = answer()
except OSError:
    second = b""
print("first=%s second=%s" % (first[:12].decode(), second[:12].decode() or "closed"))
s.close()
PY
cat "$T/idle.out"
check "an idle keep-alive connection outlives header-timeout" grep -q 'second=HTTP/1.1 200' "$T/idle.out"

stop_daemon
finish

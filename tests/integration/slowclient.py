"""A bounded slowloris against a squantd on 127.0.0.1, and the normal
requests that must still be answered meanwhile.

usage: slowclient.py PORT SLOW SECONDS

Opens SLOW connections, spread over the source addresses 127.0.0.2..11 (so
that a per-address limit does not refuse them all), each sending its request
headers one byte a second; for SECONDS it sends GET /healthz and a small
GET /v1/info from 127.0.0.1 every half second and measures each answer.
Prints one line `key=value ...` per result, and the median and worst
latency; every socket is closed before it exits. Standard library only.
"""
import socket
import sys
import time

port, nslow, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
HEADER = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000 + b"\r\n\r\n"

slow = []
refused = 0
for i in range(nslow):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.bind(("127.0.0.%d" % (2 + i % 10), 0))
        s.connect(("127.0.0.1", port))
        s.send(HEADER[:1])
        s.setblocking(False)
        slow.append([s, 1])
    except OSError:
        refused += 1
        s.close()


def normal(path):
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, time.monotonic() - t0


lat, statuses, failed = [], [], 0
t_end = time.monotonic() + seconds
next_byte = time.monotonic() + 1
closed_by_server = 0
while time.monotonic() < t_end:
    for path in (b"/healthz", b"/v1/info"):
        try:
            st, dt = normal(path)
            statuses.append(st)
            lat.append(dt)
        except OSError:
            failed += 1
    if time.monotonic() >= next_byte:
        next_byte += 1
        for e in slow:
            if e[0] is None or e[1] >= len(HEADER) - 4:
                continue
            try:
                e[0].send(HEADER[e[1]:e[1] + 1])
                e[1] += 1
            except OSError:
                e[0].close()
                e[0] = None
                closed_by_server += 1
    time.sleep(0.5)

# Slow connections the server has closed read as end of stream (or reset).
for e in slow:
    if e[0] is None:
        continue
    try:
        if e[0].recv(1) == b"":
            closed_by_server += 1
    except BlockingIOError:
        pass
    except OSError:
        closed_by_server += 1
    e[0].close()

lat.sort()
ok = sum(1 for s in statuses if s == 200)
print("slow=%d refused=%d closed_by_server=%d normal=%d ok=%d failed=%d"
      % (nslow, refused, closed_by_server, len(statuses) + failed, ok, failed))
if lat:
    print("latency_median_ms=%.1f latency_max_ms=%.1f"
          % (1000 * lat[len(lat) // 2], 1000 * lat[-1]))
else:
    print("latency_median_ms=- latency_max_ms=-")

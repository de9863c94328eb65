#!/bin/sh
# A sync safetensors upload starts its job once the header has arrived, and
# quantizes while the rest of the body comes (not timed: the checks look at
# what the daemon says, never at the clock):
#  - a slow chunked upload, paused halfway, already has its job running
#    (squantd_jobs_running) before the body ends, and its answer is the
#    CLI's bytes; the same with the tensors' data in reverse order of the
#    header, and with a Content-Length;
#  - an upload closed halfway cancels its job: the job ends as cancelled,
#    the daemon closes the files of the upload and of the result (it holds
#    no more unlinked files than before) and keeps serving;
#  - a body shorter or longer than its header implies gets the same JSON
#    error as the same bytes sent with Content-Length (parsed after their
#    end), the one docs/formats.md shows;
#  - a job waiting for its bytes holds no slot of max-active-jobs;
#  - at shutdown, a job whose body is paused lets go of it after
#    drain-timeout, and the daemon exits.
. "${top_srcdir:-.}/tests/integration/lib.sh"

# Six blocks of a [256] norm and a 512x512 float32 weight (6.3 MB): the
# header lists them in order; in the reversed file their data lies backwards.
$PYTHON - "$T" <<'PY'
import json, struct, sys
d = sys.argv[1]
names, blobs, state = [], [], 12345
for i in range(6):
    for name, shape in ((f"b{i}.norm.weight", [256]), (f"b{i}.mlp.weight", [512, 512])):
        n = 1
        for s in shape:
            n *= s
        vals = []
        for _ in range(n):
            state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
            vals.append(((state >> 40) / (1 << 24) - 0.5) / 16)
        names.append((name, shape))
        blobs.append(struct.pack(f"<{n}f", *vals))
for fname, order in (("model.st", range(len(blobs))), ("reversed.st", reversed(range(len(blobs)))),
                     ("gap.st", range(len(blobs)))):
    offs, at = {}, (4 if fname == "gap.st" else 0)  # gap.st: 4 bytes before the first tensor
    for k in order:
        offs[k] = (at, at + len(blobs[k]))
        at += len(blobs[k])
    head = {name: {"dtype": "F32", "shape": shape, "data_offsets": list(offs[k])}
            for k, (name, shape) in enumerate(names)}
    text = json.dumps(head).encode()
    text += b" " * (-len(text) % 8)
    with open(f"{d}/{fname}", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"\0" * (4 if fname == "gap.st" else 0))
        for k in sorted(offs, key=lambda k: offs[k][0]):
            f.write(blobs[k])
PY

# The client: POST a file in chunks; "pause" stops after half the body until
# $T/go exists (at most 60 s), "abort" closes the connection there instead.
cat >"$T/client.py" <<'PY'
import os, socket, sys, time
port, path, out, mode, chunked = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "chunked"
go = os.path.join(os.path.dirname(out), "go")
body = open(path, "rb").read()
s = socket.create_connection(("127.0.0.1", port), timeout=120)
head = "POST /v1/quantize HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.safetensors\r\n"
head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(body)}\r\n"
s.sendall((head + "Connection: close\r\n\r\n").encode())
half, step, at = len(body) // 2, 64 * 1024, 0
while at < len(body):
    piece = body[at:at + step]
    s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
    at += len(piece)
    if mode != "plain" and at >= half and at - len(piece) < half:
        open(go + ".half", "w").close()
        for _ in range(600):
            if os.path.exists(go):
                break
            time.sleep(0.1)
        if mode == "abort":
            s.close()
            sys.exit(0)
    elif mode == "plain":
        time.sleep(0.002)
if chunked:
    s.sendall(b"0\r\n\r\n")
data = b""
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    data += b
s.close()
hdr, _, rest = data.partition(b"\r\n\r\n")
open(out, "wb").write(rest)
print(hdr.split(b" ", 2)[1].decode())
PY
client() { # file mode chunked|length: status on stdout, body in $T/out
    $PYTHON "$T/client.py" "$PORT" "$1" "$T/out" "$2" "$3"
}
metric() { curl -s "$BASE/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
# unlinked files the daemon holds open (spooled bodies, results)
deleted_fds() { ls -l "/proc/$SQD_PID/fd" 2>/dev/null | grep -c '(deleted)' || true; }
# wait_half: the client has sent half its body; then whether the job runs already
running_at_half() {
    i=0
    while [ ! -e "$T/go.half" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
    i=0
    while [ "$(metric squantd_jobs_running)" != 1 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    r=$(metric squantd_jobs_running)
    touch "$T/go"
    [ "$r" = 1 ]
}

"$SQUANT" quantize -q "$T/model.st" -o "$T/cli.st"
"$SQUANT" quantize -q "$T/reversed.st" -o "$T/cli-rev.st"
start_daemon --threads 2 --memory-body-limit 64K

rm -f "$T/go" "$T/go.half"
client "$T/model.st" pause chunked >"$T/status" &
cpid=$!
check "the job runs before the chunked body has ended" running_at_half
wait $cpid || true
check "the slow chunked upload is answered 200" [ "$(cat "$T/status")" = 200 ]
check "its answer is the CLI's bytes" cmp -s "$T/out" "$T/cli.st"

rm -f "$T/go" "$T/go.half"
client "$T/reversed.st" pause length >"$T/status" &
cpid=$!
check "the job runs before the body (data in reverse order) has ended" running_at_half
wait $cpid || true
check "data in reverse order: 200" [ "$(cat "$T/status")" = 200 ]
check "data in reverse order: the CLI's bytes" cmp -s "$T/out" "$T/cli-rev.st"

check "a steady chunked upload: 200" [ "$(client "$T/model.st" plain chunked)" = 200 ]
check "a steady chunked upload: the CLI's bytes" cmp -s "$T/out" "$T/cli.st"
http POST /v1/quantize -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/model.st"
expect_status 200 "curl with Content-Length"
check "curl with Content-Length: the CLI's bytes" cmp -s "$T/body" "$T/cli.st"

# Closed halfway: the job is cancelled and lets go of its files.
fds0=$(deleted_fds)
cancelled0=$(metric 'squantd_jobs_total{state="cancelled"}')
rm -f "$T/go" "$T/go.half"
client "$T/model.st" abort chunked >/dev/null &
cpid=$!
check "the job of the upload to be closed runs" running_at_half
wait $cpid || true
i=0
while { [ "$(metric squantd_jobs_running)" != 0 ] || [ "$(deleted_fds)" -gt "$fds0" ]; } && [ $i -lt 200 ]; do
    sleep 0.05
    i=$((i + 1))
done
check "closed halfway: no job runs any more" [ "$(metric squantd_jobs_running)" = 0 ]
check "closed halfway: the job ended as cancelled" [ "$(metric 'squantd_jobs_total{state="cancelled"}')" = $((cancelled0 + 1)) ]
check "closed halfway: no spooled file is held ($(deleted_fds), before $fds0)" [ "$(deleted_fds)" -le "$fds0" ]
check "closed halfway: nothing left in the spool's tmp" [ -z "$(ls -A "$T/spool/tmp" 2>/dev/null)" ]
still_serving "an upload closed halfway"
http POST /v1/quantize -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/model.st"
expect_status 200 "a model after the closed upload"
check "a model after the closed upload: the CLI's bytes" cmp -s "$T/body" "$T/cli.st"

# A body that ends before (or after) the data its header describes.
size=$(wc -c <"$T/model.st")
head -c $((size - 100000)) "$T/model.st" >"$T/short.st"
cat "$T/model.st" >"$T/long.st"
printf 'extra bytes' >>"$T/long.st"
for f in short long; do
    http POST /v1/quantize -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/$f.st"
    expect_error 400 bad_format "$f body with Content-Length"
    cp "$T/body" "$T/$f.json"
    check "$f body, chunked: 400" [ "$(client "$T/$f.st" plain chunked)" = 400 ]
    check "$f body, chunked: the same error as parsed whole ($(head -c 200 "$T/out"))" cmp -s "$T/out" "$T/$f.json"
done
check "the short body's error says where" grep -q 'run past the end of the' "$T/short.json"
check "the long body's error says what is left over" grep -q 'bytes are left over' "$T/long.json"
still_serving "bodies of the wrong length"
stop_daemon

# A job waiting for its body holds no slot: with one active job allowed, another
# request is answered while the upload is paused (without it, it would wait).
start_daemon --threads 2 --memory-body-limit 64K --max-active-jobs 1
rm -f "$T/go" "$T/go.half"
client "$T/model.st" pause chunked >"$T/status" &
cpid=$!
i=0
while [ ! -e "$T/go.half" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
STATUS=$(curl -sS --max-time 30 -o "$T/body" -w '%{http_code}' \
    -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL" "$BASE/v1/quantize") ||
    STATUS=000
expect_status 200 "another model while a paused upload's job waits for its bytes"
touch "$T/go"
wait $cpid || true
check "the paused upload, resumed: 200" [ "$(cat "$T/status")" = 200 ]
check "the paused upload, resumed: the CLI's bytes" cmp -s "$T/out" "$T/cli.st"
# The same while the paused body's job has already failed (its header leaves a gap): the
# failed job waits for the end of its body without a slot, and is answered with its error.
http POST /v1/quantize -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/gap.st"
expect_error 400 bad_format "a header with a gap, with Content-Length"
cp "$T/body" "$T/gap.json"
rm -f "$T/go" "$T/go.half"
client "$T/gap.st" pause chunked >"$T/status" &
cpid=$!
i=0
while [ ! -e "$T/go.half" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
STATUS=$(curl -sS --max-time 30 -o "$T/body" -w '%{http_code}' \
    -H 'Content-Type: application/vnd.safetensors' --data-binary @"$MODEL" "$BASE/v1/quantize") ||
    STATUS=000
expect_status 200 "another model while a paused upload's failed job waits for its end"
touch "$T/go"
wait $cpid || true
check "the paused body with a gap, resumed: 400" [ "$(cat "$T/status")" = 400 ]
check "the paused body with a gap: the error it gets whole" cmp -s "$T/out" "$T/gap.json"
check "that error names the gap" grep -q 'a gap of 4 bytes' "$T/gap.json"
stop_daemon

# SIGTERM while a body is paused: past drain-timeout the job lets go of its request,
# and the daemon exits without waiting for the rest of the body.
start_daemon --threads 2 --memory-body-limit 64K --drain-timeout 1
rm -f "$T/go" "$T/go.half"
client "$T/model.st" pause chunked >"$T/status" 2>/dev/null &
cpid=$!
check "the job of the upload paused at shutdown runs" running_at_half
rm -f "$T/go" # the client stays paused (until it gives up after a minute)
kill -TERM "$SQD_PID"
i=0
while kill -0 "$SQD_PID" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
check "the daemon exits during the paused upload" sh -c "! kill -0 $SQD_PID 2>/dev/null"
rc=0
wait "$SQD_WRAPPER" || rc=$?
check "and exits 0 (got $rc)" [ "$rc" = 0 ]
SQD_PID=
SQD_WRAPPER=
check_log_clean
touch "$T/go"
wait $cpid || true
finish

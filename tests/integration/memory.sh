#!/bin/sh
# Bounded memory (not timed): a model of 32 layers of 2048x2048 bfloat16
# (256 MB, 128 M weights; the CLI and the daemon keep at most 32 MB of codes
# and a few layers in flight) goes through `squant quantize` and through
# POST /v1/quantize and POST /v1/jobs. The peak resident memory (VmHWM:
# anonymous and mapped file pages together, so the input's pages count
# until they are dropped) stays under 64 MB plus 16 times the largest layer
# (8 MB of input): 192 MB, where holding the codes and the output of the
# whole model would take more than 256 MB on top of the mapped input. The
# answers are byte-identical to the CLI's, and with one thread.
. "${top_srcdir:-.}/tests/integration/lib.sh"

layers=32
args=
i=0
while [ $i -lt $layers ]; do
    args="$args model.layers.$i.norm.weight=2048:BF16 model.layers.$i.mlp.weight=2048,2048:BF16"
    i=$((i + 1))
done
# shellcheck disable=SC2086 # one argument per tensor
$GEN safetensors "$T/llm.safetensors" $args
bound_kib=$(((64 + 16 * 8) * 1024))
# Under AddressSanitizer freed memory waits in a quarantine (256 MB) and
# every byte has shadow memory: the bounds are checked in the normal build
# only, the bytes in both.
if ldd "$SQUANT" 2>/dev/null | grep -q libasan; then
    echo "sanitizer build: peak memory not checked"
    bound_kib=999999999
fi

# The CLI: peak RSS of the child (getrusage), from Python.
peak_cli() { # out, squant args...
    out=$1
    shift
    $PYTHON - "$SQUANT" "$@" "$T/llm.safetensors" -o "$out" <<'PY'
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if r.returncode == 0 else -1)
PY
}
kib=$(peak_cli "$T/cli.st" quantize -q)
check "the CLI succeeds on the 32-layer model" [ "$kib" -gt 0 ]
check "the CLI peaks at $kib KiB, under $bound_kib KiB" [ "$kib" -le "$bound_kib" ]
kib1=$(peak_cli "$T/cli1.st" quantize -q --threads 1)
check "one thread: under the bound too ($kib1 KiB)" [ "$kib1" -le "$bound_kib" ]
check "one thread gives the same bytes" cmp -s "$T/cli.st" "$T/cli1.st"
"$SQUANT" quantize -q "$T/llm.safetensors" -o - >"$T/stdout.st"
check "-o - gives the same bytes" cmp -s "$T/cli.st" "$T/stdout.st"
"$SQUANT" quantize -q "$T/llm.safetensors" -o - | cat >"$T/pipe.st"
check "-o - into a pipe gives the same bytes" cmp -s "$T/cli.st" "$T/pipe.st"
printf 'x' >"$T/append.st"
"$SQUANT" quantize -q "$MODEL" -o - >>"$T/append.st"
"$SQUANT" quantize -q "$MODEL" -o "$T/small.st"
check "-o - appended to a file (O_APPEND) gives the same bytes" sh -c "tail -c +2 '$T/append.st' | cmp -s - '$T/small.st'"
rm -f "$T/cli1.st" "$T/stdout.st" "$T/pipe.st"

hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$SQD_PID/status"; }

start_daemon --max-body-size 1G
base_kib=$(hwm)
http POST /v1/quantize -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/llm.safetensors"
expect_status 200 "POST /v1/quantize of the 32-layer model"
check "the answer is byte-identical to the CLI's" cmp -s "$T/body" "$T/cli.st"
kib=$(hwm)
check "the daemon peaks at $kib KiB (at start $base_kib), under $bound_kib KiB" [ "$kib" -le "$bound_kib" ]
http POST /v1/jobs -H 'Content-Type: application/vnd.safetensors' --data-binary @"$T/llm.safetensors"
expect_status 202 "POST /v1/jobs of the 32-layer model"
id=$(jget "$T/body" 'd["id"]')
i=0
while [ $i -lt 600 ]; do
    http GET "/v1/jobs/$id"
    state=$(jget "$T/body" 'd["state"]')
    [ "$state" = done ] || [ "$state" = failed ] && break
    sleep 0.1
    i=$((i + 1))
done
check "the job is done" [ "$state" = done ]
http GET "/v1/jobs/$id/result"
expect_status 200 "the job's result"
check "the job's result is byte-identical to the CLI's" cmp -s "$T/body" "$T/cli.st"
kib=$(hwm)
check "after the job too: $kib KiB, under $bound_kib KiB" [ "$kib" -le "$bound_kib" ]
stop_daemon
finish

#!/bin/sh
# Many clients at once (bounded: 32 clients x 5 requests, loopback only):
# every answer is checked against the CLI's output, the counters add up,
# and nothing is left running afterwards.
. "${top_srcdir:-.}/tests/integration/lib.sh"
CLIENTS=${CLIENTS:-32}
PER_CLIENT=${PER_CLIENT:-5}
start_daemon --max-connections 128 --max-queued-jobs 256

$GEN npy "$T/small.npy" 64,64,3,3 --seed 3
"$SQUANT" quantize -q --bits 3 "$T/small.npy" -o "$T/small.expected"
"$SQUANT" quantize -q --bits 4 --format json "$MODEL" -o "$T/model.expected"

# client N: PER_CLIENT requests, alternating a small tensor and the model.
cat >"$T/client.sh" <<'SH'
n=$1; base=$2; dir=$3; per=$4
i=0
while [ $i -lt "$per" ]; do
    if [ $(( (n + i) % 2 )) = 0 ]; then
        code=$(curl -s --max-time 60 -o "$dir/out.$n.$i" -w '%{http_code}' -H 'Content-Type: application/x-npy' \
            --data-binary @"$dir/small.npy" "$base/v1/quantize?bits=3")
        cmp -s "$dir/out.$n.$i" "$dir/small.expected" || code="$code-differs"
    else
        code=$(curl -s --max-time 60 -o "$dir/out.$n.$i" -w '%{http_code}' -H 'Accept: application/json' \
            -F model=@"$dir/model.st" "$base/v1/quantize?bits=4")
        cmp -s "$dir/out.$n.$i" "$dir/model.expected" || code="$code-differs"
    fi
    echo "$code"
    rm -f "$dir/out.$n.$i"
    i=$((i + 1))
done
SH
cp "$MODEL" "$T/model.st"
start=$(date +%s%N)
seq 1 "$CLIENTS" | xargs -P "$CLIENTS" -I{} sh "$T/client.sh" {} "$BASE" "$T" "$PER_CLIENT" >"$T/codes"
end=$(date +%s%N)
total=$((CLIENTS * PER_CLIENT))
ok=$(grep -cx 200 "$T/codes" || true)
check "all $total answers are 200 and byte-identical to the CLI ($ok ok: $(sort "$T/codes" | uniq -c | tr '\n' ' '))" [ "$ok" = "$total" ]
echo "concurrency: $total requests from $CLIENTS clients in $(( (end - start) / 1000000 )) ms"
sleep 0.3
http GET /metrics
check "every request counted" grep -q "^squantd_requests_total{route=\"/v1/quantize\",method=\"POST\",status=\"200\"} $total\$" "$T/body"
check "jobs counted" grep -q "^squantd_jobs_total{state=\"done\"} $total\$" "$T/body"
check "queue empty" grep -q '^squantd_queue_depth 0' "$T/body"
check "nothing running" grep -q '^squantd_jobs_running 0' "$T/body"
stop_daemon 0
check "one access-log line per request" [ "$(grep -c 'path=/v1/quantize status=200' "$T/daemon.log")" = "$total" ]
finish

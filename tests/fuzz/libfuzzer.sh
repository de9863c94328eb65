#!/bin/sh
# Build real libFuzzer binaries of the parsers with clang, outside the
# autotools build, and optionally run them for a while:
#
#   tests/fuzz/libfuzzer.sh BUILDDIR OUTDIR [SECONDS]
#
# BUILDDIR is a configured build directory (for config.h). With SECONDS,
# each fuzzer runs that long on a copy of its seed corpus (new inputs go to
# OUTDIR/corpus-<parser>, crashes to OUTDIR/crash-*).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
out=$2
secs=${3:-}
mkdir -p "$out"
flags="-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
inc="-I$build -I$top/include -I$top/src/util -I$top/tests/fuzz"
jansson=$(pkg-config --cflags --libs jansson)
for p in npy safetensors; do
    clang $flags $inc -o "$out/fuzz_$p" "$top/tests/fuzz/fuzz_$p.c" \
        "$top"/src/formats/*.c "$top/src/util/buf.c" "$top/src/util/error.c" $jansson -lm
    if [ -n "$secs" ]; then
        mkdir -p "$out/corpus-$p"
        cp "$top/tests/fuzz/corpus/$p"/* "$out/corpus-$p/"
        "$out/fuzz_$p" -max_total_time="$secs" -artifact_prefix="$out/" \
            -dict="$top/tests/fuzz/$p.dict" "$out/corpus-$p"
    fi
done

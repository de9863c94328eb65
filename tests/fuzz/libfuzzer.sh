#!/bin/sh
# Build real libFuzzer binaries of the parsers with clang, outside the
# autotools build, and optionally run them for a while:
#
#   tests/fuzz/libfuzzer.sh BUILDDIR OUTDIR [SECONDS]
#
# BUILDDIR is a configured and built build directory (for config.h, and
# for the core library, which the daemon harnesses link uninstrumented).
# With SECONDS, each fuzzer runs that long on a copy of its seed corpus
# (new inputs go to OUTDIR/corpus-<parser>, crashes to OUTDIR/crash-*).
# FUZZERS="params spool" limits the run to those harnesses.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
out=$2
secs=${3:-}
mkdir -p "$out"
flags="-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
inc="-I$build -I$top/include -I$top/src/util -I$top/tests/fuzz"
jansson=$(pkg-config --cflags --libs jansson)
protobuf=$(pkg-config --cflags --libs libprotobuf-c)
daemon_libs="$(pkg-config --cflags --libs libmicrohttpd libuv) $jansson $protobuf"
daemon_src=$(ls "$top"/src/daemon/*.c | grep -v '/main\.c$')
core="$build/src/core/.libs/libsqcore.a $build/src/core/.libs/libsqcore_avx2.a $build/src/core/.libs/libsqcore_avx512.a"
for p in ${FUZZERS:-npy safetensors onnx params fields raw spool config multipart http}; do
    case $p in
    npy | safetensors | onnx)
        clang $flags $inc -I"$build/src/formats" -o "$out/fuzz_$p" "$top/tests/fuzz/fuzz_$p.c" \
            "$top"/src/formats/*.c "$build/src/formats/onnx.pb-c.c" "$top/src/util/buf.c" \
            "$top/src/util/error.c" $jansson $protobuf -lm
        ;;
    *)
        # shellcheck disable=SC2086
        clang $flags $inc -I"$top/src/daemon" -I"$build/src/formats" -o "$out/fuzz_$p" \
            "$top/tests/fuzz/fuzz_$p.c" $daemon_src "$top"/src/plan/*.c "$top"/src/formats/*.c \
            "$build/src/formats/onnx.pb-c.c" "$build/src/daemon/ui_assets.c" "$top"/src/util/*.c \
            $core $daemon_libs -lsystemd -lpthread -lm
        ;;
    esac
    if [ -n "$secs" ]; then
        mkdir -p "$out/corpus-$p"
        cp "$top/tests/fuzz/corpus/$p"/* "$out/corpus-$p/"
        dict=
        [ -f "$top/tests/fuzz/$p.dict" ] && dict="-dict=$top/tests/fuzz/$p.dict"
        # The daemon harness keeps a daemon alive across inputs: no leak check per input.
        [ "$p" = http ] && dict="$dict -detect_leaks=0 -timeout=10"
        # shellcheck disable=SC2086
        "$out/fuzz_$p" -max_total_time="$secs" -artifact_prefix="$out/$p-" $dict \
            -print_final_stats=1 "$out/corpus-$p" >"$out/$p.log" 2>&1 || true
        grep -E 'DONE|INITED|^Done|stat::|ERROR|SUMMARY' "$out/$p.log" | tail -n 12
    fi
done

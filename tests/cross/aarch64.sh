#!/bin/sh
# The core's conformance and property tests on 64-bit Arm: cross-compile
# util, core and formats (the test programs read .npy files) and the two
# test programs with Debian's gcc-aarch64-linux-gnu, link them statically
# against Debian's arm64 Check and jansson, and run them under qemu-user.
# They must pass with the same codes and reports as on x86-64 (there only
# ref and generic exist, and they are compared with each other and with the
# reference's vectors). Timings under emulation mean nothing: none are taken.
#
#   tests/cross/aarch64.sh [BUILD_DIR]     (default: build-aarch64)
#
# Installs what it needs when missing (root or sudo): the cross compiler,
# qemu-user, and the arm64 Check and jansson (dpkg multiarch).
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
out=${1:-build-aarch64}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=""
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libjansson-dev:arm64 \
    check:arm64 libsubunit-dev:arm64; do
    installed "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "aarch64: installing$missing"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        $sudo dpkg --add-architecture arm64
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

cc=aarch64-linux-gnu-gcc
mkdir -p "$out"
# The configure results the core needs: none but the absence of SQ_ARCH_X86_64.
cat > "$out/config.h" <<'CONFIG'
/* config.h for the aarch64 cross build of the core tests (tests/cross/aarch64.sh) */
#define HAVE_STDINT_H 1
CONFIG
# The flags configure gives the core (configure.ac: warnings, exact floats, vectorizer).
cflags="-std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-psabi -ffp-contract=off -fno-fast-math \
-fvisibility=hidden -ftree-vectorize -fvect-cost-model=dynamic -fno-trapping-math"
# Debian's arm64 headers live in /usr/include with the host's: after the cross sysroot's.
inc="-I$top/include -I$out -I$top/src/util -I$top/src/core -I$top/tests/unit -idirafter /usr/include"
libs="-L/usr/lib/aarch64-linux-gnu -static -lcheck -lsubunit -ljansson -lm -lpthread -lrt"
srcs="src/util/error.c src/util/buf.c src/core/quant.c src/core/rowsum.c src/core/squant_ref.c
src/core/squant_generic.c src/core/stage.c src/core/report.c src/formats/dtype.c
src/formats/model.c src/formats/npy.c src/formats/safetensors.c src/formats/raw.c"
objs=""
for s in $srcs; do
    o="$out/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')"
    # shellcheck disable=SC2086
    $cc $cflags $inc -c "$s" -o "$o"
    objs="$objs $o"
done
for t in tests/core/test_squant tests/conformance/test_conformance; do
    # shellcheck disable=SC2086
    $cc $cflags $inc "$t.c" $objs $libs -o "$out/$(basename "$t")"
done
# ELF e_machine 183 (0xb7): AArch64
[ "$(od -An -tx1 -j18 -N2 "$out/test_squant" | tr -d ' ')" = b700 ] ||
    { echo "aarch64: $out/test_squant is not an AArch64 binary"; exit 1; }

status=0
for t in test_squant test_conformance; do
    echo "== aarch64 (qemu-user): $t"
    top_srcdir=$top CK_DEFAULT_TIMEOUT=1200 qemu-aarch64 "$out/$t" || status=1
done
[ $status -eq 0 ] && echo "aarch64: core tests passed" || echo "aarch64: core tests FAILED"
exit $status

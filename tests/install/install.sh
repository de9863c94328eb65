#!/bin/sh
# `make install` into a DESTDIR gives a usable libsquant: the headers compile
# on their own from the installed include directory, pkg-config finds
# squant.pc, a small program builds and runs against the installed shared
# library and against the static one, and the shared library exports the
# public sq_ API and nothing else. The manual pages are installed too.
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
CC=${CC:-cc}
CFLAGS=${CFLAGS:-}
LDFLAGS=${LDFLAGS:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { # description, command...
    d=$1
    shift
    if "$@"; then ok; else bad "$d"; fi
}
finish() {
    echo "# $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}

dest=$tmp/dest
# A make of its own: not the jobserver of the `make check` that runs us.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL ${MAKE:-make} -s -C "$top_builddir" install \
    DESTDIR="$dest" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    bad "make install DESTDIR=..."
    finish
fi
ok

pc=$(find "$dest" -name squant.pc)
check "squant.pc is installed under \$libdir/pkgconfig" sh -c "[ -n '$pc' ] && [ \"\$(basename \"\$(dirname '$pc')\")\" = pkgconfig ]"
[ -n "$pc" ] || finish
PKG_CONFIG_PATH=$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
pkgconf=${PKG_CONFIG:-pkg-config}
check "pkg-config knows squant $("$pkgconf" --modversion squant 2>&1)" "$pkgconf" --exists --print-errors squant
cflags=$("$pkgconf" --cflags squant)
libs=$("$pkgconf" --libs squant)
static_libs=$("$pkgconf" --static --libs squant)
# (pkgconf prefixes variables with the sysroot, pkg-config does not: ask without it.)
libdir=$dest$(env -u PKG_CONFIG_SYSROOT_DIR "$pkgconf" --variable=libdir squant)
incdir=$dest$(env -u PKG_CONFIG_SYSROOT_DIR "$pkgconf" --variable=includedir squant)
echo "cflags: $cflags"
echo "libs: $libs"
echo "static: $static_libs"
case "$cflags" in *"$dest"*) ok ;; *) bad "--cflags points into the DESTDIR: $cflags" ;; esac

# Every public header compiles alone, from the installed copy only (no -I
# into the source tree, no config.h), in strict C11 and as C++ if there is
# a C++ compiler.
n=0
for h in "$top_srcdir"/include/squant/*.h; do
    name=$(basename "$h")
    n=$((n + 1))
    check "installed squant/$name is the source's" cmp -s "$h" "$incdir/squant/$name"
    printf '#include <squant/%s>\n#include <squant/%s>\nint main(void) { return 0; }\n' \
        "$name" "$name" >"$tmp/h.c"
    # shellcheck disable=SC2086
    if $CC -std=c11 -pedantic -Wall -Wextra -Werror $cflags -c "$tmp/h.c" -o "$tmp/h.o" \
        >"$tmp/h.err" 2>&1; then
        ok
    else
        bad "<squant/$name> does not compile alone: $(cat "$tmp/h.err")"
    fi
done
check "six public headers installed ($n)" [ "$n" -eq 6 ] && [ "$(ls "$incdir/squant" | wc -l)" -eq 6 ]

prog=$top_srcdir/tests/install/use_squant.c
# Shared: links to libsquant.so.N from the DESTDIR and runs with it.
# shellcheck disable=SC2086
if $CC $CFLAGS -std=c11 -Wall -Wextra -Werror $cflags "$prog" -o "$tmp/use-shared" $LDFLAGS $libs \
    >"$tmp/cc.err" 2>&1; then
    ok
    check "the shared build needs libsquant.so.0" sh -c "readelf -d '$tmp/use-shared' | grep -q 'NEEDED.*\\[libsquant\\.so\\.0\\]'"
    LD_LIBRARY_PATH=$libdir "$tmp/use-shared" >"$tmp/out" 2>&1
    check "the shared build runs and gets the known codes: $(cat "$tmp/out")" grep -q ': ok' "$tmp/out"
    check "it loads the installed copy" sh -c "LD_LIBRARY_PATH='$libdir' ldd '$tmp/use-shared' | grep -q '$libdir/libsquant.so.0'"
else
    bad "link against the shared libsquant: $(cat "$tmp/cc.err")"
fi
# Static: libsquant.a with the private libraries pkg-config names.
static_only=$(echo "$static_libs" | sed 's/-lsquant\b/-Wl,-Bstatic -lsquant -Wl,-Bdynamic/')
# shellcheck disable=SC2086
if $CC $CFLAGS -std=c11 -Wall -Wextra -Werror $cflags "$prog" -o "$tmp/use-static" $LDFLAGS $static_only \
    >"$tmp/cc.err" 2>&1; then
    ok
    check "the static build does not need libsquant.so" sh -c "! readelf -d '$tmp/use-static' | grep -q 'libsquant'"
    "$tmp/use-static" >"$tmp/out" 2>&1
    check "the static build runs and gets the known codes: $(cat "$tmp/out")" grep -q ': ok' "$tmp/out"
else
    bad "link against the static libsquant: $(cat "$tmp/cc.err")"
fi

# The shared library exports exactly the functions the headers declare SQ_API.
so=$(ls "$libdir"/libsquant.so.0.* 2>/dev/null | head -n 1)
if [ -n "$so" ]; then
    nm -D --defined-only "$so" | awk '{print $3}' | sort >"$tmp/exported"
    grep -hv '^#' "$top_srcdir"/include/squant/*.h | tr '\n' ' ' | grep -o 'SQ_API[^(;]*(' |
        sed 's/[[:space:]]*($//; s/.*[[:space:]*]//' | sort >"$tmp/declared"
    check "exports are the declared sq_ API ($(wc -l <"$tmp/declared") functions)" \
        sh -c "[ -s '$tmp/declared' ] && diff '$tmp/declared' '$tmp/exported'"
else
    bad "no libsquant.so.0.* in $libdir"
fi
check "libsquant.a is installed" test -f "$libdir/libsquant.a"

# The service as installed: the unit's commands name the installed daemon
# and configuration, that configuration is valid, systemd-analyze verify
# accepts the unit (its paths moved into the DESTDIR, its Documentation=
# pages looked up in the installed manual), and with a system prefix the
# unit lands in a directory systemd reads.
unit=$(find "$dest" -name squantd.service | head -n 1)
if [ -n "$unit" ]; then
    unitdir=${unit#"$dest"}
    unitdir=${unitdir%/squantd.service}
    daemon=$(sed -n 's|^ExecStart=\([^ ]*\) .*|\1|p' "$unit")
    conf=$(sed -n 's|^ExecStart=.* --config \([^ ]*\).*|\1|p' "$unit")
    check "ExecStart= runs the installed squantd ($daemon)" test -x "$dest$daemon"
    check "ExecStart= reads the installed configuration ($conf)" test -f "$dest$conf"
    check "the installed configuration is valid" "$dest$daemon" --check-config --config "$dest$conf"
    if command -v systemd-analyze >/dev/null 2>&1; then
        prefix=${daemon%/sbin/squantd}
        sed -e "s|$prefix/|$dest$prefix/|g" "$unit" >"$tmp/squantd.service"
        mandir=$(dirname "$(dirname "$(find "$dest" -name squantd.8 | head -n 1)")")
        man=--man=yes
        command -v man >/dev/null 2>&1 || man=--man=no
        MANPATH=$mandir systemd-analyze verify $man "$tmp/squantd.service" >"$tmp/verify" 2>&1
        check "systemd-analyze verify accepts the installed unit: $(cat "$tmp/verify")" \
            sh -c "[ ! -s '$tmp/verify' ]"
        case $prefix in
        /usr | /usr/local)
            check "systemd reads units from $unitdir" sh -c "systemd-analyze unit-paths | grep -qx '$unitdir'"
            ;;
        esac
    fi
else
    bad "no squantd.service installed"
fi

# docs/operations.md "Install", after the README's build (the default
# prefix): every path of its table is installed, the configuration it checks
# is valid, `man` finds the pages, and squant and squantd run
# without `ldconfig` (they contain the library).
prefix=$(sed -n 's/^prefix = //p' "$top_builddir/Makefile")
sysconfdir=$(sed -n 's/^sysconfdir = //p' "$top_builddir/Makefile")
if [ "$prefix" = /usr/local ] && [ "$sysconfdir" = '${prefix}/etc' ]; then
    paths=$(sed -n '/^## Install/,/^## /p' "$top_srcdir/docs/operations.md" | grep '^| ' |
        grep -o '`/usr/local/[^`]*`' | tr -d '`' | sed 's/ .*//')
    n=0
    for p in $paths; do
        n=$((n + 1))
        # shellcheck disable=SC2086
        check "docs/operations.md: $p is installed" sh -c "ls -d $dest$p >/dev/null 2>&1"
    done
    check "docs/operations.md's table names the installed paths ($n)" [ "$n" -ge 9 ]
    check "docs/operations.md: /usr/local/sbin/squantd --check-config --config /usr/local/etc/squantd/squantd.conf" \
        "$dest/usr/local/sbin/squantd" --check-config --config "$dest/usr/local/etc/squantd/squantd.conf"
    if command -v man >/dev/null 2>&1; then
        for m in squant squantd squantd.conf; do # (and the README's last line)
            check "docs/operations.md: man $m" sh -c "MANPATH='$dest/usr/local/share/man' man -w $m >/dev/null"
        done
    fi
    for b in bin/squant sbin/squantd; do
        check "$b runs without the installed library: $(env -u LD_LIBRARY_PATH "$dest/usr/local/$b" --version 2>&1)" \
            sh -c "env -u LD_LIBRARY_PATH '$dest/usr/local/$b' --version >/dev/null && ! ldd '$dest/usr/local/$b' | grep -q libsquant"
    done
else
    echo "prefix $prefix, sysconfdir $sysconfdir: docs/operations.md's default-prefix paths not checked"
fi

# The manual pages, installed under $mandir.
for m in man1/squant.1 man5/squantd.conf.5 man8/squantd.8; do
    check "$m installed" sh -c "find '$dest' -path '*/man/$m' | grep -q ."
done
finish

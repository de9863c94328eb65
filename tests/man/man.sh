#!/bin/sh
# The manual pages are well-formed (groff and man report no warning) and
# true to the programs: squantd.conf(5) names every key of the option table
# (from `squantd --help`), squant(1) every option of `squant --help`, and
# squantd(8) every option of `squantd --help`.
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

squant=$top_builddir/src/cli/squant
squantd=$top_builddir/src/daemon/squantd
page1=$top_srcdir/man/squant.1
page5=$top_builddir/man/squantd.conf.5
page8=$top_builddir/man/squantd.8

render() { # page -> plain text, one wide line per paragraph, no hyphenation
    groff -man -Tascii -P-cbou -rLL=400n -rHY=0 "$1" 2>/dev/null
}

for p in "$page1" "$page5" "$page8"; do
    name=$(basename "$p")
    if [ ! -f "$p" ]; then
        bad "$name is not built"
        continue
    fi
    groff -man -ww -z "$p" >"$tmp/warn" 2>&1
    if [ -s "$tmp/warn" ]; then bad "groff warns on $name: $(cat "$tmp/warn")"; else ok; fi
    if command -v man >/dev/null 2>&1; then
        MANWIDTH=80 man --warnings -l "$p" >"$tmp/out" 2>"$tmp/warn"
        if [ -s "$tmp/warn" ] || [ ! -s "$tmp/out" ]; then
            bad "man --warnings -l $name: $(cat "$tmp/warn")"
        else
            ok
        fi
    fi
    if grep -q '@[a-zA-Z_]*@' "$p"; then bad "$name has an unsubstituted @VAR@"; else ok; fi
done

# squantd.conf(5): each key of the table is a tag in KEYS, and nothing else is.
"$squantd" --help >"$tmp/dhelp" || bad "squantd --help"
sed -n 's/^  --\([a-z0-9-]*\) (.*/\1/p' "$tmp/dhelp" | sort >"$tmp/keys"
[ -s "$tmp/keys" ] && ok || bad "no keys in squantd --help"
render "$page5" | sed -n '/^KEYS/,/^[A-Z]/p' | sed -n 's/^       \([a-z0-9-][a-z0-9-]*\)\( .*\)\{0,1\}$/\1/p' |
    sort >"$tmp/tags"
if diff "$tmp/keys" "$tmp/tags" >"$tmp/diff"; then
    ok
else
    bad "squantd.conf.5 KEYS differ from the option table (< table, > page): $(cat "$tmp/diff")"
fi

# squantd(8): every option before the keys.
render "$page8" >"$tmp/page8"
sed '/^Keys:/q' "$tmp/dhelp" | grep -o -- '--[a-z][a-z-]*' | sort -u >"$tmp/dopts"
[ -s "$tmp/dopts" ] && ok || bad "no options in squantd --help"
for o in $(cat "$tmp/dopts"); do
    grep -q -- "$o" "$tmp/page8" && ok || bad "squantd.8 does not mention $o"
done
grep -q 'squantd\.conf(5)' "$tmp/page8" && ok || bad "squantd.8 does not point to squantd.conf(5)"

# squant(1): every long and short option and every command of the usage.
render "$page1" >"$tmp/page1"
"$squant" --help >"$tmp/chelp" || bad "squant --help"
grep -o -- '--[a-z][a-z-]*' "$tmp/chelp" | sort -u >"$tmp/copts"
grep -o -- '^  -[a-zA-Z],' "$tmp/chelp" | sed 's/^  //; s/,$//' >>"$tmp/copts"
[ "$(wc -l <"$tmp/copts")" -ge 10 ] && ok || bad "too few options in squant --help"
for o in $(cat "$tmp/copts"); do
    grep -q -- "$o\b" "$tmp/page1" && ok || bad "squant.1 does not mention $o"
done
for c in $(sed -n 's/^ *\(usage: \)\{0,1\}squant \([a-z][a-z]*\) .*/\2/p' "$tmp/chelp"); do
    grep -q "^       $c\b" "$tmp/page1" && ok || bad "squant.1 does not describe the command $c"
done

echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]

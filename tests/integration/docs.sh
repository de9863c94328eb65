#!/bin/sh
# Every example a user can run in the README and docs/ must print what the
# page says it prints: docs_check.py runs each page's ```sh blocks against
# a daemon started with the shipped configuration (its address stands in
# for http://127.0.0.1:8080) and fails on a bare ``` block, so an example
# is either run or explicitly marked ```sh norun with a reason on the page.
. "${top_srcdir:-.}/tests/integration/lib.sh"
start_daemon --config "$top_srcdir/etc/squantd.conf"
mkdir -p "$T/work"
# The pages' commands run from the top of a source tree whose build is in
# build/ (the README's): the source tree's files and build/ are linked into
# the work directory, and nothing is added to PATH.
src=$(cd "$top_srcdir" && pwd)
for f in examples tests etc docs api; do ln -s "$src/$f" "$T/work/$f"; done
ln -s "$(cd "$top_builddir" && pwd)" "$T/work/build"
# Every page, so a new one is checked too; docs/api.md first, on a daemon
# with no jobs yet (its job list shows them).
pages="README.md docs/api.md $(cd "$src" && ls docs/*.md docs/internals/*.md | grep -vx docs/api.md)"
n=0
for page in $pages; do
    n=$((n + 1))
    if $PYTHON "$top_srcdir/tests/integration/docs_check.py" \
        "$top_srcdir/$page" "$BASE" "$T/work"; then pass; else fail "$page examples"; fi
done
# docs/operations.md's access-log line is the one the README's curl left
# in the log (but for the request id and the time).
line=$(sed -n '/^## Logs/,/^## /p' "$top_srcdir/docs/operations.md" | grep '^access ' | head -n 1)
re=$(printf '%s\n' "$line" | sed -e 's/[.[\*^$]/\\&/g' -e 's/id=[^ ]*/id=[0-9a-f]{16}/' -e 's/ms=[^ ]*/ms=[0-9.]+/')
check "docs/operations.md's access line ($line) is in the log" \
    sh -c "[ -n '$line' ] && grep -Eq '^$re\$' '$T/daemon.log'"
check "every page checked ($n)" [ "$n" -ge 13 ]
stop_daemon 0
finish

#!/bin/sh
# Every curl example of docs/api.md, run against a daemon started with the
# shipped configuration, must print what the page says it prints.
. "${top_srcdir:-.}/tests/integration/lib.sh"
start_daemon --config "$top_srcdir/etc/squantd.conf"
mkdir -p "$T/work"
# The page's commands run from the top of a source tree whose build is in
# build/ (the README's): examples/ and build/ are linked into the work
# directory, and nothing is added to PATH.
ln -s "$(cd "$top_srcdir" && pwd)/examples" "$T/work/examples"
ln -s "$(cd "$top_builddir" && pwd)" "$T/work/build"
if $PYTHON "$top_srcdir/tests/integration/docs_check.py" \
    "$top_srcdir/docs/api.md" "$BASE" "$T/work"; then pass; else fail "docs/api.md examples"; fi
stop_daemon 0
finish

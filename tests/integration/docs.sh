#!/bin/sh
# Every curl example of docs/api.md, run against a daemon started with the
# shipped configuration, must print what the page says it prints.
. "${top_srcdir:-.}/tests/integration/lib.sh"
start_daemon --config "$top_srcdir/etc/squantd.conf"
mkdir -p "$T/work"
ln -s "$(cd "$top_srcdir" && pwd)/examples" "$T/work/examples"
bindirs="$(cd "$(dirname "$SQUANT")" && pwd):$(cd "$(dirname "$SQUANTD")" && pwd)"
if PATH="$bindirs:$PATH" $PYTHON "$top_srcdir/tests/integration/docs_check.py" \
    "$top_srcdir/docs/api.md" "$BASE" "$T/work"; then pass; else fail "docs/api.md examples"; fi
stop_daemon 0
finish

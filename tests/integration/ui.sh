#!/bin/sh
# The page's files as HTTP: types, ETag and 304, caching and security
# headers, the embedded bytes, the `ui` switch, and no token needed for the
# page while the API still wants one. (The page in a browser: tests/browser.)
. "${top_srcdir:-.}/tests/integration/lib.sh"
start_daemon

http GET /
expect_status 200 "GET /"
check "the page is HTML" [ "$(header Content-Type)" = "text/html; charset=utf-8" ]
check "the page is ui/index.html" cmp -s "$T/body" "$top_srcdir/ui/index.html"
etag=$(header ETag)
check "a strong ETag" sh -c "echo '$etag' | grep -Eq '^\"[0-9a-f]{32}\"$'"
check "Cache-Control: no-cache" [ "$(header Cache-Control)" = no-cache ]
csp=$(header Content-Security-Policy)
check "CSP default-src 'self'" sh -c "echo \"\$1\" | grep -q \"default-src 'self';\"" - "$csp"
check "CSP allows no other origin" sh -c "! echo \"\$1\" | grep -Eq 'https?:|\\*|unsafe'" - "$csp"
check "nosniff" [ "$(header X-Content-Type-Options)" = nosniff ]

rm -f "$T/body"
http GET / -H "If-None-Match: $etag"
expect_status 304 "If-None-Match with the ETag"
check "304 repeats the ETag" [ "$(header ETag)" = "$etag" ]
check "304 has no body" [ ! -s "$T/body" ]
http GET / -H "If-None-Match: \"0000\", W/$etag"
expect_status 304 "If-None-Match with a list and a weak tag"
http GET / -H 'If-None-Match: *'
expect_status 304 "If-None-Match: *"
http GET / -H 'If-None-Match: "0123456789abcdef0123456789abcdef"'
expect_status 200 "If-None-Match with another ETag"

for f in app.js:text/javascript app.css:text/css uPlot.iife.min.js:text/javascript \
    uPlot.min.css:text/css uPlot.LICENSE:text/plain; do
    name=${f%%:*}
    type=${f#*:}
    src=$top_srcdir/ui/$name
    [ -f "$src" ] || src=$top_srcdir/ui/vendor/$name
    http GET "/ui/$name"
    expect_status 200 "GET /ui/$name"
    check "/ui/$name is $type" [ "$(header Content-Type)" = "$type; charset=utf-8" ]
    check "/ui/$name is the file, byte for byte" cmp -s "$T/body" "$src"
    check "/ui/$name has its own ETag" sh -c "[ -n '$(header ETag)' ] && [ '$(header ETag)' != '$etag' ]"
    check "/ui/$name has the CSP" [ "$(header Content-Security-Policy)" = "$csp" ]
done
# Everything the page loads is served, and nothing it loads is elsewhere.
for ref in $(sed -n 's/.*\(src\|href\)="\([^"]*\)".*/\2/p' "$top_srcdir/ui/index.html"); do
    case $ref in
    data:*) continue ;;
    /ui/*) http GET "$ref"; expect_status 200 "the page's $ref" ;;
    *) fail "the page refers to $ref, not to a file of its own" ;;
    esac
done
check "the page's own files name no other host" sh -c "! grep -Eq 'https?://' '$top_srcdir/ui/index.html' '$top_srcdir/ui/app.js' '$top_srcdir/ui/app.css'"

http GET /ui/index.html
expect_error 404 not_found "the page only at /"
http GET /ui/nope.js
expect_error 404 not_found "an unknown file"
http GET /ui/../v1/info --path-as-is
expect_error 404 not_found "no way out of /ui/"
STATUS=$(curl -sS -I -o /dev/null -w '%{http_code}' "$BASE/")
expect_status 200 "HEAD /"
http POST / -d x
expect_error 405 method_not_allowed "POST /"
stop_daemon 0

# ui = no: the page is gone, the API stays.
start_daemon --ui no
http GET /
expect_error 404 not_found "no page with ui = no"
http GET /ui/app.js
expect_error 404 not_found "no files with ui = no"
http GET /v1/info
expect_status 200 "the API with ui = no"
stop_daemon 0

# With auth: the page needs no token (it asks for one), the API does.
echo page-token >"$T/tokens"
start_daemon --auth-token-file "$T/tokens"
http GET /
expect_status 200 "the page without a token"
http GET /ui/app.js
expect_status 200 "its files without a token"
http GET /v1/info
expect_error 401 unauthorized "the API without a token"
stop_daemon 0
finish

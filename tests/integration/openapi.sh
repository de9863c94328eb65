#!/bin/sh
# api/openapi.yaml is valid OpenAPI 3.1 and true to the route table and the
# error codes (tests/integration/openapi_check.py). With the npm package
# @apidevtools/swagger-parser installed (SWAGGER_PARSER_DIR=its node_modules
# parent), the document is also validated against the official schema.
set -u
: "${top_srcdir:=.}"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import yaml' 2>/dev/null; then
    echo "SKIP: python3-yaml is not installed"
    exit 77
fi
"$PY" "$top_srcdir/tests/integration/openapi_check.py" "$top_srcdir" || exit 1
if [ -n "${SWAGGER_PARSER_DIR:-}" ] && [ -d "$SWAGGER_PARSER_DIR/node_modules/@apidevtools/swagger-parser" ]; then
    NODE_PATH="$SWAGGER_PARSER_DIR/node_modules" node -e '
        require("@apidevtools/swagger-parser").validate(process.argv[1])
            .then(() => console.log("swagger-parser: valid"))
            .catch((e) => { console.error("swagger-parser: " + e.message); process.exit(1); });
    ' "$top_srcdir/api/openapi.yaml" || exit 1
fi
exit 0

#!/usr/bin/env python3
"""Check api/openapi.yaml: an OpenAPI 3.1 document whose structure is sound,
whose every $ref resolves, and which describes exactly the routes of
src/daemon/routes.c and every error code the daemon can send.

usage: openapi_check.py TOP_SRCDIR   (exit 0 = valid; needs python3-yaml)
"""
import os
import re
import sys

import yaml

top = sys.argv[1]
doc = yaml.safe_load(open(os.path.join(top, "api/openapi.yaml")))
errors = []


def err(msg):
    errors.append(msg)


def resolve(ref):
    if not ref.startswith("#/"):
        err("external $ref not allowed: " + ref)
        return None
    node = doc
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            err("unresolved $ref " + ref)
            return None
        node = node[part]
    return node


def walk(node, path):
    if isinstance(node, dict):
        if "$ref" in node:
            resolve(node["$ref"])
        for k, v in node.items():
            walk(v, path + "/" + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, "%s[%d]" % (path, i))


def deref(node):
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(node["$ref"]) or {}
    return node


if not str(doc.get("openapi", "")).startswith("3.1."):
    err("openapi must be 3.1.x")
for k in ("title", "version"):
    if k not in doc.get("info", {}):
        err("info." + k + " missing")
walk(doc, "#")

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
op_ids = set()
for path, item in doc.get("paths", {}).items():
    if not path.startswith("/"):
        err("path must start with /: " + path)
    templ = set(re.findall(r"{([^}]+)}", path))
    shared = [deref(p) for p in item.get("parameters", [])]
    for method, op in item.items():
        if method == "parameters":
            continue
        if method not in METHODS:
            err("%s: unknown key %s" % (path, method))
            continue
        where = "%s %s" % (method.upper(), path)
        oid = op.get("operationId")
        if not oid or oid in op_ids:
            err(where + ": operationId missing or duplicated")
        op_ids.add(oid)
        responses = op.get("responses") or {}
        if not responses:
            err(where + ": no responses")
        for code, r in responses.items():
            if not re.fullmatch(r"[1-5][0-9][0-9]|default", str(code)):
                err("%s: bad response code %s" % (where, code))
            r = deref(r)
            if "description" not in r:
                err("%s %s: response without description" % (where, code))
        params = shared + [deref(p) for p in op.get("parameters", [])]
        names = set()
        for p in params:
            if not {"name", "in"} <= set(p) or ("schema" not in p and "content" not in p):
                err(where + ": parameter without name, in or schema: %r" % p)
                continue
            if p["in"] not in ("query", "header", "path", "cookie"):
                err(where + ": parameter %s in %s" % (p["name"], p["in"]))
            if p["in"] == "path":
                names.add(p["name"])
                if not p.get("required"):
                    err(where + ": path parameter %s not required" % p["name"])
        if names != templ:
            err("%s: path parameters %s do not match the template %s" % (where, names, templ))
        if method == "post":
            rb = deref(op.get("requestBody", {}))
            if not rb.get("content"):
                err(where + ": POST without a request body")

# The route table of the daemon, read from its source.
src = open(os.path.join(top, "src/daemon/routes.c")).read()
routes = set(re.findall(r'\{"(/[^"]*)",\s*"([A-Z]+)",\s*sqd_h_', src))
if len(routes) < 5:
    err("could not read the route table from src/daemon/routes.c")
spec = set()
for path, item in doc.get("paths", {}).items():
    for method in item:
        if method in METHODS:
            spec.add((path, method.upper()))
for r in sorted(routes - spec):
    err("route %s %s is not in api/openapi.yaml" % (r[1], r[0]))
for r in sorted(spec - routes):
    err("api/openapi.yaml describes %s %s, which the daemon does not serve" % (r[1], r[0]))

# Every error code the daemon can send is in the Error schema's enum.
enum = set(deref(doc["components"]["schemas"]["Error"])["properties"]["error"]["properties"]["code"]["enum"])
codes = set(re.findall(r'\[SQ_ERR_\w+\] = \{"(\w+)"', open(os.path.join(top, "src/util/error.c")).read()))
for f in os.listdir(os.path.join(top, "src/daemon")):
    if f.endswith(".c"):
        text = open(os.path.join(top, "src/daemon", f)).read()
        codes |= set(re.findall(r'(?:sqd_respond_error|respond_err_h)\(req, \d+, "(\w+)"', text))
        codes |= set(re.findall(r'sqd_error_(?:body|json)\(\d+, "(\w+)"', text))
codes.discard("ok")
for c in sorted(codes - enum):
    err("error code %s is not in the Error schema" % c)

if errors:
    for e in errors:
        print("openapi: " + e)
    sys.exit(1)
print("openapi: %d paths, %d operations, %d error codes: ok" % (len(doc["paths"]), len(op_ids), len(enum)))

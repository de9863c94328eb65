#!/usr/bin/env python3
"""Run the examples of a Markdown page and compare what they print.

usage: docs_check.py PAGE.md BASE_URL WORKDIR

Every fenced block must say what it is (a bare ``` fence is an error, and
so are indented and ~~~ fences), so no example escapes by accident:
 - ```sh: run. All sh blocks of a page run in one bash (set -e), in order,
   so variables carry over, in WORKDIR, with http://127.0.0.1:8080 replaced
   by BASE_URL and /tmp/ by WORKDIR/tmp/ (in the expected output too).
   Two styles:
   * plain commands; the ```json or ```text block right after it is what
     it must print, byte for byte but for wildcards: line by line, a line
     "..." matches any number of lines and "<...>" inside a line matches
     any text (the blanks before it any number of blanks); json output
     must also parse as JSON. With no such block
     the commands must only succeed (exit status 0).
   * a transcript: the first line starts with "$ ". Lines starting with
     "$ " are commands (a line ending in a backslash continues on the
     next), the lines up to the next command are what it must print on
     stdout and stderr together, as a terminal shows it (as text, with the
     same wildcards; none means it prints nothing).
 - ```sh norun: shown, not run (the page says why: it needs root, systemd,
   a network, runs in the foreground, ...).
 - any other language (text, json, ini, nginx, yaml, c, ...): shown, not
   run; a json/text block right after a ```sh block is its expected output.
"""
import json
import os
import re
import subprocess
import sys

page, base, workdir = sys.argv[1:4]
text = open(page).read()
fences = re.findall(r"^```([^\n]*)\n(.*?)^```\s*$", text, re.S | re.M)
failures = 0
for m in re.finditer(r"^([ \t]+)(```|~~~)", text, re.M):
    print("FAIL %s:%d: an indented fence: docs_check.py reads only ``` at the start of a line"
          % (page, text[:m.start()].count("\n") + 1))
    failures += 1
for m in re.finditer(r"^~~~", text, re.M):
    print("FAIL %s:%d: a ~~~ fence: use ```" % (page, text[:m.start()].count("\n") + 1))
    failures += 1
# An indented code block that starts like a command escapes the fences: refuse it.
unfenced = re.sub(r"^```.*?^```\s*$", "", text, flags=re.S | re.M)
for m in re.finditer(r"\n\n( {4,}|\t)(\$ |curl |build/|squant|sudo |make |scripts/|tests/|cc )", unfenced):
    print("FAIL %s: an indented command (%r...): fence it as ```sh or ```sh norun"
          % (page, unfenced[m.start() + 2:m.start() + 60]))
    failures += 1
blocks = []
for info, body in fences:
    words = info.split()
    if not words:
        print("FAIL %s: a ``` block without a language (sh, sh norun, text, json, ...):\n%s"
              % (page, body[:300]))
        failures += 1
    blocks.append((words[0] if words else "", words[1:], body))


def subst(s):
    return s.replace("http://127.0.0.1:8080", base).replace("/tmp/", workdir + "/tmp/")


def term(cmd):
    # A transcript shows what the terminal shows: stdout and stderr.
    return "{ %s\n} 2>&1" % subst(cmd)


runs = []  # (command, kind, expected)
for i, (lang, flags, body) in enumerate(blocks):
    if lang != "sh" or "norun" in flags:
        continue
    if body.startswith("$ "):
        cmd, out = None, []
        lines = body.rstrip("\n").split("\n")
        k = 0
        while k < len(lines):
            line = lines[k]
            if line.startswith("$ "):
                if cmd is not None:
                    runs.append((term(cmd), "text", subst("".join(x + "\n" for x in out))))
                cmd, out = line[2:], []
                while cmd.endswith("\\") and k + 1 < len(lines):
                    k += 1
                    cmd += "\n" + lines[k]
            else:
                out.append(line)
            k += 1
        runs.append((term(cmd), "text", subst("".join(x + "\n" for x in out))))
        continue
    nxt = blocks[i + 1] if i + 1 < len(blocks) else None
    kind, expected = (nxt[0], nxt[2]) if nxt and nxt[0] in ("json", "text") else (None, None)
    runs.append((subst(body), kind, subst(expected) if expected else expected))

script = ["set -e", "mkdir -p tmp"]
for n, (cmd, _, _) in enumerate(runs):
    script.append("echo '@@@ %d'" % n)
    script.append(cmd)
script.append("echo '@@@ end'")
# The system's PATH only: a page names squant and squantd by their build
# paths, and an installed copy elsewhere (/usr/local/bin) must not stand in.
env = dict(os.environ, PATH="/usr/bin:/bin")
p = subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir, capture_output=True, text=True,
                   timeout=300, env=env)
outs = re.split(r"^@@@ (\d+|end)\n", p.stdout, flags=re.M)
got = {}
for k in range(1, len(outs) - 1, 2):
    got[outs[k]] = outs[k + 1]
if "end" not in got:
    print("the examples stopped early (exit %d); stderr:\n%s" % (p.returncode, p.stderr[-3000:]))
    failures += 1


def line_re(line):
    # A wildcard stands for text of any width: the blanks before it (a
    # right-aligned column) may be fewer or more, at least one.
    parts = re.split(r"<[^<>]*>", line)
    out = []
    for k, x in enumerate(parts):
        if k < len(parts) - 1 and x.endswith(" "):
            out.append(re.escape(x.rstrip(" ")) + " +")
        else:
            out.append(re.escape(x))
    return re.compile("^" + ".*?".join(out) + "$")


def match_text(exp, act):
    exp = exp.rstrip("\n").split("\n") if exp.strip() else []
    act = act.rstrip("\n").split("\n") if act.strip() else []

    def m(i, j):
        if i == len(exp):
            return j == len(act)
        if exp[i] == "...":
            return any(m(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and line_re(exp[i]).match(act[j]) is not None and m(i + 1, j + 1)

    return m(0, 0)


for n, (cmd, kind, expected) in enumerate(runs):
    out = got.get(str(n))
    if out is None:
        break
    first = cmd.strip().split("\n")[0].lstrip("{ ")[:100]
    if kind == "json":
        try:
            act = json.loads(out)
        except ValueError:
            print("FAIL %s\n  output is not JSON:\n%s" % (first, out[:2000]))
            failures += 1
            continue
        if not match_text(expected, out):
            print("FAIL %s\n--- expected\n%s--- got\n%s" % (first, expected, out[:3000]))
            failures += 1
    elif kind == "text":
        if not match_text(expected, out):
            print("FAIL %s\n--- expected\n%s--- got\n%s" % (first, expected, out[:3000]))
            failures += 1
print("%s: %d examples, %d failed" % (page, len(runs), failures))
sys.exit(1 if failures else 0)

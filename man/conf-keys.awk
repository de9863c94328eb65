# Turn the "## Keys" section of docs/config.md into the KEYS section of
# squantd.conf(5), so that the manual lists exactly the keys that
# tests/unit/test_config checks docs/config.md against (the option table in
# src/daemon/config.c), with the same defaults and text.
#
#   awk -f conf-keys.awk docs/config.md squantd.conf.5.in >squantd.conf.5
#
# The template's line "@KEYS@" is replaced by the keys. Markdown handled:
# "### `key`" headings, paragraphs, `code`, *emphasis*, [links](url),
# "- " bullets and ``` blocks.

function roff(s,    out, i, c, code, n) {
    gsub(/\\/, "\\e", s)
    # [text](url) -> text
    while (match(s, /\[[^]]*\]\([^)]*\)/)) {
        n = substr(s, RSTART + 1, RLENGTH - 1)
        sub(/\]\(.*$/, "", n)
        s = substr(s, 1, RSTART - 1) n substr(s, RSTART + RLENGTH)
    }
    out = ""
    code = 0
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "`") {
            out = out (code ? "\\fR" : "\\fB")
            code = !code
        } else if (c == "*" && !code) {
            out = out (em ? "\\fR" : "\\fI")
            em = !em
        } else if (c == "-" && code) {
            out = out "\\-"
        } else {
            out = out c
        }
    }
    if (code || em)
        out = out "\\fR"
    em = 0
    if (out ~ /^[.']/)
        out = "\\&" out
    return out
}

FNR == NR {
    if ($0 ~ /^## Keys/) { inkeys = 1; next }
    if (!inkeys) next
    if ($0 ~ /^## /) { inkeys = 0; next }
    if (fence) {
        if ($0 ~ /^```/) { keys = keys ".fi\n.RE\n"; fence = 0; next }
        line = $0
        gsub(/\\/, "\\e", line)
        if (line ~ /^[.']/) line = "\\&" line
        keys = keys line "\n"
        next
    }
    if ($0 ~ /^### `[a-z0-9-]+`/) {
        key = $0
        sub(/^### `/, "", key)
        sub(/`.*$/, "", key)
        gsub(/-/, "\\-", key)
        keys = keys ".TP\n.B " key "\n"
        para = 0
        gap = 0
        next
    }
    if (key == "") next
    if ($0 ~ /^[ \t]*$/) { gap = 1; next }
    if ($0 ~ /^```/) { keys = keys ".RS\n.nf\n"; fence = 1; next }
    if (gap && para) keys = keys ($0 ~ /^Value:/ && last ~ /^Default:/ ? ".br\n" : ".IP\n")
    last = $0
    if ($0 ~ /^- /) {
        keys = keys "\\(bu " roff(substr($0, 3)) "\n"
    } else {
        keys = keys roff($0) "\n"
    }
    gap = 0
    para = 1
    next
}

$0 == "@KEYS@" { printf "%s", keys; next }
{ print }

/*
 * A streaming multipart/form-data reader (RFC 7578 over RFC 2046), in place
 * of libmicrohttpd's post processor, which refuses boundaries shorter than
 * two characters and hands out NULL names. Bytes come in pieces of any
 * size; part data goes to the callback as it arrives (never more than the
 * delimiter's length is held back), part headers are held whole up to
 * SQD_MP_HEADERS_MAX.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

#define SQD_MP_HEADERS_MAX 8192
#define SQD_MP_NAME_MAX 1024

enum mp_state { MP_PREAMBLE, MP_AFTER_DELIM, MP_HEADERS, MP_BODY, MP_DONE, MP_ERROR };

struct sqd_multipart {
    sqd_part_fn fn;
    void *cls;
    char delim[4 + 70 + 1]; /* "\r\n--" boundary */
    size_t dlen;
    enum mp_state state;
    uint8_t *pend; /* bytes not consumed yet */
    size_t plen, pcap;
    char *name, *filename, *ctype; /* of the current part (NULL when absent) */
    uint64_t off;                  /* data bytes of the current part so far */
};

/* bchars of RFC 2046 5.1.1 */
static bool bchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           strchr("'()+_,-./:=? ", c) != NULL;
}

/*
 * The value of parameter `want` in a header value "type; a=b; c="d"".
 * Writes it (unquoted) to out; false if absent, malformed or too long.
 */
static bool header_param(const char *v, const char *want, char *out, size_t outsize)
{
    size_t wl = strlen(want);
    const char *p = strchr(v, ';');
    while (p) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *eq = strchr(p, '=');
        if (!eq)
            return false;
        const char *ke = eq;
        while (ke > p && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        const char *val = eq + 1;
        while (*val == ' ' || *val == '\t')
            val++;
        size_t o = 0;
        const char *next;
        if (*val == '"') {
            const char *q = val + 1;
            for (; *q && *q != '"'; q++) {
                if (*q == '\\' && q[1])
                    q++;
                if (o + 1 >= outsize)
                    return false;
                out[o++] = *q;
            }
            if (*q != '"')
                return false;
            next = strchr(q + 1, ';');
        } else {
            const char *q = val;
            for (; *q && *q != ';'; q++) {
                if (o + 1 >= outsize)
                    return false;
                out[o++] = *q;
            }
            while (o && (out[o - 1] == ' ' || out[o - 1] == '\t'))
                o--;
            next = *q == ';' ? q : NULL;
        }
        out[o] = '\0';
        if ((size_t)(ke - p) == wl && strncasecmp(p, want, wl) == 0)
            return true;
        p = next;
    }
    return false;
}

bool sqd_multipart_boundary(const char *content_type, char *out, size_t outsize)
{
    char b[128];
    if (!content_type || !header_param(content_type, "boundary", b, sizeof(b)))
        return false;
    size_t n = strlen(b);
    if (n < 1 || n > 70 || b[n - 1] == ' ' || n >= outsize)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!bchar(b[i]))
            return false;
    memcpy(out, b, n + 1);
    return true;
}

struct sqd_multipart *sqd_multipart_new(const char *content_type, sqd_part_fn fn, void *cls)
{
    char b[71];
    if (!sqd_multipart_boundary(content_type, b, sizeof(b)))
        return NULL;
    struct sqd_multipart *mp = calloc(1, sizeof(*mp));
    if (!mp)
        return NULL;
    mp->fn = fn;
    mp->cls = cls;
    mp->dlen = (size_t)snprintf(mp->delim, sizeof(mp->delim), "\r\n--%s", b);
    /* The first delimiter may open the body: read it as if a line break came first. */
    mp->pend = malloc(64);
    if (!mp->pend) {
        free(mp);
        return NULL;
    }
    mp->pcap = 64;
    memcpy(mp->pend, "\r\n", 2);
    mp->plen = 2;
    mp->state = MP_PREAMBLE;
    return mp;
}

static void part_reset(struct sqd_multipart *mp)
{
    free(mp->name);
    free(mp->filename);
    free(mp->ctype);
    mp->name = mp->filename = mp->ctype = NULL;
    mp->off = 0;
}

static bool emit(struct sqd_multipart *mp, const uint8_t *data, size_t n)
{
    if (n == 0)
        return true;
    bool ok = mp->fn(mp->cls, mp->name, mp->filename, mp->ctype, (const char *)data, mp->off, n);
    mp->off += n;
    return ok;
}

/* Parse the held header block (lines ending in CRLF, without the empty line). */
static bool parse_headers(struct sqd_multipart *mp, const char *h, size_t n)
{
    char line[SQD_MP_HEADERS_MAX + 1];
    size_t i = 0;
    while (i < n) {
        const char *e = memchr(h + i, '\r', n - i);
        size_t len = e ? (size_t)(e - (h + i)) : n - i;
        if (memchr(h + i, '\0', len))
            return false;
        memcpy(line, h + i, len);
        line[len] = '\0';
        i += len + 2;
        char *colon = strchr(line, ':');
        if (!colon)
            return false;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (strcasecmp(line, "Content-Disposition") == 0) {
            char buf[SQD_MP_NAME_MAX];
            if (strncasecmp(v, "form-data", 9) != 0)
                return false;
            free(mp->name);
            free(mp->filename);
            mp->name = header_param(v, "name", buf, sizeof(buf)) ? strdup(buf) : NULL;
            mp->filename = header_param(v, "filename", buf, sizeof(buf)) ? strdup(buf) : NULL;
        } else if (strcasecmp(line, "Content-Type") == 0) {
            free(mp->ctype);
            mp->ctype = strdup(v);
        }
    }
    return true;
}

/* Consume what can be consumed of mp->pend. */
static bool run(struct sqd_multipart *mp)
{
    size_t pos = 0;
    bool ok = true;
    while (ok && pos < mp->plen) {
        const uint8_t *p = mp->pend + pos;
        size_t n = mp->plen - pos;
        if (mp->state == MP_DONE) {
            pos = mp->plen; /* the epilogue is ignored */
        } else if (mp->state == MP_PREAMBLE || mp->state == MP_BODY) {
            const uint8_t *d = memmem(p, n, mp->delim, mp->dlen);
            if (!d) {
                size_t keep = n < mp->dlen - 1 ? n : mp->dlen - 1;
                if (mp->state == MP_BODY)
                    ok = emit(mp, p, n - keep);
                pos += n - keep;
                break;
            }
            if (mp->state == MP_BODY) {
                ok = emit(mp, p, (size_t)(d - p));
                if (ok && mp->off == 0) /* an empty part: say that it was there */
                    ok = mp->fn(mp->cls, mp->name, mp->filename, mp->ctype, "", 0, 0);
                part_reset(mp);
            }
            pos += (size_t)(d - p) + mp->dlen;
            mp->state = MP_AFTER_DELIM;
        } else if (mp->state == MP_AFTER_DELIM) {
            /* "--" closes the body; otherwise optional blanks and CRLF open a part. */
            if (n < 2)
                break;
            if (p[0] == '-' && p[1] == '-') {
                mp->state = MP_DONE;
                pos += 2;
                continue;
            }
            size_t k = 0;
            while (k < n && (p[k] == ' ' || p[k] == '\t'))
                k++;
            if (k > 256) { /* transport padding is bounded, however the bytes arrive */
                ok = false;
                break;
            }
            if (k + 2 > n)
                break;
            if (p[k] != '\r' || p[k + 1] != '\n') {
                ok = false;
                break;
            }
            pos += k + 2;
            mp->state = MP_HEADERS;
        } else { /* MP_HEADERS */
            if (n >= 2 && p[0] == '\r' && p[1] == '\n') {
                pos += 2; /* no headers at all */
                mp->state = MP_BODY;
                continue;
            }
            const uint8_t *e = memmem(p, n, "\r\n\r\n", 4);
            if (!e) {
                /* Without "\r\n\r\n" in n bytes the block is at least n - 1 long. */
                if (n - 1 > SQD_MP_HEADERS_MAX)
                    ok = false;
                break;
            }
            size_t hl = (size_t)(e - p) + 2;
            if (hl > SQD_MP_HEADERS_MAX || !parse_headers(mp, (const char *)p, hl)) {
                ok = false;
                break;
            }
            pos += hl + 2;
            mp->state = MP_BODY;
        }
    }
    memmove(mp->pend, mp->pend + pos, mp->plen - pos);
    mp->plen -= pos;
    if (!ok)
        mp->state = MP_ERROR;
    return ok;
}

bool sqd_multipart_feed(struct sqd_multipart *mp, const char *data, size_t n)
{
    if (mp->state == MP_ERROR)
        return false;
    if (mp->state == MP_DONE)
        return true;
    if (mp->plen + n > mp->pcap) {
        size_t cap = mp->plen + n;
        uint8_t *p = realloc(mp->pend, cap);
        if (!p) {
            mp->state = MP_ERROR;
            return false;
        }
        mp->pend = p;
        mp->pcap = cap;
    }
    memcpy(mp->pend + mp->plen, data, n);
    mp->plen += n;
    return run(mp);
}

bool sqd_multipart_end(struct sqd_multipart *mp)
{
    /* No delimiter at all is a body without parts (the caller misses its "model"). */
    return mp->state == MP_DONE || mp->state == MP_PREAMBLE;
}

void sqd_multipart_free(struct sqd_multipart *mp)
{
    if (!mp)
        return;
    part_reset(mp);
    free(mp->pend);
    free(mp);
}

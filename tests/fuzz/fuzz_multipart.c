/*
 * Fuzz harness for the multipart/form-data reader. Input: a Content-Type
 * line, then the body; the body is fed in pieces whose sizes come from
 * the first body byte. Properties: the reader never reports more data
 * than the body holds, offsets are contiguous per part, and feeding the
 * same body in one piece gives the same parts and data.
 */
#include <string.h>

#include "fuzz.h"
#include "multipart.h"

struct sink {
    uint8_t *data;
    size_t len, cap;
    uint64_t next_off;
    size_t parts;
    unsigned long long hash; /* of names and data, in order */
};

static bool on_piece(void *cls, const char *name, const char *filename, const char *ct,
                     const char *data, uint64_t off, size_t size)
{
    struct sink *s = cls;
    if (off == 0) {
        s->parts++;
        s->next_off = 0;
        for (const char *p = name ? name : "\x01"; *p; p++)
            s->hash = s->hash * 131 + (unsigned char)*p;
        for (const char *p = filename ? filename : "\x02"; *p; p++)
            s->hash = s->hash * 137 + (unsigned char)*p;
        for (const char *p = ct ? ct : "\x03"; *p; p++)
            s->hash = s->hash * 139 + (unsigned char)*p;
    }
    FUZZ_CHECK(off == s->next_off);
    FUZZ_CHECK(size == 0 || data);
    s->next_off += size;
    for (size_t i = 0; i < size; i++)
        s->hash = s->hash * 31 + (unsigned char)data[i];
    s->len += size;
    return true;
}

static bool run(const char *ct, const uint8_t *body, size_t n, size_t step, struct sink *s)
{
    memset(s, 0, sizeof(*s));
    struct sqd_multipart *mp = sqd_multipart_new(ct, on_piece, s);
    if (!mp)
        return false;
    bool ok = true;
    for (size_t i = 0; ok && i < n; i += step) {
        size_t k = n - i < step ? n - i : step;
        char *piece = malloc(k ? k : 1); /* exactly k bytes */
        FUZZ_CHECK(piece);
        memcpy(piece, body + i, k);
        ok = sqd_multipart_feed(mp, piece, k);
        free(piece);
    }
    ok = ok && sqd_multipart_end(mp);
    sqd_multipart_free(mp);
    FUZZ_CHECK(s->len <= n);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    size_t cl = (size_t)(nl - data);
    char *ct = malloc(cl + 1);
    FUZZ_CHECK(ct);
    memcpy(ct, data, cl);
    ct[cl] = '\0';
    const uint8_t *body = nl + 1;
    size_t n = size - cl - 1;
    size_t step = n ? 1 + body[0] % 17 : 1;
    struct sink a, b;
    bool ok_a = run(ct, body, n, step, &a);
    bool ok_b = run(ct, body, n, n ? n : 1, &b);
    FUZZ_CHECK(ok_a == ok_b);
    if (ok_a)
        FUZZ_CHECK(a.parts == b.parts && a.len == b.len && a.hash == b.hash);
    free(ct);
    return 0;
}

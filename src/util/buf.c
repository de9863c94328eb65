#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

bool sqi_shape_product(const int64_t *shape, unsigned n, size_t *out)
{
    size_t p = 1;
    for (unsigned i = 0; i < n; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX || !sqi_mul(p, (size_t)shape[i], &p))
            return false;
    }
    *out = p;
    return true;
}

void sqi_buf_init(struct sqi_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

void sqi_buf_free(struct sqi_buf *b)
{
    free(b->data);
    sqi_buf_init(b, b->limit);
}

enum sq_status sqi_buf_reserve(struct sqi_buf *b, size_t more)
{
    size_t need;
    if (!sqi_add(b->len, more, &need) || need > b->limit)
        return SQ_ERR_LIMIT;
    if (need <= b->cap)
        return SQ_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->limit)
        cap = b->limit;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return SQ_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return SQ_OK;
}

enum sq_status sqi_buf_append(struct sqi_buf *b, const void *data, size_t n)
{
    enum sq_status st = sqi_buf_reserve(b, n);
    if (st != SQ_OK)
        return st;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    return SQ_OK;
}

enum sq_status sqi_buf_append_byte(struct sqi_buf *b, uint8_t c, size_t n)
{
    enum sq_status st = sqi_buf_reserve(b, n);
    if (st != SQ_OK)
        return st;
    memset(b->data + b->len, c, n);
    b->len += n;
    return SQ_OK;
}

enum sq_status sqi_buf_printf(struct sqi_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return SQ_ERR_INTERNAL;
    enum sq_status st = sqi_buf_reserve(b, (size_t)n);
    if (st != SQ_OK)
        return st;
    if (b->cap < b->len + (size_t)n + 1) {
        /* vsnprintf writes a NUL: room for it beyond the limit, never counted. */
        uint8_t *p = realloc(b->data, b->len + (size_t)n + 1);
        if (!p)
            return SQ_ERR_NOMEM;
        b->data = p;
        b->cap = b->len + (size_t)n + 1;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SQ_OK;
}

uint8_t *sqi_buf_take(struct sqi_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (!p) {
        p = malloc(1);
        if (!p)
            return NULL;
    }
    *len = b->len;
    sqi_buf_init(b, b->limit);
    return p;
}

char *sqi_strdup(const char *s)
{
    assert(s);
    return sqi_strndup(s, strlen(s));
}

char *sqi_strndup(const char *s, size_t n)
{
    assert(s);
    if (n == SIZE_MAX)
        return NULL;
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

enum sq_status sqi_base64_append(struct sqi_buf *b, const uint8_t *data, size_t n)
{
    size_t groups = n / 3 + (n % 3 != 0), outlen;
    if (!sqi_mul(groups, 4, &outlen))
        return SQ_ERR_LIMIT;
    enum sq_status st = sqi_buf_reserve(b, outlen);
    if (st != SQ_OK)
        return st;
    char *o = (char *)b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len += outlen;
    return SQ_OK;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

enum sq_status sqi_base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len)
{
    if (len % 4 != 0)
        return SQ_ERR_FORMAT;
    size_t pad = 0;
    if (len >= 1 && text[len - 1] == '=')
        pad++;
    if (len >= 2 && text[len - 2] == '=')
        pad++;
    size_t n = len / 4 * 3 - pad;
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        return SQ_ERR_NOMEM;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)text[i + j];
            int d;
            if (c == '=' && i + 4 == len && j >= 4 - pad)
                d = 0;
            else if ((d = b64_value(c)) < 0) {
                free(p);
                return SQ_ERR_FORMAT;
            }
            v = v << 6 | (uint32_t)d;
        }
        if (i + 4 == len && (pad == 2 ? (v & 0xffff) : pad == 1 ? (v & 0xff) : 0) != 0) {
            free(p); /* non-canonical: bits beyond the data must be zero */
            return SQ_ERR_FORMAT;
        }
        for (size_t j = 0; j < 3 && o < n; j++)
            p[o++] = (uint8_t)(v >> (16 - 8 * j));
    }
    *out = p;
    *out_len = n;
    return SQ_OK;
}

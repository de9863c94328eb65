/*
 * Optional bearer-token authentication. Tokens come from a file (one per
 * line); a request passes when its "Authorization: Bearer T" matches one of
 * them. Every token is compared, in time that depends only on the lengths,
 * so the answer's timing does not tell how much of a guess was right.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"

#define SQD_TOKEN_MAX 512

bool sqd_auth_init(struct sqd_auth *a)
{
    memset(a, 0, sizeof(*a));
    return uv_rwlock_init(&a->lock) == 0;
}

static void free_tokens(char **t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* Do not leave secrets in freed memory. */
        volatile char *p = t[i];
        while (*p)
            *p++ = 0;
        free(t[i]);
    }
    free(t);
}

bool sqd_auth_load(struct sqd_auth *a, const char *path, char *msg, size_t msgsize)
{
    char **tokens = NULL;
    size_t n = 0;
    bool enabled = path && *path;
    if (enabled) {
        FILE *f = fopen(path, "r");
        if (!f) {
            snprintf(msg, msgsize, "auth-token-file %s: %s", path, strerror(errno));
            return false;
        }
        char line[SQD_TOKEN_MAX + 2];
        while (fgets(line, sizeof(line), f)) {
            if (!strchr(line, '\n') && !feof(f)) {
                snprintf(msg, msgsize, "auth-token-file %s: a token is longer than %d bytes", path,
                         SQD_TOKEN_MAX);
                goto fail;
            }
            char *s = line, *e;
            while (isspace((unsigned char)*s))
                s++;
            for (e = s; *e && !isspace((unsigned char)*e); e++)
                ;
            *e = '\0';
            if (!*s || *s == '#')
                continue;
            char **grown = realloc(tokens, (n + 1) * sizeof(*tokens));
            if (!grown || !(grown[n] = strdup(s))) {
                if (grown)
                    tokens = grown;
                snprintf(msg, msgsize, "auth-token-file: out of memory");
                goto fail;
            }
            tokens = grown;
            n++;
        }
        fclose(f);
        if (n == 0) {
            snprintf(msg, msgsize, "auth-token-file %s holds no token", path);
            free(tokens);
            return false;
        }
        goto ok;
    fail:
        fclose(f);
        free_tokens(tokens, n);
        return false;
    }
ok:
    uv_rwlock_wrlock(&a->lock);
    char **old = a->tokens;
    size_t oldn = a->count;
    a->tokens = tokens;
    a->count = n;
    a->enabled = enabled;
    uv_rwlock_wrunlock(&a->lock);
    free_tokens(old, oldn);
    return true;
}

bool sqd_ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Runs over the candidate's full length whatever the content. */
    volatile unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)(a[i] ^ (i < blen ? b[i] : 0));
    return diff == 0;
}

/* ---------------------------------------------------------------- SHA-256 (FIPS 180-4) */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void sqd_sha256(const void *data, size_t len, uint8_t out[32])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const uint8_t *p = data;
    size_t n = len;
    for (; n >= 64; n -= 64, p += 64)
        sha_block(h, p);
    uint8_t tail[128] = {0};
    memcpy(tail, p, n);
    tail[n] = 0x80;
    size_t tl = n + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha_block(h, tail);
    if (tl == 128)
        sha_block(h, tail + 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

/* The owner id of a token: half of SHA-256("squantd job owner\n" TOKEN), in hex. */
static void owner_of(const char *token, size_t len, char owner[SQD_OWNER_LEN + 1])
{
    static const char prefix[] = "squantd job owner\n";
    char buf[sizeof(prefix) + SQD_TOKEN_MAX];
    size_t pl = sizeof(prefix) - 1;
    if (len > SQD_TOKEN_MAX)
        len = SQD_TOKEN_MAX;
    memcpy(buf, prefix, pl);
    memcpy(buf + pl, token, len);
    uint8_t d[32];
    sqd_sha256(buf, pl + len, d);
    for (int i = 0; i < SQD_OWNER_LEN / 2; i++)
        snprintf(owner + 2 * i, 3, "%02x", d[i]);
    volatile char *v = buf;
    for (size_t i = 0; i < pl + len; i++)
        v[i] = 0;
}

bool sqd_auth_check(struct sqd_auth *a, const char *authorization)
{
    char owner[SQD_OWNER_LEN + 1];
    return sqd_auth_identify(a, authorization, owner);
}

bool sqd_auth_identify(struct sqd_auth *a, const char *authorization, char owner[SQD_OWNER_LEN + 1])
{
    owner[0] = '\0';
    uv_rwlock_rdlock(&a->lock);
    bool enabled = a->enabled, ok = false;
    if (enabled && authorization && strncasecmp(authorization, "Bearer ", 7) == 0) {
        const char *t = authorization + 7;
        while (*t == ' ')
            t++;
        size_t tlen = strlen(t);
        while (tlen && (t[tlen - 1] == ' ' || t[tlen - 1] == '\t'))
            tlen--;
        for (size_t i = 0; i < a->count; i++)
            ok |= sqd_ct_equal(t, tlen, a->tokens[i], strlen(a->tokens[i]));
        if (ok)
            owner_of(t, tlen, owner);
    }
    uv_rwlock_rdunlock(&a->lock);
    return !enabled || ok;
}

void sqd_auth_free(struct sqd_auth *a)
{
    free_tokens(a->tokens, a->count);
    a->tokens = NULL;
    a->count = 0;
    uv_rwlock_destroy(&a->lock);
}

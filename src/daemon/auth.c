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

#include "squantd.h"

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

bool sqd_auth_check(struct sqd_auth *a, const char *authorization)
{
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

/* Bearer tokens and owner ids (auth.c). */
#ifndef SQD_AUTH_H
#define SQD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct sqd_auth {
    uv_rwlock_t lock; /* tokens are swapped by SIGHUP on the loop thread */
    char **tokens;
    size_t count;
    bool enabled;
};

bool sqd_auth_init(struct sqd_auth *a);
/* (Re)load tokens from `path` (one per line, # comments). Keeps the old set on failure. */
bool sqd_auth_load(struct sqd_auth *a, const char *path, char *msg, size_t msgsize);
/* Check an Authorization header value; true when auth is off or a token matches. */
bool sqd_auth_check(struct sqd_auth *a, const char *authorization);
/*
 * The same, and the owner id of the matching token: 32 hex digits derived
 * from it by SHA-256 (the token itself is never stored), "" with auth off.
 * Async jobs keep it (state.json) and answer only requests with the same.
 */
#define SQD_OWNER_LEN 32
bool sqd_auth_identify(struct sqd_auth *a, const char *authorization,
                       char owner[SQD_OWNER_LEN + 1]);
void sqd_sha256(const void *data, size_t len, uint8_t out[32]);
void sqd_auth_free(struct sqd_auth *a);
/* Constant-time comparison of two byte strings (time depends on the lengths only). */
bool sqd_ct_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif

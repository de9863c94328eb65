/*
 * Fuzz harness for the request's small fields: the first byte picks one,
 * the rest is its text. 0: Content-Type (sqd_ctype_parse); 1: Accept
 * (sqd_accept_format, sqd_accept_allows); 2: a path for every method
 * (sqd_route_find, sqd_route_path); 3: an Authorization header
 * (sqd_auth_identify against two tokens); 4: an X-Request-Id. Properties:
 * answers are consistent (a route found is the path's row for its
 * method; an owner id is 32 hex digits exactly when a token matched).
 */
#include <string.h>

#include "fuzz.h"
#include "auth.h"
#include "log.h"
#include "registry.h"
#include "routes.h"
#include "spec.h"

static void fuzz_route(const char *path)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "PATCH", "PUT"};
    for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
        bool known;
        char allow[128], id[SQD_JOBID_LEN + 2];
        const struct sqd_route *r =
            sqd_route_find(methods[m], path, &known, allow, sizeof(allow), id, sizeof(id));
        const struct sqd_route *p = sqd_route_path(path);
        FUZZ_CHECK(!r || known);
        FUZZ_CHECK(known == (p != NULL));
        FUZZ_CHECK(!r || strcmp(r->path, p->path) == 0);
        FUZZ_CHECK(r || !known || allow[0] != '\0');
        FUZZ_CHECK(strlen(id) <= SQD_JOBID_LEN + 1);
    }
}

static void fuzz_auth(const char *header)
{
    struct sqd_auth a;
    FUZZ_CHECK(sqd_auth_init(&a));
    char t1[] = "alpha-token-1111", t2[] = "b";
    char *tokens[] = {t1, t2};
    a.tokens = tokens;
    a.count = 2;
    a.enabled = true;
    char owner[SQD_OWNER_LEN + 1];
    bool ok = sqd_auth_identify(&a, header, owner);
    FUZZ_CHECK(ok == (owner[0] != '\0'));
    FUZZ_CHECK(!ok || (strlen(owner) == SQD_OWNER_LEN &&
                       strspn(owner, "0123456789abcdef") == SQD_OWNER_LEN));
    FUZZ_CHECK(ok == sqd_auth_check(&a, header));
    a.tokens = NULL;
    a.count = 0;
    sqd_auth_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = malloc(size);
    FUZZ_CHECK(text);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0'; /* MHD hands over NUL-terminated strings */
    switch (data[0] % 5) {
    case 0: {
        enum sqd_ctype ct = sqd_ctype_parse(text);
        FUZZ_CHECK(ct <= SQD_CT_UNSUPPORTED);
        break;
    }
    case 1: {
        enum sq_format f;
        if (sqd_accept_format(text, &f)) {
            FUZZ_CHECK(f == SQ_FORMAT_AUTO || sqd_accept_allows(text, f));
        } else {
            FUZZ_CHECK(!sqd_accept_allows(text, SQ_FORMAT_SAFETENSORS) &&
                       !sqd_accept_allows(text, SQ_FORMAT_NPY) &&
                       !sqd_accept_allows(text, SQ_FORMAT_JSON));
        }
        break;
    }
    case 2:
        fuzz_route(text);
        break;
    case 3:
        fuzz_auth(text);
        break;
    default:
        if (sqd_request_id_valid(text))
            FUZZ_CHECK(strlen(text) >= 1 && strlen(text) <= 64);
        break;
    }
    free(text);
    return 0;
}

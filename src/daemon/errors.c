/*
 * The one table from libsquant's status codes to HTTP: every failure a
 * request can meet is answered through it, with the JSON code that
 * sq_status_name gives.
 */
#include <stdlib.h>
#include <string.h>

#include "errors.h"

/* clang-format off */
static const unsigned http_of[SQ_STATUS_COUNT] = {
    [SQ_OK] = 200,
    [SQ_ERR_NOMEM] = 503,       /* transient: answered with Retry-After */
    [SQ_ERR_ARG] = 400,
    [SQ_ERR_FORMAT] = 400,
    [SQ_ERR_DTYPE] = 422,
    [SQ_ERR_SHAPE] = 422,
    [SQ_ERR_NONFINITE] = 422,
    [SQ_ERR_LIMIT] = 413,
    [SQ_ERR_UNSUPPORTED] = 415,
    [SQ_ERR_NO_TENSOR] = 422,
    [SQ_ERR_CONFLICT] = 422,
    [SQ_ERR_IO] = 500,
    [SQ_ERR_CANCELLED] = 409,
    [SQ_ERR_INTERNAL] = 500,
    [SQ_ERR_NOSPACE] = 507,     /* Insufficient Storage */
};
/* clang-format on */

unsigned sqd_http_status(enum sq_status st)
{
    if ((unsigned)st >= SQ_STATUS_COUNT)
        return 500;
    return http_of[st];
}

json_t *sqd_error_json(unsigned http, const char *code, const char *message,
                       const struct sq_error *where)
{
    json_t *e =
        json_pack("{s:i, s:s, s:s}", "status", (json_int_t)http, "code", code, "message", message);
    if (!e || !where)
        return e;
    if (where->tensor[0])
        json_object_set_new(e, "tensor", json_string(where->tensor));
    if (where->offset >= 0)
        json_object_set_new(e, "offset", json_integer(where->offset));
    if (where->channel >= 0)
        json_object_set_new(e, "channel", json_integer(where->channel));
    if (where->index >= 0)
        json_object_set_new(e, "index", json_integer(where->index));
    return e;
}

char *sqd_json_text(json_t *doc, size_t flags, size_t *len)
{
    char *text = doc ? json_dumps(doc, flags) : NULL;
    json_decref(doc);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *t = realloc(text, n + 2);
    if (!t) {
        free(text);
        return NULL;
    }
    t[n++] = '\n';
    t[n] = '\0';
    *len = n;
    return t;
}

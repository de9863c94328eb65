/* The status table and JSON error documents (errors.c). */
#ifndef SQD_ERRORS_H
#define SQD_ERRORS_H

#include <stddef.h>

#include <jansson.h>

#include <squant/squant.h>

/* The HTTP status and JSON code for a libsquant status: the one table. */
unsigned sqd_http_status(enum sq_status st);

/*
 * A JSON answer's text: `doc` (consumed) dumped with `flags` and a final
 * newline, so that curl output ends its line. malloc'ed (caller frees), or
 * NULL when memory runs out.
 */
char *sqd_json_text(json_t *doc, size_t flags, size_t *len);
/* Indented, with times to the microsecond: how every JSON document is answered. */
#define SQD_JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(6))
/*
 * The object inside an error document {"error": {...}}: status, code,
 * message, and tensor/offset/channel/index from `where` (may be NULL) when
 * set. New reference, or NULL when memory runs out.
 */
json_t *sqd_error_json(unsigned http, const char *code, const char *message,
                       const struct sq_error *where);

#endif

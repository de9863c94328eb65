/* libmicrohttpd glue: the listener and the request callbacks (http.c). */
#ifndef SQD_HTTP_H
#define SQD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct sqd_ctx;

/* Listen as the configuration says, write the port file. */
bool sqd_http_start(struct sqd_ctx *ctx, char *msg, size_t msgsize);
/* Stop accepting connections; the open ones are served to their end. */
void sqd_http_quiesce(struct sqd_ctx *ctx);
void sqd_http_stop(struct sqd_ctx *ctx);

#endif

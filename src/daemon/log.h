/*
 * Logging on stderr and the monotonic clock (log.c). The log is a leaf:
 * whoever logs passes the struct sqd_log it writes through (ctx.h gives the
 * daemon's one as sqd_log(ctx, ...)).
 */
#ifndef SQD_LOG_H
#define SQD_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#if defined(__GNUC__)
#define SQD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SQD_PRINTF(f, a)
#endif

/* Lines are written whole under the lock, so that threads do not interleave them. */
struct sqd_log {
    uv_mutex_t lock;
};

/* One line (a newline is added) on stderr. */
void sqd_logf(struct sqd_log *log, const char *fmt, ...) SQD_PRINTF(2, 3);

#define SQD_REQID_MAX 72

/* Accept a client-supplied X-Request-Id if it is 1..64 chars of [A-Za-z0-9._-] (a UUID is 36). */
bool sqd_request_id_valid(const char *id);
uint64_t sqd_now_ns(void);

#endif

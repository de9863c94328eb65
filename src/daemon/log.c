/*
 * Logging on stderr (journald adds the time under systemd): one access-log
 * line per request, and daemon messages. Lines are written whole under a
 * lock so that threads do not interleave them.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "squantd.h"

uint64_t sqd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sqd_request_id(struct sqd_ctx *ctx, char out[SQD_REQID_MAX])
{
    uint64_t n = atomic_fetch_add(&ctx->reqid_counter, 1);
    snprintf(out, SQD_REQID_MAX, "%08" PRIx32 "%08" PRIx32, ctx->reqid_prefix, (uint32_t)n);
}

bool sqd_request_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return false;
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

void sqd_log(struct sqd_ctx *ctx, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) - 2 ? (size_t)n : sizeof(line) - 2;
    line[len++] = '\n';
    uv_mutex_lock(&ctx->log_lock);
    fwrite(line, 1, len, stderr);
    uv_mutex_unlock(&ctx->log_lock);
}

/* Paths are logged with control characters and spaces escaped. */
static void escape(char *out, size_t outsize, const char *s)
{
    size_t o = 0;
    for (; s && *s && o + 5 < outsize; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, outsize - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

void sqd_access_log(struct sqd_ctx *ctx, const struct sqd_request *req)
{
    if (!ctx->cfg.access_log)
        return;
    char path[512], method[64], query[512], job[80];
    escape(path, sizeof(path), req->path);
    escape(method, sizeof(method), req->method);
    escape(query, sizeof(query), req->query && req->query[0] ? req->query : "-");
    escape(job, sizeof(job), req->job_id[0] ? req->job_id : "-");
    double ms = (double)(sqd_now_ns() - req->t_start) / 1e6;
    sqd_log(ctx,
            "access id=%s method=%s path=%s status=%u in=%" PRIu64 " out=%" PRIu64
            " ms=%.3f client=%s query=%s job=%s",
            req->id, method, path, req->status, req->bytes_in, req->bytes_out, ms,
            req->cn ? req->cn->addr : "-", query, job);
}

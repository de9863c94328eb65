/*
 * Answers: every response goes through queue_response, which adds the
 * headers each answer carries (X-Request-Id, Vary, Content-Type,
 * Retry-After with a 503). JSON answers and errors are built here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "ctx.h"
#include "errors.h"
#include "request.h"
#include "respond.h"

/* The headers every answer carries, then queue it; takes r. */
static void queue_response(struct sqd_request *req, struct MHD_Response *r, unsigned status,
                           const char *content_type, uint64_t len, const char *const *headers)
{
    MHD_add_response_header(r, "X-Request-Id", req->id);
    if (req->vary_accept) /* the type (or 406) depends on Accept: say so to caches */
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept");
    if (content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (status == 503) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%llu", (unsigned long long)req->ctx->cfg.retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    for (size_t i = 0; headers && headers[i]; i += 2)
        MHD_add_response_header(r, headers[i], headers[i + 1]);
    if (MHD_queue_response(req->conn, status, r) == MHD_YES) {
        req->status = status;
        req->bytes_out = len;
    }
    req->phase = SQD_PH_ANSWERED;
    MHD_destroy_response(r);
}

void sqd_respond_headers(struct sqd_request *req, unsigned status, const char *content_type,
                         void *body, size_t len, const char *const *headers)
{
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(
        len, body ? body : (void *)"", body ? free : NULL);
    if (!r) {
        free(body);
        return; /* MHD closes the connection */
    }
    queue_response(req, r, status, content_type, len, headers);
}

void sqd_respond_static(struct sqd_request *req, unsigned status, const char *content_type,
                        const void *body, size_t len, const char *const *headers)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return; /* MHD closes the connection */
    queue_response(req, r, status, content_type, len, headers);
}

void sqd_respond(struct sqd_request *req, unsigned status, const char *content_type, void *body,
                 size_t len)
{
    sqd_respond_headers(req, status, content_type, body, len, NULL);
}

static const char oom_body[] = "{\"error\":{\"status\":503,\"code\":\"out_of_memory\","
                               "\"message\":\"out of memory\"}}\n";

/* Answer with a JSON document (consumed) and optional extra headers. */
static void respond_doc(struct sqd_request *req, unsigned status, json_t *doc, size_t flags,
                        const char *const *headers)
{
    size_t n = 0;
    char *text = sqd_json_text(doc, flags, &n);
    if (!text) {
        sqd_respond(req, 503, "application/json", strdup(oom_body), sizeof(oom_body) - 1);
        return;
    }
    sqd_respond_headers(req, status, "application/json", text, n, headers);
}

void sqd_respond_error_headers(struct sqd_request *req, unsigned status, const char *code,
                               const char *msg, const struct sq_error *where,
                               const char *const *headers)
{
    json_t *e = sqd_error_json(status, code, msg, where);
    respond_doc(req, status, e ? json_pack("{s:o}", "error", e) : NULL, JSON_COMPACT, headers);
}

void sqd_respond_jsonv(struct sqd_request *req, unsigned status, json_t *doc)
{
    respond_doc(req, status, doc, SQD_JSON_FLAGS, NULL);
}

void sqd_respond_error(struct sqd_request *req, unsigned status, const char *code, const char *fmt,
                       ...)
{
    char msg[SQ_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sqd_respond_error_headers(req, status, code, msg, NULL, NULL);
}

void sqd_respond_sq(struct sqd_request *req, const struct sq_error *err)
{
    const char *msg = err->message[0] ? err->message : sq_strerror(err->status);
    sqd_respond_error_headers(req, sqd_http_status(err->status), sq_status_name(err->status), msg,
                              err, NULL);
}

void sqd_respond_fd(struct sqd_request *req, unsigned status, const char *content_type, int fd,
                    uint64_t size)
{
    sqd_respond_fd_at(req, status, content_type, fd, 0, size, NULL);
}

void sqd_respond_fd_at(struct sqd_request *req, unsigned status, const char *content_type, int fd,
                       uint64_t offset, uint64_t size, const char *const *headers)
{
    struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(size, fd, offset);
    if (!r) {
        close(fd);
        sqd_respond_error(req, 503, sq_status_name(SQ_ERR_NOMEM), "out of memory");
        return;
    }
    queue_response(req, r, status, content_type, size, headers);
}

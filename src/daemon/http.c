/*
 * libmicrohttpd glue: one internal polling thread (epoll on Linux) runs
 * every callback below. A request's state (struct sqd_request) is created
 * by the URI log callback, which MHD calls first, and freed by the
 * completed-request callback, which MHD always calls last.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "body.h"
#include "cfg.h"
#include "conns.h"
#include "ctx.h"
#include "handlers.h"
#include "http.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "respond.h"
#include "routes.h"
#include "spec.h"
#include "upload.h"

/* A request id: 16 hex digits from a per-process random prefix and a counter. */
static void request_id(struct sqd_ctx *ctx, char out[SQD_REQID_MAX])
{
    uint64_t n = atomic_fetch_add(&ctx->reqid_counter, 1);
    snprintf(out, SQD_REQID_MAX, "%08" PRIx32 "%08" PRIx32, ctx->reqid_prefix, (uint32_t)n);
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

static void access_log(struct sqd_ctx *ctx, const struct sqd_request *req)
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

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct sqd_ctx *ctx = cls;
    struct sqd_request *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->ctx = ctx;
    req->conn = conn;
    req->ans_fd = -1;
    req->t_start = sqd_now_ns();
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    req->cn = ci ? ci->socket_context : NULL;
    sqd_conn_request_line(&ctx->conns, req->cn);
    size_t plen = strcspn(uri, "?");
    req->path = strndup(uri, plen);
    req->query = strdup(uri[plen] ? uri + plen + 1 : "");
    /* libmicrohttpd decodes %00 into a NUL that would cut the path or a value short. */
    req->uri_len = strlen(uri);
    if (strstr(uri, "%00")) {
        req->reject = 400;
        snprintf(req->reject_msg, sizeof(req->reject_msg),
                 "the path or a query parameter contains an encoded NUL (%%00)");
    }
    sq_error_init(&req->upload_err);
    request_id(ctx, req->id);
    sqd_spec_init(&req->spec);
    sqd_body_init(&req->body, 0, 0, NULL);
    atomic_fetch_add(&ctx->metrics.in_flight, 1);
    return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct sqd_ctx *ctx = cls;
    struct sqd_request *req = *con_cls;
    (void)conn;
    if (!req)
        return;
    if (req->status == 0) {
        /* Closed before an answer: the client went away or sent garbage. */
        unsigned swept = sqd_conn_closed_status(&ctx->conns, req->cn);
        req->status = swept ? swept : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? 499 : 400;
    }
    /* The connection waits for its next request, idle for up to connection-timeout. */
    sqd_conn_phase(&ctx->conns, req->cn, SQD_CONN_IDLE);
    access_log(ctx, req);
    /* Rows: the routes, then "the path of route r with another method" (405), then unmatched. */
    size_t nroutes, slot;
    sqd_routes(&nroutes);
    if (req->route)
        slot = sqd_route_index(req->route);
    else if (req->path_known && req->path)
        slot = nroutes + sqd_route_index(sqd_route_path(req->path));
    else
        slot = 2 * nroutes;
    sqd_metrics_request(&ctx->metrics, slot, req->status);
    atomic_fetch_add(&ctx->metrics.bytes_out, req->bytes_out);
    sqd_upload_free(req);
    if (req->admitted)
        sqd_jobs_release(ctx);
    free(req->ans_body);
    if (req->ans_fd >= 0)
        close(req->ans_fd);
    free(req->path);
    free(req->query);
    free(req);
    atomic_fetch_sub(&ctx->metrics.in_flight, 1);
    *con_cls = NULL;
}

/* After the loop thread resumed the connection (a sync job, or an async job made durable):
 * send what it left. */
static void answer_job(struct sqd_request *req)
{
    const char *hdrs[8];
    size_t h = 0;
    if (req->ans_timing[0]) {
        hdrs[h++] = "Server-Timing";
        hdrs[h++] = req->ans_timing;
    }
    if (req->ans_layers[0]) {
        hdrs[h++] = "X-Squant-Layers";
        hdrs[h++] = req->ans_layers;
    }
    if (req->ans_location[0]) {
        hdrs[h++] = "Location";
        hdrs[h++] = req->ans_location;
    }
    hdrs[h] = NULL;
    if (req->ans_fd >= 0) { /* a streamed result, sent from its file */
        int fd = req->ans_fd;
        req->ans_fd = -1; /* handed to MHD */
        sqd_respond_fd_at(req, req->ans_status, req->ans_type, fd, req->ans_off, req->ans_size,
                          hdrs);
        return;
    }
    uint8_t *body = req->ans_body;
    req->ans_body = NULL; /* handed to MHD */
    sqd_respond_headers(req, req->ans_status, req->ans_type, body, req->ans_len, hdrs);
}

static bool authorized(struct sqd_request *req)
{
    if (req->route->flags & SQD_ROUTE_NOAUTH)
        return true;
    return sqd_auth_identify(
        &req->ctx->auth, MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization"),
        req->owner);
}

/* Answer a request that carries no model: 404, 405, 401, or the route's handler. */
static void answer_now(struct sqd_request *req)
{
    if (req->reject) {
        sqd_respond_error(req, req->reject,
                          sq_status_name(req->reject == 400 ? SQ_ERR_ARG : SQ_ERR_LIMIT), "%s",
                          req->reject_msg);
        return;
    }
    if (!req->route) {
        if (req->path_known) {
            const char *h[] = {"Allow", req->allow, NULL};
            char msg[SQ_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof(msg), "%.100s does not accept %s; allowed: %s", req->path,
                     req->method, req->allow);
            sqd_respond_error_headers(req, 405, "method_not_allowed", msg, NULL, h);
        } else {
            sqd_respond_error(req, 404, "not_found", "no such endpoint: %.200s", req->path);
        }
        return;
    }
    if (!authorized(req)) {
        const char *h[] = {"WWW-Authenticate", "Bearer realm=\"squantd\"", NULL};
        sqd_respond_error_headers(
            req, 401, "unauthorized",
            "this endpoint needs Authorization: Bearer TOKEN with a valid token", NULL, h);
        return;
    }
    req->route->handler(req);
    if (req->phase != SQD_PH_ANSWERED)
        sqd_respond_error(req, 500, sq_status_name(SQ_ERR_INTERNAL), "no answer");
}

/*
 * The request line and headers against connection-memory. libmicrohttpd gets
 * a larger pool (sqd_http_start), so that it is this check, with its JSON
 * answer, that refuses them, not libmicrohttpd's own HTML page.
 */
#define SQD_MAX_HEADERS 100
static void check_request_size(struct sqd_request *req)
{
    uint64_t limit = req->ctx->cfg.connection_memory;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    size_t hsize = ci ? ci->header_size : 0;
    int nheaders = MHD_get_connection_values(req->conn, MHD_HEADER_KIND, NULL, NULL);
    if (req->reject)
        return;
    if (req->uri_len > limit) {
        req->reject = 414;
        snprintf(req->reject_msg, sizeof(req->reject_msg),
                 "the URL (%zu bytes) is longer than connection-memory (%" PRIu64 " bytes)",
                 req->uri_len, limit);
    } else if (hsize > limit) {
        req->reject = 431;
        snprintf(req->reject_msg, sizeof(req->reject_msg),
                 "the request line and headers (%zu bytes) exceed connection-memory (%" PRIu64
                 " bytes)",
                 hsize, limit);
    } else if (nheaders > SQD_MAX_HEADERS) {
        req->reject = 431;
        snprintf(req->reject_msg, sizeof(req->reject_msg),
                 "the request has %d header fields; at most %d are accepted", nheaders,
                 SQD_MAX_HEADERS);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct sqd_ctx *ctx = cls;
    struct sqd_request *req = *con_cls;
    (void)version;
    if (!req)
        return MHD_NO; /* out of memory in on_uri */
    req->conn = conn;
    switch (req->phase) {
    case SQD_PH_NEW: {
        snprintf(req->method, sizeof(req->method), "%s", method);
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (rid && sqd_request_id_valid(rid))
            snprintf(req->id, sizeof(req->id), "%s", rid);
        sqd_conn_phase(&ctx->conns, req->cn, SQD_CONN_BUSY);
        req->route = sqd_route_find(method, url, &req->path_known, req->allow, sizeof(req->allow),
                                    req->job_id, sizeof(req->job_id));
        req->vary_accept = req->route && (req->route->handler == sqd_h_quantize ||
                                          req->route->handler == sqd_h_jobs_post ||
                                          req->route->handler == sqd_h_job_result);
        check_request_size(req);
        /*
         * A request with "Expect" but neither Content-Length nor
         * Transfer-Encoding has no body, but libmicrohttpd 0.9.75 sends it
         * 100 Continue, takes any bytes after its headers for a body of
         * unknown length and then calls us in a busy loop, never sending
         * the answer: such a request is answered (its empty upload ended)
         * before libmicrohttpd gets there.
         */
        bool declared = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length") ||
                        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
        bool bodiless_expect =
            !declared && MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
        if (req->route && !req->reject && (req->route->flags & SQD_ROUTE_BODY) && authorized(req)) {
            req->phase = SQD_PH_BODY;
            if (!sqd_upload_begin(req))
                return MHD_YES;
            if (bodiless_expect)
                sqd_upload_end(req);
            else
                sqd_conn_phase(&ctx->conns, req->cn, SQD_CONN_BODY);
            return MHD_YES;
        }
        /*
         * Anything else is answered once the request is complete: an answer
         * queued before that makes libmicrohttpd close the connection, which
         * would cost keep-alive clients (pollers of /v1/jobs/{id}) a new
         * connection per request. A request that declares a body (or has
         * the Expect above) is the exception: it is answered now and its
         * body is never read.
         */
        if (declared || bodiless_expect) {
            answer_now(req);
            return MHD_YES;
        }
        req->phase = SQD_PH_DEFER;
        return MHD_YES;
    }
    case SQD_PH_DEFER:
        if (*upload_data_size) {
            *upload_data_size = 0; /* no body was declared; MHD will not deliver one */
            return MHD_YES;
        }
        answer_now(req);
        return MHD_YES;
    case SQD_PH_BODY:
        if (*upload_data_size) {
            size_t n = *upload_data_size;
            *upload_data_size = 0;
            req->bytes_in += n;
            atomic_fetch_add(&ctx->metrics.bytes_in, n);
            sqd_conn_body(&ctx->conns, req->cn, n);
            return sqd_upload_data(req, upload_data, n) ? MHD_YES : MHD_NO;
        }
        sqd_conn_phase(&ctx->conns, req->cn, SQD_CONN_BUSY);
        sqd_upload_end(req);
        return MHD_YES;
    case SQD_PH_WAIT:
        answer_job(req);
        return MHD_YES;
    case SQD_PH_ANSWERED:
        if (*upload_data_size)
            *upload_data_size = 0; /* discard */
        return MHD_YES;
    }
    return MHD_NO;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct sqd_ctx *ctx = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    sqd_log(ctx, "mhd: %s", msg);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct sqd_ctx *ctx = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = sqd_conn_open(&ctx->conns, conn);
    } else {
        sqd_conn_close(&ctx->conns, *socket_context);
        *socket_context = NULL;
    }
}

static bool write_port_file(const char *path, unsigned port, char *msg, size_t msgsize)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        snprintf(msg, msgsize, "port-file path too long");
        return false;
    }
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(msg, msgsize, "cannot write port-file %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

bool sqd_http_start(struct sqd_ctx *ctx, char *msg, size_t msgsize)
{
    struct sockaddr_storage ss;
    size_t sslen;
    if (!sqd_parse_listen(ctx->cfg.listen, &ss, &sslen, msg, msgsize))
        return false;
    /*
     * libmicrohttpd's pool holds the request line, the headers and the read
     * buffer. It gets four times connection-memory (pages it does not touch
     * cost nothing) so that check_request_size answers an oversized request
     * with JSON; only a request past the pool meets libmicrohttpd's own page.
     */
    uint64_t pool = ctx->cfg.connection_memory * 4;
    if (pool < 256 * 1024)
        pool = 256 * 1024;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    ctx->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, ctx, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, ctx,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_URI_LOG_CALLBACK, on_uri, ctx,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, ctx, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        ctx, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)ctx->cfg.max_connections_per_ip,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)ctx->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ctx->cfg.connection_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)pool, MHD_OPTION_END);
    if (!ctx->mhd) {
        snprintf(msg, msgsize, "cannot listen on %s (address in use or not permitted?)",
                 ctx->cfg.listen);
        return false;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(ctx->mhd, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (!info || getsockname(info->listen_fd, (struct sockaddr *)&bound, &blen) != 0) {
        snprintf(msg, msgsize, "cannot read the bound address: %s", strerror(errno));
        return false;
    }
    ctx->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    if (ctx->cfg.port_file[0] && !write_port_file(ctx->cfg.port_file, ctx->port, msg, msgsize))
        return false;
    return true;
}

void sqd_http_quiesce(struct sqd_ctx *ctx)
{
    if (!ctx->mhd)
        return;
    MHD_socket fd = MHD_quiesce_daemon(ctx->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void sqd_http_stop(struct sqd_ctx *ctx)
{
    if (ctx->mhd)
        MHD_stop_daemon(ctx->mhd);
    ctx->mhd = NULL;
}

/*
 * Receiving a model: POST /v1/quantize and POST /v1/jobs. Everything is
 * checked as early as it can be: the queue and Content-Length before a
 * byte of body is read (413 and 503 then arrive while the client is still
 * sending), the parameters before the body, the body against its limit as
 * it streams. Bodies go to a struct sqd_body (memory, then a file); a
 * multipart body goes through libmicrohttpd's post processor, whose "model"
 * part is the body and whose "options" part is a JSON object of parameters.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "body.h"
#include "ctx.h"
#include "errors.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "multipart.h"
#include "registry.h"
#include "respond.h"
#include "spec.h"
#include "spool.h"
#include "stream.h"
#include "upload.h"
#include "util.h"

#define SQD_OPTIONS_MAX (64 * 1024) /* the multipart options part */
#define SQD_FIELD_MAX 4096          /* any other small form field */
/*
 * A body without Content-Length (chunked) that crosses max-body-size is
 * read on and dropped for up to this many more bytes, so that the client,
 * which is still sending, can read the 413 afterwards; past it the
 * connection is closed (logged as 413).
 */
#define SQD_DISCARD_MAX (64ull * 1024 * 1024)
/*
 * The largest safetensors header read on the MHD thread to start a job
 * while the body arrives (a model of 10,000 tensors has about 1.5 MB): a
 * larger one waits for the end of the body and is parsed on the pool, so
 * that no client can keep the HTTP thread parsing JSON for long.
 */
#define SQD_FEED_HEADER_MAX (4ull * 1024 * 1024)

/* Remember the first failure while receiving; it is answered at the end. */
static void upload_fail(struct sqd_request *req, enum sq_status st, const char *msg)
{
    if (req->upload_status != SQ_OK)
        return;
    req->upload_status = st;
    req->upload_err.status = st;
    snprintf(req->upload_err.message, sizeof(req->upload_err.message), "%s", msg);
}

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    struct sqd_request *req = cls;
    (void)kind;
    if (!key || !*key) {
        upload_fail(req, SQ_ERR_ARG, "a query parameter has an empty name");
        return MHD_NO;
    }
    if (sqd_spec_param(&req->spec, key, value ? value : "", &req->upload_err) != SQ_OK) {
        req->upload_status = req->upload_err.status;
        return MHD_NO;
    }
    return MHD_YES;
}

/* Small form fields (dtype, shape, name, format, ...) are collected whole, then applied. */
struct field {
    char key[64];
    char value[SQD_FIELD_MAX + 1];
    size_t len;
    bool open;
};

static void flush_field(struct sqd_request *req, struct field *f)
{
    if (!f->open)
        return;
    f->open = false;
    f->value[f->len] = '\0';
    if (req->upload_status != SQ_OK)
        return;
    if (sqd_spec_param(&req->spec, f->key, f->value, &req->upload_err) != SQ_OK)
        req->upload_status = req->upload_err.status;
}

/* Per-request post-processing state, freed with the request. */
struct pp_state {
    struct sqd_request *req;
    struct field field;
};

static bool on_part(void *cls, const char *key, const char *filename, const char *content_type,
                    const char *data, uint64_t off, size_t size)
{
    struct pp_state *ps = cls;
    struct sqd_request *req = ps->req;
    if (req->upload_status != SQ_OK)
        return false;
    /* A part without Content-Disposition (or without its name) has a NULL or empty key. */
    if (!key || !*key) {
        upload_fail(req, SQ_ERR_ARG,
                    "a multipart part has no name: each part needs "
                    "'Content-Disposition: form-data; name=\"...\"'");
        return false;
    }
    if (size && !data) {
        upload_fail(req, SQ_ERR_FORMAT, "malformed multipart/form-data body");
        return false;
    }
    if (ps->field.open && (off == 0 || strcmp(ps->field.key, key) != 0))
        flush_field(req, &ps->field);
    if (strcmp(key, "model") == 0) {
        if (off == 0) {
            if (req->saw_model_part) {
                upload_fail(req, SQ_ERR_ARG, "the multipart body has more than one 'model' part");
                return false;
            }
            req->saw_model_part = true;
            req->spec.model_off = req->body.len;
            enum sqd_ctype ct = sqd_ctype_parse(content_type);
            if (ct == SQD_CT_NPY)
                req->spec.input = SQ_FORMAT_NPY;
            else if (ct == SQD_CT_SAFETENSORS)
                req->spec.input = SQ_FORMAT_SAFETENSORS;
            else if (ct == SQD_CT_ONNX)
                req->spec.input = SQ_FORMAT_ONNX;
            /* octet-stream parts are typical for files: the magic bytes or dtype/shape decide */
        }
        if (size && sqd_body_append(&req->body, data, size, &req->upload_err) != SQ_OK) {
            req->upload_status = req->upload_err.status;
            return false;
        }
        req->spec.model_len += size;
        return true;
    }
    if (filename && strcmp(key, "options") != 0) {
        /* Any other file part is external data of an ONNX model, named by its location. */
        if (off == 0 &&
            sqd_spec_add_part(&req->spec, key, req->body.len, &req->upload_err) != SQ_OK) {
            req->upload_status = req->upload_err.status;
            return false;
        }
        if (size && sqd_body_append(&req->body, data, size, &req->upload_err) != SQ_OK) {
            req->upload_status = req->upload_err.status;
            return false;
        }
        req->spec.parts[req->spec.nparts - 1].len += size;
        return true;
    }
    if (strcmp(key, "options") == 0) {
        if (req->options_len + size > SQD_OPTIONS_MAX) {
            upload_fail(req, SQ_ERR_LIMIT, "the options part is larger than 64 KiB");
            return false;
        }
        char *p = realloc(req->options_text, req->options_len + size + 1);
        if (!p) {
            upload_fail(req, SQ_ERR_NOMEM, "out of memory");
            return false;
        }
        memcpy(p + req->options_len, data, size);
        req->options_len += size;
        p[req->options_len] = '\0';
        req->options_text = p;
        return true;
    }
    /* Any other field is a parameter (dtype, shape, name, bits, ...). */
    if (!ps->field.open) {
        if (strlen(key) >= sizeof(ps->field.key)) {
            upload_fail(req, SQ_ERR_ARG, "a form field name is too long");
            return false;
        }
        snprintf(ps->field.key, sizeof(ps->field.key), "%s", key);
        ps->field.len = 0;
        ps->field.open = true;
    }
    if (size && memchr(data, '\0', size)) {
        upload_fail(req, SQ_ERR_ARG, "a form field value contains a NUL byte");
        return false;
    }
    if (ps->field.len + size > SQD_FIELD_MAX) {
        upload_fail(req, SQ_ERR_ARG, "a form field value is longer than 4096 bytes");
        return false;
    }
    memcpy(ps->field.value + ps->field.len, data, size);
    ps->field.len += size;
    return true;
}

static struct pp_state *pp_states_new(struct sqd_request *req)
{
    struct pp_state *ps = calloc(1, sizeof(*ps));
    if (ps)
        ps->req = req;
    return ps;
}

void sqd_respond_not_acceptable(struct sqd_request *req)
{
    sqd_respond_error(req, 406, "not_acceptable",
                      "no type in Accept can be produced: the result is "
                      "application/vnd.safetensors, application/x-npy or application/json "
                      "(or send the format parameter)");
}

static bool parse_content_length(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
            return false;
    }
    *out = v;
    return true;
}

bool sqd_upload_begin(struct sqd_request *req)
{
    struct sqd_ctx *ctx = req->ctx;
    struct MHD_Connection *conn = req->conn;
    bool async = req->route->handler == sqd_h_jobs_post;

    if (atomic_load(&ctx->draining)) {
        sqd_respond_error(req, 503, "draining", "the daemon is shutting down; retry elsewhere");
        return false;
    }
    uint64_t clen;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && parse_content_length(cl, &clen) && clen > ctx->cfg.max_body_size) {
        sqd_respond_error(req, 413, sq_status_name(SQ_ERR_LIMIT),
                          "the body (%" PRIu64 " bytes) exceeds max-body-size (%" PRIu64 " bytes)",
                          clen, ctx->cfg.max_body_size);
        return false;
    }
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, on_arg, req);
    if (req->upload_status != SQ_OK) {
        sqd_respond_sq(req, &req->upload_err);
        return false;
    }
    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    enum sqd_ctype ct = sqd_ctype_parse(ctype);
    enum sq_format accepted;
    if (!req->spec.have_format && ct != SQD_CT_MULTIPART &&
        !sqd_accept_format(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept"),
                           &accepted)) {
        sqd_respond_not_acceptable(req); /* before the body is read */
        return false;
    }
    switch (ct) {
    case SQD_CT_UNSUPPORTED:
        sqd_respond_error(req, 415, sq_status_name(SQ_ERR_UNSUPPORTED),
                          "unsupported Content-Type '%.100s': use application/x-npy, "
                          "application/vnd.safetensors, application/onnx, "
                          "application/octet-stream or multipart/form-data",
                          ctype);
        return false;
    case SQD_CT_NPY:
        req->spec.input = SQ_FORMAT_NPY;
        break;
    case SQD_CT_SAFETENSORS:
        req->spec.input = SQ_FORMAT_SAFETENSORS;
        break;
    case SQD_CT_ONNX:
        req->spec.input = SQ_FORMAT_ONNX;
        break;
    case SQD_CT_RAW:
        /* A raw blob if dtype and shape say so; otherwise the magic bytes decide. */
        req->spec.input = req->spec.have_dtype || req->spec.rank ? SQ_FORMAT_RAW : SQ_FORMAT_AUTO;
        req->spec.octet = true;
        break;
    default:
        req->spec.input = SQ_FORMAT_AUTO;
        break;
    }
    if (!sqd_jobs_admit(ctx)) {
        atomic_fetch_add(&ctx->metrics.rejected, 1);
        sqd_respond_error(req, 503, "queue_full",
                          "the job queue is full; retry after the time in Retry-After");
        return false;
    }
    req->admitted = true;
    if (async) {
        uv_mutex_lock(&ctx->reg.lock);
        bool full = ctx->reg.n >= ctx->cfg.max_stored_jobs;
        uv_mutex_unlock(&ctx->reg.lock);
        if (full) {
            sqd_respond_error(req, 503, "queue_full",
                              "max-stored-jobs async jobs are kept; delete finished ones or "
                              "retry later");
            return false;
        }
        sqd_random_id(ctx->cfg.instance, req->job_id);
        int fd = sqd_spool_create(ctx, req->job_id, &req->job_dir, &req->upload_err);
        if (fd < 0) {
            sqd_respond_sq(req, &req->upload_err);
            return false;
        }
        sqd_body_init_file(&req->body, ctx->cfg.max_body_size, fd);
    } else {
        sqd_body_init(&req->body, ctx->cfg.max_body_size, ctx->cfg.memory_body_limit, ctx->tmp_dir);
    }
    if (ct == SQD_CT_MULTIPART) {
        struct pp_state *ps = pp_states_new(req);
        req->pp = ps ? sqd_multipart_new(ctype, on_part, ps) : NULL;
        if (!req->pp) {
            free(ps);
            sqd_respond_error(req, 400, sq_status_name(SQ_ERR_FORMAT),
                              "multipart/form-data needs a boundary parameter in Content-Type "
                              "(1 to 70 characters of RFC 2046)");
            return false;
        }
        req->pp_state = ps;
    }
    return true;
}

/* ------------------------------------------------------------ a body that feeds its job */

/*
 * A sync safetensors upload starts its job as soon as its header is in the
 * spool file: the job parses the header as if the body had the length the
 * header implies (8 + header + the end of the last tensor's data_offsets),
 * and runs each work item once the bytes it reads have arrived. Only a body
 * that is spooled (past memory-body-limit), announced with that exact
 * Content-Length (or chunked), answered in the default safetensors layout
 * and not packed takes this path; anything else is parsed at its end as
 * before. 1: *expected is known; 0: more bytes are needed; -1: not this path.
 */
static int feed_expected(struct sqd_request *req, uint64_t *expected)
{
    const struct sqd_body *b = &req->body;
    if (b->fd < 0)
        return 0; /* still in memory: it may yet spill */
    if (b->len < 8)
        return 0;
    uint8_t h8[8];
    if (pread(b->fd, h8, 8, 0) != 8)
        return -1;
    uint64_t hlen = sqi_le64(h8);
    if (hlen < 2 || hlen > req->ctx->cfg.max_header_bytes || hlen > b->limit ||
        hlen > SQD_FEED_HEADER_MAX)
        return -1; /* the parser says why, at the end; a huge header is parsed on the pool */
    if (b->len < 8 + hlen)
        return 0;
    char *text = malloc((size_t)hlen);
    if (!text || pread(b->fd, text, (size_t)hlen, 8) != (ssize_t)hlen) {
        free(text);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb(text, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    free(text);
    uint64_t end = 0;
    bool ok = json_is_object(root);
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (!ok || strcmp(k, "__metadata__") == 0)
            continue;
        json_t *off = json_object_get(v, "data_offsets");
        json_t *e = json_array_get(off, 1);
        if (json_array_size(off) != 2 || !json_is_integer(e) || json_integer_value(e) < 0) {
            ok = false; /* malformed: the parser gives the precise error at the end */
            continue;
        }
        if ((uint64_t)json_integer_value(e) > end)
            end = (uint64_t)json_integer_value(e);
    }
    json_decref(root);
    if (!ok || end > b->limit)
        return -1;
    *expected = 8 + hlen + end;
    return 1;
}

/* Start the job of a sync safetensors upload whose header has arrived, if it can be. */
static void feed_try(struct sqd_request *req)
{
    struct sqd_ctx *ctx = req->ctx;
    uint64_t expected = 0, clen;
    int r = req->route->handler == sqd_h_quantize && !req->pp &&
                    req->spec.input == SQ_FORMAT_SAFETENSORS
                ? feed_expected(req, &expected)
                : -1;
    if (r == 0)
        return;
    req->feed_decided = true;
    const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Length");
    if (r < 0 || (cl && (!parse_content_length(cl, &clen) || clen != expected)) ||
        expected > req->body.limit || expected <= req->body.len)
        return;
    /* The checks sqd_upload_end makes, made now: a bad option is answered at the end as before. */
    struct sq_options opt;
    struct sq_error err;
    sq_options_init(&opt);
    sq_error_init(&err);
    bool ok = sqd_spec_options(&req->spec, &opt, &err) == SQ_OK && opt.packing == SQ_PACKING_NONE &&
              (opt.output == SQ_FORMAT_SAFETENSORS || opt.output == SQ_FORMAT_AUTO);
    sq_options_free(&opt);
    enum sq_format f = SQ_FORMAT_AUTO;
    if (!ok || (!req->spec.have_format &&
                (!sqd_accept_format(
                     MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Accept"), &f) ||
                 (f != SQ_FORMAT_AUTO && f != SQ_FORMAT_SAFETENSORS))))
        return;
    int fd = fcntl(req->body.fd, F_DUPFD_CLOEXEC, 0);
    struct sqd_feed *feed = fd >= 0 ? sqd_feed_new(&ctx->inbox_async, expected) : NULL;
    struct sqd_job *job = feed ? sqd_job_new(ctx, false) : NULL;
    if (!job || (f == SQ_FORMAT_SAFETENSORS &&
                 sqd_spec_param(&req->spec, "format", sq_format_name(f), &err) != SQ_OK)) {
        sqd_job_free(job);
        sqd_feed_unref(feed);
        if (fd >= 0)
            close(fd);
        return; /* parsed at the end instead */
    }
    job->spec = req->spec;
    sqd_spec_init(&req->spec);
    req->spec.input = SQ_FORMAT_SAFETENSORS;
    sqd_body_init_file(&job->body, (size_t)expected, fd);
    job->body.len = (size_t)expected; /* mapped whole; read only where it has arrived */
    job->req = req;
    job->t.received = req->t_start;
    job->t.admitted = sqd_now_ns();
    atomic_fetch_add(&feed->refs, 1);
    job->feed = feed;
    req->feed = feed;
    sqd_feed_progress(feed, req->body.len);
    req->admitted = false; /* the queue slot is the job's now */
    sqd_jobs_submit(ctx, job);
}

/* The body of a fed job is complete (or failed): hand the answer to the job. */
static void answer_upload_error(struct sqd_request *req);

static void feed_finish(struct sqd_request *req)
{
    struct sqd_feed *f = req->feed;
    req->t_body = sqd_now_ns();
    if (req->upload_status != SQ_OK) {
        if (sqd_feed_claim(f))
            sqd_feed_end(f, SQD_FEED_GONE, NULL, -1);
        answer_upload_error(req);
        return;
    }
    if (!sqd_feed_claim(f)) { /* the job let go at shutdown */
        sqd_respond_error(req, 503, "draining", "the daemon shut down before the job finished");
        return;
    }
    struct sq_error err;
    sq_error_init(&err);
    int state = SQD_FEED_DONE;
    if (req->body.len != f->expected) {
        /* What parsing the body as it is says, as when it is parsed after its end. */
        state = SQD_FEED_SHORT;
        const uint8_t *data;
        size_t len;
        struct sq_model m;
        sq_model_init(&m);
        enum sq_status st = sqd_body_map(&req->body, &data, &len, &err);
        if (st == SQ_OK)
            st = sqd_spec_parse(&req->spec, &req->ctx->limits, data, len, &m, &err);
        sq_model_free(&m);
        if (st == SQ_OK) /* cannot happen: the header's tensors tile exactly `expected` bytes */
            sqi_fail(&err, SQ_ERR_FORMAT,
                     "the body has %zu bytes, its safetensors header describes %" PRIu64,
                     req->body.len, f->expected);
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    req->phase = SQD_PH_WAIT;
    /* Suspend before the loop thread can see the end, so that its resume finds it suspended. */
    MHD_suspend_connection(req->conn);
    sqd_feed_end(f, state, state == SQD_FEED_SHORT ? &err : NULL, ci ? ci->connect_fd : -1);
}

bool sqd_upload_data(struct sqd_request *req, const char *data, size_t size)
{
    struct sqd_ctx *ctx = req->ctx;
    if (req->bytes_in > ctx->cfg.max_body_size) {
        /*
         * A body without Content-Length (chunked) crossed the limit.
         * libmicrohttpd cannot answer in the middle of a body, so the rest is
         * read and dropped, and the 413 answered at its end; a body that goes
         * on for more than SQD_DISCARD_MAX past the limit has its connection
         * closed instead.
         */
        char msg[SQ_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "the body exceeds max-body-size (%" PRIu64 " bytes)",
                 ctx->cfg.max_body_size);
        if (req->upload_status != SQ_ERR_LIMIT) {
            req->upload_status = SQ_OK; /* this one is what the client must hear */
            sq_error_init(&req->upload_err);
        }
        upload_fail(req, SQ_ERR_LIMIT, msg);
        if (req->bytes_in - ctx->cfg.max_body_size > SQD_DISCARD_MAX) {
            req->status = 413; /* for the log: the answer could not be sent */
            return false;
        }
        return true;
    }
    if (req->upload_status != SQ_OK)
        return true; /* discard the rest, answer at the end */
    if (req->pp) {
        if (!sqd_multipart_feed(req->pp, data, size))
            upload_fail(req, SQ_ERR_FORMAT, "malformed multipart/form-data body");
        return true;
    }
    if (sqd_body_append(&req->body, data, size, &req->upload_err) != SQ_OK) {
        req->upload_status = req->upload_err.status;
        if (req->feed && sqd_feed_claim(req->feed)) /* answered at the end: the job stops now */
            sqd_feed_end(req->feed, SQD_FEED_GONE, NULL, -1);
    } else if (req->feed) {
        sqd_feed_progress(req->feed, req->body.len);
    } else if (!req->feed_decided && !req->job_dir) {
        feed_try(req);
    }
    return true;
}

static void answer_upload_error(struct sqd_request *req)
{
    sqd_respond_sq(req, &req->upload_err);
    if (req->job_dir) {
        sqd_body_free(&req->body);
        sqd_spool_remove(req->job_dir);
        free(req->job_dir);
        req->job_dir = NULL;
    }
}

void sqd_upload_end(struct sqd_request *req)
{
    if (req->feed) {
        feed_finish(req);
        return;
    }
    if (req->pp) {
        struct pp_state *ps = req->pp_state;
        flush_field(req, &ps->field);
        if (!sqd_multipart_end(req->pp))
            upload_fail(req, SQ_ERR_FORMAT, "the multipart/form-data body ended early");
        sqd_multipart_free(req->pp);
        req->pp = NULL;
        if (req->upload_status == SQ_OK && !req->saw_model_part)
            upload_fail(req, SQ_ERR_ARG,
                        "the multipart body has no 'model' part (curl -F model=@FILE)");
        if (req->upload_status == SQ_OK && req->options_text &&
            sqd_spec_json(&req->spec, req->options_text, req->options_len, &req->upload_err) !=
                SQ_OK)
            req->upload_status = req->upload_err.status;
        if (req->spec.have_dtype && req->spec.rank && req->spec.input == SQ_FORMAT_AUTO)
            req->spec.input = SQ_FORMAT_RAW;
    }
    if (req->upload_status != SQ_OK) {
        answer_upload_error(req);
        return;
    }
    if (!req->spec.have_format) {
        enum sq_format f;
        if (!sqd_accept_format(MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Accept"),
                               &f)) {
            sqd_respond_not_acceptable(req);
            if (req->job_dir) {
                sqd_body_free(&req->body);
                sqd_spool_remove(req->job_dir);
                free(req->job_dir);
                req->job_dir = NULL;
            }
            return;
        }
        if (f != SQ_FORMAT_AUTO &&
            sqd_spec_param(&req->spec, "format", sq_format_name(f), &req->upload_err) != SQ_OK) {
            req->upload_status = req->upload_err.status;
            answer_upload_error(req);
            return;
        }
    }
    /* Check the options now: a bad parameter is a 400 before any work is queued. */
    struct sq_options opt;
    sq_options_init(&opt);
    sq_error_init(&req->upload_err);
    enum sq_status st = sqd_spec_options(&req->spec, &opt, &req->upload_err);
    sq_options_free(&opt);
    if (st != SQ_OK) {
        req->upload_status = st;
        req->upload_err.status = st;
        answer_upload_error(req);
        return;
    }
    req->t_body = sqd_now_ns();
    req->route->handler(req);
}

void sqd_upload_free(struct sqd_request *req)
{
    if (req->feed) {
        /* Closed (or timed out) while the body arrived: its job is cancelled, its files go. */
        if (sqd_feed_claim(req->feed))
            sqd_feed_end(req->feed, SQD_FEED_GONE, NULL, -1);
        sqd_feed_unref(req->feed);
        req->feed = NULL;
    }
    sqd_multipart_free(req->pp);
    req->pp = NULL;
    free(req->pp_state);
    req->pp_state = NULL;
    sqd_body_free(&req->body);
    sqd_spec_free(&req->spec);
    free(req->options_text);
    req->options_text = NULL;
    if (req->job_dir) {
        /* An async upload that never became a job: nothing of it stays. */
        sqd_spool_remove(req->job_dir);
        free(req->job_dir);
        req->job_dir = NULL;
    }
}

/* POST /v1/quantize, body complete: run it as a sync job on a suspended connection. */
void sqd_h_quantize(struct sqd_request *req)
{
    struct sqd_ctx *ctx = req->ctx;
    struct sqd_job *job = sqd_job_new(ctx, false);
    if (!job) {
        sqd_respond_error(req, 503, sq_status_name(SQ_ERR_NOMEM), "out of memory");
        return;
    }
    job->spec = req->spec;
    sqd_spec_init(&req->spec);
    job->body = req->body;
    sqd_body_init(&req->body, 0, 0, NULL);
    job->req = req;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    job->client_fd = ci ? ci->connect_fd : -1;
    job->t.received = req->t_start;
    job->t.admitted = req->t_body;
    req->admitted = false; /* the queue slot is the job's now */
    req->phase = SQD_PH_WAIT;
    /* Suspend before the loop thread can see the job, so that its resume finds it suspended. */
    MHD_suspend_connection(req->conn);
    sqd_jobs_submit(ctx, job);
}

/* POST /v1/jobs, body complete: have the job made durable, which answers 202. */
void sqd_h_jobs_post(struct sqd_request *req)
{
    struct sqd_ctx *ctx = req->ctx;
    struct sqd_job *job = sqd_job_new(ctx, true);
    struct sqd_jobrec *rec = calloc(1, sizeof(*rec));
    if (!job || !rec) {
        free(rec);
        sqd_job_free(job);
        sqd_respond_error(req, 503, sq_status_name(SQ_ERR_NOMEM), "out of memory");
        return;
    }
    memcpy(job->id, req->job_id, SQD_JOBID_LEN + 1);
    memcpy(rec->id, req->job_id, SQD_JOBID_LEN + 1);
    memcpy(rec->owner, req->owner, sizeof(rec->owner));
    job->spec = req->spec;
    sqd_spec_init(&req->spec);
    job->body = req->body;
    sqd_body_init(&req->body, 0, 0, NULL);
    job->dir = req->job_dir;
    req->job_dir = NULL;
    rec->state = SQD_QUEUED;
    rec->created = (int64_t)time(NULL);
    rec->out_format = SQ_FORMAT_SAFETENSORS;
    rec->live = job;
    job->rec = rec;
    job->t.received = req->t_start;
    job->t.admitted = req->t_body;

    uv_mutex_lock(&ctx->reg.lock);
    bool added = sqd_reg_add(&ctx->reg, rec);
    uv_mutex_unlock(&ctx->reg.lock);
    if (!added) {
        free(rec);
        sqd_log(ctx, "job %s: out of memory", job->id);
        sqd_spool_remove(job->dir);
        sqd_job_free(job);
        sqd_respond_error(req, 503, sq_status_name(SQ_ERR_NOMEM), "out of memory");
        return;
    }
    /*
     * The job is made durable on the pool (its input fsynced, its files
     * written and renamed), not on this thread, which serves every other
     * client meanwhile; the queue answers 202 once it is (jobs.c).
     */
    req->admitted = false; /* the queue slot is the job's now */
    req->phase = SQD_PH_WAIT;
    /* Suspend before the loop thread can see the job, so that its resume finds it suspended. */
    MHD_suspend_connection(req->conn);
    sqd_jobs_submit_durable(ctx, job, req);
}

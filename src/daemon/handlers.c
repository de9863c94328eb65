/*
 * The answers of the routes that need no job: health, readiness, info,
 * metrics, and the async job records. All run on the MHD thread and answer
 * at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "ctx.h"
#include "errors.h"
#include "handlers.h"
#include "jobs.h"
#include "metrics.h"
#include "registry.h"
#include "respond.h"
#include "spec.h"
#include "spool.h"

/* A constant JSON answer. */
static void respond_const(struct sqd_request *req, const char *text)
{
    sqd_respond(req, 200, "application/json", strdup(text), strlen(text));
}

void sqd_h_healthz(struct sqd_request *req)
{
    respond_const(req, "{\"status\":\"ok\"}\n");
}

void sqd_h_readyz(struct sqd_request *req)
{
    if (atomic_load(&req->ctx->draining)) {
        sqd_respond_error(req, 503, "draining", "the daemon is shutting down");
        return;
    }
    respond_const(req, "{\"status\":\"ready\"}\n");
}

static const char *impl_in_use(void)
{
    static const enum sq_impl preference[] = {SQ_IMPL_AVX512, SQ_IMPL_AVX2, SQ_IMPL_GENERIC};
    for (size_t i = 0; i < sizeof(preference) / sizeof(preference[0]); i++) {
        if (sq_impl_available(preference[i]))
            return sq_impl_name(preference[i]);
    }
    return sq_impl_name(SQ_IMPL_REF);
}

/* The document of GET /v1/info (new reference). */
static json_t *info_json(struct sqd_ctx *ctx)
{
    json_t *modes = json_array(), *schemes = json_array(), *impls = json_array();
    for (int m = 0; m < SQ_MODE_COUNT; m++)
        json_array_append_new(modes, json_string(sq_mode_name((enum sq_mode)m)));
    for (int s = 0; s < SQ_SCHEME_COUNT; s++)
        json_array_append_new(schemes, json_string(sq_scheme_name((enum sq_scheme)s)));
    for (int i = 0; i < SQ_IMPL_COUNT; i++) {
        if (i != SQ_IMPL_AUTO && sq_impl_available((enum sq_impl)i))
            json_array_append_new(impls, json_string(sq_impl_name((enum sq_impl)i)));
    }
    json_t *limits = json_object();
    size_t count;
    const struct sqd_option *opts = sqd_options(&count);
    for (size_t i = 0; i < count; i++) {
        if (!(opts[i].flags & SQD_OPT_LIMIT))
            continue;
        uint64_t v = *(const uint64_t *)((const char *)&ctx->cfg + opts[i].offset);
        json_object_set_new(limits, opts[i].name, json_integer((json_int_t)v));
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:{s:i, s:i, s:i}, s:{s:i, s:I, s:i}, s:[ss], "
                     "s:{s:s, s:o}, s:{s:[sssss], s:[sssss], s:[sss]}, s:o, s:i, s:i}",
                     "name", "squantd", "version", SQ_VERSION_STRING, "modes", modes, "schemes",
                     schemes, "bits", "min", SQ_BITS_MIN, "max", SQ_BITS_MAX, "default",
                     SQ_BITS_DEFAULT, "group", "min", 0, "max", (json_int_t)SQ_GROUP_MAX, "default",
                     0, "scale_dtypes", "F32", "F16", "implementation", "in_use", impl_in_use(),
                     "available", impls, "formats", "input", "safetensors", "onnx", "npy", "raw",
                     "multipart", "output", "safetensors", "onnx", "dequantized", "npy", "json",
                     "packing", "none", "int4", "matmulnbits", "limits", limits, "threads",
                     (json_int_t)ctx->pool_size, "max_active_jobs", (json_int_t)ctx->max_active);
}

void sqd_h_info(struct sqd_request *req)
{
    sqd_respond_jsonv(req, 200, info_json(req->ctx));
}

void sqd_h_metrics(struct sqd_request *req)
{
    struct sqd_ctx *ctx = req->ctx;
    struct sqd_gauges g = {
        .queued = atomic_load(&ctx->queued_gauge),
        .running = atomic_load(&ctx->running_gauge),
        .conns_timed_out = atomic_load(&ctx->conns.timed_out),
        .evicted = atomic_load(&ctx->conns.evicted),
        .threads = ctx->pool_size,
        .draining = atomic_load(&ctx->draining),
    };
    size_t len = 0;
    char *text = sqd_metrics_render(&ctx->metrics, &g, &ctx->reg, &len);
    if (!text) {
        sqd_respond_error(req, 503, sq_status_name(SQ_ERR_NOMEM), "out of memory");
        return;
    }
    sqd_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* Look up {id}; answers 404 itself and returns NULL with the lock released. */
static struct sqd_jobrec *find_locked(struct sqd_request *req)
{
    struct sqd_ctx *ctx = req->ctx;
    if (!sqd_job_id_valid(req->job_id)) {
        sqd_respond_error(req, 404, "not_found", "no such job: %.100s", req->job_id);
        return NULL;
    }
    if (!sqd_job_id_owned(ctx->cfg.instance, req->job_id)) {
        /* Another instance's id: never looked up here (a proxy routed it wrongly). */
        const char *dot = strchr(req->job_id, '.');
        sqd_respond_error(req, 404, "wrong_instance",
                          "job %s was created by %s%.*s%s; this is %s%s%s", req->job_id,
                          dot ? "instance \"" : "an instance without a name",
                          dot ? (int)(dot - req->job_id) : 0, req->job_id, dot ? "\"" : "",
                          ctx->cfg.instance[0] ? "instance \"" : "an instance without a name",
                          ctx->cfg.instance, ctx->cfg.instance[0] ? "\"" : "");
        return NULL;
    }
    uv_mutex_lock(&ctx->reg.lock);
    struct sqd_jobrec *rec = sqd_reg_find(&ctx->reg, req->job_id);
    /* Another token's job does not exist for this one. */
    if (rec && !sqd_job_visible(req, rec))
        rec = NULL;
    if (!rec) {
        uv_mutex_unlock(&ctx->reg.lock);
        sqd_respond_error(req, 404, "not_found", "no such job: %s (unknown, expired or deleted)",
                          req->job_id);
    }
    return rec;
}

void sqd_h_job_get(struct sqd_request *req)
{
    struct sqd_jobrec *rec = find_locked(req);
    if (!rec)
        return;
    json_t *doc = sqd_jobrec_json(rec);
    uv_mutex_unlock(&req->ctx->reg.lock);
    sqd_respond_jsonv(req, 200, doc);
}

void sqd_h_job_delete(struct sqd_request *req)
{
    struct sqd_ctx *ctx = req->ctx;
    struct sqd_jobrec *rec = find_locked(req);
    if (!rec)
        return;
    if (rec->state == SQD_QUEUED || rec->state == SQD_RUNNING) {
        /* Cancel: the loop thread sees the flag, stops the work and writes the state. */
        if (rec->live)
            atomic_store(&rec->live->cancel, SQD_CANCEL_USER);
        rec->state = SQD_CANCELLED;
        json_t *doc = sqd_jobrec_json(rec);
        uv_mutex_unlock(&ctx->reg.lock);
        sqd_respond_jsonv(req, 200, doc);
        return;
    }
    if (rec->live) {
        /* Finished but still being let go by the loop thread: it removes it. */
        rec->forget = true;
        uv_mutex_unlock(&ctx->reg.lock);
        sqd_respond(req, 204, NULL, NULL, 0);
        return;
    }
    /* Finished: forget it. */
    char *dir = sqd_spool_job_dir(ctx, rec->id);
    sqd_reg_remove(&ctx->reg, rec);
    uv_mutex_unlock(&ctx->reg.lock);
    if (dir)
        sqd_spool_remove(dir);
    free(dir);
    sqd_respond(req, 204, NULL, NULL, 0);
}

bool sqd_job_visible(const struct sqd_request *req, const struct sqd_jobrec *rec)
{
    /* A job belongs to the token that created it; one created without auth, to everyone. */
    return !rec->owner[0] || strcmp(rec->owner, req->owner) == 0;
}

/*
 * Answer the file `name` of a finished job's spool directory (result,
 * report.json): 409 while the job runs, the job's own error when it failed
 * or was cancelled, 404 when the file was never written.
 */
static void answer_job_file(struct sqd_request *req, const char *name, const char *content_type)
{
    struct sqd_ctx *ctx = req->ctx;
    struct sqd_jobrec *rec = find_locked(req);
    if (!rec)
        return;
    if (!sqd_job_visible(req, rec)) {
        uv_mutex_unlock(&ctx->reg.lock);
        sqd_respond_error(req, 404, "not_found", "no such job: %s (unknown, expired or deleted)",
                          req->job_id);
        return;
    }
    enum sqd_job_state state = rec->state;
    enum sq_format fmt = rec->out_format;
    json_t *error = rec->error ? json_deep_copy(rec->error) : NULL;
    uv_mutex_unlock(&ctx->reg.lock);
    if (state == SQD_QUEUED || state == SQD_RUNNING) {
        json_decref(error);
        sqd_respond_error(req, 409, "not_ready", "job %s is %s; poll GET /v1/jobs/%s", req->job_id,
                          sqd_state_name(state), req->job_id);
        return;
    }
    if (state != SQD_DONE) {
        /* The job's own error, with its status. */
        unsigned status = 409;
        if (error && json_integer_value(json_object_get(error, "status")) > 0)
            status = (unsigned)json_integer_value(json_object_get(error, "status"));
        json_t *doc = error ? json_pack("{s:o}", "error", error)
                            : json_pack("{s:{s:i, s:s, s:s}}", "error", "status", 409, "code",
                                        "cancelled", "message", "the job was cancelled");
        sqd_respond_jsonv(req, status, doc);
        return;
    }
    json_decref(error);
    if (!sqd_accept_allows(MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Accept"),
                           fmt)) {
        sqd_respond_error(req, 406, "not_acceptable",
                          "the result of job %s is %s, which Accept does not admit", req->job_id,
                          sqd_format_mime(fmt));
        return;
    }
    char *dir = sqd_spool_job_dir(ctx, req->job_id);
    char path[4200];
    int fd = -1;
    if (dir && (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) < sizeof(path))
        fd = open(path, O_RDONLY | O_CLOEXEC);
    free(dir);
    int e = errno;
    struct stat st;
    if (fd < 0 && e == ENOENT && strcmp(name, "result") != 0) {
        sqd_respond_error(req, 404, "not_found",
                          "job %s has no %s (it finished before this daemon version kept one)",
                          req->job_id, name);
        return;
    }
    if (fd < 0 || fstat(fd, &st) != 0) {
        e = errno;
        if (fd >= 0)
            close(fd);
        sqd_respond_error(req, 500, sq_status_name(SQ_ERR_IO),
                          "the %s of job %s cannot be read: %s", name, req->job_id, strerror(e));
        return;
    }
    sqd_respond_fd(req, 200, content_type ? content_type : sqd_format_mime(fmt), fd,
                   (uint64_t)st.st_size);
}

void sqd_h_job_result(struct sqd_request *req)
{
    answer_job_file(req, "result", NULL);
}

void sqd_h_job_report(struct sqd_request *req)
{
    answer_job_file(req, "report.json", "application/json");
}

/* Newest first: later creation, then the larger id (ids are random: a fixed tie-break). */
static int newer_first(const void *a, const void *b)
{
    const struct sqd_jobrec *x = *(const struct sqd_jobrec *const *)a;
    const struct sqd_jobrec *y = *(const struct sqd_jobrec *const *)b;
    if (x->created != y->created)
        return x->created > y->created ? -1 : 1;
    return -strcmp(x->id, y->id);
}

/* Whether a record comes after the cursor (created, id) in newest-first order. */
static bool after_cursor(const struct sqd_jobrec *rec, int64_t created, const char *id)
{
    return rec->created < created || (rec->created == created && strcmp(rec->id, id) < 0);
}

/*
 * Parse "CREATED.ID" (what next_cursor holds): unix seconds, a dot, a job id.
 * Clients treat it as opaque.
 */
static bool parse_cursor(const char *text, int64_t *created, char id[SQD_JOBID_LEN + 1])
{
    size_t digits = strspn(text, "0123456789");
    if (digits == 0 || digits > 18 || text[digits] != '.' || !sqd_job_id_valid(text + digits + 1))
        return false;
    *created = (int64_t)strtoll(text, NULL, 10);
    snprintf(id, SQD_JOBID_LEN + 1, "%s", text + digits + 1); /* valid, so it fits */
    return true;
}

void sqd_h_jobs_list(struct sqd_request *req)
{
    struct sqd_ctx *ctx = req->ctx;
    const char *ltext = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "limit");
    const char *ctext = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "cursor");
    size_t limit = SQD_JOBS_PAGE_DEFAULT;
    if (ltext) {
        size_t n = strspn(ltext, "0123456789");
        long v = n > 0 && n <= 4 && ltext[n] == '\0' ? strtol(ltext, NULL, 10) : 0;
        if (v < 1 || v > SQD_JOBS_PAGE_MAX) {
            sqd_respond_error(req, 400, sq_status_name(SQ_ERR_ARG),
                              "limit must be an integer 1..%d, not '%.40s'", SQD_JOBS_PAGE_MAX,
                              ltext);
            return;
        }
        limit = (size_t)v;
    }
    bool have_cursor = ctext != NULL;
    int64_t c_created = 0;
    char c_id[SQD_JOBID_LEN + 1] = "";
    if (have_cursor && !parse_cursor(ctext, &c_created, c_id)) {
        sqd_respond_error(req, 400, sq_status_name(SQ_ERR_ARG),
                          "cursor '%.60s' is not one this daemon gave out (next_cursor of a page)",
                          ctext);
        return;
    }
    uv_mutex_lock(&ctx->reg.lock);
    struct sqd_jobrec **sel = malloc((ctx->reg.n ? ctx->reg.n : 1) * sizeof(*sel));
    json_t *jobs = json_array();
    size_t n = 0;
    for (size_t i = 0; sel && i < ctx->reg.n; i++) {
        struct sqd_jobrec *rec = ctx->reg.recs[i];
        if (sqd_job_visible(req, rec) && (!have_cursor || after_cursor(rec, c_created, c_id)))
            sel[n++] = rec;
    }
    if (sel)
        qsort(sel, n, sizeof(*sel), newer_first);
    bool ok = sel && jobs;
    for (size_t i = 0; ok && i < n && i < limit; i++)
        ok = json_array_append_new(jobs, sqd_jobrec_json(sel[i])) == 0;
    char next[24 + SQD_JOBID_LEN] = "";
    if (ok && n > limit)
        snprintf(next, sizeof(next), "%lld.%s", (long long)sel[limit - 1]->created,
                 sel[limit - 1]->id);
    uv_mutex_unlock(&ctx->reg.lock);
    free(sel);
    if (!ok) {
        json_decref(jobs);
        sqd_respond_error(req, 503, sq_status_name(SQ_ERR_NOMEM), "out of memory");
        return;
    }
    sqd_respond_jsonv(req, 200,
                      json_pack("{s:o, s:o}", "jobs", jobs, "next_cursor",
                                next[0] ? json_string(next) : json_null()));
}

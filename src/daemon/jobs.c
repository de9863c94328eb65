/*
 * The job queue. Jobs are created on the MHD thread and handed over
 * through an inbox (mutex + uv_async) to the loop thread, which owns them
 * from then on. The loop thread never does heavy work: each job runs as a
 * chain of libuv pool tasks,
 *
 *   parse (map the body, parse, build the plan)
 *   -> one task per plan item (sq_plan_run), at most `window` at a time
 *      (safetensors output: a bounded number of layers in flight, each
 *      finished layer written to the result file by a stream task, in order)
 *   -> write (sq_plan_write, or the streamed file's header; async jobs also
 *      write their result and state)
 *
 * and the loop thread only counts completions, feeds the next items and,
 * at the end, hands the answer to the suspended connection (sync) or
 * updates the registry (async). The cancel flag is checked before every
 * item, so a cancelled job stops within one item's time. Who starts and
 * stops the queue is not known here: daemon.c calls sqd_jobs_tick from its
 * timer and sqd_jobs_drain at shutdown, and hears back through the drain
 * callback.
 */
#define _GNU_SOURCE /* mkostemp, O_TMPFILE, POLLRDHUP */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "body.h"
#include "ctx.h"
#include "errors.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "request.h"
#include "spec.h"
#include "spool.h"
#include "stream.h"

/* ------------------------------------------------------------ admission */

bool sqd_jobs_admit(struct sqd_ctx *ctx)
{
    size_t cap = (size_t)ctx->max_active + (size_t)ctx->cfg.max_queued_jobs;
    size_t cur = atomic_load(&ctx->admitted);
    do {
        if (cur >= cap)
            return false;
    } while (!atomic_compare_exchange_weak(&ctx->admitted, &cur, cur + 1));
    return true;
}

void sqd_jobs_release(struct sqd_ctx *ctx)
{
    atomic_fetch_sub(&ctx->admitted, 1);
}

/* ------------------------------------------------------------ jobs */

struct sqd_job *sqd_job_new(struct sqd_ctx *ctx, bool async)
{
    struct sqd_job *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    job->ctx = ctx;
    job->async = async;
    job->client_fd = -1;
    sqd_spec_init(&job->spec);
    sqd_body_init(&job->body, 0, 0, NULL);
    sq_model_init(&job->model);
    sq_options_init(&job->opt);
    sq_error_init(&job->err);
    sqd_stream_init(&job->stream);
    job->out_fd = -1;
    atomic_init(&job->cancel, SQD_CANCEL_NONE);
    return job;
}

void sqd_job_free(struct sqd_job *job)
{
    if (!job)
        return;
    sq_plan_free(job->plan);
    sq_model_free(&job->model);
    sq_options_free(&job->opt);
    sqd_body_free(&job->body);
    sqd_spec_free(&job->spec);
    free(job->items);
    free(job->layer_left);
    free(job->out);
    sqd_stream_free(&job->stream);
    if (job->out_fd >= 0)
        close(job->out_fd);
    sqd_feed_unref(job->feed);
    free(job->dir);
    free(job);
}

static void inbox_push(struct sqd_ctx *ctx, struct sqd_job *job)
{
    job->next = NULL;
    uv_mutex_lock(&ctx->inbox_lock);
    if (ctx->inbox_tail)
        ctx->inbox_tail->next = job;
    else
        ctx->inbox_head = job;
    ctx->inbox_tail = job;
    uv_mutex_unlock(&ctx->inbox_lock);
}

void sqd_jobs_submit(struct sqd_ctx *ctx, struct sqd_job *job)
{
    inbox_push(ctx, job);
    atomic_fetch_add(&ctx->queued_gauge, 1);
    uv_async_send(&ctx->inbox_async);
}

void sqd_jobs_submit_durable(struct sqd_ctx *ctx, struct sqd_job *job, struct sqd_request *req)
{
    job->req = req;
    job->committing = true;
    inbox_push(ctx, job); /* counted as waiting once it is durable */
    uv_async_send(&ctx->inbox_async);
}

static double ms_between(uint64_t a, uint64_t b)
{
    return a && b >= a ? (double)(b - a) / 1e6 : 0;
}

static void schedule(struct sqd_ctx *ctx);

/* Loop thread: `job` joins the end of the queue of jobs waiting to start. */
static void wait_push(struct sqd_ctx *ctx, struct sqd_job *job)
{
    if (ctx->wait_tail)
        ctx->wait_tail->next = job;
    else
        ctx->wait_head = job;
    ctx->wait_tail = job;
    ctx->waiting++;
}
static void poke_fed(struct sqd_ctx *ctx);

/*
 * A fed job that waits for bytes with nothing in flight gives its slot of
 * max-active-jobs back, so that slow uploads never keep other jobs from
 * starting; it takes a slot again when its bytes are there and one is free.
 */
static void feed_idle_set(struct sqd_job *job, bool idle)
{
    if (job->feed_idle == idle)
        return;
    job->feed_idle = idle;
    if (idle)
        job->ctx->fed_idle++;
    else
        job->ctx->fed_idle--;
}
static void start_write(struct sqd_job *job);

/* Remove `job` from the active list. */
static void unlink_active(struct sqd_ctx *ctx, struct sqd_job *job)
{
    for (struct sqd_job **p = &ctx->active; *p; p = &(*p)->next) {
        if (*p == job) {
            *p = job->next;
            break;
        }
    }
    job->next = NULL;
}

/* ------------------------------------------------------------ the end of a job */

/* The state a finished job ends in. */
static enum sqd_job_state final_state(const struct sqd_job *job)
{
    int c = atomic_load(&job->cancel);
    if (c == SQD_CANCEL_SHUTDOWN && job->async)
        return SQD_QUEUED; /* resumed at the next start */
    if (c != SQD_CANCEL_NONE)
        return SQD_CANCELLED;
    return job->status == SQ_OK ? SQD_DONE : SQD_FAILED;
}

static unsigned job_http_status(const struct sqd_job *job)
{
    if (job->http_override)
        return job->http_override;
    int c = atomic_load(&job->cancel);
    if (c == SQD_CANCEL_SHUTDOWN)
        return 503;
    if (c != SQD_CANCEL_NONE)
        return 409;
    return sqd_http_status(job->status);
}

static json_t *job_error_json(const struct sqd_job *job)
{
    int c = atomic_load(&job->cancel);
    if (c == SQD_CANCEL_SHUTDOWN)
        return sqd_error_json(503, "draining", "the daemon shut down before the job finished",
                              NULL);
    if (c != SQD_CANCEL_NONE)
        return sqd_error_json(409, "cancelled",
                              c == SQD_CANCEL_USER ? "the job was cancelled by DELETE"
                                                   : "the client closed the connection",
                              NULL);
    const char *msg = job->err.message[0] ? job->err.message : sq_strerror(job->status);
    return sqd_error_json(job_http_status(job),
                          job->code_override ? job->code_override : sq_status_name(job->status),
                          msg, &job->err);
}

/* Copy a job's progress and outcome into its record (caller holds reg_lock). */
static void fill_record(struct sqd_jobrec *rec, const struct sqd_job *job, bool final)
{
    rec->layers_total = job->nlayers;
    rec->layers_done = job->layers_done;
    rec->items_total = job->nitems;
    rec->items_done = job->items_done;
    rec->ms_queued = ms_between(job->t.admitted, job->t.started);
    rec->ms_parse = ms_between(job->t.started, job->t.parsed);
    rec->ms_quantize = ms_between(job->t.parsed, job->t.quantized);
    rec->ms_write = ms_between(job->t.quantized, job->t.written);
    rec->out_format = job->out_format;
    if (!final)
        return;
    enum sqd_job_state st = final_state(job);
    if (rec->state == SQD_CANCELLED && st != SQD_QUEUED)
        st = SQD_CANCELLED; /* DELETE won the race: the client was told "cancelled" */
    rec->state = st;
    rec->finished = st == SQD_QUEUED ? 0 : (int64_t)time(NULL);
    json_decref(rec->error);
    rec->error = st == SQD_FAILED || st == SQD_CANCELLED ? job_error_json(job) : NULL;
    if (st != SQD_DONE)
        rec->result_bytes = 0;
}

/* Pool thread: serialize the result; async jobs also make it durable. */
static void write_work(uv_work_t *w)
{
    struct sqd_job *job = w->data;
    struct sqd_ctx *ctx = job->ctx;
    if (job->status == SQ_OK && atomic_load(&job->cancel) == SQD_CANCEL_NONE && job->plan &&
        job->stream.active) {
        job->status =
            sqd_stream_finish(&job->stream, job->plan, ctx->cfg.max_response_size, &job->err);
        job->out_len = job->status == SQ_OK ? job->stream.size : 0;
        if (job->status == SQ_OK && !job->async) {
            uint64_t size;
            job->out_fd =
                sqd_stream_take(&job->stream, ctx->tmp_dir, &job->out_off, &size, &job->err);
            if (job->out_fd < 0)
                job->status = job->err.status != SQ_OK ? job->err.status : SQ_ERR_IO;
        }
    } else if (job->status == SQ_OK && atomic_load(&job->cancel) == SQD_CANCEL_NONE && job->plan) {
        job->status = sq_plan_write(job->plan, job->out_format, ctx->cfg.max_response_size,
                                    &job->out, &job->out_len, &job->err);
        /* "dequantized" is the input's own container: name it for the Content-Type. */
        if (job->status == SQ_OK && job->out_format == SQ_FORMAT_DEQUANTIZED)
            job->out_format = sq_format_detect(job->out, job->out_len);
        if (job->status == SQ_ERR_LIMIT) {
            char msg[SQ_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof(msg), "the result exceeds max-response-size (%" PRIu64 " bytes)",
                     ctx->cfg.max_response_size);
            snprintf(job->err.message, sizeof(job->err.message), "%s", msg);
        }
    }
    job->t.written = sqd_now_ns();
    if (!job->async)
        return; /* the input is freed after the answer has been handed over (finish) */
    enum sqd_job_state st = final_state(job);
    if (st == SQD_DONE) {
        /* The report first: a job whose result exists always has its report. */
        char *report = NULL;
        enum sq_status s = sq_plan_report_json(job->plan, false, &report, &job->err);
        if (s == SQ_OK)
            s = sqd_spool_write_report(job->dir, report, &job->err);
        free(report);
        if (s == SQ_OK)
            s = job->stream.active
                    ? sqd_stream_save(&job->stream, job->dir, &job->err)
                    : sqd_spool_write_result(job->dir, job->out, job->out_len, &job->err);
        if (s != SQ_OK) {
            job->status = s;
            st = SQD_FAILED;
        }
    }
    /* The plan, the model and the input are not needed any more: free them here, off the loop. */
    sq_plan_free(job->plan);
    job->plan = NULL;
    sq_model_free(&job->model);
    struct sqd_jobrec snapshot;
    uv_mutex_lock(&ctx->reg.lock);
    if (st == SQD_DONE)
        job->rec->result_bytes = job->out_len;
    fill_record(job->rec, job, true);
    snapshot = *job->rec;
    snapshot.error = job->rec->error ? json_deep_copy(job->rec->error) : NULL;
    uv_mutex_unlock(&ctx->reg.lock);
    free(job->out);
    job->out = NULL;
    sqd_stream_free(&job->stream);
    sqd_body_free(&job->body);
    /*
     * Only a job that will run again needs its input: a queued one (shutdown),
     * and one that ran out of disk space, which runs again at the next start.
     */
    if (st != SQD_QUEUED && job->status != SQ_ERR_NOSPACE)
        sqd_spool_drop_input(job->dir);
    struct sq_error err;
    sq_error_init(&err);
    if (sqd_spool_write_state(job->dir, &snapshot, &err) != SQ_OK)
        sqd_log(ctx, "job %s: %s", job->id, err.message);
    json_decref(snapshot.error);
}

/* Pool thread: free the plan, the model and the input of a finished job. */
static void release_work(uv_work_t *w)
{
    struct sqd_job *job = w->data;
    sq_plan_free(job->plan);
    job->plan = NULL;
    sq_model_free(&job->model);
    sqd_body_free(&job->body);
}

static void release_done(uv_work_t *w, int status)
{
    (void)status;
    sqd_job_free(w->data);
}

/* Loop thread: the job is over. Answer it, count it, free it. */
static void finish(struct sqd_job *job)
{
    struct sqd_ctx *ctx = job->ctx;
    unlink_active(ctx, job);
    enum sqd_job_state st = final_state(job);
    if (st != SQD_QUEUED) /* not an end: a job stopped by shutdown runs again at the next start */
        atomic_fetch_add(&ctx->metrics.jobs_finished[st], 1);
    if (job->async) {
        uv_mutex_lock(&ctx->reg.lock);
        struct sqd_jobrec *rec = job->rec;
        bool remove_dir = false;
        rec->live = NULL;
        if (st == SQD_QUEUED) {
            sqd_reg_remove(&ctx->reg, rec); /* shutdown: it stays queued on disk */
        } else if (rec->forget) {
            sqd_reg_remove(&ctx->reg, rec); /* DELETE arrived while the job was ending */
            remove_dir = true;
        }
        job->rec = NULL;
        uv_mutex_unlock(&ctx->reg.lock);
        if (remove_dir)
            sqd_spool_remove(job->dir);
    } else if (!job->feed || sqd_feed_state(job->feed) != SQD_FEED_GONE) {
        /* (GONE: the request was answered or closed while its body arrived; nothing to send) */
        struct sqd_request *req = job->req;
        if (st == SQD_DONE && job->out_fd >= 0) {
            req->ans_status = 200;
            req->ans_fd = job->out_fd; /* the streamed result, answered from its file */
            job->out_fd = -1;
            req->ans_off = job->out_off;
            req->ans_size = job->out_len;
            req->ans_type = sqd_format_mime(job->out_format);
            snprintf(req->ans_layers, sizeof(req->ans_layers), "%zu", job->nlayers);
        } else if (st == SQD_DONE) {
            req->ans_status = 200;
            req->ans_body = job->out;
            req->ans_len = job->out_len;
            req->ans_type = sqd_format_mime(job->out_format);
            job->out = NULL;
            snprintf(req->ans_layers, sizeof(req->ans_layers), "%zu", job->nlayers);
        } else {
            json_t *err = job_error_json(job);
            req->ans_status = job_http_status(job);
            req->ans_type = "application/json";
            req->ans_body = (uint8_t *)sqd_json_text(err ? json_pack("{s:o}", "error", err) : NULL,
                                                     JSON_COMPACT, &req->ans_len);
        }
        snprintf(req->ans_timing, sizeof(req->ans_timing),
                 "upload;dur=%.3f, queue;dur=%.3f, parse;dur=%.3f, quantize;dur=%.3f, "
                 "write;dur=%.3f",
                 /* a fed job: the body's end; its queue, parse and quantize overlap the upload */
                 ms_between(job->t.received, job->feed ? job->feed->t_end : job->t.admitted),
                 ms_between(job->t.admitted, job->t.started),
                 ms_between(job->t.started, job->t.parsed),
                 ms_between(job->t.parsed, job->t.quantized),
                 ms_between(job->t.quantized, job->t.written));
        job->req = NULL;
        /* Hand the answer over; from here on the request belongs to the MHD thread. */
        req->phase = SQD_PH_WAIT;
        MHD_resume_connection(req->conn);
    }
    if (job->running) {
        ctx->running--;
        atomic_fetch_sub(&ctx->running_gauge, 1);
    }
    sqd_jobs_release(ctx);
    feed_idle_set(job, false);
    if (job->plan || job->body.len) {
        /* Unmapping and dropping a large input takes milliseconds: do it on
         * the pool, after the answer is on its way. */
        uv_queue_work(ctx->loop, &job->work, release_work, release_done);
    } else {
        sqd_job_free(job);
    }
    schedule(ctx);
    poke_fed(ctx); /* a slot is free: a fed job whose bytes are in may go on */
}

static void write_done(uv_work_t *w, int status)
{
    struct sqd_job *job = w->data;
    (void)status;
    finish(job);
}

/* Count what a successful job quantized (any thread: the metrics are atomics). */
static void count_quantized(struct sqd_job *job)
{
    uint64_t weights = 0;
    for (size_t l = 0; l < job->nlayers; l++) {
        struct sq_layer_info info;
        sq_plan_layer_info(job->plan, l, &info);
        weights += (uint64_t)info.layer.channels * info.layer.kernels * info.layer.ksize;
    }
    sqd_metrics_quantized(&job->ctx->metrics, (double)(job->t.quantized - job->t.started) / 1e9,
                          job->nlayers, weights);
}

/* Loop thread: what the end of a fed job's body says (false: it has not ended yet). */
static bool feed_ended(struct sqd_job *job)
{
    int st = sqd_feed_state(job->feed);
    if (st == SQD_FEED_OPEN || st == SQD_FEED_ENDING)
        return false;
    if (st != SQD_FEED_GONE && job->client_fd < 0)
        job->client_fd = job->feed->client_fd; /* suspended now: polled for a disconnect */
    return true;
}

static void start_write(struct sqd_job *job)
{
    if (job->t.quantized == 0)
        job->t.quantized = sqd_now_ns();
    job->feeding = false;
    feed_idle_set(job, false);
    if (job->feed) {
        /* The answer waits for the end of the body; a body of another length than its header
         * says is answered as if it had been parsed whole: with the parser's error. */
        /* At shutdown, a job whose body goes on lets go of its request (answered 503 by the
         * MHD thread at the end of the body), so that the drain does not wait for the body. */
        if (!feed_ended(job) &&
            !(atomic_load(&job->cancel) == SQD_CANCEL_SHUTDOWN && sqd_feed_release(job->feed))) {
            job->feed_parked = true;
            feed_idle_set(job, true); /* nothing in flight until the body ends: no slot */
            schedule(job->ctx);
            return;
        }
        job->feed_parked = false;
        int cancel = SQD_CANCEL_NONE;
        if (sqd_feed_state(job->feed) == SQD_FEED_GONE) /* its request is answered or gone */
            atomic_compare_exchange_strong(&job->cancel, &cancel, SQD_CANCEL_CLIENT);
        if (sqd_feed_state(job->feed) == SQD_FEED_SHORT) {
            job->status = job->feed->err.status;
            job->err = job->feed->err;
        }
    }
    if (job->status == SQ_OK && atomic_load(&job->cancel) == SQD_CANCEL_NONE)
        count_quantized(job);
    job->work.data = job;
    uv_queue_work(job->ctx->loop, &job->work, write_work, write_done);
}

/* ------------------------------------------------------------ items */

/* Pool thread: one work item, unless the job was cancelled meanwhile. */
static enum sq_status run_item(struct sqd_job *job, size_t index, struct sq_error *err)
{
    if (job->ctx->test_item_delay_ms)
        usleep(job->ctx->test_item_delay_ms * 1000u);
    if (atomic_load(&job->cancel) != SQD_CANCEL_NONE)
        return SQ_ERR_CANCELLED;
    sq_error_init(err);
    return sq_plan_run(job->plan, index, err);
}

static void item_work(uv_work_t *w)
{
    struct sqd_item *it = w->data;
    struct sqd_job *job = it->job;
    it->status = run_item(job, it->index, &it->err);
}

static void feed_items(struct sqd_job *job);

/* ------------------------------------------------------------ streamed output */

/* SQ_ERR_LIMIT for a result larger than max-response-size, in the words of write_work. */
static enum sq_status fail_limit(struct sqd_job *job, uint64_t limit)
{
    job->err.status = SQ_ERR_LIMIT;
    snprintf(job->err.message, sizeof(job->err.message),
             "the result exceeds max-response-size (%" PRIu64 " bytes)", limit);
    return SQ_ERR_LIMIT;
}

/* Layers in flight per job: at least MIN, more while their codes fit the budget, at most MAX. */
#define SQD_STREAM_MIN_LAYERS 2
#define SQD_STREAM_MAX_LAYERS 64
#define SQD_STREAM_CODES_BUDGET ((uint64_t)32 << 20)

static uint64_t layer_codes(const struct sqd_job *job, size_t l)
{
    struct sq_layer_info info;
    sq_plan_layer_info(job->plan, l, &info);
    return (uint64_t)info.layer.channels * info.layer.kernels * info.layer.ksize;
}

/* Loop thread: make sure the layer of `item` has begun; false if the bound says wait. */
static bool stream_begin(struct sqd_job *job, size_t item)
{
    struct sqd_stream *s = &job->stream;
    size_t l = sq_plan_item_layer(job->plan, item);
    if (l < s->next_begin)
        return true;
    size_t inflight = l - s->next_write;
    uint64_t codes = layer_codes(job, l);
    if (inflight >= SQD_STREAM_MAX_LAYERS ||
        (inflight >= SQD_STREAM_MIN_LAYERS && s->held + codes > SQD_STREAM_CODES_BUDGET))
        return false;
    enum sq_status st = sq_plan_layer_begin(job->plan, l, &job->err);
    if (st != SQ_OK) {
        job->status = st;
        return false;
    }
    s->held += codes;
    s->next_begin = l + 1;
    return true;
}

/* Pool thread: write the finished layers next_write .. write_to - 1. */
static void stream_work(uv_work_t *w)
{
    struct sqd_job *job = w->data;
    struct sqd_stream *s = &job->stream;
    sq_error_init(&s->write_err);
    s->write_status =
        sqd_stream_layers(s, job->plan, &job->model, s->next_write, s->write_to, &s->write_err);
}

static void stream_maybe_write(struct sqd_job *job);

static void stream_done(uv_work_t *w, int status)
{
    struct sqd_job *job = w->data;
    struct sqd_stream *s = &job->stream;
    (void)status;
    s->writing = false;
    if (s->write_status == SQ_OK) {
        for (size_t l = s->next_write; l < s->write_to; l++)
            s->held -= layer_codes(job, l);
        s->next_write = s->write_to;
    } else if (job->status == SQ_OK) {
        job->status = s->write_status;
        job->err = s->write_err;
    }
    stream_maybe_write(job);
    feed_items(job);
}

/* A fed job whose body ended short, or whose request is gone: no more work. */
static bool feed_failed(struct sqd_job *job)
{
    int st = job->feed ? sqd_feed_state(job->feed) : SQD_FEED_OPEN;
    return st == SQD_FEED_SHORT || st == SQD_FEED_GONE;
}

/* Writing layer l also writes the pass-through tensors before it: all from the input. */
static bool feed_tensors_ready(struct sqd_job *job, size_t l)
{
    if (!job->feed)
        return true;
    struct sq_layer_info info;
    sq_plan_layer_info(job->plan, l, &info);
    ptrdiff_t ti = sq_model_find(&job->model, info.name);
    return sqd_feed_has_tensors(job->feed, &job->model, ti < 0 ? SIZE_MAX : (size_t)ti);
}

/* An item runs once the input bytes it reads are in the spool file. */
static bool feed_item_ready(struct sqd_job *job, size_t item)
{
    if (!job->feed)
        return true;
    const uint8_t *data;
    size_t len;
    sq_plan_item_input(job->plan, item, &data, &len);
    return sqd_feed_has(job->feed, data, len);
}

/* Loop thread: hand the finished layers at the front of the window to a stream task. */
static void stream_maybe_write(struct sqd_job *job)
{
    struct sqd_stream *s = &job->stream;
    if (!s->active || s->writing || job->status != SQ_OK ||
        atomic_load(&job->cancel) != SQD_CANCEL_NONE || feed_failed(job))
        return;
    size_t to = s->next_write;
    while (to < s->next_begin && job->layer_left[to] == 0 && feed_tensors_ready(job, to))
        to++;
    if (to == s->next_write)
        return;
    s->writing = true;
    s->write_to = to;
    s->work.data = job;
    uv_queue_work(job->ctx->loop, &s->work, stream_work, stream_done);
}

static void item_done(uv_work_t *w, int status)
{
    struct sqd_item *it = w->data;
    struct sqd_job *job = it->job;
    struct sqd_ctx *ctx = job->ctx;
    (void)status;
    job->items_running--;
    if (it->status == SQ_OK) {
        job->items_done++;
        size_t l = sq_plan_item_layer(job->plan, it->index);
        if (l < job->nlayers && --job->layer_left[l] == 0)
            job->layers_done++;
    } else if (it->status != SQ_ERR_CANCELLED && job->status == SQ_OK) {
        job->status = it->status;
        job->err = it->err;
    }
    if (job->async) {
        uv_mutex_lock(&ctx->reg.lock);
        fill_record(job->rec, job, false);
        uv_mutex_unlock(&ctx->reg.lock);
    }
    stream_maybe_write(job);
    feed_items(job);
}

/* Keep up to `window` items of this job in the pool; move on when all are back. */
static void feed_items(struct sqd_job *job)
{
    struct sqd_ctx *ctx = job->ctx;
    size_t window = 2 * (size_t)ctx->pool_size;
    bool stop =
        job->status != SQ_OK || atomic_load(&job->cancel) != SQD_CANCEL_NONE || feed_failed(job);
    while (!stop && job->items_running < window && job->next_item < job->nitems) {
        if (!feed_item_ready(job, job->next_item))
            break; /* its input has not arrived yet: the body's progress wakes the loop */
        if (job->feed_idle) {
            if (ctx->running - ctx->fed_idle >= ctx->max_active)
                break; /* no slot: the end of another job wakes it */
            feed_idle_set(job, false);
        }
        if (job->stream.active && !stream_begin(job, job->next_item))
            break; /* the layers in flight are at their bound (or the begin failed) */
        struct sqd_item *it = &job->items[job->next_item];
        it->job = job;
        it->index = job->next_item++;
        it->work.data = it;
        job->items_running++;
        uv_queue_work(ctx->loop, &it->work, item_work, item_done);
    }
    stop = stop || job->status != SQ_OK;
    if (job->feed && !stop && job->items_running == 0 && !job->stream.writing &&
        job->next_item < job->nitems && !job->feed_idle) {
        feed_idle_set(job, true);
        schedule(ctx); /* its slot is free while it waits */
    }
    if (job->items_running == 0 && !job->stream.writing &&
        (stop || (job->next_item == job->nitems &&
                  (!job->stream.active || job->stream.next_write == job->nlayers))))
        start_write(job);
}

/* ------------------------------------------------------------ parse */

static void parse_work(uv_work_t *w)
{
    struct sqd_job *job = w->data;
    struct sqd_ctx *ctx = job->ctx;
    if (job->async) {
        struct sqd_jobrec snapshot;
        uv_mutex_lock(&ctx->reg.lock);
        snapshot = *job->rec;
        snapshot.error = NULL;
        uv_mutex_unlock(&ctx->reg.lock);
        struct sq_error err;
        sq_error_init(&err);
        if (sqd_spool_write_state(job->dir, &snapshot, &err) != SQ_OK)
            sqd_log(ctx, "job %s: %s", job->id, err.message);
    }
    if (atomic_load(&job->cancel) != SQD_CANCEL_NONE)
        return;
    const uint8_t *data;
    size_t len;
    enum sq_status st = sqd_body_map(&job->body, &data, &len, &job->err);
    if (st == SQ_OK)
        st = sqd_spec_options(&job->spec, &job->opt, &job->err);
    if (st == SQ_OK)
        st = sqd_spec_parse(&job->spec, &ctx->limits, data, len, &job->model, &job->err);
    /* safetensors is streamed to a file with bounded memory; npy and json are assembled in
     * memory */
    bool stream = st == SQ_OK && job->opt.packing == SQ_PACKING_NONE &&
                  (job->opt.output == SQ_FORMAT_SAFETENSORS ||
                   (job->opt.output == SQ_FORMAT_AUTO && !sq_model_is_onnx(&job->model, NULL)));
    if (st == SQ_OK)
        st = (stream ? sq_plan_new_streaming : sq_plan_new)(&job->model, &job->opt, &job->plan,
                                                            &job->err);
    if (st == SQ_OK && stream && sq_plan_item_count(job->plan) == 1)
        st = sq_plan_layer_begin(job->plan, 0, &job->err); /* one item, written in memory */
    else if (st == SQ_OK && stream && job->opt.scale_dtype == SQ_DTYPE_F32 &&
             sq_plan_data_bytes(job->plan) > ctx->cfg.max_response_size)
        st = fail_limit(job, ctx->cfg.max_response_size); /* known before any work */
    else if (st == SQ_OK && stream)
        st = sqd_stream_open(&job->stream, ctx->tmp_dir, job->plan, &job->model,
                             job->body.fd >= 0 ? data : NULL, len, &job->err);
    if (st == SQ_OK && job->stream.active && !job->async)
        job->stream.input_fd = job->body.fd; /* an unnamed file nothing reads again */
    job->out_format =
        st == SQ_OK ? sq_plan_output_format(job->plan, job->opt.output) : job->opt.output;
    job->status = st;
    job->t.parsed = sqd_now_ns();
    /*
     * A job of one work item (one small tensor) runs and is written in this
     * same task: one trip through the pool instead of three. Small-request
     * throughput depends on it; a larger job is cut into items that share
     * the pool with other jobs and report progress.
     */
    if (st == SQ_OK && sq_plan_item_count(job->plan) == 1 && !job->feed) {
        job->nitems = 1;
        job->nlayers = sq_plan_layer_count(job->plan);
        job->status = run_item(job, 0, &job->err);
        if (job->status == SQ_ERR_CANCELLED)
            job->status = SQ_OK; /* the cancel flag tells the outcome */
        job->t.quantized = sqd_now_ns();
        if (job->status == SQ_OK && atomic_load(&job->cancel) == SQD_CANCEL_NONE) {
            job->items_done = 1;
            job->layers_done = job->nlayers;
            count_quantized(job);
        }
        job->inline_done = true;
        write_work(w);
    }
}

static void parse_done(uv_work_t *w, int status)
{
    struct sqd_job *job = w->data;
    struct sqd_ctx *ctx = job->ctx;
    (void)status;
    if (job->inline_done) {
        finish(job);
        return;
    }
    if (job->status != SQ_OK || atomic_load(&job->cancel) != SQD_CANCEL_NONE || !job->plan) {
        start_write(job);
        return;
    }
    job->nitems = sq_plan_item_count(job->plan);
    job->nlayers = sq_plan_layer_count(job->plan);
    job->items = calloc(job->nitems ? job->nitems : 1, sizeof(*job->items));
    job->layer_left = calloc(job->nlayers ? job->nlayers : 1, sizeof(*job->layer_left));
    if (!job->items || !job->layer_left) {
        job->status = SQ_ERR_NOMEM;
        snprintf(job->err.message, sizeof(job->err.message), "out of memory for the work items");
        start_write(job);
        return;
    }
    for (size_t l = 0; l < job->nlayers; l++) {
        struct sq_layer_info info;
        sq_plan_layer_info(job->plan, l, &info);
        job->layer_left[l] = info.items;
        if (info.items == 0)
            job->layers_done++;
    }
    if (job->async) {
        uv_mutex_lock(&ctx->reg.lock);
        fill_record(job->rec, job, false);
        uv_mutex_unlock(&ctx->reg.lock);
    }
    if (job->feed)
        job->feed->base = job->body.map;
    job->feeding = true;
    feed_items(job);
}

/* Loop thread: the bodies of fed jobs moved on (or ended): run what their bytes allow. */
static void poke_fed(struct sqd_ctx *ctx)
{
    for (struct sqd_job *j = ctx->active; j; j = j->next) {
        if (!j->feed)
            continue;
        if (j->feed_parked) {
            int st = sqd_feed_state(j->feed);
            if ((st != SQD_FEED_OPEN && st != SQD_FEED_ENDING) ||
                atomic_load(&j->cancel) == SQD_CANCEL_SHUTDOWN)
                start_write(j);
        } else if (j->feeding) {
            if (j->client_fd < 0)
                feed_ended(j);
            stream_maybe_write(j);
            feed_items(j);
        }
    }
}

/* ------------------------------------------------------------ scheduling */

static void start(struct sqd_ctx *ctx, struct sqd_job *job)
{
    job->running = true;
    ctx->running++;
    atomic_fetch_add(&ctx->running_gauge, 1);
    job->next = ctx->active;
    ctx->active = job;
    job->t.started = sqd_now_ns();
    if (job->async) {
        uv_mutex_lock(&ctx->reg.lock);
        if (job->rec->state == SQD_QUEUED)
            job->rec->state = SQD_RUNNING;
        fill_record(job->rec, job, false);
        uv_mutex_unlock(&ctx->reg.lock);
    }
    job->work.data = job;
    uv_queue_work(ctx->loop, &job->work, parse_work, parse_done);
}

static void schedule(struct sqd_ctx *ctx)
{
    while (ctx->wait_head && ctx->running - ctx->fed_idle < ctx->max_active) {
        struct sqd_job *job = ctx->wait_head;
        ctx->wait_head = job->next;
        if (!ctx->wait_head)
            ctx->wait_tail = NULL;
        ctx->waiting--;
        atomic_fetch_sub(&ctx->queued_gauge, 1);
        job->next = NULL;
        start(ctx, job);
    }
}

/* Pool thread: make a new async job durable before its 202. */
static void commit_work(uv_work_t *w)
{
    struct sqd_job *job = w->data;
    sq_error_init(&job->err);
    job->status = sqd_spool_commit(job->ctx, job->dir, &job->body, &job->spec, job->rec, &job->err);
}

/* Loop thread: the answer of POST /v1/jobs, handed to its suspended connection. */
static void commit_done(uv_work_t *w, int status)
{
    struct sqd_job *job = w->data;
    struct sqd_ctx *ctx = job->ctx;
    struct sqd_request *req = job->req;
    (void)status;
    job->req = NULL;
    job->committing = false;
    if (job->status != SQ_OK) {
        enum sq_status st = job->status;
        sqd_log(ctx, "job %s: %s", job->id, job->err.message);
        if (!job->err.message[0])
            snprintf(job->err.message, sizeof(job->err.message), "out of memory");
        job->err.status = st;
        json_t *err =
            sqd_error_json(sqd_http_status(st), sq_status_name(st), job->err.message, &job->err);
        req->ans_status = sqd_http_status(st);
        req->ans_type = "application/json";
        req->ans_body = (uint8_t *)sqd_json_text(err ? json_pack("{s:o}", "error", err) : NULL,
                                                 JSON_COMPACT, &req->ans_len);
        uv_mutex_lock(&ctx->reg.lock);
        sqd_reg_remove(&ctx->reg, job->rec);
        uv_mutex_unlock(&ctx->reg.lock);
        job->rec = NULL;
        sqd_spool_remove(job->dir);
        sqd_jobs_release(ctx);
        sqd_job_free(job);
    } else {
        uv_mutex_lock(&ctx->reg.lock);
        json_t *doc = sqd_jobrec_json(job->rec);
        uv_mutex_unlock(&ctx->reg.lock);
        req->ans_status = 202;
        req->ans_type = "application/json";
        req->ans_body = (uint8_t *)sqd_json_text(doc, SQD_JSON_FLAGS, &req->ans_len);
        snprintf(req->ans_location, sizeof(req->ans_location), "/v1/jobs/%s", job->id);
        /* Durable: from here on it is a queued job like any other. */
        wait_push(ctx, job);
        atomic_fetch_add(&ctx->queued_gauge, 1);
    }
    /* Hand the answer over; from here on the request belongs to the MHD thread. */
    req->phase = SQD_PH_WAIT;
    MHD_resume_connection(req->conn);
    schedule(ctx);
}

static void on_inbox(uv_async_t *h)
{
    struct sqd_ctx *ctx = h->data;
    uv_mutex_lock(&ctx->inbox_lock);
    struct sqd_job *list = ctx->inbox_head;
    ctx->inbox_head = ctx->inbox_tail = NULL;
    uv_mutex_unlock(&ctx->inbox_lock);
    while (list) {
        struct sqd_job *job = list;
        list = job->next;
        job->next = NULL;
        if (job->committing) {
            job->work.data = job;
            uv_queue_work(ctx->loop, &job->work, commit_work, commit_done);
            continue;
        }
        wait_push(ctx, job);
    }
    schedule(ctx);
    poke_fed(ctx);
}

/* ------------------------------------------------------------ disconnects, drain */

/* Cancel sync jobs whose client has gone (POLLRDHUP/POLLHUP on the suspended socket). */
static void poll_clients(struct sqd_ctx *ctx)
{
    struct pollfd fds[64];
    struct sqd_job *jobs[64];
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (struct sqd_job *j = pass ? ctx->wait_head : ctx->active; j; j = j->next) {
            if (j->async || j->client_fd < 0 || atomic_load(&j->cancel) != SQD_CANCEL_NONE)
                continue;
            fds[n].fd = j->client_fd;
            fds[n].events = POLLRDHUP;
            fds[n].revents = 0;
            jobs[n++] = j;
            if (n == 64) {
                if (poll(fds, n, 0) > 0) {
                    for (size_t i = 0; i < n; i++)
                        if (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
                            atomic_store(&jobs[i]->cancel, SQD_CANCEL_CLIENT);
                }
                n = 0;
            }
        }
    }
    if (n && poll(fds, n, 0) > 0) {
        for (size_t i = 0; i < n; i++)
            if (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
                atomic_store(&jobs[i]->cancel, SQD_CANCEL_CLIENT);
    }
}

/* Loop thread: what is left of the queue at the deadline is cancelled. */
static void cancel_all(struct sqd_ctx *ctx)
{
    for (struct sqd_job *j = ctx->active; j; j = j->next)
        atomic_store(&j->cancel, SQD_CANCEL_SHUTDOWN);
    for (struct sqd_job *j = ctx->wait_head; j; j = j->next)
        atomic_store(&j->cancel, SQD_CANCEL_SHUTDOWN);
    /* Waiting jobs start and end at once; the running ones stop after their current item. */
    size_t saved = ctx->max_active;
    ctx->max_active = (unsigned)-1;
    schedule(ctx);
    ctx->max_active = (unsigned)saved;
    poke_fed(ctx); /* fed jobs waiting for their body let go of it */
}

void sqd_jobs_tick(struct sqd_ctx *ctx, uint64_t now)
{
    poll_clients(ctx);
    if (!ctx->jobs_draining)
        return;
    if (now >= ctx->jobs_deadline)
        cancel_all(ctx);
    if (ctx->running == 0 && ctx->waiting == 0)
        ctx->jobs_drained(ctx->jobs_drained_arg);
}

void sqd_jobs_drain(struct sqd_ctx *ctx, uint64_t deadline, sqd_jobs_drained_fn drained, void *arg)
{
    ctx->jobs_deadline = deadline;
    ctx->jobs_drained = drained;
    ctx->jobs_drained_arg = arg;
    if (ctx->jobs_draining)
        return;
    ctx->jobs_draining = true;
    /* Async jobs are on disk: the waiting ones stay queued there, the running ones stop. */
    struct sqd_job **p = &ctx->wait_head, *prev = NULL;
    while (*p) {
        struct sqd_job *j = *p;
        if (j->async) {
            *p = j->next;
            ctx->waiting--;
            atomic_fetch_sub(&ctx->queued_gauge, 1);
            uv_mutex_lock(&ctx->reg.lock);
            sqd_reg_remove(&ctx->reg, j->rec);
            uv_mutex_unlock(&ctx->reg.lock);
            sqd_jobs_release(ctx);
            sqd_job_free(j);
        } else {
            prev = j;
            p = &j->next;
        }
    }
    ctx->wait_tail = prev;
    for (struct sqd_job *j = ctx->active; j; j = j->next) {
        if (j->async)
            atomic_store(&j->cancel, SQD_CANCEL_SHUTDOWN);
    }
}

void sqd_jobs_resume(struct sqd_ctx *ctx, struct sqd_job *job)
{
    atomic_fetch_add(&ctx->admitted, 1); /* resumed jobs are admitted whatever the queue */
    sqd_jobs_submit(ctx, job);
}

bool sqd_jobs_init(struct sqd_ctx *ctx)
{
    ctx->inbox_async.data = ctx;
    return uv_async_init(ctx->loop, &ctx->inbox_async, on_inbox) == 0;
}

void sqd_jobs_close(struct sqd_ctx *ctx)
{
    if (!uv_is_closing((uv_handle_t *)&ctx->inbox_async))
        uv_close((uv_handle_t *)&ctx->inbox_async, NULL);
}

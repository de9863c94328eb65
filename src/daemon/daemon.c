/*
 * Bringing the daemon up and down: the context, the loop, the listener.
 * This is the composition root: it starts the parts and wires them, and
 * the order of start-up and shutdown lives here, not in the parts. At
 * start the spool returns the jobs it found and they are handed to the
 * queue here; on SIGTERM the listener is quiesced here (after drain-delay),
 * then the queue is drained and says so through a callback. main.c only
 * calls sqd_main; everything here is in libsquantd so that tests can link
 * it.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth.h"
#include "cfg.h"
#include "conns.h"
#include "ctx.h"
#include "daemon.h"
#include "http.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "registry.h"
#include "routes.h"
#include "spool.h"

static bool ctx_init(struct sqd_ctx *ctx, char *msg, size_t msgsize)
{
    size_t nroutes;
    const struct sqd_route *routes = sqd_routes(&nroutes);
    ctx->t_start = sqd_now_ns();
    if (getrandom(&ctx->reqid_prefix, sizeof(ctx->reqid_prefix), GRND_NONBLOCK) !=
        sizeof(ctx->reqid_prefix))
        ctx->reqid_prefix = (uint32_t)ctx->t_start ^ (uint32_t)getpid();
    sq_limits_init(&ctx->limits);
    ctx->limits.max_tensors = (size_t)ctx->cfg.max_tensors;
    ctx->limits.max_rank = (unsigned)ctx->cfg.max_rank;
    ctx->limits.max_dim = ctx->cfg.max_dim;
    ctx->limits.max_tensor_elements = ctx->cfg.max_tensor_elements;
    ctx->limits.max_total_elements = ctx->cfg.max_total_elements;
    ctx->limits.max_header_bytes = (size_t)ctx->cfg.max_header_bytes;
    const char *delay = getenv("SQUANTD_TEST_ITEM_DELAY_MS");
    if (delay && *delay) {
        ctx->test_item_delay_ms = (unsigned)strtoul(delay, NULL, 10);
        if (ctx->test_item_delay_ms > 10000)
            ctx->test_item_delay_ms = 10000;
    }
    ctx->pool_size = sqd_config_threads(&ctx->cfg);
    ctx->max_active = sqd_config_active_jobs(&ctx->cfg);
    if (uv_mutex_init(&ctx->inbox_lock) || !sqd_reg_init(&ctx->reg) ||
        uv_mutex_init(&ctx->log.lock) || !sqd_conns_init(&ctx->conns, &ctx->cfg, &ctx->log) ||
        !sqd_auth_init(&ctx->auth) || !sqd_metrics_init(&ctx->metrics, routes, nroutes)) {
        snprintf(msg, msgsize, "cannot initialize: out of memory");
        return false;
    }
    return sqd_auth_load(&ctx->auth, ctx->cfg.auth_token_file, msg, msgsize);
}

static void ctx_free(struct sqd_ctx *ctx)
{
    /* Jobs still listed here were never started (shutdown); their state is on disk. */
    while (ctx->wait_head) {
        struct sqd_job *j = ctx->wait_head;
        ctx->wait_head = j->next;
        sqd_job_free(j);
    }
    uv_mutex_lock(&ctx->inbox_lock);
    while (ctx->inbox_head) {
        struct sqd_job *j = ctx->inbox_head;
        ctx->inbox_head = j->next;
        sqd_job_free(j);
    }
    uv_mutex_unlock(&ctx->inbox_lock);
    sqd_reg_free(&ctx->reg);
    sqd_metrics_free(&ctx->metrics);
    sqd_auth_free(&ctx->auth);
    free(ctx->tmp_dir);
    free(ctx->jobs_dir);
    if (ctx->spool_lock >= 0)
        close(ctx->spool_lock);
    sqd_config_free(&ctx->cfg);
}

/* ------------------------------------------------------------ shutdown */

/* Close the loop's handles: uv_run returns once the work in flight is back. */
static void close_all(struct sqd_ctx *ctx)
{
    if (ctx->stopping)
        return;
    ctx->stopping = true;
    uv_close((uv_handle_t *)&ctx->tick, NULL);
    uv_close((uv_handle_t *)&ctx->sig_term, NULL);
    uv_close((uv_handle_t *)&ctx->sig_int, NULL);
    uv_close((uv_handle_t *)&ctx->sig_hup, NULL);
    sqd_jobs_close(ctx);
}

/*
 * The queue is empty (sqd_jobs_tick, while draining): stop once no request
 * is in flight. In-flight requests get a little longer than the jobs:
 * their answers are being sent.
 */
static void on_jobs_drained(void *arg)
{
    struct sqd_ctx *ctx = arg;
    if (atomic_load(&ctx->metrics.in_flight) == 0 ||
        sqd_now_ns() >= ctx->drain_deadline + 2000000000u)
        close_all(ctx);
}

/* The end of drain-delay: stop accepting, then drain the queue (sync jobs finish, async park). */
static void quiesce(struct sqd_ctx *ctx)
{
    ctx->quiesced = true;
    ctx->drain_deadline = sqd_now_ns() + ctx->cfg.drain_timeout * 1000000000u;
    sqd_log(ctx, "draining: no new connections; running requests get %" PRIu64 " s",
            ctx->cfg.drain_timeout);
    sqd_http_quiesce(ctx);
    sqd_jobs_drain(ctx, ctx->drain_deadline, on_jobs_drained, ctx);
}

/* SIGTERM/SIGINT (loop thread). */
static void shut_down(struct sqd_ctx *ctx)
{
    if (atomic_load(&ctx->draining)) {
        /* A second signal: stop now. */
        if (!ctx->quiesced)
            quiesce(ctx);
        ctx->drain_deadline = 0;
        sqd_jobs_drain(ctx, 0, on_jobs_drained, ctx);
        return;
    }
    atomic_store(&ctx->draining, true);
    sqd_notify("STOPPING=1");
    if (ctx->cfg.drain_delay == 0) {
        quiesce(ctx);
        return;
    }
    /*
     * drain-delay: keep the listener open and answer /readyz (and new work)
     * with 503, so that a load balancer's health check sees the daemon leave
     * instead of a refused connection.
     */
    ctx->quiesce_at = sqd_now_ns() + ctx->cfg.drain_delay * 1000000000u;
    sqd_log(ctx, "draining: /readyz answers 503; the listener closes in %" PRIu64 " s",
            ctx->cfg.drain_delay);
}

/* Every 100 ms: slow clients, gone clients, expiry, drain progress. */
static void on_tick(uv_timer_t *t)
{
    struct sqd_ctx *ctx = t->data;
    uint64_t now = sqd_now_ns();
    sqd_conns_sweep(&ctx->conns);
    if (now - ctx->last_expiry > 1000000000u) {
        ctx->last_expiry = now;
        sqd_spool_expire(ctx);
    }
    if (atomic_load(&ctx->draining) && !ctx->quiesced && now >= ctx->quiesce_at)
        quiesce(ctx);
    sqd_jobs_tick(ctx, now);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct sqd_ctx *ctx = h->data;
    if (signum == SIGHUP) {
        char msg[512];
        if (sqd_auth_load(&ctx->auth, ctx->cfg.auth_token_file, msg, sizeof(msg)))
            sqd_log(ctx, "SIGHUP: auth tokens reloaded");
        else
            sqd_log(ctx, "SIGHUP: %s (the old tokens stay in force)", msg);
        return;
    }
    sqd_log(ctx, "signal %d: shutting down", signum);
    shut_down(ctx);
}

/* The loop's own handles: the tick and the signals. */
static bool loop_init(struct sqd_ctx *ctx)
{
    ctx->tick.data = ctx;
    ctx->sig_term.data = ctx->sig_int.data = ctx->sig_hup.data = ctx;
    return uv_timer_init(ctx->loop, &ctx->tick) == 0 &&
           uv_timer_start(&ctx->tick, on_tick, 100, 100) == 0 &&
           uv_signal_init(ctx->loop, &ctx->sig_term) == 0 &&
           uv_signal_init(ctx->loop, &ctx->sig_int) == 0 &&
           uv_signal_init(ctx->loop, &ctx->sig_hup) == 0 &&
           uv_signal_start(&ctx->sig_term, on_signal, SIGTERM) == 0 &&
           uv_signal_start(&ctx->sig_int, on_signal, SIGINT) == 0 &&
           uv_signal_start(&ctx->sig_hup, on_signal, SIGHUP) == 0;
}

/* ------------------------------------------------------------ start-up */

/* Queue the jobs the spool found (queued or running at the last stop) again. */
static void resume_spooled(struct sqd_ctx *ctx, struct sqd_spooled *found, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct sqd_spooled *f = &found[i];
        struct sqd_job *job = sqd_job_new(ctx, true);
        if (!job) {
            sqd_log(ctx, "spool: job %s cannot be resumed (out of memory); removed", f->rec->id);
            uv_mutex_lock(&ctx->reg.lock);
            sqd_reg_remove(&ctx->reg, f->rec);
            uv_mutex_unlock(&ctx->reg.lock);
            sqd_spool_remove(f->dir);
            continue;
        }
        /* The job takes the spec, the input and the directory. */
        job->spec = f->spec;
        sqd_spec_init(&f->spec);
        job->body = f->body;
        sqd_body_init(&f->body, 0, 0, NULL);
        job->dir = f->dir;
        f->dir = NULL;
        memcpy(job->id, f->rec->id, sizeof(job->id));
        f->rec->live = job;
        job->rec = f->rec;
        job->t.received = job->t.admitted = sqd_now_ns();
        sqd_jobs_resume(ctx, job);
    }
}

int sqd_main(int argc, char **argv)
{
    struct sqd_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.spool_lock = -1;
    char msg[1024] = "";
    switch (sqd_config_from_args(&ctx.cfg, argc, argv, msg, sizeof(msg))) {
    case SQD_PRINT_HELP:
        sqd_config_usage(stdout);
        sqd_config_free(&ctx.cfg);
        return 0;
    case SQD_PRINT_VERSION:
        printf("squantd %s (libsquant %s, libmicrohttpd %s, libuv %s, jansson %s)\n",
               SQ_VERSION_STRING, SQ_VERSION_STRING, MHD_get_version(), uv_version_string(),
               JANSSON_VERSION);
        sqd_config_free(&ctx.cfg);
        return 0;
    case SQD_CLI_ERROR:
        fprintf(stderr, "squantd: %s\n", msg);
        sqd_config_free(&ctx.cfg);
        return 2;
    case SQD_CHECK_CONFIG: {
        bool ok = sqd_auth_init(&ctx.auth) &&
                  sqd_auth_load(&ctx.auth, ctx.cfg.auth_token_file, msg, sizeof(msg));
        if (ok)
            printf("squantd: configuration OK (listen %s, spool-dir %s, %u threads)\n",
                   ctx.cfg.listen, ctx.cfg.spool_dir, sqd_config_threads(&ctx.cfg));
        else
            fprintf(stderr, "squantd: %s\n", msg);
        sqd_auth_free(&ctx.auth);
        sqd_config_free(&ctx.cfg);
        return ok ? 0 : 1;
    }
    case SQD_RUN:
        break;
    }

    signal(SIGPIPE, SIG_IGN);
    if (!ctx_init(&ctx, msg, sizeof(msg))) {
        fprintf(stderr, "squantd: %s\n", msg);
        ctx_free(&ctx);
        return 1;
    }
    /* libuv reads the pool size once, at the first uv_queue_work. */
    char threads[16];
    snprintf(threads, sizeof(threads), "%u", ctx.pool_size);
    setenv("UV_THREADPOOL_SIZE", threads, 1);

    uv_loop_t loop;
    int rc = 1;
    struct sqd_spooled *found = NULL;
    size_t nfound = 0;
    bool spool_ok;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "squantd: cannot create the event loop\n");
        ctx_free(&ctx);
        return 1;
    }
    ctx.loop = &loop;
    if (!sqd_jobs_init(&ctx)) {
        fprintf(stderr, "squantd: cannot set up the job loop\n");
        goto out;
    }
    if (!loop_init(&ctx)) {
        fprintf(stderr, "squantd: cannot set up the job loop\n");
        goto out;
    }
    spool_ok = sqd_spool_open(&ctx, &found, &nfound, msg, sizeof(msg));
    if (spool_ok)
        resume_spooled(&ctx, found, nfound);
    sqd_spooled_free(found, nfound);
    if (!spool_ok || !sqd_http_start(&ctx, msg, sizeof(msg))) {
        fprintf(stderr, "squantd: %s\n", msg);
        close_all(&ctx);
        uv_run(&loop, UV_RUN_DEFAULT);
        goto out;
    }
    sqd_log(&ctx, "squantd %s listening on %s (port %u), %u threads, %u active jobs, spool %s%s",
            SQ_VERSION_STRING, ctx.cfg.listen, ctx.port, ctx.pool_size, ctx.max_active,
            ctx.cfg.spool_dir, ctx.auth.enabled ? ", bearer auth" : "");
    if (ctx.cfg.instance[0])
        sqd_log(&ctx, "instance %s: job ids start with \"%s.\"", ctx.cfg.instance,
                ctx.cfg.instance);
    sqd_notify("READY=1");
    uv_run(&loop, UV_RUN_DEFAULT);
    sqd_http_stop(&ctx);
    sqd_log(&ctx, "stopped");
    rc = 0;
out:
    sqd_http_stop(&ctx);
    if (uv_loop_close(&loop) != 0)
        sqd_log(&ctx, "event loop closed with handles open");
    ctx_free(&ctx);
    return rc;
}

/*
 * Bringing the daemon up and down: the context, the loop, the listener.
 * main.c only calls sqd_main; everything here is in libsquantd so that
 * tests can link it.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "daemon.h"
#include "squantd.h"

static bool ctx_init(struct sqd_ctx *ctx, char *msg, size_t msgsize)
{
    size_t nroutes;
    sqd_routes(&nroutes);
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
    if (uv_mutex_init(&ctx->inbox_lock) || uv_mutex_init(&ctx->reg_lock) ||
        uv_mutex_init(&ctx->log_lock) || uv_mutex_init(&ctx->conns.lock) ||
        !sqd_auth_init(&ctx->auth) || !sqd_metrics_init(&ctx->metrics, nroutes)) {
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
    while (ctx->nrecs)
        sqd_reg_remove(ctx, ctx->recs[ctx->nrecs - 1]);
    free(ctx->recs);
    sqd_metrics_free(&ctx->metrics);
    sqd_auth_free(&ctx->auth);
    free(ctx->tmp_dir);
    free(ctx->jobs_dir);
    if (ctx->spool_lock >= 0)
        close(ctx->spool_lock);
    sqd_config_free(&ctx->cfg);
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
    if (!sqd_spool_open(&ctx, msg, sizeof(msg)) || !sqd_http_start(&ctx, msg, sizeof(msg))) {
        fprintf(stderr, "squantd: %s\n", msg);
        sqd_jobs_close(&ctx);
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

/*
 * The daemon's one context, passed around: there is no hidden global state.
 * It holds the parts every other one shares - the configuration, the log,
 * the tokens, the metrics, the connections and the job registry - and the
 * state of the job queue and of the start-up and shutdown sequence. It
 * includes only the headers of the parts it holds by value; those parts
 * never see the context (they get their own struct), so any file above
 * them may include this one.
 *
 * Threads:
 *   - the MHD thread (libmicrohttpd's internal polling thread) runs every
 *     HTTP callback: routing, uploads, small answers;
 *   - the loop thread (main's thread, running ctx->loop) owns the job
 *     queue, starts work, collects results and resumes connections;
 *   - libuv's pool threads run the heavy work: parsing, sq_plan_run per
 *     item, sq_plan_write and spool I/O.
 * Data shared between them is named below with the lock or atomic that
 * guards it.
 */
#ifndef SQD_CTX_H
#define SQD_CTX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>
#include <uv.h>

#include <squant/squant.h>

#include "auth.h"
#include "cfg.h"
#include "conns.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"

struct sqd_job;

struct sqd_ctx {
    struct sqd_config cfg;
    struct sq_limits limits;
    unsigned pool_size;
    unsigned max_active;
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    uint16_t port;
    char *tmp_dir;  /* spool_dir/tmp */
    char *jobs_dir; /* spool_dir/jobs */
    int spool_lock; /* fd holding flock(spool_dir/lock), or -1 */
    uint64_t t_start;
    uint32_t reqid_prefix;
    atomic_uint_fast64_t reqid_counter;

    /* admission (any thread) */
    atomic_size_t admitted;

    /* the job queue (jobs.c). inbox: MHD thread -> loop thread */
    uv_mutex_t inbox_lock;
    struct sqd_job *inbox_head, *inbox_tail;
    uv_async_t inbox_async;
    /* loop thread only */
    struct sqd_job *wait_head, *wait_tail;
    size_t waiting;
    size_t running;
    struct sqd_job *active;          /* running jobs */
    size_t fed_idle;                 /* of them, fed jobs waiting for their body: no slot */
    bool jobs_draining;              /* sqd_jobs_drain was called */
    uint64_t jobs_deadline;          /* then: cancel what is left at this time */
    void (*jobs_drained)(void *arg); /* and report an empty queue here */
    void *jobs_drained_arg;
    atomic_size_t queued_gauge; /* waiting jobs, for /metrics */
    atomic_size_t running_gauge;

    /* start-up and shutdown (daemon.c, loop thread) */
    uv_timer_t tick; /* disconnect polling, expiry, drain progress */
    uint64_t last_expiry;
    uv_signal_t sig_term, sig_int, sig_hup;
    uint64_t drain_deadline;
    uint64_t quiesce_at; /* end of drain-delay */
    bool quiesced;       /* the listener is closed */
    bool stopping;
    atomic_bool draining; /* read by any thread: /readyz, new uploads, /metrics */

    struct sqd_registry reg; /* async job records */
    struct sqd_auth auth;
    struct sqd_metrics metrics;
    struct sqd_conns conns;
    struct sqd_log log;
    /*
     * Test hook, from $SQUANTD_TEST_ITEM_DELAY_MS: every work item first sleeps
     * this long, so that tests can catch jobs while they run. 0 in production.
     */
    unsigned test_item_delay_ms;
};

/* A daemon message through the context's log. */
#define sqd_log(ctx, ...) sqd_logf(&(ctx)->log, __VA_ARGS__)

#endif

/*
 * The job queue (jobs.c): admission, the hand-over from the MHD thread to
 * the loop thread, and each job's chain of pool tasks. It knows the
 * registry (an async job keeps its record up to date), the spool (an async
 * job writes its files) and the request of a sync job (it fills the answer
 * and resumes the connection); it does not know who starts or stops it:
 * drain progress goes back through the callback passed to sqd_jobs_drain.
 */
#ifndef SQD_JOBS_H
#define SQD_JOBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <squant/squant.h>

#include "body.h"
#include "registry.h"
#include "spec.h"
#include "stream.h"

struct sqd_ctx;
struct sqd_request;

/* A job's timings (monotonic ns; 0 = not reached). */
struct sqd_timings {
    uint64_t received; /* request headers */
    uint64_t admitted; /* body complete, job created */
    uint64_t started;
    uint64_t parsed;
    uint64_t quantized;
    uint64_t written;
};

/*
 * A unit of work: one request's model, options, plan and output. Created
 * on the MHD thread and handed to the loop thread, which owns it from then
 * on and frees it when it ends (sqd_job_free).
 */
struct sqd_job {
    struct sqd_ctx *ctx;
    struct sqd_job *next; /* inbox / wait list / active list (loop thread) */
    char id[SQD_JOBID_LEN + 1];
    bool async;
    struct sqd_request *req; /* sync: the suspended request (borrowed until resumed) */
    int client_fd;           /* sync: polled for a disconnect */
    struct sqd_spec spec;
    struct sqd_body body;
    char *dir;              /* async: spool directory (owned) */
    struct sqd_jobrec *rec; /* async: registry record (owned by the registry) */

    /* pool-thread results, read by the loop thread after each stage */
    struct sq_model model;
    struct sq_options opt;
    struct sq_plan *plan;
    size_t nitems, items_done, items_running, next_item;
    size_t nlayers, layers_done;
    size_t *layer_left;
    struct sqd_item *items;
    atomic_int cancel; /* SQD_CANCEL_* */
    enum sq_status status;
    struct sq_error err;
    unsigned http_override; /* 0, or an HTTP status for daemon-level failures */
    const char *code_override;
    uint8_t *out;
    size_t out_len;
    struct sqd_stream stream; /* safetensors output of a multi-item job */
    int out_fd;               /* sync, streamed: the answer file, until handed to the request */
    uint64_t out_off;
    enum sq_format out_format;
    struct sqd_timings t;
    uv_work_t work;
    bool running;
    bool inline_done;      /* a one-item job ran and was written within its parse task */
    struct sqd_feed *feed; /* a sync job started while its body arrives (shared, refcounted) */
    bool feeding;          /* loop: between parse_done and start_write (items are fed) */
    bool feed_parked;      /* loop: all work done, waiting for the end of the body */
    bool feed_idle;        /* loop: waiting for bytes with nothing in flight (holds no slot) */
    bool committing; /* async, new: on the pool being made durable; its request waits for 202 */
};

enum { SQD_CANCEL_NONE = 0, SQD_CANCEL_USER, SQD_CANCEL_CLIENT, SQD_CANCEL_SHUTDOWN };

struct sqd_item {
    uv_work_t work;
    struct sqd_job *job;
    size_t index;
    enum sq_status status;
    struct sq_error err;
};

/* Reserve a queue slot (MHD thread): false when the queue is full. */
bool sqd_jobs_admit(struct sqd_ctx *ctx);
void sqd_jobs_release(struct sqd_ctx *ctx);
/* New job (id generated), or NULL when memory runs out. */
struct sqd_job *sqd_job_new(struct sqd_ctx *ctx, bool async);
void sqd_job_free(struct sqd_job *job);
/* Hand a job to the loop thread (any thread). */
void sqd_jobs_submit(struct sqd_ctx *ctx, struct sqd_job *job);
/*
 * Hand over a new async job whose request `req` is suspended (any thread):
 * a pool task makes it durable (sqd_spool_commit: input fsynced, request
 * and state written, input renamed, directories fsynced); then the loop
 * thread answers req 202 with Location, or the error (the job is dropped),
 * resumes the connection and queues the job.
 */
void sqd_jobs_submit_durable(struct sqd_ctx *ctx, struct sqd_job *job, struct sqd_request *req);
bool sqd_jobs_init(struct sqd_ctx *ctx);
void sqd_jobs_close(struct sqd_ctx *ctx);
/* Begin draining (loop thread). */
/* Start-up: hand over a job found in the spool; admitted whatever the queue bound. */
void sqd_jobs_resume(struct sqd_ctx *ctx, struct sqd_job *job);
/* Set up the inbox (loop thread, before any submit). */
bool sqd_jobs_init(struct sqd_ctx *ctx);
/* Close the inbox: the loop can end once the jobs in flight are back. */
void sqd_jobs_close(struct sqd_ctx *ctx);
/*
 * The loop's periodic work (from the caller's timer): cancel sync jobs
 * whose client hung up and, while draining, cancel what is left past the
 * deadline and report an empty queue through the drain callback.
 */
void sqd_jobs_tick(struct sqd_ctx *ctx, uint64_t now);
/*
 * Called on the loop thread from sqd_jobs_tick while draining, every time
 * no job waits or runs: the queue is drained (until an upload still in
 * flight hands over another job).
 */
typedef void (*sqd_jobs_drained_fn)(void *arg);
/*
 * Drain (loop thread): waiting async jobs are left queued on disk, running
 * ones stop after their current item and are written back as queued; sync
 * jobs run on until `deadline` (monotonic ns), when everything left is
 * cancelled. A second call only moves the deadline (0: now).
 */
void sqd_jobs_drain(struct sqd_ctx *ctx, uint64_t deadline, sqd_jobs_drained_fn drained, void *arg);

#endif

/* Streamed safetensors results (stream.c). */
#ifndef SQD_STREAM_H
#define SQD_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <squant/squant.h>

/*
 * A streamed safetensors result (stream.c): the data section written to an
 * unnamed file in the spool's tmp directory at `base` as layers finish, the
 * header in front of it at the end. The loop thread owns next_begin,
 * next_write and writing; one pool task at a time writes.
 */
struct sqd_stream {
    bool active;
    int fd;
    uint64_t base;     /* file offset of the data section */
    uint64_t data_len; /* bytes of it written so far */
    uint8_t *head;     /* the header, once finished */
    size_t head_len;
    uint64_t offset, size; /* the answer: [offset, offset + size) of fd */
    const uint8_t *input;  /* the input mapping: its pages are dropped once written */
    int input_fd; /* a sync job's spooled body (borrowed), or -1: written input is punched out */
    size_t input_len;
    size_t next_begin, next_write; /* layers */
    uint64_t held;                 /* bytes of codes of the layers begun, not written */
    bool writing;                  /* a write task is on the pool */
    size_t write_to;               /* that task writes layers next_write .. write_to - 1 */
    enum sq_status write_status;
    struct sq_error write_err;
    uv_work_t work;
};

void sqd_stream_init(struct sqd_stream *s);
void sqd_stream_free(struct sqd_stream *s);
/* Create the file (in tmp_dir) for plan's output; `input` is the mapping the model borrows. */
enum sq_status sqd_stream_open(struct sqd_stream *s, const char *tmp_dir,
                               const struct sq_plan *plan, const struct sq_model *model,
                               const uint8_t *input, size_t input_len, struct sq_error *err);
/* Write layers from .. to - 1 (all their items done, in order) and what precedes them. */
enum sq_status sqd_stream_layers(struct sqd_stream *s, struct sq_plan *plan,
                                 const struct sq_model *model, size_t from, size_t to,
                                 struct sq_error *err);
/* Every layer written: the rest of the data and the header. SQ_ERR_LIMIT past `limit`. */
enum sq_status sqd_stream_finish(struct sqd_stream *s, struct sq_plan *plan, uint64_t limit,
                                 struct sq_error *err);
/* Hand the finished file over (the caller closes it): the answer is *size bytes at *offset. */
int sqd_stream_take(struct sqd_stream *s, const char *tmp_dir, uint64_t *offset, uint64_t *size,
                    struct sq_error *err);
/* Async: the finished result as dir/result (fsynced, renamed into place). */
enum sq_status sqd_stream_save(struct sqd_stream *s, const char *dir, struct sq_error *err);

/*
 * A body that feeds its job while it arrives: a sync safetensors upload
 * whose job starts once the header is in the spool file (upload.c, jobs.c).
 * The MHD thread advances `received` (bytes written to the file) and ends
 * the feed; the loop thread runs an item, or writes a layer, only once the
 * input bytes it reads have been received, and finishes the job only after
 * the end. States: OPEN while the body arrives; then DONE (all `expected`
 * bytes, the connection suspended), SHORT (the body ended with another
 * length: `err` is what parsing it says; the connection suspended) or GONE
 * (the request was answered or closed by the MHD thread: the job is to be
 * cancelled; or the job let go of it at shutdown, and the MHD thread
 * answers 503: either way the job must not touch the request). The MHD
 * thread claims the end (OPEN -> ENDING) before it writes err, t_end and
 * client_fd and then the final state; the loop thread can only take
 * OPEN -> GONE.
 */
enum { SQD_FEED_OPEN, SQD_FEED_ENDING, SQD_FEED_DONE, SQD_FEED_SHORT, SQD_FEED_GONE };

struct sqd_feed {
    uv_async_t *wake;              /* the loop's: sent when received reaches want, and at the end */
    atomic_uint_fast64_t received; /* MHD thread: bytes of the body in the file */
    atomic_uint_fast64_t want;     /* loop thread: wake it once received reaches this */
    atomic_int state;              /* SQD_FEED_*; err, t_end and client_fd are set before it */
    atomic_int refs;
    uint64_t expected; /* the length the header implies */
    struct sq_error err;
    uint64_t t_end;       /* the body ended (monotonic ns) */
    int client_fd;        /* DONE, SHORT: the suspended connection's socket */
    const uint8_t *base;  /* loop thread: the job's mapping of the body */
    uint64_t *prefix_end; /* loop thread: per tensor, the end of the data of tensors <= it */
    size_t ntensors;
};

/* One reference, the creator's. */
struct sqd_feed *sqd_feed_new(uv_async_t *wake, uint64_t expected);
void sqd_feed_unref(struct sqd_feed *f);
/* MHD thread: `received` bytes are in the file. */
void sqd_feed_progress(struct sqd_feed *f, uint64_t received);
/* MHD thread: take the end (false: it was taken already, by the loop thread at shutdown or
 * by an earlier end). */
bool sqd_feed_claim(struct sqd_feed *f);
/* MHD thread, after a claim: the body ended (DONE or SHORT, with the error), or the request
 * was answered or closed without its job (GONE). */
void sqd_feed_end(struct sqd_feed *f, int state, const struct sq_error *err, int client_fd);
/* Loop thread: let go of a request whose body has not ended (shutdown); false if it has. */
bool sqd_feed_release(struct sqd_feed *f);
/* Loop thread: the state (SQD_FEED_*). */
int sqd_feed_state(struct sqd_feed *f);
/* Loop thread: whether bytes [p, p + len) of the mapping have arrived; if not, ask to be woken. */
bool sqd_feed_has(struct sqd_feed *f, const void *p, size_t len);
/* Loop thread: whether the data of the model's tensors 0 .. tensor have arrived (the stream
 * writes pass-through tensors from the input). */
bool sqd_feed_has_tensors(struct sqd_feed *f, const struct sq_model *model, size_t tensor);

#endif

/* Streamed safetensors results (stream.c). */
#ifndef SQD_STREAM_H
#define SQD_STREAM_H

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

#endif

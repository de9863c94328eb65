/*
 * Streamed results: a job's safetensors output goes to an unnamed file in
 * the spool's tmp directory as its layers finish, never to one buffer.
 *
 * The data section is written at a fixed, page-aligned offset `base` that
 * leaves room for the header, which carries the report and is known only
 * at the end; it is then written just before the data, at base - h. A sync
 * answer is sent from the file at that offset (sendfile, through MHD); the
 * unused gap before it is a hole that costs no disk. An async job's result
 * is assembled as a file of its own in the job directory (header, then the
 * data copied by the kernel), fsynced and renamed into place. Should the
 * header not fit the gap, the sync answer is assembled the same way.
 */
#define _GNU_SOURCE /* O_TMPFILE, copy_file_range */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "stream.h"
#include "util.h"

/*
 * Room left for the header: generous for every tensor entry, the report of
 * every layer and the input's metadata (which is copied; JSON escapes at
 * most 6 bytes per byte). A hole in the file: it costs no disk.
 */
static uint64_t header_room(const struct sq_plan *plan, const struct sq_model *model)
{
    uint64_t room =
        ((uint64_t)1 << 20) + 4096 * ((uint64_t)model->count + sq_plan_layer_count(plan));
    for (size_t i = 0; i < model->meta_count; i++)
        room += 6 * ((uint64_t)strlen(model->meta[i].key) + strlen(model->meta[i].value));
    return (room + 4095) & ~(uint64_t)4095;
}

/* Clients read these messages: what failed, never the machine's path. A full disk is 507. */
static enum sq_status io_fail(struct sq_error *err, const char *what)
{
    int e = errno;
    enum sq_status st = e == ENOSPC || e == EDQUOT ? SQ_ERR_NOSPACE : SQ_ERR_IO;
    err->status = st;
    snprintf(err->message, sizeof(err->message), "spool: cannot %s the result: %s", what,
             st == SQ_ERR_NOSPACE ? "the disk is full" : strerror(e));
    return st;
}

static int tmp_file(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT))
        return fd;
    char path[4200];
    if ((size_t)snprintf(path, sizeof(path), "%s/result.XXXXXX", dir) >= sizeof(path))
        return -1;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

void sqd_stream_init(struct sqd_stream *s)
{
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->input_fd = -1;
}

/*
 * The input bytes [p, p + len) have been written to the result and are
 * never read again: drop their pages from the mapping and, for a sync job,
 * punch them out of the spooled body. Its dirty pages are then discarded
 * instead of written back, so a large upload does not wait for the disk
 * (the kernel throttles writers past its dirty limits). Whole pages only:
 * punching zeroes the partial blocks at the edges, which belong to the
 * neighbouring tensors.
 */
static void drop_input(const struct sqd_stream *s, const void *p, size_t len)
{
    sqi_drop_pages(s->input, s->input_len, p, len);
    const uint8_t *b = p;
    if (s->input_fd < 0 || !s->input || b < s->input || b >= s->input + s->input_len ||
        len > s->input_len - (size_t)(b - s->input))
        return;
    uint64_t lo = ((uint64_t)(b - s->input) + 4095) & ~(uint64_t)4095;
    uint64_t hi = ((uint64_t)(b - s->input) + len) & ~(uint64_t)4095;
    if (hi > lo)
        fallocate(s->input_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)lo,
                  (off_t)(hi - lo)); /* an optimisation: where it is not supported, nothing */
}

void sqd_stream_free(struct sqd_stream *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s->head);
    sqd_stream_init(s);
}

enum sq_status sqd_stream_open(struct sqd_stream *s, const char *tmp_dir,
                               const struct sq_plan *plan, const struct sq_model *model,
                               const uint8_t *input, size_t input_len, struct sq_error *err)
{
    sqd_stream_init(s);
    s->fd = tmp_file(tmp_dir);
    if (s->fd < 0)
        return io_fail(err, "create");
    s->base = header_room(plan, model);
    s->input = input;
    s->input_len = input_len;
    s->active = true;
    return SQ_OK;
}

static enum sq_status sink(void *ctx, const void *data, size_t len, struct sq_error *err)
{
    struct sqd_stream *s = ctx;
    if (!sqi_write_full(s->fd, data, len, (int64_t)(s->base + s->data_len)))
        return io_fail(err, "write");
    s->data_len += len;
    drop_input(s, data, len);
    return SQ_OK;
}

enum sq_status sqd_stream_layers(struct sqd_stream *s, struct sq_plan *plan,
                                 const struct sq_model *model, size_t from, size_t to,
                                 struct sq_error *err)
{
    for (size_t l = from; l < to; l++) {
        enum sq_status st = sq_plan_stream_data(plan, l, sink, s, err);
        if (st != SQ_OK)
            return st;
        struct sq_layer_info info;
        sq_plan_layer_info(plan, l, &info);
        ptrdiff_t ti = sq_model_find(model, info.name);
        if (ti >= 0)
            drop_input(s, model->tensors[ti].data, model->tensors[ti].nbytes);
    }
    return SQ_OK;
}

/* Append [in, end) of `from` to `to` by reading and writing. */
static enum sq_status copy_slow(int to, int from, off_t in, off_t end, struct sq_error *err)
{
    size_t size = (size_t)1 << 16;
    char *buf = malloc(size);
    if (!buf) {
        errno = ENOMEM;
        return io_fail(err, "copy");
    }
    enum sq_status st = SQ_OK;
    while (st == SQ_OK && in < end) {
        size_t want = (size_t)(end - in) < size ? (size_t)(end - in) : size;
        ssize_t r = pread(from, buf, want, in);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            st = io_fail(err, "read");
            break;
        }
        for (size_t done = 0; st == SQ_OK && done < (size_t)r;) {
            ssize_t k = write(to, buf + done, (size_t)r - done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                st = io_fail(err, "write");
            else
                done += (size_t)k;
        }
        in += r;
    }
    free(buf);
    return st;
}

/* Append `len` bytes of `from` at `off` to `to` (at its current offset), in the kernel. */
static enum sq_status copy_data(int to, int from, uint64_t off, uint64_t len, struct sq_error *err)
{
    off_t in = (off_t)off, end = (off_t)(off + len);
    while (in < end) {
        ssize_t n = copy_file_range(from, &in, to, NULL, (size_t)(end - in), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0)
            continue;
        if (n < 0 && errno != ENOSYS && errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP)
            return io_fail(err, "copy");
        return copy_slow(to, from, in, end, err); /* no copy_file_range here */
    }
    return SQ_OK;
}

/* Header then data into the fresh file `fd`. */
static enum sq_status assemble(const struct sqd_stream *s, int fd, struct sq_error *err)
{
    if (!sqi_write_full(fd, s->head, s->head_len, 0) || lseek(fd, (off_t)s->head_len, SEEK_SET) < 0)
        return io_fail(err, "write");
    return copy_data(fd, s->fd, s->base, s->data_len, err);
}

enum sq_status sqd_stream_finish(struct sqd_stream *s, struct sq_plan *plan, uint64_t limit,
                                 struct sq_error *err)
{
    enum sq_status st = sq_plan_stream_data(plan, sq_plan_layer_count(plan), sink, s, err);
    if (st == SQ_OK)
        st = sq_plan_write_header(plan, (size_t)1 << 30, &s->head, &s->head_len, err);
    if (st != SQ_OK)
        return st;
    s->size = s->head_len + s->data_len;
    if (s->size > limit) {
        err->status = SQ_ERR_LIMIT;
        snprintf(err->message, sizeof(err->message),
                 "the result exceeds max-response-size (%llu bytes)", (unsigned long long)limit);
        return SQ_ERR_LIMIT;
    }
    if (s->head_len <= s->base) {
        s->offset = s->base - s->head_len;
        return sqi_write_full(s->fd, s->head, s->head_len, (int64_t)s->offset)
                   ? SQ_OK
                   : io_fail(err, "write");
    }
    return SQ_OK; /* too large for the gap (offset stays 0): sqd_stream_take assembles */
}

int sqd_stream_take(struct sqd_stream *s, const char *tmp_dir, uint64_t *offset, uint64_t *size,
                    struct sq_error *err)
{
    if (s->head_len > s->base) {
        int fd = tmp_file(tmp_dir);
        if (fd < 0) {
            io_fail(err, "create");
            return -1;
        }
        if (assemble(s, fd, err) != SQ_OK) {
            close(fd);
            return -1;
        }
        close(s->fd);
        s->fd = fd;
        s->offset = 0;
    }
    int fd = s->fd;
    s->fd = -1;
    *offset = s->offset;
    *size = s->size;
    return fd;
}

enum sq_status sqd_stream_save(struct sqd_stream *s, const char *dir, struct sq_error *err)
{
    char tmp[4200], final[4200];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/result.tmp", dir) >= sizeof(tmp) ||
        (size_t)snprintf(final, sizeof(final), "%s/result", dir) >= sizeof(final)) {
        errno = ENAMETOOLONG;
        return io_fail(err, "name");
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return io_fail(err, "create");
    enum sq_status st = assemble(s, fd, err);
    if (st == SQ_OK && fsync(fd) != 0)
        st = io_fail(err, "fsync");
    close(fd);
    if (st == SQ_OK && rename(tmp, final) != 0)
        st = io_fail(err, "rename");
    if (st != SQ_OK) {
        unlink(tmp);
        return st;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0)
        st = io_fail(err, "fsync");
    if (dfd >= 0)
        close(dfd);
    return st;
}

/* ------------------------------------------------------------ bodies that feed their job */

struct sqd_feed *sqd_feed_new(uv_async_t *wake, uint64_t expected)
{
    struct sqd_feed *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->wake = wake;
    atomic_init(&f->received, 0);
    atomic_init(&f->want, UINT64_MAX);
    atomic_init(&f->state, SQD_FEED_OPEN);
    atomic_init(&f->refs, 1);
    f->expected = expected;
    sq_error_init(&f->err);
    f->client_fd = -1;
    return f;
}

void sqd_feed_unref(struct sqd_feed *f)
{
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    free(f->prefix_end);
    free(f);
}

/* Wake the loop thread: its inbox handler looks at the jobs that wait for their body. */
static void feed_wake(struct sqd_feed *f)
{
    uv_async_send(f->wake);
}

void sqd_feed_progress(struct sqd_feed *f, uint64_t received)
{
    atomic_store(&f->received, received);
    uint64_t want = atomic_load(&f->want);
    if (received >= want && atomic_compare_exchange_strong(&f->want, &want, UINT64_MAX))
        feed_wake(f);
}

bool sqd_feed_claim(struct sqd_feed *f)
{
    int open = SQD_FEED_OPEN;
    return atomic_compare_exchange_strong(&f->state, &open, SQD_FEED_ENDING);
}

bool sqd_feed_release(struct sqd_feed *f)
{
    int open = SQD_FEED_OPEN;
    return atomic_compare_exchange_strong(&f->state, &open, SQD_FEED_GONE);
}

void sqd_feed_end(struct sqd_feed *f, int state, const struct sq_error *err, int client_fd)
{
    if (err)
        f->err = *err;
    f->t_end = sqd_now_ns();
    f->client_fd = client_fd;
    atomic_store(&f->state, state);
    feed_wake(f);
}

int sqd_feed_state(struct sqd_feed *f)
{
    return atomic_load(&f->state);
}

/* Whether `end` bytes have arrived; if not, lower the wake-up mark to it and look again. */
static bool feed_has_end(struct sqd_feed *f, uint64_t end)
{
    if (end <= atomic_load(&f->received))
        return true;
    if (atomic_load(&f->state) != SQD_FEED_OPEN)
        return false; /* ended (short, or gone): these bytes never come */
    uint64_t want = atomic_load(&f->want);
    while (end < want && !atomic_compare_exchange_weak(&f->want, &want, end))
        ;
    /* The MHD thread stores received, then reads want: one of the two sides sees the other. */
    return end <= atomic_load(&f->received);
}

bool sqd_feed_has(struct sqd_feed *f, const void *p, size_t len)
{
    const uint8_t *b = p;
    if (!f->base || b < f->base || (uint64_t)(b - f->base) > f->expected ||
        len > f->expected - (uint64_t)(b - f->base))
        return feed_has_end(f, f->expected); /* not in the mapping: wait for the whole body */
    return feed_has_end(f, (uint64_t)(b - f->base) + len);
}

bool sqd_feed_has_tensors(struct sqd_feed *f, const struct sq_model *model, size_t tensor)
{
    if (!f->prefix_end && model->count) {
        /* The data can come in any order: the end of what tensors 0 .. i need, for each i. */
        f->prefix_end = calloc(model->count, sizeof(*f->prefix_end));
        if (!f->prefix_end)
            return feed_has_end(f, f->expected);
        f->ntensors = model->count;
        uint64_t end = 0;
        for (size_t i = 0; i < model->count; i++) {
            const struct sq_tensor *t = &model->tensors[i];
            const uint8_t *d = t->data;
            uint64_t e = f->expected;
            if (f->base && d >= f->base && (uint64_t)(d - f->base) <= f->expected &&
                t->nbytes <= f->expected - (uint64_t)(d - f->base))
                e = (uint64_t)(d - f->base) + t->nbytes;
            end = e > end ? e : end;
            f->prefix_end[i] = end;
        }
    }
    if (tensor >= f->ntensors)
        return feed_has_end(f, f->expected);
    return feed_has_end(f, f->prefix_end[tensor]);
}

/*
 * squant quantize with bounded memory (safetensors output).
 *
 * The layers run in model order on libuv's pool with a bounded number in
 * flight (at least MIN_LAYERS, more while their codes fit CODES_BUDGET, never
 * more than MAX_LAYERS). When the oldest layer in flight is done, the loop
 * thread writes its part of the output's data section (and the tensors that
 * pass through before it) to an unnamed temporary file, frees its codes and
 * starts the next layer. At the end the header, which carries the report,
 * is written to the output's temporary name, the data section is appended
 * by the kernel (copy_file_range, or sendfile to a pipe) and the file is
 * renamed into place. Memory is the layers in flight, not the model.
 */
#define _GNU_SOURCE /* O_TMPFILE, copy_file_range */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "util.h"

#define MIN_LAYERS 2
#define MAX_LAYERS 64
#define CODES_BUDGET ((uint64_t)32 << 20)
#define HEADER_LIMIT ((size_t)1 << 30)

struct srun {
    struct sq_plan *plan;
    const struct sq_model *model;
    const uint8_t *map;
    size_t map_len;
    size_t layers, items;
    uv_work_t *reqs;
    struct sq_error *errs;
    enum sq_status *status;
    size_t *layer_left; /* items still to run per layer */
    size_t *first_item; /* per layer */
    uint64_t *codes;    /* bytes of codes per layer */
    size_t next_begin;  /* first layer not begun */
    size_t next_write;  /* first layer not written */
    uint64_t held;      /* codes bytes of the layers begun and not written */
    bool failed;
    size_t failed_item; /* lowest failed item */
    struct sq_error first_err;
    int data_fd; /* the data section, unnamed */
    uint64_t data_len;
    bool progress;
};

static enum sq_status sink(void *ctx, const void *data, size_t len, struct sq_error *err)
{
    struct srun *r = ctx;
    if (!sqi_write_full(r->data_fd, data, len, -1)) {
        snprintf(err->message, sizeof err->message, "writing the temporary output: %s",
                 strerror(errno));
        err->status = SQ_ERR_IO;
        return SQ_ERR_IO;
    }
    r->data_len += len;
    sqi_drop_pages(r->map, r->map_len, data,
                   len); /* a tensor passed through: its input is not read again */
    return SQ_OK;
}

static void work_cb(uv_work_t *req)
{
    struct srun *r = req->data;
    size_t i = (size_t)(req - r->reqs);
    r->status[i] = sq_plan_run(r->plan, i, &r->errs[i]);
}

static void after_cb(uv_work_t *req, int status);

static void fail(struct srun *r, size_t item, const struct sq_error *err)
{
    if (!r->failed || item < r->failed_item) {
        r->failed_item = item;
        r->first_err = *err;
    }
    r->failed = true;
    /* Stop what has not started; uv_cancel fails harmlessly on running items. */
    size_t end = r->next_begin < r->layers ? r->first_item[r->next_begin] : r->items;
    for (size_t i = r->next_write < r->layers ? r->first_item[r->next_write] : end; i < end; i++)
        uv_cancel((uv_req_t *)&r->reqs[i]);
}

/* Begin layers while the bound allows, queueing their items. */
static void begin_layers(struct srun *r, uv_loop_t *loop)
{
    while (!r->failed && r->next_begin < r->layers) {
        size_t l = r->next_begin, inflight = l - r->next_write;
        if (inflight >= MAX_LAYERS ||
            (inflight >= MIN_LAYERS && r->held + r->codes[l] > CODES_BUDGET))
            break;
        struct sq_error err;
        sq_error_init(&err);
        if (sq_plan_layer_begin(r->plan, l, &err) != SQ_OK) {
            fail(r, r->first_item[l], &err);
            break;
        }
        r->held += r->codes[l];
        r->next_begin++;
        size_t end = l + 1 < r->layers ? r->first_item[l + 1] : r->items;
        for (size_t i = r->first_item[l]; i < end; i++) {
            r->reqs[i].data = r;
            if (uv_queue_work(loop, &r->reqs[i], work_cb, after_cb) != 0) {
                snprintf(err.message, sizeof err.message, "cannot queue work");
                fail(r, i, &err);
                return;
            }
        }
    }
}

/* Write every finished layer at the front of the window. */
static void write_done_layers(struct srun *r)
{
    while (!r->failed && r->next_write < r->next_begin && r->layer_left[r->next_write] == 0) {
        size_t l = r->next_write;
        struct sq_error err;
        sq_error_init(&err);
        if (sq_plan_stream_data(r->plan, l, sink, r, &err) != SQ_OK) {
            fail(r, r->first_item[l], &err);
            return;
        }
        struct sq_layer_info info;
        sq_plan_layer_info(r->plan, l, &info);
        ptrdiff_t ti = sq_model_find(r->model, info.name);
        if (ti >= 0)
            sqi_drop_pages(r->map, r->map_len, r->model->tensors[ti].data,
                           r->model->tensors[ti].nbytes);
        r->held -= r->codes[l];
        r->next_write++;
        if (r->progress)
            fprintf(stderr, "\rsquant: %zu/%zu layers", r->next_write, r->layers);
    }
}

static void after_cb(uv_work_t *req, int status)
{
    struct srun *r = req->data;
    size_t i = (size_t)(req - r->reqs);
    if (status == UV_ECANCELED)
        return;
    if (r->status[i] != SQ_OK) {
        fail(r, i, &r->errs[i]);
        return;
    }
    size_t l = sq_plan_item_layer(r->plan, i);
    r->layer_left[l]--;
    write_done_layers(r);
    begin_layers(r, req->loop);
}

/* An unnamed file for the data section in `dir`, or -1. */
static int data_file(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT))
        return fd;
    size_t n = strlen(dir);
    char *tmp = malloc(n + 24);
    if (!tmp)
        return -1;
    snprintf(tmp, n + 24, "%s/.squant-data.XXXXXX", dir);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd >= 0)
        unlink(tmp);
    free(tmp);
    return fd;
}

/* Append `len` bytes of `from` (from offset 0) to `to`, in the kernel where it can. */
static int append_file(int to, int from, uint64_t len, bool regular)
{
    off_t in = 0;
    while (regular && (uint64_t)in < len) {
        ssize_t n = copy_file_range(from, &in, to, NULL, len - (uint64_t)in, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (in == 0 && n < 0 &&
                (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP ||
                 errno == EBADF))
                break; /* not here (EBADF: an O_APPEND stdout): sendfile, or read and write */
            return -1;
        }
    }
    while ((uint64_t)in < len) {
        ssize_t n = sendfile(to, from, &in, len - (uint64_t)in);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* sendfile cannot: read and write */
    }
    if ((uint64_t)in == len)
        return 0;
    size_t size = (size_t)1 << 16;
    char *buf = malloc(size);
    while (buf && (uint64_t)in < len) {
        size_t want = len - (uint64_t)in < size ? (size_t)(len - (uint64_t)in) : size;
        ssize_t n = pread(from, buf, want, in);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || !sqi_write_full(to, buf, (size_t)n, -1))
            break;
        in += n;
    }
    free(buf);
    return (uint64_t)in == len ? 0 : -1;
}

/* Header then data to out_path atomically, or to standard output for "-". */
static int assemble(const struct srun *r, const uint8_t *head, size_t head_len,
                    const char *out_path)
{
    if (strcmp(out_path, "-") == 0) {
        fflush(stdout);
        struct stat st;
        bool regular = fstat(1, &st) == 0 && S_ISREG(st.st_mode);
        if (!sqi_write_full(1, head, head_len, -1) ||
            append_file(1, r->data_fd, r->data_len, regular) != 0) {
            fprintf(stderr, "squant: writing to standard output: %s\n", strerror(errno));
            return -1;
        }
        return 0;
    }
    size_t n = strlen(out_path);
    char *tmp = malloc(n + 16);
    if (!tmp) {
        fprintf(stderr, "squant: out of memory\n");
        return -1;
    }
    snprintf(tmp, n + 16, "%s.tmp.XXXXXX", out_path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "squant: %s: %s\n", out_path, strerror(errno));
        free(tmp);
        return -1;
    }
    int ok = sqi_write_full(fd, head, head_len, -1) &&
             append_file(fd, r->data_fd, r->data_len, true) == 0 && fchmod(fd, 0644) == 0 &&
             fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, out_path) != 0) {
        fprintf(stderr, "squant: %s: %s\n", out_path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

static int open_data(struct srun *r, const char *out_path)
{
    char *dir = NULL;
    if (strcmp(out_path, "-") == 0) {
        const char *t = getenv("TMPDIR");
        dir = strdup(t && *t ? t : "/tmp");
    } else {
        char *copy = strdup(out_path);
        dir = copy ? strdup(dirname(copy)) : NULL;
        free(copy);
    }
    if (!dir) {
        fprintf(stderr, "squant: out of memory\n");
        return -1;
    }
    r->data_fd = data_file(dir);
    if (r->data_fd < 0)
        fprintf(stderr, "squant: %s: cannot create a temporary file: %s\n", dir, strerror(errno));
    free(dir);
    return r->data_fd < 0 ? -1 : 0;
}

int cli_quantize_streaming(struct sq_plan *plan, const struct sq_model *model, const uint8_t *map,
                           size_t map_len, const char *out_path, bool progress, const char *in_path)
{
    struct srun r = {.plan = plan,
                     .model = model,
                     .map = map,
                     .map_len = map_len,
                     .layers = sq_plan_layer_count(plan),
                     .items = sq_plan_item_count(plan),
                     .progress = progress,
                     .data_fd = -1};
    r.reqs = calloc(r.items, sizeof *r.reqs);
    r.errs = calloc(r.items, sizeof *r.errs);
    r.status = calloc(r.items, sizeof *r.status);
    r.layer_left = calloc(r.layers, sizeof *r.layer_left);
    r.first_item = calloc(r.layers, sizeof *r.first_item);
    r.codes = calloc(r.layers, sizeof *r.codes);
    int rc = -1;
    uv_loop_t loop;
    uint8_t *head = NULL;
    size_t head_len = 0;
    if (!r.reqs || !r.errs || !r.status || !r.layer_left || !r.first_item || !r.codes) {
        fprintf(stderr, "squant: out of memory\n");
        goto out;
    }
    if (open_data(&r, out_path) != 0)
        goto out;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "squant: cannot start the event loop\n");
        goto out;
    }
    for (size_t l = 0, first = 0; l < r.layers; l++) {
        struct sq_layer_info info;
        sq_plan_layer_info(plan, l, &info);
        r.layer_left[l] = info.items;
        r.first_item[l] = first;
        first += info.items;
        r.codes[l] = (uint64_t)info.layer.channels * info.layer.kernels * info.layer.ksize;
    }
    for (size_t i = 0; i < r.items; i++)
        sq_error_init(&r.errs[i]);
    madvise((void *)map, map_len, MADV_SEQUENTIAL);
    begin_layers(&r, &loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (progress)
        fputc('\n', stderr);
    struct sq_error err;
    sq_error_init(&err);
    if (!r.failed && r.next_write == r.layers &&
        sq_plan_stream_data(plan, r.layers, sink, &r, &err) != SQ_OK)
        fail(&r, r.items, &err);
    if (!r.failed && r.next_write == r.layers &&
        sq_plan_write_header(plan, HEADER_LIMIT, &head, &head_len, &err) != SQ_OK)
        fail(&r, r.items, &err);
    if (r.failed) {
        cli_fail_line(in_path, &r.first_err);
        goto out;
    }
    if (r.next_write != r.layers) {
        fprintf(stderr, "squant: %s: the run stopped before every layer was done\n", in_path);
        goto out;
    }
    rc = assemble(&r, head, head_len, out_path);
out:
    if (r.data_fd >= 0)
        close(r.data_fd);
    free(head);
    free(r.reqs);
    free(r.errs);
    free(r.status);
    free(r.layer_left);
    free(r.first_item);
    free(r.codes);
    return rc;
}

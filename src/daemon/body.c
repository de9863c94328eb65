/*
 * Request bodies with a hard limit (STYLE 8): memory up to mem_limit, then
 * an unlinked file in the spool's tmp directory, so that a large upload
 * costs disk and page cache, not heap. Parsers read the body through one
 * mapping (sqd_body_map): the heap buffer itself, or a read-only mmap.
 */
#define _GNU_SOURCE /* mkostemp, O_TMPFILE, POLLRDHUP */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "body.h"
#include "util.h"

void sqd_body_init(struct sqd_body *b, size_t limit, size_t mem_limit, const char *tmp_dir)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
    b->mem_limit = mem_limit;
    b->tmp_dir = tmp_dir;
    b->fd = -1;
}

void sqd_body_init_file(struct sqd_body *b, size_t limit, int fd)
{
    sqd_body_init(b, limit, 0, NULL);
    b->fd = fd;
}

/* A failed write: a full disk is its own status; messages name no path (clients read them). */
static enum sq_status write_failed(struct sq_error *err, const char *what)
{
    int e = errno;
    if (e == ENOSPC || e == EDQUOT)
        return sqi_fail(err, SQ_ERR_NOSPACE, "the spool disk is full: cannot store %s", what);
    return sqi_fail(err, SQ_ERR_IO, "cannot write %s: %s", what, strerror(e));
}

/* Move the in-memory part to a fresh unlinked file. */
static enum sq_status spill(struct sqd_body *b, struct sq_error *err)
{
    int fd = -1;
#ifdef O_TMPFILE
    fd = open(b->tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (fd < 0) {
        char path[4096];
        if ((size_t)snprintf(path, sizeof(path), "%s/upload.XXXXXX", b->tmp_dir) >= sizeof(path))
            return sqi_fail(err, SQ_ERR_IO, "the spool path is too long");
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0)
            return write_failed(err, "the request body");
        unlink(path);
    }
    if (!sqi_write_full(fd, b->mem, b->len, -1)) {
        enum sq_status st = write_failed(err, "the request body");
        close(fd);
        return st;
    }
    free(b->mem);
    b->mem = NULL;
    b->cap = 0;
    b->fd = fd;
    return SQ_OK;
}

enum sq_status sqd_body_append(struct sqd_body *b, const void *data, size_t n, struct sq_error *err)
{
    size_t total;
    if (__builtin_add_overflow(b->len, n, &total) || total > b->limit) {
        if (err) {
            err->status = SQ_ERR_LIMIT;
            snprintf(err->message, sizeof(err->message),
                     "the request body exceeds the limit of %zu bytes", b->limit);
        }
        return SQ_ERR_LIMIT;
    }
    if (b->fd < 0 && total > b->mem_limit) {
        enum sq_status st = spill(b, err);
        if (st != SQ_OK)
            return st;
    }
    if (b->fd >= 0) {
        if (!sqi_write_full(b->fd, data, n, -1))
            return write_failed(err, "the request body");
        b->len = total;
        return SQ_OK;
    }
    if (total > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < total)
            cap = cap > b->mem_limit / 2 ? b->mem_limit : cap * 2;
        uint8_t *p = realloc(b->mem, cap);
        if (!p)
            return sqi_fail(err, SQ_ERR_NOMEM, "%s", "out of memory for the request body");
        b->mem = p;
        b->cap = cap;
    }
    memcpy(b->mem + b->len, data, n);
    b->len = total;
    return SQ_OK;
}

enum sq_status sqd_body_sync(struct sqd_body *b, struct sq_error *err)
{
    if (b->fd >= 0 && fdatasync(b->fd) != 0)
        return write_failed(err, "the request body");
    return SQ_OK;
}

enum sq_status sqd_body_map(struct sqd_body *b, const uint8_t **data, size_t *len,
                            struct sq_error *err)
{
    if (b->fd < 0 || b->len == 0) {
        *data = b->mem ? b->mem : (const uint8_t *)"";
        *len = b->len;
        return SQ_OK;
    }
    if (!b->map) {
        void *m = mmap(NULL, b->len, PROT_READ, MAP_PRIVATE, b->fd, 0);
        if (m == MAP_FAILED)
            return sqi_fail(err, SQ_ERR_IO, "cannot map the spooled input: %s", strerror(errno));
        b->map = m;
        b->map_len = b->len;
    }
    *data = b->map;
    *len = b->map_len;
    return SQ_OK;
}

enum sq_status sqd_body_open(struct sqd_body *b, const char *path, struct sq_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sqi_fail(err, SQ_ERR_IO, "cannot open the spooled input: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0) {
        close(fd);
        return sqi_fail(err, SQ_ERR_IO, "cannot stat the spooled input: %s", strerror(errno));
    }
    sqd_body_init(b, (size_t)st.st_size, 0, NULL);
    b->fd = fd;
    b->len = (size_t)st.st_size;
    return SQ_OK;
}

void sqd_body_free(struct sqd_body *b)
{
    if (b->map)
        munmap(b->map, b->map_len);
    if (b->fd >= 0)
        close(b->fd);
    free(b->mem);
    sqd_body_init(b, b->limit, b->mem_limit, b->tmp_dir);
}

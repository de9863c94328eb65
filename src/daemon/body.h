/* Request bodies with a hard limit, in memory or in a file (body.c). */
#ifndef SQD_BODY_H
#define SQD_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squant/squant.h>

/*
 * A request body with a hard limit: held in memory up to `mem_limit` bytes,
 * then moved to a file (unlinked, in `tmp_dir`) or, when the caller opened
 * one (sqd_body_init_file), always in that file. sqd_body_map makes the
 * whole body readable as one buffer (memory or a read-only mmap).
 */
struct sqd_body {
    uint8_t *mem;
    size_t len;
    size_t cap;
    size_t limit;     /* hard limit on len */
    size_t mem_limit; /* past this, spill to a file */
    const char *tmp_dir;
    int fd;    /* -1 while in memory */
    void *map; /* mmap of the file after sqd_body_map */
    size_t map_len;
};

void sqd_body_init(struct sqd_body *b, size_t limit, size_t mem_limit, const char *tmp_dir);
/* Write into an open file `fd` (taken over: closed by sqd_body_free). */
void sqd_body_init_file(struct sqd_body *b, size_t limit, int fd);
/* SQ_ERR_LIMIT past the limit, SQ_ERR_NOMEM/SQ_ERR_IO otherwise. */
enum sq_status sqd_body_append(struct sqd_body *b, const void *data, size_t n,
                               struct sq_error *err);
/* Flush a file-backed body to disk (fdatasync). */
enum sq_status sqd_body_sync(struct sqd_body *b, struct sq_error *err);
/* Make the body readable: data and len stay valid until sqd_body_free. */
enum sq_status sqd_body_map(struct sqd_body *b, const uint8_t **data, size_t *len,
                            struct sq_error *err);
/* Open an existing file read-only as a body (used to resume spooled jobs). */
enum sq_status sqd_body_open(struct sqd_body *b, const char *path, struct sq_error *err);
void sqd_body_free(struct sqd_body *b);

#endif

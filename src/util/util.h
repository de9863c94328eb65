/*
 * The floor of libsquant: checked size arithmetic, a bounded growable
 * buffer, error records and small string helpers. Depends on libc only.
 * Names shared between files of libsquant start with sqi_.
 */
#ifndef SQ_UTIL_H
#define SQ_UTIL_H

#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squant/status.h>

#if defined(__GNUC__)
#define SQI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define SQI_UNUSED __attribute__((unused))
#else
#define SQI_PRINTF(f, a)
#define SQI_UNUSED
#endif

/* *out = a * b; false (and *out untouched) on overflow. */
static inline bool sqi_mul(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

/* *out = a + b; false (and *out untouched) on overflow. */
static inline bool sqi_add(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_add_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

/* Product of `n` non-negative dimensions, false if any is negative or the product overflows. */
bool sqi_shape_product(const int64_t *shape, unsigned n, size_t *out);

/*
 * Fill `err` (may be NULL) and return `status`, so that a failure reads
 * `return sqi_fail(err, SQ_ERR_FORMAT, "...", ...);`. Tensor, offset,
 * channel and index are left as they were, so a caller may set them before
 * or after (callers pass an error record fresh from sq_error_init).
 */
enum sq_status sqi_fail(struct sq_error *err, enum sq_status status, const char *fmt, ...)
    SQI_PRINTF(3, 4);
enum sq_status sqi_vfail(struct sq_error *err, enum sq_status status, const char *fmt, va_list ap)
    SQI_PRINTF(3, 0);
/* Record the tensor a failure is about (copied, truncated). */
void sqi_error_tensor(struct sq_error *err, const char *name);

/*
 * A growable byte buffer with a hard limit: growing past `limit` fails with
 * SQ_ERR_LIMIT and leaves the contents as they were. sqi_buf_take hands the
 * memory to the caller.
 */
struct sqi_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t limit;
};

void sqi_buf_init(struct sqi_buf *b, size_t limit);
void sqi_buf_free(struct sqi_buf *b);
/* Make room for `more` bytes beyond len. */
enum sq_status sqi_buf_reserve(struct sqi_buf *b, size_t more);
enum sq_status sqi_buf_append(struct sqi_buf *b, const void *data, size_t n);
enum sq_status sqi_buf_append_byte(struct sqi_buf *b, uint8_t c, size_t n);
/* Append formatted text (no NUL is counted or kept in len). */
enum sq_status sqi_buf_printf(struct sqi_buf *b, const char *fmt, ...) SQI_PRINTF(2, 3);
/* Hand the contents over (malloc'ed; never NULL on success, even when empty) and reset. */
uint8_t *sqi_buf_take(struct sqi_buf *b, size_t *len);

/* strdup that returns NULL on allocation failure (never on a NULL argument: asserted). */
char *sqi_strdup(const char *s);
char *sqi_strndup(const char *s, size_t n);

/* Standard base64 (RFC 4648, with padding) of n bytes, appended to b. */
enum sq_status sqi_base64_append(struct sqi_buf *b, const uint8_t *data, size_t n);
/*
 * Decode canonical standard base64 (padding required, unused bits zero);
 * SQ_ERR_FORMAT otherwise. Output malloc'ed, handed to the caller.
 */
enum sq_status sqi_base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len);

/* Little-endian loads and stores from unaligned memory. */
static inline uint16_t sqi_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t sqi_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t sqi_le64(const uint8_t *p)
{
    return (uint64_t)sqi_le32(p) | ((uint64_t)sqi_le32(p + 4) << 32);
}
static inline void sqi_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void sqi_put_le64(uint8_t *p, uint64_t v)
{
    sqi_put_le32(p, (uint32_t)v);
    sqi_put_le32(p + 4, (uint32_t)(v >> 32));
}

/*
 * Write all `len` bytes to fd, at offset `off` (pwrite) or, with off < 0, at
 * the file position; retries on EINTR. false with errno set on failure.
 */
bool sqi_write_full(int fd, const void *data, size_t len, int64_t off);
/*
 * Drop the pages wholly inside [p, p + len) from a read-only mapping
 * [map, map + map_len) that will not be read there again (the page cache
 * keeps them). Nothing happens if p is outside the mapping or map is NULL.
 */
void sqi_drop_pages(const void *map, size_t map_len, const void *p, size_t len);

#endif

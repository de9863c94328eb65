/*
 * Helpers shared by the unit tests: building test files in memory and
 * checking a failure's status, message and offset in one line.
 */
#ifndef SQ_TEST_H
#define SQ_TEST_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squant/squant.h>

/* Fail the test unless `got` is `want` and err names `substr` and `offset` (-2: any offset). */
#define CHECK_ERR(got, err, want, substr, offset)                                                  \
    sqt_check_err(__FILE__, __LINE__, (got), (err), (want), (substr), (offset))

static inline void sqt_check_err(const char *file, int line, enum sq_status got,
                                 const struct sq_error *err, enum sq_status want,
                                 const char *substr, int64_t offset)
{
    ck_assert_msg(got == want, "%s:%d: status %s, expected %s (message: %s)", file, line,
                  sq_status_name(got), sq_status_name(want), err->message);
    ck_assert_msg(err->status == want, "%s:%d: err->status %s, expected %s", file, line,
                  sq_status_name(err->status), sq_status_name(want));
    ck_assert_msg(!substr || strstr(err->message, substr), "%s:%d: message \"%s\" lacks \"%s\"",
                  file, line, err->message, substr);
    ck_assert_msg(offset == -2 || err->offset == offset, "%s:%d: offset %lld, expected %lld (%s)",
                  file, line, (long long)err->offset, (long long)offset, err->message);
}

#define CHECK_OK(got, err)                                                                         \
    ck_assert_msg((got) == SQ_OK, "%s:%d: %s: %s", __FILE__, __LINE__, sq_status_name(got),        \
                  (err)->message)

/* A safetensors file: 8-byte header length, `json` verbatim, then `n` data bytes. malloc'ed. */
static inline uint8_t *sqt_safetensors(const char *json, const void *data, size_t n, size_t *len)
{
    size_t h = strlen(json);
    uint8_t *b = malloc(8 + h + n + 1);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, json, h);
    if (n)
        memcpy(b + 8 + h, data, n);
    *len = 8 + h + n;
    return b;
}

/*
 * An .npy file of version major.0 whose header is `header` verbatim (the
 * caller includes padding and the '\n'), then `n` data bytes. malloc'ed.
 */
static inline uint8_t *sqt_npy(unsigned major, const char *header, const void *data, size_t n,
                               size_t *len)
{
    size_t h = strlen(header), pre = major == 1 ? 10 : 12;
    uint8_t *b = malloc(pre + h + n + 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        b[8 + i] = (uint8_t)(h >> (8 * i));
    memcpy(b + pre, header, h);
    if (n)
        memcpy(b + pre + h, data, n);
    *len = pre + h + n;
    return b;
}

/* Little-endian u64 at p. */
static inline uint64_t sqt_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline float sqt_f32(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint32_t sqt_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Run a suite (fork mode, the default) and return the exit status for `make check`. */
static inline int sqt_run(Suite *s)
{
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif

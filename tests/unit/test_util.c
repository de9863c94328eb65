/* Unit tests for src/util: checked arithmetic, bounded buffers, base64, errors. */
#include <stdio.h>

#include "sqtest.h"
#include "util.h"

START_TEST(test_mul_add)
{
    size_t r = 7;
    ck_assert(sqi_mul(3, 4, &r) && r == 12);
    ck_assert(sqi_mul(SIZE_MAX, 1, &r) && r == SIZE_MAX);
    ck_assert(!sqi_mul(SIZE_MAX / 2 + 1, 2, &r) && r == SIZE_MAX); /* untouched on overflow */
    ck_assert(sqi_mul(0, SIZE_MAX, &r) && r == 0);
    ck_assert(sqi_add(SIZE_MAX - 1, 1, &r) && r == SIZE_MAX);
    ck_assert(!sqi_add(SIZE_MAX, 1, &r) && r == SIZE_MAX);
}
END_TEST

START_TEST(test_shape_product)
{
    size_t p = 0;
    ck_assert(sqi_shape_product(NULL, 0, &p) && p == 1);
    int64_t s1[] = {2, 3, 4};
    ck_assert(sqi_shape_product(s1, 3, &p) && p == 24);
    int64_t s2[] = {2, -1};
    ck_assert(!sqi_shape_product(s2, 2, &p));
    int64_t s3[] = {INT64_C(1) << 40, INT64_C(1) << 40};
    ck_assert(!sqi_shape_product(s3, 2, &p));
    int64_t s4[] = {0, INT64_MAX};
    ck_assert(sqi_shape_product(s4, 2, &p) && p == 0);
}
END_TEST

START_TEST(test_le)
{
    uint8_t b[9] = {0};
    sqi_put_le64(b + 1, UINT64_C(0x0102030405060708));
    ck_assert_uint_eq(b[1], 8);
    ck_assert_uint_eq(b[8], 1);
    ck_assert(sqi_le64(b + 1) == UINT64_C(0x0102030405060708));
    ck_assert_uint_eq(sqi_le32(b + 1), 0x05060708u);
    ck_assert_uint_eq(sqi_le16(b + 1), 0x0708u);
    sqi_put_le32(b, 0xdeadbeefu);
    ck_assert_uint_eq(sqi_le32(b), 0xdeadbeefu);
}
END_TEST

START_TEST(test_buf_limit)
{
    struct sqi_buf b;
    sqi_buf_init(&b, 10);
    ck_assert_int_eq(sqi_buf_append(&b, "0123456", 7), SQ_OK);
    ck_assert_int_eq(sqi_buf_append(&b, "abcd", 4), SQ_ERR_LIMIT);
    ck_assert_uint_eq(b.len, 7); /* unchanged */
    ck_assert(memcmp(b.data, "0123456", 7) == 0);
    ck_assert_int_eq(sqi_buf_append_byte(&b, 'x', 3), SQ_OK);
    ck_assert_uint_eq(b.len, 10);
    ck_assert_int_eq(sqi_buf_append_byte(&b, 'x', 1), SQ_ERR_LIMIT);
    ck_assert_int_eq(sqi_buf_reserve(&b, SIZE_MAX), SQ_ERR_LIMIT);
    ck_assert_uint_le(b.cap, 10);
    size_t n;
    uint8_t *p = sqi_buf_take(&b, &n);
    ck_assert_uint_eq(n, 10);
    ck_assert(memcmp(p, "0123456xxx", 10) == 0);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    free(p);
    sqi_buf_free(&b);
}
END_TEST

START_TEST(test_buf_take_empty_and_printf)
{
    struct sqi_buf b;
    sqi_buf_init(&b, 1000);
    size_t n = 99;
    uint8_t *p = sqi_buf_take(&b, &n);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(n, 0);
    free(p);
    ck_assert_int_eq(sqi_buf_printf(&b, "%d-%s", 42, "x"), SQ_OK);
    ck_assert_uint_eq(b.len, 4);
    ck_assert(memcmp(b.data, "42-x", 4) == 0);
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(sqi_buf_printf(&b, "%c", 'a'), SQ_OK);
    ck_assert_uint_eq(b.len, 304);
    ck_assert_int_eq(sqi_buf_printf(&b, "%0800d", 1), SQ_ERR_LIMIT);
    ck_assert_uint_eq(b.len, 304);
    /* Text that ends exactly at the limit fits: the NUL is not counted. */
    ck_assert_int_eq(sqi_buf_printf(&b, "%0696d", 1), SQ_OK);
    ck_assert_uint_eq(b.len, 1000);
    ck_assert_int_eq(sqi_buf_printf(&b, "x"), SQ_ERR_LIMIT);
    sqi_buf_free(&b);
}
END_TEST

START_TEST(test_strdup)
{
    char *s = sqi_strdup("hello");
    ck_assert_str_eq(s, "hello");
    free(s);
    s = sqi_strndup("hello", 3);
    ck_assert_str_eq(s, "hel");
    free(s);
    ck_assert_ptr_null(sqi_strndup("x", SIZE_MAX));
}
END_TEST

static char *b64(const void *data, size_t n)
{
    struct sqi_buf b;
    sqi_buf_init(&b, 1 << 20);
    ck_assert_int_eq(sqi_base64_append(&b, data, n), SQ_OK);
    ck_assert_int_eq(sqi_buf_append_byte(&b, 0, 1), SQ_OK);
    size_t len;
    return (char *)sqi_buf_take(&b, &len);
}

START_TEST(test_base64_vectors)
{
    /* RFC 4648, section 10 */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *e = b64(in[i], strlen(in[i]));
        ck_assert_str_eq(e, out[i]);
        uint8_t *d = NULL;
        size_t n = 99;
        ck_assert_int_eq(sqi_base64_decode(e, strlen(e), &d, &n), SQ_OK);
        ck_assert_uint_eq(n, strlen(in[i]));
        ck_assert(memcmp(d, in[i], n) == 0);
        free(d);
        free(e);
    }
}
END_TEST

START_TEST(test_base64_round_trip)
{
    uint8_t data[256];
    for (int i = 0; i < 256; i++)
        data[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof data; n++) {
        char *e = b64(data, n);
        uint8_t *d;
        size_t m;
        ck_assert_int_eq(sqi_base64_decode(e, strlen(e), &d, &m), SQ_OK);
        ck_assert_uint_eq(m, n);
        ck_assert(n == 0 || memcmp(d, data, n) == 0);
        free(d);
        free(e);
    }
}
END_TEST

START_TEST(test_base64_rejects)
{
    static const char *const bad[] = {"Zg=",   "Zm9*", "Zg==Zg==", "====", "Z===", "Zm 9",
                                      "Zm9\n", "=Zm9", "Zm=v",     "Zg-_", "A",   "Zh==", "Zm9="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *d = (uint8_t *)"untouched";
        size_t n = 5;
        ck_assert_msg(sqi_base64_decode(bad[i], strlen(bad[i]), &d, &n) == SQ_ERR_FORMAT, "%s",
                      bad[i]);
        ck_assert_str_eq((char *)d, "untouched");
    }
}
END_TEST

START_TEST(test_base64_limit)
{
    struct sqi_buf b;
    sqi_buf_init(&b, 7);
    ck_assert_int_eq(sqi_base64_append(&b, (const uint8_t *)"foobar", 6), SQ_ERR_LIMIT);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(sqi_base64_append(&b, (const uint8_t *)"foo", 3), SQ_OK);
    sqi_buf_free(&b);
}
END_TEST

START_TEST(test_errors)
{
    struct sq_error e;
    sq_error_init(&e);
    ck_assert_int_eq(e.status, SQ_OK);
    ck_assert_int_eq(e.offset, -1);
    ck_assert_int_eq(e.channel, -1);
    ck_assert_int_eq(e.index, -1);
    ck_assert_str_eq(e.tensor, "");
    ck_assert_int_eq(sqi_fail(&e, SQ_ERR_SHAPE, "bad %s %d", "dim", 3), SQ_ERR_SHAPE);
    ck_assert_int_eq(e.status, SQ_ERR_SHAPE);
    ck_assert_str_eq(e.message, "bad dim 3");
    ck_assert_int_eq(sqi_fail(NULL, SQ_ERR_FORMAT, "x"), SQ_ERR_FORMAT);
    char name[400];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    sqi_error_tensor(&e, name);
    ck_assert_uint_eq(strlen(e.tensor), SQ_ERROR_TENSOR_MAX - 1);
    char longmsg[1000];
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    sqi_fail(&e, SQ_ERR_FORMAT, "%s", longmsg);
    ck_assert_uint_eq(strlen(e.message), SQ_ERROR_MESSAGE_MAX - 1);
    for (int s = 0; s < SQ_STATUS_COUNT; s++) {
        ck_assert_str_ne(sq_status_name((enum sq_status)s), "unknown");
        ck_assert_ptr_nonnull(sq_strerror((enum sq_status)s));
    }
    ck_assert_str_eq(sq_status_name(SQ_ERR_FORMAT), "bad_format");
    ck_assert_str_eq(sq_status_name(SQ_STATUS_COUNT), "unknown");
    ck_assert_str_eq(sq_strerror((enum sq_status) - 1), "unknown status");
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("arithmetic");
    tcase_add_test(tc, test_mul_add);
    tcase_add_test(tc, test_shape_product);
    tcase_add_test(tc, test_le);
    suite_add_tcase(s, tc);
    tc = tcase_create("buf");
    tcase_add_test(tc, test_buf_limit);
    tcase_add_test(tc, test_buf_take_empty_and_printf);
    tcase_add_test(tc, test_strdup);
    suite_add_tcase(s, tc);
    tc = tcase_create("base64");
    tcase_add_test(tc, test_base64_vectors);
    tcase_add_test(tc, test_base64_round_trip);
    tcase_add_test(tc, test_base64_rejects);
    tcase_add_test(tc, test_base64_limit);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(util_suite());
}

/* Unit tests for src/formats/dtype.c: the dtype table and conversion to float32. */
#include <math.h>
#include <signal.h>

#include "sqtest.h"

START_TEST(test_table)
{
    static const struct {
        const char *name;
        size_t size;
        bool q;
    } want[SQ_DTYPE_COUNT] = {
        {"F32", 4, true},      {"F16", 2, true},      {"BF16", 2, true},  {"F64", 8, true},
        {"F8_E4M3", 1, false}, {"F8_E5M2", 1, false}, {"I8", 1, false},   {"U8", 1, false},
        {"I16", 2, false},     {"U16", 2, false},     {"I32", 4, false},  {"U32", 4, false},
        {"I64", 8, false},     {"U64", 8, false},     {"BOOL", 1, false},
    };
    for (int i = 0; i < SQ_DTYPE_COUNT; i++) {
        enum sq_dtype d = (enum sq_dtype)i, back = SQ_DTYPE_COUNT;
        ck_assert_str_eq(sq_dtype_name(d), want[i].name);
        ck_assert_uint_eq(sq_dtype_size(d), want[i].size);
        ck_assert(sq_dtype_is_quantizable(d) == want[i].q);
        ck_assert_int_eq(sq_dtype_from_name(want[i].name, &back), SQ_OK);
        ck_assert_int_eq(back, d);
    }
}
END_TEST

START_TEST(test_unknown)
{
    enum sq_dtype d = SQ_DTYPE_I8;
    ck_assert_int_eq(sq_dtype_from_name("f32", &d), SQ_ERR_DTYPE);
    ck_assert_int_eq(sq_dtype_from_name("F32 ", &d), SQ_ERR_DTYPE);
    ck_assert_int_eq(sq_dtype_from_name("", &d), SQ_ERR_DTYPE);
    ck_assert_int_eq(sq_dtype_from_name("C64", &d), SQ_ERR_DTYPE);
    ck_assert_int_eq(sq_dtype_from_name(NULL, &d), SQ_ERR_DTYPE);
    ck_assert_int_eq(d, SQ_DTYPE_I8);
    ck_assert_uint_eq(sq_dtype_size(SQ_DTYPE_COUNT), 0);
    ck_assert_str_eq(sq_dtype_name((enum sq_dtype)99), "unknown");
    ck_assert(!sq_dtype_is_quantizable(SQ_DTYPE_COUNT));
}
END_TEST

/* A tensor over `data` (not owned) of n elements. */
static struct sq_tensor tensor(enum sq_dtype d, const void *data, size_t n)
{
    struct sq_tensor t = {.name = (char *)"t",
                          .dtype = d,
                          .rank = 1,
                          .nelems = n,
                          .nbytes = n * sq_dtype_size(d),
                          .data = data};
    t.shape[0] = (int64_t)n;
    return t;
}

/* binary16 value computed arithmetically, as the reference. */
static float f16_ref(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
    float v;
    if (exp == 31)
        v = mant ? NAN : INFINITY;
    else if (exp == 0)
        v = ldexpf((float)mant, -24);
    else
        v = ldexpf((float)(1024 + mant), exp - 25);
    return sign ? -v : v;
}

START_TEST(test_f16_exhaustive)
{
    uint8_t *buf = malloc(2 * 65536 + 1);
    for (unsigned i = 0; i < 65536; i++) {
        buf[1 + 2 * i] = (uint8_t)i; /* odd address: unaligned on purpose */
        buf[2 + 2 * i] = (uint8_t)(i >> 8);
    }
    float *out = malloc(65536 * sizeof(float));
    struct sq_tensor t = tensor(SQ_DTYPE_F16, buf + 1, 65536);
    sq_tensor_to_f32(&t, 0, 65536, out);
    for (unsigned i = 0; i < 65536; i++) {
        float r = f16_ref((uint16_t)i);
        if (isnan(r)) {
            ck_assert_msg(isnan(out[i]), "0x%04x", i);
            ck_assert_uint_eq(signbit(out[i]) != 0, (i >> 15) != 0);
            /* the payload is kept: quiet bit and low bits shift up by 13 */
            ck_assert_uint_eq(sqt_bits(out[i]) & 0x7fffffu, (i & 0x3ffu) << 13);
        } else {
            ck_assert_msg(sqt_bits(out[i]) == sqt_bits(r), "0x%04x: %a vs %a", i, out[i], r);
        }
    }
    free(out);
    free(buf);
}
END_TEST

START_TEST(test_f16_values)
{
    const uint16_t h[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00,
                          0xc000, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x3555};
    const float want[] = {0.0f,
                          -0.0f,
                          5.9604644775390625e-08f,
                          6.0975551605224609e-05f,
                          6.103515625e-05f,
                          1.0f,
                          -2.0f,
                          65504.0f,
                          INFINITY,
                          -INFINITY,
                          NAN,
                          0.333251953125f};
    uint8_t b[2 * 12];
    for (int i = 0; i < 12; i++)
        b[2 * i] = (uint8_t)h[i], b[2 * i + 1] = (uint8_t)(h[i] >> 8);
    float out[12];
    struct sq_tensor t = tensor(SQ_DTYPE_F16, b, 12);
    sq_tensor_to_f32(&t, 0, 12, out);
    for (int i = 0; i < 12; i++) {
        if (isnan(want[i]))
            ck_assert(isnan(out[i]));
        else
            ck_assert_msg(sqt_bits(out[i]) == sqt_bits(want[i]), "%d: %a", i, out[i]);
    }
}
END_TEST

START_TEST(test_bf16)
{
    const uint16_t h[] = {0x3f80, 0xbf80, 0x0001, 0x8001, 0x7f80, 0xff80, 0x7fc0, 0x4049, 0x0000};
    uint8_t b[2 * 9 + 1];
    for (int i = 0; i < 9; i++)
        b[1 + 2 * i] = (uint8_t)h[i], b[2 + 2 * i] = (uint8_t)(h[i] >> 8);
    float out[9];
    struct sq_tensor t = tensor(SQ_DTYPE_BF16, b + 1, 9);
    sq_tensor_to_f32(&t, 0, 9, out);
    for (int i = 0; i < 9; i++)
        ck_assert_uint_eq(sqt_bits(out[i]), (uint32_t)h[i] << 16);
    ck_assert(out[0] == 1.0f);
    ck_assert(out[2] == ldexpf(1.0f, -133)); /* subnormal */
    ck_assert(isinf(out[4]) && isnan(out[6]));
    ck_assert(out[7] == 3.140625f);
}
END_TEST

START_TEST(test_f64_rounding)
{
    const double d[] = {0.1,
                        1.0 + ldexp(1.0, -24),                   /* tie: to even (1.0) */
                        1.0 + ldexp(1.0, -24) + ldexp(1.0, -40), /* above the tie */
                        1.0 + 3 * ldexp(1.0, -24),               /* tie: to even (up) */
                        1e300,
                        -1e300,
                        ldexp(1.0, -140), /* float subnormal */
                        ldexp(1.0, -160), /* underflows to 0 */
                        -0.0,
                        NAN};
    const float want[] = {
        0.1f,     1.0f,      1.0f + ldexpf(1.0f, -23), 1.0f + 2 * ldexpf(1.0f, -23),
        INFINITY, -INFINITY, ldexpf(1.0f, -140),       0.0f,
        -0.0f,    NAN};
    const int n = 10;
    uint8_t b[8 * 10 + 3];
    for (int i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &d[i], 8);
        for (int k = 0; k < 8; k++)
            b[3 + 8 * i + k] = (uint8_t)(u >> (8 * k));
    }
    float out[10];
    struct sq_tensor t = tensor(SQ_DTYPE_F64, b + 3, (size_t)n);
    sq_tensor_to_f32(&t, 0, (size_t)n, out);
    for (int i = 0; i < n; i++) {
        if (isnan(want[i]))
            ck_assert(isnan(out[i]));
        else
            ck_assert_msg(sqt_bits(out[i]) == sqt_bits(want[i]), "%d: %a vs %a", i, out[i],
                          want[i]);
    }
}
END_TEST

START_TEST(test_f32_range_unaligned)
{
    float src[6] = {1.5f, -2.25f, 3.0f, INFINITY, -0.0f, 7.0f};
    uint8_t b[6 * 4 + 1];
    memcpy(b + 1, src, sizeof src); /* the host is little-endian in this test's expectations */
    for (int i = 0; i < 6; i++) {
        uint32_t u = sqt_bits(src[i]);
        for (int k = 0; k < 4; k++)
            b[1 + 4 * i + k] = (uint8_t)(u >> (8 * k));
    }
    float out[6] = {0};
    struct sq_tensor t = tensor(SQ_DTYPE_F32, b + 1, 6);
    sq_tensor_to_f32(&t, 2, 3, out);
    ck_assert(out[0] == 3.0f && isinf(out[1]) && sqt_bits(out[2]) == 0x80000000u);
    ck_assert(out[3] == 0.0f);
    sq_tensor_to_f32(&t, 6, 0, out); /* empty range at the end */
    sq_tensor_to_f32(&t, 0, 6, out);
    for (int i = 0; i < 6; i++)
        ck_assert_uint_eq(sqt_bits(out[i]), sqt_bits(src[i]));
}
END_TEST

#ifndef NDEBUG
START_TEST(test_assert_not_quantizable)
{
    uint8_t b[4] = {0};
    float out[4];
    struct sq_tensor t = tensor(SQ_DTYPE_I8, b, 4);
    sq_tensor_to_f32(&t, 0, 4, out);
}
END_TEST

START_TEST(test_assert_range)
{
    uint8_t b[16] = {0};
    float out[8];
    struct sq_tensor t = tensor(SQ_DTYPE_F32, b, 4);
    sq_tensor_to_f32(&t, 3, 2, out);
}
END_TEST
#endif

static Suite *dtype_suite(void)
{
    Suite *s = suite_create("dtype");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_unknown);
    suite_add_tcase(s, tc);
    tc = tcase_create("to_f32");
    tcase_add_test(tc, test_f16_exhaustive);
    tcase_add_test(tc, test_f16_values);
    tcase_add_test(tc, test_bf16);
    tcase_add_test(tc, test_f64_rounding);
    tcase_add_test(tc, test_f32_range_unaligned);
#ifndef NDEBUG
    tcase_add_test_raise_signal(tc, test_assert_not_quantizable, SIGABRT);
    tcase_add_test_raise_signal(tc, test_assert_range, SIGABRT);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(dtype_suite());
}

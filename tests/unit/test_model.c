/* Unit tests for src/formats/model.c: sq_model, limits, format names and detection. */
#include "sqtest.h"

static struct sq_model m;
static struct sq_error e;

static void setup(void)
{
    sq_model_init(&m);
    sq_error_init(&e);
}

static void teardown(void)
{
    sq_model_free(&m);
}

static const float w6[6] = {1, 2, 3, 4, 5, 6};
static const int64_t s23[2] = {2, 3};

START_TEST(test_add_find)
{
    CHECK_OK(sq_model_add(&m, "a", SQ_DTYPE_F32, 2, s23, w6, sizeof w6, false, &e), &e);
    CHECK_OK(sq_model_add(&m, "b.weight", SQ_DTYPE_I8, 1, s23, "xy", 2, false, &e), &e);
    CHECK_OK(sq_model_add(&m, "scalar", SQ_DTYPE_F32, 0, NULL, w6, 4, false, &e), &e);
    CHECK_OK(sq_model_add(&m, "empty", SQ_DTYPE_F16, 2, (int64_t[]){0, 5}, NULL, 0, false, &e), &e);
    CHECK_OK(sq_model_add(&m, "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80", SQ_DTYPE_U8, 1, (int64_t[]){1},
                          "z", 1, false, &e),
             &e);
    ck_assert_uint_eq(m.count, 5);
    ck_assert_int_eq(sq_model_find(&m, "a"), 0);
    ck_assert_int_eq(sq_model_find(&m, "b.weight"), 1);
    ck_assert_int_eq(sq_model_find(&m, "b"), -1);
    ck_assert_int_eq(sq_model_find(&m, "empty"), 3);
    const struct sq_tensor *t = &m.tensors[0];
    ck_assert_str_eq(t->name, "a");
    ck_assert_uint_eq(t->rank, 2);
    ck_assert_uint_eq(t->nelems, 6);
    ck_assert_uint_eq(t->nbytes, 24);
    ck_assert_ptr_eq(t->data, (const uint8_t *)w6);
    ck_assert_ptr_null(t->owned);
    ck_assert_uint_eq(m.tensors[2].nelems, 1);
    ck_assert_uint_eq(m.tensors[3].nelems, 0);
    ck_assert_int_eq(e.status, SQ_OK); /* untouched on success */
}
END_TEST

START_TEST(test_add_owned)
{
    float *w = malloc(sizeof w6);
    memcpy(w, w6, sizeof w6);
    CHECK_OK(sq_model_add(&m, "w", SQ_DTYPE_F32, 2, s23, w, sizeof w6, true, &e), &e);
    ck_assert_ptr_eq(m.tensors[0].owned, (uint8_t *)w);
    /* on failure the caller keeps ownership */
    float *v = malloc(sizeof w6);
    CHECK_ERR(sq_model_add(&m, "w", SQ_DTYPE_F32, 2, s23, v, sizeof w6, true, &e), &e,
              SQ_ERR_CONFLICT, "already", -1);
    free(v);
    ck_assert_uint_eq(m.count, 1);
}
END_TEST

START_TEST(test_add_errors)
{
    CHECK_ERR(sq_model_add(&m, "", SQ_DTYPE_F32, 2, s23, w6, 24, false, &e), &e, SQ_ERR_ARG,
              "empty", -1);
    CHECK_ERR(sq_model_add(&m, NULL, SQ_DTYPE_F32, 2, s23, w6, 24, false, &e), &e, SQ_ERR_ARG, NULL,
              -1);
    static const char *const bad_utf8[] = {"\xff",         "a\x80",        "\xc0\x80",
                                           "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                           "\xc3",         "\xf0\x9f\x98"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++)
        CHECK_ERR(sq_model_add(&m, bad_utf8[i], SQ_DTYPE_F32, 2, s23, w6, 24, false, &e), &e,
                  SQ_ERR_ARG, "UTF-8", -1);
    CHECK_ERR(sq_model_add(&m, "x", SQ_DTYPE_COUNT, 2, s23, w6, 24, false, &e), &e, SQ_ERR_DTYPE,
              "dtype", -1);
    int64_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK_ERR(sq_model_add(&m, "x", SQ_DTYPE_F32, 9, s9, w6, 4, false, &e), &e, SQ_ERR_SHAPE,
              "rank 9", -1);
    CHECK_ERR(sq_model_add(&m, "x", SQ_DTYPE_F32, 2, (int64_t[]){2, -3}, w6, 24, false, &e), &e,
              SQ_ERR_SHAPE, "negative", -1);
    CHECK_ERR(sq_model_add(&m, "x", SQ_DTYPE_F32, 2,
                           (int64_t[]){INT64_C(1) << 40, INT64_C(1) << 40}, w6, 24, false, &e),
              &e, SQ_ERR_SHAPE, "too many", -1);
    CHECK_ERR(sq_model_add(&m, "x", SQ_DTYPE_F32, 2, s23, w6, 20, false, &e), &e, SQ_ERR_SHAPE,
              "needs 24 bytes, got 20", -1);
    ck_assert_str_eq(e.tensor, "x");
    CHECK_ERR(sq_model_add(&m, "x", SQ_DTYPE_F32, 2, s23, NULL, 24, false, &e), &e, SQ_ERR_ARG,
              "no data", -1);
    CHECK_ERR(sq_model_add(&m, "x", SQ_DTYPE_F32, 2, NULL, w6, 24, false, &e), &e, SQ_ERR_ARG,
              "without a shape", -1);
    ck_assert_uint_eq(m.count, 0);
    /* NULL err is allowed */
    ck_assert_int_eq(sq_model_add(&m, "", SQ_DTYPE_F32, 2, s23, w6, 24, false, NULL), SQ_ERR_ARG);
}
END_TEST

START_TEST(test_many)
{
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "t%d", i);
        CHECK_OK(sq_model_add(&m, name, SQ_DTYPE_F32, 1, (int64_t[]){1}, w6 + i % 6, 4, false, &e),
                 &e);
    }
    ck_assert_uint_eq(m.count, 1000);
    ck_assert_uint_ge(m.cap, 1000);
    ck_assert_int_eq(sq_model_find(&m, "t999"), 999);
    ck_assert_str_eq(m.tensors[500].name, "t500");
    sq_model_free(&m);
    ck_assert_uint_eq(m.count, 0);
    ck_assert_ptr_null(m.tensors);
    sq_model_free(&m); /* twice is fine */
}
END_TEST

/* 20 000 names sharing a 900-byte prefix: quadratic lookups would take hours, the index does not.
 */
START_TEST(test_many_long_names)
{
    enum { N = 20000, PREFIX = 900 };
    char *name = malloc(PREFIX + 16);
    memset(name, 'p', PREFIX);
    for (int i = 0; i < N; i++) {
        snprintf(name + PREFIX, 16, "%d", i);
        CHECK_OK(sq_model_add(&m, name, SQ_DTYPE_F32, 1, (int64_t[]){1}, w6, 4, false, &e), &e);
        CHECK_OK(sq_model_set_meta(&m, name, "v", &e), &e);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name + PREFIX, 16, "%d", i);
        ck_assert_int_eq(sq_model_find(&m, name), i);
        CHECK_OK(sq_model_set_meta(&m, name, "w", &e), &e); /* replaces */
    }
    ck_assert_uint_eq(m.meta_count, N);
    ck_assert_str_eq(m.meta[N - 1].value, "w");
    snprintf(name + PREFIX, 16, "%d", N);
    ck_assert_int_eq(sq_model_find(&m, name), -1);
    snprintf(name + PREFIX, 16, "%d", 7);
    CHECK_ERR(sq_model_add(&m, name, SQ_DTYPE_F32, 1, (int64_t[]){1}, w6, 4, false, &e), &e,
              SQ_ERR_CONFLICT, "already in the model", -1);
    free(name);
}
END_TEST

/* A model whose count was changed by hand is searched linearly, and still right. */
START_TEST(test_find_after_hand_edit)
{
    CHECK_OK(sq_model_add(&m, "a", SQ_DTYPE_F32, 1, (int64_t[]){1}, w6, 4, false, &e), &e);
    CHECK_OK(sq_model_add(&m, "b", SQ_DTYPE_F32, 1, (int64_t[]){1}, w6, 4, false, &e), &e);
    m.count = 1;
    ck_assert_int_eq(sq_model_find(&m, "b"), -1);
    ck_assert_int_eq(sq_model_find(&m, "a"), 0);
    free(m.tensors[1].name);
    /* adding re-syncs the index with what the model now holds */
    CHECK_OK(sq_model_add(&m, "b", SQ_DTYPE_F32, 1, (int64_t[]){1}, w6, 4, false, &e), &e);
    ck_assert_int_eq(sq_model_find(&m, "b"), 1);
    struct sq_model plain = {.tensors = m.tensors, .count = 2, .cap = m.cap}; /* no index */
    ck_assert_int_eq(sq_model_find(&plain, "b"), 1);
    ck_assert_int_eq(sq_model_find(&plain, "c"), -1);
}
END_TEST

START_TEST(test_meta)
{
    CHECK_OK(sq_model_set_meta(&m, "format", "pt", &e), &e);
    CHECK_OK(sq_model_set_meta(&m, "", "empty key is allowed", &e), &e);
    CHECK_OK(sq_model_set_meta(&m, "format", "np", &e), &e);
    ck_assert_uint_eq(m.meta_count, 2);
    ck_assert_str_eq(m.meta[0].key, "format");
    ck_assert_str_eq(m.meta[0].value, "np");
    CHECK_ERR(sq_model_set_meta(&m, "k", "\xff", &e), &e, SQ_ERR_ARG, "UTF-8", -1);
    CHECK_ERR(sq_model_set_meta(&m, "\xc0\xaf", "v", &e), &e, SQ_ERR_ARG, "UTF-8", -1);
    CHECK_ERR(sq_model_set_meta(&m, NULL, "v", &e), &e, SQ_ERR_ARG, NULL, -1);
    char k[16], v[16];
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d", i);
        CHECK_OK(sq_model_set_meta(&m, k, v, &e), &e);
    }
    ck_assert_uint_eq(m.meta_count, 302);
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_str_eq(m.meta[2 + i].key, k);
    }
}
END_TEST

START_TEST(test_limits)
{
    struct sq_limits l;
    sq_limits_init(&l);
    ck_assert_uint_eq(l.max_tensors, 100000);
    ck_assert_uint_eq(l.max_rank, 8);
    ck_assert(l.max_dim == UINT64_C(1) << 31);
    ck_assert(l.max_tensor_elements == UINT64_C(1) << 34);
    ck_assert(l.max_total_elements == UINT64_C(1) << 36);
    ck_assert_uint_eq(l.max_header_bytes, 100u << 20);
    ck_assert_uint_eq(l.max_name_bytes, 1024);
}
END_TEST

START_TEST(test_format_names)
{
    static const char *const names[] = {"auto", "raw",  "npy",        "safetensors",
                                        "json", "onnx", "dequantized"};
    for (int i = 0; i < SQ_FORMAT_COUNT; i++) {
        enum sq_format f = SQ_FORMAT_COUNT;
        ck_assert_str_eq(sq_format_name((enum sq_format)i), names[i]);
        ck_assert_int_eq(sq_format_from_name(names[i], &f), SQ_OK);
        ck_assert_int_eq(f, i);
    }
    enum sq_format f = SQ_FORMAT_JSON;
    ck_assert_int_eq(sq_format_from_name("NPY", &f), SQ_ERR_UNSUPPORTED);
    ck_assert_int_eq(sq_format_from_name("ONNX", &f), SQ_ERR_UNSUPPORTED);
    ck_assert_int_eq(sq_format_from_name(NULL, &f), SQ_ERR_UNSUPPORTED);
    ck_assert_int_eq(f, SQ_FORMAT_JSON);
    ck_assert_str_eq(sq_format_name(SQ_FORMAT_COUNT), "unknown");
}
END_TEST

START_TEST(test_detect)
{
    ck_assert_int_eq(sq_format_detect((const uint8_t *)"\x93NUMPY", 6), SQ_FORMAT_NPY);
    ck_assert_int_eq(sq_format_detect((const uint8_t *)"\x93NUMP", 5), SQ_FORMAT_AUTO);
    ck_assert_int_eq(sq_format_detect((const uint8_t *)"", 0), SQ_FORMAT_AUTO);
    size_t n;
    uint8_t *b = sqt_safetensors("{}", NULL, 0, &n);
    ck_assert_int_eq(sq_format_detect(b, n), SQ_FORMAT_SAFETENSORS);
    ck_assert_int_eq(sq_format_detect(b, n - 1), SQ_FORMAT_AUTO); /* header past the end */
    b[8] = '[';
    ck_assert_int_eq(sq_format_detect(b, n), SQ_FORMAT_AUTO);
    b[8] = '{';
    b[0] = 1;
    ck_assert_int_eq(sq_format_detect(b, n), SQ_FORMAT_SAFETENSORS); /* 1 <= 2 bytes follow */
    b[7] = 0x80;
    ck_assert_int_eq(sq_format_detect(b, n), SQ_FORMAT_AUTO);
    free(b);
    ck_assert_int_eq(sq_format_detect((const uint8_t *)"PK\3\4 zip file", 14), SQ_FORMAT_AUTO);
}
END_TEST

START_TEST(test_parse_dispatch)
{
    size_t n;
    uint8_t *b = sqt_safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                                 w6, 4, &n);
    CHECK_OK(sq_model_parse(b, n, SQ_FORMAT_AUTO, NULL, NULL, &m, &e), &e);
    ck_assert_uint_eq(m.count, 1);
    /* a model that is not empty is refused, and left as it was */
    CHECK_ERR(sq_model_parse(b, n, SQ_FORMAT_SAFETENSORS, NULL, NULL, &m, &e), &e, SQ_ERR_ARG,
              "empty", -1);
    ck_assert_uint_eq(m.count, 1);
    sq_model_free(&m);
    CHECK_ERR(sq_model_parse(b, n, SQ_FORMAT_NPY, NULL, "x", &m, &e), &e, SQ_ERR_FORMAT,
              "\\x93NUMPY", 0);
    CHECK_ERR(sq_model_parse(b, n, SQ_FORMAT_RAW, NULL, "x", &m, &e), &e, SQ_ERR_ARG,
              "sq_raw_parse", -1);
    CHECK_ERR(sq_model_parse(b, n, SQ_FORMAT_JSON, NULL, "x", &m, &e), &e, SQ_ERR_UNSUPPORTED,
              "json", -1);
    free(b);
    CHECK_ERR(sq_model_parse((const uint8_t *)"hello world", 11, SQ_FORMAT_AUTO, NULL, "x", &m, &e),
              &e, SQ_ERR_UNSUPPORTED,
              "unrecognized input: not .npy (\\x93NUMPY), safetensors (8-byte header length + "
              "JSON) or ONNX",
              0);
    CHECK_ERR(sq_model_parse(NULL, 0, SQ_FORMAT_AUTO, NULL, "x", &m, &e), &e, SQ_ERR_UNSUPPORTED,
              "unrecognized", 0);
    ck_assert_uint_eq(m.count, 0);
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_add_find);
    tcase_add_test(tc, test_add_owned);
    tcase_add_test(tc, test_add_errors);
    tcase_add_test(tc, test_many);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_many_long_names);
    tcase_add_test(tc, test_find_after_hand_edit);
    tcase_add_test(tc, test_meta);
    suite_add_tcase(s, tc);
    tc = tcase_create("limits");
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("format");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_format_names);
    tcase_add_test(tc, test_detect);
    tcase_add_test(tc, test_parse_dispatch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(model_suite());
}

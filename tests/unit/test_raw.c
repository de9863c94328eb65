/* Unit tests for src/formats/raw.c: sq_raw_parse. */
#include "sqtest.h"

static struct sq_model m;
static struct sq_error e;
static struct sq_limits lim;

static void setup(void)
{
    sq_model_init(&m);
    sq_error_init(&e);
    sq_limits_init(&lim);
}

static void teardown(void)
{
    sq_model_free(&m);
}

static const uint8_t blob[48];

START_TEST(test_ok)
{
    int64_t s[2] = {3, 4};
    CHECK_OK(sq_raw_parse(blob, 48, SQ_DTYPE_F32, 2, s, &lim, "w", &m, &e), &e);
    ck_assert_uint_eq(m.count, 1);
    ck_assert_str_eq(m.tensors[0].name, "w");
    ck_assert_ptr_eq(m.tensors[0].data, blob); /* borrowed */
    ck_assert_ptr_null(m.tensors[0].owned);
    ck_assert_uint_eq(m.tensors[0].nelems, 12);
    sq_model_free(&m);
    CHECK_OK(sq_raw_parse(blob, 24, SQ_DTYPE_BF16, 3, (int64_t[]){2, 3, 2}, NULL, NULL, &m, &e),
             &e);
    ck_assert_str_eq(m.tensors[0].name, "tensor");
    sq_model_free(&m);
    CHECK_OK(sq_raw_parse(NULL, 0, SQ_DTYPE_F32, 2, (int64_t[]){0, 4}, NULL, "z", &m, &e), &e);
    ck_assert_uint_eq(m.tensors[0].nbytes, 0);
}
END_TEST

START_TEST(test_errors)
{
    int64_t s[2] = {3, 4};
    CHECK_ERR(sq_raw_parse(blob, 47, SQ_DTYPE_F32, 2, s, &lim, "w", &m, &e), &e, SQ_ERR_SHAPE,
              "raw input is 47 bytes, but shape [3, 4] of F32 needs 48", 47);
    CHECK_ERR(sq_raw_parse(blob, 48, SQ_DTYPE_F16, 2, s, &lim, "w", &m, &e), &e, SQ_ERR_SHAPE,
              "needs 24", 24);
    ck_assert_str_eq(e.tensor, "w");
    CHECK_ERR(sq_raw_parse(blob, 4, SQ_DTYPE_F32, 0, s, &lim, "w", &m, &e), &e, SQ_ERR_SHAPE,
              "1 to 8 dimensions, got 0", -1);
    int64_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    CHECK_ERR(sq_raw_parse(blob, 16, SQ_DTYPE_F32, 9, s9, &lim, "w", &m, &e), &e, SQ_ERR_SHAPE,
              "got 9", -1);
    lim.max_rank = 2;
    CHECK_ERR(sq_raw_parse(blob, 16, SQ_DTYPE_F32, 3, s9, &lim, "w", &m, &e), &e, SQ_ERR_LIMIT,
              "max_rank", -1);
    sq_limits_init(&lim);
    CHECK_ERR(sq_raw_parse(blob, 48, SQ_DTYPE_F32, 2, (int64_t[]){-3, -4}, &lim, "w", &m, &e), &e,
              SQ_ERR_SHAPE, "dimension 0 is -3", -1);
    CHECK_ERR(
        sq_raw_parse(blob, 48, SQ_DTYPE_F32, 1, (int64_t[]){INT64_C(1) << 32}, &lim, "w", &m, &e),
        &e, SQ_ERR_LIMIT, "max_dim", -1);
    lim.max_dim = UINT64_MAX;
    CHECK_ERR(sq_raw_parse(blob, 48, SQ_DTYPE_F32, 2,
                           (int64_t[]){INT64_C(1) << 40, INT64_C(1) << 40}, &lim, "w", &m, &e),
              &e, SQ_ERR_LIMIT, "max_tensor_elements", -1);
    lim.max_tensor_elements = UINT64_MAX;
    lim.max_total_elements = 11;
    CHECK_ERR(sq_raw_parse(blob, 48, SQ_DTYPE_F32, 2, s, &lim, "w", &m, &e), &e, SQ_ERR_LIMIT,
              "max_total_elements", -1);
    sq_limits_init(&lim);
    CHECK_ERR(sq_raw_parse(blob, 48, (enum sq_dtype)77, 2, s, &lim, "w", &m, &e), &e, SQ_ERR_DTYPE,
              "unknown dtype", -1);
    CHECK_ERR(sq_raw_parse(blob, 48, SQ_DTYPE_F32, 2, s, &lim, "", &m, &e), &e, SQ_ERR_ARG, "name",
              -1);
    lim.max_name_bytes = 3;
    CHECK_ERR(sq_raw_parse(blob, 48, SQ_DTYPE_F32, 2, s, &lim, "long", &m, &e), &e, SQ_ERR_LIMIT,
              "max_name_bytes", -1);
    lim.max_tensors = 0;
    CHECK_ERR(sq_raw_parse(blob, 48, SQ_DTYPE_F32, 2, s, &lim, "w", &m, &e), &e, SQ_ERR_LIMIT,
              "max_tensors", -1);
    ck_assert_uint_eq(m.count, 0);
}
END_TEST

static Suite *raw_suite(void)
{
    Suite *s = suite_create("raw");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ok);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(raw_suite());
}

/* Unit tests for src/formats/npy.c: sq_npy_parse and sq_npy_write. */
#include <math.h>

#include "sqtest.h"

/*
 * Reference bytes written by numpy 1.24 (np.save), as C strings. The
 * headers are 128 bytes: data starts at a multiple of 64.
 */
/* np.save of f4_3x4 */
static const char npy_f4_3x4_header[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }             "
    "                                             \x0a"; /* 128 bytes */
/* np.save of i1_5 */
static const char npy_i1_5_header[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '|i1', 'fortran_order': False, 'shape': (5,), }               "
    "                                             \x0a"; /* 128 bytes */
/* np.save of f8_scalar */
static const char npy_f8_scalar_header[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (), }                 "
    "                                             \x0a"; /* 128 bytes */
/* np.save of u2_rank8 */
static const char npy_u2_rank8_header[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<u2', 'fortran_order': False, 'shape': (1, 2, 1, 2, 1, 2, 1, "
    "2), }                                        \x0a"; /* 128 bytes */
/* np.save of f4_big0 */
static const char npy_f4_big0_header[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }             "
    "                                             \x0a"; /* 128 bytes */
static const char npy_be_f2[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '>f2', 'fortran_order': False, 'shape': (12,), }              "
    "                                             "
    "\x0a\x00\x00\x80\x00<\x00\xc0\x00{\xff\x04\x00\x00\x01\x00"
    "2|\x00\xfc\x00"
    "5T\x00\x02"; /* 152 bytes */
static const uint32_t npy_be_f2_want[] = {0x00000000u, 0x80000000u, 0x3f800000u, 0xc0000000u,
                                          0x477fe000u, 0x38800000u, 0x33800000u, 0x36480000u,
                                          0x7f800000u, 0xff800000u, 0x3eaa8000u, 0x34000000u};
static const char npy_be_f8[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2), }             "
    "                                             "
    "\x0a\x3f\xf8\x00\x00\x00\x00\x00\x00\xbf\xb9\x99\x99\x99\x99\x99\x9a"
    "7\xa1l&'wW\x9cG\xef\xf9"
    "3\xc7\x8c\xdf\xad"; /* 160 bytes */
static const uint32_t npy_be_f8_want[] = {0x3fc00000u, 0xbdcccccdu, 0x000116c2u, 0x7f7fc99eu};
static const char npy_be_f4[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }               "
    "                                             "
    "\x0a\x3f\x80\x00\x00\xc0P\x00\x00\x00\x00\x00\x01"; /* 140 bytes */
static const char npy_be_i2[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '>i2', 'fortran_order': False, 'shape': (3,), }               "
    "                                             \x0a\x00\x01\xff\xfe\x01,"; /* 134 bytes */

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

/* Parse `len` bytes of `s`. */
static enum sq_status parse(const char *s, size_t len)
{
    sq_model_free(&m);
    return sq_npy_parse((const uint8_t *)s, len, &lim, "w", &m, &e);
}

/*
 * Parse a version 1.0 file whose header is "{" dict "}" padded to 128 bytes
 * with `n` data bytes of zeros.
 */
static enum sq_status parse_dict(const char *dict, size_t n)
{
    char h[512];
    size_t k = (size_t)snprintf(h, sizeof h, "%s", dict);
    while (k < 117)
        h[k++] = ' ';
    h[k++] = '\n';
    h[k] = '\0';
    size_t len;
    uint8_t *zeros = calloc(1, n + 1);
    uint8_t *b = sqt_npy(1, h, zeros, n, &len);
    sq_model_free(&m);
    enum sq_status st = sq_npy_parse(b, len, &lim, "w", &m, &e);
    free(b);
    free(zeros);
    return st;
}

/* ------------------------------------------------------------------ parse */

START_TEST(test_numpy_files)
{
    char f[128 + 48];
    memcpy(f, npy_f4_3x4_header, 128);
    for (int i = 0; i < 12; i++) {
        float v = (float)i;
        memcpy(f + 128 + 4 * i, &v, 4);
    }
    CHECK_OK(parse(f, sizeof f), &e);
    ck_assert_uint_eq(m.count, 1);
    const struct sq_tensor *t = &m.tensors[0];
    ck_assert_str_eq(t->name, "w");
    ck_assert_int_eq(t->dtype, SQ_DTYPE_F32);
    ck_assert_uint_eq(t->rank, 2);
    ck_assert_int_eq(t->shape[0], 3);
    ck_assert_int_eq(t->shape[1], 4);
    ck_assert_ptr_eq(t->data, (const uint8_t *)f + 128); /* borrowed */
    ck_assert_ptr_null(t->owned);
    float out[12];
    sq_tensor_to_f32(t, 0, 12, out);
    ck_assert(out[11] == 11.0f);

    char g[128 + 5];
    memcpy(g, npy_i1_5_header, 128);
    memcpy(g + 128, "\xff\x02\xfd\x04\x7f", 5);
    CHECK_OK(parse(g, sizeof g), &e);
    ck_assert_int_eq(m.tensors[0].dtype, SQ_DTYPE_I8);
    ck_assert_uint_eq(m.tensors[0].rank, 1);
    ck_assert_int_eq(m.tensors[0].shape[0], 5);

    char s[128 + 8];
    memcpy(s, npy_f8_scalar_header, 128);
    double d = 2.5;
    memcpy(s + 128, &d, 8);
    CHECK_OK(parse(s, sizeof s), &e);
    ck_assert_uint_eq(m.tensors[0].rank, 0);
    ck_assert_uint_eq(m.tensors[0].nelems, 1);
    sq_tensor_to_f32(&m.tensors[0], 0, 1, out);
    ck_assert(out[0] == 2.5f);

    char r[128 + 32] = {0};
    memcpy(r, npy_u2_rank8_header, 128);
    CHECK_OK(parse(r, sizeof r), &e);
    ck_assert_uint_eq(m.tensors[0].rank, 8);
    ck_assert_int_eq(m.tensors[0].dtype, SQ_DTYPE_U16);

    CHECK_OK(parse(npy_f4_big0_header, 128), &e);
    ck_assert_uint_eq(m.tensors[0].nelems, 0);
    ck_assert_uint_eq(m.tensors[0].nbytes, 0);
}
END_TEST

START_TEST(test_big_endian)
{
    float out[12];
    CHECK_OK(parse(npy_be_f2, sizeof npy_be_f2 - 1), &e);
    const struct sq_tensor *t = &m.tensors[0];
    ck_assert_int_eq(t->dtype, SQ_DTYPE_F16);
    ck_assert_ptr_nonnull(t->owned); /* a little-endian copy */
    ck_assert_ptr_eq(t->data, t->owned);
    sq_tensor_to_f32(t, 0, 12, out);
    for (int i = 0; i < 12; i++)
        ck_assert_msg(sqt_bits(out[i]) == npy_be_f2_want[i], "%d: %a", i, out[i]);

    CHECK_OK(parse(npy_be_f8, sizeof npy_be_f8 - 1), &e);
    sq_tensor_to_f32(&m.tensors[0], 0, 4, out);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(sqt_bits(out[i]) == npy_be_f8_want[i], "%d: %a", i, out[i]);

    CHECK_OK(parse(npy_be_f4, sizeof npy_be_f4 - 1), &e);
    sq_tensor_to_f32(&m.tensors[0], 0, 3, out);
    ck_assert(out[0] == 1.0f && out[1] == -3.25f && sqt_bits(out[2]) == 1);

    CHECK_OK(parse(npy_be_i2, sizeof npy_be_i2 - 1), &e);
    ck_assert_int_eq(m.tensors[0].dtype, SQ_DTYPE_I16);
    ck_assert(memcmp(m.tensors[0].data, "\x01\x00\xfe\xff\x2c\x01", 6) == 0);
}
END_TEST

START_TEST(test_versions)
{
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }  \n";
    float d[2] = {1, 2};
    for (unsigned v = 1; v <= 3; v++) {
        size_t len;
        uint8_t *b = sqt_npy(v, h, d, 8, &len);
        sq_model_free(&m);
        CHECK_OK(sq_npy_parse(b, len, &lim, "v", &m, &e), &e);
        ck_assert_int_eq(m.tensors[0].shape[0], 2);
        ck_assert_ptr_eq(m.tensors[0].data, b + len - 8);
        free(b);
    }
}
END_TEST

START_TEST(test_grammar_accepts)
{
    static const char *const ok[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",
        "{'descr':'<f4','fortran_order':False,'shape':(2,3,)}",
        "{  'descr'  :  '<f4'  ,  'fortran_order'  :  False  ,  'shape'  :  ( 2 , 3 )  ,  }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 1), }",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ck_assert_msg(parse_dict(ok[i], 24) == SQ_OK, "%s: %s", ok[i], e.message);
        ck_assert_uint_eq(m.tensors[0].nelems, 6);
    }
    static const struct {
        const char *descr;
        enum sq_dtype dtype;
        size_t size;
    } types[] = {
        {"<f4", SQ_DTYPE_F32, 4}, {"<f2", SQ_DTYPE_F16, 2},  {"<f8", SQ_DTYPE_F64, 8},
        {">f4", SQ_DTYPE_F32, 4}, {"|i1", SQ_DTYPE_I8, 1},   {"|u1", SQ_DTYPE_U8, 1},
        {"<i1", SQ_DTYPE_I8, 1},  {"|b1", SQ_DTYPE_BOOL, 1}, {"<i2", SQ_DTYPE_I16, 2},
        {"<u2", SQ_DTYPE_U16, 2}, {"<i4", SQ_DTYPE_I32, 4},  {"<u4", SQ_DTYPE_U32, 4},
        {"<i8", SQ_DTYPE_I64, 8}, {">u8", SQ_DTYPE_U64, 8},
    };
    char dict[128];
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (3,), }",
                 types[i].descr);
        ck_assert_msg(parse_dict(dict, 3 * types[i].size) == SQ_OK, "%s: %s", types[i].descr,
                      e.message);
        ck_assert_int_eq(m.tensors[0].dtype, types[i].dtype);
    }
}
END_TEST

/* ------------------------------------------------------------------ malformed */

START_TEST(test_prefix_and_magic)
{
    char f[128 + 48] = {0};
    memcpy(f, npy_f4_3x4_header, 128);
    for (size_t n = 0; n < sizeof f; n++) {
        enum sq_status st = parse(f, n);
        ck_assert_msg(st == SQ_ERR_FORMAT, "prefix %zu: %s", n, sq_status_name(st));
        ck_assert_uint_eq(m.count, 0);
    }
    CHECK_ERR(parse(f, 5), &e, SQ_ERR_FORMAT, "\\x93NUMPY", 0);
    CHECK_ERR(parse(f, 7), &e, SQ_ERR_FORMAT, "truncated", 7);
    CHECK_ERR(parse(f, 9), &e, SQ_ERR_FORMAT, "truncated", 9);
    CHECK_ERR(parse(f, 100), &e, SQ_ERR_FORMAT, "runs past the end", 8);
    CHECK_ERR(parse(f, 128), &e, SQ_ERR_FORMAT, "truncated file", 128);
    CHECK_ERR(parse(f, 130), &e, SQ_ERR_FORMAT, "is 2 bytes, but shape [3, 4] of '<f4' needs 48",
              128);
    f[0] = 'X';
    CHECK_ERR(parse(f, sizeof f), &e, SQ_ERR_FORMAT, "not an npy file", 0);
    ck_assert_str_eq(e.tensor, "w");
}
END_TEST

START_TEST(test_trailing_data)
{
    char f[128 + 49] = {0};
    memcpy(f, npy_f4_3x4_header, 128);
    CHECK_ERR(parse(f, sizeof f), &e, SQ_ERR_FORMAT,
              "is 49 bytes, but shape [3, 4] of '<f4' needs "
              "48 (trailing bytes)",
              128);
}
END_TEST

START_TEST(test_versions_bad)
{
    char f[128 + 48] = {0};
    memcpy(f, npy_f4_3x4_header, 128);
    static const uint8_t bad[][2] = {{0, 0}, {1, 1}, {4, 0}, {2, 1}, {255, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f[6] = (char)bad[i][0];
        f[7] = (char)bad[i][1];
        CHECK_ERR(parse(f, sizeof f), &e, SQ_ERR_FORMAT, "is not supported (1.0, 2.0 and 3.0 are)",
                  6);
    }
    /* version 2.0 reads a 4-byte length: here 0x0000_0076 | 0x7b << 16 ... runs past the end */
    f[6] = 2;
    f[7] = 0;
    CHECK_ERR(parse(f, sizeof f), &e, SQ_ERR_FORMAT, "runs past the end", 8);
}
END_TEST

START_TEST(test_header_limit)
{
    char f[128 + 48] = {0};
    memcpy(f, npy_f4_3x4_header, 128);
    lim.max_header_bytes = 117;
    CHECK_ERR(parse(f, sizeof f), &e, SQ_ERR_LIMIT, "header length 118 is above the limit 117", 8);
    lim.max_header_bytes = 118;
    CHECK_OK(parse(f, sizeof f), &e);
    lim.max_name_bytes = 0;
    CHECK_ERR(parse(f, sizeof f), &e, SQ_ERR_LIMIT, "max_name_bytes", -1);
}
END_TEST

/* Grammar errors: each dict (padded to 128 bytes), status, message and offset. */
START_TEST(test_grammar_errors)
{
    static const struct {
        const char *dict;
        enum sq_status st;
        const char *msg;
        int64_t offset;
    } cases[] = {
        {"['descr']", SQ_ERR_FORMAT, "npy header at byte 10: expected '{', found '['", 10},
        {" {'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_FORMAT, "expected '{'",
         10},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (6,)}", SQ_ERR_FORMAT,
         "npy header at byte 26: expected ',' or '}' after the value of 'descr', found a quote",
         26},
        {"{'descr': '<f4', 'fortran_order': False 'shape': (6,)}", SQ_ERR_FORMAT,
         "expected ',' or '}' after the value of 'fortran_order', found a quote", 50},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,) x}", SQ_ERR_FORMAT,
         "expected ',' or '}' after the value of 'shape', found 'x'", 65},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1}", SQ_ERR_FORMAT,
         "unknown key 'extra'", 66},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_FORMAT,
         "key 'descr' appears twice", 27},
        {"{'descr': '<f4', 'shape': (6,)}", SQ_ERR_FORMAT, "lacks the key 'fortran_order'", 10},
        {"{'descr': '<f4', 'fortran_order': False}", SQ_ERR_FORMAT, "lacks the key 'shape'", 10},
        {"{'descr' '<f4', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_FORMAT,
         "expected ':' after the key 'descr'", 19},
        {"{descr: '<f4', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_FORMAT,
         "expected a quoted string for a key, found 'd'", 11},
        {"{'descr': <f4, 'fortran_order': False, 'shape': (6,)}", SQ_ERR_FORMAT,
         "expected a quoted string for the value of 'descr'", 20},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (6,)}", SQ_ERR_FORMAT,
         "expected ',' or '}' after the value of 'descr', found 'f'", 27},
        {"{'descr': '<f\\x34', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_FORMAT,
         "escape sequences are not supported", 23},
        {"{'descr': '<f4\xc3\xa9', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_FORMAT,
         "holds byte 0xc3: only printable ASCII", 24},
        {"{'descr': '<f4', 'fortran_order': false, 'shape': (6,)}", SQ_ERR_FORMAT,
         "'fortran_order' must be True or False, found 'f'", 44},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", SQ_ERR_FORMAT,
         "must be True or False", 44},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [6]}", SQ_ERR_FORMAT,
         "the value of 'shape' must be a tuple, found '['", 60},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6)}", SQ_ERR_FORMAT,
         "is not a tuple: a 1-tuple is written (n,)", 60},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}", SQ_ERR_FORMAT,
         "expected ',' or ')' in the shape, found '3'", 63},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,,3)}", SQ_ERR_FORMAT,
         "expected an integer in the shape, found ','", 63},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (06,)}", SQ_ERR_FORMAT,
         "dimension 0 of the shape has a leading zero", 61},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6.0,)}", SQ_ERR_FORMAT,
         "expected ',' or ')' in the shape, found '.'", 62},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6L,)}", SQ_ERR_FORMAT, "found 'L'",
         62},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}", SQ_ERR_SHAPE,
         "dimension 1 of the shape is negative", 64},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
         SQ_ERR_LIMIT, "dimension 0 of the shape is above the limit 2147483648 (max_dim)", 61},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2147483649,)}", SQ_ERR_LIMIT,
         "max_dim", 61},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", SQ_ERR_LIMIT,
         "more than 8 dimensions (max_rank)", 77},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648, 2147483648, 8)}",
         SQ_ERR_LIMIT, "(max_tensor_elements)", 10},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,)", SQ_ERR_FORMAT,
         "expected ',' or '}' after the value of 'shape', found a newline", 127},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}x", SQ_ERR_FORMAT,
         "expected spaces and a final '\\n' after the dict, found 'x'", 65},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (6,)}", SQ_ERR_FORMAT,
         "Fortran order is not supported; save with np.ascontiguousarray", 10},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,)}", SQ_ERR_DTYPE,
         "structured dtypes", 20},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_DTYPE,
         "object arrays ('|O') are not supported", 20},
        {"{'descr': 'O', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_DTYPE, "object arrays",
         20},
        {"{'descr': '<U5', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_DTYPE,
         "dtype '<U5' is not supported", 20},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_DTYPE, "'<c8'", 20},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_DTYPE, "'|f4'", 20},
        {"{'descr': '=f4', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_DTYPE, "'=f4'", 20},
        {"{'descr': 'f4', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_DTYPE, "'f4'", 20},
        {"{'descr': '<f3', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_DTYPE, "'<f3'", 20},
        {"{'descr': '<M8[s]', 'fortran_order': False, 'shape': (6,)}", SQ_ERR_DTYPE, "'<M8[s]'",
         20},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sq_error_init(&e);
        enum sq_status st = parse_dict(cases[i].dict, 24);
        ck_assert_msg(st == cases[i].st, "case %zu (%s): %s: %s", i, cases[i].dict,
                      sq_status_name(st), e.message);
        ck_assert_msg(strstr(e.message, cases[i].msg), "case %zu: message \"%s\" lacks \"%s\"", i,
                      e.message, cases[i].msg);
        ck_assert_msg(cases[i].offset == -2 || e.offset == cases[i].offset,
                      "case %zu: offset %lld, expected %lld (%s)", i, (long long)e.offset,
                      (long long)cases[i].offset, e.message);
        ck_assert_uint_eq(m.count, 0);
    }
}
END_TEST

START_TEST(test_newline_rules)
{
    size_t len;
    const char *body = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
    char h[256];
    /* no final newline */
    snprintf(h, sizeof h, "%s   ", body);
    uint8_t *b = sqt_npy(1, h, "abcd", 4, &len);
    CHECK_ERR(sq_npy_parse(b, len, &lim, "w", &m, &e), &e, SQ_ERR_FORMAT, "final '\\n'", -2);
    free(b);
    /* newline, then more spaces */
    snprintf(h, sizeof h, "%s \n  ", body);
    b = sqt_npy(1, h, "abcd", 4, &len);
    CHECK_ERR(sq_npy_parse(b, len, &lim, "w", &m, &e), &e, SQ_ERR_FORMAT, "final '\\n'", -2);
    free(b);
    /* tab padding */
    snprintf(h, sizeof h, "%s\t\n", body);
    b = sqt_npy(1, h, "abcd", 4, &len);
    CHECK_ERR(sq_npy_parse(b, len, &lim, "w", &m, &e), &e, SQ_ERR_FORMAT, "found byte 0x09", -2);
    free(b);
    /* just the newline is fine */
    snprintf(h, sizeof h, "%s\n", body);
    b = sqt_npy(1, h, "abcd", 4, &len);
    CHECK_OK(sq_npy_parse(b, len, &lim, "w", &m, &e), &e);
    free(b);
    /* empty header */
    sq_model_free(&m);
    b = sqt_npy(1, "", NULL, 0, &len);
    CHECK_ERR(sq_npy_parse(b, len, &lim, "w", &m, &e), &e, SQ_ERR_FORMAT,
              "expected '{', found the end of the header", 10);
    free(b);
}
END_TEST

START_TEST(test_element_limits)
{
    lim.max_tensor_elements = 5;
    CHECK_ERR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", 24), &e,
              SQ_ERR_LIMIT, "shape [2, 3] has more than 5 elements", 10);
    sq_limits_init(&lim);
    lim.max_total_elements = 5;
    CHECK_ERR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", 24), &e,
              SQ_ERR_LIMIT, "max_total_elements", 10);
    sq_limits_init(&lim);
    lim.max_rank = 1;
    CHECK_ERR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", 24), &e,
              SQ_ERR_LIMIT, "more than 1 dimensions", 64);
    lim.max_rank = 100; /* clamped to SQ_MAX_RANK */
    CHECK_ERR(
        parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", 4), &e,
        SQ_ERR_LIMIT, "more than 8", -2);
    sq_limits_init(&lim);
    lim.max_tensors = 0;
    CHECK_ERR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", 24), &e,
              SQ_ERR_LIMIT, "max_tensors", -1);
}
END_TEST

START_TEST(test_args)
{
    char f[128 + 48] = {0};
    memcpy(f, npy_f4_3x4_header, 128);
    CHECK_ERR(sq_npy_parse((const uint8_t *)f, sizeof f, NULL, "", &m, &e), &e, SQ_ERR_ARG,
              "non-empty", -1);
    CHECK_ERR(sq_npy_parse((const uint8_t *)f, sizeof f, NULL, "\xff", &m, &e), &e, SQ_ERR_ARG,
              "UTF-8", -1);
    CHECK_OK(sq_npy_parse((const uint8_t *)f, sizeof f, NULL, NULL, &m, &e), &e);
    ck_assert_str_eq(m.tensors[0].name, "tensor");
    CHECK_ERR(sq_npy_parse((const uint8_t *)f, sizeof f, NULL, NULL, &m, &e), &e, SQ_ERR_ARG,
              "must be empty", -1);
    ck_assert_uint_eq(m.count, 1);
}
END_TEST

/* ------------------------------------------------------------------ write */

static void write_ok(const struct sq_tensor *t, uint8_t **out, size_t *len)
{
    CHECK_OK(sq_npy_write(t, SIZE_MAX, out, len, &e), &e);
}

START_TEST(test_write_numpy_identical)
{
    static const struct {
        const char *header;
        enum sq_dtype dtype;
        unsigned rank;
        int64_t shape[8];
    } cases[] = {
        {npy_f4_3x4_header, SQ_DTYPE_F32, 2, {3, 4}},
        {npy_i1_5_header, SQ_DTYPE_I8, 1, {5}},
        {npy_f8_scalar_header, SQ_DTYPE_F64, 0, {0}},
        {npy_u2_rank8_header, SQ_DTYPE_U16, 8, {1, 2, 1, 2, 1, 2, 1, 2}},
        {npy_f4_big0_header, SQ_DTYPE_F32, 2, {0, 3}},
    };
    static uint8_t data[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sq_model_free(&m);
        size_t n = 1;
        for (unsigned k = 0; k < cases[i].rank; k++)
            n *= (size_t)cases[i].shape[k];
        n *= sq_dtype_size(cases[i].dtype);
        CHECK_OK(sq_model_add(&m, "x", cases[i].dtype, cases[i].rank, cases[i].shape, data, n,
                              false, &e),
                 &e);
        uint8_t *out;
        size_t len;
        write_ok(&m.tensors[0], &out, &len);
        ck_assert_uint_eq(len, 128 + n);
        ck_assert_msg(memcmp(out, cases[i].header, 128) == 0, "case %zu: %.128s", i, out);
        /* and back */
        struct sq_model m2;
        sq_model_init(&m2);
        CHECK_OK(sq_npy_parse(out, len, NULL, "x", &m2, &e), &e);
        ck_assert_uint_eq(m2.tensors[0].rank, cases[i].rank);
        ck_assert_int_eq(m2.tensors[0].dtype, cases[i].dtype);
        uint8_t *again;
        size_t len2;
        write_ok(&m2.tensors[0], &again, &len2);
        ck_assert(len2 == len && memcmp(again, out, len) == 0);
        free(again);
        sq_model_free(&m2);
        free(out);
    }
}
END_TEST

START_TEST(test_write_big_endian_input)
{
    CHECK_OK(parse(npy_be_f2, sizeof npy_be_f2 - 1), &e);
    uint8_t *out;
    size_t len;
    write_ok(&m.tensors[0], &out, &len);
    ck_assert_uint_eq(len, 128 + 24);
    ck_assert(memcmp(out + 10, "{'descr': '<f2'", 15) == 0);
    ck_assert(memcmp(out + 128, m.tensors[0].data, 24) == 0);
    free(out);
}
END_TEST

START_TEST(test_write_alignment)
{
    static uint8_t data[8];
    char name[16];
    for (int64_t d0 = 1; d0 < INT64_C(10000000000000); d0 = d0 * 10 + 3) {
        int64_t shape[3] = {d0, 0, 7};
        struct sq_tensor t = {.name = name, .dtype = SQ_DTYPE_F32, .rank = 3, .data = data};
        memcpy(t.shape, shape, sizeof shape);
        uint8_t *out;
        size_t len;
        write_ok(&t, &out, &len);
        ck_assert_uint_eq(len % 64, 0);
        ck_assert_uint_eq(out[len - 1], '\n');
        ck_assert_uint_eq(out[6], 1);
        ck_assert_uint_eq((size_t)(out[8] | out[9] << 8) + 10, len);
        free(out);
    }
}
END_TEST

START_TEST(test_write_errors)
{
    static uint8_t data[24];
    int64_t s[2] = {2, 3};
    struct sq_tensor t = {.name = (char *)"b",
                          .dtype = SQ_DTYPE_BF16,
                          .rank = 2,
                          .nelems = 6,
                          .nbytes = 12,
                          .data = data};
    memcpy(t.shape, s, sizeof s);
    uint8_t *out = NULL;
    size_t len;
    CHECK_ERR(sq_npy_write(&t, SIZE_MAX, &out, &len, &e), &e, SQ_ERR_DTYPE,
              "BF16 has no .npy dtype", -1);
    ck_assert_str_eq(e.tensor, "b");
    t.dtype = SQ_DTYPE_F8_E4M3;
    t.nbytes = 6;
    CHECK_ERR(sq_npy_write(&t, SIZE_MAX, &out, &len, &e), &e, SQ_ERR_DTYPE, "F8_E4M3", -1);
    t.dtype = SQ_DTYPE_F32;
    CHECK_ERR(sq_npy_write(&t, SIZE_MAX, &out, &len, &e), &e, SQ_ERR_ARG, "disagree", -1);
    t.nbytes = 24;
    CHECK_ERR(sq_npy_write(&t, 128 + 23, &out, &len, &e), &e, SQ_ERR_LIMIT,
              "exceed the limit of 151 bytes", -1);
    ck_assert_ptr_null(out);
    CHECK_OK(sq_npy_write(&t, 128 + 24, &out, &len, &e), &e);
    ck_assert_uint_eq(len, 152);
    free(out);
}
END_TEST

static Suite *npy_suite(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_numpy_files);
    tcase_add_test(tc, test_big_endian);
    tcase_add_test(tc, test_versions);
    tcase_add_test(tc, test_grammar_accepts);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_prefix_and_magic);
    tcase_add_test(tc, test_trailing_data);
    tcase_add_test(tc, test_versions_bad);
    tcase_add_test(tc, test_header_limit);
    tcase_add_test(tc, test_grammar_errors);
    tcase_add_test(tc, test_newline_rules);
    tcase_add_test(tc, test_element_limits);
    tcase_add_test(tc, test_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("write");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_write_numpy_identical);
    tcase_add_test(tc, test_write_big_endian_input);
    tcase_add_test(tc, test_write_alignment);
    tcase_add_test(tc, test_write_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(npy_suite());
}

/* Unit tests for src/formats/safetensors.c: sq_safetensors_parse and sq_safetensors_write. */
#include "sqtest.h"

static struct sq_model m;
static struct sq_error e;
static struct sq_limits lim;
static uint8_t *file;
static size_t file_len;

static void setup(void)
{
    sq_model_init(&m);
    sq_error_init(&e);
    sq_limits_init(&lim);
    file = NULL;
}

static void teardown(void)
{
    sq_model_free(&m);
    free(file);
}

static uint8_t zeros[4096];

/* Parse a file made of `json` and n bytes of data (zeros when data is NULL). */
static enum sq_status parse(const char *json, const void *data, size_t n)
{
    free(file);
    file = sqt_safetensors(json, data ? data : zeros, n, &file_len);
    sq_model_free(&m);
    return sq_safetensors_parse(file, file_len, &lim, &m, &e);
}

#define T(name, dtype, shape, b, end)                                                              \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #end "]" \
    "}"

/* ------------------------------------------------------------------ parse */

START_TEST(test_parse_basic)
{
    float w[6] = {1, 2, 3, 4, 5, 6};
    uint8_t data[24 + 8];
    memcpy(data, w, 24);
    memcpy(data + 24, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    CHECK_OK(parse("{\"__metadata__\":{\"format\":\"pt\",\"x\":\"\\u00e9\"}," T(
                       "w", "F32", "[2,3]", 0, 24) "," T("b", "I16", "[4]", 24, 32) "}",
                   data, sizeof data),
             &e);
    ck_assert_uint_eq(m.count, 2);
    ck_assert_str_eq(m.tensors[0].name, "w");
    ck_assert_int_eq(m.tensors[0].dtype, SQ_DTYPE_F32);
    ck_assert_uint_eq(m.tensors[0].rank, 2);
    ck_assert_int_eq(m.tensors[0].shape[1], 3);
    ck_assert_ptr_eq(m.tensors[0].data, file + file_len - 32); /* borrowed */
    ck_assert_ptr_null(m.tensors[0].owned);
    ck_assert_ptr_eq(m.tensors[1].data, file + file_len - 8);
    ck_assert_int_eq(m.tensors[1].dtype, SQ_DTYPE_I16);
    ck_assert_uint_eq(m.meta_count, 2);
    ck_assert_str_eq(m.meta[0].key, "format");
    ck_assert_str_eq(m.meta[0].value, "pt");
    ck_assert_str_eq(m.meta[1].value, "\xc3\xa9");
    float out[6];
    sq_tensor_to_f32(&m.tensors[0], 0, 6, out);
    ck_assert(out[5] == 6.0f);
}
END_TEST

START_TEST(test_parse_order_and_edges)
{
    /* header order differs from data order: the model keeps the header's order */
    CHECK_OK(parse("{" T("z", "F32", "[2]", 8, 16) "," T("a", "F32", "[2]", 0, 8) "}", NULL, 16),
             &e);
    ck_assert_str_eq(m.tensors[0].name, "z");
    ck_assert_str_eq(m.tensors[1].name, "a");
    ck_assert_ptr_eq(m.tensors[0].data, file + file_len - 8);
    /* empty model, padded header, scalars, zero-size tensors, metadata null */
    CHECK_OK(parse("{}", NULL, 0), &e);
    ck_assert_uint_eq(m.count, 0);
    CHECK_OK(parse("{}      ", NULL, 0), &e);
    CHECK_OK(parse("{\"__metadata__\":null," T("s", "F64", "[]", 0, 8) "," T(
                       "e", "BF16", "[0,4]", 8, 8) "," T("e2", "BOOL", "[3,0]", 0, 0) "}   ",
                   NULL, 8),
             &e);
    ck_assert_uint_eq(m.count, 3);
    ck_assert_uint_eq(m.tensors[0].rank, 0);
    ck_assert_uint_eq(m.tensors[0].nelems, 1);
    ck_assert_uint_eq(m.tensors[1].nelems, 0);
    ck_assert_uint_eq(m.meta_count, 0);
    /* every dtype */
    static const char *const names[] = {"F32",     "F16", "BF16", "F64", "F8_E4M3",
                                        "F8_E5M2", "I8",  "U8",   "I16", "U16",
                                        "I32",     "U32", "I64",  "U64", "BOOL"};
    char json[256];
    for (int i = 0; i < SQ_DTYPE_COUNT; i++) {
        size_t sz = sq_dtype_size((enum sq_dtype)i);
        snprintf(json, sizeof json,
                 "{\"t\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%zu]}}", names[i],
                 3 * sz);
        CHECK_OK(parse(json, NULL, 3 * sz), &e);
        ck_assert_int_eq(m.tensors[0].dtype, i);
    }
    /* key order inside an entry does not matter */
    CHECK_OK(parse("{\"t\":{\"data_offsets\":[0,2],\"shape\":[1],\"dtype\":\"F16\"}}", NULL, 2),
             &e);
}
END_TEST

/* ------------------------------------------------------------------ malformed */

START_TEST(test_prefixes)
{
    const char *json = "{\"__metadata__\":{\"a\":\"b\"}," T("w", "F32", "[2,3]", 0, 24) "}";
    size_t len;
    uint8_t *f = sqt_safetensors(json, zeros, 24, &len);
    for (size_t n = 0; n < len; n++) {
        sq_model_free(&m);
        enum sq_status st = sq_safetensors_parse(f, n, &lim, &m, &e);
        ck_assert_msg(st == SQ_ERR_FORMAT, "prefix %zu: %s (%s)", n, sq_status_name(st), e.message);
        ck_assert_uint_eq(m.count, 0);
        ck_assert_uint_eq(m.meta_count, 0);
    }
    CHECK_OK(sq_safetensors_parse(f, len, &lim, &m, &e), &e);
    sq_model_free(&m);
    CHECK_ERR(sq_safetensors_parse(f, 7, &lim, &m, &e), &e, SQ_ERR_FORMAT,
              "safetensors file is 7 bytes, too short for the 8-byte header length", 0);
    CHECK_ERR(sq_safetensors_parse(f, 20, &lim, &m, &e), &e, SQ_ERR_FORMAT,
              "runs past the end of the 20-byte file", 0);
    CHECK_ERR(sq_safetensors_parse(f, len - 1, &lim, &m, &e), &e, SQ_ERR_FORMAT,
              "run past the end of the 23-byte data section", (int64_t)(len - 24));
    ck_assert_str_eq(e.tensor, "w");
    free(f);
}
END_TEST

START_TEST(test_header_length)
{
    uint8_t f[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    CHECK_ERR(sq_safetensors_parse(f, 10, &lim, &m, &e), &e, SQ_ERR_FORMAT,
              "safetensors header length 9223372036854775807 at byte 0 runs past the end of "
              "the 10-byte file",
              0);
    memset(f, 0xff, 8);
    CHECK_ERR(sq_safetensors_parse(f, 16, &lim, &m, &e), &e, SQ_ERR_FORMAT, "runs past", 0);
    lim.max_header_bytes = 5;
    CHECK_ERR(parse("{}    ", NULL, 0), &e, SQ_ERR_LIMIT,
              "safetensors header length 6 is above the limit 5 (max_header_bytes)", 0);
    lim.max_header_bytes = 6;
    CHECK_OK(parse("{}    ", NULL, 0), &e);
    CHECK_ERR(parse("", NULL, 0), &e, SQ_ERR_FORMAT, "must be a JSON object", 8);
    CHECK_ERR(parse("{", NULL, 0), &e, SQ_ERR_FORMAT, "must be a JSON object", 8);
    CHECK_ERR(parse(" {}", NULL, 0), &e, SQ_ERR_FORMAT, "start with '{'", 8);
    CHECK_ERR(parse("[1]", NULL, 0), &e, SQ_ERR_FORMAT, "start with '{'", 8);
}
END_TEST

START_TEST(test_not_json)
{
    CHECK_ERR(parse("{\"a\":}", NULL, 0), &e, SQ_ERR_FORMAT, "safetensors header is not valid JSON",
              -2);
    ck_assert_int_ge(e.offset, 8);
    CHECK_ERR(parse("{}x", NULL, 0), &e, SQ_ERR_FORMAT, "not valid JSON", -2);
    CHECK_ERR(parse("{} \n\t{}", NULL, 0), &e, SQ_ERR_FORMAT, "not valid JSON", -2);
    CHECK_ERR(parse("{\"\xff\":1}", NULL, 0), &e, SQ_ERR_FORMAT, "not valid JSON", -2);
    CHECK_ERR(parse("{\"a\\u0000b\":1}", NULL, 0), &e, SQ_ERR_FORMAT, "not valid JSON", -2);
    /* padded with NUL bytes instead of spaces */
    free(file);
    file = sqt_safetensors("{}xx", NULL, 0, &file_len);
    file[10] = file[11] = 0;
    CHECK_ERR(sq_safetensors_parse(file, file_len, &lim, &m, &e), &e, SQ_ERR_FORMAT,
              "not valid JSON", -2);
    CHECK_ERR(parse("{" T("w", "F32", "[1]", 0, 4) "," T("w", "F32", "[1]", 4, 8) "}", NULL, 8), &e,
              SQ_ERR_FORMAT, "duplicate object key", -2);
    CHECK_ERR(parse("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,"
                    "4]}}",
                    NULL, 4),
              &e, SQ_ERR_FORMAT, "duplicate", -2);
    CHECK_ERR(parse("{\"w\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":"
                    "[0,4]}}",
                    NULL, 4),
              &e, SQ_ERR_FORMAT, "too big integer", -2);
}
END_TEST

/* Entry errors: one header each (data: 64 zero bytes unless the case says). */
START_TEST(test_entry_errors)
{
    static const struct {
        const char *json;
        size_t data;
        enum sq_status st;
        const char *msg;
        const char *tensor;
    } cases[] = {
        {"{\"w\":[1]}", 0, SQ_ERR_FORMAT, "tensor 'w': its header entry is not a JSON object", "w"},
        {"{\"w\":\"F32\"}", 0, SQ_ERR_FORMAT, "not a JSON object", "w"},
        {"{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SQ_ERR_FORMAT,
         "tensor 'w': \"dtype\" is missing or not a string", "w"},
        {"{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SQ_ERR_FORMAT,
         "\"dtype\" is missing or not a string", "w"},
        {"{\"w\":{\"dtype\":\"F4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SQ_ERR_DTYPE,
         "tensor 'w': unknown dtype 'F4'", "w"},
        {"{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SQ_ERR_DTYPE,
         "unknown dtype 'f32'", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, SQ_ERR_FORMAT,
         "\"shape\" is missing or not an array", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4, SQ_ERR_FORMAT,
         "not an array", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, SQ_ERR_FORMAT,
         "dimension 0 of \"shape\" is not an integer", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]}}", 8, SQ_ERR_FORMAT,
         "dimension 1 of \"shape\" is not an integer", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8, SQ_ERR_SHAPE,
         "tensor 'w': dimension 1 is -1, must be >= 0", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296],\"data_offsets\":[0,4]}}", 4,
         SQ_ERR_LIMIT, "dimension 0 is 4294967296, above the limit 2147483648 (max_dim)", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,"
         "4]}}",
         4, SQ_ERR_LIMIT, "max_dim", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648,2147483648],\"data_offsets\":"
         "[0,4]}}",
         4, SQ_ERR_LIMIT, "has more than 17179869184 elements (max_tensor_elements)", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         SQ_ERR_LIMIT, "tensor 'w': rank 9 is above the limit 8 (max_rank)", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, SQ_ERR_FORMAT,
         "\"data_offsets\" must be [begin, end] of non-negative integers", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, SQ_ERR_FORMAT,
         "\"data_offsets\" must be", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, SQ_ERR_FORMAT,
         "\"data_offsets\" must be", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, SQ_ERR_FORMAT,
         "\"data_offsets\" must be", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 4, SQ_ERR_FORMAT,
         "\"data_offsets\" must be", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"0\":4}}}", 4, SQ_ERR_FORMAT,
         "\"data_offsets\" must be", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, SQ_ERR_FORMAT,
         "tensor 'w': data_offsets [4, 0] end before they begin", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,9223372036854775807]}}", 4,
         SQ_ERR_FORMAT, "run past the end of the 4-byte data section", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, SQ_ERR_SHAPE,
         "tensor 'w': shape [2] of F32 needs 8 bytes, but data_offsets [0, 4] hold 4", "w"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
         SQ_ERR_FORMAT, "tensor 'w': unknown key 'x'", "w"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SQ_ERR_FORMAT,
         "a tensor has an empty name", ""},
        {"{\"__metadata__\":{\"a\":1}}", 0, SQ_ERR_FORMAT,
         "the __metadata__ value of 'a' is not a string", ""},
        {"{\"__metadata__\":{\"a\":\"b\",\"c\":null}}", 0, SQ_ERR_FORMAT,
         "value of 'c' is not a string", ""},
        {"{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, SQ_ERR_FORMAT, "not a string", ""},
        {"{\"__metadata__\":[\"a\"]}", 0, SQ_ERR_FORMAT, "must be an object of strings", ""},
        {"{\"__metadata__\":\"a\"}", 0, SQ_ERR_FORMAT, "must be an object of strings", ""},
        /* jansson's null is a singleton: an entry of null must not pass for the metadata */
        {"{\"__metadata__\":null,\"w\":null}", 0, SQ_ERR_FORMAT,
         "tensor 'w': its header entry is not a JSON object", "w"},
        {"{\"w\":null,\"__metadata__\":null}", 0, SQ_ERR_FORMAT, "not a JSON object", "w"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sq_error_init(&e);
        enum sq_status st = parse(cases[i].json, NULL, cases[i].data);
        ck_assert_msg(st == cases[i].st, "case %zu (%s): %s: %s", i, cases[i].json,
                      sq_status_name(st), e.message);
        ck_assert_msg(strstr(e.message, cases[i].msg), "case %zu: message \"%s\" lacks \"%s\"", i,
                      e.message, cases[i].msg);
        ck_assert_str_eq(e.tensor, cases[i].tensor);
        ck_assert_int_ge(e.offset, 8);
        ck_assert_uint_eq(m.count, 0);
        ck_assert_uint_eq(m.meta_count, 0);
    }
}
END_TEST

START_TEST(test_tiling)
{
    /* overlap */
    CHECK_ERR(parse("{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 4, 12) "}", NULL, 12),
              &e, SQ_ERR_FORMAT,
              "safetensors data: tensor 'b' at data bytes [4, 12] overlaps tensor 'a'", -2);
    ck_assert_int_eq(e.offset, (int64_t)(file_len - 12 + 4));
    ck_assert_str_eq(e.tensor, "b");
    /* the same bytes twice */
    CHECK_ERR(parse("{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 0, 8) "}", NULL, 8), &e,
              SQ_ERR_FORMAT, "overlaps tensor 'a'", -2);
    /* a zero-size tensor inside another one */
    CHECK_ERR(parse("{" T("a", "F32", "[2]", 0, 8) "," T("z", "F32", "[0]", 4, 4) "}", NULL, 8), &e,
              SQ_ERR_FORMAT, "overlaps", -2);
    /* gap at the start and in the middle */
    CHECK_ERR(parse("{" T("a", "F32", "[2]", 4, 12) "}", NULL, 12), &e, SQ_ERR_FORMAT,
              "safetensors data: a gap of 4 bytes at data byte 0, before tensor 'a'", -2);
    ck_assert_int_eq(e.offset, (int64_t)(file_len - 12));
    CHECK_ERR(parse("{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[1]", 12, 16) "}", NULL, 16),
              &e, SQ_ERR_FORMAT, "a gap of 4 bytes at data byte 8, before tensor 'b'", -2);
    /* not covering: bytes left over at the end */
    CHECK_ERR(parse("{" T("a", "F32", "[2]", 0, 8) "}", NULL, 11), &e, SQ_ERR_FORMAT,
              "the tensors cover 8 bytes of the 11-byte data section, 3 bytes are left over", -2);
    ck_assert_int_eq(e.offset, (int64_t)(file_len - 3));
    CHECK_ERR(parse("{}", NULL, 1), &e, SQ_ERR_FORMAT, "cover 0 bytes of the 1-byte", -2);
    /* zero-size tensors at the ends are fine */
    CHECK_OK(parse("{" T("z0", "F32", "[0]", 0, 0) "," T("a", "F32", "[2]", 0,
                                                         8) "," T("z1", "F32", "[0]", 8, 8) "}",
                   NULL, 8),
             &e);
}
END_TEST

START_TEST(test_limits)
{
    char json[4096];
    size_t o = (size_t)snprintf(json, sizeof json, "{");
    for (int i = 0; i < 20; i++)
        o +=
            (size_t)snprintf(json + o, sizeof json - o,
                             "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%d,%d]}",
                             i ? "," : "", i, 8 * i, 8 * i + 8);
    snprintf(json + o, sizeof json - o, "}");
    lim.max_tensors = 19;
    CHECK_ERR(parse(json, NULL, 160), &e, SQ_ERR_LIMIT,
              "safetensors header lists 20 tensors, above the limit 19 (max_tensors)", 8);
    lim.max_tensors = 20;
    CHECK_OK(parse(json, NULL, 160), &e);
    lim.max_total_elements = 39;
    CHECK_ERR(parse(json, NULL, 160), &e, SQ_ERR_LIMIT,
              "tensor 't19': the tensors hold more than 39 elements in total (max_total_elements)",
              8);
    ck_assert_str_eq(e.tensor, "t19");
    sq_limits_init(&lim);
    lim.max_tensor_elements = 1;
    CHECK_ERR(parse(json, NULL, 160), &e, SQ_ERR_LIMIT, "tensor 't0': shape [2] has more than 1",
              8);
    sq_limits_init(&lim);
    lim.max_name_bytes = 2;
    CHECK_ERR(parse(json, NULL, 160), &e, SQ_ERR_LIMIT,
              "tensor name of 3 bytes is above the limit 2 (max_name_bytes)", 8);
    ck_assert_str_eq(e.tensor, "t10");
    sq_limits_init(&lim);
    lim.max_dim = UINT64_MAX;
    lim.max_rank = 2;
    CHECK_ERR(parse("{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
                    "\"data_offsets\":[0,4]}}",
                    NULL, 4),
              &e, SQ_ERR_LIMIT, "(max_tensor_elements)", 8);
    lim.max_tensor_elements = UINT64_MAX;
    CHECK_ERR(parse("{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
                    "\"data_offsets\":[0,4]}}",
                    NULL, 4),
              &e, SQ_ERR_LIMIT, "shape [1099511627776, 1099511627776] has more than", 8);
    /* an overflowing running product is refused even when a later dimension is 0 */
    lim.max_rank = 3;
    CHECK_ERR(parse("{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,0],"
                    "\"data_offsets\":[0,0]}}",
                    NULL, 0),
              &e, SQ_ERR_LIMIT, "has more than", 8);
    lim.max_rank = 2;
    CHECK_ERR(
        parse("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1],\"data_offsets\":[0,4]}}", NULL, 4), &e,
        SQ_ERR_LIMIT, "rank 3 is above the limit 2", 8);
}
END_TEST

START_TEST(test_args)
{
    CHECK_OK(parse("{\"__metadata__\":{}}", NULL, 0), &e); /* leaves the model empty */
    CHECK_OK(sq_safetensors_parse(file, file_len, &lim, &m, &e), &e);
    CHECK_OK(parse("{" T("a", "F32", "[2]", 0, 8) "}", NULL, 8), &e);
    CHECK_ERR(sq_safetensors_parse(file, file_len, &lim, &m, &e), &e, SQ_ERR_ARG, "empty", -1);
    ck_assert_uint_eq(m.count, 1);
    sq_model_free(&m);
    CHECK_OK(sq_safetensors_parse(file, file_len, NULL, &m, &e), &e);
    sq_model_free(&m);
    CHECK_ERR(sq_safetensors_parse(NULL, 0, NULL, &m, &e), &e, SQ_ERR_FORMAT, "0 bytes", 0);
}
END_TEST

/* ------------------------------------------------------------------ write */

static uint8_t *write_ok(const struct sq_model *model, size_t *len)
{
    uint8_t *out = NULL;
    CHECK_OK(sq_safetensors_write(model, SIZE_MAX, &out, len, &e), &e);
    return out;
}

/* A model with metadata and tensors of odd sizes. */
static void build(struct sq_model *model)
{
    static const float w[6] = {1, -2, 3.5f, 0, 5, 6};
    static const uint8_t c[5] = {1, 2, 3, 4, 5};
    CHECK_OK(
        sq_model_add(model, "layer.weight", SQ_DTYPE_F32, 2, (int64_t[]){2, 3}, w, 24, false, &e),
        &e);
    CHECK_OK(sq_model_add(model, "codes", SQ_DTYPE_I8, 1, (int64_t[]){5}, c, 5, false, &e), &e);
    CHECK_OK(sq_model_add(model, "scalar", SQ_DTYPE_F32, 0, NULL, w, 4, false, &e), &e);
    CHECK_OK(sq_model_add(model, "empty", SQ_DTYPE_F16, 2, (int64_t[]){0, 7}, NULL, 0, false, &e),
             &e);
    CHECK_OK(sq_model_set_meta(model, "format", "pt", &e), &e);
    CHECK_OK(sq_model_set_meta(model, "squant", "{\"bits\":4,\"q\":\"\\\"\\u00e9\"}", &e), &e);
}

START_TEST(test_write_exact)
{
    build(&m);
    size_t len;
    uint8_t *out = write_ok(&m, &len);
    const char *want =
        "{\"__metadata__\":{\"format\":\"pt\",\"squant\":\"{\\\"bits\\\":4,\\\"q\\\":"
        "\\\"\\\\\\\"\\\\"
        "u00e9\\\"}\"},\"layer.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"
        ","
        "\"codes\":{\"dtype\":\"I8\",\"shape\":[5],\"data_offsets\":[24,29]},\"scalar\":{\"dtype\":"
        "\"F32\",\"shape\":[],\"data_offsets\":[29,33]},\"empty\":{\"dtype\":\"F16\",\"shape\":[0,"
        "7],\"data_offsets\":[33,33]}}";
    size_t n = strlen(want), padded = (n + 7) / 8 * 8;
    ck_assert_uint_eq(len, 8 + padded + 33);
    ck_assert(sqt_le64(out) == padded);
    ck_assert_msg(memcmp(out + 8, want, n) == 0, "%.*s", (int)padded, out + 8);
    for (size_t i = n; i < padded; i++)
        ck_assert_uint_eq(out[8 + i], ' ');
    ck_assert(memcmp(out + 8 + padded, m.tensors[0].data, 24) == 0);
    ck_assert(memcmp(out + 8 + padded + 24, "\1\2\3\4\5", 5) == 0);
    free(out);
}
END_TEST

START_TEST(test_round_trip)
{
    build(&m);
    size_t len, len2, len3;
    uint8_t *out = write_ok(&m, &len);
    uint8_t *again = write_ok(&m, &len2); /* deterministic */
    ck_assert(len == len2 && memcmp(out, again, len) == 0);
    free(again);
    struct sq_model p;
    sq_model_init(&p);
    CHECK_OK(sq_safetensors_parse(out, len, NULL, &p, &e), &e);
    ck_assert_uint_eq(p.count, m.count);
    ck_assert_uint_eq(p.meta_count, 2);
    for (size_t i = 0; i < m.count; i++) {
        ck_assert_str_eq(p.tensors[i].name, m.tensors[i].name);
        ck_assert_int_eq(p.tensors[i].dtype, m.tensors[i].dtype);
        ck_assert_uint_eq(p.tensors[i].rank, m.tensors[i].rank);
        ck_assert_uint_eq(p.tensors[i].nbytes, m.tensors[i].nbytes);
        ck_assert(m.tensors[i].nbytes == 0 ||
                  memcmp(p.tensors[i].data, m.tensors[i].data, m.tensors[i].nbytes) == 0);
    }
    ck_assert_str_eq(p.meta[1].value, m.meta[1].value);
    uint8_t *third = write_ok(&p, &len3);
    ck_assert(len3 == len && memcmp(third, out, len) == 0); /* byte-identical rewrite */
    free(third);
    sq_model_free(&p);
    free(out);
}
END_TEST

START_TEST(test_write_empty_and_limits)
{
    size_t len;
    uint8_t *out = write_ok(&m, &len);
    ck_assert_uint_eq(len, 16);
    ck_assert(memcmp(out, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
    free(out);
    build(&m);
    out = write_ok(&m, &len);
    free(out);
    out = NULL;
    size_t got = 0;
    CHECK_ERR(sq_safetensors_write(&m, len - 1, &out, &got, &e), &e, SQ_ERR_LIMIT,
              "would exceed the limit", -1);
    ck_assert_ptr_null(out);
    CHECK_ERR(sq_safetensors_write(&m, 20, &out, &got, &e), &e, SQ_ERR_LIMIT, "exceed", -1);
    CHECK_OK(sq_safetensors_write(&m, len, &out, &got, &e), &e);
    ck_assert_uint_eq(got, len);
    free(out);
}
END_TEST

START_TEST(test_write_conflicts)
{
    static const float w[1] = {1};
    uint8_t *out = NULL;
    size_t len;
    CHECK_OK(sq_model_add(&m, "__metadata__", SQ_DTYPE_F32, 1, (int64_t[]){1}, w, 4, false, &e),
             &e);
    CHECK_ERR(sq_safetensors_write(&m, SIZE_MAX, &out, &len, &e), &e, SQ_ERR_CONFLICT,
              "__metadata__", -1);
    sq_model_free(&m);
    CHECK_OK(sq_model_add(&m, "a", SQ_DTYPE_F32, 1, (int64_t[]){1}, w, 4, false, &e), &e);
    CHECK_OK(sq_model_add(&m, "b", SQ_DTYPE_F32, 1, (int64_t[]){1}, w, 4, false, &e), &e);
    m.tensors[1].name[0] = 'a'; /* a model built by hand with a duplicate */
    CHECK_ERR(sq_safetensors_write(&m, SIZE_MAX, &out, &len, &e), &e, SQ_ERR_CONFLICT,
              "tensor name 'a' appears twice", -1);
    m.tensors[1].name[0] = 'b';
    m.tensors[1].nbytes = 8; /* inconsistent */
    CHECK_ERR(sq_safetensors_write(&m, SIZE_MAX, &out, &len, &e), &e, SQ_ERR_ARG, "disagree", -1);
    m.tensors[1].nbytes = 4;
    free(m.tensors[1].name);
    m.tensors[1].name = strdup("\xff");
    CHECK_ERR(sq_safetensors_write(&m, SIZE_MAX, &out, &len, &e), &e, SQ_ERR_ARG, "UTF-8", -1);
    ck_assert_ptr_null(out);
}
END_TEST

START_TEST(test_write_real_layout)
{
    /* 100 tensors: offsets contiguous, header a multiple of 8, parse gives the same model */
    static float w[100 * 3];
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "blocks.%d.weight", i);
        CHECK_OK(sq_model_add(&m, name, SQ_DTYPE_F32, 1, (int64_t[]){i % 4}, w + i,
                              (size_t)(i % 4) * 4, false, &e),
                 &e);
    }
    size_t len;
    uint8_t *out = write_ok(&m, &len);
    uint64_t h = sqt_le64(out);
    ck_assert_uint_eq(h % 8, 0);
    struct sq_model p;
    sq_model_init(&p);
    CHECK_OK(sq_safetensors_parse(out, len, NULL, &p, &e), &e);
    ck_assert_uint_eq(p.count, 100);
    ck_assert_str_eq(p.tensors[57].name, "blocks.57.weight");
    sq_model_free(&p);
    free(out);
}
END_TEST

static Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_parse_basic);
    tcase_add_test(tc, test_parse_order_and_edges);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_prefixes);
    tcase_add_test(tc, test_header_length);
    tcase_add_test(tc, test_not_json);
    tcase_add_test(tc, test_entry_errors);
    tcase_add_test(tc, test_tiling);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("write");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_write_exact);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_write_empty_and_limits);
    tcase_add_test(tc, test_write_conflicts);
    tcase_add_test(tc, test_write_real_layout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(safetensors_suite());
}

/* Unit tests for src/formats/onnx.c: sq_onnx_parse, sq_onnx_write and ONNX detection. */
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

/* ------------------------------------------------------------ a tiny protobuf encoder */

struct pb {
    uint8_t *b;
    size_t n;
};

static void put(struct pb *p, const void *d, size_t n)
{
    p->b = realloc(p->b, p->n + n + 1);
    ck_assert_ptr_nonnull(p->b);
    if (n)
        memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void varint(struct pb *p, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        put(p, &c, 1);
    } while (v);
}

static void f_int(struct pb *p, unsigned field, int64_t v)
{
    varint(p, (uint64_t)field << 3);
    varint(p, (uint64_t)v);
}

static void f_bytes(struct pb *p, unsigned field, const void *d, size_t n)
{
    varint(p, (uint64_t)field << 3 | 2);
    varint(p, n);
    put(p, d, n);
}

static void f_str(struct pb *p, unsigned field, const char *s)
{
    f_bytes(p, field, s, strlen(s));
}

/* Append message q as field `field` of p, and free q. */
static void f_msg(struct pb *p, unsigned field, struct pb *q)
{
    f_bytes(p, field, q->b, q->n);
    free(q->b);
    q->b = NULL;
    q->n = 0;
}

/* A FLOAT TensorProto: dims, raw_data of n floats (NULL: none). */
static struct pb tensor(const char *name, unsigned rank, const int64_t *dims, int type,
                        const float *raw, size_t n)
{
    struct pb t = {0};
    for (unsigned i = 0; i < rank; i++)
        f_int(&t, 1, dims[i]);
    f_int(&t, 2, type);
    if (name)
        f_str(&t, 8, name);
    if (raw)
        f_bytes(&t, 9, raw, n * sizeof(float));
    return t;
}

static struct pb node(const char *op, const char *in0, const char *in1, const char *out,
                      const char *attr, int64_t value)
{
    struct pb n = {0};
    if (in0)
        f_str(&n, 1, in0);
    if (in1)
        f_str(&n, 1, in1);
    f_str(&n, 2, out);
    f_str(&n, 4, op);
    if (attr) {
        struct pb a = {0};
        f_str(&a, 1, attr);
        f_int(&a, 3, value);
        f_int(&a, 20, 2);
        f_msg(&n, 5, &a);
    }
    return n;
}

/* A model of graph g (freed) at `opset` (0: no opset_import). */
static struct pb model(struct pb *g, int64_t opset)
{
    struct pb mm = {0};
    f_int(&mm, 1, 8);
    f_str(&mm, 2, "test");
    f_msg(&mm, 7, g);
    if (opset) {
        struct pb o = {0};
        f_str(&o, 1, "");
        f_int(&o, 2, opset);
        f_msg(&mm, 8, &o);
    }
    return mm;
}

/* A graph: one Gemm(x, W) with W an initializer [2, 3] (transB = tb), then `extra` appended. */
static struct pb gemm_graph(int64_t tb, const float *w, size_t n, const int64_t *dims,
                            unsigned rank)
{
    struct pb g = {0}, t = tensor("W", rank, dims, 1, w, n),
              nd = node("Gemm", "x", "W", "y", "transB", tb);
    f_msg(&g, 1, &nd);
    f_str(&g, 2, "g");
    f_msg(&g, 5, &t);
    return g;
}

static const float w6[6] = {1, 2, 3, 4, 5, 6};
static const int64_t d23[2] = {2, 3};

static enum sq_status parse_pb(struct pb *p, const struct sq_external *ext, size_t next)
{
    sq_model_free(&m);
    sq_error_init(&e);
    return sq_onnx_parse(p->b, p->n, ext, next, &lim, &m, &e);
}

/* ------------------------------------------------------------ parse */

START_TEST(test_gemm_axes)
{
    struct pb g = gemm_graph(1, w6, 6, d23, 2), p = model(&g, 13);
    ck_assert_int_eq(sq_format_detect(p.b, p.n), SQ_FORMAT_ONNX);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    ck_assert_uint_eq(m.count, 1);
    ck_assert_str_eq(m.tensors[0].name, "W");
    ck_assert_int_eq(m.tensors[0].shape[0], 2); /* transB = 1: [N, K] as is */
    struct sq_onnx_tensor_info info;
    ck_assert(sq_onnx_tensor_info(&m, 0, &info));
    ck_assert_str_eq(info.op, "Gemm");
    ck_assert_int_eq(info.axis, 0);
    ck_assert_int_eq(info.opset, 13);
    free(p.b);

    /* transB = 0: B is [K, N] = [2, 3]: the core sees [3, 2], transposed. */
    g = gemm_graph(0, w6, 6, d23, 2);
    p = model(&g, 13);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    ck_assert_int_eq(m.tensors[0].shape[0], 3);
    ck_assert_int_eq(m.tensors[0].shape[1], 2);
    float got[6];
    sq_tensor_to_f32(&m.tensors[0], 0, 6, got);
    const float want[6] = {1, 4, 2, 5, 3, 6};
    ck_assert_mem_eq(got, want, sizeof want);
    ck_assert(sq_onnx_tensor_info(&m, 0, &info) && info.axis == 1);
    free(p.b);
}
END_TEST

START_TEST(test_conv_transpose_groups)
{
    /* ConvTranspose W [C_in 4, C_out/g 1, 1, 1] with group 2: core [2, 2, 1, 1]. */
    const float w[4] = {1, 2, 3, 4};
    const int64_t d[4] = {4, 1, 1, 1};
    struct pb g = {0}, t = tensor("W", 4, d, 1, w, 4),
              nd = node("ConvTranspose", "x", "W", "y", "group", 2);
    f_msg(&g, 1, &nd);
    f_msg(&g, 5, &t);
    struct pb p = model(&g, 11);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    ck_assert_int_eq(m.tensors[0].shape[0], 2);
    ck_assert_int_eq(m.tensors[0].shape[1], 2);
    float got[4];
    sq_tensor_to_f32(&m.tensors[0], 0, 4, got);
    ck_assert_mem_eq(got, w, sizeof w); /* group g's output channel = its input channels */
    free(p.b);
    /* group 3 does not divide 4: left float, said why. */
    g = (struct pb){0};
    t = tensor("W", 4, d, 1, w, 4);
    nd = node("ConvTranspose", "x", "W", "y", "group", 3);
    f_msg(&g, 1, &nd);
    f_msg(&g, 5, &t);
    p = model(&g, 11);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    ck_assert_uint_eq(m.count, 0);
    const char *name, *why;
    ck_assert_uint_eq(sq_onnx_skipped(&m, 0, &name, &why), 1);
    ck_assert_str_eq(name, "W");
    ck_assert_ptr_nonnull(strstr(why, "group 3 does not divide 4"));
    free(p.b);
}
END_TEST

START_TEST(test_constant_and_conflict)
{
    /* A Constant node's value used by MatMul (axis 1) and Gemm transB=1 (axis 0). */
    const int64_t d[2] = {2, 2};
    struct pb g = {0}, t = tensor(NULL, 2, d, 1, w6, 4), c = {0}, a = {0};
    f_str(&c, 2, "K");
    f_str(&c, 4, "Constant");
    f_str(&a, 1, "value");
    f_msg(&a, 5, &t);
    f_int(&a, 20, 4);
    f_msg(&c, 5, &a);
    f_msg(&g, 1, &c);
    struct pb n1 = node("MatMul", "x", "K", "y", NULL, 0);
    f_msg(&g, 1, &n1);
    struct pb p0 = {0};
    put(&p0, g.b, g.n);
    struct pb n2 = node("Gemm", "y", "K", "z", "transB", 1);
    f_msg(&g, 1, &n2);
    struct pb p = model(&g, 9);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    ck_assert_uint_eq(m.count, 0);
    const char *name, *why;
    ck_assert_uint_eq(sq_onnx_skipped(&m, 0, &name, &why), 1);
    ck_assert_str_eq(name, "K");
    ck_assert_str_eq(why, "used by MatMul (axis 1) and Gemm (axis 0), which disagree");
    free(p.b);
    /* MatMul alone: quantized from the Constant node. */
    p = model(&p0, 9);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    ck_assert_uint_eq(m.count, 1);
    struct sq_onnx_tensor_info info;
    ck_assert(sq_onnx_tensor_info(&m, 0, &info) && info.constant_node && info.axis == 1);
    free(p.b);
}
END_TEST

START_TEST(test_typed_fields)
{
    /* FLOAT16 in int32_data, DOUBLE in double_data, FLOAT in float_data. */
    struct pb g = {0}, t = {0}, nd = node("Gemm", "x", "H", "y", "transB", 1);
    f_int(&t, 1, 2);
    f_int(&t, 1, 1);
    f_int(&t, 2, 10);
    struct pb packed = {0};
    varint(&packed, 0x3c00); /* 1.0 */
    varint(&packed, 0xc000); /* -2.0 */
    f_msg(&t, 5, &packed);
    f_str(&t, 8, "H");
    f_msg(&g, 1, &nd);
    f_msg(&g, 5, &t);
    struct pb t2 = {0}, nd2 = node("Gemm", "x", "D", "z", "transB", 1);
    const double dd[2] = {0.5, -0.25};
    f_int(&t2, 1, 2);
    f_int(&t2, 1, 1);
    f_int(&t2, 2, 11);
    f_bytes(&t2, 10, dd, sizeof dd);
    f_str(&t2, 8, "D");
    f_msg(&g, 1, &nd2);
    f_msg(&g, 5, &t2);
    struct pb t3 = {0}, nd3 = node("Gemm", "x", "F", "v", "transB", 1);
    f_int(&t3, 1, 2);
    f_int(&t3, 1, 1);
    f_int(&t3, 2, 1);
    f_bytes(&t3, 4, w6, 2 * sizeof(float));
    f_str(&t3, 8, "F");
    f_msg(&g, 1, &nd3);
    f_msg(&g, 5, &t3);
    struct pb p = model(&g, 13);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    ck_assert_uint_eq(m.count, 3);
    float f[2];
    ck_assert_int_eq(m.tensors[0].dtype, SQ_DTYPE_F16);
    sq_tensor_to_f32(&m.tensors[0], 0, 2, f);
    ck_assert(f[0] == 1.0f && f[1] == -2.0f);
    ck_assert_int_eq(m.tensors[1].dtype, SQ_DTYPE_F64);
    sq_tensor_to_f32(&m.tensors[1], 0, 2, f);
    ck_assert(f[0] == 0.5f && f[1] == -0.25f);
    ck_assert_int_eq(m.tensors[2].dtype, SQ_DTYPE_F32);
    sq_tensor_to_f32(&m.tensors[2], 0, 2, f);
    ck_assert(f[0] == 1.0f && f[1] == 2.0f);
    free(p.b);
}
END_TEST

START_TEST(test_malformed)
{
    struct pb p = {0};
    /* Not protobuf: a length beyond the end. */
    put(&p, "\x08\x08\x3a\x7f", 4);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_FORMAT,
              "the protobuf encoding of ModelProto is malformed", -1);
    ck_assert_uint_eq(m.count, 0);
    free(p.b);
    p = (struct pb){0};
    f_int(&p, 1, 8);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_FORMAT, "ModelProto has no graph", -1);
    free(p.b);
    struct pb g = gemm_graph(1, w6, 6, d23, 2);
    p = model(&g, 0);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_FORMAT, "no opset_import for the default domain",
              -1);
    free(p.b);
    /* raw_data of 5 floats for a [2, 3] weight */
    g = gemm_graph(1, w6, 5, d23, 2);
    p = model(&g, 13);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_SHAPE,
              "tensor 'W': raw_data holds 20 bytes, its shape needs 24", -1);
    ck_assert_str_eq(e.tensor, "W");
    free(p.b);
    /* no data at all: float_data holds 0 values */
    g = gemm_graph(1, NULL, 0, d23, 2);
    p = model(&g, 13);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_SHAPE,
              "tensor 'W': float_data holds 0 values, its shape needs 6", -1);
    free(p.b);
    const int64_t neg[2] = {2, -3};
    g = gemm_graph(1, w6, 6, neg, 2);
    p = model(&g, 13);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_SHAPE,
              "tensor 'W': dimension 1 is -3, must be >= 0", -1);
    free(p.b);
    const int64_t huge[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
    g = gemm_graph(1, w6, 6, huge, 2);
    p = model(&g, 13);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_LIMIT,
              "tensor 'W': more than 17179869184 elements (max_tensor_elements)", -1);
    free(p.b);
    /* a weight of rank above max_rank */
    lim.max_rank = 1;
    g = gemm_graph(1, w6, 6, d23, 2);
    p = model(&g, 13);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_LIMIT, "rank 2 is above the limit 1 (max_rank)",
              -1);
    free(p.b);
    sq_limits_init(&lim);
    lim.max_tensors = 1;
    g = gemm_graph(1, w6, 6, d23, 2);
    struct pb t = tensor("B", 1, d23, 1, w6, 2);
    f_msg(&g, 5, &t);
    p = model(&g, 13);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_LIMIT,
              "the graph has 2 initializers, above the limit 1 (max_tensors)", -1);
    free(p.b);
    sq_limits_init(&lim);
    /* the same name twice */
    g = gemm_graph(1, w6, 6, d23, 2);
    t = tensor("W", 2, d23, 1, w6, 6);
    f_msg(&g, 5, &t);
    p = model(&g, 13);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_FORMAT,
              "tensor 'W' is defined twice (initializer or Constant output)", -1);
    free(p.b);
    /* an initializer without a name */
    g = gemm_graph(1, w6, 6, d23, 2);
    t = tensor(NULL, 2, d23, 1, w6, 6);
    f_msg(&g, 5, &t);
    p = model(&g, 13);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_FORMAT, "initializer 1 has no name", -1);
    free(p.b);
    /* FLOAT16 int32_data beyond 16 bits */
    g = (struct pb){0};
    struct pb nd = node("Gemm", "x", "H", "y", "transB", 1), h = {0}, packed = {0};
    f_int(&h, 1, 1);
    f_int(&h, 1, 1);
    f_int(&h, 2, 10);
    varint(&packed, 0x10000);
    f_msg(&h, 5, &packed);
    f_str(&h, 8, "H");
    f_msg(&g, 1, &nd);
    f_msg(&g, 5, &h);
    p = model(&g, 13);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_FORMAT,
              "tensor 'H': int32_data[0] = 65536 is not a 16-bit pattern", -1);
    free(p.b);
}
END_TEST

/* A graph whose Gemm weight [2, 3] is external data with the given key/value pairs. */
static struct pb external(const char *const *kv, size_t n)
{
    struct pb g = {0}, t = tensor("W", 2, d23, 1, NULL, 0),
              nd = node("Gemm", "x", "W", "y", "transB", 1);
    for (size_t i = 0; i < n; i++) {
        struct pb s = {0};
        f_str(&s, 1, kv[2 * i]);
        f_str(&s, 2, kv[2 * i + 1]);
        f_msg(&t, 13, &s);
    }
    f_int(&t, 14, 1);
    f_msg(&g, 1, &nd);
    f_msg(&g, 5, &t);
    return model(&g, 13);
}

START_TEST(test_external)
{
    uint8_t blob[40];
    memset(blob, 0, sizeof blob);
    memcpy(blob + 8, w6, sizeof w6);
    struct sq_external ext = {"w.bin", blob, sizeof blob};
    const char *ok[] = {"location", "w.bin", "offset", "8", "length", "24"};
    struct pb p = external(ok, 3);
    CHECK_OK(parse_pb(&p, &ext, 1), &e);
    ck_assert_ptr_eq(m.tensors[0].data, blob + 8);
    char **names;
    size_t n;
    CHECK_OK(sq_onnx_locations(p.b, p.n, NULL, &names, &n, &e), &e);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(names[0], "w.bin");
    sq_onnx_locations_free(names, n);
    CHECK_ERR(parse_pb(&p, NULL, 0), &e, SQ_ERR_FORMAT,
              "tensor 'W': its external data file 'w.bin' was not given", -1);
    free(p.b);
    const char *beyond[] = {"location", "w.bin", "offset", "20", "length", "24"};
    p = external(beyond, 3);
    CHECK_ERR(parse_pb(&p, &ext, 1), &e, SQ_ERR_FORMAT,
              "tensor 'W': external data offset 20 length 24 is beyond the end of 'w.bin' (40 "
              "bytes)",
              -1);
    free(p.b);
    const char *shortlen[] = {"location", "w.bin", "length", "16"};
    p = external(shortlen, 2);
    CHECK_ERR(parse_pb(&p, &ext, 1), &e, SQ_ERR_SHAPE,
              "tensor 'W': external data holds 16 bytes, its shape needs 24", -1);
    free(p.b);
    const char *nan[] = {"location", "w.bin", "offset", "-1"};
    p = external(nan, 2);
    CHECK_ERR(parse_pb(&p, &ext, 1), &e, SQ_ERR_FORMAT,
              "tensor 'W': external_data offset '-1' is not a number", -1);
    free(p.b);
    const char *noloc[] = {"offset", "0"};
    p = external(noloc, 1);
    CHECK_ERR(parse_pb(&p, &ext, 1), &e, SQ_ERR_FORMAT,
              "tensor 'W': external data without a location", -1);
    free(p.b);
}
END_TEST

/* ------------------------------------------------------------ write */

START_TEST(test_write_qdq)
{
    struct pb g = gemm_graph(1, w6, 6, d23, 2), p = model(&g, 13);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    const int8_t codes[6] = {1, 2, 3, -4, -5, -6};
    const float scale[2] = {0.5f, 0.25f}, zp[2] = {-1.0f, 2.0f};
    struct sq_onnx_weight w = {0, codes, scale, zp, NULL, 4, 0};
    uint8_t *out;
    size_t len;
    CHECK_OK(sq_onnx_write(&m, &w, 1, SQ_ONNX_QDQ, "{}", SIZE_MAX, &out, &len, &e), &e);
    /* the output parses; W is no longer a weight (DequantizeLinear computes it) */
    struct sq_model m2;
    sq_model_init(&m2);
    CHECK_OK(sq_onnx_parse(out, len, NULL, 0, &lim, &m2, &e), &e);
    ck_assert_uint_eq(m2.count, 0);
    ck_assert_uint_eq(m2.meta_count, 1);
    ck_assert_str_eq(m2.meta[0].key, "squant");
    ck_assert(memmem(out, len, "DequantizeLinear", 16) && memmem(out, len, "W_quantized", 11));
    sq_model_free(&m2);
    free(out);
    /* too small a limit */
    CHECK_ERR(sq_onnx_write(&m, &w, 1, SQ_ONNX_QDQ, NULL, 10, &out, &len, &e), &e, SQ_ERR_LIMIT,
              "above the limit 10", -1);
    free(p.b);

    /* below opset 13: Cast/Sub/Mul; below 7: refused naming the opset */
    g = gemm_graph(1, w6, 6, d23, 2);
    p = model(&g, 9);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    CHECK_OK(sq_onnx_write(&m, &w, 1, SQ_ONNX_QDQ, NULL, SIZE_MAX, &out, &len, &e), &e);
    ck_assert(!memmem(out, len, "DequantizeLinear", 16) && memmem(out, len, "Cast", 4));
    free(out);
    CHECK_ERR(sq_onnx_write(&m, &w, 1, SQ_ONNX_QDQ_INT4, NULL, SIZE_MAX, &out, &len, &e), &e,
              SQ_ERR_DTYPE, "this model's opset is 9", -1);
    free(p.b);
    g = gemm_graph(1, w6, 6, d23, 2);
    p = model(&g, 6);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    CHECK_ERR(sq_onnx_write(&m, &w, 1, SQ_ONNX_QDQ, NULL, SIZE_MAX, &out, &len, &e), &e,
              SQ_ERR_UNSUPPORTED, "opset 6 is below 7", -1);
    free(p.b);
    /* a name the writer would add is taken */
    g = gemm_graph(1, w6, 6, d23, 2);
    struct pb t = tensor("W_scale", 1, d23, 1, w6, 2);
    f_msg(&g, 5, &t);
    p = model(&g, 13);
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    CHECK_ERR(sq_onnx_write(&m, &w, 1, SQ_ONNX_QDQ, NULL, SIZE_MAX, &out, &len, &e), &e,
              SQ_ERR_CONFLICT, "cannot add 'W_scale'", -1);
    free(p.b);
}
END_TEST

START_TEST(test_dequantize_qdq)
{
    /* QDQ at opset 13 (DequantizeLinear) and 9 (Cast/Sub/Mul) fold back to the same floats. */
    const int8_t codes[6] = {1, 2, 3, -4, -5, -6};
    const float scale[3] = {0.5f, 0.25f, 2.0f}, zp[3] = {-1.0f, 300.0f, 2.0f};
    for (int opset = 9; opset <= 13; opset += 4) {
        struct pb g = gemm_graph(0, w6, 6, d23, 2), p = model(&g, opset);
        CHECK_OK(parse_pb(&p, NULL, 0), &e);
        struct sq_onnx_weight w = {0, codes, scale, zp, NULL, 4, 0};
        uint8_t *out, *back;
        size_t len, blen, n = 0;
        CHECK_OK(sq_onnx_write(&m, &w, 1, SQ_ONNX_QDQ, NULL, SIZE_MAX, &out, &len, &e), &e);
        CHECK_OK(sq_onnx_dequantize(out, len, &lim, SIZE_MAX, &back, &blen, &n, &e), &e);
        ck_assert_uint_eq(n, 1);
        struct sq_model m2;
        sq_model_init(&m2);
        CHECK_OK(sq_onnx_parse(back, blen, NULL, 0, &lim, &m2, &e), &e);
        ck_assert_uint_eq(m2.count, 1);
        float f[6];
        sq_tensor_to_f32(&m2.tensors[0], 0, 6, f);
        for (int i = 0; i < 6; i++) /* core layout [3, 2]: channel i / 2 */
            ck_assert(f[i] == ((float)codes[i] - zp[i / 2]) * scale[i / 2]);
        ck_assert(!memmem(back, blen, "W_quantized", 11));
        sq_model_free(&m2);
        free(back);
        free(out);
        free(p.b);
    }
    /* not a model */
    uint8_t *back;
    size_t blen, n;
    CHECK_ERR(sq_onnx_dequantize((const uint8_t *)"\x08\x08\x3a\x7f", 4, &lim, SIZE_MAX, &back,
                                 &blen, &n, &e),
              &e, SQ_ERR_FORMAT, "malformed", -1);
}
END_TEST

START_TEST(test_dequantize_qdq_groups)
{
    /* Groups of 1 of a [K 2, N 3] Gemm weight: Reshape form at opsets 9 and 13, blocked
     * DequantizeLinear at 21; each folds back to (q - zp) * scale per group. */
    const int8_t codes[6] = {1, 2, 3, -4, -5, -6};
    const float scale[6] = {0.5f, 0.25f, 2.0f, 4.0f, 0.125f, 1.0f};
    const float zp[6] = {-1.0f, 3.0f, 2.0f, 0.0f, 5.0f, -7.0f};
    for (int opset = 9; opset <= 21; opset += opset == 9 ? 4 : 8) {
        struct pb g = gemm_graph(0, w6, 6, d23, 2), p = model(&g, opset);
        CHECK_OK(parse_pb(&p, NULL, 0), &e);
        struct sq_onnx_weight w = {0, codes, scale, zp, NULL, 4, 1};
        uint8_t *out, *back;
        size_t len, blen, n = 0;
        CHECK_OK(sq_onnx_write(&m, &w, 1, SQ_ONNX_QDQ, NULL, SIZE_MAX, &out, &len, &e), &e);
        if (opset == 21)
            ck_assert(memmem(out, len, "block_size", 10) && !memmem(out, len, "Reshape", 7));
        else
            ck_assert(memmem(out, len, "W_view_shape", 12) && !memmem(out, len, "block_size", 10));
        CHECK_OK(sq_onnx_dequantize(out, len, &lim, SIZE_MAX, &back, &blen, &n, &e), &e);
        ck_assert_uint_eq(n, 1);
        struct sq_model m2;
        sq_model_init(&m2);
        CHECK_OK(sq_onnx_parse(back, blen, NULL, 0, &lim, &m2, &e), &e);
        ck_assert_uint_eq(m2.count, 1);
        float f[6];
        sq_tensor_to_f32(&m2.tensors[0], 0, 6, f);
        for (int i = 0; i < 6; i++) /* core layout [3, 2]: a group per element */
            ck_assert(f[i] == ((float)codes[i] - zp[i]) * scale[i]);
        ck_assert(!memmem(back, blen, "W_quantized", 11) && !memmem(back, blen, "Reshape", 7));
        sq_model_free(&m2);
        free(back);
        free(out);
        free(p.b);
    }
}
END_TEST

START_TEST(test_write_dequantized_keeps_fields)
{
    struct pb g = gemm_graph(0, w6, 6, d23, 2), p = model(&g, 13);
    /* an unknown ModelProto field (doc_string, 6) and graph field (doc_string, 10) */
    f_str(&p, 6, "model doc");
    CHECK_OK(parse_pb(&p, NULL, 0), &e);
    const float deq[6] = {10, 40, 20, 50, 30, 60}; /* core layout [3, 2] */
    const int8_t codes[6] = {0};
    const float one[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
    struct sq_onnx_weight w = {0, codes, one, zero, deq, 8, 0};
    uint8_t *out;
    size_t len;
    CHECK_OK(sq_onnx_write(&m, &w, 1, SQ_ONNX_DEQUANTIZED, NULL, SIZE_MAX, &out, &len, &e), &e);
    ck_assert(memmem(out, len, "model doc", 9));
    struct sq_model m2;
    sq_model_init(&m2);
    CHECK_OK(sq_onnx_parse(out, len, NULL, 0, &lim, &m2, &e), &e);
    ck_assert_uint_eq(m2.count, 1);
    float f[6];
    sq_tensor_to_f32(&m2.tensors[0], 0, 6, f);
    ck_assert_mem_eq(f, deq, sizeof deq);
    /* in the model's own layout [2, 3]: 10 20 30 / 40 50 60 */
    const float model_layout[6] = {10, 20, 30, 40, 50, 60};
    ck_assert(memmem(out, len, model_layout, sizeof model_layout));
    sq_model_free(&m2);
    free(out);
    free(p.b);
}
END_TEST

START_TEST(test_detect)
{
    ck_assert_int_eq(sq_format_detect((const uint8_t *)"\x08\x07\x12\x04", 4), SQ_FORMAT_ONNX);
    ck_assert_int_eq(sq_format_detect((const uint8_t *)"\x08\x07\x10\x04", 4), SQ_FORMAT_AUTO);
    ck_assert_int_eq(sq_format_detect((const uint8_t *)"\x08", 1), SQ_FORMAT_AUTO);
}
END_TEST

static Suite *onnx_suite(void)
{
    Suite *s = suite_create("onnx");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_gemm_axes);
    tcase_add_test(tc, test_conv_transpose_groups);
    tcase_add_test(tc, test_constant_and_conflict);
    tcase_add_test(tc, test_typed_fields);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_external);
    tcase_add_test(tc, test_detect);
    suite_add_tcase(s, tc);
    tc = tcase_create("write");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_write_qdq);
    tcase_add_test(tc, test_write_dequantized_keeps_fields);
    tcase_add_test(tc, test_dequantize_qdq);
    tcase_add_test(tc, test_dequantize_qdq_groups);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(onnx_suite());
}

/*
 * Tests of the plan (src/plan): options, tensor selection, work items,
 * determinism of the output whatever order the items run in, and each
 * output format read back.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squant/squant.h>

#define OK(expr)                                                                                   \
    do {                                                                                           \
        struct sq_error e_;                                                                        \
        sq_error_init(&e_);                                                                        \
        enum sq_status st_ = (expr);                                                               \
        ck_assert_msg(st_ == SQ_OK, "%s: %s", #expr, sq_status_name(st_));                         \
    } while (0)

/* A deterministic pseudo-random float in [-0.5, 0.5). */
static float noise(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / (float)(1u << 24) - 0.5f;
}

/* Build a small model: two conv weights, a linear weight, biases, an I8 tensor. */
static void build_model(struct sq_model *m, float **owned)
{
    sq_model_init(m);
    uint32_t s = 1;
    static const struct {
        const char *name;
        unsigned rank;
        int64_t shape[4];
    } t[] = {
        {"conv1.weight", 4, {8, 3, 3, 3}},
        {"conv1.bias", 1, {8}},
        {"conv2.weight", 4, {300, 200, 3, 3}},
        {"fc.weight", 2, {10, 40}},
        {"fc.bias", 1, {10}},
        {"table", 2, {0, 4}},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        size_t n = 1;
        for (unsigned d = 0; d < t[i].rank; d++)
            n *= (size_t)t[i].shape[d];
        total += n;
    }
    float *data = malloc(total * sizeof(float)), *p = data;
    for (size_t i = 0; i < total; i++)
        data[i] = noise(&s);
    struct sq_error err;
    sq_error_init(&err);
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        size_t n = 1;
        for (unsigned d = 0; d < t[i].rank; d++)
            n *= (size_t)t[i].shape[d];
        ck_assert(sq_model_add(m, t[i].name, SQ_DTYPE_F32, t[i].rank, t[i].shape, p,
                               n * sizeof(float), false, &err) == SQ_OK);
        p += n;
    }
    static const int8_t codes[4] = {1, 2, 3, 4};
    int64_t s4[1] = {4};
    ck_assert(sq_model_add(m, "already.int8", SQ_DTYPE_I8, 1, s4, codes, 4, false, &err) == SQ_OK);
    ck_assert(sq_model_set_meta(m, "origin", "unit test", &err) == SQ_OK);
    *owned = data;
}

static void run_all(struct sq_plan *plan, bool reverse)
{
    size_t n = sq_plan_item_count(plan);
    for (size_t k = 0; k < n; k++) {
        struct sq_error err;
        sq_error_init(&err);
        size_t i = reverse ? n - 1 - k : k;
        ck_assert_msg(sq_plan_run(plan, i, &err) == SQ_OK, "item %zu: %s", i, err.message);
    }
}

static uint8_t *quantize_model(const struct sq_model *m, const struct sq_options *opt,
                               enum sq_format fmt, bool reverse, size_t *len)
{
    struct sq_plan *plan;
    struct sq_error err;
    sq_error_init(&err);
    ck_assert_msg(sq_plan_new(m, opt, &plan, &err) == SQ_OK, "%s", err.message);
    run_all(plan, reverse);
    uint8_t *out;
    ck_assert_msg(sq_plan_write(plan, fmt, SIZE_MAX, &out, len, &err) == SQ_OK, "%s", err.message);
    sq_plan_free(plan);
    return out;
}

START_TEST(test_options)
{
    struct sq_options o;
    sq_options_init(&o);
    struct sq_error err;
    sq_error_init(&err);
    ck_assert_uint_eq(o.params.bits, 4);
    ck_assert_int_eq(o.output, SQ_FORMAT_AUTO);
    OK(sq_options_set(&o, "bits", "3", &err));
    ck_assert_uint_eq(o.params.bits, 3);
    OK(sq_options_set(&o, "mode", "squant-e", &err));
    ck_assert_int_eq(o.params.mode, SQ_MODE_RTN);
    OK(sq_options_set(&o, "scheme", "symmetric", &err));
    OK(sq_options_set(&o, "include", "conv*,fc.*", &err));
    OK(sq_options_set(&o, "include", "x", &err));
    ck_assert_uint_eq(o.include_count, 3);
    ck_assert_str_eq(o.include[1], "fc.*");
    OK(sq_options_set(&o, "exclude", "conv2.*", &err));
    OK(sq_options_set(&o, "bits_for", "fc.weight=8,conv*=2", &err));
    ck_assert_uint_eq(o.bits_for_count, 2);
    ck_assert_str_eq(o.bits_for[1].pattern, "conv*");
    ck_assert_uint_eq(o.bits_for[1].bits, 2);
    OK(sq_options_set(&o, "format", "json", &err));
    ck_assert_int_eq(o.output, SQ_FORMAT_JSON);

    static const char *const bad[][3] = {
        {"bits", "1", "bits must be"},        {"bits", "9", "bits must be"},
        {"bits", "4x", "bits must be"},       {"bits", "", "bits must be"},
        {"bits", "-4", "bits must be"},       {"mode", "fast", "mode must be"},
        {"scheme", "asym", "scheme must be"}, {"include", "a,,b", "empty pattern"},
        {"exclude", "", "empty pattern"},     {"bits_for", "fc", "expected NAME=BITS"},
        {"bits_for", "fc=9", "bits must be"}, {"bits_for", "=4", "empty pattern"},
        {"format", "raw", "format must be"},  {"colour", "red", "unknown option"},
        {"impl", "neon", "impl must be"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sq_error_init(&err);
        ck_assert_int_eq(sq_options_set(&o, bad[i][0], bad[i][1], &err), SQ_ERR_ARG);
        ck_assert_msg(strstr(err.message, bad[i][2]), "%s=%s: %s", bad[i][0], bad[i][1],
                      err.message);
    }
    sq_options_free(&o);
    ck_assert_uint_eq(o.include_count, 0);
}
END_TEST

START_TEST(test_selection)
{
    struct sq_model m;
    float *data;
    build_model(&m, &data);
    struct sq_options o;
    sq_options_init(&o);
    struct sq_plan *plan;
    struct sq_error err;
    sq_error_init(&err);
    ck_assert(sq_plan_new(&m, &o, &plan, &err) == SQ_OK);
    /* conv1, conv2, fc: not biases, not the empty table, not the I8 tensor */
    ck_assert_uint_eq(sq_plan_layer_count(plan), 3);
    struct sq_layer_info info;
    sq_plan_layer_info(plan, 1, &info);
    ck_assert_str_eq(info.name, "conv2.weight");
    ck_assert_uint_eq(info.items, 5); /* 540000 weights / 131072 per item */
    ck_assert_uint_eq(sq_plan_item_count(plan), 7);
    ck_assert_uint_eq(sq_plan_item_layer(plan, 6), 2);
    sq_plan_free(plan);

    OK(sq_options_set(&o, "include", "*.weight", &err));
    OK(sq_options_set(&o, "exclude", "conv2.*", &err));
    OK(sq_options_set(&o, "bits_for", "fc.*=8", &err));
    ck_assert(sq_plan_new(&m, &o, &plan, &err) == SQ_OK);
    ck_assert_uint_eq(sq_plan_layer_count(plan), 2);
    sq_plan_layer_info(plan, 1, &info);
    ck_assert_str_eq(info.name, "fc.weight");
    ck_assert_uint_eq(info.bits, 8);
    sq_plan_layer_info(plan, 0, &info);
    ck_assert_uint_eq(info.bits, 4);
    sq_plan_free(plan);

    sq_options_free(&o);
    sq_options_init(&o);
    OK(sq_options_set(&o, "include", "nothing*", &err));
    ck_assert_int_eq(sq_plan_new(&m, &o, &plan, &err), SQ_ERR_NO_TENSOR);
    ck_assert(strstr(err.message, "include/exclude"));
    sq_options_free(&o);
    sq_options_init(&o);
    o.params.bits = 12;
    ck_assert_int_eq(sq_plan_new(&m, &o, &plan, &err), SQ_ERR_ARG);
    sq_options_free(&o);
    sq_model_free(&m);
    free(data);

    /* Only 1-D tensors: nothing to quantize. */
    sq_model_init(&m);
    float b[3] = {1, 2, 3};
    int64_t s3[1] = {3};
    ck_assert(sq_model_add(&m, "bias", SQ_DTYPE_F32, 1, s3, b, sizeof b, false, &err) == SQ_OK);
    sq_options_init(&o);
    ck_assert_int_eq(sq_plan_new(&m, &o, &plan, &err), SQ_ERR_NO_TENSOR);
    ck_assert(strstr(err.message, "rank >= 2"));
    sq_model_free(&m);
}
END_TEST

START_TEST(test_conflict)
{
    struct sq_model m;
    sq_model_init(&m);
    float w[6] = {1, 2, 3, 4, 5, 6}, s[2] = {1, 1};
    int64_t s23[2] = {2, 3}, s2[1] = {2};
    struct sq_error err;
    sq_error_init(&err);
    ck_assert(sq_model_add(&m, "w", SQ_DTYPE_F32, 2, s23, w, sizeof w, false, &err) == SQ_OK);
    ck_assert(sq_model_add(&m, "w.scale", SQ_DTYPE_F32, 1, s2, s, sizeof s, false, &err) == SQ_OK);
    struct sq_options o;
    sq_options_init(&o);
    struct sq_plan *plan;
    ck_assert_int_eq(sq_plan_new(&m, &o, &plan, &err), SQ_ERR_CONFLICT);
    ck_assert_str_eq(err.tensor, "w");
    sq_model_free(&m);
}
END_TEST

/* Same bytes whatever the item order; the output reads back as documented. */
START_TEST(test_safetensors_output)
{
    struct sq_model m;
    float *data;
    build_model(&m, &data);
    struct sq_options o;
    sq_options_init(&o);
    size_t n1, n2;
    uint8_t *a = quantize_model(&m, &o, SQ_FORMAT_SAFETENSORS, false, &n1);
    uint8_t *b = quantize_model(&m, &o, SQ_FORMAT_SAFETENSORS, true, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert(memcmp(a, b, n1) == 0);

    struct sq_model out;
    sq_model_init(&out);
    struct sq_error err;
    sq_error_init(&err);
    ck_assert_msg(sq_safetensors_parse(a, n1, NULL, &out, &err) == SQ_OK, "%s", err.message);
    static const char *const names[] = {"conv1.weight",
                                        "conv1.weight.scale",
                                        "conv1.weight.zero_point",
                                        "conv1.bias",
                                        "conv2.weight",
                                        "conv2.weight.scale",
                                        "conv2.weight.zero_point",
                                        "fc.weight",
                                        "fc.weight.scale",
                                        "fc.weight.zero_point",
                                        "fc.bias",
                                        "table",
                                        "already.int8"};
    ck_assert_uint_eq(out.count, sizeof names / sizeof *names);
    for (size_t i = 0; i < out.count; i++)
        ck_assert_str_eq(out.tensors[i].name, names[i]);
    ck_assert_int_eq(out.tensors[0].dtype, SQ_DTYPE_I8);
    ck_assert_int_eq(out.tensors[0].shape[3], 3);
    ck_assert_int_eq(out.tensors[1].dtype, SQ_DTYPE_F32);
    ck_assert_int_eq(out.tensors[1].shape[0], 8);
    /* Pass-through tensors are byte-identical. */
    const struct sq_tensor *bias = &out.tensors[3];
    ck_assert(memcmp(bias->data, m.tensors[1].data, bias->nbytes) == 0);
    ck_assert(memcmp(out.tensors[12].data, m.tensors[6].data, 4) == 0);
    /* Metadata: the input's entries, and the report. */
    ck_assert_uint_eq(out.meta_count, 2);
    ck_assert_str_eq(out.meta[0].key, "origin");
    ck_assert_str_eq(out.meta[1].key, "squant");
    json_error_t jerr;
    json_t *rep = json_loads(out.meta[1].value, 0, &jerr);
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rep, "params"), "bits")),
                     4);
    json_t *layers = json_object_get(rep, "layers");
    ck_assert_uint_eq(json_array_size(layers), 3);
    json_t *l0 = json_array_get(layers, 0);
    ck_assert_str_eq(json_string_value(json_object_get(l0, "name")), "conv1.weight");
    ck_assert_int_eq(json_integer_value(json_object_get(l0, "weights")), 216);
    ck_assert(json_real_value(json_object_get(l0, "mse")) > 0);
    ck_assert_ptr_null(json_object_get(l0, "seconds")); /* no timings: output is deterministic */
    json_decref(rep);

    /* Dequantize: within one step of the input. */
    struct sq_model deq;
    sq_model_init(&deq);
    ck_assert(sq_dequantize_model(&out, &deq, &err) == SQ_OK);
    ck_assert_uint_eq(deq.count, 7);
    const struct sq_tensor *w = &deq.tensors[0];
    ck_assert_str_eq(w->name, "conv1.weight");
    ck_assert_int_eq(w->dtype, SQ_DTYPE_F32);
    const float *dq = (const float *)(const void *)w->data, *orig = data;
    for (size_t c = 0; c < 8; c++) {
        float step;
        memcpy(&step, out.tensors[1].data + 4 * c, 4);
        for (size_t i = 0; i < 27; i++)
            ck_assert(fabsf(dq[c * 27 + i] - orig[c * 27 + i]) <= step * 1.0001f);
    }
    sq_model_free(&deq);
    sq_model_free(&out);
    free(a);
    free(b);
    sq_options_free(&o);
    sq_model_free(&m);
    free(data);
}
END_TEST

START_TEST(test_npy_and_json_output)
{
    struct sq_model m;
    float *data;
    build_model(&m, &data);
    struct sq_options o;
    sq_options_init(&o);
    struct sq_plan *plan;
    struct sq_error err;
    sq_error_init(&err);
    ck_assert(sq_plan_new(&m, &o, &plan, &err) == SQ_OK);
    run_all(plan, false);
    uint8_t *out;
    size_t len;
    ck_assert_int_eq(sq_plan_write(plan, SQ_FORMAT_NPY, SIZE_MAX, &out, &len, &err), SQ_ERR_ARG);
    ck_assert(strstr(err.message, "one tensor"));
    ck_assert_int_eq(sq_plan_write(plan, SQ_FORMAT_SAFETENSORS, 100, &out, &len, &err),
                     SQ_ERR_LIMIT);

    ck_assert(sq_plan_write(plan, SQ_FORMAT_JSON, SIZE_MAX, &out, &len, &err) == SQ_OK);
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)out, len, 0, &jerr);
    ck_assert_msg(doc != NULL, "%s", jerr.text);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "format")), "squant-json/1");
    json_t *tensors = json_object_get(doc, "tensors");
    ck_assert_uint_eq(json_array_size(tensors), 13);
    json_t *t1 = json_array_get(tensors, 1);
    ck_assert_str_eq(json_string_value(json_object_get(t1, "name")), "conv1.weight.scale");
    ck_assert_str_eq(json_string_value(json_object_get(t1, "dtype")), "F32");
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(t1, "data"))), 44); /* 32 bytes */
    ck_assert_uint_eq(json_array_size(json_object_get(json_object_get(doc, "report"), "layers")),
                      3);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "metadata"), "origin")),
                     "unit test");
    json_decref(doc);
    free(out);
    ck_assert_int_eq(sq_plan_write(plan, SQ_FORMAT_JSON, 1000, &out, &len, &err), SQ_ERR_LIMIT);

    char *text;
    ck_assert(sq_plan_report_json(plan, true, &text, &err) == SQ_OK);
    doc = json_loads(text, 0, &jerr);
    ck_assert_ptr_nonnull(
        json_object_get(json_array_get(json_object_get(doc, "layers"), 0), "seconds"));
    json_decref(doc);
    free(text);
    sq_plan_free(plan);
    sq_model_free(&m);
    free(data);

    /* A single tensor writes as .npy codes. */
    sq_model_init(&m);
    float w[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    int64_t s34[2] = {3, 4};
    ck_assert(sq_model_add(&m, "weight", SQ_DTYPE_F32, 2, s34, w, sizeof w, false, &err) == SQ_OK);
    ck_assert(sq_plan_new(&m, &o, &plan, &err) == SQ_OK);
    run_all(plan, false);
    ck_assert(sq_plan_write(plan, SQ_FORMAT_NPY, SIZE_MAX, &out, &len, &err) == SQ_OK);
    struct sq_model back;
    sq_model_init(&back);
    ck_assert(sq_npy_parse(out, len, NULL, "q", &back, &err) == SQ_OK);
    ck_assert_int_eq(back.tensors[0].dtype, SQ_DTYPE_I8);
    ck_assert_int_eq(back.tensors[0].shape[1], 4);
    /* each row 4 steps over its own range: codes -8, -3, 2, 7 at 4 bits */
    ck_assert_int_eq(((const int8_t *)back.tensors[0].data)[0], -8);
    ck_assert_int_eq(((const int8_t *)back.tensors[0].data)[3], 7);
    sq_model_free(&back);
    free(out);
    sq_plan_free(plan);
    sq_model_free(&m);
    sq_options_free(&o);
}
END_TEST

/* Other float dtypes are converted first: same codes as their float32 values. */
START_TEST(test_dtypes_and_errors)
{
    uint16_t half[8];
    float f[8];
    for (int i = 0; i < 8; i++) {
        f[i] = (float)(i - 3) * 0.25f; /* exact in f16 and bf16 */
        uint32_t u;
        memcpy(&u, &f[i], 4);
        half[i] = (uint16_t)(u >> 16); /* bf16 */
    }
    int64_t s24[2] = {2, 4};
    struct sq_error err;
    sq_error_init(&err);
    struct sq_model a, b;
    sq_model_init(&a);
    sq_model_init(&b);
    ck_assert(sq_model_add(&a, "w", SQ_DTYPE_F32, 2, s24, f, sizeof f, false, &err) == SQ_OK);
    ck_assert(sq_model_add(&b, "w", SQ_DTYPE_BF16, 2, s24, half, sizeof half, false, &err) ==
              SQ_OK);
    struct sq_options o;
    sq_options_init(&o);
    size_t na, nb;
    uint8_t *qa = quantize_model(&a, &o, SQ_FORMAT_NPY, false, &na);
    uint8_t *qb = quantize_model(&b, &o, SQ_FORMAT_NPY, false, &nb);
    ck_assert(na == nb && memcmp(qa, qb, na) == 0);
    free(qa);
    free(qb);
    sq_model_free(&a);
    sq_model_free(&b);

    /* A NaN weight: the item fails, naming the tensor, channel and index. */
    f[6] = NAN;
    sq_model_init(&a);
    ck_assert(sq_model_add(&a, "layer.w", SQ_DTYPE_F32, 2, s24, f, sizeof f, false, &err) == SQ_OK);
    struct sq_plan *plan;
    ck_assert(sq_plan_new(&a, &o, &plan, &err) == SQ_OK);
    ck_assert_int_eq(sq_plan_run(plan, 0, &err), SQ_ERR_NONFINITE);
    ck_assert_str_eq(err.tensor, "layer.w");
    ck_assert_int_eq(err.channel, 1);
    ck_assert_int_eq(err.index, 6);
    ck_assert_int_eq(sq_plan_run(plan, 5, &err), SQ_ERR_ARG);
    sq_plan_free(plan);
    sq_model_free(&a);
    sq_options_free(&o);
}
END_TEST

/* A sink that appends to a growing buffer. */
struct membuf {
    uint8_t *data;
    size_t len, pieces;
};

static enum sq_status mem_sink(void *ctx, const void *data, size_t len, struct sq_error *err)
{
    (void)err;
    struct membuf *b = ctx;
    b->data = realloc(b->data, b->len + len);
    ck_assert(b->data != NULL);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->pieces++;
    return SQ_OK;
}

static enum sq_status failing_sink(void *ctx, const void *data, size_t len, struct sq_error *err)
{
    (void)ctx, (void)data, (void)len;
    snprintf(err->message, sizeof err->message, "disk full");
    return SQ_ERR_IO;
}

/*
 * Streaming: layers begun and written in order, at most `window` held at a
 * time, give header + data = the bytes of sq_plan_write, and the plan never
 * held more than `window` layers' codes.
 */
static void check_streamed(const struct sq_model *m, const struct sq_options *o, size_t window)
{
    size_t want_len;
    uint8_t *want = quantize_model(m, o, SQ_FORMAT_SAFETENSORS, false, &want_len);
    struct sq_plan *plan;
    struct sq_error err;
    sq_error_init(&err);
    ck_assert_msg(sq_plan_new_streaming(m, o, &plan, &err) == SQ_OK, "%s", err.message);
    size_t layers = sq_plan_layer_count(plan), items = sq_plan_item_count(plan);
    ck_assert_int_eq(sq_plan_run(plan, 0, &err), SQ_ERR_ARG); /* not begun */
    struct membuf data = {NULL, 0, 0};
    size_t begun = 0, item = 0;
    for (size_t l = 0; l < layers; l++) {
        while (begun < layers && begun < l + window)
            OK(sq_plan_layer_begin(plan, begun++, &err));
        /* run the items of layer l (later begun layers run when their turn comes) */
        for (; item < items && sq_plan_item_layer(plan, item) == l; item++)
            ck_assert_msg(sq_plan_run(plan, item, &err) == SQ_OK, "%s", err.message);
        ck_assert_msg(sq_plan_stream_data(plan, l, mem_sink, &data, &err) == SQ_OK, "%s",
                      err.message);
        ck_assert_int_eq(sq_plan_layer_begin(plan, l, &err), SQ_ERR_ARG); /* already written */
    }
    OK(sq_plan_stream_data(plan, layers, mem_sink, &data, &err));
    ck_assert_uint_le(sq_plan_layers_held_max(plan), window);
    ck_assert_uint_eq(data.len, sq_plan_data_bytes(plan));
    uint8_t *out = NULL;
    size_t len = 0;
    ck_assert_int_eq(sq_plan_write(plan, SQ_FORMAT_SAFETENSORS, SIZE_MAX, &out, &len, &err),
                     SQ_ERR_ARG); /* the codes are gone */
    uint8_t *head;
    size_t head_len;
    ck_assert_msg(sq_plan_write_header(plan, SIZE_MAX, &head, &head_len, &err) == SQ_OK, "%s",
                  err.message);
    ck_assert_uint_eq(head_len + data.len, want_len);
    ck_assert(memcmp(head, want, head_len) == 0);
    ck_assert(memcmp(data.data, want + head_len, data.len) == 0);
    free(head);
    free(data.data);
    free(want);
    sq_plan_free(plan);
}

START_TEST(test_streaming)
{
    struct sq_model m;
    float *data;
    build_model(&m, &data);
    struct sq_options o;
    sq_options_init(&o);
    for (size_t window = 1; window <= 4; window++)
        check_streamed(&m, &o, window);
    OK(sq_options_set(&o, "group", "16", NULL)); /* [O, G] scales */
    check_streamed(&m, &o, 2);
    OK(sq_options_set(&o, "scale_dtype", "F16", NULL)); /* stored dtypes chosen per layer */
    check_streamed(&m, &o, 1);
    OK(sq_options_set(&o, "group", "0", NULL));
    check_streamed(&m, &o, 3);
    OK(sq_options_set(&o, "bits", "3", NULL));
    OK(sq_options_set(&o, "exclude", "fc.*", NULL)); /* passthrough tensors at the end */
    check_streamed(&m, &o, 2);

    /* Out of order, and a failing sink. */
    struct sq_plan *plan;
    struct sq_error err;
    sq_error_init(&err);
    OK(sq_plan_new_streaming(&m, &o, &plan, &err));
    OK(sq_plan_layer_begin(plan, 0, &err));
    OK(sq_plan_layer_begin(plan, 1, &err));
    for (size_t i = 0; i < sq_plan_item_count(plan); i++)
        OK(sq_plan_run(plan, i, &err));
    struct membuf b = {NULL, 0, 0};
    ck_assert_int_eq(sq_plan_stream_data(plan, 5, mem_sink, &b, &err), SQ_ERR_ARG);
    ck_assert_int_eq(sq_plan_stream_data(plan, 0, failing_sink, NULL, &err), SQ_ERR_IO);
    ck_assert_str_eq(err.message, "disk full");
    free(b.data);
    sq_plan_free(plan); /* frees what is still held */
    sq_options_free(&o);
    sq_model_free(&m);
    free(data);
}
END_TEST

/*
 * sq_plan_item_input names every byte an item reads: with everything else
 * in the input poisoned (NaN) while each item runs, the result is the same.
 */
START_TEST(test_item_input)
{
    struct sq_model m;
    float *data;
    build_model(&m, &data);
    size_t total = 0;
    for (size_t i = 0; i < m.count; i++)
        if (m.tensors[i].dtype == SQ_DTYPE_F32)
            total += m.tensors[i].nbytes;
    float *pristine = malloc(total);
    memcpy(pristine, data, total);
    struct sq_options o;
    sq_options_init(&o);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            OK(sq_options_set(&o, "group", "16", NULL));
        size_t ref_len, len;
        uint8_t *ref = quantize_model(&m, &o, SQ_FORMAT_SAFETENSORS, false, &ref_len);
        struct sq_plan *plan;
        struct sq_error err;
        sq_error_init(&err);
        OK(sq_plan_new(&m, &o, &plan, &err));
        size_t n = sq_plan_item_count(plan);
        ck_assert_uint_gt(n, sq_plan_layer_count(plan)); /* some layer is cut into items */
        const uint8_t *prev_end = NULL;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *in;
            size_t in_len;
            sq_plan_item_input(plan, i, &in, &in_len);
            ck_assert_ptr_nonnull(in);
            ck_assert_uint_gt(in_len, 0);
            ck_assert((const uint8_t *)data <= in && in + in_len <= (const uint8_t *)data + total);
            /* the items of a layer follow each other through its tensor */
            struct sq_layer_info info;
            sq_plan_layer_info(plan, sq_plan_item_layer(plan, i), &info);
            const struct sq_tensor *t = &m.tensors[sq_model_find(&m, info.name)];
            ck_assert(t->data <= in && in + in_len <= t->data + t->nbytes);
            if (in == t->data)
                prev_end = t->data;
            ck_assert_ptr_eq(in, prev_end);
            prev_end = in + in_len;
            for (size_t k = 0; k < total / sizeof(float); k++)
                data[k] = NAN;
            memcpy((uint8_t *)data + (in - (const uint8_t *)data),
                   (const uint8_t *)pristine + (in - (const uint8_t *)data), in_len);
            ck_assert_msg(sq_plan_run(plan, i, &err) == SQ_OK, "item %zu: %s", i, err.message);
        }
        memcpy(data, pristine, total);
        uint8_t *out;
        OK(sq_plan_write(plan, SQ_FORMAT_SAFETENSORS, SIZE_MAX, &out, &len, &err));
        ck_assert_uint_eq(len, ref_len);
        ck_assert_mem_eq(out, ref, len);
        free(out);
        free(ref);
        sq_plan_free(plan);
    }
    sq_options_free(&o);
    free(pristine);
    sq_model_free(&m);
    free(data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("options");
    tcase_add_test(tc, test_options);
    suite_add_tcase(s, tc);
    tc = tcase_create("plan");
    tcase_add_test(tc, test_selection);
    tcase_add_test(tc, test_conflict);
    tcase_add_test(tc, test_dtypes_and_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("output");
    tcase_add_test(tc, test_safetensors_output);
    tcase_add_test(tc, test_npy_and_json_output);
    tcase_add_test(tc, test_streaming);
    tcase_add_test(tc, test_item_input);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

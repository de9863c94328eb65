/*
 * Group mode through the plan: the options, the [O, G] scale and zero point
 * tensors, per-tensor group overrides, the equivalence with per-channel
 * SQuant on the reshaped tensor through the whole pipeline, scale_dtype F16
 * with small-integer zero points, the bits per weight of the report, and
 * `squant dequantize` (sq_dequantize_model) of all of these.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squant/squant.h>

static float noise(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / (float)(1u << 24) - 0.5f;
}

struct tdef {
    const char *name;
    unsigned rank;
    int64_t shape[4];
};

static size_t elems(const struct tdef *t)
{
    size_t n = 1;
    for (unsigned d = 0; d < t->rank; d++)
        n *= (size_t)t->shape[d];
    return n;
}

/* A model of the given tensors over `data` (borrowed), filled if fill is set. */
static void build(struct sq_model *m, const struct tdef *t, size_t count, float *data, bool fill)
{
    sq_model_init(m);
    uint32_t s = 7;
    float *p = data;
    struct sq_error err;
    sq_error_init(&err);
    for (size_t i = 0; i < count; i++) {
        size_t n = elems(&t[i]);
        for (size_t k = 0; fill && k < n; k++)
            p[k] = noise(&s) * (k % 97 == 0 ? 8.0f : 1.0f); /* some outliers */
        ck_assert(sq_model_add(m, t[i].name, SQ_DTYPE_F32, t[i].rank, t[i].shape, p,
                               n * sizeof(float), false, &err) == SQ_OK);
        p += n;
    }
}

static const struct tdef model_tensors[] = {
    {"conv1.weight", 4, {8, 3, 3, 3}},    /* g >= I: one group per channel, [8, 1] */
    {"conv2.weight", 4, {30, 200, 3, 3}}, /* g = 32: 7 groups, the last of 8 */
    {"conv3.weight", 4, {16, 64, 1, 1}},  /* g divides I */
    {"fc.weight", 2, {10, 100}},          {"fc.bias", 1, {10}},
};
#define MODEL_COUNT (sizeof model_tensors / sizeof *model_tensors)

static size_t model_elems(void)
{
    size_t n = 0;
    for (size_t i = 0; i < MODEL_COUNT; i++)
        n += elems(&model_tensors[i]);
    return n;
}

static struct sq_plan *plan_run(const struct sq_model *m, const struct sq_options *o, bool reverse)
{
    struct sq_plan *plan;
    struct sq_error err;
    sq_error_init(&err);
    ck_assert_msg(sq_plan_new(m, o, &plan, &err) == SQ_OK, "%s", err.message);
    size_t n = sq_plan_item_count(plan);
    for (size_t k = 0; k < n; k++) {
        size_t i = reverse ? n - 1 - k : k;
        ck_assert_msg(sq_plan_run(plan, i, &err) == SQ_OK, "%s", err.message);
    }
    return plan;
}

static uint8_t *write_st(struct sq_plan *plan, size_t *len)
{
    uint8_t *out;
    struct sq_error err;
    sq_error_init(&err);
    ck_assert_msg(sq_plan_write(plan, SQ_FORMAT_SAFETENSORS, SIZE_MAX, &out, len, &err) == SQ_OK,
                  "%s", err.message);
    return out;
}

static const struct sq_tensor *find(const struct sq_model *m, const char *name)
{
    ptrdiff_t i = sq_model_find(m, name);
    ck_assert_msg(i >= 0, "no tensor %s", name);
    return &m->tensors[i];
}

static json_t *report_of(const struct sq_model *m)
{
    for (size_t i = 0; i < m->meta_count; i++)
        if (strcmp(m->meta[i].key, "squant") == 0)
            return json_loads(m->meta[i].value, 0, NULL);
    ck_abort_msg("no squant metadata");
    return NULL;
}

static json_t *layer_report(json_t *rep, const char *name)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(rep, "layers"), i,
                       l) if (strcmp(json_string_value(json_object_get(l, "name")), name) ==
                              0) return l;
    ck_abort_msg("no layer %s in the report", name);
    return NULL;
}

START_TEST(test_options)
{
    struct sq_options o;
    sq_options_init(&o);
    struct sq_error err;
    sq_error_init(&err);
    ck_assert_uint_eq(o.group, 0);
    ck_assert_int_eq(o.scale_dtype, SQ_DTYPE_F32);
    ck_assert(sq_options_set(&o, "group", "32", &err) == SQ_OK);
    ck_assert_uint_eq(o.group, 32);
    ck_assert(sq_options_set(&o, "group_for", "fc.*=0,conv*=128", &err) == SQ_OK);
    ck_assert_uint_eq(o.group_for_count, 2);
    ck_assert_str_eq(o.group_for[1].pattern, "conv*");
    ck_assert_uint_eq(o.group_for[1].group, 128);
    ck_assert(sq_options_set(&o, "scale_dtype", "F16", &err) == SQ_OK);
    ck_assert_int_eq(o.scale_dtype, SQ_DTYPE_F16);
    static const char *bad[][3] = {
        {"group", "-1", "group must be"},           {"group", "1073741825", "group must be"},
        {"group", "3x", "group must be"},           {"group", "", "group must be"},
        {"group_for", "fc", "expected NAME=GROUP"}, {"group_for", "fc=x", "group must be"},
        {"group_for", "=4", "empty pattern"},       {"scale_dtype", "BF16", "F32 or F16"},
        {"scale_dtype", "f16", "F32 or F16"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sq_error_init(&err);
        ck_assert_int_eq(sq_options_set(&o, bad[i][0], bad[i][1], &err), SQ_ERR_ARG);
        ck_assert_msg(strstr(err.message, bad[i][2]) != NULL, "%s=%s: %s", bad[i][0], bad[i][1],
                      err.message);
    }
    sq_options_free(&o);
}
END_TEST

/* Output layout, overrides, item order, and the codes against the core called directly. */
START_TEST(test_layout)
{
    float *data = malloc(model_elems() * sizeof(float));
    struct sq_model m;
    build(&m, model_tensors, MODEL_COUNT, data, true);
    struct sq_options o;
    sq_options_init(&o);
    struct sq_error err;
    sq_error_init(&err);
    ck_assert(sq_options_set(&o, "group", "32", &err) == SQ_OK);
    ck_assert(sq_options_set(&o, "group_for", "fc.*=0", &err) == SQ_OK);
    ck_assert(sq_options_set(&o, "bits", "3", &err) == SQ_OK);
    struct sq_plan *a = plan_run(&m, &o, false), *b = plan_run(&m, &o, true);
    size_t la, lb;
    uint8_t *sa = write_st(a, &la), *sb = write_st(b, &lb);
    ck_assert(la == lb && memcmp(sa, sb, la) == 0); /* any item order, same bytes */

    /* conv2 (30x200x3x3, 54 000 weights) is cut into several groups ranges? its groups
     * may be split across items; either way the layer info describes them */
    struct sq_layer_info info;
    sq_plan_layer_info(a, 1, &info);
    ck_assert_str_eq(info.name, "conv2.weight");
    ck_assert_uint_eq(info.group, 32);
    ck_assert_uint_eq(info.groups, 7);
    ck_assert_int_eq(info.scale_dtype, SQ_DTYPE_F32);
    ck_assert_int_eq(info.zero_point_dtype, SQ_DTYPE_F32);
    ck_assert(fabs(info.bits_per_weight - (3.0 + 64.0 * 30 * 7 / 54000.0)) < 1e-12);

    struct sq_model out;
    sq_model_init(&out);
    ck_assert(sq_safetensors_parse(sa, la, NULL, &out, &err) == SQ_OK);
    static const struct {
        const char *name;
        unsigned rank;
        int64_t o, g;
    } want[] = {{"conv1.weight", 2, 8, 1},
                {"conv2.weight", 2, 30, 7},
                {"conv3.weight", 2, 16, 2},
                {"fc.weight", 1, 10, 0}};
    json_t *rep = report_of(&out);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rep, "params"), "group")),
                     32);
    for (size_t i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.scale", want[i].name);
        const struct sq_tensor *sc = find(&out, name);
        snprintf(name, sizeof name, "%s.zero_point", want[i].name);
        const struct sq_tensor *zp = find(&out, name);
        ck_assert_uint_eq(sc->rank, want[i].rank);
        ck_assert_uint_eq(zp->rank, want[i].rank);
        ck_assert_int_eq(sc->shape[0], want[i].o);
        if (want[i].rank == 2) {
            ck_assert_int_eq(sc->shape[1], want[i].g);
            ck_assert_int_eq(zp->shape[1], want[i].g);
        }
        json_t *l = layer_report(rep, want[i].name);
        ck_assert_int_eq(json_integer_value(json_object_get(l, "group")), i == 3 ? 0 : 32);
        ck_assert_int_eq(json_integer_value(json_object_get(l, "groups")),
                         want[i].g ? want[i].g : 1);

        /* the core called directly on the whole tensor gives the same bytes */
        const struct sq_tensor *in = find(&m, want[i].name), *q = find(&out, want[i].name);
        struct sq_layer layer;
        ck_assert(sq_layer_init(&layer, in->rank, in->shape, &err) == SQ_OK);
        size_t g = i == 3 ? 0 : 32, units = layer.channels * sq_layer_groups(&layer, g), ss;
        ck_assert(sq_group_scratch_size(&layer, g, &ss) == SQ_OK);
        void *scratch = malloc(ss);
        int8_t *codes = malloc(in->nelems);
        float *s = malloc(units * 4), *z = malloc(units * 4);
        struct sq_params p;
        sq_params_init(&p);
        p.bits = 3;
        ck_assert(sq_quantize_groups(&p, &layer, g, (const float *)in->data, 0, units, codes, s, z,
                                     scratch, ss, NULL, &err) == SQ_OK);
        ck_assert(memcmp(codes, q->data, in->nelems) == 0);
        ck_assert(memcmp(s, sc->data, units * 4) == 0);
        ck_assert(memcmp(z, zp->data, units * 4) == 0);
        free(scratch);
        free(codes);
        free(s);
        free(z);
    }
    json_decref(rep);
    sq_model_free(&out);
    free(sa);
    free(sb);
    sq_plan_free(a);
    sq_plan_free(b);
    sq_options_free(&o);
    sq_model_free(&m);
    free(data);
}
END_TEST

/*
 * The pipeline's equivalence: group g on [O, I, 3, 3] gives the codes, scales
 * and zero points of per-channel SQuant on the same data as [O*I/g, g, 3, 3],
 * for every implementation, mode and scheme.
 */
START_TEST(test_reshape)
{
    const struct tdef a = {"w", 4, {24, 96, 3, 3}}, b = {"w", 4, {24 * 3, 32, 3, 3}};
    float *data = malloc(elems(&a) * sizeof(float));
    struct sq_model ma, mb;
    build(&ma, &a, 1, data, true);
    build(&mb, &b, 1, data, false);
    for (enum sq_impl impl = SQ_IMPL_REF; impl < SQ_IMPL_COUNT; impl++)
        for (int mode = 0; mode < SQ_MODE_COUNT; mode++)
            for (int scheme = 0; scheme < SQ_SCHEME_COUNT; scheme++) {
                if (!sq_impl_available(impl))
                    continue;
                struct sq_options o;
                sq_options_init(&o);
                o.params.impl = impl;
                o.params.mode = (enum sq_mode)mode;
                o.params.scheme = (enum sq_scheme)scheme;
                o.params.bits = 2 + (unsigned)(mode + 2 * scheme) % 7;
                struct sq_plan *pb = plan_run(&mb, &o, false);
                o.group = 32;
                struct sq_plan *pa = plan_run(&ma, &o, false);
                struct sq_layer_info ia, ib;
                sq_plan_layer_info(pa, 0, &ia);
                sq_plan_layer_info(pb, 0, &ib);
                ck_assert_uint_eq(ia.groups, 3);
                ck_assert(memcmp(ia.scale, ib.scale, 72 * sizeof(float)) == 0);
                ck_assert(memcmp(ia.zero_point, ib.zero_point, 72 * sizeof(float)) == 0);
                ck_assert(ia.report.flips == ib.report.flips);
                ck_assert(ia.report.sse == ib.report.sse);
                size_t la, lb;
                uint8_t *sa = write_st(pa, &la), *sb = write_st(pb, &lb);
                struct sq_model oa, ob;
                sq_model_init(&oa);
                sq_model_init(&ob);
                struct sq_error err;
                ck_assert(sq_safetensors_parse(sa, la, NULL, &oa, &err) == SQ_OK);
                ck_assert(sq_safetensors_parse(sb, lb, NULL, &ob, &err) == SQ_OK);
                ck_assert(memcmp(find(&oa, "w")->data, find(&ob, "w")->data, elems(&a)) == 0);
                ck_assert(memcmp(find(&oa, "w.scale")->data, find(&ob, "w.scale")->data, 288) == 0);
                ck_assert(memcmp(find(&oa, "w.zero_point")->data, find(&ob, "w.zero_point")->data,
                                 288) == 0);
                sq_model_free(&oa);
                sq_model_free(&ob);
                free(sa);
                free(sb);
                sq_plan_free(pa);
                sq_plan_free(pb);
                sq_options_free(&o);
            }
    sq_model_free(&ma);
    sq_model_free(&mb);
    free(data);
}
END_TEST

static float f16_value(const struct sq_tensor *t, size_t i)
{
    float f;
    sq_tensor_to_f32(t, i, 1, &f);
    return f;
}

/* Dequantize the safetensors bytes and compare with (q - z) * s from the plan, group by group. */
static void check_dequantize(const uint8_t *st, size_t len, struct sq_plan *plan,
                             const struct sq_model *in)
{
    struct sq_model q, d;
    sq_model_init(&q);
    sq_model_init(&d);
    struct sq_error err;
    sq_error_init(&err);
    ck_assert(sq_safetensors_parse(st, len, NULL, &q, &err) == SQ_OK);
    ck_assert_msg(sq_dequantize_model(&q, &d, &err) == SQ_OK, "%s", err.message);
    ck_assert_uint_eq(d.count, in->count);
    for (size_t li = 0; li < sq_plan_layer_count(plan); li++) {
        struct sq_layer_info info;
        sq_plan_layer_info(plan, li, &info);
        const struct sq_tensor *t = find(&d, info.name), *codes = find(&q, info.name);
        char name[80];
        snprintf(name, sizeof name, "%s.scale", info.name);
        const struct sq_tensor *sc = find(&q, name);
        ck_assert_int_eq(t->dtype, SQ_DTYPE_F32);
        size_t I = info.layer.kernels, ks = info.layer.ksize, len1 = I * ks;
        size_t gk = info.groups == 1 ? I : info.group;
        for (size_t e = 0; e < t->nelems; e++) {
            size_t o = e / len1, i = (e % len1) / ks, u = o * info.groups + i / gk;
            /* the stored scale (F32, or the F16 rounding of the plan's) and zero point */
            float s = sc->dtype == SQ_DTYPE_F16 ? f16_value(sc, u) : info.scale[u];
            if (sc->dtype == SQ_DTYPE_F16)
                ck_assert(fabsf(s - info.scale[u]) <= 0x1p-11f * info.scale[u]);
            float want;
            sq_dequantize((const int8_t *)codes->data + e, 1, s, info.zero_point[u], &want);
            float got;
            memcpy(&got, t->data + 4 * e, 4);
            ck_assert_msg(got == want, "%s element %zu: %a, expected %a", info.name, e, (double)got,
                          (double)want);
        }
    }
    sq_model_free(&d);
    sq_model_free(&q);
}

START_TEST(test_dequantize_and_f16)
{
    float *data = malloc(model_elems() * sizeof(float));
    struct sq_model m;
    build(&m, model_tensors, MODEL_COUNT, data, true);
    /* conv3: channel 0 all zero, channel 1 constant 1e-3: steps far below F16's range */
    memset(data + 8 * 27 + 30 * 1800, 0, 64 * sizeof(float));
    for (size_t k = 64; k < 128; k++)
        data[8 * 27 + 30 * 1800 + k] = 1e-3f;
    for (int variant = 0; variant < 4; variant++) {
        struct sq_options o;
        sq_options_init(&o);
        struct sq_error err;
        sq_error_init(&err);
        o.group = variant < 2 ? 32 : variant == 2 ? 0 : 7;
        o.scale_dtype = variant % 2 ? SQ_DTYPE_F16 : SQ_DTYPE_F32;
        o.params.scheme = variant == 3 ? SQ_SCHEME_SYMMETRIC : SQ_SCHEME_ASYMMETRIC;
        struct sq_plan *p32 = NULL, *plan = plan_run(&m, &o, false);
        size_t len;
        uint8_t *st = write_st(plan, &len);
        check_dequantize(st, len, plan, &m);
        if (o.scale_dtype == SQ_DTYPE_F16) {
            /* codes do not change with the storage */
            struct sq_options o32 = o;
            o32.scale_dtype = SQ_DTYPE_F32;
            p32 = plan_run(&m, &o32, false);
            struct sq_model out;
            sq_model_init(&out);
            ck_assert(sq_safetensors_parse(st, len, NULL, &out, &err) == SQ_OK);
            json_t *rep = report_of(&out);
            for (size_t li = 0; li < sq_plan_layer_count(plan); li++) {
                struct sq_layer_info a, b;
                sq_plan_layer_info(plan, li, &a);
                sq_plan_layer_info(p32, li, &b);
                ck_assert(memcmp(a.scale, b.scale, b.layer.channels * b.groups * 4) == 0);
                char name[80];
                snprintf(name, sizeof name, "%s.scale", a.name);
                const struct sq_tensor *sc = find(&out, name);
                snprintf(name, sizeof name, "%s.zero_point", a.name);
                const struct sq_tensor *zp = find(&out, name);
                json_t *l = layer_report(rep, a.name);
                ck_assert_int_eq(sc->dtype, a.scale_dtype);
                ck_assert_int_eq(zp->dtype, a.zero_point_dtype);
                ck_assert_str_eq(json_string_value(json_object_get(l, "scale_dtype")),
                                 sq_dtype_name(a.scale_dtype));
                ck_assert_str_eq(json_string_value(json_object_get(l, "zero_point_dtype")),
                                 sq_dtype_name(a.zero_point_dtype));
                size_t units = a.layer.channels * a.groups;
                size_t n = a.layer.channels * a.layer.kernels * a.layer.ksize;
                double extra = 8.0 * (double)(sq_dtype_size(sc->dtype) + sq_dtype_size(zp->dtype));
                ck_assert(fabs(a.bits_per_weight - (4.0 + extra * (double)units / (double)n)) <
                          1e-12);
                if (strcmp(a.name, "conv3.weight") == 0)
                    ck_assert_int_eq(sc->dtype, SQ_DTYPE_F32); /* tiny steps: kept F32 */
                else
                    ck_assert_int_eq(sc->dtype, SQ_DTYPE_F16);
                if (variant == 3) /* symmetric: zero points 0 */
                    ck_assert_int_eq(zp->dtype, SQ_DTYPE_I8);
                ck_assert(zp->dtype != SQ_DTYPE_F32 || strcmp(a.name, "conv3.weight") == 0);
            }
            json_decref(rep);
            sq_model_free(&out);
            sq_plan_free(p32);
        }
        free(st);
        sq_plan_free(plan);
        sq_options_free(&o);
    }
    sq_model_free(&m);
    free(data);
}
END_TEST

/* A channel's groups are cut into work items like channels are: one channel, several items. */
START_TEST(test_items_split_channels)
{
    const struct tdef t = {"w", 2, {2, 200000}};
    float *data = malloc(400000 * sizeof(float));
    struct sq_model m;
    build(&m, &t, 1, data, true);
    struct sq_options o;
    sq_options_init(&o);
    struct sq_plan *per = plan_run(&m, &o, false);
    ck_assert_uint_eq(sq_plan_item_count(per), 2); /* per channel: at most one item per channel */
    o.group = 1000;
    o.params.mode = SQ_MODE_SQUANT_C;
    struct sq_plan *a = plan_run(&m, &o, false), *b = plan_run(&m, &o, true);
    ck_assert_uint_eq(sq_plan_item_count(a), 4); /* 400 groups, 4 items: 2 per channel */
    size_t la, lb;
    uint8_t *sa = write_st(a, &la), *sb = write_st(b, &lb);
    ck_assert(la == lb && memcmp(sa, sb, la) == 0);
    struct sq_layer_info info;
    sq_plan_layer_info(a, 0, &info);
    struct sq_layer flat = {400, 1000, 1};
    size_t ss;
    ck_assert(sq_scratch_size(&flat, &ss) == SQ_OK);
    void *scratch = malloc(ss);
    int8_t *codes = malloc(400000);
    float *s = malloc(400 * 4), *z = malloc(400 * 4);
    struct sq_params p = o.params;
    struct sq_error err;
    ck_assert(sq_quantize_range(&p, &flat, data, 0, 400, codes, s, z, scratch, ss, NULL, &err) ==
              SQ_OK);
    ck_assert(memcmp(s, info.scale, 400 * 4) == 0);
    ck_assert(memcmp(z, info.zero_point, 400 * 4) == 0);
    struct sq_model out;
    sq_model_init(&out);
    ck_assert(sq_safetensors_parse(sa, la, NULL, &out, &err) == SQ_OK);
    ck_assert(memcmp(find(&out, "w")->data, codes, 400000) == 0);
    sq_model_free(&out);
    free(scratch);
    free(codes);
    free(s);
    free(z);
    free(sa);
    free(sb);
    sq_plan_free(per);
    sq_plan_free(a);
    sq_plan_free(b);
    sq_options_free(&o);
    sq_model_free(&m);
    free(data);
}
END_TEST

/* A [O, G] scale with G > 1 needs the metadata's group; without it dequantize refuses. */
START_TEST(test_dequantize_needs_group)
{
    const struct tdef t = {"w", 2, {4, 100}};
    float *data = malloc(400 * sizeof(float));
    struct sq_model m;
    build(&m, &t, 1, data, true);
    struct sq_options o;
    sq_options_init(&o);
    o.group = 30;
    struct sq_plan *plan = plan_run(&m, &o, false);
    size_t len;
    uint8_t *st = write_st(plan, &len);
    struct sq_model q, d;
    sq_model_init(&q);
    struct sq_error err;
    sq_error_init(&err);
    ck_assert(sq_safetensors_parse(st, len, NULL, &q, &err) == SQ_OK);
    /* drop the metadata */
    for (size_t i = 0; i < q.meta_count; i++)
        if (strcmp(q.meta[i].key, "squant") == 0)
            q.meta[i].key[0] = 'x';
    sq_model_init(&d);
    ck_assert_int_eq(sq_dequantize_model(&q, &d, &err), SQ_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "4 groups per output channel") != NULL, "%s", err.message);
    sq_model_free(&d);
    sq_model_free(&q);
    free(st);
    sq_plan_free(plan);
    sq_options_free(&o);
    sq_model_free(&m);
    free(data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("group plan");
    TCase *tc = tcase_create("group plan");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_options);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_reshape);
    tcase_add_test(tc, test_dequantize_and_f16);
    tcase_add_test(tc, test_dequantize_needs_group);
    tcase_add_test(tc, test_items_split_channels);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

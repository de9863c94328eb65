/*
 * Conformance: every case of tests/conformance/vectors/manifest.json, run
 * through every implementation this CPU has, must give exactly the codes the
 * authors' reference gave (the "q_stable" file where ties made the reference
 * depend on its unstable sort; there, the codes must also differ from the
 * reference's own "q" in exactly the manifest's count), our scale must be
 * 1/(reference scale) within one ulp and our zero point -(reference zero
 * point) exactly. Dequantized weights must be within 2 ulp of the
 * reference's (where the case ships them, for the elements whose code is the
 * reference's own and whose channel has |zero point| < 2^24, where the
 * reference's dequantization is exact). A new case is a new manifest entry and its files: no new C.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squant/squant.h>

static json_t *manifest;
static const char *vectors;

struct blob {
    uint8_t *bytes;
    size_t len;
    struct sq_model model;
};

static void load(const char *rel, struct blob *b)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", vectors, rel);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    b->len = (size_t)ftell(f);
    rewind(f);
    b->bytes = malloc(b->len + 1);
    ck_assert(fread(b->bytes, 1, b->len, f) == b->len);
    fclose(f);
    struct sq_limits lim;
    sq_limits_init(&lim);
    struct sq_error err;
    sq_error_init(&err);
    sq_model_init(&b->model);
    ck_assert_msg(sq_npy_parse(b->bytes, b->len, &lim, "t", &b->model, &err) == SQ_OK, "%s: %s",
                  path, err.message);
}

static void unload(struct blob *b)
{
    sq_model_free(&b->model);
    free(b->bytes);
}

static const struct sq_tensor *tensor(const struct blob *b) { return &b->model.tensors[0]; }

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Distance in ulps between two finite floats of the same sign. */
static long ulps(float a, float b)
{
    long d = (long)bits_of(a) - (long)bits_of(b);
    return d < 0 ? -d : d;
}

START_TEST(test_case)
{
    json_t *c = json_array_get(json_object_get(manifest, "cases"), (size_t)_i);
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *exp = json_object_get(c, "expected");
    const char *qfile = json_string_value(json_object_get(exp, "q"));
    const char *stable = json_string_value(json_object_get(exp, "q_stable"));
    const char *deq_file = json_string_value(json_object_get(exp, "deq"));
    struct blob in, q, qs, sc, zp, deq;
    load(json_string_value(json_object_get(c, "input")), &in);
    load(qfile, &q);
    load(stable ? stable : qfile, &qs);
    load(json_string_value(json_object_get(exp, "scale")), &sc);
    load(json_string_value(json_object_get(exp, "zero_point")), &zp);
    if (deq_file)
        load(deq_file, &deq); /* optional in the manifest */

    const struct sq_tensor *w = tensor(&in);
    ck_assert_int_eq(w->dtype, SQ_DTYPE_F32);
    struct sq_params p;
    sq_params_init(&p);
    p.bits = (unsigned)json_integer_value(json_object_get(c, "bits"));
    ck_assert(sq_mode_from_name(json_string_value(json_object_get(c, "mode")), &p.mode) == SQ_OK);
    struct sq_layer layer;
    struct sq_error err;
    sq_error_init(&err);
    ck_assert(sq_layer_init(&layer, w->rank, w->shape, &err) == SQ_OK);
    size_t n = w->nelems, ch = layer.channels, scratch_size;
    ck_assert(sq_scratch_size(&layer, &scratch_size) == SQ_OK);
    float *weights = malloc(n * sizeof(float)), *scale = malloc(ch * sizeof(float));
    float *zero = malloc(ch * sizeof(float)), *dq = malloc(n * sizeof(float));
    int8_t *codes = malloc(n);
    void *scratch = malloc(scratch_size);
    sq_tensor_to_f32(w, 0, n, weights);
    const int8_t *want = (const int8_t *)tensor(&qs)->data;
    const int8_t *ref_q = (const int8_t *)tensor(&q)->data;
    long differ_expected = (long)json_integer_value(json_object_get(c, "codes_differing_with_stable_sort"));

    int tried = 0;
    for (enum sq_impl impl = SQ_IMPL_REF; impl < SQ_IMPL_COUNT; impl++) {
        if (!sq_impl_available(impl))
            continue;
        tried++;
        p.impl = impl;
        memset(codes, 0x55, n);
        ck_assert_msg(sq_quantize_range(&p, &layer, weights, 0, ch, codes, scale, zero, scratch,
                                        scratch_size, NULL, &err) == SQ_OK,
                      "%s/%s: %s", name, sq_impl_name(impl), err.message);
        size_t bad = 0, first = n;
        long differ = 0;
        for (size_t i = 0; i < n; i++) {
            if (codes[i] != want[i] && bad++ == 0)
                first = i;
            differ += codes[i] != ref_q[i];
        }
        ck_assert_msg(bad == 0, "%s/%s: %zu codes differ, first at %zu: %d, expected %d", name,
                      sq_impl_name(impl), bad, first, first < n ? codes[first] : 0,
                      first < n ? want[first] : 0);
        ck_assert_msg(differ == differ_expected,
                      "%s/%s: %ld codes differ from the reference's tie order, manifest says %ld",
                      name, sq_impl_name(impl), differ, differ_expected);
        for (size_t o = 0; o < ch; o++) {
            float rs, rz;
            memcpy(&rs, tensor(&sc)->data + 4 * o, 4);
            memcpy(&rz, tensor(&zp)->data + 4 * o, 4);
            ck_assert_msg(ulps(scale[o], 1.0f / rs) <= 1, "%s/%s: channel %zu scale %a vs 1/%a",
                          name, sq_impl_name(impl), o, (double)scale[o], (double)rs);
            ck_assert_msg(zero[o] == -rz, "%s/%s: channel %zu zero point %a vs -(%a)", name,
                          sq_impl_name(impl), o, (double)zero[o], (double)rz);
        }
        if (!deq_file)
            continue;
        size_t len = n / ch;
        long worst = 0;
        for (size_t o = 0; o < ch; o++)
            sq_dequantize(codes + o * len, len, scale[o], zero[o], dq + o * len);
        for (size_t i = 0; i < n; i++) {
            float r;
            memcpy(&r, tensor(&deq)->data + 4 * i, 4);
            /* The reference's deq comes from its own codes, and rounds q + zp to
             * f32 first, which is exact only while |zp| < 2^24. */
            if (codes[i] != ref_q[i] || fabsf(zero[i / len]) >= 0x1p24f)
                continue;
            long u = (dq[i] == 0.0f && r == 0.0f) ? 0 : ulps(dq[i], r);
            worst = u > worst ? u : worst;
        }
        ck_assert_msg(worst <= 2, "%s/%s: dequantized weights differ by %ld ulp", name,
                      sq_impl_name(impl), worst);
    }
    ck_assert_int_ge(tried, 2);
    free(weights);
    free(scale);
    free(zero);
    free(dq);
    free(codes);
    free(scratch);
    unload(&in);
    unload(&q);
    unload(&qs);
    unload(&sc);
    unload(&zp);
    if (deq_file)
        unload(&deq);
}
END_TEST

int main(void)
{
    const char *top = getenv("top_srcdir");
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/conformance/vectors", top ? top : ".");
    vectors = dir;
    char path[1100];
    snprintf(path, sizeof path, "%s/manifest.json", vectors);
    json_error_t jerr;
    manifest = json_load_file(path, 0, &jerr);
    if (!manifest) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return 1;
    }
    int cases = (int)json_array_size(json_object_get(manifest, "cases"));
    printf("conformance: %d cases from %s; implementations:", cases, path);
    for (enum sq_impl i = SQ_IMPL_REF; i < SQ_IMPL_COUNT; i++)
        if (sq_impl_available(i))
            printf(" %s", sq_impl_name(i));
    printf("\n");
    Suite *s = suite_create("conformance");
    TCase *tc = tcase_create("vectors");
    tcase_add_loop_test(tc, test_case, 0, cases);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    json_decref(manifest);
    return failed ? 1 : 0;
}

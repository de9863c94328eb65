/*
 * A program a user of the installed libsquant would write: built by
 * tests/install/install.sh with nothing but `pkg-config squant` against the
 * copy `make install` put in a DESTDIR, once shared and once static. It
 * quantizes a small tensor with the core (sq_quantize_range) and checks the
 * known codes (those of the scalar reference, SQUANT-SPEC written out), then runs the same tensor
 * through the plan and the .npy writer and reader (formats) and checks that it gets the same codes
 * back, so every layer of the library must be in it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squant/squant.h>

#define CHANNELS 2
#define SIZE 8

/* Two channels of a 2x8 linear layer, and their 3-bit SQuant codes. */
static const float weights[CHANNELS * SIZE] = {
    -1.00f, -0.70f, -0.35f, -0.10f, 0.05f,  0.30f, 0.66f,  1.00f,
    0.20f,  -0.45f, 0.90f,  0.10f,  -0.80f, 0.55f, -0.15f, 0.40f,
};
static const int8_t expected[CHANNELS * SIZE] = {
    -4, -2, -1, 0, 0, 1, 2, 3, 0, -3, 3, -1, -4, 1, -2, 1,
};

static int fail(const char *what, const struct sq_error *err)
{
    fprintf(stderr, "use_squant: %s: %s\n", what, err ? err->message : "mismatch");
    return 1;
}

int main(void)
{
    struct sq_error err;
    sq_error_init(&err);
    struct sq_params params;
    sq_params_init(&params);
    params.bits = 3;
    const int64_t shape[2] = {CHANNELS, SIZE};
    struct sq_layer layer;
    if (sq_layer_init(&layer, 2, shape, &err) != SQ_OK)
        return fail("sq_layer_init", &err);
    size_t scratch_size;
    if (sq_scratch_size(&layer, &scratch_size) != SQ_OK)
        return fail("sq_scratch_size", NULL);
    void *scratch = malloc(scratch_size);
    int8_t codes[CHANNELS * SIZE];
    float scale[CHANNELS], zero_point[CHANNELS];
    if (!scratch)
        return fail("malloc", NULL);
    for (int impl = SQ_IMPL_AUTO; impl <= SQ_IMPL_REF; impl++) {
        params.impl = (enum sq_impl)impl;
        if (sq_quantize_range(&params, &layer, weights, 0, CHANNELS, codes, scale, zero_point,
                              scratch, scratch_size, NULL, &err) != SQ_OK) {
            free(scratch);
            return fail("sq_quantize_range", &err);
        }
        if (memcmp(codes, expected, sizeof codes) != 0) {
            free(scratch);
            return fail(sq_impl_name(params.impl), NULL);
        }
    }
    free(scratch);

    /* The same through the plan, written as .npy and read back. */
    struct sq_model model, back;
    struct sq_options opt;
    struct sq_plan *plan = NULL;
    uint8_t *npy = NULL;
    size_t npy_len = 0;
    int rc = 1;
    sq_model_init(&model);
    sq_model_init(&back);
    sq_options_init(&opt);
    if (sq_model_add(&model, "w", SQ_DTYPE_F32, 2, shape, weights, sizeof weights, false, &err) !=
            SQ_OK ||
        sq_options_set(&opt, "bits", "3", &err) != SQ_OK ||
        sq_plan_new(&model, &opt, &plan, &err) != SQ_OK) {
        fail("plan", &err);
        goto out;
    }
    for (size_t i = 0; i < sq_plan_item_count(plan); i++) {
        if (sq_plan_run(plan, i, &err) != SQ_OK) {
            fail("sq_plan_run", &err);
            goto out;
        }
    }
    if (sq_plan_write(plan, SQ_FORMAT_NPY, 1 << 20, &npy, &npy_len, &err) != SQ_OK ||
        sq_npy_parse(npy, npy_len, NULL, "codes", &back, &err) != SQ_OK) {
        fail("npy", &err);
        goto out;
    }
    if (back.count != 1 || back.tensors[0].dtype != SQ_DTYPE_I8 ||
        back.tensors[0].nbytes != sizeof expected ||
        memcmp(back.tensors[0].data, expected, sizeof expected) != 0) {
        fail("plan codes", NULL);
        goto out;
    }
    printf("libsquant %s: ok (%s)\n", SQ_VERSION_STRING, sq_status_name(SQ_OK));
    rc = 0;
out:
    sq_model_free(&back);
    free(npy);
    sq_plan_free(plan);
    sq_options_free(&opt);
    sq_model_free(&model);
    return rc;
}

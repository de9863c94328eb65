/*
 * Fuzz harness for sq_onnx_parse and sq_onnx_write. Properties: a failure
 * leaves the model empty with a message; a success gives weights whose
 * sizes match their shapes, that convert to float, and that the writer puts
 * back: the QDQ output parses again with none of them left float, the
 * dequantized output parses again with the same weights; the QDQ output
 * and the MatMulNBits output (blocks of 16) fold back into every weight.
 */
#include <stdlib.h>
#include <string.h>

#include <squant/squant.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sq_limits lim;
    sq_limits_init(&lim);
    lim.max_total_elements = 1 << 22; /* keep each run small */
    struct sq_model m, m2;
    struct sq_error e;
    sq_model_init(&m);
    sq_model_init(&m2);
    sq_error_init(&e);
    (void)sq_format_detect(data, size);
    static const uint8_t blob[64];
    struct sq_external ext = {"external.bin", blob, sizeof blob};
    uint8_t *folded = NULL;
    size_t folded_len = 0, restored = 0;
    enum sq_status st =
        sq_onnx_dequantize(data, size, &lim, (size_t)1 << 30, &folded, &folded_len, &restored, &e);
    FUZZ_CHECK(st == SQ_OK || e.message[0] != '\0');
    free(folded);
    /* The QDQ forms the input holds already are folded back too after a write; an input
     * that does not fold (a malformed constant) keeps not folding. */
    bool folds = st == SQ_OK;
    size_t held = folds ? restored : 0;
    st = sq_onnx_parse(data, size, &ext, 1, &lim, &m, &e);
    if (st != SQ_OK) {
        FUZZ_CHECK(m.count == 0 && m.meta_count == 0 && m.onnx == NULL);
        FUZZ_CHECK(e.status == st && e.message[0] != '\0');
        return 0;
    }
    size_t n = m.count;
    struct sq_onnx_weight *w = calloc(n + 1, sizeof *w);
    FUZZ_CHECK(w != NULL);
    size_t nw = 0;
    for (size_t k = 0; k < n; k++) {
        const struct sq_tensor *t = &m.tensors[k];
        FUZZ_CHECK(t->nbytes == t->nelems * sq_dtype_size(t->dtype));
        FUZZ_CHECK(sq_dtype_is_quantizable(t->dtype) && t->rank >= 2);
        if (t->nelems == 0)
            continue; /* the plan skips empty tensors, so does this */
        /* scales and zero points for any group: at most one per element */
        size_t ch = t->nelems;
        int8_t *codes = calloc(t->nelems + 1, 1);
        float *f = calloc(t->nelems + 1, sizeof *f), *s = calloc(ch + 1, sizeof *s);
        float *z = calloc(ch + 1, sizeof *z);
        FUZZ_CHECK(codes && f && s && z);
        sq_tensor_to_f32(t, 0, t->nelems, f);
        for (size_t c = 0; c < ch; c++)
            s[c] = 1.0f, z[c] = c % 2 ? 300.0f : 0.0f; /* both zero-point forms */
        w[nw++] = (struct sq_onnx_weight){k, codes, s, z, f, 8, 0};
        struct sq_onnx_tensor_info info;
        FUZZ_CHECK(sq_onnx_tensor_info(&m, k, &info) && info.rank == t->rank);
    }
    uint8_t *out = NULL;
    size_t len = 0;
    st = sq_onnx_write(&m, w, nw, SQ_ONNX_QDQ, "{}", (size_t)1 << 30, &out, &len, &e);
    FUZZ_CHECK(st == SQ_OK || st == SQ_ERR_CONFLICT || st == SQ_ERR_UNSUPPORTED);
    if (st == SQ_OK) {
        /* folding the QDQ output back restores every weight that was written */
        if (folds) {
            FUZZ_CHECK(sq_onnx_dequantize(out, len, &lim, (size_t)1 << 30, &folded, &folded_len,
                                          &restored, &e) == SQ_OK);
            FUZZ_CHECK(restored == nw + held);
            free(folded);
        }
        st = sq_onnx_parse(out, len, &ext, 1, &lim, &m2, &e);
        FUZZ_CHECK(st == SQ_OK || st == SQ_ERR_FORMAT);
        if (st == SQ_OK)
            for (size_t k = 0; k < m2.count; k++) {
                ptrdiff_t j = sq_model_find(&m, m2.tensors[k].name);
                FUZZ_CHECK(j < 0 || m.tensors[j].nelems == 0);
            }
        sq_model_free(&m2);
        free(out);
    }
    for (size_t k = 0; k < nw; k++)
        w[k].group = 16, w[k].bits = 4;
    st = sq_onnx_write(&m, w, nw, SQ_ONNX_MATMULNBITS, "{}", (size_t)1 << 30, &out, &len, &e);
    FUZZ_CHECK(st == SQ_OK || st == SQ_ERR_CONFLICT || st == SQ_ERR_UNSUPPORTED);
    if (st == SQ_OK && folds) {
        FUZZ_CHECK(sq_onnx_dequantize(out, len, &lim, (size_t)1 << 30, &folded, &folded_len,
                                      &restored, &e) == SQ_OK);
        FUZZ_CHECK(restored == nw + held);
        free(folded);
    }
    if (st == SQ_OK)
        free(out);
    for (size_t k = 0; k < nw; k++)
        w[k].group = 0, w[k].bits = 8;
    st = sq_onnx_write(&m, w, nw, SQ_ONNX_DEQUANTIZED, NULL, (size_t)1 << 30, &out, &len, &e);
    FUZZ_CHECK(st == SQ_OK);
    FUZZ_CHECK(sq_onnx_parse(out, len, &ext, 1, &lim, &m2, &e) == SQ_OK);
    FUZZ_CHECK(m2.count == m.count);
    for (size_t k = 0; k < m.count; k++)
        FUZZ_CHECK(strcmp(m.tensors[k].name, m2.tensors[k].name) == 0 &&
                   m.tensors[k].nelems == m2.tensors[k].nelems);
    sq_model_free(&m2);
    free(out);
    for (size_t k = 0; k < nw; k++) {
        free((void *)w[k].codes);
        free((void *)w[k].scale);
        free((void *)w[k].zero_point);
        free((void *)w[k].dequantized);
    }
    free(w);
    sq_model_free(&m);
    return 0;
}

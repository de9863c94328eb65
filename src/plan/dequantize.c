/* Turning a quantized model back into float32 (`squant dequantize`). */
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"

/* The F32 [channels] tensor called name+suffix, or NULL. */
static const struct sq_tensor *companion(const struct sq_model *m, const struct sq_tensor *t,
                                         const char *suffix)
{
    size_t a = strlen(t->name), b = strlen(suffix);
    char *name = malloc(a + b + 1);
    if (!name)
        return NULL;
    memcpy(name, t->name, a);
    memcpy(name + a, suffix, b + 1);
    ptrdiff_t i = sq_model_find(m, name);
    free(name);
    if (i < 0)
        return NULL;
    const struct sq_tensor *c = &m->tensors[i];
    if (c->dtype != SQ_DTYPE_F32 || c->rank != 1 || c->shape[0] != t->shape[0])
        return NULL;
    return c;
}

/* Whether tensor t is the .scale or .zero_point of a quantized tensor in m. */
static bool is_companion(const struct sq_model *m, const struct sq_tensor *t)
{
    static const char *const suffixes[] = {".scale", ".zero_point"};
    for (size_t s = 0; s < 2; s++) {
        size_t n = strlen(t->name), k = strlen(suffixes[s]);
        if (n <= k || strcmp(t->name + n - k, suffixes[s]) != 0)
            continue;
        char *base = sqi_strndup(t->name, n - k);
        ptrdiff_t i = base ? sq_model_find(m, base) : -1;
        free(base);
        if (i >= 0 && m->tensors[i].dtype == SQ_DTYPE_I8 && m->tensors[i].rank >= 1 &&
            companion(m, &m->tensors[i], ".scale") && companion(m, &m->tensors[i], ".zero_point"))
            return true;
    }
    return false;
}

enum sq_status sq_dequantize_model(const struct sq_model *in, struct sq_model *out,
                                   struct sq_error *err)
{
    enum sq_status st = SQ_OK;
    for (size_t i = 0; st == SQ_OK && i < in->meta_count; i++)
        st = sq_model_set_meta(out, in->meta[i].key, in->meta[i].value, err);
    for (size_t i = 0; st == SQ_OK && i < in->count; i++) {
        const struct sq_tensor *t = &in->tensors[i];
        const struct sq_tensor *sc = NULL, *zp = NULL;
        if (t->dtype == SQ_DTYPE_I8 && t->rank >= 1) {
            sc = companion(in, t, ".scale");
            zp = companion(in, t, ".zero_point");
        }
        if (!sc || !zp) {
            if (!is_companion(in, t))
                st = sq_model_add(out, t->name, t->dtype, t->rank, t->shape, t->data, t->nbytes,
                                  false, err);
            continue;
        }
        size_t channels = (size_t)t->shape[0], len = channels ? t->nelems / channels : 0, bytes;
        float *w = NULL;
        if (!sqi_mul(t->nelems, sizeof(float), &bytes) || !(w = malloc(bytes ? bytes : 1)))
            return sqi_fail(err, SQ_ERR_NOMEM, "out of memory dequantizing '%s'", t->name);
        for (size_t c = 0; c < channels; c++) {
            float s, z;
            memcpy(&s, sc->data + 4 * c, 4);
            memcpy(&z, zp->data + 4 * c, 4);
            sq_dequantize((const int8_t *)t->data + c * len, len, s, z, w + c * len);
        }
        st = sq_model_add(out, t->name, SQ_DTYPE_F32, t->rank, t->shape, w, bytes, true, err);
        if (st != SQ_OK)
            free(w);
    }
    return st;
}

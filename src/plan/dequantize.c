/* Turning a quantized model back into float32 (`squant dequantize`). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"

/* Whether t's dtype and shape can be the scale or zero point of code tensor q. */
static bool companion_fits(const struct sq_tensor *q, const struct sq_tensor *c, bool scale)
{
    bool dtype =
        scale ? c->dtype == SQ_DTYPE_F32 || c->dtype == SQ_DTYPE_F16
              : c->dtype == SQ_DTYPE_F32 || c->dtype == SQ_DTYPE_I8 || c->dtype == SQ_DTYPE_I16;
    if (!dtype || c->shape[0] != q->shape[0])
        return false;
    if (c->rank == 1)
        return true;
    /* [O, G]: G groups along the input dimension, at most one per input channel */
    return c->rank == 2 && q->rank >= 2 && c->shape[1] >= 1 && c->shape[1] <= q->shape[1];
}

/* The companion tensor called name+suffix that fits q, or NULL. */
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
    return companion_fits(t, c, suffix[1] == 's') ? c : NULL;
}

/* Scale and zero point tensors of I8 tensor t, with the same shape; false if it has none. */
static bool companions(const struct sq_model *m, const struct sq_tensor *t,
                       const struct sq_tensor **sc, const struct sq_tensor **zp)
{
    if (t->dtype != SQ_DTYPE_I8 || t->rank < 1)
        return false;
    *sc = companion(m, t, ".scale");
    *zp = companion(m, t, ".zero_point");
    return *sc && *zp && (*sc)->rank == (*zp)->rank &&
           ((*sc)->rank == 1 || (*sc)->shape[1] == (*zp)->shape[1]);
}

/* The packing entry of tensor t (new reference), if the model's metadata records one. */
static json_t *packing_of(const struct sq_model *m, const struct sq_tensor *t)
{
    if (t->dtype != SQ_DTYPE_U8 || t->rank != 1)
        return NULL;
    for (size_t i = 0; i < m->meta_count; i++) {
        if (strcmp(m->meta[i].key, SQI_PACKING_KEY) != 0)
            continue;
        json_t *doc = json_loads(m->meta[i].value, 0, NULL);
        json_t *e = json_incref(json_object_get(doc, t->name));
        json_decref(doc);
        return e;
    }
    return NULL;
}

/* Unpack a U8 tensor of two int4 codes per byte into *codes (malloc'ed) and its shape. */
static enum sq_status unpack(const struct sq_tensor *t, json_t *e, int8_t **codes, unsigned *rank,
                             int64_t *shape, size_t *n, struct sq_error *err)
{
    json_t *sh = json_object_get(e, "shape");
    const char *how = json_string_value(json_object_get(e, "packing"));
    if (!how || strcmp(how, "int4") != 0 || !json_is_array(sh) || json_array_size(sh) < 1 ||
        json_array_size(sh) > SQ_MAX_RANK)
        return sqi_fail(err, SQ_ERR_FORMAT, "tensor '%s': bad packing entry in the metadata",
                        t->name);
    size_t count = 1;
    *rank = (unsigned)json_array_size(sh);
    for (unsigned i = 0; i < *rank; i++) {
        json_int_t d = json_integer_value(json_array_get(sh, i));
        if (!json_is_integer(json_array_get(sh, i)) || d < 0 || !sqi_mul(count, (size_t)d, &count))
            return sqi_fail(err, SQ_ERR_FORMAT, "tensor '%s': bad packed shape", t->name);
        shape[i] = d;
    }
    if (count / 2 + count % 2 != t->nbytes)
        return sqi_fail(err, SQ_ERR_SHAPE,
                        "tensor '%s': %zu packed bytes do not hold the %zu codes of its shape",
                        t->name, t->nbytes, count);
    if (!(*codes = malloc(count ? count : 1)))
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < count; k++) {
        unsigned nib = (t->data[k / 2] >> (4 * (k % 2))) & 15u;
        (*codes)[k] = (int8_t)(nib >= 8 ? (int)nib - 16 : (int)nib);
    }
    *n = count;
    return SQ_OK;
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
        const struct sq_tensor *sc, *zp;
        json_t *pk = i >= 0 ? packing_of(m, &m->tensors[i]) : NULL;
        bool packed = pk != NULL; /* its companions are checked when it is unpacked */
        json_decref(pk);
        if (packed || (i >= 0 && companions(m, &m->tensors[i], &sc, &zp)))
            return true;
    }
    return false;
}

/* name -> group of the "squant" metadata's layers with a group (new reference, or NULL). */
static json_t *meta_groups(const char *report_text)
{
    json_t *report = json_loads(report_text, JSON_REJECT_DUPLICATES, NULL), *map = json_object();
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(report, "layers"), i, l)
    {
        const char *n = json_string_value(json_object_get(l, "name"));
        json_t *g = json_object_get(l, "group");
        if (map && n && json_is_integer(g) && json_integer_value(g) > 0 && !json_object_get(map, n))
            json_object_set(map, n, g);
    }
    json_decref(report);
    return map;
}

/* The group recorded for layer `name`, or 0. */
static size_t meta_group(json_t *groups, const char *name)
{
    json_t *g = json_object_get(groups, name);
    return g ? (size_t)json_integer_value(g) : 0;
}

static float read_value(const struct sq_tensor *t, size_t i)
{
    float f;
    sq_tensor_to_f32(t, i, 1, &f);
    return f;
}

/* Element i of an F32, I8 or I16 zero point tensor. */
static float read_zero_point(const struct sq_tensor *t, size_t i)
{
    if (t->dtype == SQ_DTYPE_I8)
        return (float)(int8_t)t->data[i];
    if (t->dtype == SQ_DTYPE_I16)
        return (float)(int16_t)(uint16_t)(t->data[2 * i] | (unsigned)t->data[2 * i + 1] << 8);
    return read_value(t, i);
}

enum sq_status sq_dequantize_model(const struct sq_model *in, struct sq_model *out,
                                   struct sq_error *err)
{
    enum sq_status st = SQ_OK;
    json_t *report = NULL;
    for (size_t i = 0; st == SQ_OK && i < in->meta_count; i++) {
        if (strcmp(in->meta[i].key, SQI_PACKING_KEY) != 0)
            st = sq_model_set_meta(out, in->meta[i].key, in->meta[i].value, err);
        if (strcmp(in->meta[i].key, "squant") == 0 && !report)
            report = meta_groups(in->meta[i].value);
    }
    int8_t *unpacked = NULL;
    for (size_t i = 0; st == SQ_OK && i < in->count; i++) {
        const struct sq_tensor *t = &in->tensors[i];
        const struct sq_tensor *sc = NULL, *zp = NULL;
        struct sq_tensor u;
        json_t *pk = packing_of(in, t);
        free(unpacked);
        unpacked = NULL;
        if (pk) { /* U8, two codes per byte: unpacked to an I8 tensor, then as below */
            u = *t;
            st = unpack(t, pk, &unpacked, &u.rank, u.shape, &u.nelems, err);
            json_decref(pk);
            if (st != SQ_OK)
                break;
            u.dtype = SQ_DTYPE_I8;
            u.nbytes = u.nelems;
            u.data = (const uint8_t *)unpacked;
            t = &u;
            if (!companions(in, t, &sc, &zp)) {
                st = sqi_fail(err, SQ_ERR_FORMAT,
                              "tensor '%s' is packed but has no .scale and .zero_point of %lld "
                              "channels",
                              t->name, (long long)u.shape[0]);
                break;
            }
        } else if (!companions(in, t, &sc, &zp)) {
            if (!is_companion(in, t))
                st = sq_model_add(out, t->name, t->dtype, t->rank, t->shape, t->data, t->nbytes,
                                  false, err);
            continue;
        }
        size_t channels = (size_t)t->shape[0], len = channels ? t->nelems / channels : 0;
        size_t groups = sc->rank == 2 ? (size_t)sc->shape[1] : 1, glen = len;
        if (groups > 1 || sc->rank == 2) {
            /* [O, G]: groups of g input channels, g from the metadata when G > 1 */
            size_t in_ch = (size_t)t->shape[1], ks = in_ch ? len / in_ch : 0;
            size_t g = groups == 1 ? in_ch : meta_group(report, t->name);
            if (g == 0 || (in_ch + g - 1) / g != groups) {
                st = sqi_fail(err, SQ_ERR_FORMAT,
                              "'%s.scale' has %zu groups per output channel, but the \"squant\" "
                              "metadata gives no group size that cuts %zu input channels into %zu",
                              t->name, groups, in_ch, groups);
                sqi_error_tensor(err, t->name);
                break;
            }
            glen = g * ks;
        }
        size_t bytes;
        float *w = NULL;
        if (!sqi_mul(t->nelems, sizeof(float), &bytes) || !(w = malloc(bytes ? bytes : 1))) {
            st = sqi_fail(err, SQ_ERR_NOMEM, "out of memory dequantizing '%s'", t->name);
            break;
        }
        for (size_t c = 0; c < channels; c++)
            for (size_t j = 0; j < groups; j++) {
                size_t at = c * len + j * glen, n = j + 1 < groups ? glen : len - j * glen;
                sq_dequantize((const int8_t *)t->data + at, n, read_value(sc, c * groups + j),
                              read_zero_point(zp, c * groups + j), w + at);
            }
        st = sq_model_add(out, t->name, SQ_DTYPE_F32, t->rank, t->shape, w, bytes, true, err);
        if (st != SQ_OK)
            free(w);
    }
    free(unpacked);
    json_decref(report);
    return st;
}

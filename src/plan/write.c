/*
 * Assembling the output of a plan: the report document, and the result as
 * safetensors, .npy or JSON. Output depends only on the model, the options
 * and the codes, so the CLI and the daemon write the same bytes.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"

#define SQI_REPORT_KEY "squant"

static json_t *shape_json(unsigned rank, const int64_t *shape)
{
    json_t *a = json_array();
    for (unsigned i = 0; a && i < rank; i++)
        if (json_array_append_new(a, json_integer(shape[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static double mean(double sum, uint64_t n)
{
    return n ? sum / (double)n : 0.0;
}

/*
 * How much smaller SQuant's largest residual is than round to nearest's, as
 * a fraction: 1 - squant / rtn (0.75 = a quarter of RTN's; negative if it
 * grew). 0 when RTN's is 0: nothing to reduce.
 */
static double reduction(double squant, double rtn)
{
    return rtn > 0.0 ? 1.0 - squant / rtn : 0.0;
}

uint16_t sqi_f16_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u, mant = u & 0x7fffffu;
    int exp = (int)((u >> 23) & 0xffu) - 127 + 15;
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13), rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is still the right rounding */
    return (uint16_t)h;
}

/* Whether v rounds to a finite normal F16 (and its conversion above applies). */
static bool f16_normal(float v)
{
    float a = fabsf(v);
    return a >= 0x1p-14f && (sqi_f16_bits(a) & 0x7fffu) <= 0x7bffu;
}

void sqi_plan_stored_dtypes(const struct sq_plan *plan, const struct plan_layer *l,
                            enum sq_dtype *scale, enum sq_dtype *zero_point)
{
    *scale = *zero_point = SQ_DTYPE_F32;
    if (plan->scale_dtype != SQ_DTYPE_F16)
        return;
    bool f16 = true, i8 = true, i16 = true;
    for (size_t u = 0; u < l->units; u++) {
        float z = l->zero_point[u];
        f16 = f16 && f16_normal(l->scale[u]);
        i8 = i8 && z >= -128.0f && z <= 127.0f;
        i16 = i16 && z >= -32768.0f && z <= 32767.0f;
    }
    *scale = f16 ? SQ_DTYPE_F16 : SQ_DTYPE_F32;
    *zero_point = i8 ? SQ_DTYPE_I8 : i16 ? SQ_DTYPE_I16 : SQ_DTYPE_F32;
}

/* The report of one layer (new reference, NULL on allocation failure). */
static json_t *layer_json(const struct sq_plan *plan, size_t li, bool timings)
{
    struct sq_layer_info info;
    sq_plan_layer_info(plan, li, &info);
    const struct sq_report *r = &info.report;
    const struct sq_params *p = &plan->layers[li].params;
    json_t *o = json_pack(
        "{s:s, s:o, s:s, s:i, s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
        "s:I, s:I, s:I}",
        "name", info.name, "shape", shape_json(info.rank, info.shape), "dtype",
        sq_dtype_name(info.dtype), "bits", (int)info.bits, "mode", sq_mode_name(p->mode), "scheme",
        sq_scheme_name(p->scheme), "weights", (json_int_t)r->weights, "kernel_residual_reduction",
        reduction(r->max_kernel_residual, r->rtn_max_kernel_residual), "channel_residual_reduction",
        reduction(r->max_channel_residual, r->rtn_max_channel_residual), "mse",
        mean(r->sse, r->weights), "max_abs_error", r->max_abs, "rtn_mse",
        mean(r->rtn_sse, r->weights), "rtn_max_abs_error", r->rtn_max_abs, "max_kernel_residual",
        r->max_kernel_residual, "max_channel_residual", r->max_channel_residual,
        "rtn_max_kernel_residual", r->rtn_max_kernel_residual, "rtn_max_channel_residual",
        r->rtn_max_channel_residual, "flips", (json_int_t)r->flips, "kernel_flips",
        (json_int_t)r->kernel_flips, "channel_flips", (json_int_t)r->channel_flips);
    if (o &&
        (json_object_set_new(o, "group", json_integer((json_int_t)info.group)) != 0 ||
         json_object_set_new(o, "groups", json_integer((json_int_t)info.groups)) != 0 ||
         json_object_set_new(o, "scale_dtype", json_string(sq_dtype_name(info.scale_dtype))) != 0 ||
         json_object_set_new(o, "zero_point_dtype",
                             json_string(sq_dtype_name(info.zero_point_dtype))) != 0 ||
         json_object_set_new(o, "bits_per_weight", json_real(info.bits_per_weight)) != 0)) {
        json_decref(o);
        return NULL;
    }
    if (o && timings && json_object_set_new(o, "seconds", json_real(info.seconds)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The whole report document (new reference). */
static json_t *report_json(const struct sq_plan *plan, bool timings)
{
    json_t *layers = json_array();
    struct sq_report total;
    sq_report_init(&total);
    double seconds = 0.0, bits = 0.0;
    for (size_t i = 0; layers && i < plan->layer_count; i++) {
        json_t *l = layer_json(plan, i, timings);
        if (!l || json_array_append_new(layers, l) != 0) {
            json_decref(layers);
            return NULL;
        }
        struct sq_layer_info info;
        sq_plan_layer_info(plan, i, &info);
        sq_report_merge(&total, &info.report);
        seconds += info.seconds;
        bits += info.bits_per_weight * (double)info.report.weights;
    }
    if (!layers)
        return NULL;
    json_t *tot = json_pack(
        "{s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:f}", "layers", (json_int_t)plan->layer_count,
        "weights", (json_int_t)total.weights, "kernel_residual_reduction",
        reduction(total.max_kernel_residual, total.rtn_max_kernel_residual),
        "channel_residual_reduction",
        reduction(total.max_channel_residual, total.rtn_max_channel_residual), "mse",
        mean(total.sse, total.weights), "rtn_mse", mean(total.rtn_sse, total.weights), "flips",
        (json_int_t)total.flips, "bits_per_weight", mean(bits, total.weights));
    if (tot && timings && json_object_set_new(tot, "seconds", json_real(seconds)) != 0) {
        json_decref(tot);
        tot = NULL;
    }
    const struct sq_params *d = &plan->defaults;
    json_t *doc =
        json_pack("{s:s, s:{s:i, s:s, s:s, s:I, s:s}, s:o, s:o*}", "version", SQ_VERSION_STRING,
                  "params", "bits", (int)d->bits, "mode", sq_mode_name(d->mode), "scheme",
                  sq_scheme_name(d->scheme), "group", (json_int_t)plan->group, "scale_dtype",
                  sq_dtype_name(plan->scale_dtype), "layers", layers, "total", tot);
    /* ONNX: the weights left float, with why (e.g. consumers that disagree on the axis). */
    const char *name, *why;
    size_t skipped = sq_onnx_skipped(plan->model, 0, &name, &why);
    json_t *left = skipped && doc ? json_array() : NULL;
    for (size_t i = 0; left && i < skipped; i++) {
        sq_onnx_skipped(plan->model, i, &name, &why);
        if (json_array_append_new(left, json_pack("{s:s, s:s}", "name", name, "reason", why)) !=
            0) {
            json_decref(left);
            left = NULL;
        }
    }
    if (skipped && doc && (!left || json_object_set_new(doc, "left_float", left) != 0)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

enum sq_status sq_plan_report_json(const struct sq_plan *plan, bool timings, char **out,
                                   struct sq_error *err)
{
    json_t *doc = report_json(plan, timings);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(doc);
    if (!text)
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    *out = text;
    return SQ_OK;
}

/* Find the plan layer that quantizes model tensor ti, or NULL. */
static const struct plan_layer *layer_of(const struct sq_plan *plan, size_t ti)
{
    for (size_t i = 0; i < plan->layer_count; i++)
        if (plan->layers[i].tensor == ti)
            return &plan->layers[i];
    return NULL;
}

/* Add l's scales and zero points in their stored dtypes (converted copies owned by `out`). */
static enum sq_status add_stored(struct sq_model *out, const struct sq_plan *plan,
                                 const struct plan_layer *l, unsigned rank, const int64_t *shape,
                                 struct sq_error *err)
{
    enum sq_dtype sd, zd;
    sqi_plan_stored_dtypes(plan, l, &sd, &zd);
    size_t n = l->units, fb = n * sizeof(float);
    enum sq_status st;
    if (sd == SQ_DTYPE_F32) {
        st = sq_model_add(out, l->scale_name, SQ_DTYPE_F32, rank, shape, l->scale, fb, false, err);
    } else {
        uint8_t *b = malloc(n ? 2 * n : 1);
        if (!b)
            return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
        for (size_t u = 0; u < n; u++) {
            uint16_t h = sqi_f16_bits(l->scale[u]);
            b[2 * u] = (uint8_t)h;
            b[2 * u + 1] = (uint8_t)(h >> 8);
        }
        st = sq_model_add(out, l->scale_name, SQ_DTYPE_F16, rank, shape, b, 2 * n, true, err);
        if (st != SQ_OK)
            free(b);
    }
    if (st != SQ_OK)
        return st;
    if (zd == SQ_DTYPE_F32)
        return sq_model_add(out, l->zero_point_name, SQ_DTYPE_F32, rank, shape, l->zero_point, fb,
                            false, err);
    size_t es = sq_dtype_size(zd);
    uint8_t *b = malloc(n ? es * n : 1);
    if (!b)
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    for (size_t u = 0; u < n; u++) {
        int32_t z = (int32_t)l->zero_point[u]; /* exact: an integer value that fits */
        b[es * u] = (uint8_t)((uint32_t)z & 0xffu);
        if (es == 2)
            b[es * u + 1] = (uint8_t)(((uint32_t)z >> 8) & 0xffu);
    }
    st = sq_model_add(out, l->zero_point_name, zd, rank, shape, b, es * n, true, err);
    if (st != SQ_OK)
        free(b);
    return st;
}

/*
 * The output model: every input tensor in order, a quantized one replaced by
 * its codes, scale and zero point. All data is borrowed from the plan and
 * the input model.
 */
static enum sq_status output_model(const struct sq_plan *plan, struct sq_model *out,
                                   struct sq_error *err)
{
    const struct sq_model *m = plan->model;
    enum sq_status st = SQ_OK;
    for (size_t i = 0; st == SQ_OK && i < m->meta_count; i++)
        if (strcmp(m->meta[i].key, SQI_REPORT_KEY) != 0 &&
            strcmp(m->meta[i].key, SQI_PACKING_KEY) != 0)
            st = sq_model_set_meta(out, m->meta[i].key, m->meta[i].value, err);
    for (size_t i = 0; st == SQ_OK && i < m->count; i++) {
        const struct sq_tensor *t = &m->tensors[i];
        const struct plan_layer *l = layer_of(plan, i);
        if (!l) {
            st = sq_model_add(out, t->name, t->dtype, t->rank, t->shape, t->data, t->nbytes, false,
                              err);
            continue;
        }
        st = sqi_plan_layer_outputs(plan, l, out, err);
    }
    if (st == SQ_OK && plan->packing == SQ_PACKING_INT4) {
        /* {"W": {"packing": "int4", "shape": [...]}, ...}: how to unpack each packed tensor */
        json_t *doc = json_object();
        for (size_t i = 0; doc && i < plan->layer_count; i++) {
            const struct sq_tensor *t = &m->tensors[plan->layers[i].tensor];
            json_t *e =
                json_pack("{s:s, s:s, s:o}", "packing", "int4", "order",
                          "element 0 in the low nibble", "shape", shape_json(t->rank, t->shape));
            if (!e || json_object_set_new(doc, t->name, e) != 0) {
                json_decref(doc);
                doc = NULL;
            }
        }
        char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        st = text ? sq_model_set_meta(out, SQI_PACKING_KEY, text, err)
                  : sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
        free(text);
    }
    return st;
}

enum sq_status sqi_plan_layer_outputs(const struct sq_plan *plan, const struct plan_layer *l,
                                      struct sq_model *out, struct sq_error *err)
{
    const struct sq_tensor *t = &plan->model->tensors[l->tensor];
    /* Per channel [O] as always; with a group (any g > 0) [O, G]. */
    int64_t ch[2] = {(int64_t)l->geom.channels, (int64_t)l->groups};
    unsigned srank = l->group ? 2 : 1;
    /* A streamed layer's codes are already written and freed: only its header entry is
     * built from here (the callers of output_model with data check that codes exist). */
    const void *codes = l->codes ? (const void *)l->codes : (const void *)l->scale;
    int64_t half[1] = {(int64_t)(t->nelems / 2 + t->nelems % 2)};
    enum sq_status st =
        l->packed ? sq_model_add(out, t->name, SQ_DTYPE_U8, 1, half, l->packed, (size_t)half[0],
                                 false, err)
                  : sq_model_add(out, t->name, SQ_DTYPE_I8, t->rank, t->shape, codes, t->nelems,
                                 false, err);
    if (st == SQ_OK)
        st = add_stored(out, plan, l, srank, ch, err);
    return st;
}

/* The safetensors output, or with `header_only` its header (sq_safetensors_write_header). */
static enum sq_status safetensors_out(const struct sq_plan *plan, bool header_only, size_t limit,
                                      uint8_t **out, size_t *out_len, struct sq_error *err)
{
    struct sq_model m;
    sq_model_init(&m);
    char *report = NULL;
    json_t *doc = report_json(plan, false);
    if (doc)
        report = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(doc);
    enum sq_status st =
        report ? output_model(plan, &m, err) : sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    if (st == SQ_OK)
        st = sq_model_set_meta(&m, SQI_REPORT_KEY, report, err);
    if (st == SQ_OK)
        st = header_only ? sq_safetensors_write_header(&m, limit, out, out_len, err)
                         : sq_safetensors_write(&m, limit, out, out_len, err);
    free(report);
    sq_model_free(&m);
    return st;
}

static enum sq_status write_safetensors(const struct sq_plan *plan, size_t limit, uint8_t **out,
                                        size_t *out_len, struct sq_error *err)
{
    return safetensors_out(plan, false, limit, out, out_len, err);
}

enum sq_status sq_plan_write_header(const struct sq_plan *plan, size_t limit, uint8_t **out,
                                    size_t *out_len, struct sq_error *err)
{
    return safetensors_out(plan, true, limit, out, out_len, err);
}

static enum sq_status write_npy(const struct sq_plan *plan, size_t limit, uint8_t **out,
                                size_t *out_len, struct sq_error *err)
{
    if (plan->packing != SQ_PACKING_NONE)
        return sqi_fail(
            err, SQ_ERR_ARG,
            "format npy holds int8 codes: packing int4 needs safetensors, onnx or json");
    if (plan->layer_count != 1 || plan->model->count != 1)
        return sqi_fail(err, SQ_ERR_ARG,
                        "format npy holds one array: it needs an input of exactly one tensor to "
                        "quantize (this one has %zu tensors, %zu quantized); use safetensors or "
                        "json",
                        plan->model->count, plan->layer_count);
    const struct plan_layer *l = &plan->layers[0];
    const struct sq_tensor *in = &plan->model->tensors[l->tensor];
    struct sq_tensor t = *in;
    t.dtype = SQ_DTYPE_I8;
    t.nbytes = in->nelems;
    t.data = (const uint8_t *)l->codes;
    t.owned = NULL;
    return sq_npy_write(&t, limit, out, out_len, err);
}

static enum sq_status write_json(const struct sq_plan *plan, size_t limit, uint8_t **out,
                                 size_t *out_len, struct sq_error *err)
{
    struct sq_model m;
    sq_model_init(&m);
    struct sqi_buf b;
    sqi_buf_init(&b, limit);
    json_t *doc = NULL;
    char *head = NULL;
    enum sq_status st = output_model(plan, &m, err);
    if (st != SQ_OK)
        goto done;
    /* Everything but the tensor data goes through jansson; the base64 data,
     * which can be large, is appended directly between its parts. */
    json_t *meta = json_object(), *report = report_json(plan, false);
    for (size_t i = 0; meta && i < m.meta_count; i++)
        json_object_set_new(meta, m.meta[i].key, json_string(m.meta[i].value));
    doc = json_pack("{s:s, s:o*, s:o*}", "format", "squant-json/1", "metadata", meta, "report",
                    report);
    head = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) : NULL;
    if (!head) {
        st = sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* head ends with "\n}": reopen it to add "tensors". */
    size_t hl = strlen(head);
    st = sqi_buf_append(&b, head, hl - 2);
    if (st == SQ_OK)
        st = sqi_buf_printf(&b, ",\n  \"tensors\": [");
    for (size_t i = 0; st == SQ_OK && i < m.count; i++) {
        const struct sq_tensor *t = &m.tensors[i];
        json_t *name = json_string(t->name), *shape = shape_json(t->rank, t->shape);
        char *ns = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
        char *ss = shape ? json_dumps(shape, JSON_COMPACT) : NULL;
        json_decref(name);
        json_decref(shape);
        if (!ns || !ss)
            st = SQ_ERR_NOMEM;
        else
            st = sqi_buf_printf(&b,
                                "%s\n    {\"name\": %s, \"dtype\": \"%s\", \"shape\": %s, "
                                "\"data\": \"",
                                i ? "," : "", ns, sq_dtype_name(t->dtype), ss);
        free(ns);
        free(ss);
        if (st == SQ_OK)
            st = sqi_base64_append(&b, t->data, t->nbytes);
        if (st == SQ_OK)
            st = sqi_buf_append(&b, "\"}", 2);
    }
    if (st == SQ_OK)
        st = sqi_buf_printf(&b, "\n  ]\n}\n");
    if (st != SQ_OK) {
        st = sqi_fail(err, st,
                      st == SQ_ERR_LIMIT ? "the JSON output would exceed %zu bytes; use safetensors"
                                         : "out of memory writing JSON (limit %zu bytes)",
                      limit);
        goto done;
    }
    if (!(*out = sqi_buf_take(&b, out_len)))
        st = sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
done:
    json_decref(doc);
    free(head);
    sqi_buf_free(&b);
    sq_model_free(&m);
    return st;
}

/*
 * SQuant's float weights of layer l in the core's layout (malloc'ed), or
 * NULL: per channel, or per group of l->group input channels ([O, G] scales).
 */
static float *dequantized(const struct sq_plan *plan, const struct plan_layer *l,
                          const struct sq_tensor *t)
{
    size_t bytes, len = l->len, groups = l->groups ? l->groups : 1, glen = len;
    /* With scale_dtype F16 the file holds float16 scales: use those values, as squant
     * dequantize of that file does (zero points are stored exactly either way). */
    enum sq_dtype sd, zd;
    sqi_plan_stored_dtypes(plan, l, &sd, &zd);
    if (l->group && t->rank >= 2 && t->shape[1] > 0)
        glen = l->group * (len / (size_t)t->shape[1]);
    float *w = sqi_mul(t->nelems, sizeof(float), &bytes) ? malloc(bytes ? bytes : 1) : NULL;
    for (size_t c = 0; w && c < l->geom.channels; c++)
        for (size_t j = 0; j < groups; j++) {
            size_t at = c * len + j * glen, n = j + 1 < groups ? glen : len - j * glen;
            float sc = l->scale[c * groups + j];
            if (sd == SQ_DTYPE_F16) {
                uint16_t h = sqi_f16_bits(sc);
                uint8_t hb[2] = {(uint8_t)h, (uint8_t)(h >> 8)};
                struct sq_tensor ht = {.dtype = SQ_DTYPE_F16,
                                       .rank = 1,
                                       .shape = {1},
                                       .nelems = 1,
                                       .nbytes = 2,
                                       .data = hb};
                sq_tensor_to_f32(&ht, 0, 1, &sc);
            }
            sq_dequantize(l->codes + at, n, sc, l->zero_point[c * groups + j], w + at);
        }
    return w;
}

/* ONNX out: the input graph with each quantized weight in QDQ form or dequantized. */
static enum sq_status write_onnx(const struct sq_plan *plan, enum sq_onnx_layout layout,
                                 size_t limit, uint8_t **out, size_t *out_len, struct sq_error *err)
{
    const struct sq_model *m = plan->model;
    struct sq_onnx_weight *w = calloc(plan->layer_count, sizeof *w);
    json_t *doc = report_json(plan, false);
    char *report = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(doc);
    enum sq_status st = w && report ? SQ_OK : sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == SQ_OK && i < plan->layer_count; i++) {
        const struct plan_layer *l = &plan->layers[i];
        if (plan->packing == SQ_PACKING_INT4 && layout == SQ_ONNX_QDQ)
            layout = SQ_ONNX_QDQ_INT4;
        if (plan->packing == SQ_PACKING_MATMULNBITS && layout == SQ_ONNX_QDQ)
            layout = SQ_ONNX_MATMULNBITS;
        /* The QDQ forms hold one FLOAT scale per output channel (a group size would go in
         * sq_onnx_weight); the dequantized form takes any scales. */
        if (layout != SQ_ONNX_DEQUANTIZED && plan->scale_dtype != SQ_DTYPE_F32) {
            st = sqi_fail(err, SQ_ERR_ARG,
                          "format onnx writes FLOAT scales: scale_dtype=F16 is not available for "
                          "it (tensor '%s'; ONNX's DequantizeLinear takes a FLOAT16 scale only "
                          "for a FLOAT16 output); use format=dequantized or safetensors",
                          m->tensors[l->tensor].name);
            break;
        }
        w[i] = (struct sq_onnx_weight){.tensor = l->tensor,
                                       .codes = l->codes,
                                       .scale = l->scale,
                                       .zero_point = l->zero_point,
                                       .bits = l->params.bits,
                                       .group = l->group};
        if (layout == SQ_ONNX_DEQUANTIZED &&
            !(w[i].dequantized = dequantized(plan, l, &m->tensors[l->tensor])))
            st = sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    }
    if (st == SQ_OK)
        st = sq_onnx_write(m, w, plan->layer_count, layout, report, limit, out, out_len, err);
    for (size_t i = 0; w && i < plan->layer_count; i++)
        free((void *)w[i].dequantized);
    free(w);
    free(report);
    return st;
}

/*
 * safetensors out with SQuant's float weights in place: same names, dtype
 * and shape as the input, every other tensor byte-identical.
 */
static enum sq_status write_dequantized_safetensors(const struct sq_plan *plan, size_t limit,
                                                    uint8_t **out, size_t *out_len,
                                                    struct sq_error *err)
{
    const struct sq_model *m = plan->model;
    struct sq_model o;
    sq_model_init(&o);
    enum sq_status st = SQ_OK;
    for (size_t i = 0; st == SQ_OK && i < m->meta_count; i++)
        if (strcmp(m->meta[i].key, SQI_REPORT_KEY) != 0)
            st = sq_model_set_meta(&o, m->meta[i].key, m->meta[i].value, err);
    for (size_t i = 0; st == SQ_OK && i < m->count; i++) {
        const struct sq_tensor *t = &m->tensors[i];
        const struct plan_layer *l = layer_of(plan, i);
        if (!l) {
            st = sq_model_add(&o, t->name, t->dtype, t->rank, t->shape, t->data, t->nbytes, false,
                              err);
            continue;
        }
        float *f = dequantized(plan, l, t);
        uint8_t *b = malloc(t->nbytes ? t->nbytes : 1);
        if (!f || !b) {
            free(f);
            free(b);
            st = sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
            break;
        }
        sq_tensor_from_f32(t->dtype, f, t->nelems, b);
        free(f);
        st = sq_model_add(&o, t->name, t->dtype, t->rank, t->shape, b, t->nbytes, true, err);
        if (st != SQ_OK)
            free(b);
    }
    char *report = NULL;
    if (st == SQ_OK) {
        json_t *doc = report_json(plan, false);
        report = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
        json_decref(doc);
        st = report ? sq_model_set_meta(&o, SQI_REPORT_KEY, report, err)
                    : sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    }
    if (st == SQ_OK)
        st = sq_safetensors_write(&o, limit, out, out_len, err);
    free(report);
    sq_model_free(&o);
    return st;
}

enum sq_format sq_plan_output_format(const struct sq_plan *plan, enum sq_format format)
{
    if (format == SQ_FORMAT_AUTO)
        return plan->model->onnx ? SQ_FORMAT_ONNX : SQ_FORMAT_SAFETENSORS;
    return format;
}

/* Codes two per byte, element 0 in the low nibble (ONNX INT4's order). */
static enum sq_status pack_layers(struct sq_plan *plan, struct sq_error *err)
{
    for (size_t i = 0; i < plan->layer_count; i++) {
        struct plan_layer *l = &plan->layers[i];
        size_t n = plan->model->tensors[l->tensor].nelems;
        if (l->packed)
            continue;
        if (!(l->packed = calloc(n / 2 + n % 2 + 1, 1)))
            return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < n; k++)
            l->packed[k / 2] |= (uint8_t)(((uint8_t)l->codes[k] & 15u) << (4 * (k % 2)));
    }
    return SQ_OK;
}

enum sq_status sq_plan_write(struct sq_plan *plan, enum sq_format format, size_t limit,
                             uint8_t **out, size_t *out_len, struct sq_error *err)
{
    for (size_t i = 0; i < plan->layer_count; i++)
        if (!plan->layers[i].codes)
            return sqi_fail(err, SQ_ERR_ARG,
                            "the codes of layer %zu are not held (streamed, or never begun)", i);
    enum sq_format f = sq_plan_output_format(plan, format);
    if (plan->packing == SQ_PACKING_MATMULNBITS && f != SQ_FORMAT_ONNX)
        return sqi_fail(err, SQ_ERR_ARG,
                        "packing matmulnbits is an ONNX Runtime operator: it needs format onnx, "
                        "not %s",
                        sq_format_name(f));
    if (plan->packing == SQ_PACKING_INT4 && (f == SQ_FORMAT_SAFETENSORS || f == SQ_FORMAT_JSON)) {
        enum sq_status st = pack_layers(plan, err);
        if (st != SQ_OK)
            return st;
    }
    switch (f) {
    case SQ_FORMAT_ONNX:
        return write_onnx(plan, SQ_ONNX_QDQ, limit, out, out_len, err);
    case SQ_FORMAT_DEQUANTIZED:
        if (plan->model->onnx)
            return write_onnx(plan, SQ_ONNX_DEQUANTIZED, limit, out, out_len, err);
        return write_dequantized_safetensors(plan, limit, out, out_len, err);
    case SQ_FORMAT_SAFETENSORS:
        return write_safetensors(plan, limit, out, out_len, err);
    case SQ_FORMAT_NPY:
        return write_npy(plan, limit, out, out_len, err);
    case SQ_FORMAT_JSON:
        return write_json(plan, limit, out, out_len, err);
    default:
        return sqi_fail(err, SQ_ERR_UNSUPPORTED, "cannot write format %s", sq_format_name(format));
    }
}

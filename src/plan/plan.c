/*
 * The plan: which tensors of a model are quantized, with which parameters,
 * cut into independent work items, and the assembly of the output.
 *
 * Items are channel ranges of about SQI_ITEM_WEIGHTS weights. The cut
 * depends only on the model and the options, never on the thread count, and
 * reports merge in item order, so every run of the same request gives the
 * same bytes.
 */
#include <assert.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plan_internal.h"

#define SQI_ITEM_WEIGHTS ((size_t)1 << 17)

static void layer_free(struct plan_layer *l)
{
    free(l->codes);
    free(l->scale);
    free(l->zero_point);
    free(l->scale_name);
    free(l->zero_point_name);
    free(l->packed);
}

void sq_plan_free(struct sq_plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->layer_count; i++)
        layer_free(&plan->layers[i]);
    free(plan->layers);
    free(plan->items);
    free(plan);
}

static char *suffixed(const char *name, const char *suffix)
{
    size_t a = strlen(name), b = strlen(suffix);
    char *s = malloc(a + b + 1);
    if (s) {
        memcpy(s, name, a);
        memcpy(s + a, suffix, b + 1);
    }
    return s;
}

static bool selected(const struct sq_options *opt, const struct sq_tensor *t)
{
    if (!sq_dtype_is_quantizable(t->dtype) || t->rank < 2 || t->nelems == 0)
        return false;
    if (opt->include_count && !sqi_options_match_any(opt->include, opt->include_count, t->name))
        return false;
    return !sqi_options_match_any(opt->exclude, opt->exclude_count, t->name);
}

/* Set up one layer for tensor ti; on failure the layer holds what it allocated. */
static enum sq_status layer_init(struct plan_layer *l, const struct sq_model *m, size_t ti,
                                 const struct sq_options *opt, struct sq_error *err)
{
    const struct sq_tensor *t = &m->tensors[ti];
    memset(l, 0, sizeof *l);
    l->tensor = ti;
    l->params = opt->params;
    l->params.bits = sqi_options_bits_for(opt, t->name);
    enum sq_status st = sq_layer_init(&l->geom, t->rank, t->shape, err);
    if (st != SQ_OK)
        return st;
    l->len = sq_layer_channel_size(&l->geom);
    l->group = sqi_options_group_for(opt, t->name);
    l->groups = sq_layer_groups(&l->geom, l->group);
    if (!sqi_mul(l->geom.channels, l->groups, &l->units))
        return sqi_fail(err, SQ_ERR_LIMIT, "too many groups");
    if (!(l->scale_name = suffixed(t->name, ".scale")) ||
        !(l->zero_point_name = suffixed(t->name, ".zero_point")))
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    if (sq_model_find(m, l->scale_name) >= 0 || sq_model_find(m, l->zero_point_name) >= 0)
        return sqi_fail(err, SQ_ERR_CONFLICT,
                        "the output tensors '%s.scale' and '%s.zero_point' would replace an input "
                        "tensor of the same name (is the input already quantized?)",
                        t->name, t->name);
    /* Zeroed: sq_plan_layer_info reads them (stored dtypes) before items may have run.
     * The codes are allocated by sqi_plan_layer_alloc (at once, or per layer when streaming). */
    l->scale = calloc(l->units, sizeof(float));
    l->zero_point = calloc(l->units, sizeof(float));
    if (!l->scale || !l->zero_point)
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory for the outputs of %zu weights",
                        t->nelems);
    return SQ_OK;
}

/*
 * Cut a layer into items of about SQI_ITEM_WEIGHTS weights, its groups
 * (channels when per channel) spread evenly: a channel's groups are as
 * independent as channels are.
 */
static size_t items_for(const struct plan_layer *l)
{
    size_t total = l->geom.channels * l->len;
    size_t n = total / SQI_ITEM_WEIGHTS + (total % SQI_ITEM_WEIGHTS != 0);
    return n > l->units ? l->units : n;
}

enum sq_status sqi_plan_layer_alloc(struct sq_plan *plan, size_t l, struct sq_error *err)
{
    struct plan_layer *pl = &plan->layers[l];
    if (pl->codes)
        return SQ_OK;
    const struct sq_tensor *t = &plan->model->tensors[pl->tensor];
    if (!(pl->codes = malloc(t->nelems ? t->nelems : 1)))
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory for the outputs of %zu weights",
                        t->nelems);
    size_t held = atomic_fetch_add(&plan->layers_held, 1) + 1;
    size_t max = atomic_load(&plan->layers_held_max);
    while (held > max && !atomic_compare_exchange_weak(&plan->layers_held_max, &max, held))
        ;
    return SQ_OK;
}

/* MatMulNBits holds a MatMul weight in blocks of 16...256 inputs, at most 4 bits. */
static enum sq_status nbits_check(const struct sq_model *model, size_t tensor,
                                  const struct plan_layer *l, struct sq_error *err)
{
    struct sq_onnx_tensor_info info;
    if (!sq_onnx_tensor_info(model, tensor, &info) || strcmp(info.op, "MatMul") != 0)
        return SQ_OK;
    const char *name = model->tensors[tensor].name;
    if (l->params.bits > 4)
        return sqi_fail(err, SQ_ERR_ARG,
                        "packing matmulnbits holds codes of at most 4 bits; MatMul weight '%s' "
                        "has %u (see bits_for)",
                        name, l->params.bits);
    if (!sq_onnx_nbits_block_ok(l->group))
        return sqi_fail(
            err, SQ_ERR_ARG,
            "packing matmulnbits needs group = the block size: 16, 32, 64, 128 or 256 "
            "(what ONNX Runtime runs); MatMul weight '%s' has group %zu (see group_for)",
            name, l->group);
    return SQ_OK;
}

static enum sq_status plan_build(const struct sq_model *model, const struct sq_options *opt,
                                 bool lazy, struct sq_plan **out, struct sq_error *err)
{
    enum sq_status st = sq_params_check(&opt->params, err);
    if (st != SQ_OK)
        return st;
    struct sq_plan *p = calloc(1, sizeof *p);
    if (!p)
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    p->model = model;
    p->defaults = opt->params;
    p->group = opt->group;
    p->scale_dtype = opt->scale_dtype;
    p->lazy = lazy;
    if (opt->scale_dtype != SQ_DTYPE_F32 && opt->scale_dtype != SQ_DTYPE_F16) {
        free(p);
        return sqi_fail(err, SQ_ERR_ARG, "scale_dtype must be F32 or F16");
    }
    p->packing = opt->packing;
    if (opt->packing == SQ_PACKING_MATMULNBITS && !model->onnx) {
        free(p);
        return sqi_fail(err, SQ_ERR_ARG,
                        "packing matmulnbits writes ONNX Runtime's MatMulNBits operator into an "
                        "ONNX model: it needs an ONNX input");
    }
    size_t eligible = 0;
    for (size_t i = 0; i < model->count; i++) {
        const struct sq_tensor *t = &model->tensors[i];
        eligible += sq_dtype_is_quantizable(t->dtype) && t->rank >= 2 && t->nelems > 0;
        p->layer_count += selected(opt, t);
    }
    if (p->layer_count == 0) {
        free(p);
        if (eligible == 0 && model->onnx)
            return sqi_fail(err, SQ_ERR_NO_TENSOR,
                            "no tensor to quantize: the ONNX model has no float weight of Conv, "
                            "ConvTranspose, Gemm or MatMul that can be quantized (squant inspect "
                            "lists the ones left float and why)");
        if (eligible == 0)
            return sqi_fail(err, SQ_ERR_NO_TENSOR,
                            "no tensor to quantize: none of the %zu tensors is a floating "
                            "(F32, F16, BF16, F64) tensor of rank >= 2",
                            model->count);
        return sqi_fail(err, SQ_ERR_NO_TENSOR,
                        "no tensor to quantize: include/exclude leave none of the %zu eligible "
                        "tensors",
                        eligible);
    }
    p->layers = calloc(p->layer_count, sizeof *p->layers);
    if (!p->layers) {
        free(p);
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    }
    size_t li = 0;
    for (size_t i = 0; i < model->count; i++) {
        if (!selected(opt, &model->tensors[i]))
            continue;
        struct plan_layer *l = &p->layers[li++];
        st = layer_init(l, model, i, opt, err);
        if (st != SQ_OK) {
            sqi_error_tensor(err, model->tensors[i].name);
            p->layer_count = li;
            sq_plan_free(p);
            return st;
        }
        if (opt->packing == SQ_PACKING_INT4 && l->params.bits > 4) {
            st = sqi_fail(err, SQ_ERR_ARG,
                          "packing int4 holds codes of at most 4 bits; tensor '%s' has %u (see "
                          "bits_for)",
                          model->tensors[i].name, l->params.bits);
            p->layer_count = li;
            sq_plan_free(p);
            return st;
        }
        if (opt->packing == SQ_PACKING_MATMULNBITS &&
            (st = nbits_check(model, i, l, err)) != SQ_OK) {
            p->layer_count = li;
            sq_plan_free(p);
            return st;
        }
        if (!lazy && (st = sqi_plan_layer_alloc(p, li - 1, err)) != SQ_OK) {
            sqi_error_tensor(err, model->tensors[i].name);
            p->layer_count = li;
            sq_plan_free(p);
            return st;
        }
        l->first_item = p->item_count;
        l->items = items_for(l);
        p->item_count += l->items;
    }
    p->items = calloc(p->item_count, sizeof *p->items);
    if (!p->items) {
        sq_plan_free(p);
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    }
    for (li = 0; li < p->layer_count; li++) {
        const struct plan_layer *l = &p->layers[li];
        size_t ch = l->units;
        for (size_t k = 0; k < l->items; k++) {
            struct plan_item *it = &p->items[l->first_item + k];
            it->layer = li;
            it->c0 = ch * k / l->items;
            it->c1 = ch * (k + 1) / l->items;
        }
    }
    *out = p;
    return SQ_OK;
}

enum sq_status sq_plan_new(const struct sq_model *model, const struct sq_options *opt,
                           struct sq_plan **out, struct sq_error *err)
{
    return plan_build(model, opt, false, out, err);
}

enum sq_status sq_plan_new_streaming(const struct sq_model *model, const struct sq_options *opt,
                                     struct sq_plan **out, struct sq_error *err)
{
    return plan_build(model, opt, true, out, err);
}

size_t sq_plan_item_count(const struct sq_plan *plan) { return plan->item_count; }
size_t sq_plan_layer_count(const struct sq_plan *plan) { return plan->layer_count; }

size_t sq_plan_item_layer(const struct sq_plan *plan, size_t item)
{
    assert(item < plan->item_count);
    return plan->items[item].layer;
}

void sq_plan_layer_info(const struct sq_plan *plan, size_t layer, struct sq_layer_info *info)
{
    assert(layer < plan->layer_count);
    const struct plan_layer *l = &plan->layers[layer];
    const struct sq_tensor *t = &plan->model->tensors[l->tensor];
    info->name = t->name;
    info->rank = t->rank;
    info->shape = t->shape;
    info->dtype = t->dtype;
    info->bits = l->params.bits;
    info->layer = l->geom;
    info->items = l->items;
    info->group = l->group;
    info->groups = l->groups;
    info->scale = l->scale;
    info->zero_point = l->zero_point;
    sqi_plan_stored_dtypes(plan, l, &info->scale_dtype, &info->zero_point_dtype);
    sq_report_init(&info->report);
    info->seconds = 0.0;
    for (size_t k = 0; k < l->items; k++) {
        sq_report_merge(&info->report, &plan->items[l->first_item + k].report);
        info->seconds += plan->items[l->first_item + k].seconds;
    }
    double extra =
        (double)(sq_dtype_size(info->scale_dtype) + sq_dtype_size(info->zero_point_dtype)) * 8.0 *
        (double)l->units;
    uint64_t n = (uint64_t)l->geom.channels * l->len;
    info->bits_per_weight = n ? (double)info->bits + extra / (double)n : 0.0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum sq_status sq_plan_run(struct sq_plan *plan, size_t item, struct sq_error *err)
{
    if (item >= plan->item_count)
        return sqi_fail(err, SQ_ERR_ARG, "work item %zu does not exist", item);
    double t0 = now_seconds();
    struct plan_item *it = &plan->items[item];
    const struct plan_layer *l = &plan->layers[it->layer];
    if (!l->codes)
        return sqi_fail(err, SQ_ERR_ARG, "work item %zu: its layer was not begun (or was already "
                        "written)", item);
    const struct sq_tensor *t = &plan->model->tensors[l->tensor];
    size_t first = sq_group_offset(&l->geom, l->group, it->c0), scratch_size;
    size_t count = sq_group_offset(&l->geom, l->group, it->c1) - first;

    enum sq_status st = sq_group_scratch_size(&l->geom, l->group, &scratch_size);
    if (st != SQ_OK)
        return sqi_fail(err, st, "layer too large");
    const float *w;
    float *converted = NULL;
    const uint8_t *src = t->data + first * sizeof(float);
    if (t->dtype == SQ_DTYPE_F32 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ &&
        (uintptr_t)src % _Alignof(float) == 0) {
        w = (const float *)(const void *)src; /* zero copy: the input already is float32 */
    } else {
        size_t bytes;
        if (!sqi_mul(count, sizeof(float), &bytes) || !(converted = malloc(bytes)))
            return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
        sq_tensor_to_f32(t, first, count, converted);
        w = converted;
    }
    void *scratch = malloc(scratch_size);
    if (!scratch) {
        free(converted);
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    }
    st = sq_quantize_groups(&l->params, &l->geom, l->group, w, it->c0, it->c1, l->codes + first,
                            l->scale + it->c0, l->zero_point + it->c0, scratch, scratch_size,
                            &it->report, err);
    if (st != SQ_OK)
        sqi_error_tensor(err, t->name);
    free(scratch);
    free(converted);
    it->seconds = now_seconds() - t0;
    return st;
}

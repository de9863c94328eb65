/*
 * Streaming a plan's safetensors output with bounded memory.
 *
 * The data section of the output is the model's tensors in order, a
 * quantized one replaced by its codes, scale and zero point; its size is
 * known before anything runs. Only the header, which carries the report,
 * waits for the end. So a caller runs the layers in model order with a few
 * in flight (sq_plan_layer_begin before a layer's items, sq_plan_stream_data
 * once they are done), hands each piece of the data section to a sink and
 * frees the codes; then it writes sq_plan_write_header's bytes in front of
 * the data (see docs/internals for how the CLI and the daemon do that).
 * The bytes are those of sq_plan_write(SAFETENSORS).
 */
#include <stdlib.h>

#include "plan_internal.h"

enum sq_status sq_plan_layer_begin(struct sq_plan *plan, size_t layer, struct sq_error *err)
{
    if (layer >= plan->layer_count)
        return sqi_fail(err, SQ_ERR_ARG, "layer %zu does not exist", layer);
    if (plan->layers[layer].tensor < atomic_load(&plan->stream_next))
        return sqi_fail(err, SQ_ERR_ARG, "layer %zu was already written", layer);
    return sqi_plan_layer_alloc(plan, layer, err);
}

uint64_t sq_plan_data_bytes(const struct sq_plan *plan)
{
    const struct sq_model *m = plan->model;
    uint64_t total = 0;
    size_t li = 0;
    for (size_t i = 0; i < m->count; i++) {
        const struct sq_tensor *t = &m->tensors[i];
        if (li < plan->layer_count && plan->layers[li].tensor == i) {
            const struct plan_layer *l = &plan->layers[li++];
            enum sq_dtype sd, zd;
            sqi_plan_stored_dtypes(plan, l, &sd, &zd);
            total += t->nelems + (uint64_t)l->units * (sq_dtype_size(sd) + sq_dtype_size(zd));
        } else {
            total += t->nbytes;
        }
    }
    return total;
}

size_t sq_plan_layers_held_max(const struct sq_plan *plan)
{
    return plan->layers_held_max;
}

void sq_plan_item_input(const struct sq_plan *plan, size_t item, const uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (item >= plan->item_count)
        return;
    const struct plan_item *it = &plan->items[item];
    const struct plan_layer *l = &plan->layers[it->layer];
    const struct sq_tensor *t = &plan->model->tensors[l->tensor];
    /* As sq_plan_run: element offsets of the item's first and last channel. */
    size_t first = sq_group_offset(&l->geom, l->group, it->c0);
    size_t count = sq_group_offset(&l->geom, l->group, it->c1) - first;
    size_t es = sq_dtype_size(t->dtype);
    *data = t->data + first * es;
    *len = count * es;
}

static enum sq_status put(sq_write_fn write, void *ctx, const void *data, size_t len,
                          struct sq_error *err)
{
    return len ? write(ctx, data, len, err) : SQ_OK;
}

enum sq_status sq_plan_stream_data(struct sq_plan *plan, size_t layer, sq_write_fn write, void *ctx,
                                   struct sq_error *err)
{
    const struct sq_model *m = plan->model;
    size_t next = atomic_load(&plan->stream_next);
    if (layer > plan->layer_count)
        return sqi_fail(err, SQ_ERR_ARG, "layer %zu does not exist", layer);
    size_t end = layer < plan->layer_count ? plan->layers[layer].tensor + 1 : m->count;
    if (layer < plan->layer_count ? end <= next : end < next)
        return sqi_fail(err, SQ_ERR_ARG, "layer %zu is not the next one to write", layer);
    /* The layers are in model order: find the first one at or after stream_next. */
    size_t li = 0;
    while (li < plan->layer_count && plan->layers[li].tensor < next)
        li++;
    enum sq_status st = SQ_OK;
    for (size_t i = next; st == SQ_OK && i < end; i++) {
        const struct sq_tensor *t = &m->tensors[i];
        struct plan_layer *l =
            li < plan->layer_count && plan->layers[li].tensor == i ? &plan->layers[li++] : NULL;
        if (!l) {
            st = put(write, ctx, t->data, t->nbytes, err);
            continue;
        }
        if (!l->codes)
            return sqi_fail(err, SQ_ERR_ARG, "layer '%s' was not begun", t->name);
        /* The layer's tensors exactly as the in-memory output has them. */
        struct sq_model outs;
        sq_model_init(&outs);
        st = sqi_plan_layer_outputs(plan, l, &outs, err);
        for (size_t k = 0; st == SQ_OK && k < outs.count; k++)
            st = put(write, ctx, outs.tensors[k].data, outs.tensors[k].nbytes, err);
        sq_model_free(&outs);
        if (st == SQ_OK) {
            free(l->codes);
            l->codes = NULL;
            atomic_fetch_sub(&plan->layers_held, 1);
        }
        atomic_store(&plan->stream_next, i + 1);
    }
    if (st == SQ_OK)
        atomic_store(&plan->stream_next, end);
    return st;
}

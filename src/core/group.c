/*
 * Group-wise ranges on top of the per-channel core: a group of g input
 * channels of one output channel is g * ksize contiguous weights, so it is
 * quantized as a channel of a layer {groups, g, ksize}. No implementation
 * knows about groups; each inherits the reference's exactness.
 *
 * When g divides the input dimension, the whole tensor is one such layer
 * {O * I / g, g, ksize} and a range of groups is one call. Otherwise each
 * output channel is its full groups (one call) and its shorter last group
 * (a one-channel layer of its own).
 */
#include "core.h"

/* Kernels in a full group (group 0 and group >= kernels: the whole channel). */
static size_t full_kernels(const struct sq_layer *layer, size_t group)
{
    return group == 0 || group >= layer->kernels ? layer->kernels : group;
}

size_t sq_layer_groups(const struct sq_layer *layer, size_t group)
{
    size_t gk = full_kernels(layer, group);
    return gk ? layer->kernels / gk + (layer->kernels % gk != 0) : 1;
}

size_t sq_group_offset(const struct sq_layer *layer, size_t group, size_t u)
{
    size_t g = sq_layer_groups(layer, group);
    size_t o = u / g, j = u % g;
    return o * layer->kernels * layer->ksize + j * full_kernels(layer, group) * layer->ksize;
}

enum sq_status sq_group_scratch_size(const struct sq_layer *layer, size_t group, size_t *bytes)
{
    struct sq_layer one = {1, full_kernels(layer, group), layer->ksize};
    return sq_scratch_size(&one, bytes);
}

/* Name the first non-finite weight of the range, counted from the tensor's start. */
static enum sq_status nonfinite(const struct sq_layer *layer, const float *w, size_t first,
                                size_t count, struct sq_error *err)
{
    size_t i = 0;
    while (i < count && isfinite(w[i]))
        i++;
    size_t len = layer->kernels * layer->ksize, at = first + i;
    enum sq_status st = sqi_fail(
        err, SQ_ERR_NONFINITE, "weight %zu (output channel %zu, element %zu of the channel) is %s",
        at, at / len, at % len, i < count && isnan(w[i]) ? "NaN" : "infinite");
    if (err) {
        err->channel = (int64_t)(at / len);
        err->index = (int64_t)at;
    }
    return st;
}

enum sq_status sq_quantize_groups(const struct sq_params *params, const struct sq_layer *layer,
                                  size_t group, const float *w, size_t u0, size_t u1, int8_t *codes,
                                  float *scale, float *zero_point, void *scratch,
                                  size_t scratch_size, struct sq_report *report,
                                  struct sq_error *err)
{
    if (layer->channels == 0 || layer->kernels == 0 || layer->ksize == 0)
        return sqi_fail(err, SQ_ERR_ARG, "invalid layer geometry");
    size_t per = sq_layer_groups(layer, group), gk = full_kernels(layer, group), units = 0;
    if (per == 1) /* one group per channel: per-channel SQuant */
        return sq_quantize_range(params, layer, w, u0, u1, codes, scale, zero_point, scratch,
                                 scratch_size, report, err);
    if (!sqi_mul(layer->channels, per, &units) || u0 > u1 || u1 > units)
        return sqi_fail(err, SQ_ERR_ARG, "group range [%zu, %zu) is outside [0, %zu)", u0, u1,
                        units);
    size_t ks = layer->ksize, last = layer->kernels - (per - 1) * gk;
    size_t first = sq_group_offset(layer, group, u0);
    size_t count = sq_group_offset(layer, group, u1) - first;
    enum sq_status st;
    if (last == gk) { /* g divides I: the tensor is the layer {O * I / g, g, ksize} */
        struct sq_layer flat = {units, gk, ks};
        st = sq_quantize_range(params, &flat, w, u0, u1, codes, scale, zero_point, scratch,
                               scratch_size, report, err);
        return st == SQ_ERR_NONFINITE ? nonfinite(layer, w, first, count, err) : st;
    }
    if (report)
        sq_report_init(report);
    size_t done = 0; /* weights of the range already quantized */
    for (size_t u = u0; u < u1;) {
        size_t j = u % per, n;
        struct sq_layer part = {1, last, ks};
        if (j + 1 < per) { /* the channel's full groups, up to the range's end */
            size_t end = u - j + per - 1;
            n = (end < u1 ? end : u1) - u;
            part.channels = n;
            part.kernels = gk;
        } else {
            n = 1;
        }
        struct sq_report r;
        st = sq_quantize_range(params, &part, w + done, 0, n, codes + done, scale + (u - u0),
                               zero_point + (u - u0), scratch, scratch_size, report ? &r : NULL,
                               err);
        if (st == SQ_ERR_NONFINITE)
            return nonfinite(layer, w, first, count, err);
        if (st != SQ_OK)
            return st;
        if (report)
            sq_report_merge(report, &r);
        done += n * part.kernels * ks;
        u += n;
    }
    return SQ_OK;
}

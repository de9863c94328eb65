/*
 * Public entry points of the core: names, parameters, geometry, and
 * sq_quantize_range, which checks its arguments, binds the implementation
 * (the one place where that happens) and converts to the public convention.
 */
#include <string.h>

#include "core.h"

static const char *const mode_names[SQ_MODE_COUNT] = {
    [SQ_MODE_SQUANT] = "squant",
    [SQ_MODE_SQUANT_K] = "squant-k",
    [SQ_MODE_SQUANT_C] = "squant-c",
    [SQ_MODE_RTN] = "rtn",
};
static const char *const scheme_names[SQ_SCHEME_COUNT] = {
    [SQ_SCHEME_ASYMMETRIC] = "asymmetric",
    [SQ_SCHEME_SYMMETRIC] = "symmetric",
};
static const char *const impl_names[SQ_IMPL_COUNT] = {
    [SQ_IMPL_AUTO] = "auto", [SQ_IMPL_REF] = "ref",       [SQ_IMPL_GENERIC] = "generic",
    [SQ_IMPL_AVX2] = "avx2", [SQ_IMPL_AVX512] = "avx512",
};

static int lookup(const char *const *names, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (name && strcmp(names[i], name) == 0)
            return i;
    return -1;
}

const char *sq_mode_name(enum sq_mode mode)
{
    return (unsigned)mode < SQ_MODE_COUNT ? mode_names[mode] : "unknown";
}

enum sq_status sq_mode_from_name(const char *name, enum sq_mode *out)
{
    int i = lookup(mode_names, SQ_MODE_COUNT, name);
    if (i < 0 && name && strcmp(name, "squant-e") == 0)
        i = SQ_MODE_RTN;
    if (i < 0)
        return SQ_ERR_ARG;
    *out = (enum sq_mode)i;
    return SQ_OK;
}

const char *sq_scheme_name(enum sq_scheme scheme)
{
    return (unsigned)scheme < SQ_SCHEME_COUNT ? scheme_names[scheme] : "unknown";
}

enum sq_status sq_scheme_from_name(const char *name, enum sq_scheme *out)
{
    int i = lookup(scheme_names, SQ_SCHEME_COUNT, name);
    if (i < 0)
        return SQ_ERR_ARG;
    *out = (enum sq_scheme)i;
    return SQ_OK;
}

const char *sq_impl_name(enum sq_impl impl)
{
    return (unsigned)impl < SQ_IMPL_COUNT ? impl_names[impl] : "unknown";
}

enum sq_status sq_impl_from_name(const char *name, enum sq_impl *out)
{
    int i = lookup(impl_names, SQ_IMPL_COUNT, name);
    if (i < 0)
        return SQ_ERR_ARG;
    *out = (enum sq_impl)i;
    return SQ_OK;
}

/* The implementation table: one row per enum sq_impl. Every report gives the same bits. */
static const struct {
    sqi_range_fn fn;
    sqi_report_fn report;
    bool (*available)(void);
} impls[SQ_IMPL_COUNT] = {
    [SQ_IMPL_REF] = {sqi_quantize_ref, sqi_report_ref, NULL},
    [SQ_IMPL_GENERIC] = {sqi_quantize_generic, sqi_report_channels, NULL},
#ifdef SQ_ARCH_X86_64
    [SQ_IMPL_AVX2] = {sqi_quantize_avx2, sqi_report_avx2, sqi_cpu_has_avx2},
    [SQ_IMPL_AVX512] = {sqi_quantize_avx512, sqi_report_avx512, sqi_cpu_has_avx512},
#endif
};

bool sq_impl_available(enum sq_impl impl)
{
    if (impl == SQ_IMPL_AUTO)
        return true;
    if ((unsigned)impl >= SQ_IMPL_COUNT || !impls[impl].fn)
        return false;
    return !impls[impl].available || impls[impl].available();
}

/* The one place an implementation is chosen. */
static enum sq_impl bind_impl(enum sq_impl impl)
{
    if (impl == SQ_IMPL_AUTO) {
        static const enum sq_impl preference[] = {SQ_IMPL_AVX512, SQ_IMPL_AVX2, SQ_IMPL_GENERIC};
        for (size_t i = 0; i < sizeof preference / sizeof *preference; i++)
            if (sq_impl_available(preference[i]))
                return preference[i];
    }
    return impl;
}

void sq_params_init(struct sq_params *params)
{
    params->bits = SQ_BITS_DEFAULT;
    params->mode = SQ_MODE_SQUANT;
    params->scheme = SQ_SCHEME_ASYMMETRIC;
    params->impl = SQ_IMPL_AUTO;
}

enum sq_status sq_params_check(const struct sq_params *p, struct sq_error *err)
{
    if (p->bits < SQ_BITS_MIN || p->bits > SQ_BITS_MAX)
        return sqi_fail(err, SQ_ERR_ARG, "bits must be between %d and %d, not %u", SQ_BITS_MIN,
                        SQ_BITS_MAX, p->bits);
    if ((unsigned)p->mode >= SQ_MODE_COUNT)
        return sqi_fail(err, SQ_ERR_ARG, "unknown mode %d", (int)p->mode);
    if ((unsigned)p->scheme >= SQ_SCHEME_COUNT)
        return sqi_fail(err, SQ_ERR_ARG, "unknown scheme %d", (int)p->scheme);
    if ((unsigned)p->impl >= SQ_IMPL_COUNT)
        return sqi_fail(err, SQ_ERR_ARG, "unknown implementation %d", (int)p->impl);
    if (!sq_impl_available(p->impl))
        return sqi_fail(err, SQ_ERR_ARG, "implementation %s is not available on this CPU",
                        sq_impl_name(p->impl));
    return SQ_OK;
}

/* Channels longer than this are refused: indices inside a channel are 32-bit. */
#define SQI_MAX_CHANNEL ((size_t)1 << 30)

enum sq_status sq_layer_init(struct sq_layer *layer, unsigned rank, const int64_t *shape,
                             struct sq_error *err)
{
    if (rank < 2 || rank > SQ_MAX_RANK)
        return sqi_fail(
            err, SQ_ERR_SHAPE,
            "rank %u cannot be quantized: expected [out, in] or [out, in, kernel dims...]", rank);
    for (unsigned i = 0; i < rank; i++)
        if (shape[i] < 1)
            return sqi_fail(err, SQ_ERR_SHAPE, "dimension %u is %lld: every dimension must be >= 1",
                            i, (long long)shape[i]);
    size_t total, ks = 1;
    if (!sqi_shape_product(shape, rank, &total))
        return sqi_fail(err, SQ_ERR_LIMIT, "the element count overflows");
    for (unsigned i = 2; i < rank; i++)
        ks *= (size_t)shape[i];
    size_t chan = (size_t)shape[1] * ks;
    if (ks > SQI_MAX_CHANNEL || chan > SQI_MAX_CHANNEL)
        return sqi_fail(err, SQ_ERR_LIMIT, "an output channel has %zu elements, more than %zu",
                        chan, SQI_MAX_CHANNEL);
    layer->channels = (size_t)shape[0];
    layer->kernels = (size_t)shape[1];
    layer->ksize = ks;
    return SQ_OK;
}

size_t sq_layer_channel_size(const struct sq_layer *layer)
{
    return layer->kernels * layer->ksize;
}

enum sq_status sq_scratch_size(const struct sq_layer *layer, size_t *bytes)
{
    size_t len;
    if (!sqi_mul(layer->kernels, layer->ksize, &len) || len > SQI_MAX_CHANNEL)
        return SQ_ERR_LIMIT;
    *bytes = sqi_scratch_bytes(len);
    return SQ_OK;
}

void sq_report_init(struct sq_report *r)
{
    memset(r, 0, sizeof *r);
}

static double dmax(double a, double b)
{
    return a > b ? a : b;
}

void sq_report_merge(struct sq_report *dst, const struct sq_report *src)
{
    dst->weights += src->weights;
    dst->sse += src->sse;
    dst->rtn_sse += src->rtn_sse;
    dst->max_abs = dmax(dst->max_abs, src->max_abs);
    dst->rtn_max_abs = dmax(dst->rtn_max_abs, src->rtn_max_abs);
    dst->max_kernel_residual = dmax(dst->max_kernel_residual, src->max_kernel_residual);
    dst->max_channel_residual = dmax(dst->max_channel_residual, src->max_channel_residual);
    dst->rtn_max_kernel_residual = dmax(dst->rtn_max_kernel_residual, src->rtn_max_kernel_residual);
    dst->rtn_max_channel_residual =
        dmax(dst->rtn_max_channel_residual, src->rtn_max_channel_residual);
    dst->flips += src->flips;
    dst->kernel_flips += src->kernel_flips;
    dst->channel_flips += src->channel_flips;
}

static void ctx_init(struct sqi_ctx *ctx, const struct sq_params *p, const struct sq_layer *layer)
{
    float half = (float)(1u << (p->bits - 1));
    ctx->bits = p->bits;
    ctx->half = half;
    ctx->t_min = -half;
    ctx->t_max = half - 1.0f;
    ctx->levels = (float)((1u << p->bits) - 1);
    ctx->symmetric = p->scheme == SQ_SCHEME_SYMMETRIC;
    ctx->kernel_stage =
        (p->mode == SQ_MODE_SQUANT || p->mode == SQ_MODE_SQUANT_K) && layer->ksize > 1;
    ctx->channel_stage = p->mode == SQ_MODE_SQUANT || p->mode == SQ_MODE_SQUANT_C;
    ctx->kernels = layer->kernels;
    ctx->ksize = layer->ksize;
    ctx->len = layer->kernels * layer->ksize;
}

/*
 * Whether channels [c0, c1) all have a finite public step, zero point and
 * dequantized range ends; with `convert`, also turn scale and zp into the
 * public convention. x - x is 0 for a finite x and NaN otherwise: one
 * branch-free sum the compiler vectorizes (a group-wise call has one channel
 * per few dozen weights).
 */
static inline __attribute__((always_inline)) bool ranges_finite(const struct sqi_ctx *ctx,
                                                                float *scale, float *zp, size_t c0,
                                                                size_t c1, bool convert)
{
    double t_min = (double)ctx->t_min, t_max = (double)ctx->t_max, acc = 0.0;
    for (size_t c = c0; c < c1; c++) {
        float sf = sqi_public_step(scale[c]), zf = sqi_public_zero_point(zp[c]);
        double step = (double)sf, z = (double)zf;
        float d0 = (float)((t_min - z) * step), d1 = (float)((t_max - z) * step);
        acc += ((step - step) + (z - z)) + (double)((d0 - d0) + (d1 - d1));
        if (convert) {
            scale[c] = sf;
            zp[c] = zf;
        }
    }
    return acc == 0.0;
}

/*
 * The first of n channels whose range cannot be represented (n if none):
 * finite weights whose range overflows float give an infinite step. With
 * `convert`, scale and zp are turned into the public convention on the way
 * (their values are unspecified if one is bad).
 */
static size_t first_bad_range(const struct sqi_ctx *ctx, float *scale, float *zp, size_t n,
                              bool convert)
{
    for (size_t c0 = 0; c0 < n; c0 += 64) {
        size_t c1 = n - c0 < 64 ? n : c0 + 64;
        bool ok = convert ? ranges_finite(ctx, scale, zp, c0, c1, true)
                          : ranges_finite(ctx, scale, zp, c0, c1, false);
        if (ok)
            continue;
        for (size_t c = c0; c < c1; c++) {
            float sf = convert ? scale[c] : sqi_public_step(scale[c]);
            float zf = convert ? zp[c] : sqi_public_zero_point(zp[c]);
            double step = (double)sf, z = (double)zf;
            float d0 = (float)(((double)ctx->t_min - z) * step);
            float d1 = (float)(((double)ctx->t_max - z) * step);
            if (!(isfinite(step) && isfinite(z) && isfinite(d0) && isfinite(d1)))
                return c;
        }
    }
    return n;
}

enum sq_status sq_quantize_range(const struct sq_params *params, const struct sq_layer *layer,
                                 const float *w, size_t c0, size_t c1, int8_t *codes, float *scale,
                                 float *zero_point, void *scratch, size_t scratch_size,
                                 struct sq_report *report, struct sq_error *err)
{
    enum sq_status st = sq_params_check(params, err);
    if (st != SQ_OK)
        return st;
    size_t need;
    if (sq_scratch_size(layer, &need) != SQ_OK || layer->channels == 0 || layer->kernels == 0 ||
        layer->ksize == 0)
        return sqi_fail(err, SQ_ERR_ARG, "invalid layer geometry");
    if (c0 > c1 || c1 > layer->channels)
        return sqi_fail(err, SQ_ERR_ARG, "channel range [%zu, %zu) is outside [0, %zu)", c0, c1,
                        layer->channels);
    if (!scratch || scratch_size < need)
        return sqi_fail(err, SQ_ERR_ARG, "scratch of %zu bytes is smaller than the %zu needed",
                        scratch_size, need);

    /* Implementations keep 8-byte items at the start: align the scratch. */
    uintptr_t aligned = ((uintptr_t)scratch + 63) & ~(uintptr_t)63;
    scratch = (void *)aligned;
    struct sqi_ctx ctx;
    ctx_init(&ctx, params, layer);
    size_t n = c1 - c0, len = ctx.len;
    struct sqi_flips flips = {0, 0};
    enum sq_impl impl = bind_impl(params->impl);
    size_t done = impls[impl].fn(&ctx, n, w, codes, scale, zero_point, scratch, &flips);
    if (done < n) {
        const float *cw = w + done * len;
        size_t i = 0;
        while (i < len && isfinite(cw[i]))
            i++;
        if (err) {
            err->channel = (int64_t)(c0 + done);
            err->index = (int64_t)((c0 + done) * len + i);
        }
        return sqi_fail(err, SQ_ERR_NONFINITE,
                        "weight %zu (output channel %zu, element %zu of the channel) is %s",
                        (c0 + done) * len + i, c0 + done, i,
                        i < len && isnan(cw[i]) ? "NaN" : "infinite");
    }
    /*
     * Finite weights whose range overflows float (near +-FLT_MAX) give an
     * infinite step: no code can represent them. Say so for the channel.
     * Without a report, the public values are written in the same pass.
     */
    size_t c = first_bad_range(&ctx, scale, zero_point, n, !report);
    if (c == n && !report)
        return SQ_OK;
    if (c < n) {
        const float *cw = w + c * len;
        float lo = cw[0], hi = cw[0];
        for (size_t i = 1; i < len; i++) {
            lo = cw[i] < lo ? cw[i] : lo;
            hi = cw[i] > hi ? cw[i] : hi;
        }
        if (err)
            err->channel = (int64_t)(c0 + c);
        return sqi_fail(err, SQ_ERR_NONFINITE,
                        "the weights of output channel %zu span %g to %g, a range wider than "
                        "float32 holds: the quantization step would be infinite",
                        c0 + c, (double)lo, (double)hi);
    }
    sq_report_init(report);
    impls[impl].report(&ctx, n, w, codes, scale, zero_point, scratch, report);
    report->kernel_flips = flips.kernel;
    report->channel_flips = flips.channel;
    first_bad_range(&ctx, scale, zero_point, n, true);
    return SQ_OK;
}

/*
 * Internals of the SQuant core shared by its files (sqi_ prefix).
 *
 * Conventions inside the core follow SQUANT-SPEC (the reference's): per
 * channel `scale` is codes per unit and `zp` the reference zero point, so
 * x = f32(f32(scale * w) - zp). Only sq_quantize_range converts them into the
 * public convention (step = 1/scale, zero_point = -zp).
 */
#ifndef SQ_CORE_H
#define SQ_CORE_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squant/squant.h>

#include "util.h"

/* Everything an implementation needs to know about one call. */
struct sqi_ctx {
    unsigned bits;
    float t_min, t_max;     /* -2^(b-1), 2^(b-1) - 1 */
    float levels;           /* N = 2^b - 1 */
    float half;             /* 2^(b-1) */
    bool symmetric;
    bool kernel_stage;      /* mode has K and ksize > 1 */
    bool channel_stage;     /* mode has C */
    size_t kernels, ksize, len; /* len = kernels * ksize */
};

/* Counters an implementation keeps while it quantizes. */
struct sqi_flips {
    uint64_t kernel;  /* elements the kernel stage changed */
    uint64_t channel; /* elements the channel stage changed */
};

/*
 * An implementation: quantize `n` consecutive channels starting at w (codes
 * to q, per-channel reference scale and zp). Returns n when every weight is
 * finite, otherwise the index (0-based, relative) of the first channel with
 * a non-finite weight, whose outputs and those after it are unspecified.
 */
typedef size_t (*sqi_range_fn)(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q,
                               float *scale, float *zp, void *scratch, struct sqi_flips *flips);

size_t sqi_quantize_ref(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q,
                        float *scale, float *zp, void *scratch, struct sqi_flips *flips);
size_t sqi_quantize_generic(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q,
                            float *scale, float *zp, void *scratch, struct sqi_flips *flips);
#ifdef SQ_X86_KERNELS
size_t sqi_quantize_avx2(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q,
                         float *scale, float *zp, void *scratch, struct sqi_flips *flips);
size_t sqi_quantize_avx512(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q,
                           float *scale, float *zp, void *scratch, struct sqi_flips *flips);
bool sqi_cpu_has_avx2(void);
bool sqi_cpu_has_avx512(void);
#endif

/* Bytes of scratch each implementation may use for a channel of `len` elements. */
size_t sqi_scratch_bytes(size_t len);

/*
 * Round to nearest, ties to even (C23 roundevenf), exact for every finite
 * float in the default rounding mode: below 2^23 adding and subtracting 2^23
 * rounds away the fraction; from 2^23 on every float is an integer.
 */
static inline float sqi_rne(float v)
{
    float a = fabsf(v);
    if (!(a < 0x1p23f))
        return v;
    float t = (a + 0x1p23f) - 0x1p23f;
    return copysignf(t, v);
}

/* The per-channel range (SQUANT-SPEC section 2, or the symmetric scheme). */
static inline void sqi_channel_params(const struct sqi_ctx *ctx, float mn, float mx, float *scale,
                                      float *zp)
{
    if (ctx->symmetric) {
        float m = fmaxf(fabsf(mn), fabsf(mx));
        if (m < 1e-8f)
            m = 1e-8f;
        *scale = ctx->t_max / m;
        *zp = 0.0f;
    } else {
        float d = mx - mn;
        if (d < 1e-8f)
            d = 1e-8f;
        float s = ctx->levels / d;
        *scale = s;
        *zp = sqi_rne(s * mn) + ctx->half;
    }
}

/* x = f32(f32(scale * w) - zp): two roundings, never fused. */
static inline float sqi_code_x(float scale, float zp, float w)
{
    float p = scale * w;
    return p - zp;
}

/* f32 sum of v[0..n) in PyTorch's CPU order (SQUANT-SPEC section 5). */
float sqi_rowsum(const float *v, size_t n);

/* Clamp a code to [t_min, t_max] and convert. */
static inline int8_t sqi_clamp_code(const struct sqi_ctx *ctx, float code)
{
    if (code < ctx->t_min)
        code = ctx->t_min;
    if (code > ctx->t_max)
        code = ctx->t_max;
    return (int8_t)code;
}

/* Report of n channels (see struct sq_report), from the inputs and the outputs. */
void sqi_report_channels(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                         const float *scale, const float *zp, struct sq_report *report);

/* One dequantized weight in the public convention (see sq_dequantize). */
static inline float sqi_dequant(int8_t q, double step, double zero_point)
{
    return (float)(((double)q - zero_point) * step);
}

/* The public convention: step = 1/scale, zero_point = -zp. */
static inline float sqi_public_step(float scale) { return 1.0f / scale; }
static inline float sqi_public_zero_point(float zp) { return 0.0f - zp; }

#endif

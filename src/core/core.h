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
#include <string.h>

#include <squant/quant.h>

#include "util.h"

/* Everything an implementation needs to know about one call. */
struct sqi_ctx {
    unsigned bits;
    float t_min, t_max; /* -2^(b-1), 2^(b-1) - 1 */
    float levels;       /* N = 2^b - 1 */
    float half;         /* 2^(b-1) */
    bool symmetric;
    bool kernel_stage;          /* mode has K and ksize > 1 */
    bool channel_stage;         /* mode has C */
    size_t kernels, ksize, len; /* len = kernels * ksize */
};

/* Counters an implementation keeps while it quantizes. */
struct sqi_flips {
    uint64_t kernel;  /* elements whose (clamped) code the kernel stage changed */
    uint64_t channel; /* elements whose (clamped) code the channel stage changed */
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
#ifdef SQ_ARCH_X86_64
size_t sqi_quantize_avx2(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q,
                         float *scale, float *zp, void *scratch, struct sqi_flips *flips);
size_t sqi_quantize_avx512(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q,
                           float *scale, float *zp, void *scratch, struct sqi_flips *flips);
bool sqi_cpu_has_avx2(void);
bool sqi_cpu_has_avx512(void);
/* sqi_rowsum computed with the SIMD code (the same order), for tests. */
float sqi_rowsum_avx2(const float *v, size_t n);
float sqi_rowsum_avx512(const float *v, size_t n);
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

/* sqi_rne with a select in place of its early return (the same value), for the vectorizer. */
static inline float sqi_rne_sel(float v)
{
    float a = fabsf(v);
    float t = copysignf((a + 0x1p23f) - 0x1p23f, v);
    return a < 0x1p23f ? t : v;
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
/* Block size (2^power items) of PyTorch's cascade sum over g items. */
void sqi_cascade_params(size_t g, size_t *block, unsigned *power);

/* Clamp a code to [t_min, t_max] and convert. */
static inline int8_t sqi_clamp_code(const struct sqi_ctx *ctx, float code)
{
    if (code < ctx->t_min)
        code = ctx->t_min;
    if (code > ctx->t_max)
        code = ctx->t_max;
    return (int8_t)code;
}

/*
 * Report of n channels (see struct sq_report), from the inputs and the
 * outputs; tmp holds 2 * len doubles. A report implementation.
 */
typedef void (*sqi_report_fn)(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                              const float *scale, const float *zp, double *tmp,
                              struct sq_report *report);
void sqi_report_ref(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                    const float *scale, const float *zp, double *tmp, struct sq_report *report);
void sqi_report_channels(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                         const float *scale, const float *zp, double *tmp,
                         struct sq_report *report);
#ifdef SQ_ARCH_X86_64
void sqi_report_avx2(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                     const float *scale, const float *zp, double *tmp, struct sq_report *rep);
void sqi_report_avx512(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                       const float *scale, const float *zp, double *tmp, struct sq_report *report);
#endif
/* Sum of 8 lanes in lane order: how every report folds its per-lane sums of squares. */
double sqi_fold8(const double *lanes);
/* The kernel and channel residuals of one channel from its per-element q - x (and RTN's). */
void sqi_report_residuals(const struct sqi_ctx *ctx, const double *res, const double *rtn_res,
                          struct sq_report *report);

/* ---------------------------------------------------------------------------
 * Pieces shared by the optimized implementations (generic and SIMD). They all
 * follow one data flow per channel:
 *   1. scale and zero point from min/max;
 *   2. E[i] = e (rounding error), q[i] = clamp(r) (round to nearest);
 *   3. kernel stage: patch q and E where it flips, collect one offer per kernel;
 *   4. channel stage: S = rowsum(E), choose flips, patch q.
 * Elements are recomputed from w where a single one is needed (sqi_elem):
 * the same f32 operations give the same bits.
 */

/* One element's values (SQUANT-SPEC sections 3 and 4). */
struct sqi_elem {
    float x, r, e;
    bool up;   /* up candidate: e < 0 and x < t_max */
    bool down; /* down candidate: e > 0 and x > t_min */
};

static inline struct sqi_elem sqi_elem(const struct sqi_ctx *ctx, float scale, float zp, float w)
{
    struct sqi_elem v;
    v.x = sqi_code_x(scale, zp, w);
    v.r = sqi_rne(v.x);
    v.e = v.r - v.x;
    /* & rather than &&: no branch on the data (these are mispredicted half the time) */
    v.up = (v.e < 0.0f) & (v.x < ctx->t_max);
    v.down = (v.e > 0.0f) & (v.x > ctx->t_min);
    return v;
}

/* The channel being quantized. */
struct sqi_chan {
    float scale, zp;
    const float *w; /* len weights */
    int8_t *q;      /* len codes: clamp(r), then patched */
    float *err;     /* len errors: e, then patched by the kernel stage */
};

/*
 * The kernels' offers to the channel stage (section 6, step 6), one list per
 * direction, in ascending positions: pos[i] in the channel, val[i] its priority.
 */
struct sqi_offers {
    uint32_t *pos;
    float *val;
    size_t n;
};

/*
 * Rank key of a candidate: (priority bits << 32 | ~position). Priorities are
 * non-negative floats, whose bit patterns order like their values; for equal
 * priorities the lower position gets the larger key. Larger key = earlier in
 * the reference's (stable) order.
 */
static inline uint64_t sqi_rank_key(float pri, size_t pos)
{
    uint32_t bits;
    memcpy(&bits, &pri, sizeof bits);
    return (uint64_t)bits << 32 | (uint32_t) ~(uint32_t)pos;
}

static inline size_t sqi_key_pos(uint64_t key)
{
    return (uint32_t) ~(uint32_t)key;
}

/* Rearrange distinct keys[0..n) so that keys[0..k) are the k largest. O(n) expected, O(n log n)
 * worst. */
void sqi_top_k(uint64_t *keys, size_t n, size_t k);

/* The row decision (section 6, steps 1-4) from the row sum s of a row of len elements. */
struct sqi_row {
    bool up;
    bool over;
    size_t k;
};

static inline struct sqi_row sqi_row_plan(float s, size_t len)
{
    float mag = fabsf(s), kf = sqi_rne(mag);
    struct sqi_row p = {s < 0.0f, kf >= mag, (size_t)kf};
    if (p.k > len)
        p.k = len;
    return p;
}

/*
 * Assign element j its code after a flip in direction up/down (its D_code,
 * clamped) and count a change. Returns nothing: the code is patched in place.
 */
static inline void sqi_flip(const struct sqi_ctx *ctx, const struct sqi_chan *ch, size_t j, bool up,
                            uint64_t *flips)
{
    struct sqi_elem v = sqi_elem(ctx, ch->scale, ch->zp, ch->w[j]);
    float code = v.r;
    if (up && v.up)
        code = v.r + 1.0f;
    else if (!up && v.down)
        code = v.r - 1.0f;
    int8_t c = sqi_clamp_code(ctx, code);
    *flips += c != ch->q[j];
    ch->q[j] = c;
}

/*
 * Channel stage after a kernel stage, with row sum s: the candidates are the
 * kernels' offers. keys has room for max(up->n, down->n).
 */
void sqi_channel_offers(const struct sqi_ctx *ctx, const struct sqi_chan *ch, float s,
                        const struct sqi_offers *up, const struct sqi_offers *down, uint64_t *keys,
                        uint64_t *flips);

/*
 * The surplus flips of a channel stage after a kernel stage: they go to the
 * lowest positions whose priority in direction `up` is 0, that is every
 * position but the positive offers of list o (ascending positions).
 */
void sqi_channel_surplus(const struct sqi_ctx *ctx, const struct sqi_chan *ch,
                         const struct sqi_offers *o, size_t surplus, bool up, uint64_t *flips);

/*
 * Channel stage without a kernel stage: flip the k best of the m candidate
 * keys (which must include the k best candidates of the channel in direction
 * up/down; surplus flips would hit non-candidates, which keep their code).
 */
void sqi_flip_best(const struct sqi_ctx *ctx, const struct sqi_chan *ch, uint64_t *keys, size_t m,
                   size_t k, bool up, uint64_t *flips);

/* One dequantized weight in the public convention (see sq_dequantize). */
static inline float sqi_dequant(int8_t q, double step, double zero_point)
{
    return (float)(((double)q - zero_point) * step);
}

/* The public convention: step = 1/scale, zero_point = -zp. */
static inline float sqi_public_step(float scale)
{
    return 1.0f / scale;
}
static inline float sqi_public_zero_point(float zp)
{
    return 0.0f - zp;
}

#endif

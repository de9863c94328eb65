/*
 * The SIMD implementation, written once against a few vector wrappers and
 * included by squant_avx512.c (16 lanes) and squant_avx2.c (8 lanes), which
 * define them. It follows the data flow of core.h; every vector operation is
 * the same IEEE f32 operation as the scalar reference, so codes are
 * identical, and the reduction orders are the reference's.
 *
 * Wrappers the includer defines (vf: float vector, vi: int32 vector,
 * vm: lane mask, W lanes):
 *   loads/stores  vf_loadu, vf_load_n (n < W lanes, rest 0), vf_storeu,
 *                 vf_store_n, vi_load, vf_gather(base, idx, n),
 *                 store_codes(q, v, n) (int8 codes from clamped floats)
 *   arithmetic    vf_set1, vf_zero, vf_add, vf_sub, vf_mul, vf_div, vf_min, vf_max,
 *                 vf_abs, vf_neg, vf_xor, vf_round (to nearest even),
 *                 vf_blend(m, a, b) (m ? b : a); vi_set1, vi_lanes (0..W-1),
 *                 vi_add, vi_mul_small, vi_inc(acc, m) (+1 where m),
 *                 vi_blend, vi_from_vf, vi_hsum
 *   masks         vm_lt, vm_gt, vm_ge, vm_eq, vm_ilt, vm_ieq, vm_and, vm_or,
 *                 vm_andnot(a, b) (a & ~b), vm_xor, vm_first(n) (lanes < n),
 *                 vm_bits; vm_gt_m, vm_lt_m, vm_ilt_m, vm_ieq_m (compares
 *                 and-ed with a mask)
 *   lists         vf_compress(dst, m, v), vi_compress(dst, m, v) (store the
 *                 lanes of m contiguously, writing a whole vector: dst needs
 *                 W slack; return the count); make_keys(keys, pos, val)
 *                 (W rank keys, in any order); keys_max_below(keys, n, bound)
 *                 (n a multiple of 8)
 *   short rows    vf_div, store_codes, and optionally load_rows and
 *                 store_rows_codes (see rows_body.h)
 *   optional      load_kernels(base, K, out) with SIMD_HAVE_LOAD_KERNELS
 *                 (transpose W whole kernels of SIMD_LOAD_KERNELS_MIN <= K
 *                 <= 16 with few or no gathers)
 *   names         SIMD_NAME (the entry point), SIMD_ROWSUM_NAME (the row
 *                 sum, exported for tests)
 *
 * The kernel stage puts W kernels side by side, one per lane, and ranks each
 * kernel's priorities with W-wide compares: no sort, no branch per element.
 */
#ifndef SQ_SIMD_BODY
#define SQ_SIMD_BODY

#include <immintrin.h>

#include "core.h"

static inline unsigned lanes_upto(size_t n)
{
    return n >= 32 ? 0xffffffffu : (1u << n) - 1u;
}

/*
 * The least and the largest lane, by halving (a tree, not a chain of W
 * dependent steps: a short row pays its latency). Exact for finite values in
 * any order; only the sign of a zero may differ, which changes neither the
 * scale nor the zero point.
 */
static inline float simd_hmin(vf v)
{
#if W == 16
    __m256 a = _mm256_min_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
#else
    __m256 a = v;
#endif
    __m128 b = _mm_min_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_min_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_min_ss(b, _mm_shuffle_ps(b, b, 1)));
}

static inline float simd_hmax(vf v)
{
#if W == 16
    __m256 a = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
#else
    __m256 a = v;
#endif
    __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_max_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_max_ss(b, _mm_shuffle_ps(b, b, 1)));
}

/*
 * min/max of a channel; false if a weight is NaN or infinite. Four
 * independent accumulators of each kind, so that the loop runs at the
 * throughput of min, max and add rather than their latency.
 */
static inline bool simd_minmax(const float *w, size_t len, float *mn, float *mx)
{
    vf first = vf_set1(w[0]), lo[4], hi[4], bad[4];
    for (int a = 0; a < 4; a++) {
        lo[a] = hi[a] = first;
        bad[a] = vf_zero();
    }
    size_t i = 0;
    for (; i + 4 * W <= len; i += 4 * W) {
        _Pragma("GCC unroll 4") for (int a = 0; a < 4; a++)
        {
            vf v = vf_loadu(w + i + a * W);
            lo[a] = vf_min(lo[a], v);
            hi[a] = vf_max(hi[a], v);
            bad[a] = vf_add(bad[a], vf_sub(v, v)); /* NaN in a lane once it saw NaN or Inf */
        }
    }
    for (; i + W <= len; i += W) {
        vf v = vf_loadu(w + i);
        lo[0] = vf_min(lo[0], v);
        hi[0] = vf_max(hi[0], v);
        bad[0] = vf_add(bad[0], vf_sub(v, v));
    }
    if (i < len) {
        vf v = vf_blend(vm_first(len - i), first, vf_load_n(w + i, len - i));
        lo[0] = vf_min(lo[0], v);
        hi[0] = vf_max(hi[0], v);
        bad[0] = vf_add(bad[0], vf_sub(v, v));
    }
    for (int a = 1; a < 4; a++) {
        lo[0] = vf_min(lo[0], lo[a]);
        hi[0] = vf_max(hi[0], hi[a]);
        bad[0] = vf_add(bad[0], bad[a]);
    }
    if ((vm_bits(vm_eq(bad[0], bad[0])) & lanes_upto(W)) != lanes_upto(W))
        return false;
    *mn = simd_hmin(lo[0]);
    *mx = simd_hmax(hi[0]);
    return true;
}

/*
 * The channel's constants as vectors, made once: inline helpers take them
 * as values, because stores to the float lists could alias the struct fields
 * they come from, which would make the compiler reload them per chunk.
 */
struct simd_consts {
    vf scale, zp, lo, hi;
};

static inline struct simd_consts simd_consts(const struct sqi_ctx *ctx, const struct sqi_chan *ch)
{
    struct simd_consts k = {vf_set1(ch->scale), vf_set1(ch->zp), vf_set1(ctx->t_min),
                            vf_set1(ctx->t_max)};
    return k;
}

/* One chunk of pass 1: q = clamp(r), err = e if err is not NULL; returns e, and x in *xo. */
static inline __attribute__((always_inline)) vf
pass1_chunk(struct simd_consts k, const float *w, int8_t *q, float *err, size_t i, size_t n, vf *xo)
{
    vf wv = n == W ? vf_loadu(w + i) : vf_load_n(w + i, n);
    vf x = vf_sub(vf_mul(k.scale, wv), k.zp);
    vf r = vf_round(x);
    vf e = vf_sub(r, x);
    vf c = vf_min(vf_max(r, k.lo), k.hi);
    if (n == W) {
        if (err)
            vf_storeu(err + i, e);
        store_codes(q + i, c, W);
    } else {
        if (err)
            vf_store_n(err + i, e, n);
        store_codes(q + i, c, n);
    }
    *xo = x;
    return e;
}

/* Pass 1 before a kernel stage over elements [i, len): err[i] = e, q[i] = clamp(r). */
static inline void simd_pass1(const struct sqi_ctx *ctx, const struct sqi_chan *ch, size_t i,
                              size_t len)
{
    struct simd_consts k = simd_consts(ctx, ch);
    const float *w = ch->w;
    int8_t *q = ch->q;
    float *err = ch->err;
    vf x;
    for (; i + W <= len; i += W)
        pass1_chunk(k, w, q, err, i, W, &x);
    if (i < len)
        pass1_chunk(k, w, q, err, i, len - i, &x);
}

/* Round to nearest only (mode rtn): pass 1 without the errors. */
static inline void simd_rtn(const struct sqi_ctx *ctx, const struct sqi_chan *ch, size_t len)
{
    struct simd_consts k = simd_consts(ctx, ch);
    vf x;
    for (size_t i = 0; i < len; i += W)
        pass1_chunk(k, ch->w, ch->q, NULL, i, len - i < W ? len - i : W, &x);
}

/*
 * PyTorch's row sum (sqi_rowsum's order exactly), fed one group of 32
 * elements (four 8-lane vectors) at a time: four level-0 accumulators in
 * registers, the cascade's upper levels touched once per block of groups.
 * Only complete blocks carry, as in the reference, so feeding groups one by
 * one is the same as its block loop.
 */
struct rowsum_acc {
    __m256 a0, a1, a2, a3; /* fields, not an array: kept in registers */
    __m256 up[3][4];
    size_t groups, block, mask1, mask2;
};

static inline __attribute__((always_inline)) void rowsum_init(struct rowsum_acc *r, size_t n)
{
    unsigned p;
    sqi_cascade_params(n / 32, &r->block, &p);
    r->mask1 = p < 64 ? (r->block - 1) << p : 0;
    r->mask2 = 2 * p < 64 ? (r->block - 1) << (2 * p) : 0;
    r->groups = 0;
    r->a0 = r->a1 = r->a2 = r->a3 = _mm256_setzero_ps();
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < 4; k++)
            r->up[l][k] = _mm256_setzero_ps();
}

/* Level carries after a complete block: 1 always, then 2 and 3 while i is a multiple of their span.
 */
static void rowsum_carry(struct rowsum_acc *r, size_t i)
{
    __m256 z = _mm256_setzero_ps(), a[4] = {r->a0, r->a1, r->a2, r->a3};
    for (int k = 0; k < 4; k++)
        r->up[0][k] = _mm256_add_ps(r->up[0][k], a[k]);
    r->a0 = r->a1 = r->a2 = r->a3 = z;
    if ((i & r->mask1) != 0)
        return;
    for (int k = 0; k < 4; k++) {
        r->up[1][k] = _mm256_add_ps(r->up[1][k], r->up[0][k]);
        r->up[0][k] = z;
    }
    if ((i & r->mask2) != 0)
        return;
    for (int k = 0; k < 4; k++) {
        r->up[2][k] = _mm256_add_ps(r->up[2][k], r->up[1][k]);
        r->up[1][k] = z;
    }
}

static inline __attribute__((always_inline)) void rowsum_group(struct rowsum_acc *r, __m256 v0,
                                                               __m256 v1, __m256 v2, __m256 v3)
{
    r->a0 = _mm256_add_ps(r->a0, v0);
    r->a1 = _mm256_add_ps(r->a1, v1);
    r->a2 = _mm256_add_ps(r->a2, v2);
    r->a3 = _mm256_add_ps(r->a3, v3);
    if (++r->groups % r->block == 0)
        rowsum_carry(r, r->groups);
}

/* The sum, given the elements after the last whole group (fewer than 32). Needs n >= 8. */
static inline float rowsum_finish(struct rowsum_acc *r, const float *rest, size_t n_rest)
{
    __m256 a[4] = {r->a0, r->a1, r->a2, r->a3};
    for (int k = 0; k < 4; k++)
        a[k] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a[k], r->up[0][k]), r->up[1][k]),
                             r->up[2][k]);
    size_t nv = n_rest / 8;
    for (size_t j = 0; j < nv; j++)
        a[0] = _mm256_add_ps(a[0], _mm256_loadu_ps(rest + 8 * j));
    a[0] = _mm256_add_ps(a[0], a[1]);
    a[0] = _mm256_add_ps(a[0], a[2]);
    a[0] = _mm256_add_ps(a[0], a[3]);
    float lanes[8], s = 0.0f;
    _mm256_storeu_ps(lanes, a[0]);
    for (size_t j = 8 * nv; j < n_rest; j++)
        s += rest[j];
    for (int l = 0; l < 8; l++)
        s += lanes[l];
    return s;
}

/* The row sum over a stored row (the channel's errors after a kernel stage). */
static inline float simd_rowsum(const float *v, size_t n)
{
    if (n < 8)
        return sqi_rowsum(v, n);
    struct rowsum_acc r;
    rowsum_init(&r, n);
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        rowsum_group(&r, _mm256_loadu_ps(v + i), _mm256_loadu_ps(v + i + 8),
                     _mm256_loadu_ps(v + i + 16), _mm256_loadu_ps(v + i + 24));
    return rowsum_finish(&r, v + i, n - i);
}

#include "kernel_body.h"

/*
 * Flip the `take` largest of keys[0..m) (distinct but for zeros, which are
 * never taken). Few flips are found by
 * repeated passes for the largest key below the previous one: vector max,
 * no branch on the data. keys needs room for m rounded up to 8.
 */
#define SIMD_SELECT_MAX 32

static void simd_flip_top(const struct sqi_ctx *ctx, const struct sqi_chan *ch, uint64_t *keys,
                          size_t m, size_t take, bool up, uint64_t *flips)
{
    if (take > SIMD_SELECT_MAX || take >= m) {
        sqi_flip_best(ctx, ch, keys, m, take, up, flips);
        return;
    }
    size_t padded = (m + 7) & ~(size_t)7;
    for (size_t i = m; i < padded; i++)
        keys[i] = 0;
    uint64_t bound = UINT64_MAX;
    for (size_t t = 0; t < take; t++) {
        bound = keys_max_below(keys, padded, bound);
        sqi_flip(ctx, ch, sqi_key_pos(bound), up, flips);
    }
}

/* Channel stage after the kernel stage: the offers of the channel's direction. */
static void simd_channel_offers(const struct sqi_ctx *ctx, const struct sqi_chan *ch,
                                const struct sqi_offers *up, const struct sqi_offers *down,
                                uint64_t *keys, uint64_t *flips)
{
    struct sqi_row p = sqi_row_plan(simd_rowsum(ch->err, ctx->len), ctx->len);
    const struct sqi_offers *o = p.up ? up : down;
    if (p.k == 0)
        return;
    /* Keys of every offer, W at a time (make_keys may permute them within
     * the W). Zero priorities rank last and are never taken; lanes past the
     * list get key 0. */
    vf zero = vf_zero();
    vi npos = vi_set1(0), none = vi_set1(-1);
    size_t m = 0;
    for (; m < o->n; m += W) {
        vm valid = vm_first(o->n - m);
        vf val = vf_blend(valid, zero, vf_loadu(o->val + m));
        make_keys(keys + m, vi_blend(valid, none, vi_load((const int32_t *)o->pos + m)), val);
        npos = vi_inc(npos, vm_gt(val, zero));
    }
    size_t positive = (size_t)vi_hsum(npos), take = p.k < positive ? p.k : positive;
    simd_flip_top(ctx, ch, keys, m, take, p.up, flips);
    sqi_channel_surplus(ctx, ch, o, p.k - take, p.up, flips);
}

/* Where the channel-only pass collects its candidates (position, error); the count is a local. */
struct simd_cands {
    int32_t *pos;
    float *val;
};

/* The low and high 8 lanes of a vector (for W = 8: the vector, and nothing). */
static inline __attribute__((always_inline)) __m256 lo8(vf v)
{
#if W == 16
    return _mm512_castps512_ps256(v);
#else
    return v;
#endif
}
#if W == 16
static inline __attribute__((always_inline)) __m256 hi8(vf v)
{
    return _mm512_extractf32x8_ps(v, 1);
}
#endif

/*
 * Pass 1 of the channel-only pass over the 32 elements at i: codes, and the
 * errors stored to err (returned in e, 32 / W vectors).
 */
static inline __attribute__((always_inline)) void only_group(struct simd_consts k, const float *w,
                                                             int8_t *q, float *err, size_t i, vf *e)
{
    vf c[32 / W];
    _Pragma("GCC unroll 4") for (int a = 0; a < 32 / W; a++)
    {
        vf x = vf_sub(vf_mul(k.scale, vf_loadu(w + i + a * W)), k.zp);
        vf r = vf_round(x);
        e[a] = vf_sub(r, x);
        vf_storeu(err + i + a * W, e[a]);
        c[a] = vf_min(vf_max(r, k.lo), k.hi);
    }
#ifdef SIMD_HAVE_STORE_CODES32
    store_codes32(q + i, c);
#else
    _Pragma("GCC unroll 4") for (int a = 0; a < 32 / W; a++) store_codes(q + i + a * W, c[a], W);
#endif
}

/*
 * Positions i + lane of the lanes of m, stored contiguously (W slack), with
 * base = i in every lane; returns the count.
 */
#ifndef SIMD_HAVE_POS_COMPRESS
static inline __attribute__((always_inline)) size_t pos_compress(int32_t *dst, vm m, vi base)
{
    return (size_t)vi_compress(dst, m, vi_add(vi_lanes(), base));
}
#endif

/*
 * The positions of the elements whose priority in direction up/down is above
 * tau (tau >= 0: errors below -tau for up, above tau for down), in ascending
 * order, from the stored errors.
 */
static size_t only_collect(const float *err, size_t len, bool up, float tau, int32_t *pos)
{
    size_t m = 0, i = 0;
    vi base = vi_set1(0), step = vi_set1(W);
    /* the lanes past len load 0, which is never below -tau nor above tau */
    if (up) {
        vf t = vf_set1(-tau);
        for (; i + W <= len; i += W, base = vi_add(base, step))
            m += pos_compress(pos + m, vm_lt(vf_loadu(err + i), t), base);
        if (i < len)
            m += pos_compress(pos + m, vm_lt(vf_load_n(err + i, len - i), t), base);
    } else {
        vf t = vf_set1(tau);
        for (; i + W <= len; i += W, base = vi_add(base, step))
            m += pos_compress(pos + m, vm_gt(vf_loadu(err + i), t), base);
        if (i < len)
            m += pos_compress(pos + m, vm_gt(vf_load_n(err + i, len - i), t), base);
    }
    return m;
}

/*
 * Rank keys of the listed positions that are candidates in direction up/down.
 * Their error has the direction's sign, so the range test (x < t_max for up,
 * x > t_min for down) is the same as clamp(r) != t_max (t_min): the code
 * already stored. No branch on the data.
 */
static size_t only_keys(const struct sqi_ctx *ctx, const struct sqi_chan *ch, const int32_t *pos,
                        size_t m, bool up, uint64_t *keys)
{
    int8_t end = (int8_t)(up ? ctx->t_max : ctx->t_min);
    float sign = up ? -1.0f : 1.0f;
    size_t n = 0;
    for (size_t t = 0; t < m; t++) {
        size_t j = (size_t)pos[t];
        keys[n] = sqi_rank_key(sign * ch->err[j], j);
        n += ch->q[j] != end;
    }
    return n;
}

/*
 * Channel stage without a kernel stage, fused with pass 1 and the row sum:
 * one pass over the weights writes round-to-nearest codes, stores the errors
 * (a channel is at most a few thousand floats: they stay in L1) and adds them
 * in PyTorch's order. The row sum gives the direction and the count k; a
 * second pass over the stored errors lists only the direction's elements with
 * priority above tau, where tau leaves about k + 3 sqrt(k) + 4 of them if
 * errors are close to uniform on (0, 0.5). The k best of those are flipped.
 * If fewer than k candidates passed tau (rare), every candidate of the
 * direction is listed again.
 */
static void simd_channel_only(const struct sqi_ctx *ctx, const struct sqi_chan *ch, uint64_t *keys,
                              struct simd_cands *c, uint64_t *flips)
{
    size_t len = ctx->len;
    struct simd_consts k = simd_consts(ctx, ch);
    const float *w = ch->w;
    int8_t *q = ch->q;
    float *err = ch->err;
    struct rowsum_acc rs;
    rowsum_init(&rs, len);
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        vf e[32 / W];
        simd_prefetch_next(ch, len, i, 32);
        only_group(k, w, q, err, i, e);
#if W == 16
        rowsum_group(&rs, lo8(e[0]), hi8(e[0]), lo8(e[1]), hi8(e[1]));
#else
        rowsum_group(&rs, e[0], e[1], e[2], e[3]);
#endif
    }
    vf x;
    for (size_t j = i; j < len; j += W)
        pass1_chunk(k, w, q, err, j, len - j < W ? len - j : W, &x);
    float s = len < 8 ? sqi_rowsum(err, len) : rowsum_finish(&rs, err + i, len - i);

    struct sqi_row p = sqi_row_plan(s, len);
    if (p.k == 0)
        return;
    float half = 0.5f * (float)len, target = (float)p.k + 3.0f * sqrtf((float)p.k) + 4.0f;
    float tau = target < half ? 0.5f * (1.0f - target / half) : 0.0f;
    size_t m = only_collect(err, len, p.up, tau, c->pos);
    size_t n = only_keys(ctx, ch, c->pos, m, p.up, keys);
    if (n < p.k && tau > 0.0f) {
        /* Too few above tau (rare): every candidate of the direction. */
        m = only_collect(err, len, p.up, 0.0f, c->pos);
        n = only_keys(ctx, ch, c->pos, m, p.up, keys);
    }
    /* Surplus flips would hit non-candidates, whose code stays: take at most the candidates. */
    simd_flip_top(ctx, ch, keys, n, p.k < n ? p.k : n, p.up, flips);
}

#include "rows_body.h"

/* The channel row sum on its own, for tests. */
float SIMD_ROWSUM_NAME(const float *v, size_t n)
{
    return simd_rowsum(v, n);
}

/* The per-row paths' lists in the scratch. */
struct simd_lists {
    uint64_t *keys;
    float *err;
    struct simd_patches pt;
    struct simd_cands cands;
    struct sqi_offers up, down;
};

/* Row c on its own (any mode); false if a weight is NaN or infinite. */
static bool simd_row(const struct sqi_ctx *ctx, size_t c, const float *w, int8_t *q, float *scale,
                     float *zp, struct simd_lists *ls, struct sqi_flips *flips)
{
    size_t len = ctx->len;
    struct sqi_chan ch = {0.0f, 0.0f, w + c * len, q + c * len, ls->err};
    float mn, mx;
    if (!simd_minmax(ch.w, len, &mn, &mx))
        return false;
    sqi_channel_params(ctx, mn, mx, &ch.scale, &ch.zp);
    scale[c] = ch.scale;
    zp[c] = ch.zp;
    if (!ctx->kernel_stage && !ctx->channel_stage) {
        simd_rtn(ctx, &ch, len);
    } else if (!ctx->kernel_stage) {
        simd_channel_only(ctx, &ch, ls->keys, &ls->cands, &flips->channel);
    } else {
        simd_kernel_stage(ctx, &ch, &ls->pt, &ls->up, &ls->down, &flips->kernel);
        if (ctx->channel_stage)
            simd_channel_offers(ctx, &ch, &ls->up, &ls->down, ls->keys, &flips->channel);
    }
    return true;
}

size_t SIMD_NAME(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q, float *scale,
                 float *zp, void *scratch, struct sqi_flips *flips)
{
    if (ctx->kernel_stage && !simd_kernel_size_supported(ctx->ksize))
        return sqi_quantize_generic(ctx, n, w, q, scale, zp, scratch, flips);
    /* Scratch: 8-byte keys first, then 4-byte arrays; lists get slack for
     * the whole-vector stores of vf_compress/vi_compress. The channel-only
     * pass uses the patch arrays for its candidate lists. */
    size_t len = ctx->len, lw = len + 4 * W, kw = ctx->kernels + W;
    struct simd_lists ls;
    ls.keys = scratch;
    ls.err = (float *)(ls.keys + lw);
    float *f = ls.err + lw; /* four more arrays of lw */
    ls.pt = (struct simd_patches){(uint32_t *)f, f + lw, f + 2 * lw, 0};
    ls.cands = (struct simd_cands){(int32_t *)f, f + lw};
    ls.up = (struct sqi_offers){(uint32_t *)(f + 4 * lw), NULL, 0};
    ls.down = (struct sqi_offers){ls.up.pos + kw, NULL, 0};
    ls.up.val = (float *)(ls.down.pos + kw);
    ls.down.val = ls.up.val + kw;
    size_t c = 0;
    if (!ctx->kernel_stage && len <= SIMD_ROWS_MAX) {
        vf wt[SIMD_ROWS_MAX], et[SIMD_ROWS_MAX];
        for (; c + W <= n; c += W) {
            const float *next = c + 3 * W <= n ? w + (c + 2 * W) * len : NULL;
            int redo = simd_rows_block(ctx, len, w + c * len, next, q + c * len, scale + c, zp + c,
                                       wt, et, &flips->channel);
            if (redo < 0)
                break; /* the per-row path below names the weight */
            for (unsigned m = (unsigned)redo; m; m &= m - 1)
                simd_row(ctx, c + (size_t)__builtin_ctz(m), w, q, scale, zp, &ls, flips);
        }
    }
    for (; c < n; c++)
        if (!simd_row(ctx, c, w, q, scale, zp, &ls, flips))
            return c;
    return n;
}

#endif

/*
 * Portable optimized implementation: the data flow of core.h in plain C,
 * with selection (sqi_top_k) in place of the reference's sorts. The SIMD
 * implementations follow the same flow and share the channel stage.
 */
#include "core.h"
#include "vec.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

struct gen_arrays {
    uint64_t *keys; /* len */
    struct sqi_offers up, down;
    float *err;  /* len */
    float *cand; /* len: e for a candidate in e's direction, else 0 */
};

static void gen_layout(void *scratch, const struct sqi_ctx *ctx, struct gen_arrays *a)
{
    a->keys = scratch; /* 8-byte items first, for alignment */
    a->up.pos = (uint32_t *)(a->keys + ctx->len);
    a->down.pos = a->up.pos + ctx->kernels;
    a->up.val = (float *)(a->down.pos + ctx->kernels);
    a->down.val = a->up.val + ctx->kernels;
    a->err = a->down.val + ctx->kernels;
    a->cand = a->err + ctx->len;
}

/*
 * min/max of a channel; false if a weight is NaN or infinite (v - v is NaN
 * then). Four independent vector accumulators of each kind, so that the
 * loop runs at the throughput of min, max and add, not their latency.
 */
static bool gen_minmax(const float *w, size_t len, float *mn, float *mx)
{
    enum { A = 4, STEP = A * SQI_FW };
    sqi_vfn lo[A], hi[A], bad[A];
    for (int a = 0; a < A; a++) {
        lo[a] = (sqi_vfn){0} + w[0];
        hi[a] = lo[a];
        bad[a] = (sqi_vfn){0};
    }
    size_t i = 0;
    for (; i + STEP <= len; i += STEP)
        for (int a = 0; a < A; a++) {
            sqi_vfn v;
            memcpy(&v, w + i + a * SQI_FW, sizeof v);
            lo[a] = SQI_SELFN(v < lo[a], v, lo[a]);
            hi[a] = SQI_SELFN(v > hi[a], v, hi[a]);
            bad[a] += v - v;
        }
    float a_ = lo[0][0], b_ = hi[0][0], bad_s = 0.0f;
    for (int a = 0; a < A; a++)
        for (int l = 0; l < SQI_FW; l++) {
            a_ = lo[a][l] < a_ ? lo[a][l] : a_;
            b_ = hi[a][l] > b_ ? hi[a][l] : b_;
            bad_s += bad[a][l];
        }
    for (; i < len; i++) {
        bad_s += w[i] - w[i];
        a_ = w[i] < a_ ? w[i] : a_;
        b_ = w[i] > b_ ? w[i] : b_;
    }
    *mn = a_;
    *mx = b_;
    return bad_s == 0.0f;
}

/* Priority of a candidate value in direction up/down (0 for the other direction). */
static inline float dir_pri(float cand, bool up)
{
    float v = up ? -cand : cand;
    return v > 0.0f ? v : 0.0f; /* a max, not a branch */
}

/* Whether any lane of v is nonzero. */
static inline bool any_lane(sqi_vin v)
{
    uint64_t u[SQI_FW / 2], o = 0;
    memcpy(u, &v, sizeof u);
    for (int l = 0; l < SQI_FW / 2; l++)
        o |= u[l];
    return o != 0;
}

/*
 * The rank keys of the candidates in direction up with priority >= tau,
 * in ascending positions. Few pass: a vector of lanes is tested at once and
 * only one with a passing lane is looked at element by element.
 */
static size_t collect(const float *cand, size_t len, bool up, float tau, uint64_t *keys)
{
    float sign = up ? -1.0f : 1.0f; /* -1 * c is -c exactly: dir_pri's value where it is > 0 */
    size_t m = 0, i = 0;
    for (; i + SQI_FW <= len; i += SQI_FW) {
        sqi_vfn pri;
        memcpy(&pri, cand + i, sizeof pri);
        pri *= sign;
        sqi_vin keep = (pri >= tau) & (pri > 0.0f);
        if (!any_lane(keep))
            continue;
        for (size_t l = 0; l < SQI_FW; l++)
            if (keep[l])
                keys[m++] = sqi_rank_key(pri[l], i + l);
    }
    for (; i < len; i++) {
        float pri = dir_pri(cand[i], up);
        if (pri >= tau && pri > 0.0f)
            keys[m++] = sqi_rank_key(pri, i);
    }
    return m;
}

/* Flip element j of a kernel (surplus flips of non-candidates only set err to 0). */
static void kernel_flip(const struct sqi_ctx *ctx, const struct sqi_chan *ch,
                        const struct gen_arrays *a, size_t j, bool up, uint64_t *flips)
{
    if (dir_pri(a->cand[j], up) > 0.0f) {
        sqi_flip(ctx, ch, j, up, flips);
        ch->err[j] = up ? ch->err[j] + 1.0f : ch->err[j] - 1.0f;
    } else {
        ch->err[j] = 0.0f;
    }
}

/*
 * The kernel at b, ks <= 16 elements: each element's rank in the stable
 * descending order counted directly (ks^2 compares, no branch on the data
 * but the flips), as the SIMD code does. Returns the offered element's index.
 */
static size_t kernel_small(const struct sqi_ctx *ctx, const struct sqi_chan *ch,
                           const struct gen_arrays *a, size_t b, size_t ks, struct sqi_row p,
                           uint64_t *flips)
{
    float pri[16];
    size_t rank[16], offer = SIZE_MAX;
    size_t target = p.over ? (p.k ? p.k - 1 : ks - 1) : p.k;
    for (size_t i = 0; i < ks; i++)
        pri[i] = dir_pri(a->cand[b + i], p.up);
    for (size_t i = 0; i < ks; i++) {
        size_t r = 0;
        for (size_t u = 0; u < i; u++)
            r += pri[u] >= pri[i];
        for (size_t u = i + 1; u < ks; u++)
            r += pri[u] > pri[i];
        rank[i] = r;
    }
    for (size_t i = 0; i < ks; i++) {
        if (rank[i] < p.k)
            kernel_flip(ctx, ch, a, b + i, p.up, flips);
        if (rank[i] == target)
            offer = b + i;
    }
    return offer;
}

/* The kernel at b, any size: the k best by selection on rank keys. */
static size_t kernel_large(const struct sqi_ctx *ctx, const struct sqi_chan *ch,
                           const struct gen_arrays *a, size_t b, size_t ks, struct sqi_row p,
                           uint64_t *flips)
{
    uint64_t *keys = a->keys;
    for (size_t i = 0; i < ks; i++)
        keys[i] = sqi_rank_key(dir_pri(a->cand[b + i], p.up), i);
    sqi_top_k(keys, ks, p.k);
    for (size_t t = 0; t < p.k; t++)
        kernel_flip(ctx, ch, a, b + sqi_key_pos(keys[t]), p.up, flips);
    /* The offer: rank k-1 if over (rank ks-1 when k = 0), else rank k. */
    size_t lo = p.over ? 0 : p.k, hi = p.over ? (p.k ? p.k : ks) : ks;
    if (lo >= hi)
        return SIZE_MAX;
    uint64_t pick = keys[lo];
    for (size_t t = lo + 1; t < hi; t++)
        if (p.over ? keys[t] < pick : keys[t] > pick)
            pick = keys[t];
    return b + sqi_key_pos(pick);
}

static void kernel_stage(const struct sqi_ctx *ctx, const struct sqi_chan *ch, struct gen_arrays *a,
                         uint64_t *flips)
{
    size_t ks = ctx->ksize;
    a->up.n = a->down.n = 0;
    for (size_t b = 0; b < ctx->len; b += ks) {
        struct sqi_row p = sqi_row_plan(sqi_rowsum(ch->err + b, ks), ks);
        size_t j = ks <= 16 ? kernel_small(ctx, ch, a, b, ks, p, flips)
                            : kernel_large(ctx, ch, a, b, ks, p, flips);
        if (j == SIZE_MAX)
            continue; /* k = ks and not over: nothing left to offer */
        struct sqi_offers *o = p.up != p.over ? &a->up : &a->down;
        o->pos[o->n] = (uint32_t)j;
        o->val[o->n++] = fabsf(ch->err[j]);
    }
}

/* ---------------------------------------------------------------------------
 * The kernel stage of kernel_body.h on GNU C vectors of 4 lanes, one SSE2 or
 * NEON register (the baseline of x86-64 and of aarch64): the same operations
 * as the SIMD implementations', in portable C without intrinsics. Lane masks
 * are int32 vectors (all ones or zero), as GNU C vector compares give them.
 * The short rows of rows_body.h run on the same wrappers.
 */
#define W 4
typedef float vf __attribute__((vector_size(16)));
typedef int32_t vi __attribute__((vector_size(16)));
typedef vi vm;

static inline vf vf_set1(float x)
{
    return (vf){x, x, x, x}; /* not (vf){0} + x: +0 + -0 is +0 */
}
static inline vf vf_zero(void)
{
    return (vf){0};
}
static inline vf vf_add(vf a, vf b)
{
    return a + b;
}
static inline vf vf_sub(vf a, vf b)
{
    return a - b;
}
static inline vf vf_mul(vf a, vf b)
{
    return a * b;
}
/* m ? b : a */
static inline vf vf_blend(vm m, vf a, vf b)
{
    return (vf)((m & (vi)b) | (~m & (vi)a));
}
/* a < b ? a : b, a > b ? a : b: the SIMD min and max (no NaN reaches them); SSE2's minps and
 * maxps are exactly these */
static inline vf vf_min(vf a, vf b)
{
#ifdef __SSE2__
    return _mm_min_ps(a, b);
#else
    return vf_blend(a < b, b, a);
#endif
}
static inline vf vf_max(vf a, vf b)
{
#ifdef __SSE2__
    return _mm_max_ps(a, b);
#else
    return vf_blend(a > b, b, a);
#endif
}
static inline vf vf_abs(vf a)
{
    return (vf)((vi)a & INT32_MAX);
}
static inline vf vf_neg(vf a)
{
    return (vf)((vi)a ^ INT32_MIN);
}
static inline vf vf_xor(vf a, vf b)
{
    return (vf)((vi)a ^ (vi)b);
}
/* sqi_rne lane by lane: the same operations, a select for its early return. */
static inline vf vf_round(vf v)
{
    vf a = vf_abs(v), t = (a + 0x1p23f) - 0x1p23f;
    t = (vf)((vi)t | ((vi)v & INT32_MIN));
    return vf_blend(a < 0x1p23f, v, t);
}
static inline vm vm_lt(vf a, vf b)
{
    return a < b;
}
static inline vm vm_gt(vf a, vf b)
{
    return a > b;
}
static inline vm vm_ge(vf a, vf b)
{
    return a >= b;
}
static inline vm vm_eq(vf a, vf b)
{
    return a == b;
}
static inline vm vm_and(vm a, vm b)
{
    return a & b;
}
static inline vm vm_or(vm a, vm b)
{
    return a | b;
}
static inline vm vm_xor(vm a, vm b)
{
    return a ^ b;
}
static inline vm vm_andnot(vm a, vm b)
{
    return a & ~b;
}
static inline vm vm_gt_m(vm m, vf a, vf b)
{
    return m & (a > b);
}
static inline vm vm_lt_m(vm m, vf a, vf b)
{
    return m & (a < b);
}
static inline vi vi_set1(int x)
{
    return (vi){0} + x;
}
static inline vi vi_lanes(void)
{
    return (vi){0, 1, 2, 3};
}
static inline vm vm_first(size_t n)
{
    return vi_lanes() < (int)(n > W ? W : n);
}
static inline vm vm_ilt(vi a, vi b)
{
    return a < b;
}
static inline vm vm_ieq(vi a, vi b)
{
    return a == b;
}
static inline vm vm_ilt_m(vm m, vi a, vi b)
{
    return m & (a < b);
}
static inline vm vm_ieq_m(vm m, vi a, vi b)
{
    return m & (a == b);
}
static inline vi vi_add(vi a, vi b)
{
    return a + b;
}
static inline vi vi_mul_small(vi a, int k)
{
    return a * k;
}
static inline vi vi_inc(vi acc, vm m)
{
    return acc - m;
}
static inline vi vi_dec(vi acc, vm m)
{
    return acc + m;
}
static inline vi vi_blend(vm m, vi a, vi b)
{
    return (m & b) | (~m & a);
}
static inline vi vi_from_vf(vf a)
{
    return __builtin_convertvector(a, vi);
}
static inline int vi_hsum(vi v)
{
    int s = 0;
    for (int l = 0; l < W; l++)
        s += v[l];
    return s;
}
static inline vf vf_load_n(const float *p, size_t n)
{
    vf v = {0};
    memcpy(&v, p, (n > W ? W : n) * sizeof(float));
    return v;
}
static inline vf vf_gather(const float *base, vi idx, size_t n)
{
    vf v = {0};
    for (size_t l = 0; l < n && l < W; l++)
        v[l] = base[idx[l]];
    return v;
}
/* The lanes of m to dst in order, branch-free (dst has W slack); returns the count. */
static inline int vf_compress(float *dst, vm m, vf v)
{
    int c = 0;
    for (int l = 0; l < W; l++) {
        dst[c] = v[l];
        c += m[l] & 1;
    }
    return c;
}
static inline int vi_compress(int32_t *dst, vm m, vi v)
{
    int c = 0;
    for (int l = 0; l < W; l++) {
        dst[c] = v[l];
        c += m[l] & 1;
    }
    return c;
}

/* W whole kernels at base, element t of kernel i to lane i of out[t], any K <= 16. */
#define SIMD_HAVE_LOAD_KERNELS 1
#define SIMD_LOAD_KERNELS_MIN 1
static inline __attribute__((always_inline)) void load_kernels(const float *base, const size_t K,
                                                               vf *out)
{
    _Pragma("GCC unroll 16") for (size_t t = 0; t < K; t++) out[t] =
        (vf){base[t], base[K + t], base[2 * K + t], base[3 * K + t]};
}

/* Their inverse: back to the W * K contiguous floats, and the codes to int8. */
#define SIMD_HAVE_STORE_KERNELS 1
#define SIMD_FULL_SIZES(X) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(12) X(15) X(16)
static inline __attribute__((always_inline)) void store_kernels(float *base, const size_t K,
                                                                const vf *v)
{
    _Pragma("GCC unroll 4") for (size_t i = 0; i < W; i++)
        _Pragma("GCC unroll 16") for (size_t t = 0; t < K; t++) base[K * i + t] = v[t][i];
}
static inline __attribute__((always_inline)) void store_code_kernels(int8_t *q, const size_t K,
                                                                     const vf *c)
{
    vi ci[16];
    _Pragma("GCC unroll 16") for (size_t t = 0; t < K; t++) ci[t] = vi_from_vf(c[t]);
    _Pragma("GCC unroll 4") for (size_t i = 0; i < W; i++)
        _Pragma("GCC unroll 16") for (size_t t = 0; t < K; t++) q[K * i + t] = (int8_t)ci[t][i];
}

/* What rows_body.h needs besides. */
static inline vf vf_div(vf a, vf b)
{
    return a / b;
}
static inline vf vf_loadu(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void vf_storeu(float *p, vf v)
{
    memcpy(p, &v, sizeof v);
}
static inline unsigned vm_bits(vm m)
{
    return (unsigned)(m[0] & 1) | (unsigned)(m[1] & 2) | (unsigned)(m[2] & 4) |
           (unsigned)(m[3] & 8);
}
/* n codes from floats already clamped to [t_min, t_max]. */
static inline void store_codes(int8_t *q, vf v, size_t n)
{
    vi c = vi_from_vf(v);
    for (size_t l = 0; l < n && l < W; l++)
        q[l] = (int8_t)c[l];
}
/* The 4x4 transpose of r[0..3] in place (zips: unpcklps/unpckhps/movlhps on SSE2, zip on NEON). */
static inline __attribute__((always_inline)) void transpose4(vf *r)
{
    vf t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 1, 5);
    vf t1 = __builtin_shufflevector(r[0], r[1], 2, 6, 3, 7);
    vf t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 1, 5);
    vf t3 = __builtin_shufflevector(r[2], r[3], 2, 6, 3, 7);
    r[0] = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
    r[1] = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
    r[2] = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
    r[3] = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
}

/* A 4x4 block of rows: out[t] = element t of rows 0..3 (row i at base + i * stride). */
#define SIMD_HAVE_LOAD_ROWS 1
static inline __attribute__((always_inline)) void load_rows(const float *base, size_t stride,
                                                            vf *out)
{
    for (size_t i = 0; i < 4; i++)
        out[i] = vf_loadu(base + stride * i);
    transpose4(out);
}

/*
 * The inverse for codes: c[t] (element t of 4 rows, clamped floats) to 4
 * bytes of each row. Lane i of u is row i's four codes as one little-endian
 * 32-bit word, made by shifts in the lanes (no byte shuffle, which SSE2
 * lacks), then stored as 4 bytes.
 */
#define SIMD_HAVE_STORE_ROWS 1
static inline __attribute__((always_inline)) void store_rows_codes(int8_t *q, size_t stride,
                                                                   const vf *c)
{
    typedef uint32_t vu __attribute__((vector_size(16)));
    vu u = {0};
    for (unsigned t = 0; t < 4; t++)
        u |= ((vu)vi_from_vf(c[t]) & 0xffu) << (8 * t);
    for (size_t i = 0; i < 4; i++) {
        uint8_t b[4] = {(uint8_t)u[i], (uint8_t)(u[i] >> 8), (uint8_t)(u[i] >> 16),
                        (uint8_t)(u[i] >> 24)};
        memcpy(q + stride * i, b, 4);
    }
}

/* Pass 1 over elements [i, len): err = e, q = clamp(r) (what the block path does not cover). */
static inline void simd_pass1(const struct sqi_ctx *ctx, const struct sqi_chan *ch, size_t i,
                              size_t len)
{
    const float *cw = ch->w, s_ = ch->scale, z_ = ch->zp;
    const float t_min = ctx->t_min, t_max = ctx->t_max;
    float *err = ch->err;
    int8_t *cq = ch->q;
    for (; i < len; i++) {
        float x = sqi_code_x(s_, z_, cw[i]);
        float r = sqi_rne_sel(x);
        err[i] = r - x;
        float code = r < t_min ? t_min : r;
        cq[i] = (int8_t)(code > t_max ? t_max : code);
    }
}

#include "kernel_body.h"
#include "rows_body.h"

/*
 * Kernel and channel stage of one channel through kernel_body.h (kernel
 * sizes it supports). Scratch as the SIMD implementations lay it out.
 */
static void gen_block_stages(const struct sqi_ctx *ctx, const struct sqi_chan *ch, void *scratch,
                             struct sqi_flips *flips)
{
    size_t lw = ctx->len + 4 * W, kw = ctx->kernels + W;
    uint64_t *keys = scratch;
    float *f = ch->err + ctx->len; /* the patch and offer lists, after the errors */
    struct simd_patches pt = {(uint32_t *)f, f + lw, f + 2 * lw, 0};
    struct sqi_offers up = {(uint32_t *)(f + 3 * lw), NULL, 0}, down = {up.pos + kw, NULL, 0};
    up.val = (float *)(down.pos + kw);
    down.val = up.val + kw;
    simd_kernel_stage(ctx, ch, &pt, &up, &down, &flips->kernel);
    if (ctx->channel_stage)
        sqi_channel_offers(ctx, ch, sqi_rowsum(ch->err, ctx->len), &up, &down, keys,
                           &flips->channel);
}

/* Channel c on its own; false if a weight is NaN or infinite. */
static bool gen_row(const struct sqi_ctx *ctx, size_t c, const float *w, int8_t *q, float *scale,
                    float *zp, void *scratch, struct gen_arrays *a_, struct sqi_flips *flips)
{
    struct gen_arrays a = *a_;
    size_t len = ctx->len;
    bool block_stages = ctx->kernel_stage && simd_kernel_size_supported(ctx->ksize);
    struct sqi_chan ch = {0.0f, 0.0f, w + c * len, q + c * len, a.err};
    float mn, mx;
    if (!gen_minmax(ch.w, len, &mn, &mx))
        return false;
    sqi_channel_params(ctx, mn, mx, &ch.scale, &ch.zp);
    scale[c] = ch.scale;
    zp[c] = ch.zp;
    if (block_stages) {
        gen_block_stages(ctx, &ch, scratch, flips);
        return true;
    }
    size_t n_up, n_dn;
    {
        /*
         * Pass 1 (sqi_elem for every element), written for the
         * vectorizer: locals, since stores to the arrays could otherwise
         * alias ch and force reloads; sqi_rne_sel and selects, no branch;
         * 32-bit counters, as wide as the float lanes.
         */
        const float *cw = ch.w, s_ = ch.scale, z_ = ch.zp;
        const float t_min = ctx->t_min, t_max = ctx->t_max;
        float *err = ch.err, *cand = a.cand;
        int8_t *cq = ch.q;
        int32_t nu = 0, nd = 0;
        for (size_t i0 = 0; i0 < len; i0 += 64) {
            simd_prefetch_next(&ch, len, i0, 64);
            size_t i1 = len - i0 < 64 ? len : i0 + 64;
            for (size_t i = i0; i < i1; i++) {
                float x = sqi_code_x(s_, z_, cw[i]);
                float r = sqi_rne_sel(x), e = r - x;
                int32_t up = (e < 0.0f) & (x < t_max), down = (e > 0.0f) & (x > t_min);
                err[i] = e;
                float code = r < t_min ? t_min : r;
                code = code > t_max ? t_max : code;
                cq[i] = (int8_t)code;
                cand[i] = e * (float)(up | down); /* e or 0, without a branch */
                nu += up;
                nd += down;
            }
        }
        n_up = (size_t)nu;
        n_dn = (size_t)nd;
    }
    if (ctx->kernel_stage)
        kernel_stage(ctx, &ch, &a, &flips->kernel);
    if (!ctx->channel_stage)
        return true;
    float s = sqi_rowsum(ch.err, len);
    if (ctx->kernel_stage) {
        sqi_channel_offers(ctx, &ch, s, &a.up, &a.down, a.keys, &flips->channel);
    } else {
        struct sqi_row p = sqi_row_plan(s, len);
        size_t nd = p.up ? n_up : n_dn;
        if (p.k == 0 || nd == 0)
            return true;
        /*
         * Only candidates with priority >= tau can be among the k best if
         * at least k pass: tau leaves about k + 6 + k/4 of the nd
         * candidates, whose priorities are close to uniform on (0, 0.5].
         * If fewer pass (rare), tau = 0 takes them all.
         */
        float frac = (float)(p.k + 6 + p.k / 4) / (float)nd;
        float tau = frac < 1.0f ? 0.5f * (1.0f - frac) : 0.0f;
        size_t m;
        for (;;) {
            m = collect(a.cand, len, p.up, tau, a.keys);
            if (m >= p.k || tau == 0.0f)
                break;
            tau = 0.0f;
        }
        sqi_flip_best(ctx, &ch, a.keys, m, p.k, p.up, &flips->channel);
    }
    return true;
}

size_t sqi_quantize_generic(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q,
                            float *scale, float *zp, void *scratch, struct sqi_flips *flips)
{
    struct gen_arrays a;
    gen_layout(scratch, ctx, &a);
    size_t len = ctx->len, c = 0;
    if (!ctx->kernel_stage && len <= SIMD_ROWS_MAX) {
        vf wt[SIMD_ROWS_MAX], et[SIMD_ROWS_MAX];
        for (; c + W <= n; c += W) {
            const float *next = c + 3 * W <= n ? w + (c + 2 * W) * len : NULL;
            int redo = simd_rows_block(ctx, len, w + c * len, next, q + c * len, scale + c, zp + c,
                                       wt, et, &flips->channel);
            if (redo < 0)
                break; /* the per-row path below names the weight */
            for (unsigned m = (unsigned)redo; m; m &= m - 1)
                gen_row(ctx, c + (size_t)__builtin_ctz(m), w, q, scale, zp, scratch, &a, flips);
        }
    }
    for (; c < n; c++)
        if (!gen_row(ctx, c, w, q, scale, zp, scratch, &a, flips))
            return c;
    return n;
}

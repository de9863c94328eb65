/*
 * The SIMD implementation, written once against a few vector wrappers and
 * included by squant_avx512.c (16 lanes) and squant_avx2.c (8 lanes), which
 * define them. It follows the data flow of core.h; every vector operation is
 * the same IEEE f32 operation as the scalar reference, so codes are
 * identical, and the reduction orders are the reference's.
 *
 * Wrappers the includer defines: W, vf, vi, vm; vf_loadu, vf_load_n,
 * vf_storeu, vf_store_n, vf_set1, vf_zero, vf_add, vf_sub, vf_mul, vf_min,
 * vf_max, vf_abs, vf_neg, vf_round, vf_blend(m, a, b) (m ? b : a),
 * vf_gather(base, idx, n); vm_lt, vm_gt, vm_ge, vm_eq, vm_and, vm_or,
 * vm_andnot(a, b) (a & ~b), vm_xor, vm_first(n) (lanes < n), vm_bits; vi_set1,
 * vi_lanes (0, 1, ..., W-1), vi_add, vi_mul_small, vi_inc(acc, m), vi_dec(acc, m),
 * vi_blend, vm_ilt, vm_ieq, vi_from_vf, vi_store, vi_hsum; store_codes(q, v, n);
 * vf_compress(dst, m, v) and vi_compress(dst, m, v) (store the lanes of m
 * contiguously, writing a whole vector: dst needs W slack; return the count);
 * keys_max_below(keys, n, bound) over u64 keys (n a multiple of 8) and
 * make_keys(keys, pos, val) (W rank keys, any order); vi_load;
 * optionally load_kernels(base, K, out) (transpose W full kernels, K <= 16)
 * with SIMD_HAVE_LOAD_KERNELS; and SIMD_NAME and SIMD_ROWSUM_NAME, the
 * names of the entry point and of the row sum exported for tests.
 *
 * The kernel stage puts W kernels side by side, one per lane, and ranks each
 * kernel's priorities with W-wide compares: no sort, no branch per element.
 */
#ifndef SQ_SIMD_BODY
#define SQ_SIMD_BODY

#include <immintrin.h>

#include "core.h"

/*
 * Kernel sizes with a lane-per-kernel path (1xk, kx1, 2x2 ... 4x4, 5x5, 7x7);
 * other sizes go to the generic implementation.
 */
#define SIMD_KMAX 49
#define SIMD_KERNEL_SIZES(X)                                                                       \
    X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(12) X(15) X(16) X(25) X(49)

static bool simd_kernel_size_supported(size_t k)
{
    switch (k) {
#define SIMD_K(k)                                                                                  \
    case k:                                                                                        \
        return true;
        SIMD_KERNEL_SIZES(SIMD_K)
#undef SIMD_K
    default:
        return false;
    }
}

static inline unsigned lanes_upto(size_t n)
{
    return n >= 32 ? 0xffffffffu : (1u << n) - 1u;
}

/* min/max of a channel; false if a weight is NaN or infinite. */
static inline bool simd_minmax(const float *w, size_t len, float *mn, float *mx)
{
    vf lo = vf_set1(w[0]), hi = lo, bad = vf_zero(), first = lo;
    size_t i = 0;
    for (; i + W <= len; i += W) {
        vf v = vf_loadu(w + i);
        lo = vf_min(lo, v);
        hi = vf_max(hi, v);
        bad = vf_add(bad, vf_sub(v, v)); /* NaN in a lane once it saw NaN or Inf */
    }
    if (i < len) {
        vf v = vf_blend(vm_first(len - i), first, vf_load_n(w + i, len - i));
        lo = vf_min(lo, v);
        hi = vf_max(hi, v);
        bad = vf_add(bad, vf_sub(v, v));
    }
    if ((vm_bits(vm_eq(bad, bad)) & lanes_upto(W)) != lanes_upto(W))
        return false;
    float l[W], h[W];
    vf_storeu(l, lo);
    vf_storeu(h, hi);
    float a = l[0], b = h[0];
    for (int j = 1; j < W; j++) {
        a = l[j] < a ? l[j] : a;
        b = h[j] > b ? h[j] : b;
    }
    *mn = a;
    *mx = b;
    return true;
}

/* Round to nearest only (mode rtn): codes straight from the weights. */
static inline void simd_rtn(const struct sqi_ctx *ctx, const struct sqi_chan *ch, size_t len)
{
    vf vs = vf_set1(ch->scale), vz = vf_set1(ch->zp);
    vf lo = vf_set1(ctx->t_min), hi = vf_set1(ctx->t_max);
    for (size_t i = 0; i < len; i += W) {
        size_t n = len - i < W ? len - i : W;
        vf w = n == W ? vf_loadu(ch->w + i) : vf_load_n(ch->w + i, n);
        vf r = vf_round(vf_sub(vf_mul(vs, w), vz));
        store_codes(ch->q + i, vf_min(vf_max(r, lo), hi), n);
    }
}

/* One chunk of pass 1: err = e and q = clamp(r); returns e, x through *xo. */
static inline __attribute__((always_inline)) vf pass1_chunk(const struct sqi_ctx *ctx,
                                                            const struct sqi_chan *ch, size_t i,
                                                            size_t n, vf *xo)
{
    vf vs = vf_set1(ch->scale), vz = vf_set1(ch->zp);
    vf w = n == W ? vf_loadu(ch->w + i) : vf_load_n(ch->w + i, n);
    vf x = vf_sub(vf_mul(vs, w), vz);
    vf r = vf_round(x);
    vf e = vf_sub(r, x);
    vf c = vf_min(vf_max(r, vf_set1(ctx->t_min)), vf_set1(ctx->t_max));
    if (n == W) {
        vf_storeu(ch->err + i, e);
        store_codes(ch->q + i, c, W);
    } else {
        vf_store_n(ch->err + i, e, n);
        store_codes(ch->q + i, c, n);
    }
    *xo = x;
    return e;
}

/* Pass 1 before a kernel stage: err[i] = e, q[i] = clamp(r). */
static inline void simd_pass1(const struct sqi_ctx *ctx, const struct sqi_chan *ch, size_t len)
{
    vf x;
    size_t i = 0;
    for (; i + W <= len; i += W)
        pass1_chunk(ctx, ch, i, W, &x);
    if (i < len)
        pass1_chunk(ctx, ch, i, len - i, &x);
}

/* Candidate value of a chunk (e for a candidate in e's direction, else 0), counting them. */
static inline __attribute__((always_inline)) vf cand_chunk(const struct sqi_ctx *ctx, vf e, vf x,
                                                           vm valid, vi *cu, vi *cd)
{
    vf zero = vf_zero();
    vm up = vm_and(vm_and(vm_lt(e, zero), vm_lt(x, vf_set1(ctx->t_max))), valid);
    vm dn = vm_and(vm_and(vm_gt(e, zero), vm_gt(x, vf_set1(ctx->t_min))), valid);
    *cu = vi_inc(*cu, up);
    *cd = vi_inc(*cd, dn);
    return vf_blend(vm_or(up, dn), zero, e);
}

/* Pass 1 without a kernel stage: also cand[i], and the candidates of each direction. */
static inline void simd_pass1_cand(const struct sqi_ctx *ctx, const struct sqi_chan *ch,
                                   size_t len, float *cand, size_t *n_up, size_t *n_dn)
{
    vi cu = vi_set1(0), cd = vi_set1(0);
    vm all = vm_first(W);
    vf x;
    size_t i = 0;
    for (; i + W <= len; i += W) {
        vf e = pass1_chunk(ctx, ch, i, W, &x);
        vf_storeu(cand + i, cand_chunk(ctx, e, x, all, &cu, &cd));
    }
    if (i < len) {
        vf e = pass1_chunk(ctx, ch, i, len - i, &x);
        vf_store_n(cand + i, cand_chunk(ctx, e, x, vm_first(len - i), &cu, &cd), len - i);
    }
    *n_up = (size_t)vi_hsum(cu);
    *n_dn = (size_t)vi_hsum(cd);
}

/*
 * The reference's row sum over a channel, 8 lanes at a time: sqi_rowsum's
 * order exactly, with the four level-0 accumulators in registers and the
 * cascade's upper levels touched once per block.
 */
static inline float simd_rowsum(const float *v, size_t n)
{
    if (n < 8)
        return sqi_rowsum(v, n);
    size_t nv = n / 8, g = nv / 4, block;
    unsigned p;
    sqi_cascade_params(g, &block, &p);
    size_t mask1 = p < 64 ? (block - 1) << p : 0, mask2 = 2 * p < 64 ? (block - 1) << (2 * p) : 0;
    __m256 z = _mm256_setzero_ps();
    __m256 a0 = z, a1 = z, a2 = z, a3 = z, up[3][4];
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < 4; k++)
            up[l][k] = z;
    size_t i = 0;
    while (i + block <= g) {
        for (size_t j = 0; j < block; j++, i++) {
            const float *x = v + 32 * i;
            a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x));
            a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + 8));
            a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + 16));
            a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + 24));
        }
        /* Level carries: 1 always, then 2 and 3 while i is a multiple of their span. */
        __m256 a[4] = {a0, a1, a2, a3};
        for (int k = 0; k < 4; k++)
            up[0][k] = _mm256_add_ps(up[0][k], a[k]);
        a0 = a1 = a2 = a3 = z;
        if ((i & mask1) == 0) {
            for (int k = 0; k < 4; k++) {
                up[1][k] = _mm256_add_ps(up[1][k], up[0][k]);
                up[0][k] = z;
            }
            if ((i & mask2) == 0)
                for (int k = 0; k < 4; k++) {
                    up[2][k] = _mm256_add_ps(up[2][k], up[1][k]);
                    up[1][k] = z;
                }
        }
    }
    for (; i < g; i++) {
        const float *x = v + 32 * i;
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + 24));
    }
    __m256 a[4] = {a0, a1, a2, a3};
    for (int k = 0; k < 4; k++)
        a[k] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a[k], up[0][k]), up[1][k]), up[2][k]);
    for (size_t j = 4 * g; j < nv; j++)
        a[0] = _mm256_add_ps(a[0], _mm256_loadu_ps(v + 8 * j));
    a[0] = _mm256_add_ps(a[0], a[1]);
    a[0] = _mm256_add_ps(a[0], a[2]);
    a[0] = _mm256_add_ps(a[0], a[3]);
    float lanes[8], s = 0.0f;
    _mm256_storeu_ps(lanes, a[0]);
    for (size_t j = 8 * nv; j < n; j++)
        s += v[j];
    for (int l = 0; l < 8; l++)
        s += lanes[l];
    return s;
}

/* Cascade sum of g items (vectors v[t*stride + l], lane by lane): rowsum.c, W kernels wide. */
static inline void simd_cascade(const vf *v, size_t g, size_t stride, size_t lanes, vf *out)
{
    size_t block;
    unsigned p;
    sqi_cascade_params(g, &block, &p);
    vf acc[4][8];
    for (int j = 0; j < 4; j++)
        for (size_t l = 0; l < lanes; l++)
            acc[j][l] = vf_zero();
    size_t i = 0;
    while (i + block <= g) {
        for (size_t j = 0; j < block; j++, i++)
            for (size_t l = 0; l < lanes; l++)
                acc[0][l] = vf_add(acc[0][l], v[i * stride + l]);
        for (unsigned j = 1; j < 4; j++) {
            for (size_t l = 0; l < lanes; l++) {
                acc[j][l] = vf_add(acc[j][l], acc[j - 1][l]);
                acc[j - 1][l] = vf_zero();
            }
            if (j * p < sizeof(size_t) * 8 && (i & ((block - 1) << (j * p))) != 0)
                break;
        }
    }
    for (; i < g; i++)
        for (size_t l = 0; l < lanes; l++)
            acc[0][l] = vf_add(acc[0][l], v[i * stride + l]);
    for (size_t l = 0; l < lanes; l++)
        out[l] = vf_add(vf_add(vf_add(acc[0][l], acc[1][l]), acc[2][l]), acc[3][l]);
}

/*
 * sqi_rowsum over the K errors of W kernels at once (e[t] = element t of each
 * kernel). Below 32 elements PyTorch's cascade has no levels, and its
 * accumulators start at 0 (+0 + v is exact up to the sign of a zero, which
 * cannot change a decision: S < 0 and |S| are the same for either zero).
 */
static inline __attribute__((always_inline)) vf simd_kernel_rowsum(const vf *e, size_t n)
{
    if (n >= 8 && n < 32) {
        size_t nv = n / 8;
        vf a[8], s = vf_zero();
        _Pragma("GCC unroll 64")
        for (size_t l = 0; l < 8; l++) {
            a[l] = e[l];
            _Pragma("GCC unroll 64")
            for (size_t j = 1; j < nv; j++)
                a[l] = vf_add(a[l], e[8 * j + l]);
        }
        _Pragma("GCC unroll 64")
        for (size_t i = 8 * nv; i < n; i++)
            s = vf_add(s, e[i]);
        _Pragma("GCC unroll 64")
        for (size_t l = 0; l < 8; l++)
            s = vf_add(s, a[l]);
        return s;
    }
    if (n < 8) {
        /* a_k = element k for k < 4 * (n / 4); the rest go into a0 in order. */
        vf a0 = n >= 4 ? e[0] : vf_zero();
        _Pragma("GCC unroll 64")
        for (size_t i = n >= 4 ? 4 : 0; i < n; i++)
            a0 = vf_add(a0, e[i]);
        if (n < 4)
            return a0;
        return vf_add(vf_add(vf_add(a0, e[1]), e[2]), e[3]);
    }
    {
        size_t nv = n / 8, g = nv / 4;
        vf a[4][8];
        for (size_t k = 0; k < 4; k++)
            simd_cascade(e + 8 * k, g, 32, 8, a[k]);
        _Pragma("GCC unroll 64")
        for (size_t j = 4 * g; j < nv; j++)
            _Pragma("GCC unroll 64")
            for (size_t l = 0; l < 8; l++)
                a[0][l] = vf_add(a[0][l], e[8 * j + l]);
        for (size_t k = 1; k < 4; k++)
            _Pragma("GCC unroll 64")
            for (size_t l = 0; l < 8; l++)
                a[0][l] = vf_add(a[0][l], a[k][l]);
        vf s = vf_zero();
        _Pragma("GCC unroll 64")
        for (size_t i = 8 * nv; i < n; i++)
            s = vf_add(s, e[i]);
        _Pragma("GCC unroll 64")
        for (size_t l = 0; l < 8; l++)
            s = vf_add(s, a[0][l]);
        return s;
    }
    size_t g = n / 4;
    vf a[4];
    for (size_t k = 0; k < 4; k++)
        simd_cascade(e + k, g, 4, 1, &a[k]);
    _Pragma("GCC unroll 64")
    for (size_t i = 4 * g; i < n; i++)
        a[0] = vf_add(a[0], e[i]);
    return vf_add(vf_add(vf_add(a[0], a[1]), a[2]), a[3]);
}

/* Elements the kernel stage changed, applied to err and q once the stage is done. */
struct simd_patches {
    uint32_t *pos;
    float *err;
    float *code; /* clamped */
    size_t n;
};

/*
 * Kernel stage for kernels [b, b + nk) of a channel (nk <= W), K elements
 * each: one kernel per lane. Appends the changed elements to `patches` and
 * the kernels' offers to up/down (in kernel order, so positions ascend), all
 * without a branch per element.
 */
static inline __attribute__((always_inline)) void
simd_kernel_block(const struct sqi_ctx *ctx, const struct sqi_chan *ch, size_t b, size_t nk,
                  const size_t K, struct simd_patches *pt, struct sqi_offers *off_up,
                  struct sqi_offers *off_dn, vi *changed)
{
    vf vs = vf_set1(ch->scale), vz = vf_set1(ch->zp), zero = vf_zero(), one = vf_set1(1.0f);
    vf lo = vf_set1(ctx->t_min), hi = vf_set1(ctx->t_max);
    vm active = vm_first(nk);
    vi stride = vi_mul_small(vi_lanes(), (int)K);
    const float *base = ch->w + b * K;
    vf e[SIMD_KMAX], p[SIMD_KMAX], r[SIMD_KMAX];
    vm cu[SIMD_KMAX], cd[SIMD_KMAX];
    vf wt[SIMD_KMAX];
#ifdef SIMD_HAVE_LOAD_KERNELS
    if (nk == W && K <= 16) {
        load_kernels(base, K, wt);
    } else
#endif
    {
        _Pragma("GCC unroll 64")
        for (size_t t = 0; t < K; t++)
            wt[t] = vf_gather(base + t, stride, nk);
    }
    _Pragma("GCC unroll 64")
    for (size_t t = 0; t < K; t++) {
        vf x = vf_sub(vf_mul(vs, wt[t]), vz);
        r[t] = vf_round(x);
        e[t] = vf_sub(r[t], x);
        cu[t] = vm_and(vm_lt(e[t], zero), vm_lt(x, hi));
        cd[t] = vm_and(vm_gt(e[t], zero), vm_gt(x, lo));
    }
    vf s = simd_kernel_rowsum(e, K);
    vm up = vm_lt(s, zero);
    vf mag = vf_abs(s), kf = vf_round(mag);
    vm over = vm_ge(kf, mag);
    vi k = vi_from_vf(kf);
    _Pragma("GCC unroll 64")
    for (size_t t = 0; t < K; t++)
        p[t] = vf_blend(up, vf_blend(cd[t], zero, e[t]), vf_blend(cu[t], zero, vf_neg(e[t])));

    /*
     * rank[t] = how many elements come before t in the stable descending
     * order: those u < t with p[u] >= p[t] and those u > t with p[u] > p[t].
     * The second count is (K - 1 - t) minus those u > t with p[t] >= p[u], so
     * each pair needs one compare: start at K - 1 - t, then for u < t with
     * p[u] >= p[t] add one to rank[t] and take one from rank[u].
     */
    vi rank[SIMD_KMAX];
    _Pragma("GCC unroll 64")
    for (size_t t = 0; t < K; t++)
        rank[t] = vi_set1((int)(K - 1 - t));
    _Pragma("GCC unroll 64")
    for (size_t t = 1; t < K; t++)
        _Pragma("GCC unroll 64")
        for (size_t u = 0; u < t; u++) {
            vm before = vm_ge(p[u], p[t]);
            rank[t] = vi_inc(rank[t], before);
            rank[u] = vi_dec(rank[u], before);
        }
    /* The offered rank: k - 1 if over (K - 1 when k = 0), else k. */
    vi target = vi_blend(over, k, vi_add(k, vi_set1(-1)));
    target = vi_blend(vm_and(over, vm_ieq(k, vi_set1(0))), target, vi_set1((int)K - 1));

    vi off_pos = vi_set1(-1);
    vf off_val = zero;
    vm has_offer = vm_and(active, vm_ilt(target, vi_set1((int)K)));
    vf step = vf_blend(up, vf_set1(-1.0f), one);
    _Pragma("GCC unroll 64")
    for (size_t t = 0; t < K; t++) {
        vm flip = vm_and(vm_ilt(rank[t], k), active);
        vm real = vm_and(flip, vm_gt(p[t], zero));
        /* Flipped candidates move one step; surplus flips of non-candidates get err 0. */
        vf err = vf_blend(flip, e[t], zero);
        err = vf_blend(real, err, vf_add(e[t], step));
        vf old = vf_min(vf_max(r[t], lo), hi);
        vf code = vf_blend(real, old, vf_min(vf_max(vf_add(r[t], step), lo), hi));
        vi pos = vi_add(stride, vi_set1((int)(b * K + t)));
        size_t n = (size_t)vi_compress((int32_t *)pt->pos + pt->n, flip, pos);
        vf_compress(pt->err + pt->n, flip, err);
        vf_compress(pt->code + pt->n, flip, code);
        pt->n += n;
        *changed = vi_inc(*changed, vm_andnot(real, vm_eq(code, old)));
        vm is = vm_and(vm_ieq(rank[t], target), active);
        off_pos = vi_blend(is, off_pos, pos);
        off_val = vf_blend(is, off_val, vf_abs(err));
    }
    vm dir_up = vm_and(has_offer, vm_xor(up, over)); /* over: offered the other way */
    vm dir_dn = vm_andnot(has_offer, dir_up);
    size_t nu = (size_t)vi_compress((int32_t *)off_up->pos + off_up->n, dir_up, off_pos);
    vf_compress(off_up->val + off_up->n, dir_up, off_val);
    off_up->n += nu;
    size_t nd = (size_t)vi_compress((int32_t *)off_dn->pos + off_dn->n, dir_dn, off_pos);
    vf_compress(off_dn->val + off_dn->n, dir_dn, off_val);
    off_dn->n += nd;
}

static void simd_kernel_stage(const struct sqi_ctx *ctx, const struct sqi_chan *ch,
                              struct simd_patches *pt, struct sqi_offers *off_up,
                              struct sqi_offers *off_dn, uint64_t *flips)
{
    size_t K = ctx->ksize, I = ctx->kernels;
    vi changed = vi_set1(0);
    pt->n = off_up->n = off_dn->n = 0;
    for (size_t b = 0; b < I; b += W) {
        size_t nk = I - b < W ? I - b : W;
        /* A constant K lets the compiler unroll everything into registers. */
        switch (K) {
#define SIMD_K(k)                                                                                  \
    case k:                                                                                        \
        simd_kernel_block(ctx, ch, b, nk, k, pt, off_up, off_dn, &changed);                        \
        break;
            SIMD_KERNEL_SIZES(SIMD_K)
#undef SIMD_K
        }
    }
    for (size_t i = 0; i < pt->n; i++) {
        ch->err[pt->pos[i]] = pt->err[i];
        ch->q[pt->pos[i]] = (int8_t)pt->code[i];
    }
    *flips += (uint64_t)vi_hsum(changed);
}

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

/*
 * Channel stage without a kernel stage. The k best of nd candidates are
 * found among those with priority >= tau, where tau is guessed from the
 * typical (uniform) spread of priorities; if fewer than k pass, tau = 0.
 */
static void simd_channel_plain(const struct sqi_ctx *ctx, const struct sqi_chan *ch,
                               const float *cand, size_t n_up, size_t n_dn, uint64_t *keys,
                               int32_t *pos, float *pri_out, uint64_t *flips)
{
    size_t len = ctx->len;
    struct sqi_row p = sqi_row_plan(simd_rowsum(ch->err, len), len);
    size_t nd = p.up ? n_up : n_dn;
    if (p.k == 0 || nd == 0)
        return;
    /* Survivors expected: nd * (1 - 2 tau) = k + slack; too few (rare) -> tau = 0. */
    float tau = 0.0f;
    if (p.k < nd) {
        float frac = (float)(p.k + 6 + p.k / 4) / (float)nd;
        tau = frac < 1.0f ? 0.5f * (1.0f - frac) : 0.0f;
    }
    vf zero = vf_zero();
    vi lanes = vi_lanes();
    /* Two output streams (even and odd chunks), so that the running counts
     * that address the compressed stores form two independent chains. */
    size_t half = len / 2 + 3 * W;
    for (;;) {
        vf vt = vf_set1(tau);
        size_t ma = 0, mb = 0, i = 0;
        for (; i + 2 * W <= len; i += 2 * W) {
            vf ca = vf_loadu(cand + i), cb = vf_loadu(cand + i + W);
            vf pa = p.up ? vf_neg(ca) : ca, pb = p.up ? vf_neg(cb) : cb;
            vm ka = vm_and(vm_gt(pa, zero), vm_ge(pa, vt));
            vm kb = vm_and(vm_gt(pb, zero), vm_ge(pb, vt));
            vf_compress(pri_out + ma, ka, pa);
            ma += (size_t)vi_compress(pos + ma, ka, vi_add(lanes, vi_set1((int)i)));
            vf_compress(pri_out + half + mb, kb, pb);
            mb += (size_t)vi_compress(pos + half + mb, kb, vi_add(lanes, vi_set1((int)(i + W))));
        }
        for (; i < len; i += W) {
            size_t n = len - i < W ? len - i : W;
            vf c = vf_load_n(cand + i, n);
            vf pri = p.up ? vf_neg(c) : c;
            vm k = vm_and(vm_and(vm_gt(pri, zero), vm_ge(pri, vt)), vm_first(n));
            vf_compress(pri_out + ma, k, pri);
            ma += (size_t)vi_compress(pos + ma, k, vi_add(lanes, vi_set1((int)i)));
        }
        size_t m = ma + mb;
        if (m >= p.k || tau == 0.0f) {
            for (size_t j = 0; j < ma; j++)
                keys[j] = sqi_rank_key(pri_out[j], (size_t)pos[j]);
            for (size_t j = 0; j < mb; j++)
                keys[ma + j] = sqi_rank_key(pri_out[half + j], (size_t)pos[half + j]);
            simd_flip_top(ctx, ch, keys, m, p.k, p.up, flips);
            return;
        }
        tau = 0.0f;
    }
}

/* The channel row sum on its own, for tests. */
float SIMD_ROWSUM_NAME(const float *v, size_t n)
{
    return simd_rowsum(v, n);
}

size_t SIMD_NAME(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q, float *scale,
                 float *zp, void *scratch, struct sqi_flips *flips)
{
    if (ctx->kernel_stage && !simd_kernel_size_supported(ctx->ksize))
        return sqi_quantize_generic(ctx, n, w, q, scale, zp, scratch, flips);
    /* Scratch: 8-byte keys first, then 4-byte arrays; lists get slack for
     * the whole-vector stores of vf_compress/vi_compress. */
    size_t len = ctx->len, lw = len + 4 * W, kw = ctx->kernels + W;
    uint64_t *keys = scratch;
    float *err = (float *)(keys + lw);
    float *cand = err + len;
    struct simd_patches pt = {(uint32_t *)(cand + len), NULL, NULL, 0};
    pt.err = (float *)(pt.pos + lw);
    pt.code = pt.err + lw;
    struct sqi_offers up = {(uint32_t *)(pt.code + lw), NULL, 0}, down = {up.pos + kw, NULL, 0};
    up.val = (float *)(down.pos + kw);
    down.val = up.val + kw;
    for (size_t c = 0; c < n; c++) {
        struct sqi_chan ch = {0.0f, 0.0f, w + c * len, q + c * len, err};
        float mn, mx;
        if (!simd_minmax(ch.w, len, &mn, &mx))
            return c;
        sqi_channel_params(ctx, mn, mx, &ch.scale, &ch.zp);
        scale[c] = ch.scale;
        zp[c] = ch.zp;
        if (!ctx->kernel_stage && !ctx->channel_stage) {
            simd_rtn(ctx, &ch, len);
        } else if (!ctx->kernel_stage) {
            size_t n_up = 0, n_dn = 0;
            simd_pass1_cand(ctx, &ch, len, cand, &n_up, &n_dn);
            /* The patch arrays are free in this mode: they hold the survivors. */
            simd_channel_plain(ctx, &ch, cand, n_up, n_dn, keys, (int32_t *)pt.pos, pt.err,
                               &flips->channel);
        } else {
            simd_pass1(ctx, &ch, len);
            simd_kernel_stage(ctx, &ch, &pt, &up, &down, &flips->kernel);
            if (ctx->channel_stage)
                simd_channel_offers(ctx, &ch, &up, &down, keys, &flips->channel);
        }
    }
    return n;
}

#endif

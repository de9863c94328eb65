/*
 * The kernel stage (SQUANT-SPEC section 6, rows of one kernel), written once
 * against the vector wrappers of simd.h (vf, vi, vm, W lanes) and included
 * by the AVX2 and AVX-512 implementations (arch/x86/simd.h) and by the
 * portable one (squant_generic.c, GNU C vectors: SSE2, NEON): W kernels side
 * by side, one per lane, each kernel's priorities ranked with W-wide
 * compares, no sort and no branch per element.
 *
 * Besides the wrappers the includer defines simd_pass1(ctx, ch, from, len)
 * (err = e and q = clamp(r) over elements [from, len)) and, optionally:
 *   load_kernels(base, K, out) with SIMD_HAVE_LOAD_KERNELS (the W whole
 *       kernels at base, element t of each in out[t], SIMD_LOAD_KERNELS_MIN
 *       <= K <= 16);
 *   store_kernels(base, K, v) and store_code_kernels(q, K, c) with
 *       SIMD_HAVE_STORE_KERNELS and SIMD_FULL_SIZES(X) (the inverse, for
 *       floats and for clamped codes; X lists the sizes that use them).
 */
#ifndef SQ_KERNEL_BODY
#define SQ_KERNEL_BODY

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
        _Pragma("GCC unroll 64") for (size_t l = 0; l < 8; l++)
        {
            a[l] = e[l];
            _Pragma("GCC unroll 64") for (size_t j = 1; j < nv; j++) a[l] =
                vf_add(a[l], e[8 * j + l]);
        }
        _Pragma("GCC unroll 64") for (size_t i = 8 * nv; i < n; i++) s = vf_add(s, e[i]);
        _Pragma("GCC unroll 64") for (size_t l = 0; l < 8; l++) s = vf_add(s, a[l]);
        return s;
    }
    if (n < 8) {
        /* a_k = element k for k < 4 * (n / 4); the rest go into a0 in order. */
        vf a0 = n >= 4 ? e[0] : vf_zero();
        _Pragma("GCC unroll 64") for (size_t i = n >= 4 ? 4 : 0; i < n; i++) a0 = vf_add(a0, e[i]);
        if (n < 4)
            return a0;
        return vf_add(vf_add(vf_add(a0, e[1]), e[2]), e[3]);
    }
    {
        size_t nv = n / 8, g = nv / 4;
        vf a[4][8];
        for (size_t k = 0; k < 4; k++)
            simd_cascade(e + 8 * k, g, 32, 8, a[k]);
        _Pragma("GCC unroll 64") for (size_t j = 4 * g; j < nv; j++)
            _Pragma("GCC unroll 64") for (size_t l = 0; l < 8; l++) a[0][l] =
                vf_add(a[0][l], e[8 * j + l]);
        for (size_t k = 1; k < 4; k++)
            _Pragma("GCC unroll 64") for (size_t l = 0; l < 8; l++) a[0][l] =
                vf_add(a[0][l], a[k][l]);
        vf s = vf_zero();
        _Pragma("GCC unroll 64") for (size_t i = 8 * nv; i < n; i++) s = vf_add(s, e[i]);
        _Pragma("GCC unroll 64") for (size_t l = 0; l < 8; l++) s = vf_add(s, a[0][l]);
        return s;
    }
    size_t g = n / 4;
    vf a[4];
    for (size_t k = 0; k < 4; k++)
        simd_cascade(e + k, g, 4, 1, &a[k]);
    _Pragma("GCC unroll 64") for (size_t i = 4 * g; i < n; i++) a[0] = vf_add(a[0], e[i]);
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
 * The kernels' direction and offered rank from the errors e and values x of
 * their K elements: *up where the error sum is negative, *k flips (the sum's
 * magnitude rounded), *over where that rounded up. The priorities p are in
 * each kernel's direction: with the sign flipped for "up", a candidate is
 * p = -e > 0 with x < t_max (up) or p = e > 0 with -x < -t_min (down);
 * everything else has priority 0. Returns the rank offered to the channel
 * stage: k - 1 if over (K - 1 when k = 0), else k.
 */
static inline __attribute__((always_inline)) vi simd_kernel_direction(const vf *e, const vf *x,
                                                                      const size_t K, vf lo, vf hi,
                                                                      vf *p, vm *up, vm *over,
                                                                      vi *k)
{
    vf zero = vf_zero();
    vf s = simd_kernel_rowsum(e, K);
    *up = vm_lt(s, zero);
    vf mag = vf_abs(s), kf = vf_round(mag);
    *over = vm_ge(kf, mag);
    *k = vi_from_vf(kf);
    vf flip_e = vf_blend(*up, zero, vf_set1(-0.0f)), flip_x = vf_blend(*up, vf_set1(-0.0f), zero);
    vf bound = vf_blend(*up, vf_neg(lo), hi);
    _Pragma("GCC unroll 64") for (size_t t = 0; t < K; t++)
    {
        vf pr = vf_xor(e[t], flip_e);
        p[t] = vf_blend(vm_lt_m(vm_gt(pr, zero), vf_xor(x[t], flip_x), bound), zero, pr);
    }
    vi target = vi_blend(*over, *k, vi_add(*k, vi_set1(-1)));
    return vi_blend(vm_and(*over, vm_ieq(*k, vi_set1(0))), target, vi_set1((int)K - 1));
}

/*
 * A block's offers (the kernels with one, has_offer) appended to the
 * channel's lists: to off_up where toward_up (the kernel's direction,
 * flipped where it was offered the other way), else to off_dn.
 */
static inline __attribute__((always_inline)) void offers_append(struct sqi_offers *off_up,
                                                                struct sqi_offers *off_dn,
                                                                vm has_offer, vm toward_up,
                                                                vi off_pos, vf off_val)
{
    vm dir_up = vm_and(has_offer, toward_up);
    vm dir_dn = vm_andnot(has_offer, dir_up);
    size_t nu = (size_t)vi_compress((int32_t *)off_up->pos + off_up->n, dir_up, off_pos);
    vf_compress(off_up->val + off_up->n, dir_up, off_val);
    off_up->n += nu;
    size_t nd = (size_t)vi_compress((int32_t *)off_dn->pos + off_dn->n, dir_dn, off_pos);
    vf_compress(off_dn->val + off_dn->n, dir_dn, off_val);
    off_dn->n += nd;
}

/*
 * Kernel stage for kernels [b, b + nk) of a channel (nk <= W), K elements
 * each: one kernel per lane. Appends the changed elements to `patches` and
 * the kernels' offers to up/down (in kernel order, so positions ascend), all
 * without a branch per element.
 */
static inline __attribute__((always_inline)) void
simd_kernel_block(const struct sqi_ctx *ctx, const struct sqi_chan *ch, size_t b, size_t nk,
                  const size_t K, struct simd_patches *pt, struct sqi_offers *off_up,
                  struct sqi_offers *off_dn)
{
    vf vs = vf_set1(ch->scale), vz = vf_set1(ch->zp), zero = vf_zero(), one = vf_set1(1.0f);
    vf lo = vf_set1(ctx->t_min), hi = vf_set1(ctx->t_max);
    vm active = vm_first(nk);
    vi stride = vi_mul_small(vi_lanes(), (int)K);
    const float *base = ch->w + b * K;
    vf e[SIMD_KMAX], p[SIMD_KMAX], x[SIMD_KMAX];
    vf wt[SIMD_KMAX];
#ifdef SIMD_HAVE_LOAD_KERNELS
#ifndef SIMD_LOAD_KERNELS_MIN
#define SIMD_LOAD_KERNELS_MIN 1
#endif
    if (nk == W && K >= SIMD_LOAD_KERNELS_MIN && K <= 16) {
        load_kernels(base, K, wt);
    } else
#endif
    {
        _Pragma("GCC unroll 64") for (size_t t = 0; t < K; t++) wt[t] =
            vf_gather(base + t, stride, nk);
    }
    _Pragma("GCC unroll 64") for (size_t t = 0; t < K; t++)
    {
        x[t] = vf_sub(vf_mul(vs, wt[t]), vz);
        e[t] = vf_sub(vf_round(x[t]), x[t]); /* exact; so is r = x + e below */
    }
    vm up, over;
    vi k, target = simd_kernel_direction(e, x, K, lo, hi, p, &up, &over, &k);

    /* Locals, not pt->n: stores through the lists could alias it otherwise. */
    int32_t *patch_pos = (int32_t *)pt->pos;
    float *patch_err = pt->err, *patch_code = pt->code;
    size_t np = pt->n;
    vi off_pos = vi_set1(-1), pos = vi_add(stride, vi_set1((int)(b * K))), one_i = vi_set1(1);
    vf off_val = zero;
    vm has_offer = vm_and(active, vm_ilt(target, vi_set1((int)K)));
    vf step = vf_blend(up, vf_set1(-1.0f), one);
    _Pragma("GCC unroll 64") for (size_t t = 0; t < K; t++)
    {
        /*
         * rank = how many elements come before t in the stable descending
         * order: u < t with p[u] >= p[t], and u > t with p[u] > p[t]. Made
         * and used here, one element at a time, so that only the priorities
         * stay in registers.
         */
        vi rank = vi_set1(0);
        _Pragma("GCC unroll 64") for (size_t u = 0; u < K; u++) if (u != t) rank =
            vi_inc(rank, u < t ? vm_ge(p[u], p[t]) : vm_gt(p[u], p[t]));
        vm flip = vm_ilt_m(active, rank, k);
        vm real = vm_gt_m(flip, p[t], zero);
        /* Flipped candidates move one step; surplus flips of non-candidates
         * keep their code and get err 0. */
        vf err = vf_blend(flip, e[t], zero);
        err = vf_blend(real, err, vf_add(e[t], step));
        vf r = vf_add(x[t], e[t]);
        vf code = vf_min(vf_max(vf_add(r, vf_blend(real, zero, step)), lo), hi);
        size_t n = (size_t)vi_compress(patch_pos + np, flip, pos);
        vf_compress(patch_err + np, flip, err);
        vf_compress(patch_code + np, flip, code);
        np += n;
        vm is = vm_ieq_m(active, rank, target);
        off_pos = vi_blend(is, off_pos, pos);
        off_val = vf_blend(is, off_val, vf_abs(err));
        pos = vi_add(pos, one_i);
    }
    pt->n = np;
    offers_append(off_up, off_dn, has_offer, vm_xor(up, over), off_pos, off_val);
}

#ifdef SIMD_HAVE_STORE_KERNELS
/*
 * Kernel stage for the W whole kernels at b (8 <= K <= 16), with pass 1
 * folded in: the block is transposed in (load_kernels), ranked one kernel per
 * lane as in simd_kernel_block, and its errors and codes, flipped or not, are
 * transposed back out (store_kernels, store_code_kernels): no pass 1 over the
 * block, no patch list. `same` counts, per lane, the elements whose clamped
 * code is the round-to-nearest one.
 */
static inline __attribute__((always_inline)) void
simd_kernel_block_full(const struct sqi_ctx *ctx, const struct sqi_chan *ch, size_t b,
                       const size_t K, struct sqi_offers *off_up, struct sqi_offers *off_dn,
                       vi *same)
{
    vf vs = vf_set1(ch->scale), vz = vf_set1(ch->zp), zero = vf_zero(), one = vf_set1(1.0f);
    vf lo = vf_set1(ctx->t_min), hi = vf_set1(ctx->t_max);
    vf e[16], p[16], x[16], r[16];
    load_kernels(ch->w + b * K, K, x);
    _Pragma("GCC unroll 16") for (size_t t = 0; t < K; t++)
    {
        x[t] = vf_sub(vf_mul(vs, x[t]), vz);
        r[t] = vf_round(x[t]);
        e[t] = vf_sub(r[t], x[t]);
    }
    vm up, over;
    vi k, target = simd_kernel_direction(e, x, K, lo, hi, p, &up, &over, &k);
    vi off_pos = vi_set1(-1), pos = vi_add(vi_mul_small(vi_lanes(), (int)K), vi_set1((int)(b * K)));
    vi one_i = vi_set1(1);
    vf off_val = zero, step = vf_blend(up, vf_set1(-1.0f), one);
    vm has_offer = vm_ilt(target, vi_set1((int)K));
    vf en[16], cn[16];
    /*
     * rank[t] = how many elements come before t in the stable descending
     * order: u < t with p[u] >= p[t], and u > t with p[u] > p[t]. One
     * compare per pair serves both: u > t comes before t exactly when t does
     * not come before u.
     */
    vi ranks[16];
    _Pragma("GCC unroll 16") for (size_t t = 0; t < K; t++) ranks[t] = vi_set1((int)(K - 1 - t));
    _Pragma("GCC unroll 16") for (size_t t = 1; t < K; t++)
        _Pragma("GCC unroll 16") for (size_t u = 0; u < t; u++)
    {
        vm g = vm_ge(p[u], p[t]);
        ranks[t] = vi_inc(ranks[t], g);
        ranks[u] = vi_dec(ranks[u], g);
    }
    _Pragma("GCC unroll 16") for (size_t t = 0; t < K; t++)
    {
        vi rank = ranks[t];
        vm flip = vm_ilt(rank, k);
        vm real = vm_gt_m(flip, p[t], zero);
        vf err = vf_blend(flip, e[t], zero);
        en[t] = vf_blend(real, err, vf_add(e[t], step));
        vf rq = vf_min(vf_max(r[t], lo), hi);
        cn[t] = vf_min(vf_max(vf_add(r[t], vf_blend(real, zero, step)), lo), hi);
        *same = vi_inc(*same, vm_eq(cn[t], rq));
        vm is = vm_ieq(rank, target);
        off_pos = vi_blend(is, off_pos, pos);
        off_val = vf_blend(is, off_val, vf_abs(en[t]));
        pos = vi_add(pos, one_i);
    }
    store_kernels(ch->err + b * K, K, en);
    store_code_kernels(ch->q + b * K, K, cn);
    offers_append(off_up, off_dn, has_offer, vm_xor(up, over), off_pos, off_val);
}
#endif

/*
 * The next channel's weights and codes at [at, at + n) of its elements,
 * which its min/max pass reads next: prefetched while this channel computes
 * (a prefetch never faults: past the last channel it is dropped).
 */
static inline __attribute__((always_inline)) void
simd_prefetch_next(const struct sqi_chan *ch, size_t len, size_t at, size_t n)
{
    for (size_t o = 0; o < n; o += 16)
        __builtin_prefetch(ch->w + len + at + o);
    __builtin_prefetch(ch->q + len + at, 1);
}

/*
 * The kernel stage of a channel, pass 1 included: err and q hold e and
 * clamp(r) everywhere, patched where the stage flipped.
 */
static void simd_kernel_stage(const struct sqi_ctx *ctx, const struct sqi_chan *ch,
                              struct simd_patches *pt, struct sqi_offers *off_up,
                              struct sqi_offers *off_dn, uint64_t *flips)
{
    size_t K = ctx->ksize, I = ctx->kernels, b = 0;
    uint64_t changed = 0;
    pt->n = off_up->n = off_dn->n = 0;
#ifdef SIMD_HAVE_STORE_KERNELS
    if (I >= W) {
        vi same = vi_set1(0);
        switch (K) {
#define SIMD_K(k)                                                                                  \
    case k:                                                                                        \
        for (; b + W <= I; b += W) {                                                               \
            simd_prefetch_next(ch, ctx->len, b *k, W *k);                                          \
            simd_kernel_block_full(ctx, ch, b, k, off_up, off_dn, &same);                          \
        }                                                                                          \
        break;
            SIMD_FULL_SIZES(SIMD_K)
#undef SIMD_K
        default:
            break;
        }
        changed += (uint64_t)(b * K) - (uint64_t)vi_hsum(same);
    }
#endif
    simd_pass1(ctx, ch, b * K, ctx->len);
    for (; b < I; b += W) {
        size_t nk = I - b < W ? I - b : W;
        /* A constant K lets the compiler unroll everything into registers. */
        switch (K) {
#define SIMD_K(k)                                                                                  \
    case k:                                                                                        \
        simd_kernel_block(ctx, ch, b, nk, k, pt, off_up, off_dn);                                  \
        break;
            SIMD_KERNEL_SIZES(SIMD_K)
#undef SIMD_K
        }
    }
    for (size_t i = 0; i < pt->n; i++) {
        int8_t code = (int8_t)pt->code[i];
        changed += ch->q[pt->pos[i]] != code;
        ch->err[pt->pos[i]] = pt->err[i];
        ch->q[pt->pos[i]] = code;
    }
    *flips += changed;
}

#endif

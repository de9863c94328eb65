/*
 * The short-row path, written once against the vector wrappers of simd.h
 * (AVX2, AVX-512) and of squant_generic.c (GNU C vectors of 4 lanes), and
 * included by both after kernel_body.h. Besides kernel_body.h's wrappers it
 * needs vf_loadu, vf_storeu, vf_div, vm_bits, store_codes(q, v, n) and
 * optionally load_rows(base, stride, out) with SIMD_HAVE_LOAD_ROWS (a WxW
 * block of rows transposed in registers) and store_rows_codes(q, stride, c)
 * with SIMD_HAVE_STORE_ROWS (its inverse for W elements of codes); without
 * them gathers and byte stores lane by lane.
 */
#ifndef SQ_ROWS_BODY
#define SQ_ROWS_BODY

/* The lanes below n as bits. */
static inline unsigned rows_lanes(size_t n)
{
    return n >= 32 ? 0xffffffffu : (1u << n) - 1u;
}

/*
 * Short rows, W at a time (modes without a kernel stage). A group of a 1x1
 * layer is a row of a few dozen weights, and a row costs more than its
 * weights: a range reduction across lanes, a division, a row sum that ends
 * in eight dependent additions, the setup of a selection. Here W rows sit
 * side by side, one per lane (element t of every row in one vector), so
 * that each of those steps is one vector operation for W rows and nothing
 * is reduced across lanes. Every lane does the per-channel path's f32
 * operations in the same order (the row sum is simd_kernel_rowsum, the
 * reference's order for any length). The rows are loaded by WxW
 * transposes in registers where the includer has them (load_rows), else by
 * gathers. The selection finds per lane a threshold with k priorities at
 * or above it (one pass of an insertion network for the 4 largest, then a
 * pass of a vector max per further flip), the flips are the candidates at
 * or above it, and the codes are made one vector per element index and
 * transposed back to the rows: the same flips as the stable order's first
 * k unless priorities tie at that threshold, and such a row is redone by
 * the per-row path.
 */
#define SIMD_ROWS_MAX 128

/* sqi_channel_params, lane by lane (the same operations; zero signs change neither value). */
static inline void simd_rows_params(const struct sqi_ctx *ctx, vf mn, vf mx, vf *scale, vf *zp)
{
    vf tiny = vf_set1(1e-8f);
    if (ctx->symmetric) {
        vf m = vf_max(vf_abs(mn), vf_abs(mx));
        m = vf_blend(vm_lt(m, tiny), m, tiny);
        *scale = vf_div(vf_set1(ctx->t_max), m);
        *zp = vf_zero();
    } else {
        vf d = vf_sub(mx, mn);
        d = vf_blend(vm_lt(d, tiny), d, tiny);
        vf s = vf_div(vf_set1(ctx->levels), d);
        *scale = s;
        *zp = vf_add(vf_round(vf_mul(s, mn)), vf_set1(ctx->half));
    }
}

/*
 * sqi_rowsum of W rows of len < 512 elements, e[t] = element t of each (so
 * fewer than 16 items per cascade: no levels, plain sums from 0). The
 * accumulators start at the first item instead of 0, which is exact up to
 * the sign of a zero (see simd_kernel_rowsum).
 */
static inline vf simd_rows_rowsum(const vf *e, size_t len)
{
    if (len < 8)
        return simd_kernel_rowsum(e, len);
    size_t nv = len / 8, g = nv / 4;
    vf a[4][8];
    for (size_t k = 0; k < 4; k++)
        for (size_t l = 0; l < 8; l++)
            a[k][l] = g ? e[8 * k + l] : vf_zero();
    for (size_t t = 1; t < g; t++)
        for (size_t k = 0; k < 4; k++)
            _Pragma("GCC unroll 8") for (size_t l = 0; l < 8; l++) a[k][l] =
                vf_add(a[k][l], e[32 * t + 8 * k + l]);
    for (size_t j = 4 * g; j < nv; j++)
        _Pragma("GCC unroll 8") for (size_t l = 0; l < 8; l++) a[0][l] =
            vf_add(a[0][l], e[8 * j + l]);
    vf s = vf_zero();
    for (size_t i = 8 * nv; i < len; i++)
        s = vf_add(s, e[i]);
    _Pragma("GCC unroll 8") for (size_t l = 0; l < 8; l++) s =
        vf_add(s, vf_add(vf_add(vf_add(a[0][l], a[1][l]), a[2][l]), a[3][l]));
    return s;
}

/*
 * The 4 largest priorities per lane with their multiplicity, b[0] >= b[1] >=
 * b[2] >= b[3] (0 where there are fewer): one pass of an insertion network,
 * in two streams (even and odd elements) merged at the end, for half the
 * latency.
 */
static inline __attribute__((always_inline)) void rows_top4(const vf *e, size_t len, vf *b)
{
    vf a[2][4];
    for (int s = 0; s < 2; s++)
        for (int j = 0; j < 4; j++)
            a[s][j] = vf_zero();
    size_t t = 0;
    for (; t + 2 <= len; t += 2)
        _Pragma("GCC unroll 2") for (int s = 0; s < 2; s++)
        {
            vf x = e[t + (size_t)s];
            _Pragma("GCC unroll 4") for (int j = 0; j < 3; j++)
            {
                vf hi = vf_max(a[s][j], x);
                x = vf_min(a[s][j], x);
                a[s][j] = hi;
            }
            a[s][3] = vf_max(a[s][3], x);
        }
    for (int i = 0; i < 4 + (t < len); i++) {
        vf x = i < 4 ? a[1][i] : e[t];
        for (int j = 0; j < 3; j++) {
            vf hi = vf_max(a[0][j], x);
            x = vf_min(a[0][j], x);
            a[0][j] = hi;
        }
        a[0][3] = vf_max(a[0][3], x);
    }
    for (int j = 0; j < 4; j++)
        b[j] = a[0][j];
}

/*
 * Round-to-nearest codes of rows [0, W), row by row (contiguous loads and
 * stores); the same offsets of the block at next (if not NULL) are
 * prefetched on the way.
 */
static void simd_rows_rtn(const struct sqi_ctx *ctx, size_t len, const float *w, const float *next,
                          int8_t *q, const float *scale, const float *zp)
{
    vf lo = vf_set1(ctx->t_min), hi = vf_set1(ctx->t_max);
    for (size_t r = 0; r < W; r++) {
        const float *cw = w + r * len;
        int8_t *cq = q + r * len;
        vf sc = vf_set1(scale[r]), z = vf_set1(zp[r]);
        for (size_t i = 0; i < len; i += W) {
            size_t n = len - i < W ? len - i : W;
            if (next)
                __builtin_prefetch(next + r * len + i);
            vf wv = n == W ? vf_loadu(cw + i) : vf_load_n(cw + i, n);
            vf rd = vf_round(vf_sub(vf_mul(sc, wv), z));
            store_codes(cq + i, vf_min(vf_max(rd, lo), hi), n);
        }
    }
}

/* Codes of W rows (c[t]: element t of each, clamped floats) to the rows of len at q. */
static inline void simd_rows_store(int8_t *q, size_t len, const vf *c)
{
    size_t t = 0;
#ifdef SIMD_HAVE_STORE_ROWS
    for (; t + W <= len; t += W)
        store_rows_codes(q + t, len, c + t);
#endif
    for (; t < len; t++) {
        int32_t v[W];
        vf_storeu((float *)v, (vf)vi_from_vf(c[t]));
        for (size_t l = 0; l < W; l++)
            q[l * len + t] = (int8_t)v[l];
    }
}

/*
 * Rows [0, W) of len <= SIMD_ROWS_MAX elements at w. wt holds len vectors.
 * -1 (nothing written but perhaps codes) if a weight is NaN or infinite,
 * else the rows to redo one at a time (see simd_rows_block).
 */
static int simd_rows_block(const struct sqi_ctx *ctx, size_t len, const float *w, const float *next,
                           int8_t *q, float *scale, float *zp, vf *wt, vf *et, uint64_t *flips)
{
    vi stride = vi_mul_small(vi_lanes(), (int)len);
    size_t t0 = 0;
#ifdef SIMD_HAVE_LOAD_ROWS
    for (; t0 + W <= len; t0 += W)
        load_rows(w + t0, len, wt + t0);
#endif
    for (size_t t = t0; t < len; t++)
        wt[t] = vf_gather(w + t, stride, W);
    vf zero = vf_zero(), lo = wt[0], hi = lo, bad = zero;
    for (size_t t = 0; t < len; t++) {
        vf v = wt[t];
        lo = vf_min(lo, v);
        hi = vf_max(hi, v);
        bad = vf_add(bad, vf_sub(v, v));
    }
    if ((vm_bits(vm_eq(bad, bad)) & rows_lanes(W)) != rows_lanes(W))
        return -1;
    vf vs, vz;
    simd_rows_params(ctx, lo, hi, &vs, &vz);
    vf_storeu(scale, vs);
    vf_storeu(zp, vz);

    if (!ctx->channel_stage) {
        simd_rows_rtn(ctx, len, w, next, q, scale, zp);
        return 0;
    }

    /*
     * Errors, the row sums and each row's direction and flip count. The
     * block after next (W * len floats, contiguous) goes into the cache
     * during this loop and the code loop, W floats per element: a block is
     * read W rows at a time, which the hardware prefetcher follows late, and
     * a burst of prefetches would stall on the line fill buffers.
     */
    size_t half = len / 2;
    for (size_t t = 0; t < len; t++) {
        if (next && t < half)
            __builtin_prefetch(next + t * W);
        vf x = vf_sub(vf_mul(vs, wt[t]), vz), r = vf_round(x);
        wt[t] = r; /* from here on x is needed only through its rounding */
        et[t] = vf_sub(r, x);
    }
    vf s = simd_rows_rowsum(et, len);
    vm up = vm_lt(s, zero);
    vf kf = vf_min(vf_round(vf_abs(s)), vf_set1((float)len));
    vi k = vi_from_vf(kf);
    int32_t ks[W];
    vf_storeu((float *)ks, (vf)k); /* raw lanes */
    int32_t kmax = 0;
    for (int l = 0; l < W; l++)
        kmax = ks[l] > kmax ? ks[l] : kmax;
    if (kmax == 0) {
        simd_rows_rtn(ctx, len, w, next, q, scale, zp);
        return 0;
    }

    /*
     * Priorities in each row's direction (as in simd_kernel_block):
     * candidates only, else 0. Where the error has the direction's sign, x
     * < t_max (up) is r < t_max and x > t_min (down) is r > t_min: rounding
     * is monotonic and the bounds are integers.
     */
    vf flip_e = vf_blend(up, zero, vf_set1(-0.0f)), flip_r = vf_blend(up, vf_set1(-0.0f), zero);
    vf bound = vf_blend(up, vf_neg(vf_set1(ctx->t_min)), vf_set1(ctx->t_max));
    for (size_t t = 0; t < len; t++) {
        vf pr = vf_xor(et[t], flip_e);
        et[t] = vf_blend(vm_lt_m(vm_gt(pr, zero), vf_xor(wt[t], flip_r), bound), zero, pr);
    }
    /*
     * Per lane a threshold tau with exactly k priorities at or above it if
     * there is one (0 if there are fewer than k positive ones; +inf where
     * k = 0): for k of 3 or more the 4 largest by rows_top4, then a pass of
     * a vector max per further flip for the largest priority below the
     * previous one, nothing else (distinct values below the 4th, so tau can
     * only come out lower where priorities tie). The flips are then the
     * candidates with priority >= tau, taken while the codes are written;
     * that is the stable order's first k unless priorities tie, which the
     * code pass detects (a count other than k) and leaves to the exact path.
     */
    vf tau = vf_set1(INFINITY), below = tau;
    int32_t pass = 1;
    if (kmax >= 3) {
        vf b[4];
        rows_top4(et, len, b);
        for (int32_t j = 0; j < 4 && j < kmax; j++)
            tau = vf_blend(vm_ieq(k, vi_set1(j + 1)), tau, b[j]);
        below = b[3];
        pass = 5;
    }
    for (; pass <= kmax; pass++) {
        vf b[4] = {zero, zero, zero, zero};
        size_t t = 0;
        for (; t + 4 <= len; t += 4) {
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) b[j] =
                vf_max(b[j], vf_blend(vm_lt(et[t + j], below), zero, et[t + j]));
        }
        for (; t < len; t++)
            b[0] = vf_max(b[0], vf_blend(vm_lt(et[t], below), zero, et[t]));
        below = vf_max(vf_max(b[0], b[1]), vf_max(b[2], b[3]));
        tau = vf_blend(vm_ieq(k, vi_set1(pass)), tau, below);
    }
    /* The codes, W rows at a time: the candidates at or above tau flipped. */
    vf t_lo = vf_set1(ctx->t_min), t_hi = vf_set1(ctx->t_max);
    vf step = vf_blend(up, vf_set1(-1.0f), vf_set1(1.0f)); /* up: +1 */
    vi taken = vi_set1(0), changed = vi_set1(0);
    for (size_t t = 0; t < len; t++) {
        if (next && t >= half)
            __builtin_prefetch(next + t * W);
        vf rd = wt[t], p = et[t];
        vm take = vm_and(vm_gt(p, zero), vm_ge(p, tau));
        vf c0 = vf_min(vf_max(rd, t_lo), t_hi);
        vf c = vf_min(vf_max(vf_add(rd, vf_blend(take, zero, step)), t_lo), t_hi);
        taken = vi_inc(taken, take);
        changed = vi_inc(changed, vm_andnot(take, vm_eq(c, c0)));
        wt[t] = c;
    }
    simd_rows_store(q, len, wt);
    /* More than k at or above tau: a tie there, the row is redone. Fewer than k only where fewer
     * than k are positive, which the stable order takes in full too. */
    vm tie = vm_or(vm_ilt(k, taken), vm_andnot(vm_ilt(taken, k), vm_eq(tau, zero)));
    *flips += (uint64_t)vi_hsum(vi_blend(tie, changed, vi_set1(0)));
    return (int)(vm_bits(tie) & rows_lanes(W));
}

#endif

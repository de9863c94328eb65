/*
 * AVX-512 (F, BW, VL, DQ) instantiation of simd.h: 16 lanes, mask registers.
 * Compiled with those ISA flags; only called after sqi_cpu_has_avx512().
 */
#include <immintrin.h>

#include "core.h"

#define W 16
#define SIMD_NAME sqi_quantize_avx512
#define SIMD_ROWSUM_NAME sqi_rowsum_avx512
typedef __m512 vf;
typedef __m512i vi;
typedef __mmask16 vm;

static inline vm vm_first(size_t n)
{
    return (vm)(n >= 16 ? 0xffff : (1u << n) - 1u);
}
static inline vf vf_loadu(const float *p)
{
    return _mm512_loadu_ps(p);
}
static inline vf vf_load_n(const float *p, size_t n)
{
    return _mm512_maskz_loadu_ps(vm_first(n), p);
}
static inline void vf_storeu(float *p, vf v)
{
    _mm512_storeu_ps(p, v);
}
static inline void vf_store_n(float *p, vf v, size_t n)
{
    _mm512_mask_storeu_ps(p, vm_first(n), v);
}
static inline vf vf_set1(float x)
{
    return _mm512_set1_ps(x);
}
static inline vf vf_zero(void)
{
    return _mm512_setzero_ps();
}
static inline vf vf_add(vf a, vf b)
{
    return _mm512_add_ps(a, b);
}
static inline vf vf_sub(vf a, vf b)
{
    return _mm512_sub_ps(a, b);
}
static inline vf vf_mul(vf a, vf b)
{
    return _mm512_mul_ps(a, b);
}
static inline vf vf_div(vf a, vf b)
{
    return _mm512_div_ps(a, b);
}
static inline vf vf_min(vf a, vf b)
{
    return _mm512_min_ps(a, b);
}
static inline vf vf_max(vf a, vf b)
{
    return _mm512_max_ps(a, b);
}
static inline vf vf_abs(vf a)
{
    return _mm512_abs_ps(a);
}
static inline vf vf_neg(vf a)
{
    return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f));
}
static inline vf vf_xor(vf a, vf b)
{
    return _mm512_xor_ps(a, b);
}
static inline vf vf_round(vf a)
{
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline vf vf_blend(vm m, vf a, vf b)
{
    return _mm512_mask_blend_ps(m, a, b);
}
static inline vf vf_gather(const float *base, vi idx, size_t n)
{
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), vm_first(n), idx, base, 4);
}
static inline vm vm_lt(vf a, vf b)
{
    return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ);
}
static inline vm vm_gt(vf a, vf b)
{
    return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ);
}
static inline vm vm_ge(vf a, vf b)
{
    return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ);
}
static inline vm vm_eq(vf a, vf b)
{
    return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ);
}
static inline vm vm_and(vm a, vm b)
{
    return (vm)(a & b);
}
static inline vm vm_gt_m(vm m, vf a, vf b)
{
    return _mm512_mask_cmp_ps_mask(m, a, b, _CMP_GT_OQ);
}
static inline vm vm_lt_m(vm m, vf a, vf b)
{
    return _mm512_mask_cmp_ps_mask(m, a, b, _CMP_LT_OQ);
}
static inline vm vm_ilt_m(vm m, vi a, vi b)
{
    return _mm512_mask_cmplt_epi32_mask(m, a, b);
}
static inline vm vm_ieq_m(vm m, vi a, vi b)
{
    return _mm512_mask_cmpeq_epi32_mask(m, a, b);
}
static inline vm vm_or(vm a, vm b)
{
    return (vm)(a | b);
}
static inline vm vm_andnot(vm a, vm b)
{
    return (vm)(a & ~b);
}
static inline vm vm_xor(vm a, vm b)
{
    return (vm)(a ^ b);
}
static inline unsigned vm_bits(vm m)
{
    return m;
}
static inline vi vi_set1(int x)
{
    return _mm512_set1_epi32(x);
}
static inline vi vi_lanes(void)
{
    return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
static inline vi vi_add(vi a, vi b)
{
    return _mm512_add_epi32(a, b);
}
static inline vi vi_mul_small(vi a, int k)
{
    return _mm512_mullo_epi32(a, _mm512_set1_epi32(k));
}
static inline vi vi_inc(vi acc, vm m)
{
    return _mm512_mask_add_epi32(acc, m, acc, _mm512_set1_epi32(1));
}
static inline vi vi_blend(vm m, vi a, vi b)
{
    return _mm512_mask_blend_epi32(m, a, b);
}
static inline vm vm_ilt(vi a, vi b)
{
    return _mm512_cmplt_epi32_mask(a, b);
}
static inline vm vm_ieq(vi a, vi b)
{
    return _mm512_cmpeq_epi32_mask(a, b);
}
static inline vi vi_from_vf(vf a)
{
    return _mm512_cvttps_epi32(a);
}
static inline vi vi_load(const int32_t *p)
{
    return _mm512_loadu_si512(p);
}
static inline int vi_hsum(vi v)
{
    return _mm512_reduce_add_epi32(v);
}
static inline int vf_compress(float *dst, vm m, vf v)
{
    _mm512_storeu_ps(dst, _mm512_maskz_compress_ps(m, v));
    return __builtin_popcount(m);
}
static inline int vi_compress(int32_t *dst, vm m, vi v)
{
    _mm512_storeu_si512(dst, _mm512_maskz_compress_epi32(m, v));
    return __builtin_popcount(m);
}
/* The largest of keys[0..n) (n a multiple of 8) below bound, or 0. */
static inline uint64_t keys_max_below(const uint64_t *keys, size_t n, uint64_t bound)
{
    __m512i b = _mm512_set1_epi64((long long)bound), best = _mm512_setzero_si512();
    for (size_t i = 0; i < n; i += 8) {
        __m512i v = _mm512_loadu_si512(keys + i);
        best = _mm512_mask_max_epu64(best, _mm512_cmplt_epu64_mask(v, b), best, v);
    }
    return (uint64_t)_mm512_reduce_max_epu64(best);
}
/* Rank keys of 16 (position, priority) pairs: (priority bits << 32 | ~position), any order. */
static inline void make_keys(uint64_t *keys, vi pos, vf val)
{
    __m512i np = _mm512_xor_si512(pos, _mm512_set1_epi32(-1)), v = _mm512_castps_si512(val);
    _mm512_storeu_si512(keys, _mm512_unpacklo_epi32(np, v));
    _mm512_storeu_si512(keys + 8, _mm512_unpackhi_epi32(np, v));
}

/*
 * Transpose 16 consecutive kernels of K <= 16 floats (16 * K contiguous floats
 * at base) so that out[t] holds element t of each kernel, one kernel per
 * lane: K loads and, per element, one two-register permute per pair of
 * loaded registers it draws from, merged under constant masks. With K a
 * compile-time constant every index and mask folds to a constant.
 */
#define SIMD_HAVE_LOAD_KERNELS 1
static inline __attribute__((always_inline)) void load_kernels(const float *base, const size_t K,
                                                               vf *out)
{
    vf z[17];
    _Pragma("GCC unroll 16") for (size_t j = 0; j < K; j++) z[j] = _mm512_loadu_ps(base + 16 * j);
    z[K] = z[K - 1];
    __m512i lanes_k =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32((int)K));
    _Pragma("GCC unroll 16") for (size_t t = 0; t < K; t++)
    {
        vf acc = _mm512_setzero_ps();
        _Pragma("GCC unroll 8") for (size_t j = 0; 32 * j < 16 * K; j++)
        {
            /* lanes i whose element K*i + t lies in registers 2j, 2j+1 */
            long lo = (long)(32 * j) - (long)t, hi = lo + 31;
            long imin = lo <= 0 ? 0 : (lo + (long)K - 1) / (long)K;
            long imax = hi < 0 ? -1 : hi / (long)K;
            if (imax > 15)
                imax = 15;
            if (imin > imax)
                continue;
            __mmask16 m = (__mmask16)(((1u << (imax + 1)) - 1u) & ~((1u << imin) - 1u));
            __m512i idx = _mm512_add_epi32(lanes_k, _mm512_set1_epi32((int)t - (int)(32 * j)));
            vf p = _mm512_permutex2var_ps(z[2 * j], idx, z[2 * j + 1]);
            acc = _mm512_mask_mov_ps(acc, m, p);
        }
        out[t] = acc;
    }
}

/*
 * A 16x16 block of rows: out[t] = element t of rows 0..15 (row i at base +
 * i * stride), by 16 loads and the usual four shuffle stages (4x4 within
 * 128-bit lanes, then the 128-bit lanes); no gather.
 */
#define SIMD_HAVE_LOAD_ROWS 1
static inline __attribute__((always_inline)) void load_rows(const float *base, size_t stride,
                                                            vf *out)
{
    vf r[16], t[16], u[16];
    _Pragma("GCC unroll 16") for (size_t i = 0; i < 16; i++) r[i] =
        _mm512_loadu_ps(base + stride * i);
    _Pragma("GCC unroll 8") for (size_t i = 0; i < 16; i += 2)
    {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* u[4g + m], 128-bit lane j: rows 4g..4g+3 of column 4j + m */
    _Pragma("GCC unroll 4") for (size_t g = 0; g < 16; g += 4)
    {
        u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xee);
        u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xee);
    }
    _Pragma("GCC unroll 4") for (size_t m = 0; m < 4; m++)
    {
        vf x0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88),
           x1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xdd);
        vf y0 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88),
           y1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xdd);
        out[m] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        out[4 + m] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        out[8 + m] = _mm512_shuffle_f32x4(x0, y0, 0xdd);
        out[12 + m] = _mm512_shuffle_f32x4(x1, y1, 0xdd);
    }
}

/*
 * The inverse for codes: c[t] (element t of 16 rows, clamped floats) to
 * 16 bytes of each row (row i at q + i * stride): each c[t] to 16 bytes,
 * then a 16x16 byte transpose by four unpack stages.
 */
#define SIMD_HAVE_STORE_ROWS 1
static inline __attribute__((always_inline)) void store_rows_codes(int8_t *q, size_t stride,
                                                                   const vf *c)
{
    __m128i a[16], l1[8], h1[8], s2[4][4], s3[8][2];
    _Pragma("GCC unroll 16") for (size_t t = 0; t < 16; t++) a[t] =
        _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(c[t]));
    /* a[t], byte i: row i, element t. l1[t] (h1[t]), 16-bit unit i: row i (8 + i), elements 2t,
     * 2t + 1 */
    _Pragma("GCC unroll 8") for (size_t t = 0; t < 8; t++)
    {
        l1[t] = _mm_unpacklo_epi8(a[2 * t], a[2 * t + 1]);
        h1[t] = _mm_unpackhi_epi8(a[2 * t], a[2 * t + 1]);
    }
    /* s2[g][t], 32-bit unit i: row 4g + i, elements 4t .. 4t + 3 */
    _Pragma("GCC unroll 4") for (size_t t = 0; t < 4; t++)
    {
        s2[0][t] = _mm_unpacklo_epi16(l1[2 * t], l1[2 * t + 1]);
        s2[1][t] = _mm_unpackhi_epi16(l1[2 * t], l1[2 * t + 1]);
        s2[2][t] = _mm_unpacklo_epi16(h1[2 * t], h1[2 * t + 1]);
        s2[3][t] = _mm_unpackhi_epi16(h1[2 * t], h1[2 * t + 1]);
    }
    /* s3[p][t], 64-bit unit i: row 2p + i, elements 8t .. 8t + 7 */
    _Pragma("GCC unroll 4") for (size_t g = 0; g < 4; g++)
        _Pragma("GCC unroll 2") for (size_t t = 0; t < 2; t++)
    {
        s3[2 * g][t] = _mm_unpacklo_epi32(s2[g][2 * t], s2[g][2 * t + 1]);
        s3[2 * g + 1][t] = _mm_unpackhi_epi32(s2[g][2 * t], s2[g][2 * t + 1]);
    }
    _Pragma("GCC unroll 8") for (size_t p = 0; p < 8; p++)
    {
        _mm_storeu_si128((__m128i *)(q + 2 * p * stride), _mm_unpacklo_epi64(s3[p][0], s3[p][1]));
        _mm_storeu_si128((__m128i *)(q + (2 * p + 1) * stride),
                         _mm_unpackhi_epi64(s3[p][0], s3[p][1]));
    }
}

/* n codes from floats already clamped to [t_min, t_max]. */
static inline void store_codes(int8_t *q, vf v, size_t n)
{
    __m128i b = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v));
    _mm_mask_storeu_epi8(q, (__mmask16)vm_first(n), b);
}

#include "simd.h"

/* Per-channel state of the report: element i of a channel adds into lane i % 8. */
struct rep512 {
    __m512d acc, rtn_acc;    /* sums of squares */
    __m512d mx, rtn_mx, cmx; /* max |d| of blocks with flips (q, RTN), without (both) */
    __m512d chan, rtn_chan;  /* k1: the channel's residual lanes */
    __m512d kmx, rtn_kmx;    /* k1: max |q - x|, |rq - x| computed in double */
    vf kmx_f, rtn_kmx_f;     /* k1: max |rq - x| from exact floats, q's where it did not flip */
    uint64_t flips;
};

/* The channel's constants. */
struct rep512_k {
    vf s, zp, lo, hi, step_f, z_f;
    __m512d step, z;
    bool float_deq;
};

/* Lanes 8h .. 8h + 7 of v in double. */
static inline __m512d half_pd(vf v, int h)
{
    return _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v));
}

/*
 * Sixteen elements (valid: the lanes that count; full: all of them, known
 * at compile time): floats for the codes, doubles (two halves of eight
 * lanes) for the errors.
 */
static inline __attribute__((always_inline)) void
rep512_block(const struct rep512_k *k, const float *wp, const int8_t *qp, __mmask16 valid,
             bool full, bool k1, struct rep512 *st, double *res, double *rtn_res)
{
    vf wf = full ? _mm512_loadu_ps(wp) : _mm512_maskz_loadu_ps(valid, wp);
    __m128i qb = full ? _mm_loadu_si128((const __m128i *)qp) : _mm_maskz_loadu_epi8(valid, qp);
    vf qf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(qb));
    vf x = vf_sub(vf_mul(k->s, wf), k->zp);
    vf r0 = vf_round(x), rq = vf_min(vf_max(r0, k->lo), k->hi);
    __mmask16 ne = _mm512_mask_cmp_ps_mask(valid, qf, rq, _CMP_NEQ_OQ);
    __mmask16 clamped = _mm512_mask_cmp_ps_mask(valid, r0, rq, _CMP_NEQ_OQ);
    st->flips += (uint64_t)__builtin_popcount(ne);
    __mmask8 hv[2] = {(__mmask8)valid, (__mmask8)(valid >> 8)};
#define ADD(a, b, h) (full ? _mm512_add_pd(a, b) : _mm512_mask_add_pd(a, hv[h], a, b))
#define MAX(a, b, h) (full ? _mm512_max_pd(a, b) : _mm512_mask_max_pd(a, hv[h], a, b))
#define STORE(p, v, h) (full ? _mm512_storeu_pd(p, v) : _mm512_mask_storeu_pd(p, hv[h], v))
    if (__builtin_expect(k->float_deq && !clamped, 1)) {
        /*
         * r = roundeven(x) unclamped: rq - x is exact in float (SQUANT-SPEC
         * section 3), so converting it gives the double rq - x; with a flip,
         * q - x = (q - rq) + (rq - x) as reals, both exact floats, so their
         * double sum is the definition's (double)q - (double)x rounded once.
         */
        vf drf = vf_mul(vf_sub(rq, k->z_f), k->step_f), ef = vf_sub(rq, x);
        __m512d wd[2], rd[2], rr[2];
        for (int h = 0; h < 2; h++) {
            wd[h] = half_pd(wf, h);
            rd[h] = _mm512_sub_pd(half_pd(drf, h), wd[h]);
            rr[h] = half_pd(ef, h);
        }
        vf ea = vf_abs(ef);
        if (!ne) {
            /* no flip: q = rq, so d = rd and q - x = rq - x: once, for both */
            for (int h = 0; h < 2; h++) {
                __m512d sq = _mm512_mul_pd(rd[h], rd[h]);
                st->acc = ADD(st->acc, sq, h);
                st->rtn_acc = ADD(st->rtn_acc, sq, h);
                st->cmx = MAX(st->cmx, _mm512_abs_pd(rd[h]), h);
                if (k1) {
                    st->chan = ADD(st->chan, rr[h], h);
                    st->rtn_chan = ADD(st->rtn_chan, rr[h], h);
                } else {
                    STORE(res + 8 * h, rr[h], h);
                    STORE(rtn_res + 8 * h, rr[h], h);
                }
            }
            if (k1) {
                st->kmx_f = _mm512_mask_max_ps(st->kmx_f, valid, st->kmx_f, ea);
                st->rtn_kmx_f = _mm512_mask_max_ps(st->rtn_kmx_f, valid, st->rtn_kmx_f, ea);
            }
            return;
        }
        vf dqf = vf_mul(vf_sub(qf, k->z_f), k->step_f), delta = vf_sub(qf, rq);
        for (int h = 0; h < 2; h++) {
            __m512d d = _mm512_sub_pd(half_pd(dqf, h), wd[h]);
            __m512d r = _mm512_add_pd(half_pd(delta, h), rr[h]);
            st->acc = ADD(st->acc, _mm512_mul_pd(d, d), h);
            st->rtn_acc = ADD(st->rtn_acc, _mm512_mul_pd(rd[h], rd[h]), h);
            st->mx = MAX(st->mx, _mm512_abs_pd(d), h);
            st->rtn_mx = MAX(st->rtn_mx, _mm512_abs_pd(rd[h]), h);
            if (k1) {
                st->chan = ADD(st->chan, r, h);
                st->rtn_chan = ADD(st->rtn_chan, rr[h], h);
                st->kmx = MAX(st->kmx, _mm512_abs_pd(r), h);
            } else {
                STORE(res + 8 * h, r, h);
                STORE(rtn_res + 8 * h, rr[h], h);
            }
        }
        if (k1) {
            st->kmx_f = _mm512_mask_max_ps(st->kmx_f, valid & (__mmask16)~ne, st->kmx_f, ea);
            st->rtn_kmx_f = _mm512_mask_max_ps(st->rtn_kmx_f, valid, st->rtn_kmx_f, ea);
        }
        return;
    }
    /* The definition's operations in double: clamped codes, or a zero point beyond 2^23. */
    vf dqf = vf_mul(vf_sub(qf, k->z_f), k->step_f), drf = vf_mul(vf_sub(rq, k->z_f), k->step_f);
    for (int h = 0; h < 2; h++) {
        __m512d wd = half_pd(wf, h), xd = half_pd(x, h), qd = half_pd(qf, h), rqd = half_pd(rq, h);
        __m512d dq, dr;
        if (k->float_deq) {
            /*
             * While |zero point| < 2^23, q - zero_point is an exact float and a
             * float product of two floats is their exact product rounded once:
             * the same bits as sqi_dequant's double arithmetic.
             */
            dq = half_pd(dqf, h);
            dr = half_pd(drf, h);
        } else {
            dq = _mm512_cvtps_pd(_mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(qd, k->z), k->step)));
            dr = _mm512_cvtps_pd(_mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(rqd, k->z), k->step)));
        }
        __m512d d = _mm512_sub_pd(dq, wd), rd = _mm512_sub_pd(dr, wd);
        st->acc = _mm512_mask_add_pd(st->acc, hv[h], st->acc, _mm512_mul_pd(d, d));
        st->rtn_acc = _mm512_mask_add_pd(st->rtn_acc, hv[h], st->rtn_acc, _mm512_mul_pd(rd, rd));
        st->mx = _mm512_mask_max_pd(st->mx, hv[h], st->mx, _mm512_abs_pd(d));
        st->rtn_mx = _mm512_mask_max_pd(st->rtn_mx, hv[h], st->rtn_mx, _mm512_abs_pd(rd));
        __m512d r = _mm512_sub_pd(qd, xd), rr = _mm512_sub_pd(rqd, xd);
        if (k1) {
            st->chan = _mm512_mask_add_pd(st->chan, hv[h], st->chan, r);
            st->rtn_chan = _mm512_mask_add_pd(st->rtn_chan, hv[h], st->rtn_chan, rr);
            st->kmx = _mm512_mask_max_pd(st->kmx, hv[h], st->kmx, _mm512_abs_pd(r));
            st->rtn_kmx = _mm512_mask_max_pd(st->rtn_kmx, hv[h], st->rtn_kmx, _mm512_abs_pd(rr));
        } else {
            _mm512_mask_storeu_pd(res + 8 * h, hv[h], r);
            _mm512_mask_storeu_pd(rtn_res + 8 * h, hv[h], rr);
        }
    }
#undef ADD
#undef MAX
#undef STORE
}

/* One channel; k1: kernels of one element, whose residuals need no second pass. */
static inline __attribute__((always_inline)) void
rep512_channel(const struct rep512_k *k, const float *cw, const int8_t *cq, size_t len, bool k1,
               struct rep512 *st, double *res, double *rtn_res)
{
    size_t i = 0;
    for (; i + 16 <= len; i += 16)
        rep512_block(k, cw + i, cq + i, 0xffff, true, k1, st, res + i, rtn_res + i);
    if (i < len)
        rep512_block(k, cw + i, cq + i, (__mmask16)vm_first(len - i), false, k1, st, res + i,
                     rtn_res + i);
}

/*
 * sqi_report_residuals with eight kernels in the lanes of a register: lane
 * l sums kernel j + l in its own order (t = 0, 1, ...) from a gather of
 * stride ks, and adds it into channel lane (j + l) % 8 = l: the same
 * operations in the same order. The last nk % 8 kernels are scalar.
 */
static void residuals512(const struct sqi_ctx *ctx, const double *res, const double *rtn_res,
                         struct sq_report *rep)
{
    size_t ks = ctx->ksize, nk = ctx->kernels, j = 0;
    if (ks > ((size_t)1 << 24)) { /* gather offsets are 32-bit */
        sqi_report_residuals(ctx, res, rtn_res, rep);
        return;
    }
    __m256i idx =
        _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)ks));
    __m512d chan = _mm512_setzero_pd(), rtn_chan = chan, kmx = chan, rtn_kmx = chan;
    for (; j + 8 <= nk; j += 8) {
        __m512d k = _mm512_setzero_pd(), rk = k;
        const double *b = res + j * ks, *rb = rtn_res + j * ks;
        for (size_t t = 0; t < ks; t++) {
            k = _mm512_add_pd(k, _mm512_i32gather_pd(idx, b + t, 8));
            rk = _mm512_add_pd(rk, _mm512_i32gather_pd(idx, rb + t, 8));
        }
        kmx = _mm512_max_pd(kmx, _mm512_abs_pd(k));
        rtn_kmx = _mm512_max_pd(rtn_kmx, _mm512_abs_pd(rk));
        chan = _mm512_add_pd(chan, k);
        rtn_chan = _mm512_add_pd(rtn_chan, rk);
    }
    double c[8], rc[8], km = _mm512_reduce_max_pd(kmx), rkm = _mm512_reduce_max_pd(rtn_kmx);
    _mm512_storeu_pd(c, chan);
    _mm512_storeu_pd(rc, rtn_chan);
    for (; j < nk; j++) {
        double k = 0.0, rk = 0.0;
        for (size_t t = 0; t < ks; t++) {
            k += res[j * ks + t];
            rk += rtn_res[j * ks + t];
        }
        km = fabs(k) > km ? fabs(k) : km;
        rkm = fabs(rk) > rkm ? fabs(rk) : rkm;
        c[j & 7] += k;
        rc[j & 7] += rk;
    }
    double s = fabs(sqi_fold8(c)), rs = fabs(sqi_fold8(rc));
    rep->max_kernel_residual = km > rep->max_kernel_residual ? km : rep->max_kernel_residual;
    rep->rtn_max_kernel_residual =
        rkm > rep->rtn_max_kernel_residual ? rkm : rep->rtn_max_kernel_residual;
    rep->max_channel_residual = s > rep->max_channel_residual ? s : rep->max_channel_residual;
    rep->rtn_max_channel_residual =
        rs > rep->rtn_max_channel_residual ? rs : rep->rtn_max_channel_residual;
}

/*
 * sqi_fold8 of four vectors at once: lane j of the result is the fold of
 * the j-th (a, b, c, d), in lane order, as ((v0 + v1) + v2) + ... + v7:
 * the vectors are transposed so that each step is one 4-lane addition.
 */
static inline __m256d fold8x4(__m512d a, __m512d b, __m512d c, __m512d d)
{
    __m512d ab0 = _mm512_unpacklo_pd(a, b), ab1 = _mm512_unpackhi_pd(a, b); /* a0 b0 a2 b2 ... */
    __m512d cd0 = _mm512_unpacklo_pd(c, d), cd1 = _mm512_unpackhi_pd(c, d);
    /* e: lanes 2t, 2t + 2 (128-bit parts: ab of 2t, cd of 2t, ab of 2t + 2, cd of 2t + 2) */
    __m512d e0 = _mm512_shuffle_f64x2(ab0, cd0, 0x44), e1 = _mm512_shuffle_f64x2(ab0, cd0, 0xee);
    __m512d o0 = _mm512_shuffle_f64x2(ab1, cd1, 0x44), o1 = _mm512_shuffle_f64x2(ab1, cd1, 0xee);
    e0 = _mm512_shuffle_f64x2(e0, e0, 0xd8); /* lanes 0 | 2 */
    e1 = _mm512_shuffle_f64x2(e1, e1, 0xd8); /* lanes 4 | 6 */
    o0 = _mm512_shuffle_f64x2(o0, o0, 0xd8); /* lanes 1 | 3 */
    o1 = _mm512_shuffle_f64x2(o1, o1, 0xd8); /* lanes 5 | 7 */
    __m256d f = _mm256_add_pd(_mm512_castpd512_pd256(e0), _mm512_castpd512_pd256(o0));
    f = _mm256_add_pd(f, _mm512_extractf64x4_pd(e0, 1));
    f = _mm256_add_pd(f, _mm512_extractf64x4_pd(o0, 1));
    f = _mm256_add_pd(f, _mm512_castpd512_pd256(e1));
    f = _mm256_add_pd(f, _mm512_castpd512_pd256(o1));
    f = _mm256_add_pd(f, _mm512_extractf64x4_pd(e1, 1));
    return _mm256_add_pd(f, _mm512_extractf64x4_pd(o1, 1));
}

/*
 * The report (report.c), sixteen weights at a time, with the same bits.
 * Maxima and flips need no order: they stay in the lanes across channels
 * and are reduced once; a channel's sums are folded four at a time.
 */
void sqi_report_avx512(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                       const float *scale, const float *zp, double *tmp, struct sq_report *rep)
{
    size_t len = ctx->len;
    double *res = tmp, *rtn_res = tmp + len;
    bool k1 = ctx->ksize == 1;
    __m512d zd = _mm512_setzero_pd();
    struct rep512 st = {zd, zd, zd, zd, zd, zd, zd, zd, zd, vf_zero(), vf_zero(), 0};
    __m256d cres = _mm256_setzero_pd(); /* lanes 2, 3: max |channel residual| (k1) */
    for (size_t c = 0; c < n; c++) {
        const float *cw = w + c * len;
        const int8_t *cq = q + c * len;
        float step_f = sqi_public_step(scale[c]), z_f = sqi_public_zero_point(zp[c]);
        struct rep512_k k = {
            vf_set1(scale[c]),      vf_set1(zp[c]),      vf_set1(ctx->t_min),
            vf_set1(ctx->t_max),    vf_set1(step_f),     vf_set1(z_f),
            _mm512_set1_pd(step_f), _mm512_set1_pd(z_f), fabsf(z_f) < 0x1p23f,
        };
        st.acc = st.rtn_acc = st.chan = st.rtn_chan = zd;
        if (k1)
            rep512_channel(&k, cw, cq, len, true, &st, res, rtn_res);
        else
            rep512_channel(&k, cw, cq, len, false, &st, res, rtn_res);
        double f[4];
        _mm256_storeu_pd(f, fold8x4(st.acc, st.rtn_acc, st.chan, st.rtn_chan));
        rep->sse += f[0];
        rep->rtn_sse += f[1];
        if (k1)
            cres = _mm256_max_pd(cres, _mm256_andnot_pd(_mm256_set1_pd(-0.0), _mm256_loadu_pd(f)));
        else
            residuals512(ctx, res, rtn_res, rep);
    }
    double m = _mm512_reduce_max_pd(_mm512_max_pd(st.mx, st.cmx)),
           rm = _mm512_reduce_max_pd(_mm512_max_pd(st.rtn_mx, st.cmx));
    rep->max_abs = m > rep->max_abs ? m : rep->max_abs;
    rep->rtn_max_abs = rm > rep->rtn_max_abs ? rm : rep->rtn_max_abs;
    rep->flips += st.flips;
    if (k1) {
        /* the float maxima convert exactly: the max of their doubles */
        double kd = _mm512_reduce_max_pd(st.kmx), kf = (double)_mm512_reduce_max_ps(st.kmx_f);
        double rkd = _mm512_reduce_max_pd(st.rtn_kmx),
               rkf = (double)_mm512_reduce_max_ps(st.rtn_kmx_f);
        double km = kf > kd ? kf : kd, rkm = rkf > rkd ? rkf : rkd, cr[4];
        rep->max_kernel_residual = km > rep->max_kernel_residual ? km : rep->max_kernel_residual;
        rep->rtn_max_kernel_residual =
            rkm > rep->rtn_max_kernel_residual ? rkm : rep->rtn_max_kernel_residual;
        _mm256_storeu_pd(cr, cres);
        rep->max_channel_residual =
            cr[2] > rep->max_channel_residual ? cr[2] : rep->max_channel_residual;
        rep->rtn_max_channel_residual =
            cr[3] > rep->rtn_max_channel_residual ? cr[3] : rep->rtn_max_channel_residual;
    }
    rep->weights += (uint64_t)n * len;
}

bool sqi_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

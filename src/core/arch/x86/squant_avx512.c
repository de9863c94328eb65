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

/* n codes from floats already clamped to [t_min, t_max]. */
static inline void store_codes(int8_t *q, vf v, size_t n)
{
    __m128i b = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v));
    _mm_mask_storeu_epi8(q, (__mmask16)vm_first(n), b);
}

#include "simd.h"

/*
 * The report (report.c) sixteen weights at a time: floats for the codes,
 * doubles (two halves of eight lanes) for the errors. Element i of a channel
 * adds into lane i % 8, as the scalar report does, so the bits agree.
 */
void sqi_report_avx512(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                       const float *scale, const float *zp, double *tmp, struct sq_report *rep)
{
    size_t len = ctx->len;
    double *res = tmp, *rtn_res = tmp + len;
    vf lo = vf_set1(ctx->t_min), hi = vf_set1(ctx->t_max);
    for (size_t c = 0; c < n; c++) {
        const float *cw = w + c * len;
        const int8_t *cq = q + c * len;
        vf vs = vf_set1(scale[c]), vz = vf_set1(zp[c]);
        float step_f = sqi_public_step(scale[c]), z_f = sqi_public_zero_point(zp[c]);
        __m512d step = _mm512_set1_pd(step_f), z = _mm512_set1_pd(z_f);
        /*
         * While |zero point| < 2^23, q - zero_point is an exact float and a
         * float product of two floats is their exact product rounded once:
         * the same bits as sqi_dequant's double arithmetic, in 16 lanes.
         */
        bool float_deq = fabsf(z_f) < 0x1p23f;
        vf vstep = vf_set1(step_f), vzf = vf_set1(z_f);
        __m512d acc = _mm512_setzero_pd(), rtn_acc = acc, mx = acc, rtn_mx = acc;
        /* With one element per kernel, the residuals need no second pass. */
        bool k1 = ctx->ksize == 1;
        __m512d chan = acc, rtn_chan = acc, kmx = acc, rtn_kmx = acc;
        __m512d cmx = acc, ckmx = acc; /* maxima of flip-free chunks, for both sides */
        uint64_t flips = 0;
        for (size_t i = 0; i < len; i += 16) {
            size_t m = len - i < 16 ? len - i : 16;
            __mmask16 valid = vm_first(m);
            vf wf = _mm512_maskz_loadu_ps(valid, cw + i);
            vf x = vf_sub(vf_mul(vs, wf), vz);
            vf rq = vf_min(vf_max(vf_round(x), lo), hi);
            vf qf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(valid, cq + i)));
            __mmask16 ne = _mm512_mask_cmp_ps_mask(valid, qf, rq, _CMP_NEQ_OQ);
            flips += (uint64_t)__builtin_popcount(ne);
            if (!ne && float_deq) {
                /* No flip: q = rq, so d = rd and q - x = rq - x bit for bit: once, for both. */
                vf drf = vf_mul(vf_sub(rq, vzf), vstep);
                for (int h = 0; h < 2; h++) {
                    __mmask8 hv = (__mmask8)(valid >> (8 * h));
                    if (!hv)
                        break;
#define HALF(v) _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v))
                    __m512d wd = HALF(wf), xd = HALF(x), rqd = HALF(rq), dr = HALF(drf);
#undef HALF
                    __m512d rd = _mm512_sub_pd(dr, wd), sq = _mm512_mul_pd(rd, rd);
                    acc = _mm512_mask_add_pd(acc, hv, acc, sq);
                    rtn_acc = _mm512_mask_add_pd(rtn_acc, hv, rtn_acc, sq);
                    cmx = _mm512_mask_max_pd(cmx, hv, cmx, _mm512_abs_pd(rd));
                    __m512d rr = _mm512_sub_pd(rqd, xd);
                    if (k1) {
                        chan = _mm512_mask_add_pd(chan, hv, chan, rr);
                        rtn_chan = _mm512_mask_add_pd(rtn_chan, hv, rtn_chan, rr);
                        ckmx = _mm512_mask_max_pd(ckmx, hv, ckmx, _mm512_abs_pd(rr));
                    } else {
                        _mm512_mask_storeu_pd(res + i + 8 * h, hv, rr);
                        _mm512_mask_storeu_pd(rtn_res + i + 8 * h, hv, rr);
                    }
                }
                continue;
            }
            vf dqf = vf_mul(vf_sub(qf, vzf), vstep), drf = vf_mul(vf_sub(rq, vzf), vstep);
            for (int h = 0; h < 2; h++) {
                __mmask8 hv = (__mmask8)(valid >> (8 * h));
                if (!hv)
                    break;
#define HALF(v) _mm512_cvtps_pd(h ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v))
                __m512d wd = HALF(wf), xd = HALF(x), qd = HALF(qf), rqd = HALF(rq), dq, dr;
                if (float_deq) {
                    dq = HALF(dqf);
                    dr = HALF(drf);
                } else {
                    dq =
                        _mm512_cvtps_pd(_mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(qd, z), step)));
                    dr = _mm512_cvtps_pd(
                        _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(rqd, z), step)));
                }
#undef HALF
                __m512d d = _mm512_sub_pd(dq, wd), rd = _mm512_sub_pd(dr, wd);
                acc = _mm512_mask_add_pd(acc, hv, acc, _mm512_mul_pd(d, d));
                rtn_acc = _mm512_mask_add_pd(rtn_acc, hv, rtn_acc, _mm512_mul_pd(rd, rd));
                mx = _mm512_mask_max_pd(mx, hv, mx, _mm512_abs_pd(d));
                rtn_mx = _mm512_mask_max_pd(rtn_mx, hv, rtn_mx, _mm512_abs_pd(rd));
                __m512d r = _mm512_sub_pd(qd, xd), rr = _mm512_sub_pd(rqd, xd);
                if (k1) {
                    chan = _mm512_mask_add_pd(chan, hv, chan, r);
                    rtn_chan = _mm512_mask_add_pd(rtn_chan, hv, rtn_chan, rr);
                    kmx = _mm512_mask_max_pd(kmx, hv, kmx, _mm512_abs_pd(r));
                    rtn_kmx = _mm512_mask_max_pd(rtn_kmx, hv, rtn_kmx, _mm512_abs_pd(rr));
                } else {
                    _mm512_mask_storeu_pd(res + i + 8 * h, hv, r);
                    _mm512_mask_storeu_pd(rtn_res + i + 8 * h, hv, rr);
                }
            }
        }
        double lanes[8];
        _mm512_storeu_pd(lanes, acc);
        rep->sse += sqi_fold8(lanes);
        _mm512_storeu_pd(lanes, rtn_acc);
        rep->rtn_sse += sqi_fold8(lanes);
        double m = _mm512_reduce_max_pd(_mm512_max_pd(mx, cmx)),
               rm = _mm512_reduce_max_pd(_mm512_max_pd(rtn_mx, cmx));
        rep->max_abs = m > rep->max_abs ? m : rep->max_abs;
        rep->rtn_max_abs = rm > rep->rtn_max_abs ? rm : rep->rtn_max_abs;
        rep->flips += flips;
        if (!k1) {
            sqi_report_residuals(ctx, res, rtn_res, rep);
            continue;
        }
        double k = _mm512_reduce_max_pd(_mm512_max_pd(kmx, ckmx)),
               rk = _mm512_reduce_max_pd(_mm512_max_pd(rtn_kmx, ckmx));
        rep->max_kernel_residual = k > rep->max_kernel_residual ? k : rep->max_kernel_residual;
        rep->rtn_max_kernel_residual =
            rk > rep->rtn_max_kernel_residual ? rk : rep->rtn_max_kernel_residual;
        _mm512_storeu_pd(lanes, chan);
        double s = fabs(sqi_fold8(lanes));
        _mm512_storeu_pd(lanes, rtn_chan);
        double rs = fabs(sqi_fold8(lanes));
        rep->max_channel_residual = s > rep->max_channel_residual ? s : rep->max_channel_residual;
        rep->rtn_max_channel_residual =
            rs > rep->rtn_max_channel_residual ? rs : rep->rtn_max_channel_residual;
    }
    rep->weights += (uint64_t)n * len;
}

bool sqi_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

/*
 * AVX-512 (F, BW, VL, DQ) instantiation of simd.h: 16 lanes, mask registers.
 * Compiled with those ISA flags; only called after sqi_cpu_has_avx512().
 */
#include <immintrin.h>

#include "core.h"

#define W 16
#define SIMD_NAME sqi_quantize_avx512
typedef __m512 vf;
typedef __m512i vi;
typedef __mmask16 vm;

static inline vm vm_first(size_t n) { return (vm)(n >= 16 ? 0xffff : (1u << n) - 1u); }
static inline vf vf_loadu(const float *p) { return _mm512_loadu_ps(p); }
static inline vf vf_load_n(const float *p, size_t n) { return _mm512_maskz_loadu_ps(vm_first(n), p); }
static inline void vf_storeu(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline void vf_store_n(float *p, vf v, size_t n) { _mm512_mask_storeu_ps(p, vm_first(n), v); }
static inline vf vf_set1(float x) { return _mm512_set1_ps(x); }
static inline vf vf_zero(void) { return _mm512_setzero_ps(); }
static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vf_abs(vf a) { return _mm512_abs_ps(a); }
static inline vf vf_neg(vf a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
static inline vf vf_round(vf a)
{
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline vf vf_blend(vm m, vf a, vf b) { return _mm512_mask_blend_ps(m, a, b); }
static inline vf vf_gather(const float *base, vi idx, size_t n)
{
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), vm_first(n), idx, base, 4);
}
static inline vm vm_lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline vm vm_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
static inline vm vm_ge(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
static inline vm vm_eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
static inline vm vm_and(vm a, vm b) { return (vm)(a & b); }
static inline vm vm_or(vm a, vm b) { return (vm)(a | b); }
static inline vm vm_andnot(vm a, vm b) { return (vm)(a & ~b); }
static inline vm vm_xor(vm a, vm b) { return (vm)(a ^ b); }
static inline unsigned vm_bits(vm m) { return m; }
static inline vi vi_set1(int x) { return _mm512_set1_epi32(x); }
static inline vi vi_lanes(void)
{
    return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
static inline vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
static inline vi vi_mul_small(vi a, int k) { return _mm512_mullo_epi32(a, _mm512_set1_epi32(k)); }
static inline vi vi_inc(vi acc, vm m) { return _mm512_mask_add_epi32(acc, m, acc, _mm512_set1_epi32(1)); }
static inline vi vi_blend(vm m, vi a, vi b) { return _mm512_mask_blend_epi32(m, a, b); }
static inline vm vm_ilt(vi a, vi b) { return _mm512_cmplt_epi32_mask(a, b); }
static inline vm vm_ieq(vi a, vi b) { return _mm512_cmpeq_epi32_mask(a, b); }
static inline vi vi_from_vf(vf a) { return _mm512_cvttps_epi32(a); }
static inline void vi_store(int *p, vi v) { _mm512_storeu_si512(p, v); }
static inline int vi_hsum(vi v) { return _mm512_reduce_add_epi32(v); }
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
/* How many of keys[0..n) (n a multiple of 8) are greater than key. */
static inline size_t count_greater(const uint64_t *keys, size_t n, uint64_t key)
{
    __m512i k = _mm512_set1_epi64((long long)key);
    size_t c = 0;
    for (size_t i = 0; i < n; i += 8)
        c += (size_t)__builtin_popcount(_mm512_cmpgt_epu64_mask(_mm512_loadu_si512(keys + i), k));
    return c;
}
/* n codes from floats already clamped to [t_min, t_max]. */
static inline void store_codes(int8_t *q, vf v, size_t n)
{
    __m128i b = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v));
    _mm_mask_storeu_epi8(q, (__mmask16)vm_first(n), b);
}

#include "simd.h"

bool sqi_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

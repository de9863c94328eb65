/*
 * AVX2 instantiation of simd.h: 8 lanes, masks as all-ones float lanes.
 * Compiled with -mavx2; only called after sqi_cpu_has_avx2().
 */
#include <immintrin.h>

#include "core.h"

#define W 8
#define SIMD_NAME sqi_quantize_avx2
#define SIMD_ROWSUM_NAME sqi_rowsum_avx2
typedef __m256 vf;
typedef __m256i vi;
typedef __m256 vm;

static inline vm vm_first(size_t n)
{
    __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n > 8 ? 8 : n)), lanes));
}
static inline vf vf_loadu(const float *p)
{
    return _mm256_loadu_ps(p);
}
static inline vf vf_load_n(const float *p, size_t n)
{
    return _mm256_maskload_ps(p, _mm256_castps_si256(vm_first(n)));
}
static inline void vf_storeu(float *p, vf v)
{
    _mm256_storeu_ps(p, v);
}
static inline void vf_store_n(float *p, vf v, size_t n)
{
    _mm256_maskstore_ps(p, _mm256_castps_si256(vm_first(n)), v);
}
static inline vf vf_set1(float x)
{
    return _mm256_set1_ps(x);
}
static inline vf vf_zero(void)
{
    return _mm256_setzero_ps();
}
static inline vf vf_add(vf a, vf b)
{
    return _mm256_add_ps(a, b);
}
static inline vf vf_sub(vf a, vf b)
{
    return _mm256_sub_ps(a, b);
}
static inline vf vf_mul(vf a, vf b)
{
    return _mm256_mul_ps(a, b);
}
static inline vf vf_min(vf a, vf b)
{
    return _mm256_min_ps(a, b);
}
static inline vf vf_max(vf a, vf b)
{
    return _mm256_max_ps(a, b);
}
static inline vf vf_abs(vf a)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a);
}
static inline vf vf_neg(vf a)
{
    return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f));
}
static inline vf vf_xor(vf a, vf b)
{
    return _mm256_xor_ps(a, b);
}
static inline vf vf_round(vf a)
{
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline vf vf_blend(vm m, vf a, vf b)
{
    return _mm256_blendv_ps(a, b, m);
}
static inline vf vf_gather(const float *base, vi idx, size_t n)
{
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, idx, vm_first(n), 4);
}
static inline vm vm_lt(vf a, vf b)
{
    return _mm256_cmp_ps(a, b, _CMP_LT_OQ);
}
static inline vm vm_gt(vf a, vf b)
{
    return _mm256_cmp_ps(a, b, _CMP_GT_OQ);
}
static inline vm vm_ge(vf a, vf b)
{
    return _mm256_cmp_ps(a, b, _CMP_GE_OQ);
}
static inline vm vm_eq(vf a, vf b)
{
    return _mm256_cmp_ps(a, b, _CMP_EQ_OQ);
}
static inline vm vm_and(vm a, vm b)
{
    return _mm256_and_ps(a, b);
}
static inline vm vm_gt_m(vm m, vf a, vf b)
{
    return _mm256_and_ps(m, _mm256_cmp_ps(a, b, _CMP_GT_OQ));
}
static inline vm vm_lt_m(vm m, vf a, vf b)
{
    return _mm256_and_ps(m, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
static inline vm vm_ilt_m(vm m, vi a, vi b)
{
    return _mm256_and_ps(m, _mm256_castsi256_ps(_mm256_cmpgt_epi32(b, a)));
}
static inline vm vm_ieq_m(vm m, vi a, vi b)
{
    return _mm256_and_ps(m, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)));
}
static inline vm vm_or(vm a, vm b)
{
    return _mm256_or_ps(a, b);
}
static inline vm vm_andnot(vm a, vm b)
{
    return _mm256_andnot_ps(b, a);
}
static inline vm vm_xor(vm a, vm b)
{
    return _mm256_xor_ps(a, b);
}
static inline unsigned vm_bits(vm m)
{
    return (unsigned)_mm256_movemask_ps(m);
}
static inline vi vi_set1(int x)
{
    return _mm256_set1_epi32(x);
}
static inline vi vi_lanes(void)
{
    return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
}
static inline vi vi_add(vi a, vi b)
{
    return _mm256_add_epi32(a, b);
}
static inline vi vi_mul_small(vi a, int k)
{
    return _mm256_mullo_epi32(a, _mm256_set1_epi32(k));
}
static inline vi vi_inc(vi acc, vm m)
{
    return _mm256_sub_epi32(acc, _mm256_castps_si256(m));
}
static inline vi vi_blend(vm m, vi a, vi b)
{
    return _mm256_blendv_epi8(a, b, _mm256_castps_si256(m));
}
static inline vm vm_ilt(vi a, vi b)
{
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(b, a));
}
static inline vm vm_ieq(vi a, vi b)
{
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b));
}
static inline vi vi_from_vf(vf a)
{
    return _mm256_cvttps_epi32(a);
}
static inline vi vi_load(const int32_t *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}
static inline int vi_hsum(vi v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}
/* Lane permutation that packs the lanes of an 8-bit mask to the front. */
static inline __m256i compress_perm(unsigned bits)
{
    /* Each nibble of the 32-bit word is a source lane; built from pdep-free shifts. */
    uint32_t idx = 0, n = 0;
    for (; bits; bits &= bits - 1)
        idx |= (uint32_t)__builtin_ctz(bits) << (4 * n++);
    __m256i v = _mm256_set1_epi32((int)idx);
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                            _mm256_set1_epi32(15));
}
static inline int vf_compress(float *dst, vm m, vf v)
{
    unsigned bits = vm_bits(m);
    _mm256_storeu_ps(dst, _mm256_permutevar8x32_ps(v, compress_perm(bits)));
    return __builtin_popcount(bits);
}
static inline int vi_compress(int32_t *dst, vm m, vi v)
{
    unsigned bits = vm_bits(m);
    _mm256_storeu_si256((__m256i *)dst, _mm256_permutevar8x32_epi32(v, compress_perm(bits)));
    return __builtin_popcount(bits);
}
/* The largest of keys[0..n) (n a multiple of 8, keys < 2^63) below bound, or 0. */
static inline uint64_t keys_max_below(const uint64_t *keys, size_t n, uint64_t bound)
{
    __m256i b = _mm256_set1_epi64x((long long)(bound > INT64_MAX ? INT64_MAX : bound));
    __m256i best = _mm256_setzero_si256();
    for (size_t i = 0; i < n; i += 4) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(keys + i));
        v = _mm256_and_si256(v, _mm256_cmpgt_epi64(b, v)); /* keys >= bound count as 0 */
        best = _mm256_blendv_epi8(best, v, _mm256_cmpgt_epi64(v, best));
    }
    uint64_t l[4];
    _mm256_storeu_si256((__m256i *)l, best);
    uint64_t m = l[0];
    for (int i = 1; i < 4; i++)
        m = l[i] > m ? l[i] : m;
    return m;
}
/* Rank keys of 8 (position, priority) pairs: (priority bits << 32 | ~position), any order. */
static inline void make_keys(uint64_t *keys, vi pos, vf val)
{
    __m256i np = _mm256_xor_si256(pos, _mm256_set1_epi32(-1)), v = _mm256_castps_si256(val);
    _mm256_storeu_si256((__m256i *)keys, _mm256_unpacklo_epi32(np, v));
    _mm256_storeu_si256((__m256i *)(keys + 4), _mm256_unpackhi_epi32(np, v));
}

/* n codes from floats already clamped to [t_min, t_max]. */
static inline void store_codes(int8_t *q, vf v, size_t n)
{
    __m256i i32 = _mm256_cvttps_epi32(v);
    __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
    __m128i i8 = _mm_packs_epi16(i16, i16);
    if (n >= 8) {
        _mm_storel_epi64((__m128i *)q, i8);
    } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, i8);
        memcpy(q, tmp, n);
    }
}

#include "simd.h"

bool sqi_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

#include "report_body.h"

/* The report (report_body.h) compiled for AVX2: the same bits as report.c's. */
void sqi_report_avx2(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                     const float *scale, const float *zp, double *tmp, struct sq_report *rep)
{
    sqi_report_body(ctx, n, w, q, scale, zp, tmp, rep);
}

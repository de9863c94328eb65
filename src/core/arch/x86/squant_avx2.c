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
static inline vf vf_div(vf a, vf b)
{
    return _mm256_div_ps(a, b);
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
static inline vm vm_ne(vf a, vf b)
{
    return _mm256_cmp_ps(a, b, _CMP_NEQ_OQ);
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
static inline vi vi_dec(vi acc, vm m)
{
    return _mm256_add_epi32(acc, _mm256_castps_si256(m));
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
/*
 * Lane permutations that pack the lanes of an 8-bit mask to the front: for
 * each mask, the source lanes in order, one per byte (unused bytes 0). For a
 * list of positions i + 0..7 the row is the list itself.
 */
static const uint64_t compress_bytes[256] = {
    0x0000000000000000ull, 0x0000000000000000ull, 0x0000000000000001ull, 0x0000000000000100ull,
    0x0000000000000002ull, 0x0000000000000200ull, 0x0000000000000201ull, 0x0000000000020100ull,
    0x0000000000000003ull, 0x0000000000000300ull, 0x0000000000000301ull, 0x0000000000030100ull,
    0x0000000000000302ull, 0x0000000000030200ull, 0x0000000000030201ull, 0x0000000003020100ull,
    0x0000000000000004ull, 0x0000000000000400ull, 0x0000000000000401ull, 0x0000000000040100ull,
    0x0000000000000402ull, 0x0000000000040200ull, 0x0000000000040201ull, 0x0000000004020100ull,
    0x0000000000000403ull, 0x0000000000040300ull, 0x0000000000040301ull, 0x0000000004030100ull,
    0x0000000000040302ull, 0x0000000004030200ull, 0x0000000004030201ull, 0x0000000403020100ull,
    0x0000000000000005ull, 0x0000000000000500ull, 0x0000000000000501ull, 0x0000000000050100ull,
    0x0000000000000502ull, 0x0000000000050200ull, 0x0000000000050201ull, 0x0000000005020100ull,
    0x0000000000000503ull, 0x0000000000050300ull, 0x0000000000050301ull, 0x0000000005030100ull,
    0x0000000000050302ull, 0x0000000005030200ull, 0x0000000005030201ull, 0x0000000503020100ull,
    0x0000000000000504ull, 0x0000000000050400ull, 0x0000000000050401ull, 0x0000000005040100ull,
    0x0000000000050402ull, 0x0000000005040200ull, 0x0000000005040201ull, 0x0000000504020100ull,
    0x0000000000050403ull, 0x0000000005040300ull, 0x0000000005040301ull, 0x0000000504030100ull,
    0x0000000005040302ull, 0x0000000504030200ull, 0x0000000504030201ull, 0x0000050403020100ull,
    0x0000000000000006ull, 0x0000000000000600ull, 0x0000000000000601ull, 0x0000000000060100ull,
    0x0000000000000602ull, 0x0000000000060200ull, 0x0000000000060201ull, 0x0000000006020100ull,
    0x0000000000000603ull, 0x0000000000060300ull, 0x0000000000060301ull, 0x0000000006030100ull,
    0x0000000000060302ull, 0x0000000006030200ull, 0x0000000006030201ull, 0x0000000603020100ull,
    0x0000000000000604ull, 0x0000000000060400ull, 0x0000000000060401ull, 0x0000000006040100ull,
    0x0000000000060402ull, 0x0000000006040200ull, 0x0000000006040201ull, 0x0000000604020100ull,
    0x0000000000060403ull, 0x0000000006040300ull, 0x0000000006040301ull, 0x0000000604030100ull,
    0x0000000006040302ull, 0x0000000604030200ull, 0x0000000604030201ull, 0x0000060403020100ull,
    0x0000000000000605ull, 0x0000000000060500ull, 0x0000000000060501ull, 0x0000000006050100ull,
    0x0000000000060502ull, 0x0000000006050200ull, 0x0000000006050201ull, 0x0000000605020100ull,
    0x0000000000060503ull, 0x0000000006050300ull, 0x0000000006050301ull, 0x0000000605030100ull,
    0x0000000006050302ull, 0x0000000605030200ull, 0x0000000605030201ull, 0x0000060503020100ull,
    0x0000000000060504ull, 0x0000000006050400ull, 0x0000000006050401ull, 0x0000000605040100ull,
    0x0000000006050402ull, 0x0000000605040200ull, 0x0000000605040201ull, 0x0000060504020100ull,
    0x0000000006050403ull, 0x0000000605040300ull, 0x0000000605040301ull, 0x0000060504030100ull,
    0x0000000605040302ull, 0x0000060504030200ull, 0x0000060504030201ull, 0x0006050403020100ull,
    0x0000000000000007ull, 0x0000000000000700ull, 0x0000000000000701ull, 0x0000000000070100ull,
    0x0000000000000702ull, 0x0000000000070200ull, 0x0000000000070201ull, 0x0000000007020100ull,
    0x0000000000000703ull, 0x0000000000070300ull, 0x0000000000070301ull, 0x0000000007030100ull,
    0x0000000000070302ull, 0x0000000007030200ull, 0x0000000007030201ull, 0x0000000703020100ull,
    0x0000000000000704ull, 0x0000000000070400ull, 0x0000000000070401ull, 0x0000000007040100ull,
    0x0000000000070402ull, 0x0000000007040200ull, 0x0000000007040201ull, 0x0000000704020100ull,
    0x0000000000070403ull, 0x0000000007040300ull, 0x0000000007040301ull, 0x0000000704030100ull,
    0x0000000007040302ull, 0x0000000704030200ull, 0x0000000704030201ull, 0x0000070403020100ull,
    0x0000000000000705ull, 0x0000000000070500ull, 0x0000000000070501ull, 0x0000000007050100ull,
    0x0000000000070502ull, 0x0000000007050200ull, 0x0000000007050201ull, 0x0000000705020100ull,
    0x0000000000070503ull, 0x0000000007050300ull, 0x0000000007050301ull, 0x0000000705030100ull,
    0x0000000007050302ull, 0x0000000705030200ull, 0x0000000705030201ull, 0x0000070503020100ull,
    0x0000000000070504ull, 0x0000000007050400ull, 0x0000000007050401ull, 0x0000000705040100ull,
    0x0000000007050402ull, 0x0000000705040200ull, 0x0000000705040201ull, 0x0000070504020100ull,
    0x0000000007050403ull, 0x0000000705040300ull, 0x0000000705040301ull, 0x0000070504030100ull,
    0x0000000705040302ull, 0x0000070504030200ull, 0x0000070504030201ull, 0x0007050403020100ull,
    0x0000000000000706ull, 0x0000000000070600ull, 0x0000000000070601ull, 0x0000000007060100ull,
    0x0000000000070602ull, 0x0000000007060200ull, 0x0000000007060201ull, 0x0000000706020100ull,
    0x0000000000070603ull, 0x0000000007060300ull, 0x0000000007060301ull, 0x0000000706030100ull,
    0x0000000007060302ull, 0x0000000706030200ull, 0x0000000706030201ull, 0x0000070603020100ull,
    0x0000000000070604ull, 0x0000000007060400ull, 0x0000000007060401ull, 0x0000000706040100ull,
    0x0000000007060402ull, 0x0000000706040200ull, 0x0000000706040201ull, 0x0000070604020100ull,
    0x0000000007060403ull, 0x0000000706040300ull, 0x0000000706040301ull, 0x0000070604030100ull,
    0x0000000706040302ull, 0x0000070604030200ull, 0x0000070604030201ull, 0x0007060403020100ull,
    0x0000000000070605ull, 0x0000000007060500ull, 0x0000000007060501ull, 0x0000000706050100ull,
    0x0000000007060502ull, 0x0000000706050200ull, 0x0000000706050201ull, 0x0000070605020100ull,
    0x0000000007060503ull, 0x0000000706050300ull, 0x0000000706050301ull, 0x0000070605030100ull,
    0x0000000706050302ull, 0x0000070605030200ull, 0x0000070605030201ull, 0x0007060503020100ull,
    0x0000000007060504ull, 0x0000000706050400ull, 0x0000000706050401ull, 0x0000070605040100ull,
    0x0000000706050402ull, 0x0000070605040200ull, 0x0000070605040201ull, 0x0007060504020100ull,
    0x0000000706050403ull, 0x0000070605040300ull, 0x0000070605040301ull, 0x0007060504030100ull,
    0x0000070605040302ull, 0x0007060504030200ull, 0x0007060504030201ull, 0x0706050403020100ull,
};
static inline __m256i compress_perm(unsigned bits)
{
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)&compress_bytes[bits & 0xff]));
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
/* The positions base + lane of the lanes of m (a list of positions is a permutation of them). */
#define SIMD_HAVE_POS_COMPRESS 1
static inline __attribute__((always_inline)) size_t pos_compress(int32_t *dst, vm m, vi base)
{
    unsigned bits = vm_bits(m);
    _mm256_storeu_si256((__m256i *)dst, _mm256_add_epi32(compress_perm(bits), base));
    return (size_t)__builtin_popcount(bits);
}

/*
 * The largest of keys[0..n) (n a multiple of 8, keys < 2^63) below bound, or
 * 0. Two accumulators of four keys each, so that the loop runs at the
 * throughput of the compares and blends rather than their latency.
 */
static inline uint64_t keys_max_below(const uint64_t *keys, size_t n, uint64_t bound)
{
    __m256i b = _mm256_set1_epi64x((long long)(bound > INT64_MAX ? INT64_MAX : bound));
    __m256i best0 = _mm256_setzero_si256(), best1 = _mm256_setzero_si256();
    for (size_t i = 0; i < n; i += 8) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)(keys + i));
        __m256i v1 = _mm256_loadu_si256((const __m256i *)(keys + i + 4));
        v0 = _mm256_and_si256(v0, _mm256_cmpgt_epi64(b, v0)); /* keys >= bound count as 0 */
        v1 = _mm256_and_si256(v1, _mm256_cmpgt_epi64(b, v1));
        best0 = _mm256_blendv_epi8(best0, v0, _mm256_cmpgt_epi64(v0, best0));
        best1 = _mm256_blendv_epi8(best1, v1, _mm256_cmpgt_epi64(v1, best1));
    }
    __m256i best = _mm256_blendv_epi8(best0, best1, _mm256_cmpgt_epi64(best1, best0));
    __m128i lo = _mm256_castsi256_si128(best), hi = _mm256_extracti128_si256(best, 1);
    lo = _mm_blendv_epi8(lo, hi, _mm_cmpgt_epi64(hi, lo));
    hi = _mm_unpackhi_epi64(lo, lo);
    lo = _mm_blendv_epi8(lo, hi, _mm_cmpgt_epi64(hi, lo));
    return (uint64_t)_mm_cvtsi128_si64(lo);
}
/* Rank keys of 8 (position, priority) pairs: (priority bits << 32 | ~position), any order. */
static inline void make_keys(uint64_t *keys, vi pos, vf val)
{
    __m256i np = _mm256_xor_si256(pos, _mm256_set1_epi32(-1)), v = _mm256_castps_si256(val);
    _mm256_storeu_si256((__m256i *)keys, _mm256_unpacklo_epi32(np, v));
    _mm256_storeu_si256((__m256i *)(keys + 4), _mm256_unpackhi_epi32(np, v));
}

/* The 4x4 transpose inside each 128-bit half: row i of v (lanes 0..3 | 4..7) to column i. */
static inline __attribute__((always_inline)) void tr4_halves(__m256 v0, __m256 v1, __m256 v2,
                                                             __m256 v3, __m256 *o)
{
    __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
    __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
    o[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    o[1] = _mm256_shuffle_ps(t0, t2, 0xee);
    o[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    o[3] = _mm256_shuffle_ps(t1, t3, 0xee);
}

/*
 * An 8x8 block of rows: out[t] = element t of rows 0..7 (row i at base +
 * i * stride), by 16 128-bit loads and 16 in-lane shuffles; no gather.
 */
#define SIMD_HAVE_LOAD_ROWS 1
static inline __attribute__((always_inline)) void load_rows(const float *base, size_t stride,
                                                            vf *out)
{
    __m256 a[4], b[4];
    _Pragma("GCC unroll 4") for (size_t i = 0; i < 4; i++)
    {
        const float *r0 = base + stride * i, *r1 = base + stride * (i + 4);
        a[i] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r0)), _mm_loadu_ps(r1), 1);
        b[i] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r0 + 4)),
                                    _mm_loadu_ps(r1 + 4), 1);
    }
    tr4_halves(a[0], a[1], a[2], a[3], out);
    tr4_halves(b[0], b[1], b[2], b[3], out + 4);
}

/*
 * 8 whole kernels of K elements (8 <= K <= 16) side by side, kernel i in
 * lane i: elements 0..7 of every kernel by load_rows (kernels are rows of
 * stride K), the rest (one for 3x3) by gathers. Reads only the 8K floats of the block. Kernels
 * of fewer than 8 elements keep the gathers of simd.h.
 */
#define SIMD_HAVE_LOAD_KERNELS 1
#define SIMD_LOAD_KERNELS_MIN 8
static inline __attribute__((always_inline)) void load_kernels(const float *base, const size_t K,
                                                               vf *out)
{
    load_rows(base, K, out);
    __m256i stride =
        _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)K));
    _Pragma("GCC unroll 8") for (size_t t = 8; t < K; t++) out[t] =
        _mm256_i32gather_ps(base + t, stride, 4);
}

/*
 * The inverse of load_kernels: v[t] (element t of 8 kernels, kernel i in lane
 * i) back to the 8 * K contiguous floats at base. Elements 0..7 by the same
 * in-half 4x4 transposes and 128-bit stores, the rest (one for 3x3) lane by
 * lane. Writes exactly the 8 * K floats of the block.
 */
#define SIMD_HAVE_STORE_KERNELS 1
#define SIMD_FULL_SIZES(X) X(8) X(9) X(10) X(12) X(15) X(16)
static inline __attribute__((always_inline)) void store_kernels(float *base, const size_t K,
                                                                const vf *v)
{
    __m256 a[4], b[4];
    tr4_halves(v[0], v[1], v[2], v[3], a); /* a[i]: kernel i, elements 0..3 | kernel i + 4 */
    tr4_halves(v[4], v[5], v[6], v[7], b); /* b[i]: the same, elements 4..7 */
    _Pragma("GCC unroll 4") for (size_t i = 0; i < 4; i++)
    {
        float *r0 = base + K * i, *r1 = base + K * (i + 4);
        _mm_storeu_ps(r0, _mm256_castps256_ps128(a[i]));
        _mm_storeu_ps(r0 + 4, _mm256_castps256_ps128(b[i]));
        _mm_storeu_ps(r1, _mm256_extractf128_ps(a[i], 1));
        _mm_storeu_ps(r1 + 4, _mm256_extractf128_ps(b[i], 1));
    }
    _Pragma("GCC unroll 8") for (size_t t = 8; t < K; t++)
    {
        float l[8];
        _mm256_storeu_ps(l, v[t]);
        _Pragma("GCC unroll 8") for (size_t i = 0; i < 8; i++) base[K * i + t] = l[i];
    }
}

/*
 * Codes to rows: c[t] (element t of 8 rows, clamped floats) to 8 bytes of
 * each row (row i at q + i * stride): packed to bytes, transposed 4x4 by a
 * byte shuffle in each half, then 8 bytes per row.
 */
#define SIMD_HAVE_STORE_ROWS 1
static inline __attribute__((always_inline)) void store_rows_codes(int8_t *q, size_t stride,
                                                                   const vf *c)
{
    __m256i i[8];
    _Pragma("GCC unroll 8") for (size_t t = 0; t < 8; t++) i[t] = _mm256_cvttps_epi32(c[t]);
    /* byte 4t + l of a half: element t (0..3 or 4..7) of row l (0..3 | 4..7) */
    __m256i b0 = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    __m256i b1 = _mm256_packs_epi16(_mm256_packs_epi32(i[4], i[5]), _mm256_packs_epi32(i[6], i[7]));
    __m256i tr = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12,
                                  1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    b0 = _mm256_shuffle_epi8(b0, tr); /* byte 4l + t: row l, element t */
    b1 = _mm256_shuffle_epi8(b1, tr);
    __m256i lo = _mm256_unpacklo_epi32(b0, b1); /* rows 0, 1 | 4, 5: 8 bytes each */
    __m256i hi = _mm256_unpackhi_epi32(b0, b1); /* rows 2, 3 | 6, 7 */
    __m128i l0 = _mm256_castsi256_si128(lo), l1 = _mm256_extracti128_si256(lo, 1);
    __m128i h0 = _mm256_castsi256_si128(hi), h1 = _mm256_extracti128_si256(hi, 1);
    _mm_storel_epi64((__m128i *)q, l0);
    _mm_storeh_pi((__m64 *)(void *)(q + stride), _mm_castsi128_ps(l0));
    _mm_storel_epi64((__m128i *)(q + 2 * stride), h0);
    _mm_storeh_pi((__m64 *)(void *)(q + 3 * stride), _mm_castsi128_ps(h0));
    _mm_storel_epi64((__m128i *)(q + 4 * stride), l1);
    _mm_storeh_pi((__m64 *)(void *)(q + 5 * stride), _mm_castsi128_ps(l1));
    _mm_storel_epi64((__m128i *)(q + 6 * stride), h1);
    _mm_storeh_pi((__m64 *)(void *)(q + 7 * stride), _mm_castsi128_ps(h1));
}

/*
 * The codes of 8 kernels (c[t]: element t, clamped floats) to the 8 * K
 * contiguous int8 at q: elements 0..7 as rows of stride K, the rest lane by
 * lane.
 */
static inline __attribute__((always_inline)) void store_code_kernels(int8_t *q, const size_t K,
                                                                     const vf *c)
{
    store_rows_codes(q, K, c);
    _Pragma("GCC unroll 8") for (size_t t = 8; t < K; t++)
    {
        int32_t l[8];
        _mm256_storeu_si256((__m256i *)l, _mm256_cvttps_epi32(c[t]));
        _Pragma("GCC unroll 8") for (size_t k = 0; k < 8; k++) q[K * k + t] = (int8_t)l[k];
    }
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

/*
 * The codes of 32 consecutive elements (c[0..3]: clamped floats) by two
 * saturating packs and one permute that undoes their per-128-bit-half order.
 */
#define SIMD_HAVE_STORE_CODES32 1
static inline __attribute__((always_inline)) void store_codes32(int8_t *q, const vf *c)
{
    __m256i ab = _mm256_packs_epi32(_mm256_cvttps_epi32(c[0]), _mm256_cvttps_epi32(c[1]));
    __m256i cd = _mm256_packs_epi32(_mm256_cvttps_epi32(c[2]), _mm256_cvttps_epi32(c[3]));
    __m256i v = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd),
                                            _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, v);
}

#include "simd.h"

bool sqi_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

#include "report_body.h"

/*
 * The report in whole AVX2 registers, with the bits of report.c's
 * definition: eight elements at a time, element i of a channel into lane
 * i % 8 of every sum (two halves of four double lanes).
 */
struct rep2 {
    __m256d acc[2], rtn_acc[2];    /* sums of squares */
    __m256d chan[2], rtn_chan[2];  /* k1: the channel's residual lanes */
    __m256d cmx;                   /* max |d| of flip-free blocks, for both sides */
    __m256d mx, rtn_mx;            /* max |d|, |rd| of the other blocks */
    __m256d kmx, rtn_kmx;          /* k1: max |q - x|, |rq - x| computed in double */
    __m256 ekmx, kmx_f, rtn_kmx_f; /* k1: max |rq - x| from exact floats (both; q; RTN) */
    uint64_t flips;
};

/* The channel's constants. */
struct rep2_k {
    __m256 s, zp, lo, hi, step_f, z_f;
};

static inline __m256d lo_pd(__m256 v)
{
    return _mm256_cvtps_pd(_mm256_castps256_ps128(v));
}
static inline __m256d hi_pd(__m256 v)
{
    return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
}
#define HALF_PD(v, h) ((h) ? hi_pd(v) : lo_pd(v))
static inline __m256d abs_pd(__m256d v)
{
    return _mm256_andnot_pd(_mm256_set1_pd(-0.0), v);
}
static inline __m256 abs_ps(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}
/* Lanes 4h .. 4h + 3 of a float-lane mask as double-lane masks. */
static inline __m256d mask_pd(__m256 m, int h)
{
    __m128i v = _mm_castps_si128(h ? _mm256_extractf128_ps(m, 1) : _mm256_castps256_ps128(m));
    return _mm256_castsi256_pd(_mm256_cvtepi32_epi64(v));
}

/*
 * Eight elements whose lanes `valid` count (the others are zero in w and q
 * and add +0.0, which changes no sum, as sums never hold -0.0, nor a max).
 * With k1 (kernels of one element) the residuals add into the channel's
 * lanes, else they go to res and rtn_res for sqi_report_residuals.
 */
static inline __attribute__((always_inline)) void rep2_block(const struct rep2_k *k, __m256 wf,
                                                             __m256 qf, __m256 valid, bool full,
                                                             bool k1, struct rep2 *st, double *res,
                                                             double *rtn_res)
{
    __m256 x = _mm256_sub_ps(_mm256_mul_ps(wf, k->s), k->zp);
    __m256 r0 = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d vd[2] = {mask_pd(valid, 0), mask_pd(valid, 1)};
#define MASKED(v, h) (full ? (v) : _mm256_and_pd(v, vd[h]))
    if (k1) {
        __m256 ne0 = _mm256_and_ps(_mm256_cmp_ps(qf, r0, _CMP_NEQ_UQ), valid);
        if (_mm256_testz_ps(ne0, ne0)) {
            /*
             * q = roundeven(x) in every lane: no flip, no clamp. rq - x is
             * then exact in float (SQUANT-SPEC section 3), d = rd and
             * q - x = rq - x: computed once, added to both sides.
             */
            __m256 drf = _mm256_mul_ps(_mm256_sub_ps(r0, k->z_f), k->step_f);
            __m256 ef = _mm256_sub_ps(r0, x);
            for (int h = 0; h < 2; h++) {
                __m256d rd = MASKED(_mm256_sub_pd(HALF_PD(drf, h), HALF_PD(wf, h)), h);
                __m256d rr = HALF_PD(ef, h), sq = _mm256_mul_pd(rd, rd);
                st->acc[h] = _mm256_add_pd(st->acc[h], sq);
                st->rtn_acc[h] = _mm256_add_pd(st->rtn_acc[h], sq);
                st->cmx = _mm256_max_pd(st->cmx, abs_pd(rd));
                rr = MASKED(rr, h);
                st->chan[h] = _mm256_add_pd(st->chan[h], rr);
                st->rtn_chan[h] = _mm256_add_pd(st->rtn_chan[h], rr);
            }
            st->ekmx = _mm256_max_ps(st->ekmx, _mm256_and_ps(abs_ps(ef), valid));
            return;
        }
    }
    __m256 rq = _mm256_min_ps(_mm256_max_ps(r0, k->lo), k->hi);
    __m256 ne = _mm256_and_ps(_mm256_cmp_ps(qf, rq, _CMP_NEQ_UQ), valid);
    __m256 clamped = _mm256_and_ps(_mm256_cmp_ps(r0, rq, _CMP_NEQ_UQ), valid);
    st->flips += (uint64_t)__builtin_popcount((unsigned)_mm256_movemask_ps(ne));
    __m256 drf = _mm256_mul_ps(_mm256_sub_ps(rq, k->z_f), k->step_f);
    __m256 dqf = _mm256_mul_ps(_mm256_sub_ps(qf, k->z_f), k->step_f);
    if (__builtin_expect(_mm256_testz_ps(clamped, clamped), 1)) {
        /*
         * Not clamped: rq - x is an exact float, and q - x = (q - rq) +
         * (rq - x) as reals, both exact floats, so their double sum is the
         * definition's (double)q - (double)x rounded once. Every block of a
         * kernel layer comes here (about half of them have a flip: a branch
         * on it would be a coin flip).
         */
        __m256 ef = _mm256_sub_ps(rq, x), delta = _mm256_sub_ps(qf, rq);
        for (int h = 0; h < 2; h++) {
            __m256d wd = HALF_PD(wf, h);
            __m256d d = MASKED(_mm256_sub_pd(HALF_PD(dqf, h), wd), h);
            __m256d rd = MASKED(_mm256_sub_pd(HALF_PD(drf, h), wd), h);
            __m256d rr = HALF_PD(ef, h);
            __m256d r = _mm256_add_pd(HALF_PD(delta, h), rr);
            st->acc[h] = _mm256_add_pd(st->acc[h], _mm256_mul_pd(d, d));
            st->rtn_acc[h] = _mm256_add_pd(st->rtn_acc[h], _mm256_mul_pd(rd, rd));
            st->mx = _mm256_max_pd(st->mx, abs_pd(d));
            st->rtn_mx = _mm256_max_pd(st->rtn_mx, abs_pd(rd));
            if (k1) {
                r = MASKED(r, h);
                rr = MASKED(rr, h);
                st->chan[h] = _mm256_add_pd(st->chan[h], r);
                st->rtn_chan[h] = _mm256_add_pd(st->rtn_chan[h], rr);
                st->kmx = _mm256_max_pd(st->kmx, abs_pd(r));
            } else {
                _mm256_storeu_pd(res + 4 * h, r);
                _mm256_storeu_pd(rtn_res + 4 * h, rr);
            }
        }
        if (k1) {
            __m256 ea = _mm256_and_ps(abs_ps(ef), valid);
            st->kmx_f = _mm256_max_ps(st->kmx_f, _mm256_andnot_ps(ne, ea));
            st->rtn_kmx_f = _mm256_max_ps(st->rtn_kmx_f, ea);
        }
        return;
    }
    /* Clamped lanes: the definition's double operations. */
    for (int h = 0; h < 2; h++) {
        __m256d wd = HALF_PD(wf, h), xd = HALF_PD(x, h);
        __m256d d = MASKED(_mm256_sub_pd(HALF_PD(dqf, h), wd), h);
        __m256d rd = MASKED(_mm256_sub_pd(HALF_PD(drf, h), wd), h);
        __m256d r = MASKED(_mm256_sub_pd(HALF_PD(qf, h), xd), h);
        __m256d rr = MASKED(_mm256_sub_pd(HALF_PD(rq, h), xd), h);
        st->acc[h] = _mm256_add_pd(st->acc[h], _mm256_mul_pd(d, d));
        st->rtn_acc[h] = _mm256_add_pd(st->rtn_acc[h], _mm256_mul_pd(rd, rd));
        st->mx = _mm256_max_pd(st->mx, abs_pd(d));
        st->rtn_mx = _mm256_max_pd(st->rtn_mx, abs_pd(rd));
        if (k1) {
            st->chan[h] = _mm256_add_pd(st->chan[h], r);
            st->rtn_chan[h] = _mm256_add_pd(st->rtn_chan[h], rr);
            st->kmx = _mm256_max_pd(st->kmx, abs_pd(r));
            st->rtn_kmx = _mm256_max_pd(st->rtn_kmx, abs_pd(rr));
        } else {
            _mm256_storeu_pd(res + 4 * h, r);
            _mm256_storeu_pd(rtn_res + 4 * h, rr);
        }
    }
#undef MASKED
}

static inline __attribute__((always_inline)) void rep2_channel(const struct rep2_k *k,
                                                               const float *cw, const int8_t *cq,
                                                               size_t len, bool k1, struct rep2 *st,
                                                               double *res, double *rtn_res)
{
    __m256 all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        __m256 wf = _mm256_loadu_ps(cw + i);
        __m256 qf =
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const void *)(cq + i))));
        rep2_block(k, wf, qf, all, true, k1, st, res + i, rtn_res + i);
    }
    if (i < len) {
        /* The last m < 8 elements, zero-padded; residuals land in a local buffer. */
        size_t m = len - i;
        float wb[8] = {0};
        int8_t qb[16] = {0};
        double r[8], rr[8];
        memcpy(wb, cw + i, m * sizeof(float));
        memcpy(qb, cq + i, m);
        __m256 wf = _mm256_loadu_ps(wb);
        __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const void *)qb)));
        __m256 valid = vm_first(m);
        rep2_block(k, wf, qf, valid, false, k1, st, r, rr);
        if (!k1) {
            memcpy(res + i, r, m * sizeof(double));
            memcpy(rtn_res + i, rr, m * sizeof(double));
        }
    }
}

static inline double max_pd(__m256d v)
{
    double l[4];
    _mm256_storeu_pd(l, v);
    return sqi_dmax(sqi_dmax(l[0], l[1]), sqi_dmax(l[2], l[3]));
}
static inline double max_ps(__m256 v)
{
    float l[8];
    _mm256_storeu_ps(l, v);
    float m = l[0];
    for (int i = 1; i < 8; i++)
        m = l[i] > m ? l[i] : m;
    return (double)m;
}
/* The eight lanes of a two-half sum in lane order. */
static inline double fold_pd(const __m256d *v)
{
    double l[8];
    _mm256_storeu_pd(l, v[0]);
    _mm256_storeu_pd(l + 4, v[1]);
    return sqi_fold8(l);
}

/* The report (report.c's definition), the same bits. */
void sqi_report_avx2(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                     const float *scale, const float *zp, double *tmp, struct sq_report *rep)
{
    size_t len = ctx->len;
    double *res = tmp, *rtn_res = tmp + len;
    bool k1 = ctx->ksize == 1;
    for (size_t c = 0; c < n; c++) {
        const float *cw = w + c * len;
        const int8_t *cq = q + c * len;
        float step_f = sqi_public_step(scale[c]), z_f = sqi_public_zero_point(zp[c]);
        if (!(fabsf(z_f) < 0x1p23f)) {
            /*
             * q - zero_point is not an exact float: the portable pass with
             * double dequantization (it counts the channel's weights).
             */
            sqi_report_body(ctx, 1, cw, cq, scale + c, zp + c, tmp, rep);
            continue;
        }
        /*
         * While |zero point| < 2^23, q - zero_point is an exact float and a
         * float product of two floats is their exact product rounded once:
         * the same bits as sqi_dequant's double arithmetic.
         */
        struct rep2_k k = {_mm256_set1_ps(scale[c]),   _mm256_set1_ps(zp[c]),
                           _mm256_set1_ps(ctx->t_min), _mm256_set1_ps(ctx->t_max),
                           _mm256_set1_ps(step_f),     _mm256_set1_ps(z_f)};
        struct rep2 st;
        memset(&st, 0, sizeof st);
        if (k1)
            rep2_channel(&k, cw, cq, len, true, &st, res, rtn_res);
        else
            rep2_channel(&k, cw, cq, len, false, &st, res, rtn_res);
        rep->sse += fold_pd(st.acc);
        rep->rtn_sse += fold_pd(st.rtn_acc);
        double cm = max_pd(st.cmx);
        rep->max_abs = sqi_dmax(rep->max_abs, sqi_dmax(cm, max_pd(st.mx)));
        rep->rtn_max_abs = sqi_dmax(rep->rtn_max_abs, sqi_dmax(cm, max_pd(st.rtn_mx)));
        rep->flips += st.flips;
        rep->weights += len;
        if (!k1) {
            sqi_report_residuals(ctx, res, rtn_res, rep);
            continue;
        }
        /* the float maxima convert exactly: the max of their doubles */
        double e = max_ps(st.ekmx);
        double km = sqi_dmax(e, sqi_dmax(max_ps(st.kmx_f), max_pd(st.kmx)));
        double rkm = sqi_dmax(e, sqi_dmax(max_ps(st.rtn_kmx_f), max_pd(st.rtn_kmx)));
        rep->max_kernel_residual = sqi_dmax(rep->max_kernel_residual, km);
        rep->rtn_max_kernel_residual = sqi_dmax(rep->rtn_max_kernel_residual, rkm);
        rep->max_channel_residual = sqi_dmax(rep->max_channel_residual, fabs(fold_pd(st.chan)));
        rep->rtn_max_channel_residual =
            sqi_dmax(rep->rtn_max_channel_residual, fabs(fold_pd(st.rtn_chan)));
    }
}

/*
 * Element types: sizes, safetensors names, and conversion of the floating
 * types to float32.
 */
#include <assert.h>
#include <string.h>

#include "formats.h"

static const struct {
    const char *name;
    size_t size;
    bool quantizable;
} dtype_table[SQ_DTYPE_COUNT] = {
    [SQ_DTYPE_F32] = {"F32", 4, true},          [SQ_DTYPE_F16] = {"F16", 2, true},
    [SQ_DTYPE_BF16] = {"BF16", 2, true},        [SQ_DTYPE_F64] = {"F64", 8, true},
    [SQ_DTYPE_F8_E4M3] = {"F8_E4M3", 1, false}, [SQ_DTYPE_F8_E5M2] = {"F8_E5M2", 1, false},
    [SQ_DTYPE_I8] = {"I8", 1, false},           [SQ_DTYPE_U8] = {"U8", 1, false},
    [SQ_DTYPE_I16] = {"I16", 2, false},         [SQ_DTYPE_U16] = {"U16", 2, false},
    [SQ_DTYPE_I32] = {"I32", 4, false},         [SQ_DTYPE_U32] = {"U32", 4, false},
    [SQ_DTYPE_I64] = {"I64", 8, false},         [SQ_DTYPE_U64] = {"U64", 8, false},
    [SQ_DTYPE_BOOL] = {"BOOL", 1, false},
};

size_t sq_dtype_size(enum sq_dtype dtype)
{
    if ((unsigned)dtype >= SQ_DTYPE_COUNT)
        return 0;
    return dtype_table[dtype].size;
}

const char *sq_dtype_name(enum sq_dtype dtype)
{
    if ((unsigned)dtype >= SQ_DTYPE_COUNT)
        return "unknown";
    return dtype_table[dtype].name;
}

enum sq_status sq_dtype_from_name(const char *name, enum sq_dtype *out)
{
    if (!name)
        return SQ_ERR_DTYPE;
    for (unsigned i = 0; i < SQ_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (enum sq_dtype)i;
            return SQ_OK;
        }
    }
    return SQ_ERR_DTYPE;
}

bool sq_dtype_is_quantizable(enum sq_dtype dtype)
{
    return (unsigned)dtype < SQ_DTYPE_COUNT && dtype_table[dtype].quantizable;
}

static float f32_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* IEEE binary16 -> binary32, exact for every input (subnormals, inf, NaN payloads). */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f)
        return f32_from_bits(sign | 0x7f800000u | mant << 13);
    if (exp != 0)
        return f32_from_bits(sign | (exp + 112) << 23 | mant << 13);
    if (mant == 0)
        return f32_from_bits(sign);
    /* Subnormal: mant * 2^-24. Shift the leading one up to bit 10. */
    uint32_t e = 113;
    while (!(mant & 0x400u)) {
        mant <<= 1;
        e--;
    }
    return f32_from_bits(sign | e << 23 | (mant & 0x3ffu) << 13);
}

void sq_tensor_to_f32(const struct sq_tensor *t, size_t first, size_t count, float *out)
{
    assert(t && out);
    assert(sq_dtype_is_quantizable(t->dtype));
    assert(first <= t->nelems && count <= t->nelems - first);
    if (count == 0)
        return;
    const uint8_t *p = t->data + first * sq_dtype_size(t->dtype);
    switch (t->dtype) {
    case SQ_DTYPE_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(out, p, count * sizeof(float));
#else
        for (size_t i = 0; i < count; i++)
            out[i] = f32_from_bits(sqi_le32(p + 4 * i));
#endif
        break;
    case SQ_DTYPE_F16:
        for (size_t i = 0; i < count; i++)
            out[i] = f16_to_f32(sqi_le16(p + 2 * i));
        break;
    case SQ_DTYPE_BF16:
        for (size_t i = 0; i < count; i++)
            out[i] = f32_from_bits((uint32_t)sqi_le16(p + 2 * i) << 16);
        break;
    case SQ_DTYPE_F64:
        for (size_t i = 0; i < count; i++) {
            uint64_t bits = sqi_le64(p + 8 * i);
            double d;
            memcpy(&d, &bits, sizeof d);
            out[i] = (float)d; /* round to nearest (the default mode) */
        }
        break;
    default:
        assert(!"sq_tensor_to_f32: dtype is not quantizable");
        break;
    }
}

/* IEEE binary32 -> binary16, round to nearest even. */
static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xffu, mant = x & 0x7fffffu;
    if (exp == 0xff)
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10)
            return (uint16_t)sign;
        mant |= 0x800000u;
        unsigned shift = (unsigned)(14 - e);
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (uint32_t)e << 10 | mant >> 13, rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++; /* may carry into the exponent: still correct, up to inf */
    return (uint16_t)(sign | h);
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* n float32 values as `dt` elements, little-endian. */
void sq_tensor_from_f32(enum sq_dtype dt, const float *src, size_t n, uint8_t *dst)
{
    for (size_t i = 0; i < n; i++) {
        switch (dt) {
        case SQ_DTYPE_F32:
            memcpy(dst + 4 * i, &src[i], 4);
            break;
        case SQ_DTYPE_F64: {
            double d = src[i];
            memcpy(dst + 8 * i, &d, 8);
            break;
        }
        default: {
            uint16_t h = dt == SQ_DTYPE_F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
            dst[2 * i] = (uint8_t)h;
            dst[2 * i + 1] = (uint8_t)(h >> 8);
            break;
        }
        }
    }
}

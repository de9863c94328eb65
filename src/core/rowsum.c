/*
 * The f32 row sum in the exact order of PyTorch's CPU torch.sum (8-lane
 * build), SQUANT-SPEC section 5. SQuant decides directions and flip counts
 * from this sum, so its last bit matters: any other order changes codes.
 */
#include "core.h"

void sqi_cascade_params(size_t g, size_t *block, unsigned *power)
{
    unsigned c = 1;
    if (g > 2) {
        c = 0;
        for (size_t v = g - 1; v; v >>= 1)
            c++;
    }
    unsigned p = c / 4;
    if (p < 4)
        p = 4;
    *power = p;
    *block = (size_t)1 << p;
}

/*
 * Cascade sum of `lanes`-wide items: item t is v[base + t*stride + l] for
 * lane l. Writes the `lanes` results to out.
 */
static void cascade(const float *v, size_t g, size_t stride, size_t lanes, float *out)
{
    size_t block;
    unsigned p;
    sqi_cascade_params(g, &block, &p);
    float acc[4][8] = {{0}};
    size_t i = 0;
    while (i + block <= g) {
        for (size_t j = 0; j < block; j++, i++)
            for (size_t l = 0; l < lanes; l++)
                acc[0][l] += v[i * stride + l];
        for (unsigned j = 1; j < 4; j++) {
            for (size_t l = 0; l < lanes; l++) {
                acc[j][l] += acc[j - 1][l];
                acc[j - 1][l] = 0.0f;
            }
            size_t mask = (block - 1) << (j * p);
            if (j * p < sizeof(size_t) * 8 && (i & mask) != 0)
                break;
        }
    }
    for (; i < g; i++)
        for (size_t l = 0; l < lanes; l++)
            acc[0][l] += v[i * stride + l];
    for (size_t l = 0; l < lanes; l++)
        out[l] = ((acc[0][l] + acc[1][l]) + acc[2][l]) + acc[3][l];
}

/*
 * Rows under 32 elements (every kernel up to 5x5) have no cascade levels:
 * the same additions as the general code below, written out (the +0.0 of
 * the empty accumulators included: they turn -0.0 into +0.0).
 */
static float rowsum_short(const float *v, size_t n)
{
    if (n >= 8) {
        size_t nv = n / 8;
        float a[8];
        for (size_t l = 0; l < 8; l++) {
            a[l] = 0.0f;
            for (size_t j = 0; j < nv; j++)
                a[l] += v[8 * j + l];
            a[l] = ((a[l] + 0.0f) + 0.0f) + 0.0f; /* A0 += A1, A2, A3 (all zero) */
        }
        float s = 0.0f;
        for (size_t i = 8 * nv; i < n; i++)
            s += v[i];
        for (size_t l = 0; l < 8; l++)
            s += a[l];
        return s;
    }
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    size_t first = n >= 4 ? 4 : 0;
    for (size_t k = 0; k < first; k++)
        a[k] += v[k];
    for (size_t i = first; i < n; i++)
        a[0] += v[i];
    return ((a[0] + a[1]) + a[2]) + a[3];
}

float sqi_rowsum(const float *v, size_t n)
{
    if (n < 32)
        return rowsum_short(v, n);
    if (n >= 8) {
        size_t nv = n / 8, g = nv / 4;
        float a[4][8];
        /* A_k: cascade sum of vectors 4t + k: item stride 32 floats, 8 lanes. */
        for (size_t k = 0; k < 4; k++)
            cascade(v + 8 * k, g, 32, 8, a[k]);
        for (size_t j = 4 * g; j < nv; j++)
            for (size_t l = 0; l < 8; l++)
                a[0][l] += v[8 * j + l];
        for (size_t k = 1; k < 4; k++)
            for (size_t l = 0; l < 8; l++)
                a[0][l] += a[k][l];
        float s = 0.0f;
        for (size_t i = 8 * nv; i < n; i++)
            s += v[i];
        for (size_t l = 0; l < 8; l++)
            s += a[0][l];
        return s;
    }
    size_t g = n / 4;
    float a[4];
    for (size_t k = 0; k < 4; k++)
        cascade(v + k, g, 4, 1, &a[k]);
    for (size_t i = 4 * g; i < n; i++)
        a[0] += v[i];
    return ((a[0] + a[1]) + a[2]) + a[3];
}

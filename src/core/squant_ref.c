/*
 * The scalar reference: SQUANT-SPEC written out literally, one channel at a
 * time, with the full arrays of section 4 and sorted orders. It is the
 * oracle the optimized implementations are tested against, always compiled.
 * Ties in the sorts go to the lower index (section 7, "stable").
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

struct ref_arrays {
    float *x, *r, *e;
    float *up_code, *up_err, *up_pri;
    float *dn_code, *dn_err, *dn_pri;
    float *code, *err, *p_up, *p_dn;
    uint32_t *ord_up, *ord_dn, *tmp;
};

#define REF_FLOAT_ARRAYS 13
#define REF_INDEX_ARRAYS 3

static void ref_layout(void *scratch, size_t len, struct ref_arrays *a)
{
    float *f = scratch;
    float **fields[REF_FLOAT_ARRAYS] = {&a->x,      &a->r,      &a->e,      &a->up_code, &a->up_err,
                                        &a->up_pri, &a->dn_code, &a->dn_err, &a->dn_pri, &a->code,
                                        &a->err,    &a->p_up,   &a->p_dn};
    for (size_t i = 0; i < REF_FLOAT_ARRAYS; i++)
        *fields[i] = f + i * len;
    uint32_t *u = (uint32_t *)(f + REF_FLOAT_ARRAYS * len);
    a->ord_up = u;
    a->ord_dn = u + len;
    a->tmp = u + 2 * len;
}

size_t sqi_scratch_bytes(size_t len)
{
    /* The reference's arrays are the largest need of any implementation
     * (64 bytes per element); the constant covers the SIMD lists' slack and
     * the alignment sq_quantize_range applies. */
    return len * (REF_FLOAT_ARRAYS * sizeof(float) + REF_INDEX_ARRAYS * sizeof(uint32_t)) + 4096;
}

/*
 * Sort positions [0, n) of a row by priority descending; a stable merge sort,
 * so equal priorities keep ascending positions. `tmp` holds n entries.
 */
static void sort_desc(const float *pri, size_t n, uint32_t *order, uint32_t *tmp)
{
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                tmp[o++] = pri[order[j]] > pri[order[i]] ? order[j++] : order[i++];
            while (i < mid)
                tmp[o++] = order[i++];
            while (j < hi)
                tmp[o++] = order[j++];
        }
        memcpy(order, tmp, n * sizeof *order);
    }
}

/* One stage on one row (SQUANT-SPEC section 6, steps 1 and 4-6). */
static void stage_row(struct ref_arrays *a, size_t base, size_t len, const uint32_t *ord_up,
                      const uint32_t *ord_dn)
{
    float s = sqi_rowsum(a->err + base, len);
    bool up = s < 0.0f;
    const uint32_t *order = up ? ord_up : ord_dn;
    float *p = up ? a->p_up : a->p_dn;
    float *q = up ? a->p_dn : a->p_up;
    const float *d_code = up ? a->up_code : a->dn_code;
    const float *d_err = up ? a->up_err : a->dn_err;

    float mag = fabsf(s);
    float kf = sqi_rne(mag);
    bool over = kf >= mag;
    size_t k = (size_t)kf;
    assert(k <= len);
    if (k > len)
        k = len;
    for (size_t t = 0; t < k; t++) {
        size_t j = base + order[t];
        a->code[j] = d_code[j];
        a->err[j] = d_err[j];
    }
    if (over) {
        size_t j = base + order[k == 0 ? len - 1 : k - 1];
        q[j] = fabsf(a->err[j]);
    } else if (k < len) {
        size_t j = base + order[k];
        p[j] = fabsf(a->err[j]);
    }
}

static bool ref_channel(const struct sqi_ctx *ctx, const float *w, int8_t *qout, float *scale_out,
                        float *zp_out, struct ref_arrays *a, struct sqi_flips *flips)
{
    size_t len = ctx->len, ks = ctx->ksize;
    float mn = w[0], mx = w[0];
    for (size_t i = 0; i < len; i++) {
        if (!isfinite(w[i]))
            return false;
        mn = fminf(mn, w[i]);
        mx = fmaxf(mx, w[i]);
    }
    float scale, zp;
    sqi_channel_params(ctx, mn, mx, &scale, &zp);

    /* Sections 3 and 4. */
    for (size_t i = 0; i < len; i++) {
        float x = sqi_code_x(scale, zp, w[i]);
        float r = sqi_rne(x);
        float e = r - x;
        a->x[i] = x;
        a->r[i] = r;
        a->e[i] = e;
        if (e < 0.0f && x < ctx->t_max) {
            a->up_code[i] = r + 1.0f;
            a->up_err[i] = e + 1.0f;
            a->up_pri[i] = -e;
        } else {
            a->up_code[i] = r;
            a->up_err[i] = 0.0f;
            a->up_pri[i] = 0.0f;
        }
        if (e > 0.0f && x > ctx->t_min) {
            a->dn_code[i] = r - 1.0f;
            a->dn_err[i] = e - 1.0f;
            a->dn_pri[i] = e;
        } else {
            a->dn_code[i] = r;
            a->dn_err[i] = 0.0f;
            a->dn_pri[i] = 0.0f;
        }
        a->code[i] = r;
        a->err[i] = e;
        a->p_up[i] = a->up_pri[i];
        a->p_dn[i] = a->dn_pri[i];
    }

    if (ctx->kernel_stage) {
        for (size_t b = 0; b < len; b += ks) {
            sort_desc(a->p_up + b, ks, a->ord_up + b, a->tmp);
            sort_desc(a->p_dn + b, ks, a->ord_dn + b, a->tmp);
        }
        memset(a->p_up, 0, len * sizeof(float));
        memset(a->p_dn, 0, len * sizeof(float));
        for (size_t b = 0; b < len; b += ks)
            stage_row(a, b, ks, a->ord_up + b, a->ord_dn + b);
        for (size_t i = 0; i < len; i++)
            flips->kernel += sqi_clamp_code(ctx, a->code[i]) != sqi_clamp_code(ctx, a->r[i]);
    }
    if (ctx->channel_stage) {
        /* x is not read again: it keeps the codes from before this stage. */
        float *before = a->x;
        memcpy(before, a->code, len * sizeof(float));
        sort_desc(a->p_up, len, a->ord_up, a->tmp);
        sort_desc(a->p_dn, len, a->ord_dn, a->tmp);
        stage_row(a, 0, len, a->ord_up, a->ord_dn);
        for (size_t i = 0; i < len; i++)
            flips->channel += sqi_clamp_code(ctx, a->code[i]) != sqi_clamp_code(ctx, before[i]);
    }
    for (size_t i = 0; i < len; i++)
        qout[i] = sqi_clamp_code(ctx, a->code[i]);
    *scale_out = scale;
    *zp_out = zp;
    return true;
}

size_t sqi_quantize_ref(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q,
                        float *scale, float *zp, void *scratch, struct sqi_flips *flips)
{
    struct ref_arrays a;
    ref_layout(scratch, ctx->len, &a);
    for (size_t c = 0; c < n; c++) {
        size_t off = c * ctx->len;
        if (!ref_channel(ctx, w + off, q + off, scale + c, zp + c, &a, flips))
            return c;
    }
    return n;
}

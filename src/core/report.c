/*
 * The quality report: dequantization error of the chosen codes and of round
 * to nearest, residuals sum(q - x) per kernel and channel, and flips. It
 * recomputes x from the reference scale and zero point, so it is an
 * independent check of what the implementation wrote.
 *
 * Every implementation of the report gives the same bits: the sums of
 * squares of a channel go into eight accumulators, element i into i % 8,
 * folded in lane order (so eight lanes of doubles can compute them), and the
 * residual sums are sequential over a kernel's elements, and a channel's
 * kernel sums go into eight accumulators the same way (sqi_report_residuals).
 * Per element i of a channel, with x = f32(f32(scale w) - zp), rq =
 * clamp(roundeven(x)) (round to nearest) and deq(v) = sqi_dequant(v):
 *   d = deq(q) - w, rd = deq(rq) - w (doubles): sums of squares, max |.|;
 *   q - x, rq - x (doubles): the kernel and channel residuals;
 *   q != rq: a flip.
 * The pass over the elements is report_body.h, compiled for each ISA.
 */
#include "core.h"
#include "report_body.h"

double sqi_fold8(const double *lanes)
{
    double s = lanes[0];
    for (int l = 1; l < 8; l++)
        s += lanes[l];
    return s;
}

/*
 * The sums of eight kernels of ks elements (r[l * ks ...] for kernel l),
 * each in its own order (t = 0, 1, ...) and in its own variable, so that
 * the compiler keeps the eight chains in registers (an array spills).
 */
static inline __attribute__((always_inline)) void kernel_sums8(const double *r, size_t ks,
                                                               double *out)
{
    double k0 = 0.0, k1 = 0.0, k2 = 0.0, k3 = 0.0, k4 = 0.0, k5 = 0.0, k6 = 0.0, k7 = 0.0;
    for (size_t t = 0; t < ks; t++) {
        k0 += r[t];
        k1 += r[ks + t];
        k2 += r[2 * ks + t];
        k3 += r[3 * ks + t];
        k4 += r[4 * ks + t];
        k5 += r[5 * ks + t];
        k6 += r[6 * ks + t];
        k7 += r[7 * ks + t];
    }
    out[0] = k0;
    out[1] = k1;
    out[2] = k2;
    out[3] = k3;
    out[4] = k4;
    out[5] = k5;
    out[6] = k6;
    out[7] = k7;
}

/* One side's kernel sums (max |.|) and channel sum (kernel j into lane j % 8). */
static void residual_side(const double *res, size_t ks, size_t nk, double *kmax, double *cmax)
{
    double chan[8] = {0}, km = *kmax;
    size_t j = 0;
    for (; j + 8 <= nk; j += 8) {
        double k[8];
        if (ks == 9) /* 3x3: a constant trip count the compiler unrolls */
            kernel_sums8(res + j * 9, 9, k);
        else
            kernel_sums8(res + j * ks, ks, k);
        for (size_t l = 0; l < 8; l++) {
            km = sqi_dmax(km, fabs(k[l]));
            chan[l] += k[l];
        }
    }
    for (; j < nk; j++) {
        double kern = 0.0;
        for (size_t t = 0; t < ks; t++)
            kern += res[j * ks + t];
        km = sqi_dmax(km, fabs(kern));
        chan[j & 7] += kern;
    }
    *kmax = km;
    *cmax = sqi_dmax(*cmax, fabs(sqi_fold8(chan)));
}

void sqi_report_residuals(const struct sqi_ctx *ctx, const double *res, const double *rtn_res,
                          struct sq_report *rep)
{
    residual_side(res, ctx->ksize, ctx->kernels, &rep->max_kernel_residual,
                  &rep->max_channel_residual);
    residual_side(rtn_res, ctx->ksize, ctx->kernels, &rep->rtn_max_kernel_residual,
                  &rep->rtn_max_channel_residual);
}

/*
 * The definition, one element at a time in double: the reference
 * implementation's report, against which the tests compare every other
 * implementation's bits.
 */
void sqi_report_ref(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                    const float *scale, const float *zp, double *tmp, struct sq_report *rep)
{
    size_t len = ctx->len;
    double *res = tmp, *rtn_res = tmp + len;
    for (size_t c = 0; c < n; c++) {
        const float *cw = w + c * len;
        const int8_t *cq = q + c * len;
        double step = sqi_public_step(scale[c]), z = sqi_public_zero_point(zp[c]);
        double acc[8] = {0}, rtn_acc[8] = {0};
        for (size_t i = 0; i < len; i++) {
            float x = sqi_code_x(scale[c], zp[c], cw[i]);
            int8_t rq = sqi_clamp_code(ctx, sqi_rne(x));
            double d = (double)sqi_dequant(cq[i], step, z) - (double)cw[i];
            double rd = (double)sqi_dequant(rq, step, z) - (double)cw[i];
            acc[i & 7] += d * d;
            rtn_acc[i & 7] += rd * rd;
            rep->max_abs = sqi_dmax(rep->max_abs, fabs(d));
            rep->rtn_max_abs = sqi_dmax(rep->rtn_max_abs, fabs(rd));
            res[i] = (double)cq[i] - (double)x;
            rtn_res[i] = (double)rq - (double)x;
            rep->flips += cq[i] != rq;
        }
        rep->sse += sqi_fold8(acc);
        rep->rtn_sse += sqi_fold8(rtn_acc);
        sqi_report_residuals(ctx, res, rtn_res, rep);
    }
    rep->weights += (uint64_t)n * len;
}

/* The same bits, written for the vectorizer (report_body.h) and compiled for the baseline ISA. */
void sqi_report_channels(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                         const float *scale, const float *zp, double *tmp, struct sq_report *rep)
{
    sqi_report_body(ctx, n, w, q, scale, zp, tmp, rep);
}

void sq_dequantize(const int8_t *codes, size_t n, float scale, float zero_point, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = sqi_dequant(codes[i], scale, zero_point);
}

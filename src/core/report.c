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

/* Max and lane bookkeeping of one kernel's residuals. */
static inline void kernel_done(struct sq_report *rep, double kern, double rtn_kern, size_t j,
                               double *chan, double *rtn_chan)
{
    rep->max_kernel_residual = sqi_dmax(rep->max_kernel_residual, fabs(kern));
    rep->rtn_max_kernel_residual = sqi_dmax(rep->rtn_max_kernel_residual, fabs(rtn_kern));
    chan[j & 7] += kern;
    rtn_chan[j & 7] += rtn_kern;
}

void sqi_report_residuals(const struct sqi_ctx *ctx, const double *res, const double *rtn_res,
                          struct sq_report *rep)
{
    size_t ks = ctx->ksize, nk = ctx->kernels, j = 0;
    double chan[8] = {0}, rtn_chan[8] = {0};
    /* Eight kernels at a time, each summed in its own order: eight independent chains. */
    for (; j + 8 <= nk; j += 8) {
        double kern[8] = {0}, rtn_kern[8] = {0};
        for (size_t t = 0; t < ks; t++) {
            _Pragma("GCC unroll 8") for (size_t l = 0; l < 8; l++)
            {
                kern[l] += res[(j + l) * ks + t];
                rtn_kern[l] += rtn_res[(j + l) * ks + t];
            }
        }
        for (size_t l = 0; l < 8; l++)
            kernel_done(rep, kern[l], rtn_kern[l], j + l, chan, rtn_chan);
    }
    for (; j < nk; j++) {
        double kern = 0.0, rtn_kern = 0.0;
        for (size_t t = 0; t < ks; t++) {
            kern += res[j * ks + t];
            rtn_kern += rtn_res[j * ks + t];
        }
        kernel_done(rep, kern, rtn_kern, j, chan, rtn_chan);
    }
    rep->max_channel_residual = sqi_dmax(rep->max_channel_residual, fabs(sqi_fold8(chan)));
    rep->rtn_max_channel_residual =
        sqi_dmax(rep->rtn_max_channel_residual, fabs(sqi_fold8(rtn_chan)));
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

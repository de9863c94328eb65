/*
 * The quality report: dequantization error of the chosen codes and of round
 * to nearest, residuals sum(q - x) per kernel and channel, and flips. It
 * recomputes x from the reference scale and zero point, so it is an
 * independent check of what the implementation wrote.
 */
#include "core.h"

void sqi_report_channels(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                         const float *scale, const float *zp, struct sq_report *rep)
{
    size_t len = ctx->len, ks = ctx->ksize;
    for (size_t c = 0; c < n; c++) {
        const float *cw = w + c * len;
        const int8_t *cq = q + c * len;
        double step = sqi_public_step(scale[c]), z = sqi_public_zero_point(zp[c]);
        double chan = 0.0, rtn_chan = 0.0;
        for (size_t b = 0; b < len; b += ks) {
            double kern = 0.0, rtn_kern = 0.0;
            for (size_t i = b; i < b + ks; i++) {
                float x = sqi_code_x(scale[c], zp[c], cw[i]);
                int8_t rq = sqi_clamp_code(ctx, sqi_rne(x));
                double d = (double)sqi_dequant(cq[i], step, z) - (double)cw[i];
                double rd = (double)sqi_dequant(rq, step, z) - (double)cw[i];
                rep->sse += d * d;
                rep->rtn_sse += rd * rd;
                if (fabs(d) > rep->max_abs)
                    rep->max_abs = fabs(d);
                if (fabs(rd) > rep->rtn_max_abs)
                    rep->rtn_max_abs = fabs(rd);
                kern += (double)cq[i] - (double)x;
                rtn_kern += (double)rq - (double)x;
                rep->flips += cq[i] != rq;
            }
            if (fabs(kern) > rep->max_kernel_residual)
                rep->max_kernel_residual = fabs(kern);
            if (fabs(rtn_kern) > rep->rtn_max_kernel_residual)
                rep->rtn_max_kernel_residual = fabs(rtn_kern);
            chan += kern;
            rtn_chan += rtn_kern;
        }
        if (fabs(chan) > rep->max_channel_residual)
            rep->max_channel_residual = fabs(chan);
        if (fabs(rtn_chan) > rep->rtn_max_channel_residual)
            rep->rtn_max_channel_residual = fabs(rtn_chan);
    }
    rep->weights += (uint64_t)n * len;
}

void sq_dequantize(const int8_t *codes, size_t n, float scale, float zero_point, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = sqi_dequant(codes[i], scale, zero_point);
}

/*
 * The report's per-element pass, written once with GNU C vectors and
 * compiled per ISA: report.c (the baseline: SSE2 on
 * x86-64, NEON on aarch64) and the x86 kernels' files (AVX2, AVX-512) each
 * include it. Every operation is the scalar definition's (report.c's
 * comment), in the same order per lane: element i of a channel goes into
 * lane i % 8 of every sum, so the bits are the same whatever the vector
 * width. Blocks of eight elements are eight independent lanes, which is
 * what GNU C vectors express; the dequantization runs in float while the
 * zero point allows it exactly (below), and the residuals of a channel of
 * 1-element kernels stay in the lanes instead of going through memory.
 */
#ifndef SQ_REPORT_BODY_H
#define SQ_REPORT_BODY_H

#include <stddef.h>

#include "core.h"
#include "vec.h"

/* max without fmax's NaN rules (none occur here), so it compiles to one instruction. */
static inline double sqi_dmax(double a, double b)
{
    return b > a ? b : a;
}

/* float lanes to double lanes, written per lane: GCC 12 splits __builtin_convertvector's */
static inline __attribute__((always_inline)) sqi_vd sqi_f2d(sqi_vf v)
{
    sqi_vd r;
    for (int l = 0; l < SQI_DW; l++)
        r[l] = (double)v[l];
    return r;
}

/* m ? a : b, lane-wise (m: all ones or zero) */
#define SQI_SELF(m, a, b) ((sqi_vf)(((m) & (sqi_vi)(a)) | (~(m) & (sqi_vi)(b))))
#define SQI_SELD(m, a, b) ((sqi_vd)(((m) & (sqi_vl)(a)) | (~(m) & (sqi_vl)(b))))
#define SQI_ABSD(v) ((sqi_vd)((sqi_vl)(v) & (INT64_MAX + (sqi_vl){0})))
#define SQI_MAXD(a, b) SQI_SELD((b) > (a), b, a)

/*
 * The maxima of the report (of |values|, never NaN): b > a ? b : a, which
 * is what x86's maxpd(b, a) computes; GCC does not find maxpd in the select.
 */
#if defined(__SSE2__) && SQI_DW == 2
#define SQI_REP_MAXD(a, b) ((sqi_vd)__builtin_ia32_maxpd((b), (a)))
#elif defined(__AVX__) && SQI_DW == 4
#define SQI_REP_MAXD(a, b) ((sqi_vd)__builtin_ia32_maxpd256((b), (a)))
#else
#define SQI_REP_MAXD(a, b) SQI_MAXD(a, b)
#endif

/* Per-lane state of one channel's pass, one per step j of a block (lanes j * DW ...). */
struct sqi_rep_lanes {
    sqi_vd acc, rtn_acc;
    sqi_vd chan, rtn_chan; /* k1 only */
};

/* Maxima and counts need no lane order: one set for every step (fewer registers). */
struct sqi_rep_max {
    sqi_vd mx, rtn_mx, cmx;    /* cmx: of lanes without flips, for both */
    sqi_vd kmx, rtn_kmx, ckmx; /* k1 only */
    sqi_vi flips;
};

/* Whether any lane of v is nonzero. */
static inline bool sqi_vi_any(sqi_vi v)
{
    uint64_t u[SQI_DW / 2], o = 0;
    memcpy(u, &v, sizeof u);
    for (int l = 0; l < SQI_DW / 2; l++)
        o |= u[l];
    return o != 0;
}

/* The channel's constants. */
struct sqi_rep_consts {
    float scale, zp, t_min, t_max, step_f, z_f;
    double step, z;
};

/*
 * DW elements (w, q) in lanes j * DW ...; valid: the lanes that count
 * (others are zero in w and q). With float_deq, (q - zero_point) * step is
 * computed in float: while |zero_point| < 2^23, q - zero_point is an exact
 * float and the float product of two floats is their exact product rounded
 * once, the same bits as sqi_dequant's double arithmetic. k1: kernels of
 * one element, whose residual is the element's (0.0 + r = r up to the sign
 * of a zero, which neither |r| nor the channel sum can see).
 */
static inline __attribute__((always_inline)) void
sqi_rep_step(const float *wp, const float *qp, sqi_vi valid, const struct sqi_rep_consts *k,
             bool float_deq, bool k1, struct sqi_rep_lanes *s, struct sqi_rep_max *m_, double *res,
             double *rtn_res)
{
    sqi_vf wf, qf, zero = {0};
    memcpy(&wf, wp, sizeof wf);
    memcpy(&qf, qp, sizeof qf);
    sqi_vf x = (wf * (zero + k->scale)) - (zero + k->zp);
    /*
     * rq = clamp(roundeven(x)) = roundeven(clamp(x)): rounding is monotonic
     * and the bounds are integers. |clamp(x)| <= 128, where adding and
     * subtracting 1.5 * 2^23 rounds to even. It gives +0.0 where sqi_rne
     * gives -0.0, which nothing below can see (q != rq, and rq's error and
     * residual, whose zero's sign no sum starting at +0.0 nor |.| shows).
     */
    sqi_vf rq = SQI_SELF(x > k->t_min, x, zero + k->t_min);
    rq = SQI_SELF(rq < k->t_max, rq, zero + k->t_max);
    rq = (rq + 0x1.8p23f) - 0x1.8p23f;
    sqi_vi ne = (qf != rq) & valid;
    sqi_vl vl = __builtin_convertvector(valid, sqi_vl);
    sqi_vd wd = sqi_f2d(wf), xd = sqi_f2d(x);
    if (k1 && !sqi_vi_any(ne)) {
        /*
         * No flip in these lanes: q = rq, so d = rd and r = rr bit for bit
         * (the same operations on the same values): computed once, added to
         * both sides. Only with k1: in a kernel layer about half of the
         * blocks have a flip, and a branch on it costs more than it saves.
         */
        sqi_vf dr;
        if (float_deq) {
            dr = (rq - k->z_f) * k->step_f;
        } else {
            sqi_vd zd = (sqi_vd){0} + k->z;
            dr = __builtin_convertvector((sqi_f2d(rq) - zd) * k->step, sqi_vf);
        }
        sqi_vd rd = (sqi_vd)((sqi_vl)(sqi_f2d(dr) - wd) & vl), sq = rd * rd;
        s->acc += sq;
        s->rtn_acc += sq;
        m_->cmx = SQI_REP_MAXD(m_->cmx, SQI_ABSD(rd));
        sqi_vd rr = sqi_f2d(rq) - xd;
        if (k1) {
            rr = (sqi_vd)((sqi_vl)rr & vl);
            s->chan += rr;
            s->rtn_chan += rr;
            m_->ckmx = SQI_REP_MAXD(m_->ckmx, SQI_ABSD(rr));
        } else {
            memcpy(res, &rr, sizeof rr);
            memcpy(rtn_res, &rr, sizeof rr);
        }
        return;
    }
    sqi_vf dq, dr;
    if (float_deq) {
        dq = (qf - k->z_f) * k->step_f;
        dr = (rq - k->z_f) * k->step_f;
    } else {
        sqi_vd zd = (sqi_vd){0} + k->z;
        dq = __builtin_convertvector((sqi_f2d(qf) - zd) * k->step, sqi_vf);
        dr = __builtin_convertvector((sqi_f2d(rq) - zd) * k->step, sqi_vf);
    }
    /* invalid lanes get +0.0, which changes no sum (they start at +0.0) nor max */
    sqi_vd d = (sqi_vd)((sqi_vl)(sqi_f2d(dq) - wd) & vl);
    sqi_vd rd = (sqi_vd)((sqi_vl)(sqi_f2d(dr) - wd) & vl);
    s->acc += d * d;
    s->rtn_acc += rd * rd;
    m_->mx = SQI_REP_MAXD(m_->mx, SQI_ABSD(d));
    m_->rtn_mx = SQI_REP_MAXD(m_->rtn_mx, SQI_ABSD(rd));
    m_->flips -= ne;
    sqi_vd r = sqi_f2d(qf) - xd;
    sqi_vd rr = sqi_f2d(rq) - xd;
    if (k1) {
        r = (sqi_vd)((sqi_vl)r & vl);
        rr = (sqi_vd)((sqi_vl)rr & vl);
        s->chan += r;
        s->rtn_chan += rr;
        m_->kmx = SQI_REP_MAXD(m_->kmx, SQI_ABSD(r));
        m_->rtn_kmx = SQI_REP_MAXD(m_->rtn_kmx, SQI_ABSD(rr));
    } else {
        memcpy(res, &r, sizeof r);
        memcpy(rtn_res, &rr, sizeof rr);
    }
}

static inline __attribute__((always_inline)) void
sqi_rep_channel(const struct sqi_ctx *ctx, const float *cw, const int8_t *cq, float scale, float zp,
                bool float_deq, bool k1, struct sqi_rep_lanes *out, struct sqi_rep_max *out_max,
                double *res, double *rtn_res)
{
    /* Local copies the compiler keeps in registers (after unrolling j). */
    struct sqi_rep_lanes s[SQI_NV] = {0};
    struct sqi_rep_max mx = {0};
    size_t len = ctx->len, i = 0;
    struct sqi_rep_consts k = {
        scale, zp, ctx->t_min, ctx->t_max, sqi_public_step(scale), sqi_public_zero_point(zp),
        0.0,   0.0};
    k.step = k.step_f;
    k.z = k.z_f;
    sqi_vi all = {0};
    all -= 1;
    /* The codes as floats, a chunk at a time: a loop any vectorizer makes one conversion. */
    enum { CHUNK = 256 };
    float qc[CHUNK];
    for (; i + 8 <= len;) {
        size_t n = (len - i) / 8 * 8;
        n = n < CHUNK ? n : CHUNK;
        for (size_t t = 0; t < n; t++)
            qc[t] = (float)cq[i + t];
        for (size_t b = 0; b < n; b += 8, i += 8) {
            _Pragma("GCC unroll 8") for (size_t j = 0; j < SQI_NV; j++)
                sqi_rep_step(cw + i + j * SQI_DW, qc + b + j * SQI_DW, all, &k, float_deq, k1,
                             &s[j], &mx, res + i + j * SQI_DW, rtn_res + i + j * SQI_DW);
        }
    }
    if (i < len) {
        /* The last m < 8 elements, zero-padded; residuals land in a local buffer. */
        size_t m = len - i;
        float wb[8] = {0}, qb[8] = {0};
        double r[8], rr[8];
        memcpy(wb, cw + i, m * sizeof(float));
        for (size_t l = 0; l < m; l++)
            qb[l] = (float)cq[i + l];
        for (size_t j = 0; j < SQI_NV; j++) {
            sqi_vi valid = {0};
            for (size_t l = 0; l < SQI_DW; l++)
                valid[l] = j * SQI_DW + l < m ? -1 : 0;
            sqi_rep_step(wb + j * SQI_DW, qb + j * SQI_DW, valid, &k, float_deq, k1, &s[j], &mx,
                         r + j * SQI_DW, rr + j * SQI_DW);
        }
        if (!k1) {
            memcpy(res + i, r, m * sizeof(double));
            memcpy(rtn_res + i, rr, m * sizeof(double));
        }
    }
    memcpy(out, s, sizeof s);
    *out_max = mx;
}

/* The eight lanes of one double field of the per-step states, in lane order. */
static inline void sqi_rep_gather(const struct sqi_rep_lanes *s, size_t off, double *lanes)
{
    for (size_t j = 0; j < SQI_NV; j++)
        memcpy(lanes + j * SQI_DW, (const char *)&s[j] + off, sizeof(sqi_vd));
}

static inline double sqi_rep_maxv(sqi_vd v)
{
    double m = v[0];
    for (int l = 1; l < SQI_DW; l++)
        m = sqi_dmax(m, v[l]);
    return m;
}

/* The report of n channels (core.h's sqi_report_fn). */
static inline __attribute__((always_inline)) void
sqi_report_body(const struct sqi_ctx *ctx, size_t n, const float *w, const int8_t *q,
                const float *scale, const float *zp, double *tmp, struct sq_report *rep)
{
    size_t len = ctx->len;
    double *res = tmp, *rtn_res = tmp + len;
    bool k1 = ctx->ksize == 1;
    for (size_t c = 0; c < n; c++) {
        const float *cw = w + c * len;
        const int8_t *cq = q + c * len;
        struct sqi_rep_lanes s[SQI_NV];
        struct sqi_rep_max m;
        bool float_deq = fabsf(sqi_public_zero_point(zp[c])) < 0x1p23f;
        /* Four specializations, so that no lane loop tests a flag. */
        if (float_deq && k1)
            sqi_rep_channel(ctx, cw, cq, scale[c], zp[c], true, true, s, &m, res, rtn_res);
        else if (float_deq)
            sqi_rep_channel(ctx, cw, cq, scale[c], zp[c], true, false, s, &m, res, rtn_res);
        else if (k1)
            sqi_rep_channel(ctx, cw, cq, scale[c], zp[c], false, true, s, &m, res, rtn_res);
        else
            sqi_rep_channel(ctx, cw, cq, scale[c], zp[c], false, false, s, &m, res, rtn_res);
        double lanes[8];
#define SQI_LANES(f) (sqi_rep_gather(s, offsetof(struct sqi_rep_lanes, f), lanes), lanes)
        rep->sse += sqi_fold8(SQI_LANES(acc));
        rep->rtn_sse += sqi_fold8(SQI_LANES(rtn_acc));
        double cm = sqi_rep_maxv(m.cmx), ckm = sqi_rep_maxv(m.ckmx);
        rep->max_abs = sqi_dmax(rep->max_abs, sqi_dmax(cm, sqi_rep_maxv(m.mx)));
        rep->rtn_max_abs = sqi_dmax(rep->rtn_max_abs, sqi_dmax(cm, sqi_rep_maxv(m.rtn_mx)));
        for (int l = 0; l < SQI_DW; l++)
            rep->flips += (uint64_t)m.flips[l];
        if (!k1) {
            sqi_report_residuals(ctx, res, rtn_res, rep);
            continue;
        }
        rep->max_kernel_residual =
            sqi_dmax(rep->max_kernel_residual, sqi_dmax(ckm, sqi_rep_maxv(m.kmx)));
        rep->rtn_max_kernel_residual =
            sqi_dmax(rep->rtn_max_kernel_residual, sqi_dmax(ckm, sqi_rep_maxv(m.rtn_kmx)));
        rep->max_channel_residual =
            sqi_dmax(rep->max_channel_residual, fabs(sqi_fold8(SQI_LANES(chan))));
        rep->rtn_max_channel_residual =
            sqi_dmax(rep->rtn_max_channel_residual, fabs(sqi_fold8(SQI_LANES(rtn_chan))));
#undef SQI_LANES
    }
    rep->weights += (uint64_t)n * len;
}

#endif

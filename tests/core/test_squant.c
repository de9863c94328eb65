/*
 * Property and edge-case tests of the SQuant core (src/core).
 *
 * Property tests quantize thousands of seeded random tensors of many shapes,
 * distributions, bit widths, modes and schemes with every implementation
 * this CPU has, and check that all implementations agree bit for bit and
 * that the reference's invariants hold (SQUANT-SPEC section 9, I1-I7, in the
 * scope it states). Edge-case tests pin the behaviour of section 8 and the
 * worked example of section 11.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squant/squant.h>

#include "core.h"

/* ------------------------------------------------------------------ helpers */

/*
 * Check's ck_assert records its location on every call, which costs a write
 * per assertion; the property loops make millions, so they use this one,
 * which only reaches Check on failure.
 */
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static uint64_t rng;

static uint64_t next_u64(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(void) { return ((double)(next_u64() >> 11) + 0.5) * 0x1p-53; }
static size_t pick(size_t n) { return (size_t)(next_u64() % n); }

static double normal(void)
{
    return sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform());
}

/* The result of one quantization. */
struct result {
    int8_t *q;
    float *scale, *zp;
    struct sq_report report;
};

static enum sq_status quantize(const struct sq_params *p, unsigned rank, const int64_t *shape,
                               const float *w, struct result *out, struct sq_error *err)
{
    struct sq_layer layer;
    enum sq_status st = sq_layer_init(&layer, rank, shape, err);
    if (st != SQ_OK)
        return st;
    size_t n = layer.channels * sq_layer_channel_size(&layer), ss;
    ck_assert(sq_scratch_size(&layer, &ss) == SQ_OK);
    void *scratch = malloc(ss);
    out->q = malloc(n);
    out->scale = malloc(layer.channels * sizeof(float));
    out->zp = malloc(layer.channels * sizeof(float));
    st = sq_quantize_range(p, &layer, w, 0, layer.channels, out->q, out->scale, out->zp, scratch,
                           ss, &out->report, err);
    free(scratch);
    return st;
}

static void result_free(struct result *r)
{
    free(r->q);
    free(r->scale);
    free(r->zp);
}

/* ------------------------------------------------------------- invariants */

struct inv_ctx {
    struct sqi_ctx c;
    enum sq_mode mode;
    const char *what; /* description of the case, for messages */
};

/* Everything the invariants need about one element. */
struct elem {
    float x, r, e, pri_up, pri_dn;
    int q, rtn;
    bool up, dn;
};

/*
 * Check a row (kernel or channel) of n elements against its stage's
 * invariant. S is the f32 row sum of the initial errors in PyTorch's order.
 * `exact_count`: #flips == min(round|S|, #cand) (I5, I7); else within 1 (I6).
 */
static void check_row(const struct inv_ctx *ic, const struct elem *el, size_t n, float S,
                      bool exact_count, double bound, double tol, const char *kind, size_t where)
{
    for (size_t i = 0; i < n; i++)
        if (el[i].r < ic->c.t_min || el[i].r > ic->c.t_max)
            return; /* out of the spec's scope: r beyond the code range (8.6, 8.7) */
    bool up = S < 0.0f;
    size_t cand = 0, flips = 0, flips_dir = 0;
    size_t want = (size_t)sqi_rne(fabsf(S));
    double resid = 0.0;
    for (size_t i = 0; i < n; i++) {
        cand += up ? el[i].up : el[i].dn;
        bool f = el[i].q != el[i].rtn;
        flips += f;
        flips_dir += f && el[i].q - el[i].rtn == (up ? 1 : -1);
        resid += (double)el[i].q - (double)el[i].x;
    }
    size_t expect = want < cand ? want : cand;
    if (exact_count) {
        EXPECT(flips == expect, "%s: %s %zu: %zu flips, expected min(%zu, %zu)", ic->what,
                      kind, where, flips, want, cand);
        EXPECT(flips_dir == flips, "%s: %s %zu: flips in both directions", ic->what, kind,
                      where);
    } else {
        EXPECT(flips + 1 >= expect && flips <= expect + 1,
                      "%s: %s %zu: %zu flips, expected min(%zu, %zu) +- 1", ic->what, kind, where,
                      flips, want, cand);
        if (S != 0.0f)
            EXPECT(flips_dir == flips, "%s: %s %zu: flips in both directions", ic->what,
                          kind, where);
    }
    /* Prefix: a flipped candidate precedes (priority desc, index asc) every unflipped one. */
    for (size_t i = 0; i < n; i++) {
        float pi = up ? el[i].pri_up : el[i].pri_dn;
        bool ci = up ? el[i].up : el[i].dn;
        if (!ci || el[i].q == el[i].rtn)
            continue;
        for (size_t j = 0; j < n; j++) {
            float pj = up ? el[j].pri_up : el[j].pri_dn;
            bool cj = up ? el[j].up : el[j].dn;
            if (!cj || el[j].q != el[j].rtn)
                continue;
            EXPECT(pi > pj || (pi == pj && i < j),
                          "%s: %s %zu: element %zu (priority %g) flipped before %zu (%g)", ic->what,
                          kind, where, i, (double)pi, j, (double)pj);
        }
    }
    if (want <= cand)
        EXPECT(fabs(resid) <= bound + tol, "%s: %s %zu: |sum(q - x)| = %g > %g", ic->what,
                      kind, where, fabs(resid), bound);
}

/* Check I1-I7 on one result (reference convention recomputed from the input). */
static void check_invariants(const struct inv_ctx *ic, const float *w, const struct result *res,
                             size_t channels)
{
    const struct sqi_ctx *c = &ic->c;
    size_t len = c->len, K = c->ksize;
    struct elem *el = malloc(len * sizeof *el);
    float *e = malloc(len * sizeof *e);
    for (size_t o = 0; o < channels; o++) {
        const float *cw = w + o * len;
        float mn = cw[0], mx = cw[0], scale, zp;
        for (size_t i = 0; i < len; i++) {
            mn = fminf(mn, cw[i]);
            mx = fmaxf(mx, cw[i]);
        }
        sqi_channel_params(c, mn, mx, &scale, &zp);
        EXPECT(res->scale[o] == 1.0f / scale && res->zp[o] == 0.0f - zp,
                      "%s: channel %zu: scale/zero point not those of the range", ic->what, o);
        if (c->symmetric)
            EXPECT(res->zp[o] == 0.0f, "res->zp[o] == 0.0f");
        for (size_t i = 0; i < len; i++) {
            struct sqi_elem v = sqi_elem(c, scale, zp, cw[i]);
            struct elem *x = &el[i];
            x->x = v.x;
            x->r = v.r;
            x->e = e[i] = v.e;
            x->up = v.up;
            x->dn = v.down;
            x->pri_up = v.up ? -v.e : 0.0f;
            x->pri_dn = v.down ? v.e : 0.0f;
            x->q = res->q[o * len + i];
            x->rtn = sqi_clamp_code(c, v.r);
            /* I1 */
            EXPECT(x->q >= c->t_min && x->q <= c->t_max, "%s: I1", ic->what);
            if (c->symmetric)
                EXPECT(x->q >= -c->t_max, "%s: symmetric code %d below -t_max", ic->what,
                              x->q);
            /* I2 */
            int fl = sqi_clamp_code(c, floorf(v.x)), ce = sqi_clamp_code(c, ceilf(v.x));
            EXPECT(x->q == fl || x->q == ce, "%s: I2: q %d not in {%d, %d} (x = %g)",
                          ic->what, x->q, fl, ce, (double)v.x);
            /* I3 */
            if (ic->mode == SQ_MODE_RTN)
                EXPECT(x->q == x->rtn, "%s: I3: rtn code %d != round-half-even %d",
                              ic->what, x->q, x->rtn);
            /* I4 */
            if (x->q != x->rtn) {
                double d = fabs((double)x->q - (double)v.x);
                EXPECT(d >= 0.5 && d < 1.0, "%s: I4: flipped |q - x| = %g", ic->what, d);
            }
        }
        bool kstage = c->kernel_stage, cstage = c->channel_stage;
        if (kstage && !cstage) /* I5: squant-k */
            for (size_t b = 0; b < len; b += K)
                check_row(ic, el + b, K, sqi_rowsum(e + b, K), true, 0.5, 1e-5, "kernel", b / K);
        if (kstage && cstage) /* I6: squant with K > 1 */
            for (size_t b = 0; b < len; b += K)
                check_row(ic, el + b, K, sqi_rowsum(e + b, K), false, 1.0, 1e-5, "kernel", b / K);
        if (cstage && !kstage) /* I7: squant-c, or squant with K = 1 */
            check_row(ic, el, len, sqi_rowsum(e, len), true, 0.5, 1e-3, "channel", o);
    }
    free(el);
    free(e);
}

/* ----------------------------------------------------------- generators */

enum dist { D_NORMAL, D_LAPLACE, D_UNIFORM, D_DISCRETE, D_OUTLIER, D_MIXED_EDGE, D_COUNT };
static const char *const dist_names[] = {"normal", "laplace", "uniform", "discrete", "outlier",
                                         "edge"};

static void fill(float *w, size_t channels, size_t len, enum dist d)
{
    double scale = pow(10.0, -3.0 + 4.0 * uniform());
    for (size_t o = 0; o < channels; o++) {
        float *cw = w + o * len;
        int special = d == D_MIXED_EDGE ? (int)pick(8) : -1;
        for (size_t i = 0; i < len; i++) {
            double v;
            switch (d) {
            case D_LAPLACE:
                v = (uniform() < 0.5 ? -1 : 1) * log(uniform());
                break;
            case D_UNIFORM:
                v = uniform() * 2.0 - 1.0;
                break;
            case D_DISCRETE:
                v = (double)((int)pick(41) - 20) * 0.01 / scale;
                break;
            case D_OUTLIER:
                v = normal() * (pick(200) == 0 ? 50.0 : 1.0);
                break;
            default:
                v = normal();
            }
            cw[i] = (float)(v * scale);
            switch (special) { /* SQUANT-SPEC section 8 */
            case 0:
                cw[i] = 0.3f; /* constant channel, absorbed zero point (8.1) */
                break;
            case 1:
                cw[i] = 0.0f; /* all zero (8.2) */
                break;
            case 2:
                cw[i] = 1e-6f; /* constant, exact zero point */
                break;
            case 3:
                cw[i] = 0.25f + (float)pick(3) * 0x1p-25f; /* range below 1e-8 (8.3, 8.7) */
                break;
            case 4:
                cw[i] = i == len / 2 ? 1.0f : 0.0f; /* single nonzero */
                break;
            case 5:
                cw[i] = (float)(normal() * 1e-39); /* subnormals */
                break;
            case 6:
                cw[i] = (float)(normal() * 1e6);
                break;
            default:
                break;
            }
        }
    }
}

/* A random weight shape: conv kernels of many sizes, depthwise, linear, 3-D. */
static unsigned random_shape(int64_t *shape)
{
    static const int64_t ks[][2] = {{1, 1}, {3, 3}, {3, 3}, {5, 5}, {7, 7}, {1, 3},
                                    {3, 1}, {2, 2}, {4, 4}, {1, 5}, {3, 5}, {11, 1}};
    shape[0] = 1 + (int64_t)pick(24);
    switch (pick(5)) {
    case 0: /* linear, channels from 1 to ~2000 elements */
        shape[1] = 1 + (int64_t)(pick(3) == 0 ? pick(2000) : pick(80));
        return 2;
    case 1: /* depthwise */
        shape[1] = 1;
        shape[2] = shape[3] = 3 + 2 * (int64_t)pick(2);
        return 4;
    case 2: /* 3-D [O, I, k] */
        shape[1] = 1 + (int64_t)pick(20);
        shape[2] = 1 + (int64_t)pick(9);
        return 3;
    default: {
        size_t k = pick(sizeof ks / sizeof *ks);
        shape[1] = 1 + (int64_t)pick(40);
        shape[2] = ks[k][0];
        shape[3] = ks[k][1];
        return 4;
    }
    }
}

/* ---------------------------------------------------------------- tests */

#define PROPERTY_ROUNDS 60 /* loop tests, each of TENSORS_PER_ROUND tensors */
#define TENSORS_PER_ROUND 60

START_TEST(test_properties)
{
    rng = 0x5eed0000u + (uint64_t)_i;
    for (int t = 0; t < TENSORS_PER_ROUND; t++) {
        int64_t shape[4];
        unsigned rank = random_shape(shape);
        struct sq_params p;
        sq_params_init(&p);
        p.bits = SQ_BITS_MIN + (unsigned)pick(SQ_BITS_MAX - SQ_BITS_MIN + 1);
        p.mode = (enum sq_mode)pick(SQ_MODE_COUNT);
        p.scheme = pick(4) == 0 ? SQ_SCHEME_SYMMETRIC : SQ_SCHEME_ASYMMETRIC;
        enum dist d = (enum dist)pick(D_COUNT);
        struct sq_layer layer;
        EXPECT(sq_layer_init(&layer, rank, shape, NULL) == SQ_OK, "sq_layer_init(&layer, rank, shape, NULL) == SQ_OK");
        size_t len = sq_layer_channel_size(&layer), n = layer.channels * len;
        float *w = malloc(n * sizeof(float));
        fill(w, layer.channels, len, d);
        char what[200];
        snprintf(what, sizeof what, "round %d tensor %d: %s [%lld,%lld,...] rank %u, %u bits, %s, %s",
                 _i, t, dist_names[d], (long long)shape[0], (long long)shape[1], rank, p.bits,
                 sq_mode_name(p.mode), sq_scheme_name(p.scheme));

        struct result ref;
        struct sq_error err;
        p.impl = SQ_IMPL_REF;
        EXPECT(quantize(&p, rank, shape, w, &ref, &err) == SQ_OK, "%s: %s", what,
                      err.message);
        struct inv_ctx ic = {.mode = p.mode, .what = what};
        struct sq_params cp = p;
        (void)cp;
        {
            /* The same context the library builds. */
            float half = (float)(1u << (p.bits - 1));
            ic.c.bits = p.bits;
            ic.c.half = half;
            ic.c.t_min = -half;
            ic.c.t_max = half - 1.0f;
            ic.c.levels = (float)((1u << p.bits) - 1);
            ic.c.symmetric = p.scheme == SQ_SCHEME_SYMMETRIC;
            ic.c.kernel_stage =
                (p.mode == SQ_MODE_SQUANT || p.mode == SQ_MODE_SQUANT_K) && layer.ksize > 1;
            ic.c.channel_stage = p.mode == SQ_MODE_SQUANT || p.mode == SQ_MODE_SQUANT_C;
            ic.c.kernels = layer.kernels;
            ic.c.ksize = layer.ksize;
            ic.c.len = len;
        }
        check_invariants(&ic, w, &ref, layer.channels);

        for (enum sq_impl impl = SQ_IMPL_GENERIC; impl < SQ_IMPL_COUNT; impl++) {
            if (!sq_impl_available(impl))
                continue;
            struct result other;
            p.impl = impl;
            EXPECT(quantize(&p, rank, shape, w, &other, &err) == SQ_OK, "quantize(&p, rank, shape, w, &other, &err) == SQ_OK");
            EXPECT(memcmp(ref.q, other.q, n) == 0, "%s: %s codes differ from ref", what,
                          sq_impl_name(impl));
            EXPECT(memcmp(ref.scale, other.scale, layer.channels * sizeof(float)) == 0, "memcmp(ref.scale, other.scale, layer.channels * sizeof(float)) == 0");
            EXPECT(memcmp(ref.zp, other.zp, layer.channels * sizeof(float)) == 0, "memcmp(ref.zp, other.zp, layer.channels * sizeof(float)) == 0");
            EXPECT(memcmp(&ref.report, &other.report, sizeof ref.report) == 0,
                          "%s: %s report differs from ref", what, sq_impl_name(impl));
            result_free(&other);
        }
        result_free(&ref);
        free(w);
    }
}
END_TEST

/*
 * Every report implementation against the definition (sqi_report_ref) on
 * inputs no quantization gives: any codes of the range (flips in every
 * lane), scales that put x far outside the code range (clamped round to
 * nearest), zero points beyond 2^23 (no float dequantization), channel
 * lengths of every remainder modulo 16, kernels of 1, 9 and other sizes.
 * The fast paths of the SIMD reports take the exact-float shortcuts only
 * where they give the definition's doubles; this fails if one does not.
 */
START_TEST(test_report_paths)
{
    rng = 0x4e90000u + (uint64_t)_i;
    static const size_t ksizes[] = {1, 1, 9, 9, 2, 3, 4, 25};
    sqi_report_fn impls[4] = {sqi_report_channels, NULL, NULL, NULL};
    const char *names[4] = {"generic", "avx2", "avx512", NULL};
#ifdef SQ_ARCH_X86_64
    if (sqi_cpu_has_avx2())
        impls[1] = sqi_report_avx2;
    if (sqi_cpu_has_avx512())
        impls[2] = sqi_report_avx512;
#endif
    for (int t = 0; t < 40; t++) {
        struct sqi_ctx c;
        memset(&c, 0, sizeof c);
        c.bits = 2 + (unsigned)pick(7);
        c.half = (float)(1u << (c.bits - 1));
        c.t_min = -c.half;
        c.t_max = c.half - 1.0f;
        c.levels = (float)((1u << c.bits) - 1);
        c.ksize = ksizes[pick(sizeof ksizes / sizeof *ksizes)];
        c.kernels = 1 + pick(c.ksize == 1 ? 300 : 40);
        c.len = c.kernels * c.ksize;
        size_t n = 1 + pick(4), len = c.len;
        float *w = malloc(n * len * sizeof(float)), scale[4], zp[4];
        int8_t *q = malloc(n * len);
        double *tmp = malloc(2 * len * sizeof(double));
        fill(w, n, len, (enum dist)pick(D_COUNT));
        for (size_t ch = 0; ch < n; ch++) {
            float mn = w[ch * len], mx = mn;
            for (size_t i = 0; i < len; i++) {
                mn = fminf(mn, w[ch * len + i]);
                mx = fmaxf(mx, w[ch * len + i]);
            }
            sqi_channel_params(&c, mn, mx, &scale[ch], &zp[ch]);
            switch (pick(5)) {
            case 0: /* x up to 4 times beyond the code range: clamped lanes */
                scale[ch] *= (float)(1.0 + 3.0 * uniform());
                break;
            case 4: /* x beyond 2^24, where even rq - x is not an exact float */
                scale[ch] *= ldexpf(1.0f, 20 + (int)pick(20));
                break;
            case 1: /* a zero point beyond 2^23 */
                zp[ch] = (float)((pick(2) ? 1 : -1) * (double)(0x1p24 + (double)pick(1000)));
                break;
            default:
                break;
            }
            int mode = (int)pick(3);
            for (size_t i = 0; i < len; i++) {
                float x = sqi_code_x(scale[ch], zp[ch], w[ch * len + i]);
                int rq = sqi_clamp_code(&c, sqi_rne(x)), v = rq;
                if (mode == 1 || (mode == 0 && pick(10) == 0)) /* flips of one */
                    v = rq + (pick(2) ? 1 : -1);
                else if (mode == 2) /* any code */
                    v = (int)c.t_min + (int)pick((size_t)c.levels + 1);
                v = v < (int)c.t_min ? (int)c.t_min : v > (int)c.t_max ? (int)c.t_max : v;
                q[ch * len + i] = (int8_t)v;
            }
        }
        struct sq_report ref;
        sq_report_init(&ref);
        sqi_report_ref(&c, n, w, q, scale, zp, tmp, &ref);
        for (int m = 0; names[m]; m++) {
            if (!impls[m])
                continue;
            struct sq_report got;
            sq_report_init(&got);
            impls[m](&c, n, w, q, scale, zp, tmp, &got);
            EXPECT(memcmp(&got, &ref, sizeof got) == 0,
                   "round %d case %d: %s report differs from ref (%zu channels of %zu x %zu, %u "
                   "bits): sse %a/%a max %a/%a kernel %a/%a channel %a/%a flips %llu/%llu",
                   _i, t, names[m], n, c.kernels, c.ksize, c.bits, got.sse, ref.sse, got.max_abs,
                   ref.max_abs, got.max_kernel_residual, ref.max_kernel_residual,
                   got.max_channel_residual, ref.max_channel_residual,
                   (unsigned long long)got.flips, (unsigned long long)ref.flips);
        }
        free(w);
        free(q);
        free(tmp);
    }
}
END_TEST

/*
 * Every kernel size with a lane-per-kernel path, in layers whose kernels fill
 * whole blocks of 4, 8 and 16 lanes and leave a tail (the transposed block
 * path and the per-element path both run), at 2 bits (k near K, surplus
 * flips), 3 and 4 bits, with ties (discrete and edge channels): every
 * implementation gives the reference's codes and report.
 */
START_TEST(test_kernel_blocks)
{
    static const int64_t sizes[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 16, 25, 49};
    static const enum dist dists[] = {D_NORMAL, D_DISCRETE, D_MIXED_EDGE, D_UNIFORM};
    static const unsigned bits[] = {2, 3, 4};
    static const int64_t kernels[] = {37, 8, 3};
    int64_t k = sizes[_i];
    rng = 4400 + (uint64_t)_i;
    for (size_t d = 0; d < sizeof dists / sizeof *dists; d++)
        for (size_t b = 0; b < sizeof bits / sizeof *bits; b++)
            for (size_t ni = 0; ni < sizeof kernels / sizeof *kernels; ni++)
                for (int mode = 0; mode < 2; mode++) {
                    int64_t shape[4] = {5, kernels[ni], 1, k};
                    struct sq_layer layer;
                    ck_assert(sq_layer_init(&layer, 4, shape, NULL) == SQ_OK);
                    size_t len = sq_layer_channel_size(&layer), n = layer.channels * len;
                    float *w = malloc(n * sizeof(float));
                    fill(w, layer.channels, len, dists[d]);
                    struct sq_params p;
                    sq_params_init(&p);
                    p.bits = bits[b];
                    p.mode = mode ? SQ_MODE_SQUANT_K : SQ_MODE_SQUANT;
                    struct result ref;
                    p.impl = SQ_IMPL_REF;
                    ck_assert(quantize(&p, 4, shape, w, &ref, NULL) == SQ_OK);
                    for (enum sq_impl impl = SQ_IMPL_GENERIC; impl < SQ_IMPL_COUNT; impl++) {
                        if (!sq_impl_available(impl))
                            continue;
                        struct result other;
                        p.impl = impl;
                        ck_assert(quantize(&p, 4, shape, w, &other, NULL) == SQ_OK);
                        EXPECT(memcmp(ref.q, other.q, n) == 0,
                               "K %lld, %lld kernels, %s, %u bits, %s: %s codes differ from ref",
                               (long long)k, (long long)kernels[ni], dist_names[dists[d]], bits[b],
                               sq_mode_name(p.mode), sq_impl_name(impl));
                        EXPECT(memcmp(&ref.report, &other.report, sizeof ref.report) == 0,
                               "K %lld, %lld kernels, %s, %u bits, %s: %s report differs",
                               (long long)k, (long long)kernels[ni], dist_names[dists[d]], bits[b],
                               sq_mode_name(p.mode), sq_impl_name(impl));
                        result_free(&other);
                    }
                    result_free(&ref);
                    free(w);
                }
}
END_TEST

/* Splitting a tensor into channel ranges gives the same codes and a report that merges. */
START_TEST(test_ranges)
{
    rng = 77;
    int64_t shape[4] = {37, 19, 3, 3};
    struct sq_layer layer;
    ck_assert(sq_layer_init(&layer, 4, shape, NULL) == SQ_OK);
    size_t len = sq_layer_channel_size(&layer), n = layer.channels * len, ss;
    float *w = malloc(n * sizeof(float)), s1[37], z1[37], s2[37], z2[37];
    fill(w, layer.channels, len, D_NORMAL);
    int8_t *q1 = malloc(n), *q2 = malloc(n);
    ck_assert(sq_scratch_size(&layer, &ss) == SQ_OK);
    void *scratch = malloc(ss);
    struct sq_params p;
    sq_params_init(&p);
    struct sq_report whole, part, merged;
    ck_assert(sq_quantize_range(&p, &layer, w, 0, 37, q1, s1, z1, scratch, ss, &whole, NULL) ==
              SQ_OK);
    sq_report_init(&merged);
    size_t cuts[] = {0, 1, 10, 11, 30, 37};
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof *cuts; i++) {
        size_t a = cuts[i], b = cuts[i + 1];
        ck_assert(sq_quantize_range(&p, &layer, w + a * len, a, b, q2 + a * len, s2 + a, z2 + a,
                                    scratch, ss, &part, NULL) == SQ_OK);
        sq_report_merge(&merged, &part);
    }
    ck_assert(memcmp(q1, q2, n) == 0);
    ck_assert(memcmp(s1, s2, sizeof s1) == 0 && memcmp(z1, z2, sizeof z1) == 0);
    ck_assert_uint_eq(merged.weights, whole.weights);
    ck_assert_uint_eq(merged.flips, whole.flips);
    ck_assert_uint_eq(merged.kernel_flips, whole.kernel_flips);
    ck_assert(merged.max_abs == whole.max_abs);
    ck_assert(fabs(merged.sse - whole.sse) <= 1e-12 * whole.sse);
    free(w);
    free(q1);
    free(q2);
    free(scratch);
}
END_TEST

/*
 * Long channels, where PyTorch's cascade sum uses its upper levels (a level
 * closes every 16 groups of 32 elements, the next every 256 groups): every
 * implementation must still give the reference's codes.
 */
START_TEST(test_long_rows)
{
    static const int64_t lens[] = {8191, 8192 * 2 + 37, 65536 + 8, 140001};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        rng = 900 + li;
        int64_t shape[2] = {2, lens[li]};
        size_t n = 2 * (size_t)lens[li];
        float *w = malloc(n * sizeof(float));
        fill(w, 2, (size_t)lens[li], D_NORMAL);
        struct sq_params p;
        sq_params_init(&p);
        p.mode = SQ_MODE_SQUANT_C;
        p.bits = 3;
        struct result ref;
        p.impl = SQ_IMPL_REF;
        ck_assert(quantize(&p, 2, shape, w, &ref, NULL) == SQ_OK);
        for (enum sq_impl impl = SQ_IMPL_GENERIC; impl < SQ_IMPL_COUNT; impl++) {
            if (!sq_impl_available(impl))
                continue;
            struct result other;
            p.impl = impl;
            ck_assert(quantize(&p, 2, shape, w, &other, NULL) == SQ_OK);
            ck_assert_msg(memcmp(ref.q, other.q, n) == 0, "length %lld: %s differs from ref",
                          (long long)lens[li], sq_impl_name(impl));
            result_free(&other);
        }
        result_free(&ref);
        free(w);
    }
}
END_TEST

/*
 * Channels whose rounding errors are nearly all small and of one sign, so
 * that the row sum asks for more flips than there are candidates with a
 * large priority: the optimized channel-only passes first list only the
 * candidates above a threshold made for errors uniform on (0, 0.5), and must
 * then list every candidate. Min 0 and max 15 give scale 1 and zp 8 at 4
 * bits, so x = w - 8 exactly. Channel kinds (len 300, one channel each):
 * all errors -1/16 (ties), errors -1/32..-1/8, the same with 6 large
 * errors, and the latter with elements beyond the range's end that are not
 * candidates; each also mirrored (errors positive, direction down).
 */
START_TEST(test_few_above_tau)
{
    enum { CH = 8, LEN = 300 };
    int64_t shape[2] = {CH, LEN};
    size_t n = (size_t)CH * LEN;
    float *w = malloc(n * sizeof(float));
    rng = 4242;
    for (size_t c = 0; c < CH; c++) {
        float sign = c % 2 ? -1.0f : 1.0f; /* odd channels: errors +, direction down */
        for (size_t j = 0; j < LEN; j++) {
            float m = (float)(1 + pick(13)), f;
            switch (c / 2) {
            case 0:
                f = 1.0f / 16.0f;
                break;
            case 1:
                f = (float)(1 + pick(4)) / 32.0f;
                break;
            case 2:
                f = j % 50 == 7 ? 7.0f / 16.0f : (float)(1 + pick(4)) / 32.0f;
                break;
            default:
                f = (float)(1 + pick(4)) / 32.0f;
                break;
            }
            w[c * LEN + j] = m + sign * f; /* x = m - 8 +- f: e = -+f */
        }
        w[c * LEN + 11] = 0.0f;
        w[c * LEN + 200] = 15.0f;
        if (c / 2 == 3) {
            /*
             * The range moved by 7/16 (scale 1, zp 8 still): up, x in
             * [-7.5625, 7.4375], and some x = 7.375, which rounds down to
             * t_max and cannot go up (priority 0.375); down, x in [-8.4375,
             * 6.5625], and some x = -8.375, which cannot go down.
             */
            float shift = sign * 0.4375f;
            w[c * LEN + 11] = shift;
            w[c * LEN + 200] = 15.0f + shift;
            for (size_t j = 3; j < LEN; j += 40)
                w[c * LEN + j] = c % 2 ? -0.375f : 15.375f;
        }
    }
    static const enum sq_mode modes[] = {SQ_MODE_SQUANT, SQ_MODE_SQUANT_C};
    for (size_t mi = 0; mi < 2; mi++) {
        struct sq_params p;
        sq_params_init(&p);
        p.mode = modes[mi];
        p.impl = SQ_IMPL_REF;
        struct result ref;
        ck_assert(quantize(&p, 2, shape, w, &ref, NULL) == SQ_OK);
        ck_assert(ref.scale[0] == 1.0f / 1.0f && ref.zp[0] == -8.0f);
        /* The channel stage flips many elements (e.g. 300 * 1/16: about 19 in the first). */
        ck_assert_uint_ge(ref.report.channel_flips, 8 * 10);
        for (enum sq_impl impl = SQ_IMPL_GENERIC; impl < SQ_IMPL_COUNT; impl++) {
            if (!sq_impl_available(impl))
                continue;
            struct result other;
            p.impl = impl;
            ck_assert(quantize(&p, 2, shape, w, &other, NULL) == SQ_OK);
            ck_assert_msg(memcmp(ref.q, other.q, n) == 0, "%s %s: codes differ from ref",
                          sq_mode_name(p.mode), sq_impl_name(impl));
            ck_assert_msg(memcmp(&ref.report, &other.report, sizeof ref.report) == 0,
                          "%s %s: report differs from ref", sq_mode_name(p.mode),
                          sq_impl_name(impl));
            result_free(&other);
        }
        result_free(&ref);
    }
    free(w);
}
END_TEST

/* SQUANT-SPEC section 11: one channel, three kernels of 3, 4 bits, every mode. */
START_TEST(test_worked_example)
{
    static const int m[9] = {4, 7, 0, 5, 18, 24, 15, 21, 3};
    static const int want[4][9] = {
        [SQ_MODE_SQUANT] = {-5, -4, -8, -5, 3, 7, 2, 5, -6},
        [SQ_MODE_SQUANT_K] = {-5, -4, -8, -5, 3, 7, 1, 5, -6},
        [SQ_MODE_SQUANT_C] = {-5, -3, -8, -5, 3, 7, 1, 5, -6},
        [SQ_MODE_RTN] = {-6, -4, -8, -5, 3, 7, 1, 5, -6},
    };
    static const double deq[9] = {0.3, 0.4, 0, 0.3, 1.1, 1.5, 1.0, 1.3, 0.2};
    float w[9];
    for (int i = 0; i < 9; i++)
        w[i] = (float)m[i] / 16.0f;
    int64_t shapes[2][4] = {{1, 3, 1, 3}, {1, 3, 3, 0}};
    unsigned ranks[2] = {4, 3};
    for (int s = 0; s < 2; s++)
        for (enum sq_impl impl = SQ_IMPL_REF; impl < SQ_IMPL_COUNT; impl++) {
            if (!sq_impl_available(impl))
                continue;
            for (int mode = 0; mode < SQ_MODE_COUNT; mode++) {
                struct sq_params p;
                sq_params_init(&p);
                p.impl = impl;
                p.mode = (enum sq_mode)mode;
                struct result r;
                ck_assert(quantize(&p, ranks[s], shapes[s], w, &r, NULL) == SQ_OK);
                for (int i = 0; i < 9; i++)
                    ck_assert_msg(r.q[i] == want[mode][i], "%s %s rank %u: code %d is %d, not %d",
                                  sq_impl_name(impl), sq_mode_name(p.mode), ranks[s], i, r.q[i],
                                  want[mode][i]);
                ck_assert(r.scale[0] == 1.0f / 10.0f && r.zp[0] == -8.0f);
                if (mode == SQ_MODE_SQUANT) {
                    float out[9];
                    sq_dequantize(r.q, 9, r.scale[0], r.zp[0], out);
                    for (int i = 0; i < 9; i++)
                        ck_assert(fabs(out[i] - deq[i]) < 1e-6);
                }
                result_free(&r);
            }
        }
}
END_TEST

/* One channel of `len` copies of c: returns its first code. */
static int constant_code(unsigned bits, float c, float *zp_out)
{
    float w[64];
    for (int i = 0; i < 64; i++)
        w[i] = c;
    int64_t shape[2] = {1, 64};
    int code = 999;
    for (enum sq_impl impl = SQ_IMPL_REF; impl < SQ_IMPL_COUNT; impl++) {
        if (!sq_impl_available(impl))
            continue;
        struct sq_params p;
        sq_params_init(&p);
        p.bits = bits;
        p.impl = impl;
        struct result r;
        ck_assert(quantize(&p, 2, shape, w, &r, NULL) == SQ_OK);
        for (int i = 1; i < 64; i++)
            ck_assert_int_eq(r.q[i], r.q[0]);
        if (code != 999)
            ck_assert_int_eq(r.q[0], code);
        code = r.q[0];
        *zp_out = r.zp[0];
        float d;
        sq_dequantize(r.q, 1, r.scale[0], r.zp[0], &d);
        ck_assert_msg(fabsf(d - c) <= 1e-6f * fabsf(c) + 1e-12f, "dequantized %g, not %g",
                      (double)d, (double)c);
        result_free(&r);
    }
    return code;
}

/* SQUANT-SPEC 8.1 and 8.2. */
START_TEST(test_constant_channels)
{
    float zp;
    ck_assert_int_eq(constant_code(8, 0.3f, &zp), 0); /* absorbed: x = 0 */
    ck_assert(zp < -7.6e9f && zp > -7.7e9f);         /* exceeds int32 */
    ck_assert_int_eq(constant_code(8, -2.0f, &zp), 0);
    ck_assert_int_eq(constant_code(8, 1e-6f, &zp), -128);
    ck_assert_int_eq(constant_code(8, 0.0f, &zp), -128); /* all zero: t_min, deq 0 */
    ck_assert(zp == -128.0f); /* public convention: w = (q - zero_point) * scale */
    ck_assert_int_eq(constant_code(2, 0.0f, &zp), -2);
}
END_TEST

/* Exact halves round to even (8.6); t_max + 0.5 is clamped at the end. */
START_TEST(test_halves)
{
    /* 2 bits: N = 3, channel {0, 1.5, 3}: scale 1, zp = 0 + 2, x = {-2, -0.5, 1} */
    float w[4] = {0.0f, 1.5f, 3.0f, 0.5f}; /* x(0.5) = -1.5 -> -2 */
    int64_t shape[2] = {1, 4};
    struct sq_params p;
    sq_params_init(&p);
    p.bits = 2;
    p.mode = SQ_MODE_RTN;
    struct result r;
    ck_assert(quantize(&p, 2, shape, w, &r, NULL) == SQ_OK);
    ck_assert_int_eq(r.q[0], -2);
    ck_assert_int_eq(r.q[1], 0);  /* -0.5 -> -0 */
    ck_assert_int_eq(r.q[2], 1);  /* t_max */
    ck_assert_int_eq(r.q[3], -2); /* -1.5 -> -2 (even) */
    result_free(&r);
}
END_TEST

START_TEST(test_nonfinite)
{
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    int64_t shape[4] = {5, 3, 3, 3};
    size_t n = 5 * 27;
    float *w = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        w[i] = (float)i * 0.01f;
    for (enum sq_impl impl = SQ_IMPL_REF; impl < SQ_IMPL_COUNT; impl++) {
        if (!sq_impl_available(impl))
            continue;
        for (int b = 0; b < 3; b++) {
            w[3 * 27 + 5] = bad[b];
            struct sq_params p;
            sq_params_init(&p);
            p.impl = impl;
            struct result r;
            struct sq_error err;
            sq_error_init(&err);
            ck_assert_int_eq(quantize(&p, 4, shape, w, &r, &err), SQ_ERR_NONFINITE);
            ck_assert_int_eq(err.channel, 3);
            ck_assert_int_eq(err.index, 3 * 27 + 5);
            ck_assert_msg(strstr(err.message, b == 0 ? "NaN" : "infinite"), "%s", err.message);
            result_free(&r);
        }
        w[3 * 27 + 5] = 0.0f;
    }
    free(w);
}
END_TEST

START_TEST(test_api_errors)
{
    struct sq_layer layer;
    struct sq_error err;
    sq_error_init(&err);
    int64_t r1[1] = {4}, neg[2] = {4, -1}, zero[2] = {0, 3}, big[2] = {1, INT64_MAX};
    ck_assert_int_eq(sq_layer_init(&layer, 1, r1, &err), SQ_ERR_SHAPE);
    ck_assert(strstr(err.message, "rank 1"));
    ck_assert_int_eq(sq_layer_init(&layer, 2, neg, &err), SQ_ERR_SHAPE);
    ck_assert_int_eq(sq_layer_init(&layer, 2, zero, &err), SQ_ERR_SHAPE);
    ck_assert_int_eq(sq_layer_init(&layer, 2, big, &err), SQ_ERR_LIMIT);
    int64_t ok[5] = {2, 3, 2, 2, 2};
    ck_assert_int_eq(sq_layer_init(&layer, 5, ok, &err), SQ_OK);
    ck_assert_uint_eq(layer.ksize, 8);

    struct sq_params p;
    sq_params_init(&p);
    ck_assert_uint_eq(p.bits, 4);
    p.bits = 1;
    ck_assert_int_eq(sq_params_check(&p, &err), SQ_ERR_ARG);
    p.bits = 9;
    ck_assert_int_eq(sq_params_check(&p, &err), SQ_ERR_ARG);
    p.bits = 4;
    p.mode = SQ_MODE_COUNT;
    ck_assert_int_eq(sq_params_check(&p, &err), SQ_ERR_ARG);
    sq_params_init(&p);

    int64_t shape[2] = {2, 8};
    ck_assert(sq_layer_init(&layer, 2, shape, NULL) == SQ_OK);
    float w[16] = {0}, s[2], z[2];
    int8_t q[16];
    size_t ss;
    ck_assert(sq_scratch_size(&layer, &ss) == SQ_OK);
    void *scratch = malloc(ss);
    ck_assert_int_eq(sq_quantize_range(&p, &layer, w, 1, 3, q, s, z, scratch, ss, NULL, &err),
                     SQ_ERR_ARG);
    ck_assert_int_eq(sq_quantize_range(&p, &layer, w, 0, 2, q, s, z, scratch, ss - 1, NULL, &err),
                     SQ_ERR_ARG);
    ck_assert(strstr(err.message, "scratch"));
    ck_assert_int_eq(sq_quantize_range(&p, &layer, w, 0, 2, q, s, z, scratch, ss, NULL, NULL),
                     SQ_OK);
    free(scratch);

    enum sq_mode mode;
    ck_assert(sq_mode_from_name("squant-e", &mode) == SQ_OK && mode == SQ_MODE_RTN);
    ck_assert(sq_mode_from_name("SQUANT", &mode) == SQ_ERR_ARG);
    ck_assert_str_eq(sq_mode_name(SQ_MODE_SQUANT_C), "squant-c");
    enum sq_scheme scheme;
    ck_assert(sq_scheme_from_name("symmetric", &scheme) == SQ_OK);
    ck_assert(sq_impl_available(SQ_IMPL_REF) && sq_impl_available(SQ_IMPL_AUTO));
    ck_assert_str_eq(sq_status_name(SQ_ERR_NONFINITE), "nonfinite_weight");
    ck_assert_str_eq(sq_status_name((enum sq_status)999), "unknown");
}
END_TEST

/* The row sum's order: the cases of SQUANT-SPEC section 5 and the cascade. */
START_TEST(test_rowsum_order)
{
    /* K = 9: ((((((((v8 + v0) + v1) ...) + v7) */
    float v[9] = {1e8f, 1.0f, -1e8f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f};
    float s = v[8];
    for (int i = 0; i < 8; i++)
        s += v[i];
    ck_assert(sqi_rowsum(v, 9) == s);
    /* A length where the cascade's levels are used: compare with a plain model. */
    size_t n = 70000;
    float *x = malloc(n * sizeof(float));
    rng = 5;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)normal();
    float a = sqi_rowsum(x, n);
    double exact = 0;
    for (size_t i = 0; i < n; i++)
        exact += x[i];
    ck_assert(fabs((double)a - exact) < 1e-2);
    free(x);
}
END_TEST

#ifdef SQ_ARCH_X86_64
/* The SIMD row sums add in exactly sqi_rowsum's order: bit for bit, every length. */
START_TEST(test_rowsum_simd)
{
    size_t cap = 300000;
    float *x = malloc(cap * sizeof(float));
    rng = 11;
    for (size_t i = 0; i < cap; i++)
        x[i] = (float)(normal() * pow(10.0, (double)pick(7) - 3.0)); /* order-sensitive */
    static const size_t extra[] = {8191, 8192, 16384 + 5, 65535, 65536 + 33, 131072 + 7, 299999};
    for (size_t n = 1; n < 2100 + sizeof extra / sizeof *extra; n++) {
        size_t len = n < 2100 ? n : extra[n - 2100];
        float want = sqi_rowsum(x, len);
        uint32_t a, b;
        memcpy(&a, &want, 4);
        if (sqi_cpu_has_avx2()) {
            float got = sqi_rowsum_avx2(x, len);
            memcpy(&b, &got, 4);
            EXPECT(a == b, "avx2 row sum of %zu: %a, not %a", len, (double)got, (double)want);
        }
        if (sqi_cpu_has_avx512()) {
            float got = sqi_rowsum_avx512(x, len);
            memcpy(&b, &got, 4);
            EXPECT(a == b, "avx512 row sum of %zu: %a, not %a", len, (double)got, (double)want);
        }
    }
    free(x);
}
END_TEST
#endif

int main(void)
{
    Suite *s = suite_create("squant");
    TCase *props = tcase_create("properties");
    tcase_set_timeout(props, 300);
    tcase_add_loop_test(props, test_properties, 0, PROPERTY_ROUNDS);
    tcase_add_loop_test(props, test_report_paths, 0, 40);
    tcase_add_loop_test(props, test_kernel_blocks, 0, 14);
    tcase_add_test(props, test_ranges);
    tcase_add_test(props, test_long_rows);
    tcase_add_test(props, test_few_above_tau);
    suite_add_tcase(s, props);
    TCase *edge = tcase_create("edge cases");
    tcase_add_test(edge, test_worked_example);
    tcase_add_test(edge, test_constant_channels);
    tcase_add_test(edge, test_halves);
    tcase_add_test(edge, test_nonfinite);
    tcase_add_test(edge, test_rowsum_order);
#ifdef SQ_ARCH_X86_64
    tcase_add_test(edge, test_rowsum_simd);
#endif
    suite_add_tcase(s, edge);
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_api_errors);
    suite_add_tcase(s, api);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

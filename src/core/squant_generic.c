/*
 * Portable optimized implementation. Same results as squant_ref.c, with the
 * sorts replaced by selection: a stage only needs the set of the k best
 * candidates of a row and one boundary element, never a full order.
 *
 * A candidate's rank key is (priority bits << 32 | ~position): priorities
 * are non-negative floats, so their bit patterns order like the values, and
 * for equal priorities the lower position has the larger key. Larger key =
 * earlier in the reference's (stable) order.
 */
#include <assert.h>
#include <string.h>

#include "core.h"

struct offer {
    uint32_t pos;
    float val;
};

struct gen_arrays {
    float *e;      /* err (section 4 "mutable err") */
    float *r;      /* round to nearest */
    float *cand;   /* e if the element is a candidate in e's direction, else 0 */
    float *code;   /* current code */
    uint64_t *keys;
    struct offer *offers_up, *offers_dn;
};

static void gen_layout(void *scratch, const struct sqi_ctx *ctx, struct gen_arrays *a)
{
    size_t len = ctx->len;
    uint64_t *k = scratch; /* 8-byte arrays first, for alignment */
    a->keys = k;
    a->offers_up = (struct offer *)(k + len);
    a->offers_dn = a->offers_up + ctx->kernels;
    float *f = (float *)(a->offers_dn + ctx->kernels);
    a->e = f;
    a->r = f + len;
    a->cand = f + 2 * len;
    a->code = f + 3 * len;
}

static inline uint64_t rank_key(float pri, size_t pos)
{
    uint32_t bits;
    memcpy(&bits, &pri, sizeof bits);
    return (uint64_t)bits << 32 | (uint32_t)~(uint32_t)pos;
}

static inline size_t key_pos(uint64_t key) { return (uint32_t)~(uint32_t)key; }

static void swap_keys(uint64_t *a, uint64_t *b)
{
    uint64_t t = *a;
    *a = *b;
    *b = t;
}

/* Heap select fallback: O(n log k) worst case. Min-heap of the k best in keys[0..k). */
static void sift_down(uint64_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && h[l] < h[m])
            m = l;
        if (l + 1 < n && h[l + 1] < h[m])
            m = l + 1;
        if (m == i)
            return;
        swap_keys(&h[i], &h[m]);
        i = m;
    }
}

static void heap_select(uint64_t *keys, size_t n, size_t k)
{
    for (size_t i = k / 2; i-- > 0;)
        sift_down(keys, k, i);
    for (size_t i = k; i < n; i++) {
        if (keys[i] > keys[0]) {
            swap_keys(&keys[i], &keys[0]);
            sift_down(keys, k, 0);
        }
    }
}

/*
 * Rearrange keys[0..n) so that keys[0..k) are the k largest (keys are
 * distinct). Quickselect with a median-of-three pivot and a depth budget,
 * then heap selection, so hostile inputs cannot make it quadratic.
 */
static void top_k(uint64_t *keys, size_t n, size_t k)
{
    if (k == 0 || k >= n)
        return;
    size_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    unsigned budget = 2;
    for (size_t v = n; v; v >>= 1)
        budget += 2;
    while (hi - lo > 16) {
        if (budget-- == 0) {
            heap_select(keys + lo, hi - lo, k - lo);
            return;
        }
        size_t mid = lo + (hi - lo) / 2;
        uint64_t a = keys[lo], b = keys[mid], c = keys[hi - 1];
        uint64_t pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        /* Partition: larger than pivot first, then the rest. */
        size_t i = lo, j = hi;
        for (;;) {
            while (i < j && keys[i] > pivot)
                i++;
            while (i < j && keys[j - 1] <= pivot)
                j--;
            if (i >= j)
                break;
            swap_keys(&keys[i], &keys[j - 1]);
        }
        /* keys[lo..i) > pivot >= keys[i..hi) */
        if (i == k)
            return;
        if (i > k) {
            hi = i;
        } else {
            /* The pivot itself is the largest of the right part: put it first. */
            size_t p = i;
            while (keys[p] != pivot)
                p++;
            swap_keys(&keys[i], &keys[p]);
            lo = i + 1;
            if (lo == k)
                return;
        }
    }
    /* Small range: selection sort of the part that decides. */
    for (size_t i = lo; i < k; i++) {
        size_t m = i;
        for (size_t j = i + 1; j < hi; j++)
            if (keys[j] > keys[m])
                m = j;
        swap_keys(&keys[i], &keys[m]);
    }
}

/* Row decision shared by both stages (SQUANT-SPEC section 6, steps 1-4). */
struct row_plan {
    bool up;
    bool over;
    size_t k;
};

static struct row_plan plan_row(const float *err, size_t len)
{
    float s = sqi_rowsum(err, len);
    float mag = fabsf(s), kf = sqi_rne(mag);
    struct row_plan p = {s < 0.0f, kf >= mag, (size_t)kf};
    if (p.k > len)
        p.k = len;
    return p;
}

/* Priority of element i in direction up/down (0 for non-candidates). */
static inline float dir_pri(const float *cand, size_t i, bool up)
{
    float c = cand[i];
    return up ? (c < 0.0f ? -c : 0.0f) : (c > 0.0f ? c : 0.0f);
}

/* The code of element i after a flip in direction up/down (its D_code). */
static inline float dir_code(const struct gen_arrays *a, size_t i, bool up)
{
    float c = a->cand[i];
    if (up)
        return c < 0.0f ? a->r[i] + 1.0f : a->r[i];
    return c > 0.0f ? a->r[i] - 1.0f : a->r[i];
}

static void kernel_stage(const struct sqi_ctx *ctx, struct gen_arrays *a, size_t *n_up,
                         size_t *n_dn, uint64_t *flips)
{
    size_t ks = ctx->ksize;
    *n_up = *n_dn = 0;
    for (size_t b = 0; b < ctx->len; b += ks) {
        struct row_plan p = plan_row(a->e + b, ks);
        uint64_t *keys = a->keys;
        for (size_t i = 0; i < ks; i++)
            keys[i] = rank_key(dir_pri(a->cand, b + i, p.up), i);
        top_k(keys, ks, p.k);
        for (size_t t = 0; t < p.k; t++) {
            size_t j = b + key_pos(keys[t]);
            if (a->cand[j] != 0.0f && (a->cand[j] < 0.0f) == p.up) {
                a->code[j] = p.up ? a->r[j] + 1.0f : a->r[j] - 1.0f;
                a->e[j] = p.up ? a->e[j] + 1.0f : a->e[j] - 1.0f;
                (*flips)++;
            } else {
                a->e[j] = 0.0f;
            }
        }
        /* The next candidate: rank k-1 (over; rank ks-1 when k = 0) or rank k. */
        size_t lo = p.over ? 0 : p.k, hi = p.over ? (p.k ? p.k : ks) : ks;
        if (lo >= hi)
            continue;
        uint64_t pick = keys[lo];
        for (size_t t = lo + 1; t < hi; t++)
            if (p.over ? keys[t] < pick : keys[t] > pick)
                pick = keys[t];
        size_t j = b + key_pos(pick);
        struct offer o = {(uint32_t)j, fabsf(a->e[j])};
        if (p.up != p.over)
            a->offers_up[(*n_up)++] = o;
        else
            a->offers_dn[(*n_dn)++] = o;
    }
}

/* Channel stage after a kernel stage: the candidates are the kernels' offers. */
static void channel_stage_offers(const struct sqi_ctx *ctx, struct gen_arrays *a, size_t n_up,
                                 size_t n_dn, uint64_t *flips)
{
    struct row_plan p = plan_row(a->e, ctx->len);
    const struct offer *offers = p.up ? a->offers_up : a->offers_dn;
    size_t n_off = p.up ? n_up : n_dn, m = 0;
    for (size_t i = 0; i < n_off; i++)
        if (offers[i].val > 0.0f)
            a->keys[m++] = rank_key(offers[i].val, offers[i].pos);
    size_t take = p.k < m ? p.k : m;
    top_k(a->keys, m, take);
    for (size_t t = 0; t < take; t++) {
        size_t j = key_pos(a->keys[t]);
        float c = dir_code(a, j, p.up);
        *flips += c != a->code[j];
        a->code[j] = c;
    }
    /* Surplus flips land on the lowest positions whose priority is 0, i.e.
     * every position but the positive offers (ascending, as offers are). */
    size_t surplus = p.k - take, next = 0;
    for (size_t j = 0; surplus > 0 && j < ctx->len; j++) {
        while (next < n_off && (offers[next].pos < j || offers[next].val <= 0.0f))
            next++;
        if (next < n_off && offers[next].pos == j)
            continue;
        float c = dir_code(a, j, p.up);
        *flips += c != a->code[j];
        a->code[j] = c;
        surplus--;
    }
}

/* Channel stage alone: the candidates are all elements, by their own priority. */
static void channel_stage_plain(const struct sqi_ctx *ctx, struct gen_arrays *a, uint64_t *flips)
{
    struct row_plan p = plan_row(a->e, ctx->len);
    size_t m = 0;
    for (size_t i = 0; i < ctx->len; i++) {
        float pri = dir_pri(a->cand, i, p.up);
        if (pri > 0.0f)
            a->keys[m++] = rank_key(pri, i);
    }
    /* Surplus flips hit non-candidates: their code stays r. */
    size_t take = p.k < m ? p.k : m;
    top_k(a->keys, m, take);
    for (size_t t = 0; t < take; t++) {
        size_t j = key_pos(a->keys[t]);
        a->code[j] = dir_code(a, j, p.up);
    }
    *flips += take;
}

size_t sqi_quantize_generic(const struct sqi_ctx *ctx, size_t n, const float *w, int8_t *q,
                            float *scale, float *zp, void *scratch, struct sqi_flips *flips)
{
    struct gen_arrays a;
    gen_layout(scratch, ctx, &a);
    size_t len = ctx->len;
    for (size_t c = 0; c < n; c++) {
        const float *cw = w + c * len;
        float mn = cw[0], mx = cw[0], bad = 0.0f;
        for (size_t i = 0; i < len; i++) {
            bad += cw[i] - cw[i]; /* NaN once any weight is NaN or infinite */
            mn = cw[i] < mn ? cw[i] : mn;
            mx = cw[i] > mx ? cw[i] : mx;
        }
        if (bad != 0.0f)
            return c;
        float s, z;
        sqi_channel_params(ctx, mn, mx, &s, &z);
        scale[c] = s;
        zp[c] = z;
        for (size_t i = 0; i < len; i++) {
            float x = sqi_code_x(s, z, cw[i]);
            float r = sqi_rne(x);
            float e = r - x;
            bool cand = (e < 0.0f && x < ctx->t_max) || (e > 0.0f && x > ctx->t_min);
            a.e[i] = e;
            a.r[i] = r;
            a.code[i] = r;
            a.cand[i] = cand ? e : 0.0f;
        }
        size_t n_up = 0, n_dn = 0;
        if (ctx->kernel_stage)
            kernel_stage(ctx, &a, &n_up, &n_dn, &flips->kernel);
        if (ctx->channel_stage) {
            if (ctx->kernel_stage)
                channel_stage_offers(ctx, &a, n_up, n_dn, &flips->channel);
            else
                channel_stage_plain(ctx, &a, &flips->channel);
        }
        int8_t *cq = q + c * len;
        for (size_t i = 0; i < len; i++)
            cq[i] = sqi_clamp_code(ctx, a.code[i]);
    }
    return n;
}

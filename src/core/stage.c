/*
 * Selection shared by the optimized implementations: top-k of rank keys and
 * the channel stage (SQUANT-SPEC section 6). Only the set of the k best
 * matters for the flips, so selection replaces the reference's sorts.
 */
#include "core.h"

static void swap_keys(uint64_t *a, uint64_t *b)
{
    uint64_t t = *a;
    *a = *b;
    *b = t;
}

/* Min-heap sift-down over h[0..n). */
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

/* Heap selection: O(n log k), the fallback when quickselect degrades. */
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

void sqi_top_k(uint64_t *keys, size_t n, size_t k)
{
    if (k == 0 || k >= n)
        return;
    size_t lo = 0, hi = n; /* the boundary k lies in (lo, hi) */
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
        /* keys[lo..i) > pivot >= keys[i..hi), and the pivot is in the right part. */
        if (i == k)
            return;
        if (i > k) {
            hi = i;
            continue;
        }
        size_t p = i;
        while (keys[p] != pivot)
            p++;
        swap_keys(&keys[i], &keys[p]);
        lo = i + 1;
        if (lo == k)
            return;
    }
    for (size_t i = lo; i < k; i++) {
        size_t m = i;
        for (size_t j = i + 1; j < hi; j++)
            if (keys[j] > keys[m])
                m = j;
        swap_keys(&keys[i], &keys[m]);
    }
}

void sqi_channel_surplus(const struct sqi_ctx *ctx, const struct sqi_chan *ch,
                         const struct sqi_offers *o, size_t surplus, bool up, uint64_t *flips)
{
    size_t next = 0;
    for (size_t j = 0; surplus > 0 && j < ctx->len; j++) {
        while (next < o->n && (o->pos[next] < j || o->val[next] <= 0.0f))
            next++;
        if (next < o->n && o->pos[next] == j)
            continue;
        sqi_flip(ctx, ch, j, up, flips);
        surplus--;
    }
}

void sqi_channel_offers(const struct sqi_ctx *ctx, const struct sqi_chan *ch, float s,
                        const struct sqi_offers *up, const struct sqi_offers *down, uint64_t *keys,
                        uint64_t *flips)
{
    struct sqi_row p = sqi_row_plan(s, ctx->len);
    const struct sqi_offers *o = p.up ? up : down;
    size_t m = 0;
    for (size_t i = 0; i < o->n; i++)
        if (o->val[i] > 0.0f)
            keys[m++] = sqi_rank_key(o->val[i], o->pos[i]);
    size_t take = p.k < m ? p.k : m;
    if (take <= 8) {
        /*
         * Few flips (the usual case: a channel's residual after the kernel
         * stage is a few units): one branch-free pass per flip for the
         * largest key below the previous one, instead of a quickselect whose
         * partition branches are mispredicted about half the time.
         */
        uint64_t bound = UINT64_MAX;
        for (size_t t = 0; t < take; t++) {
            uint64_t best = 0;
            for (size_t i = 0; i < m; i++) {
                uint64_t v = keys[i] < bound ? keys[i] : 0;
                best = v > best ? v : best;
            }
            sqi_flip(ctx, ch, sqi_key_pos(best), p.up, flips);
            bound = best;
        }
    } else {
        sqi_top_k(keys, m, take);
        for (size_t t = 0; t < take; t++)
            sqi_flip(ctx, ch, sqi_key_pos(keys[t]), p.up, flips);
    }
    sqi_channel_surplus(ctx, ch, o, p.k - take, p.up, flips);
}

void sqi_flip_best(const struct sqi_ctx *ctx, const struct sqi_chan *ch, uint64_t *keys, size_t m,
                   size_t k, bool up, uint64_t *flips)
{
    size_t take = k < m ? k : m;
    sqi_top_k(keys, m, take);
    for (size_t t = 0; t < take; t++)
        sqi_flip(ctx, ch, sqi_key_pos(keys[t]), up, flips);
}

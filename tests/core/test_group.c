/*
 * Group-wise SQuant (sq_quantize_groups) against its definition:
 *
 * - when g divides the input dimension I, group-wise SQuant on [O, I, k...]
 *   is per-channel SQuant on the data reshaped to [O*I/g, g, k...]: codes,
 *   scales and zero points byte for byte, computed by the reference, for
 *   every implementation, mode, scheme, on every conformance input and on
 *   random tensors;
 * - for any g, every group (the shorter last one too) equals that group
 *   quantized alone as a one-channel layer;
 * - any cut of the groups into ranges (the plan's work items) gives the same
 *   bytes, and errors name the tensor's own channel and element.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squant/squant.h>

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

static double uniform(void)
{
    return ((double)(next_u64() >> 11) + 0.5) * 0x1p-53;
}
static size_t pick(size_t n)
{
    return (size_t)(next_u64() % n);
}

struct out {
    int8_t *q;
    float *scale, *zp;
};

static void out_alloc(struct out *o, size_t n, size_t units)
{
    o->q = malloc(n ? n : 1);
    o->scale = malloc(units * sizeof(float));
    o->zp = malloc(units * sizeof(float));
    memset(o->q, 0x55, n);
}

static void out_free(struct out *o)
{
    free(o->q);
    free(o->scale);
    free(o->zp);
}

/* Per-channel SQuant of `layer` (all channels) into o. */
static void per_channel(const struct sq_params *p, const struct sq_layer *layer, const float *w,
                        struct out *o)
{
    size_t ss;
    ck_assert(sq_scratch_size(layer, &ss) == SQ_OK);
    void *scratch = malloc(ss);
    struct sq_error err;
    sq_error_init(&err);
    EXPECT(sq_quantize_range(p, layer, w, 0, layer->channels, o->q, o->scale, o->zp, scratch, ss,
                             NULL, &err) == SQ_OK,
           "per channel: %s", err.message);
    free(scratch);
}

/*
 * Group-wise SQuant of all groups, cut into `pieces` random ranges quantized
 * in a random order (as the plan's items may run), with reports merged.
 */
static void grouped(const struct sq_params *p, const struct sq_layer *layer, size_t g,
                    const float *w, size_t pieces, struct out *o, struct sq_report *report)
{
    size_t units = layer->channels * sq_layer_groups(layer, g), ss;
    ck_assert(sq_group_scratch_size(layer, g, &ss) == SQ_OK);
    void *scratch = malloc(ss);
    size_t *cut = malloc((pieces + 1) * sizeof *cut);
    cut[0] = 0;
    cut[pieces] = units;
    for (size_t k = 1; k < pieces; k++)
        cut[k] = pick(units + 1);
    for (size_t a = 1; a < pieces; a++) /* sort the cuts */
        for (size_t b = a; b > 0 && cut[b - 1] > cut[b]; b--) {
            size_t t = cut[b];
            cut[b] = cut[b - 1];
            cut[b - 1] = t;
        }
    sq_report_init(report);
    size_t start = pick(pieces);
    for (size_t s = 0; s < pieces; s++) {
        size_t k = (start + s) % pieces, u0 = cut[k], u1 = cut[k + 1];
        size_t off = sq_group_offset(layer, g, u0);
        struct sq_report r;
        struct sq_error err;
        sq_error_init(&err);
        EXPECT(sq_quantize_groups(p, layer, g, w + off, u0, u1, o->q + off, o->scale + u0,
                                  o->zp + u0, scratch, ss, &r, &err) == SQ_OK,
               "groups [%zu, %zu) of %zu: %s", u0, u1, units, err.message);
        sq_report_merge(report, &r);
    }
    free(cut);
    free(scratch);
}

static void fill(float *w, size_t n, int kind)
{
    for (size_t i = 0; i < n; i++) {
        double v = sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform());
        if (kind == 1) /* a few wide outliers, as in 1x1 convs of real models */
            v *= pick(50) == 0 ? 25.0 : 1.0;
        else if (kind == 2) /* discrete values: many ties */
            v = (double)(int)(v * 3.0);
        else if (kind == 3) /* runs of one value: constant and all-zero groups (8.1, 8.2) */
            v = (double[]){0.0, 6.0, 2e-5, -40.0, v}[(i / 29) % 5];
        else if (kind == 4) /* most values piled just below the top of the range (8.3) */
            v = pick(3) ? 20.0 - 2e-3 * uniform() : v;
        w[i] = (float)(v * 0.05);
    }
}

/*
 * The two properties for one tensor: against the reshaped per-channel
 * reference when g divides I, and group by group against each group alone.
 */
static void check_tensor(const struct sq_params *base, const struct sq_layer *layer, size_t g,
                         const float *w, const char *what)
{
    size_t per = sq_layer_groups(layer, g), units = layer->channels * per;
    size_t len = layer->kernels * layer->ksize, n = layer->channels * len;
    size_t gk = g == 0 || g >= layer->kernels ? layer->kernels : g;
    struct sq_params ref = *base;
    ref.impl = SQ_IMPL_REF;

    /* expected: every group alone, with the reference */
    struct out want;
    out_alloc(&want, n, units);
    for (size_t u = 0; u < units; u++) {
        size_t j = u % per, off = sq_group_offset(layer, g, u);
        struct sq_layer one = {1, j + 1 < per ? gk : layer->kernels - j * gk, layer->ksize};
        struct out o = {want.q + off, want.scale + u, want.zp + u};
        per_channel(&ref, &one, w + off, &o);
    }
    if (layer->kernels % gk == 0) { /* and the reshape gives the same bytes */
        struct sq_layer flat = {units, gk, layer->ksize};
        struct out f;
        out_alloc(&f, n, units);
        per_channel(&ref, &flat, w, &f);
        EXPECT(memcmp(f.q, want.q, n) == 0, "%s: reshaped codes differ from groups alone", what);
        EXPECT(memcmp(f.scale, want.scale, units * sizeof(float)) == 0, "%s: reshaped scales",
               what);
        EXPECT(memcmp(f.zp, want.zp, units * sizeof(float)) == 0, "%s: reshaped zero points", what);
        out_free(&f);
    }
    struct sq_report ref_rep;
    for (enum sq_impl impl = SQ_IMPL_REF; impl < SQ_IMPL_COUNT; impl++) {
        if (!sq_impl_available(impl))
            continue;
        struct sq_params p = *base;
        p.impl = impl;
        struct out got;
        out_alloc(&got, n, units);
        struct sq_report rep;
        grouped(&p, layer, g, w, 1 + pick(4), &got, &rep);
        if (impl == SQ_IMPL_REF)
            ref_rep = rep;
        /* the counts the implementation keeps itself: the same as the reference's */
        EXPECT(rep.channel_flips == ref_rep.channel_flips &&
                   rep.kernel_flips == ref_rep.kernel_flips && rep.flips == ref_rep.flips,
               "%s: %s flips %llu/%llu/%llu, reference %llu/%llu/%llu", what, sq_impl_name(impl),
               (unsigned long long)rep.flips, (unsigned long long)rep.kernel_flips,
               (unsigned long long)rep.channel_flips, (unsigned long long)ref_rep.flips,
               (unsigned long long)ref_rep.kernel_flips, (unsigned long long)ref_rep.channel_flips);
        EXPECT(memcmp(got.q, want.q, n) == 0, "%s: %s codes differ", what, sq_impl_name(impl));
        EXPECT(memcmp(got.scale, want.scale, units * sizeof(float)) == 0, "%s: %s scales differ",
               what, sq_impl_name(impl));
        EXPECT(memcmp(got.zp, want.zp, units * sizeof(float)) == 0, "%s: %s zero points differ",
               what, sq_impl_name(impl));
        EXPECT(rep.weights == n, "%s: %s report covers %llu of %zu weights", what,
               sq_impl_name(impl), (unsigned long long)rep.weights, n);
        out_free(&got);
    }
    out_free(&want);
}

/* ------------------------------------------------------------------ tests */

static const char *vectors_dir(void)
{
    static char dir[1024];
    const char *top = getenv("top_srcdir");
    snprintf(dir, sizeof dir, "%s/tests/conformance/vectors/inputs", top ? top : ".");
    return dir;
}

/* Every conformance input, every divisor g of I and some g that do not divide it. */
START_TEST(test_conformance_inputs)
{
    DIR *d = opendir(vectors_dir());
    ck_assert_msg(d != NULL, "cannot open %s", vectors_dir());
    struct dirent *e;
    int files = 0;
    rng = 1;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl < 5 || strcmp(e->d_name + nl - 4, ".npy") != 0)
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", vectors_dir(), e->d_name);
        FILE *f = fopen(path, "rb");
        ck_assert(f != NULL);
        fseek(f, 0, SEEK_END);
        size_t len = (size_t)ftell(f);
        rewind(f);
        uint8_t *bytes = malloc(len);
        ck_assert(fread(bytes, 1, len, f) == len);
        fclose(f);
        struct sq_model m;
        sq_model_init(&m);
        struct sq_error err;
        sq_error_init(&err);
        ck_assert_msg(sq_npy_parse(bytes, len, NULL, "w", &m, &err) == SQ_OK, "%s", err.message);
        const struct sq_tensor *t = &m.tensors[0];
        struct sq_layer layer;
        ck_assert(sq_layer_init(&layer, t->rank, t->shape, &err) == SQ_OK);
        float *w = malloc(t->nelems * sizeof(float));
        sq_tensor_to_f32(t, 0, t->nelems, w);
        static const unsigned bits[] = {2, 3, 4, 8};
        size_t I = layer.kernels;
        int k = 0;
        for (size_t g = 1; g <= I + 1; g++) {
            /* all divisors; of the others g = 3, 5, 7 and I - 1 */
            bool divides = I % g == 0 || g > I;
            if (!divides && g != 3 && g != 5 && g != 7 && g != I - 1)
                continue;
            for (int mode = 0; mode < SQ_MODE_COUNT; mode++)
                for (int scheme = 0; scheme < SQ_SCHEME_COUNT; scheme++) {
                    struct sq_params p;
                    sq_params_init(&p);
                    p.bits = bits[k++ % 4];
                    p.mode = (enum sq_mode)mode;
                    p.scheme = (enum sq_scheme)scheme;
                    char what[400];
                    snprintf(what, sizeof what, "%s group %zu, %u bits, %s, %s", e->d_name, g,
                             p.bits, sq_mode_name(p.mode), sq_scheme_name(p.scheme));
                    check_tensor(&p, &layer, g, w, what);
                }
        }
        free(w);
        sq_model_free(&m);
        free(bytes);
        files++;
    }
    closedir(d);
    ck_assert_int_ge(files, 20);
}
END_TEST

/* Random shapes, group sizes, distributions, bits, modes and schemes. */
START_TEST(test_random)
{
    rng = 0x6e0u + (uint64_t)_i;
    for (int t = 0; t < 40; t++) {
        static const int64_t ks[][2] = {{1, 1}, {3, 3}, {5, 5}, {1, 3}, {7, 7}, {2, 2}};
        int64_t shape[4] = {1 + (int64_t)pick(12), 1 + (int64_t)pick(pick(4) ? 40 : 300), 1, 1};
        unsigned rank = 2 + (unsigned)pick(3);
        size_t kk = pick(sizeof ks / sizeof *ks);
        if (rank == 3)
            shape[2] = 1 + (int64_t)pick(9);
        if (rank == 4) {
            shape[2] = ks[kk][0];
            shape[3] = ks[kk][1];
        }
        struct sq_layer layer;
        ck_assert(sq_layer_init(&layer, rank, shape, NULL) == SQ_OK);
        size_t I = layer.kernels, g;
        switch (pick(4)) {
        case 0:
            g = 1 + pick(I); /* anything up to I */
            break;
        case 1:
            g = I + pick(3); /* one group per channel */
            break;
        default:
            g = (size_t[]){1, 2, 4, 8, 16, 32, 64, 128}[pick(8)];
        }
        struct sq_params p;
        sq_params_init(&p);
        p.bits = SQ_BITS_MIN + (unsigned)pick(SQ_BITS_MAX - SQ_BITS_MIN + 1);
        p.mode = (enum sq_mode)pick(SQ_MODE_COUNT);
        p.scheme = pick(3) == 0 ? SQ_SCHEME_SYMMETRIC : SQ_SCHEME_ASYMMETRIC;
        size_t n = layer.channels * layer.kernels * layer.ksize;
        float *w = malloc(n * sizeof(float));
        int kind = (int)pick(3);
        fill(w, n, kind);
        char what[300];
        snprintf(what, sizeof what,
                 "round %d tensor %d: [%lld,%lld,...] rank %u group %zu kind %d, "
                 "%u bits, %s, %s",
                 _i, t, (long long)shape[0], (long long)shape[1], rank, g, kind, p.bits,
                 sq_mode_name(p.mode), sq_scheme_name(p.scheme));
        check_tensor(&p, &layer, g, w, what);
        free(w);
    }
}
END_TEST

/*
 * Many short rows in one call: the SIMD implementations quantize rows of up
 * to 128 elements W at a time, one per lane, in the modes without a kernel
 * stage. Row lengths that are and are not multiples of 8 and 16, groups that
 * do and do not divide I, 1x1, 1x3 and 3x3 kernels, per channel too; values
 * with ties, constant and zero groups, and groups that ask for more flips
 * than they have candidates.
 */
START_TEST(test_short_rows)
{
    rng = 0x5107u + (uint64_t)_i;
    static const int64_t shapes[][4] = {
        {64, 256, 1, 1}, {48, 96, 1, 1}, {40, 64, 3, 3}, {33, 200, 1, 1}, {17, 128, 1, 3}};
    static const size_t groups[] = {0, 1, 3, 4, 8, 13, 16, 24, 32, 37, 64, 100, 128};
    const int64_t *sh = shapes[_i % 5];
    unsigned rank = sh[2] == 1 && sh[3] == 1 ? 2 : 4;
    struct sq_layer layer;
    ck_assert(sq_layer_init(&layer, rank, sh, NULL) == SQ_OK);
    size_t n = layer.channels * layer.kernels * layer.ksize;
    float *w = malloc(n * sizeof(float));
    for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++) {
        struct sq_params p;
        sq_params_init(&p);
        p.bits = SQ_BITS_MIN + (unsigned)pick(SQ_BITS_MAX - SQ_BITS_MIN + 1);
        /* mostly the modes that take the short-row path (the kernel stage needs ksize > 1) */
        p.mode = (enum sq_mode)(pick(4) ? (pick(2) ? SQ_MODE_SQUANT_C : SQ_MODE_RTN)
                                        : pick(SQ_MODE_COUNT));
        if (layer.ksize == 1 && pick(2))
            p.mode = SQ_MODE_SQUANT;
        p.scheme = pick(3) == 0 ? SQ_SCHEME_SYMMETRIC : SQ_SCHEME_ASYMMETRIC;
        int kind = (int)pick(5);
        fill(w, n, kind);
        char what[300];
        snprintf(what, sizeof what,
                 "short rows %d: [%lld,%lld,%lld,%lld] group %zu kind %d, %u bits, %s, %s", _i,
                 (long long)sh[0], (long long)sh[1], (long long)sh[2], (long long)sh[3], groups[gi],
                 kind, p.bits, sq_mode_name(p.mode), sq_scheme_name(p.scheme));
        check_tensor(&p, &layer, groups[gi], w, what);
    }
    free(w);
}
END_TEST

/*
 * Short rows whose priorities tie at the k-th flip: the batched path finds
 * each row's k-th largest priority and flips what is at or above it, which
 * is the stable order's first k only without a tie there; rows with ties
 * (repeated weights, so equal rounding errors) must still flip the lowest
 * positions first. Blocks mix such rows with rows of distinct values.
 */
START_TEST(test_short_rows_ties)
{
    rng = 0x7135u + (uint64_t)_i;
    static const size_t lens[] = {32, 64, 128, 40};
    size_t len = lens[_i % 4], rows = 96;
    struct sq_layer layer = {rows / 4, 4 * len, 1}; /* group len: rows of len */
    size_t n = rows * len;
    float *w = malloc(n * sizeof(float));
    fill(w, n, 0);
    for (size_t r = 0; r < rows; r++) {
        if (pick(3) == 0)
            continue; /* distinct values */
        float *row = w + r * len, v[3];
        for (int j = 0; j < 3; j++)
            v[j] = (float)(uniform() - 0.5);
        row[pick(len)] = -0.75f;
        row[pick(len)] = 0.75f;
        for (size_t t = 0; t < len; t++)
            if (row[t] != -0.75f && row[t] != 0.75f && pick(4))
                row[t] = v[pick(1 + pick(3))];
    }
    for (int m = 0; m < 4; m++) {
        struct sq_params p;
        sq_params_init(&p);
        p.bits = m < 2 ? 4 : 8;
        p.mode = m % 2 ? SQ_MODE_SQUANT_C : SQ_MODE_SQUANT;
        p.scheme = pick(2) ? SQ_SCHEME_SYMMETRIC : SQ_SCHEME_ASYMMETRIC;
        char what[200];
        snprintf(what, sizeof what, "tied short rows %d: rows of %zu, %u bits, %s, %s", _i, len,
                 p.bits, sq_mode_name(p.mode), sq_scheme_name(p.scheme));
        check_tensor(&p, &layer, len, w, what);
    }
    free(w);
}
END_TEST

/* A NaN in the middle of a block of short rows is named in tensor terms, for every implementation.
 */
START_TEST(test_short_rows_nonfinite)
{
    struct sq_layer layer = {64, 256, 1};
    size_t n = 64 * 256, ss, bad = 37 * 256 + 101; /* channel 37, group 3 of 32 */
    float *w = malloc(n * sizeof(float)), s[64 * 8], z[64 * 8];
    int8_t *q = malloc(n);
    rng = 7;
    fill(w, n, 0);
    ck_assert(sq_group_scratch_size(&layer, 32, &ss) == SQ_OK);
    void *scratch = malloc(ss);
    for (enum sq_impl impl = SQ_IMPL_REF; impl < SQ_IMPL_COUNT; impl++) {
        if (!sq_impl_available(impl))
            continue;
        for (int m = 0; m < 2; m++) {
            struct sq_params p;
            sq_params_init(&p);
            p.impl = impl;
            p.mode = m ? SQ_MODE_RTN : SQ_MODE_SQUANT;
            w[bad] = m ? INFINITY : NAN;
            struct sq_error err;
            sq_error_init(&err);
            ck_assert_int_eq(
                sq_quantize_groups(&p, &layer, 32, w, 0, 64 * 8, q, s, z, scratch, ss, NULL, &err),
                SQ_ERR_NONFINITE);
            ck_assert_int_eq(err.channel, 37);
            ck_assert_int_eq(err.index, (int64_t)bad);
            ck_assert_msg(strstr(err.message, "output channel 37, element 101") != NULL, "%s: %s",
                          sq_impl_name(impl), err.message);
            w[bad] = 0.0f;
        }
    }
    free(scratch);
    free(q);
    free(w);
}
END_TEST

/* group 0 and group >= I are per-channel SQuant, call for call. */
START_TEST(test_per_channel)
{
    rng = 42;
    struct sq_layer layer = {7, 10, 9};
    size_t n = 7 * 90;
    float *w = malloc(n * sizeof(float));
    fill(w, n, 0);
    struct sq_params p;
    sq_params_init(&p);
    struct out a, b;
    out_alloc(&a, n, 7);
    out_alloc(&b, n, 7);
    per_channel(&p, &layer, w, &a);
    for (size_t g = 0; g < 14; g += (g == 0 ? 10 : 1)) {
        ck_assert_uint_eq(sq_layer_groups(&layer, g), 1);
        struct sq_report r;
        grouped(&p, &layer, g, w, 3, &b, &r);
        ck_assert(memcmp(a.q, b.q, n) == 0);
        ck_assert(memcmp(a.scale, b.scale, 7 * sizeof(float)) == 0);
        ck_assert(memcmp(a.zp, b.zp, 7 * sizeof(float)) == 0);
    }
    out_free(&a);
    out_free(&b);
    free(w);
}
END_TEST

START_TEST(test_geometry)
{
    struct sq_layer layer = {3, 100, 9}; /* [3, 100, 3, 3] */
    ck_assert_uint_eq(sq_layer_groups(&layer, 0), 1);
    ck_assert_uint_eq(sq_layer_groups(&layer, 32), 4);
    ck_assert_uint_eq(sq_layer_groups(&layer, 25), 4);
    ck_assert_uint_eq(sq_layer_groups(&layer, 1), 100);
    ck_assert_uint_eq(sq_layer_groups(&layer, 100), 1);
    ck_assert_uint_eq(sq_layer_groups(&layer, 1000), 1);
    ck_assert_uint_eq(sq_group_offset(&layer, 32, 0), 0);
    ck_assert_uint_eq(sq_group_offset(&layer, 32, 1), 32 * 9);
    ck_assert_uint_eq(sq_group_offset(&layer, 32, 3), 96 * 9); /* the short last group */
    ck_assert_uint_eq(sq_group_offset(&layer, 32, 4), 900);    /* channel 1 */
    ck_assert_uint_eq(sq_group_offset(&layer, 32, 12), 2700);  /* the end */
    ck_assert_uint_eq(sq_group_offset(&layer, 0, 2), 1800);
    size_t a, b;
    ck_assert(sq_group_scratch_size(&layer, 32, &a) == SQ_OK);
    ck_assert(sq_scratch_size(&layer, &b) == SQ_OK);
    ck_assert_uint_lt(a, b);

    struct sq_params p;
    sq_params_init(&p);
    float w[2700] = {0}, s[12], z[12];
    int8_t q[2700];
    void *scratch = malloc(b);
    struct sq_error err;
    sq_error_init(&err);
    ck_assert_int_eq(sq_quantize_groups(&p, &layer, 32, w, 0, 13, q, s, z, scratch, b, NULL, &err),
                     SQ_ERR_ARG);
    ck_assert_int_eq(sq_quantize_groups(&p, &layer, 32, w, 5, 4, q, s, z, scratch, b, NULL, &err),
                     SQ_ERR_ARG);
    ck_assert_int_eq(sq_quantize_groups(&p, &layer, 32, w, 0, 12, q, s, z, scratch, 16, NULL, &err),
                     SQ_ERR_ARG);
    ck_assert_int_eq(sq_quantize_groups(&p, &layer, 32, w, 0, 12, q, s, z, scratch, b, NULL, &err),
                     SQ_OK);
    /* a NaN in channel 2, input channel 97 (the short last group): named in tensor terms */
    for (size_t g = 25; g <= 32; g += 7) {
        w[2 * 900 + 97 * 9 + 4] = NAN;
        sq_error_init(&err);
        ck_assert_int_eq(
            sq_quantize_groups(&p, &layer, g, w, 0, 12, q, s, z, scratch, b, NULL, &err),
            SQ_ERR_NONFINITE);
        ck_assert_int_eq(err.channel, 2);
        ck_assert_int_eq(err.index, 2 * 900 + 97 * 9 + 4);
        ck_assert_msg(strstr(err.message, "output channel 2, element 877") != NULL, "%s",
                      err.message);
        /* from a range that starts mid-tensor */
        size_t u0 = 4 + 2, off = sq_group_offset(&layer, g, u0);
        sq_error_init(&err);
        ck_assert_int_eq(
            sq_quantize_groups(&p, &layer, g, w + off, u0, 12, q, s, z, scratch, b, NULL, &err),
            SQ_ERR_NONFINITE);
        ck_assert_int_eq(err.index, 2 * 900 + 97 * 9 + 4);
        w[2 * 900 + 97 * 9 + 4] = 0.0f;
    }
    free(scratch);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("group");
    TCase *tc = tcase_create("group");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_geometry);
    tcase_add_test(tc, test_per_channel);
    tcase_add_test(tc, test_conformance_inputs);
    tcase_add_loop_test(tc, test_random, 0, 20);
    tcase_add_loop_test(tc, test_short_rows, 0, 10);
    tcase_add_loop_test(tc, test_short_rows_ties, 0, 8);
    tcase_add_test(tc, test_short_rows_nonfinite);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

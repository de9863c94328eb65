/*
 * bench_core: time SQuant against round to nearest and a streaming floor on
 * the weight shapes of ResNet-18 and ResNet-50 (random normal weights, 4 bits).
 *
 *   bench_core [--model resnet18|resnet50|linear4096|all] [--threads N]
 *              [--impl I[,I...]|sweep] [--reps R] [--group G]
 *
 * For each implementation I (--impl sweep: every one this CPU has):
 * floor:  read every float32 weight once and write one int8 per weight, a
 *         conversion pass vectorized for I's ISA (AVX-512, AVX2, or portable
 *         C that the compiler vectorizes for its baseline: SSE2, NEON): what
 *         any quantizer on that ISA must at least do;
 * rtn:    libsquant, mode rtn (per-channel min/max, then round to nearest);
 * squant: libsquant, mode squant (E+K+C), without the report;
 * report: the same with the per-layer report (errors, residuals, flips).
 * Work is cut into the same channel-range items as the plan and shared by
 * the threads through an atomic counter. Each repetition runs all of them
 * for every implementation back to back, so that a noisy neighbour slows
 * them alike; printed are the medians over R repetitions of the times and of
 * the per-repetition ratios: squant/rtn, squant/floor, the report's cost
 * (report - squant) / squant, and squant against the first implementation
 * of the list (--impl avx2,generic: generic/avx2). The last lines (one per
 * model, thread count and implementation) are for scripts:
 *   resnet50 threads=2 impl=avx2 floor_ms=4.1 rtn_ms=4.3 squant_ms=9.8 ...
 * With --group G, rtn, squant and report also run group-wise (a range per G
 * input channels, sq_quantize_groups) on the same items, in each repetition
 * right after the same implementation's per-channel runs, printed below the
 * per-channel numbers, with lines "... group=G ..." for scripts
 * (sq_per_channel, rtn_per_channel: medians of the per-repetition ratios of
 * group-wise over per-channel squant and rtn).
 * This is a benchmark, not a test: it never fails on timings.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __x86_64__
#include <immintrin.h>
#endif

#include <squant/squant.h>

struct shape {
    int64_t o, i, kh, kw;
    int count; /* how many layers of this shape */
};

/* ResNet-18 (torchvision): conv weights and the final linear layer. */
static const struct shape resnet18[] = {
    {64, 3, 7, 7, 1},    {64, 64, 3, 3, 4},   {128, 64, 3, 3, 1},  {128, 128, 3, 3, 3},
    {128, 64, 1, 1, 1},  {256, 128, 3, 3, 1}, {256, 256, 3, 3, 3}, {256, 128, 1, 1, 1},
    {512, 256, 3, 3, 1}, {512, 512, 3, 3, 3}, {512, 256, 1, 1, 1}, {1000, 512, 1, 1, 1},
};

/* ResNet-50 (torchvision v1.5: stride on the 3x3). fc is [1000, 2048] (kh = kw = 1). */
static const struct shape resnet50[] = {
    {64, 3, 7, 7, 1},
    /* layer1 */
    {64, 64, 1, 1, 1},
    {64, 64, 3, 3, 3},
    {256, 64, 1, 1, 4},
    {64, 256, 1, 1, 2},
    /* layer2 */
    {128, 256, 1, 1, 1},
    {128, 128, 3, 3, 4},
    {512, 128, 1, 1, 4},
    {512, 256, 1, 1, 1},
    {128, 512, 1, 1, 3},
    /* layer3 */
    {256, 512, 1, 1, 1},
    {256, 256, 3, 3, 6},
    {1024, 256, 1, 1, 6},
    {1024, 512, 1, 1, 1},
    {256, 1024, 1, 1, 5},
    /* layer4 */
    {512, 1024, 1, 1, 1},
    {512, 512, 3, 3, 3},
    {2048, 512, 1, 1, 3},
    {2048, 1024, 1, 1, 1},
    {512, 2048, 1, 1, 2},
    /* fc */
    {1000, 2048, 1, 1, 1},
};

/* An LLM-shaped block: square linear layers, where the report's cost shows most. */
static const struct shape linear4096[] = {
    {4096, 4096, 1, 1, 4},
};

struct layer {
    struct sq_layer geom;
    size_t n;
    float *w;
    int8_t *q;
    float *scale, *zp;
};

struct item {
    struct layer *l;
    size_t c0, c1;
};

/* What one run does. */
enum task { TASK_FLOOR, TASK_RTN, TASK_SQUANT, TASK_REPORT, TASK_COUNT };

struct job {
    struct item *items;
    size_t n_items;
    atomic_size_t next;
    struct sq_params params;
    enum task task;
    size_t group; /* 0: per channel; else group-wise with this group size */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64 + Box-Muller: reproducible normal weights. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform01(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) * 0x1p-53;
}

/*
 * The floors: q = saturate(trunc(16 w)), one read of each float and one
 * write of each code. Every ISA gets its own vectorized loop.
 */
static inline int8_t floor_one(float w)
{
    float v = w * 16.0f;
    v = v > -128.0f ? v : -128.0f;
    v = v < 127.0f ? v : 127.0f;
    return (int8_t)(int)v;
}

/*
 * Portable: the compiler vectorizes it for its baseline ISA (SSE2 on
 * x86-64, NEON on aarch64), with the flags the core gets.
 */
static void floor_generic(const float *restrict w, int8_t *restrict q, size_t n)
{
    for (size_t i = 0; i < n; i++)
        q[i] = floor_one(w[i]);
}

#ifdef __x86_64__
__attribute__((target("avx2"))) static void floor_avx2(const float *w, int8_t *q, size_t n)
{
    __m256 k = _mm256_set1_ps(16.0f);
    __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_loadu_ps(w + i), k));
        __m256i b = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_loadu_ps(w + i + 8), k));
        __m256i c = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_loadu_ps(w + i + 16), k));
        __m256i d = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_loadu_ps(w + i + 24), k));
        /* saturating packs work per 128-bit lane: one permute puts the dwords back in order */
        __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
        __m256i v = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
        _mm256_storeu_si256((__m256i *)(q + i), v);
    }
    for (; i < n; i++)
        q[i] = floor_one(w[i]);
}

__attribute__((target("avx512f,avx512bw"))) static void floor_avx512(const float *w, int8_t *q,
                                                                     size_t n)
{
    __m512 k = _mm512_set1_ps(16.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(
                                                 _mm512_mul_ps(_mm512_loadu_ps(w + i), k))));
    for (; i < n; i++)
        q[i] = floor_one(w[i]);
}
#endif

/* The floor of an implementation's ISA. */
static void floor_pass(enum sq_impl impl, const float *w, int8_t *q, size_t n)
{
    switch (impl) {
#ifdef __x86_64__
    case SQ_IMPL_AVX512:
        floor_avx512(w, q, n);
        return;
    case SQ_IMPL_AVX2:
        floor_avx2(w, q, n);
        return;
#endif
    default:
        floor_generic(w, q, n);
        return;
    }
}

static void *worker(void *arg)
{
    struct job *job = arg;
    size_t scratch_size = 0;
    for (size_t i = 0; i < job->n_items; i++) {
        size_t s;
        sq_scratch_size(&job->items[i].l->geom, &s);
        scratch_size = s > scratch_size ? s : scratch_size;
    }
    void *scratch = malloc(scratch_size);
    struct sq_report report;
    for (;;) {
        size_t i = atomic_fetch_add(&job->next, 1);
        if (i >= job->n_items)
            break;
        struct item *it = &job->items[i];
        struct layer *l = it->l;
        size_t len = sq_layer_channel_size(&l->geom), off = it->c0 * len;
        if (job->task == TASK_FLOOR) {
            floor_pass(job->params.impl, l->w + off, l->q + off, (it->c1 - it->c0) * len);
            continue;
        }
        struct sq_error err;
        struct sq_report *rp = job->task == TASK_REPORT ? &report : NULL;
        size_t per = sq_layer_groups(&l->geom, job->group), u0 = it->c0 * per, u1 = it->c1 * per;
        if ((job->group ? sq_quantize_groups(&job->params, &l->geom, job->group, l->w + off, u0, u1,
                                             l->q + off, l->scale + u0, l->zp + u0, scratch,
                                             scratch_size, rp, &err)
                        : sq_quantize_range(&job->params, &l->geom, l->w + off, it->c0, it->c1,
                                            l->q + off, l->scale + it->c0, l->zp + it->c0, scratch,
                                            scratch_size, rp, &err)) != SQ_OK) {
            fprintf(stderr, "bench_core: %s\n", err.message);
            exit(1);
        }
    }
    free(scratch);
    return NULL;
}

static double run_once(struct job *job, int threads)
{
    pthread_t tid[256];
    atomic_store(&job->next, 0);
    double t0 = now();
    for (int t = 1; t < threads; t++)
        pthread_create(&tid[t], NULL, worker, job);
    worker(job);
    for (int t = 1; t < threads; t++)
        pthread_join(tid[t], NULL);
    return now() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define MAX_REPS 101

/* Medians of one implementation's times (ms) and of its per-repetition ratios. */
struct result {
    double ms[TASK_COUNT];
    double sq_rtn, sq_floor, report_cost, vs_first;
    double sq_per_channel, rtn_per_channel; /* group-wise results only */
};

/*
 * Every task of every implementation runs back to back in each repetition,
 * the group-wise ones (group > 0: rtn, squant, report) right after the
 * per-channel ones of the same implementation; ratios are taken within a
 * repetition. The group-wise floor is the per-channel one (the same pass).
 */
static void measure(struct job *job, int threads, const enum sq_impl *impls, int n_impls, int reps,
                    size_t group, struct result *res, struct result *gres)
{
    enum { SETS = 2, RATIOS = 6 };
    static double t[SETS][SQ_IMPL_COUNT][TASK_COUNT][MAX_REPS];
    static double ratio[SETS][SQ_IMPL_COUNT][RATIOS][MAX_REPS];
    int sets = group ? 2 : 1;
    for (int i = -1; i < reps; i++) { /* i = -1: warm-up (page faults, caches) */
        double first_sq[SETS] = {0.0, 0.0};
        for (int m = 0; m < n_impls; m++) {
            double tt[SETS][TASK_COUNT];
            job->params.impl = impls[m];
            for (int g = 0; g < sets; g++) {
                job->group = g ? group : 0;
                for (int k = g ? TASK_RTN : 0; k < TASK_COUNT; k++) {
                    job->task = (enum task)k;
                    job->params.mode = k == TASK_RTN ? SQ_MODE_RTN : SQ_MODE_SQUANT;
                    tt[g][k] = run_once(job, threads);
                }
                if (g)
                    tt[g][TASK_FLOOR] = tt[0][TASK_FLOOR];
                if (m == 0)
                    first_sq[g] = tt[g][TASK_SQUANT];
            }
            if (i < 0)
                continue;
            for (int g = 0; g < sets; g++) {
                for (int k = 0; k < TASK_COUNT; k++)
                    t[g][m][k][i] = tt[g][k] * 1e3;
                double *r[RATIOS];
                for (int x = 0; x < RATIOS; x++)
                    r[x] = &ratio[g][m][x][i];
                *r[0] = tt[g][TASK_SQUANT] / tt[g][TASK_RTN];
                *r[1] = tt[g][TASK_SQUANT] / tt[g][TASK_FLOOR];
                *r[2] = (tt[g][TASK_REPORT] - tt[g][TASK_SQUANT]) / tt[g][TASK_SQUANT];
                *r[3] = tt[g][TASK_SQUANT] / first_sq[g];
                *r[4] = tt[g][TASK_SQUANT] / tt[0][TASK_SQUANT];
                *r[5] = tt[g][TASK_RTN] / tt[0][TASK_RTN];
            }
        }
    }
    for (int g = 0; g < sets; g++) {
        struct result *out = g ? gres : res;
        for (int m = 0; m < n_impls; m++) {
            for (int k = 0; k < TASK_COUNT; k++)
                out[m].ms[k] = median(t[g][m][k], reps);
            out[m].sq_rtn = median(ratio[g][m][0], reps);
            out[m].sq_floor = median(ratio[g][m][1], reps);
            out[m].report_cost = median(ratio[g][m][2], reps);
            out[m].vs_first = median(ratio[g][m][3], reps);
            out[m].sq_per_channel = median(ratio[g][m][4], reps);
            out[m].rtn_per_channel = median(ratio[g][m][5], reps);
        }
    }
}

/* The CPU model from /proc/cpuinfo, where there is one. */
static void cpu_model(char *out, size_t size)
{
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (colon && (strncmp(line, "model name", 10) == 0 || strncmp(line, "Model", 5) == 0)) {
            colon += strspn(colon + 1, " \t") + 1;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(out, size, "%s", colon);
            break;
        }
    }
    fclose(f);
}

static void bench_model(const char *name, const struct shape *shapes, size_t n_shapes,
                        const int *threads, int n_threads, const enum sq_impl *impls, int n_impls,
                        int reps, size_t group)
{
    size_t n_layers = 0, weights = 0, n_items = 0;
    for (size_t s = 0; s < n_shapes; s++)
        n_layers += (size_t)shapes[s].count;
    struct layer *layers = calloc(n_layers, sizeof *layers);
    size_t li = 0;
    for (size_t s = 0; s < n_shapes; s++)
        for (int c = 0; c < shapes[s].count; c++, li++) {
            struct layer *l = &layers[li];
            int64_t shape[4] = {shapes[s].o, shapes[s].i, shapes[s].kh, shapes[s].kw};
            sq_layer_init(&l->geom, 4, shape, NULL);
            l->n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
            l->w = malloc(l->n * sizeof(float));
            l->q = malloc(l->n);
            /* room for one scale per input channel: any --group */
            l->scale = malloc((size_t)(shape[0] * shape[1]) * sizeof(float));
            l->zp = malloc((size_t)(shape[0] * shape[1]) * sizeof(float));
            if (!l->w || !l->q || !l->scale || !l->zp) {
                fprintf(stderr, "bench_core: out of memory\n");
                exit(1);
            }
            double sd = 1.0 / (double)(shape[1] * shape[2] * shape[3]);
            for (size_t i = 0; i < l->n; i += 2) {
                double u1 = uniform01(), u2 = uniform01(),
                       r = __builtin_sqrt(-2.0 * __builtin_log(u1));
                l->w[i] = (float)(r * __builtin_cos(6.283185307179586 * u2) * __builtin_sqrt(sd));
                if (i + 1 < l->n)
                    l->w[i + 1] =
                        (float)(r * __builtin_sin(6.283185307179586 * u2) * __builtin_sqrt(sd));
            }
            memset(l->q, 0, l->n);
            weights += l->n;
            size_t per = ((size_t)1 << 17) / sq_layer_channel_size(&l->geom);
            per = per ? per : 1;
            n_items += (l->geom.channels + per - 1) / per;
        }
    struct item *items = calloc(n_items, sizeof *items);
    size_t ii = 0;
    for (li = 0; li < n_layers; li++) {
        struct layer *l = &layers[li];
        size_t per = ((size_t)1 << 17) / sq_layer_channel_size(&l->geom);
        per = per ? per : 1;
        for (size_t c = 0; c < l->geom.channels; c += per)
            items[ii++] =
                (struct item){l, c, c + per < l->geom.channels ? c + per : l->geom.channels};
    }
    printf("%s: %zu layers, %zu weights (%.1f MB float32), %zu work items, %d repetitions\n", name,
           n_layers, weights, (double)weights * 4 / 1e6, n_items, reps);
    for (int t = 0; t < n_threads; t++) {
        struct result sets[2][SQ_IMPL_COUNT];
        struct job job = {.items = items, .n_items = n_items};
        sq_params_init(&job.params);
        measure(&job, threads[t], impls, n_impls, reps, group, sets[0], sets[1]);
        for (int pass = 0; pass < (group ? 2 : 1); pass++) {
            const struct result *res = sets[pass];
            if (pass)
                printf("  threads %d, group %zu (medians: ms, and of the per-repetition ratios; "
                       "sq/chan, rtn/chan: against per channel in the same repetition)\n",
                       threads[t], group);
            else
                printf("  threads %d (medians: ms, and of the per-repetition ratios)\n",
                       threads[t]);
            printf("  %-8s %9s %9s %9s %9s %8s %8s %8s %8s %8s", "impl", "floor", "rtn", "squant",
                   "+report", "sq_ns/w", "sq/rtn", "sq/floor", "report", "sq/first");
            printf(pass ? " %8s %8s\n" : "\n", "sq/chan", "rtn/chan");
            for (int m = 0; m < n_impls; m++) {
                printf("  %-8s %9.2f %9.2f %9.2f %9.2f %8.3f %8.2f %8.2f %7.1f%% %8.2f",
                       sq_impl_name(impls[m]), res[m].ms[TASK_FLOOR], res[m].ms[TASK_RTN],
                       res[m].ms[TASK_SQUANT], res[m].ms[TASK_REPORT],
                       res[m].ms[TASK_SQUANT] * 1e6 / (double)weights, res[m].sq_rtn,
                       res[m].sq_floor, 100.0 * res[m].report_cost, res[m].vs_first);
                if (pass)
                    printf(" %8.2f %8.2f", res[m].sq_per_channel, res[m].rtn_per_channel);
                printf("\n");
            }
            for (int m = 0; m < n_impls; m++) {
                char grp[64] = "";
                if (pass)
                    snprintf(grp, sizeof grp, " group=%zu", group);
                printf("%s threads=%d impl=%s%s floor_ms=%.2f rtn_ms=%.2f squant_ms=%.2f "
                       "report_ms=%.2f sq_rtn=%.2f sq_floor=%.2f report_cost=%.3f sq_first=%.2f",
                       name, threads[t], sq_impl_name(impls[m]), grp, res[m].ms[TASK_FLOOR],
                       res[m].ms[TASK_RTN], res[m].ms[TASK_SQUANT], res[m].ms[TASK_REPORT],
                       res[m].sq_rtn, res[m].sq_floor, res[m].report_cost, res[m].vs_first);
                if (pass)
                    printf(" sq_per_channel=%.2f rtn_per_channel=%.2f", res[m].sq_per_channel,
                           res[m].rtn_per_channel);
                printf("\n");
            }
        }
        fflush(stdout);
    }
    for (li = 0; li < n_layers; li++) {
        free(layers[li].w);
        free(layers[li].q);
        free(layers[li].scale);
        free(layers[li].zp);
    }
    free(layers);
    free(items);
}

/* --impl: one name, a comma-separated list, or "sweep" (every available one, fastest first). */
static int parse_impls(const char *arg, enum sq_impl *impls)
{
    int n = 0;
    if (strcmp(arg, "sweep") == 0) {
        static const enum sq_impl order[] = {SQ_IMPL_AVX512, SQ_IMPL_AVX2, SQ_IMPL_GENERIC};
        for (size_t i = 0; i < sizeof order / sizeof *order; i++)
            if (sq_impl_available(order[i]))
                impls[n++] = order[i];
        return n;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        enum sq_impl impl;
        if (n == SQ_IMPL_COUNT || sq_impl_from_name(tok, &impl) != SQ_OK ||
            !sq_impl_available(impl)) {
            fprintf(stderr, "bench_core: implementation %s is not available\n", tok);
            return -1;
        }
        impls[n++] = impl;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *model = "all";
    int max_threads = (int)sysconf(_SC_NPROCESSORS_ONLN), reps = 11, only_threads = 0;
    enum sq_impl impls[SQ_IMPL_COUNT] = {SQ_IMPL_AUTO};
    int n_impls = 1;
    long group = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            only_threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--group") == 0 && i + 1 < argc)
            group = atol(argv[++i]);
        else if (strcmp(argv[i], "--impl") == 0 && i + 1 < argc) {
            if ((n_impls = parse_impls(argv[++i], impls)) < 1)
                return 2;
        } else {
            fprintf(stderr,
                    "usage: bench_core [--model resnet18|resnet50|linear4096|all] [--threads N] "
                    "[--impl I[,I...]|sweep] [--reps R] [--group G]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || max_threads < 1 || only_threads < 0 || only_threads > 256 ||
        group < 0 || group > (1L << 30)) {
        fprintf(stderr, "bench_core: bad --reps, --threads or --group\n");
        return 2;
    }
    /* auto is named for what it picks, so that the floor matches its ISA */
    static const enum sq_impl preference[] = {SQ_IMPL_AVX512, SQ_IMPL_AVX2, SQ_IMPL_GENERIC};
    for (int m = 0; m < n_impls; m++)
        for (size_t i = 0; impls[m] == SQ_IMPL_AUTO && i < 3; i++)
            if (sq_impl_available(preference[i]))
                impls[m] = preference[i];
    if (max_threads > 256)
        max_threads = 256;
    int threads[2] = {1, max_threads}, n_threads = max_threads > 1 ? 2 : 1;
    if (only_threads) {
        threads[0] = only_threads;
        n_threads = 1;
    }
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("cpu: %s, %d online; implementations:", cpu, (int)sysconf(_SC_NPROCESSORS_ONLN));
    for (int m = 0; m < n_impls; m++)
        printf(" %s", sq_impl_name(impls[m]));
    printf("\n");
    struct {
        const char *name;
        const struct shape *shapes;
        size_t n;
        bool in_all;
    } models[] = {{"resnet18", resnet18, sizeof resnet18 / sizeof *resnet18, true},
                  {"resnet50", resnet50, sizeof resnet50 / sizeof *resnet50, true},
                  {"linear4096", linear4096, sizeof linear4096 / sizeof *linear4096, false}};
    int ran = 0;
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        if (strcmp(model, models[m].name) != 0 && !(strcmp(model, "all") == 0 && models[m].in_all))
            continue;
        bench_model(models[m].name, models[m].shapes, models[m].n, threads, n_threads, impls,
                    n_impls, reps, (size_t)group);
        ran = 1;
    }
    if (!ran) {
        fprintf(stderr, "bench_core: unknown model %s\n", model);
        return 2;
    }
    return 0;
}

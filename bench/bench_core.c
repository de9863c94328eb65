/*
 * bench_core: time SQuant against round to nearest and a streaming floor on
 * the weight shapes of ResNet-18 and ResNet-50 (random normal weights, 4 bits).
 *
 *   bench_core [--model resnet18|resnet50|all] [--threads N] [--impl I] [--reps R]
 *              [--group G]
 *
 * floor:  read every float32 weight once and write one int8 per weight
 *         (a conversion pass: what any quantizer must at least do);
 * rtn:    libsquant, mode rtn (per-channel min/max, then round to nearest);
 * squant: libsquant, mode squant (E+K+C).
 * Work is cut into the same channel-range items as the plan and shared by
 * the threads through an atomic counter. Each repetition runs the three
 * back to back; printed are the medians over R repetitions of the times and
 * of the per-repetition ratios. The last lines (one per model and thread
 * count) are for scripts:
 *   resnet50 threads=2 floor_ms=4.1 rtn_ms=4.3 squant_ms=9.8
 * With --group G, rtn and squant also run group-wise (a range per G input
 * channels, sq_quantize_groups) on the same items, printed beside the
 * per-channel numbers, with lines "... group=G ..." for scripts.
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
    {64, 3, 7, 7, 1},     {64, 64, 3, 3, 4},    {128, 64, 3, 3, 1},   {128, 128, 3, 3, 3},
    {128, 64, 1, 1, 1},   {256, 128, 3, 3, 1},  {256, 256, 3, 3, 3},  {256, 128, 1, 1, 1},
    {512, 256, 3, 3, 1},  {512, 512, 3, 3, 3},  {512, 256, 1, 1, 1},  {1000, 512, 1, 1, 1},
};

/* ResNet-50 (torchvision v1.5: stride on the 3x3). fc is [1000, 2048] (kh = kw = 1). */
static const struct shape resnet50[] = {
    {64, 3, 7, 7, 1},
    /* layer1 */
    {64, 64, 1, 1, 1},    {64, 64, 3, 3, 3},    {256, 64, 1, 1, 4},   {64, 256, 1, 1, 2},
    /* layer2 */
    {128, 256, 1, 1, 1},  {128, 128, 3, 3, 4},  {512, 128, 1, 1, 4},  {512, 256, 1, 1, 1},
    {128, 512, 1, 1, 3},
    /* layer3 */
    {256, 512, 1, 1, 1},  {256, 256, 3, 3, 6},  {1024, 256, 1, 1, 6}, {1024, 512, 1, 1, 1},
    {256, 1024, 1, 1, 5},
    /* layer4 */
    {512, 1024, 1, 1, 1}, {512, 512, 3, 3, 3},  {2048, 512, 1, 1, 3}, {2048, 1024, 1, 1, 1},
    {512, 2048, 1, 1, 2},
    /* fc */
    {1000, 2048, 1, 1, 1},
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

struct job {
    struct item *items;
    size_t n_items;
    atomic_size_t next;
    struct sq_params params;
    int floor; /* run the floor instead of libsquant */
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

#ifdef __x86_64__
__attribute__((target("avx512f,avx512bw"))) static void floor_avx512(const float *w, int8_t *q,
                                                                     size_t n)
{
    __m512 k = _mm512_set1_ps(16.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm_storeu_si128((__m128i *)(q + i),
                         _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(w + i), k))));
    for (; i < n; i++)
        q[i] = (int8_t)(w[i] * 16.0f);
}
#endif

static void floor_pass(const float *w, int8_t *q, size_t n)
{
#ifdef __x86_64__
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) {
        floor_avx512(w, q, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        q[i] = (int8_t)(w[i] * 16.0f);
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
    for (;;) {
        size_t i = atomic_fetch_add(&job->next, 1);
        if (i >= job->n_items)
            break;
        struct item *it = &job->items[i];
        struct layer *l = it->l;
        size_t len = sq_layer_channel_size(&l->geom), off = it->c0 * len;
        if (job->floor) {
            floor_pass(l->w + off, l->q + off, (it->c1 - it->c0) * len);
            continue;
        }
        struct sq_error err;
        size_t per = sq_layer_groups(&l->geom, job->group), u0 = it->c0 * per, u1 = it->c1 * per;
        if ((job->group ? sq_quantize_groups(&job->params, &l->geom, job->group, l->w + off, u0, u1,
                                             l->q + off, l->scale + u0, l->zp + u0, scratch,
                                             scratch_size, NULL, &err)
                        : sq_quantize_range(&job->params, &l->geom, l->w + off, it->c0, it->c1,
                                            l->q + off, l->scale + it->c0, l->zp + it->c0, scratch,
                                            scratch_size, NULL, &err)) != SQ_OK) {
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

struct result {
    double floor_ms, rtn_ms, squant_ms; /* medians */
    double sq_rtn, sq_floor;            /* medians of the per-repetition ratios */
};

/*
 * floor, rtn and squant run back to back in every repetition, so that a
 * noisy neighbour slows all three alike; ratios are taken per repetition.
 */
static void measure(struct job *job, int threads, int reps, struct result *res)
{
    double f[101], r[101], q[101], qr[101], qf[101];
    for (int i = -1; i < reps; i++) { /* i = -1: warm-up (page faults, caches) */
        job->floor = 1;
        double tf = run_once(job, threads);
        job->floor = 0;
        job->params.mode = SQ_MODE_RTN;
        double tr = run_once(job, threads);
        job->params.mode = SQ_MODE_SQUANT;
        double tq = run_once(job, threads);
        if (i < 0)
            continue;
        f[i] = tf * 1e3;
        r[i] = tr * 1e3;
        q[i] = tq * 1e3;
        qr[i] = tq / tr;
        qf[i] = tq / tf;
    }
    res->floor_ms = median(f, reps);
    res->rtn_ms = median(r, reps);
    res->squant_ms = median(q, reps);
    res->sq_rtn = median(qr, reps);
    res->sq_floor = median(qf, reps);
}

static void bench_model(const char *name, const struct shape *shapes, size_t n_shapes,
                        const int *threads, int n_threads, enum sq_impl impl, int reps,
                        struct result *res, size_t group, struct result *gres)
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
            double sd = 1.0 / (double)(shape[1] * shape[2] * shape[3]);
            for (size_t i = 0; i < l->n; i += 2) {
                double u1 = uniform01(), u2 = uniform01(), r = __builtin_sqrt(-2.0 * __builtin_log(u1));
                l->w[i] = (float)(r * __builtin_cos(6.283185307179586 * u2) * __builtin_sqrt(sd));
                if (i + 1 < l->n)
                    l->w[i + 1] = (float)(r * __builtin_sin(6.283185307179586 * u2) * __builtin_sqrt(sd));
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
            items[ii++] = (struct item){l, c, c + per < l->geom.channels ? c + per : l->geom.channels};
    }
    printf("%s: %zu layers, %zu weights (%.1f MB float32), %zu work items, impl %s\n", name,
           n_layers, weights, (double)weights * 4 / 1e6, n_items, sq_impl_name(impl));
    printf("  %-8s %10s %10s %10s %12s %10s %10s\n", "threads", "floor_ms", "rtn_ms",
           "squant_ms", "squant_ns/w", "sq/rtn", "sq/floor");
    for (int t = 0; t < n_threads; t++) {
        struct job job = {.items = items, .n_items = n_items};
        sq_params_init(&job.params);
        job.params.impl = impl;
        measure(&job, threads[t], reps, &res[t]);
        printf("  %-8d %10.2f %10.2f %10.2f %12.3f %10.2f %10.2f\n", threads[t], res[t].floor_ms,
               res[t].rtn_ms, res[t].squant_ms, res[t].squant_ms * 1e6 / (double)weights,
               res[t].sq_rtn, res[t].sq_floor);
        if (!group)
            continue;
        job.group = group;
        measure(&job, threads[t], reps, &gres[t]);
        printf("  %-8s %10.2f %10.2f %10.2f %12.3f %10.2f %10.2f   group %zu: sq/rtn per "
               "channel %.2f\n",
               "", gres[t].floor_ms, gres[t].rtn_ms, gres[t].squant_ms,
               gres[t].squant_ms * 1e6 / (double)weights, gres[t].sq_rtn, gres[t].sq_floor, group,
               gres[t].squant_ms / res[t].squant_ms);
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

int main(int argc, char **argv)
{
    const char *model = "all";
    int max_threads = (int)sysconf(_SC_NPROCESSORS_ONLN), reps = 11, only_threads = 0;
    enum sq_impl impl = SQ_IMPL_AUTO;
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
            if (sq_impl_from_name(argv[++i], &impl) != SQ_OK || !sq_impl_available(impl)) {
                fprintf(stderr, "bench_core: implementation %s is not available\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_core [--model resnet18|resnet50|all] [--threads N] "
                            "[--impl I] [--reps R] [--group G]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 101 || max_threads < 1 || only_threads < 0 || only_threads > 256 ||
        group < 0 || group > (1L << 30)) {
        fprintf(stderr, "bench_core: bad --reps, --threads or --group\n");
        return 2;
    }
    if (max_threads > 256)
        max_threads = 256;
    int threads[2] = {1, max_threads}, n_threads = max_threads > 1 ? 2 : 1;
    if (only_threads) {
        threads[0] = only_threads;
        n_threads = 1;
    }
    struct {
        const char *name;
        const struct shape *shapes;
        size_t n;
    } models[] = {{"resnet18", resnet18, sizeof resnet18 / sizeof *resnet18},
                  {"resnet50", resnet50, sizeof resnet50 / sizeof *resnet50}};
    struct result res[2][2], gres[2][2];
    int ran[2] = {0, 0};
    for (int m = 0; m < 2; m++) {
        if (strcmp(model, "all") != 0 && strcmp(model, models[m].name) != 0)
            continue;
        bench_model(models[m].name, models[m].shapes, models[m].n, threads, n_threads, impl, reps,
                    res[m], (size_t)group, gres[m]);
        ran[m] = 1;
    }
    if (!ran[0] && !ran[1]) {
        fprintf(stderr, "bench_core: unknown model %s\n", model);
        return 2;
    }
    for (int m = 0; m < 2; m++)
        for (int t = 0; ran[m] && t < n_threads; t++)
            printf("%s threads=%d floor_ms=%.2f rtn_ms=%.2f squant_ms=%.2f sq_rtn=%.2f "
                   "sq_floor=%.2f\n",
                   models[m].name, threads[t], res[m][t].floor_ms, res[m][t].rtn_ms,
                   res[m][t].squant_ms, res[m][t].sq_rtn, res[m][t].sq_floor);
    for (int m = 0; group && m < 2; m++)
        for (int t = 0; ran[m] && t < n_threads; t++)
            printf("%s threads=%d group=%ld floor_ms=%.2f rtn_ms=%.2f squant_ms=%.2f sq_rtn=%.2f "
                   "sq_floor=%.2f sq_per_channel=%.2f\n",
                   models[m].name, threads[t], group, gres[m][t].floor_ms, gres[m][t].rtn_ms,
                   gres[m][t].squant_ms, gres[m][t].sq_rtn, gres[m][t].sq_floor,
                   gres[m][t].squant_ms / res[m][t].squant_ms);
    return 0;
}

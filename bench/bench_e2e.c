/*
 * bench_e2e: squantd end to end on loopback. Not a test: it prints medians
 * and ratios and never fails a build.
 *
 *  1. Writes a ResNet-50-sized safetensors file (the 53 conv and 1 linear
 *     weight tensors of ResNet-50 with folded-BN biases: 25.5 M float32
 *     weights), and times `squant quantize` on it.
 *  2. Starts squantd, POSTs the same file to /v1/quantize several times and
 *     splits each request's time into upload, queue, parse, quantize and
 *     write (from the Server-Timing header) and the response transfer (what
 *     the client saw beyond that); checks the answer equals the CLI's output;
 *     reads the daemon's peak RSS (VmHWM).
 *  3. Sends many small requests (one 64x64x3x3 layer as .npy) from many
 *     keep-alive clients, with 1 worker thread and with one per core, and
 *     reports requests per second.
 *
 *  0. First, LLM-shaped models (--llm 1,2b,4: 16 layers of 4096x4096 float32
 *     = 1 GB, 64 layers in bfloat16 = 2 GB, 64 in float32 = 4 GB), each
 *     generated alone into the build tree and deleted after: time,
 *     throughput and peak memory (RssAnon, RssFile, VmHWM sampled from
 *     /proc) of the CLI and of the daemon, answers compared with the CLI's.
 *
 * usage: bench_e2e [--squantd PATH] [--squant PATH] [--runs N] [--clients N]
 *                  [--requests N] [--threads-max N] [--llm LIST|none]
 *                  [--llm-runs N] [--only llm] [--keep yes] [--squantd-base PATH]
 * --squantd-base runs every large request also against a second daemon
 * binary (a previous build), interleaved with the first, request by
 * request: before and after in one run, on the same minutes of the machine.
 *
 * Client-side times beside the Server-Timing phases: "after the last byte"
 * is from the end of sending the body to the answer's headers (what the
 * server still had to do once it had the whole body: with the job started
 * while the body arrives, its parse and quantize phases overlap the upload),
 * "response" from the headers to the answer's last byte.
 * Loopback only; every process it starts, it stops.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *squantd_path = "src/daemon/squantd";
static const char *squant_path = "src/cli/squant";
static const char *squantd_base; /* --squantd-base: a second daemon, run interleaved */
static char tmpdir[256];
static bool keep; /* --keep: leave the generated LLM-shaped model (for profiling) and stop */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_e2e: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ------------------------------------------------------------ the model */

struct tensor {
    char name[64];
    int rank;
    long shape[4];
    size_t n;
};

static struct tensor tensors[256];
static int ntensors;

static void add(const char *name, int rank, long a, long b, long c, long d)
{
    struct tensor *t = &tensors[ntensors++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->rank = rank;
    long s[4] = {a, b, c, d};
    t->n = 1;
    for (int i = 0; i < rank; i++) {
        t->shape[i] = s[i];
        t->n *= (size_t)s[i];
    }
}

/* ResNet-50: conv weights [out, in, kh, kw] and their biases (BN folded), fc. */
static void resnet50(void)
{
    char name[64];
    add("conv1.weight", 4, 64, 3, 7, 7);
    add("conv1.bias", 1, 64, 0, 0, 0);
    static const int blocks[4] = {3, 4, 6, 3}, widths[4] = {64, 128, 256, 512};
    long in = 64;
    for (int s = 0; s < 4; s++) {
        long w = widths[s], out = 4 * w;
        for (int b = 0; b < blocks[s]; b++) {
            long cin = b == 0 ? in : out;
            snprintf(name, sizeof(name), "layer%d.%d.conv1.weight", s + 1, b);
            add(name, 4, w, cin, 1, 1);
            snprintf(name, sizeof(name), "layer%d.%d.conv1.bias", s + 1, b);
            add(name, 1, w, 0, 0, 0);
            snprintf(name, sizeof(name), "layer%d.%d.conv2.weight", s + 1, b);
            add(name, 4, w, w, 3, 3);
            snprintf(name, sizeof(name), "layer%d.%d.conv2.bias", s + 1, b);
            add(name, 1, w, 0, 0, 0);
            snprintf(name, sizeof(name), "layer%d.%d.conv3.weight", s + 1, b);
            add(name, 4, out, w, 1, 1);
            snprintf(name, sizeof(name), "layer%d.%d.conv3.bias", s + 1, b);
            add(name, 1, out, 0, 0, 0);
            if (b == 0) {
                snprintf(name, sizeof(name), "layer%d.%d.downsample.weight", s + 1, b);
                add(name, 4, out, cin, 1, 1);
                snprintf(name, sizeof(name), "layer%d.%d.downsample.bias", s + 1, b);
                add(name, 1, out, 0, 0, 0);
            }
        }
        in = out;
    }
    add("fc.weight", 2, 1000, 2048, 0, 0);
    add("fc.bias", 1, 1000, 0, 0, 0);
}

/* Deterministic weights: a sum of uniforms (roughly normal), scaled by 1/sqrt(fan-in). */
static void fill(float *w, const struct tensor *t, uint64_t *state)
{
    size_t fan = t->rank > 1 ? t->n / (size_t)t->shape[0] : 1;
    float scale = (float)(1.0 / sqrt((double)fan));
    for (size_t i = 0; i < t->n; i++) {
        double s = 0;
        for (int k = 0; k < 4; k++) {
            *state = *state * 6364136223846793005ull + 1442695040888963407ull;
            s += (double)(*state >> 40) / (double)(1ull << 24) - 0.5;
        }
        w[i] = (float)(s * 1.7) * scale;
    }
}

/* Write the safetensors file; returns its size and the weight count. */
static size_t write_model(const char *path, size_t *weights)
{
    char *header = malloc(1 << 16);
    size_t off = 0, hl = 0;
    hl += (size_t)sprintf(header + hl, "{");
    *weights = 0;
    for (int i = 0; i < ntensors; i++) {
        const struct tensor *t = &tensors[i];
        hl += (size_t)sprintf(header + hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", i ? "," : "",
                              t->name);
        for (int d = 0; d < t->rank; d++)
            hl += (size_t)sprintf(header + hl, "%s%ld", d ? "," : "", t->shape[d]);
        hl += (size_t)sprintf(header + hl, "],\"data_offsets\":[%zu,%zu]}", off, off + 4 * t->n);
        off += 4 * t->n;
        if (t->rank > 1)
            *weights += t->n;
    }
    hl += (size_t)sprintf(header + hl, "}");
    while (hl % 8)
        header[hl++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path);
    uint64_t len = hl;
    fwrite(&len, 8, 1, f); /* little-endian hosts only, like libsquant */
    fwrite(header, 1, hl, f);
    uint64_t state = 42;
    for (int i = 0; i < ntensors; i++) {
        float *w = malloc(4 * tensors[i].n);
        fill(w, &tensors[i], &state);
        fwrite(w, 4, tensors[i].n, f);
        free(w);
    }
    if (fclose(f) != 0)
        die(path);
    free(header);
    return 8 + hl + off;
}

/* A .npy of one [64, 64, 3, 3] float32 layer. */
static void write_small(const char *path)
{
    struct tensor t = {"w", 4, {64, 64, 3, 3}, 64 * 64 * 9};
    char hdr[128];
    int n = snprintf(hdr, sizeof(hdr),
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (64, 64, 3, 3), }");
    int pad = 64 - (10 + n + 1) % 64;
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path);
    uint16_t hl = (uint16_t)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hl, 2, 1, f);
    fprintf(f, "%s%*s\n", hdr, pad, "");
    float *w = malloc(4 * t.n);
    uint64_t state = 7;
    fill(w, &t, &state);
    fwrite(w, 4, t.n, f);
    free(w);
    fclose(f);
}

/* ------------------------------------------------------------ processes */

static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static pid_t daemon_pid;
static int daemon_port;

static void start_daemon_bin(const char *path, int threads, int idx)
{
    char port_file[300], spool[300], th[16], log[300];
    snprintf(port_file, sizeof(port_file), "%s/port%d", tmpdir, idx);
    snprintf(spool, sizeof(spool), "%s/spool%d", tmpdir, idx);
    snprintf(log, sizeof(log), "%s/daemon%d.log", tmpdir, idx);
    snprintf(th, sizeof(th), "%d", threads);
    unlink(port_file);
    daemon_pid = fork();
    if (daemon_pid < 0)
        die("fork");
    if (daemon_pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(path, path, "--listen", "127.0.0.1:0", "--port-file", port_file, "--spool-dir", spool,
              "--threads", th, "--access-log", "no", "--max-queued-jobs", "4096",
              "--max-connections", "1024", "--max-body-size", "64G", "--max-response-size", "64G",
              "--connection-timeout", "600", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            int ok = fscanf(f, "%d", &daemon_port) == 1;
            fclose(f);
            if (ok)
                return;
        }
        usleep(25000);
    }
    fprintf(stderr, "bench_e2e: squantd did not start (see %s)\n", log);
    kill(daemon_pid, SIGKILL);
    exit(1);
}

static void start_daemon(int threads)
{
    start_daemon_bin(squantd_path, threads, 0);
}

static void stop_daemon(void)
{
    kill(daemon_pid, SIGTERM);
    int st;
    waitpid(daemon_pid, &st, 0);
    daemon_pid = 0;
}

/* ------------------------------------------------------------ HTTP client */

static int connect_daemon(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)daemon_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

struct answer {
    int status;
    bool same;         /* with `expect`: the body equals it */
    double timing[5];  /* upload queue parse quantize write, ms */
    double sent, head; /* when the body was sent and the answer's headers were in (now()) */
    uint8_t *body;     /* when keep_body */
    size_t len;
};

/* POST body to path on fd; read the whole answer. False on a transport error. */
static bool post_cmp(int fd, const char *path, const char *ctype, const void *body, size_t len,
                     bool keep_body, const uint8_t *expect, size_t expect_len, struct answer *a);

static bool post(int fd, const char *path, const char *ctype, const void *body, size_t len,
                 bool keep_body, struct answer *a)
{
    return post_cmp(fd, path, ctype, body, len, keep_body, NULL, 0, a);
}

/* post, and with `expect` compare the body with it as it arrives (nothing kept). */
static bool post_cmp(int fd, const char *path, const char *ctype, const void *body, size_t len,
                     bool keep_body, const uint8_t *expect, size_t expect_len, struct answer *a)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     path, ctype, len);
    if (!send_all(fd, req, (size_t)n) || !send_all(fd, body, len))
        return false;
    double sent = now();
    /* headers */
    static __thread char buf[1 << 16];
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have == sizeof(buf) - 1)
            return false;
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r <= 0)
            return false;
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    memset(a, 0, sizeof(*a));
    a->sent = sent;
    a->head = now();
    sscanf(buf, "HTTP/1.1 %d", &a->status);
    size_t clen = 0;
    for (char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtoull(line + 15, NULL, 10);
        if (strncasecmp(line, "Server-Timing:", 14) == 0)
            sscanf(line + 14,
                   " upload;dur=%lf, queue;dur=%lf, parse;dur=%lf, quantize;dur=%lf, "
                   "write;dur=%lf",
                   &a->timing[0], &a->timing[1], &a->timing[2], &a->timing[3], &a->timing[4]);
    }
    size_t got = have - (size_t)(end + 4 - buf);
    a->same = expect && clen == expect_len;
    if (a->same)
        a->same = got <= clen && memcmp(end + 4, expect, got) == 0;
    if (keep_body) {
        a->body = malloc(clen + 1);
        memcpy(a->body, end + 4, got);
    }
    while (got < clen) {
        char *dst = keep_body ? (char *)a->body + got : buf;
        size_t room = keep_body ? clen - got : sizeof(buf);
        ssize_t r = recv(fd, dst, room < clen - got ? room : clen - got, 0);
        if (r <= 0)
            return false;
        if (a->same)
            a->same = memcmp(dst, expect + got, (size_t)r) == 0;
        got += (size_t)r;
    }
    a->len = clen;
    return true;
}

static void *map_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die(path);
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        die("mmap");
    *len = (size_t)st.st_size;
    return p;
}

/* ------------------------------------------------------------ LLM-shaped models */

/*
 * Memory, as /proc/PID/status says it: RssAnon is the process's anonymous
 * memory (heap, stacks, private copies), which is what bounded memory is
 * about; RssFile counts the pages of mapped files, which belong to the
 * kernel's page cache and can be dropped at any time; VmHWM is the peak of
 * their sum (plus RssShmem). Sampled every 2 ms: a peak shorter than that
 * can be missed.
 */
struct mem {
    long anon, file, hwm; /* KiB */
    double cpu;           /* user + system seconds of the last run (CLI) */
};

static void read_mem(pid_t pid, struct mem *m)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v;
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "RssAnon: %ld kB", &v) == 1)
            m->anon = v > m->anon ? v : m->anon;
        else if (sscanf(line, "RssFile: %ld kB", &v) == 1)
            m->file = v > m->file ? v : m->file;
        else if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
            m->hwm = v > m->hwm ? v : m->hwm;
    }
    if (f)
        fclose(f);
}

/* Run argv to the end, sampling its memory; seconds, or -1 if it failed. */
static double run_sampled(char *const argv[], struct mem *m)
{
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    struct rusage ru;
    for (;;) {
        pid_t w = wait4(pid, &st, WNOHANG, &ru);
        if (w == pid)
            break;
        read_mem(pid, m);
        usleep(2000);
    }
    double dt = now() - t0;
    m->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? dt : -1;
}

struct sampler {
    pid_t pid;
    volatile int stop;
    struct mem m;
    pthread_t thread;
};

static void *sample_loop(void *arg)
{
    struct sampler *s = arg;
    while (!s->stop) {
        read_mem(s->pid, &s->m);
        usleep(2000);
    }
    return NULL;
}

static uint16_t to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16); /* round to nearest even */
}

/*
 * An LLM-shaped safetensors file: `layers` blocks of a [4096] norm weight
 * (passed through) and a 4096x4096 linear weight, float32 or bfloat16.
 * Weights: a cheap triangular distribution scaled by 1/sqrt(4096).
 */
static size_t write_llm(const char *path, int layers, bool bf16, size_t *weights)
{
    const long d = 4096;
    size_t es = bf16 ? 2 : 4, off = 0, hl = 0;
    char *header = malloc((size_t)layers * 256 + 64);
    hl += (size_t)sprintf(header + hl, "{");
    for (int i = 0; i < layers; i++) {
        size_t n1 = (size_t)d * es, n2 = (size_t)d * (size_t)d * es;
        hl +=
            (size_t)sprintf(header + hl,
                            "%s\"model.layers.%d.norm.weight\":{\"dtype\":\"%s\",\"shape\":[%ld],"
                            "\"data_offsets\":[%zu,%zu]},"
                            "\"model.layers.%d.mlp.weight\":{\"dtype\":\"%s\",\"shape\":[%ld,%ld],"
                            "\"data_offsets\":[%zu,%zu]}",
                            i ? "," : "", i, bf16 ? "BF16" : "F32", d, off, off + n1, i,
                            bf16 ? "BF16" : "F32", d, d, off + n1, off + n1 + n2);
        off += n1 + n2;
    }
    hl += (size_t)sprintf(header + hl, "}");
    while (hl % 8)
        header[hl++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path);
    uint64_t len = hl, state = 1234;
    fwrite(&len, 8, 1, f);
    fwrite(header, 1, hl, f);
    size_t n = (size_t)d * (size_t)d;
    float *w = malloc(n * 4);
    uint16_t *h = malloc(n * 2);
    for (int i = 0; i < layers; i++) {
        for (int part = 0; part < 2; part++) {
            size_t cnt = part ? n : (size_t)d;
            for (size_t k = 0; k < cnt; k++) {
                state = state * 6364136223846793005ull + 1442695040888963407ull;
                float u = (float)(state >> 40) * (1.0f / 16777216.0f);
                float v = (float)((state >> 16) & 0xffffff) * (1.0f / 16777216.0f);
                w[k] = part ? (u + v - 1.0f) * (2.0f / 64.0f) : 1.0f + 0.1f * (u - 0.5f);
            }
            if (bf16) {
                for (size_t k = 0; k < cnt; k++)
                    h[k] = to_bf16(w[k]);
                fwrite(h, 2, cnt, f);
            } else {
                fwrite(w, 4, cnt, f);
            }
        }
    }
    free(w);
    free(h);
    /* On disk before it is read: the runs must not pay for writing back the generator's pages. */
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0)
        die(path);
    free(header);
    *weights = (size_t)layers * n;
    return 8 + hl + off;
}

/* One daemon binary's side of the large-request runs (the build's, and --squantd-base's). */
struct side {
    const char *label, *path;
    pid_t pid;
    int port;
    struct sampler s;
    double *total, *ph[5], *wait, *resp;
    bool identical;
};

static void side_start(struct side *d, const char *label, const char *path, int threads, int idx,
                       int runs)
{
    memset(d, 0, sizeof(*d));
    d->label = label;
    d->path = path;
    d->identical = true;
    d->total = calloc((size_t)runs, sizeof(double));
    d->wait = calloc((size_t)runs, sizeof(double));
    d->resp = calloc((size_t)runs, sizeof(double));
    for (int k = 0; k < 5; k++)
        d->ph[k] = calloc((size_t)runs, sizeof(double));
    start_daemon_bin(path, threads, idx);
    d->pid = daemon_pid;
    d->port = daemon_port;
    d->s.pid = d->pid;
    pthread_create(&d->s.thread, NULL, sample_loop, &d->s);
}

/* Run r: POST the model, compare the answer with the CLI's as it arrives. */
static void side_post(struct side *d, int r, const void *body, size_t len, const uint8_t *expect,
                      size_t expect_len)
{
    daemon_port = d->port;
    int fd = connect_daemon();
    struct answer a;
    double t0 = now();
    bool ok = post_cmp(fd, "/v1/quantize", "application/vnd.safetensors", body, len, false, expect,
                       expect_len, &a);
    double t1 = now();
    close(fd);
    if (!ok || a.status != 200) {
        fprintf(stderr, "bench_e2e: large POST to %s failed (status %d)\n", d->path, a.status);
        exit(1);
    }
    d->total[r] = t1 - t0;
    d->identical &= a.same;
    for (int k = 0; k < 5; k++)
        d->ph[k][r] = a.timing[k] / 1e3;
    d->wait[r] = a.head - a.sent;
    d->resp[r] = t1 - a.head;
}

static void side_stop(struct side *d)
{
    d->s.stop = 1;
    pthread_join(d->s.thread, NULL);
    read_mem(d->pid, &d->s.m);
    daemon_pid = d->pid;
    stop_daemon();
}

static void side_print(struct side *d, int runs, double cli_med, bool mem)
{
    double med = median(d->total, runs);
    printf("  %-7s median %.3f s over %d runs = %.2fx the CLI; answer %s the CLI's", d->label, med,
           runs, med / cli_med, d->identical ? "byte-identical to" : "DIFFERENT from");
    if (mem)
        printf("; peak RssAnon %.1f MB, peak RssFile %.1f MB, VmHWM %.1f MB",
               (double)d->s.m.anon / 1024, (double)d->s.m.file / 1024, (double)d->s.m.hwm / 1024);
    printf("\n          ");
    static const char *names[5] = {"upload", "queue", "parse", "quantize", "write"};
    for (int k = 0; k < 5; k++)
        printf(" %s %.1f ms,", names[k], median(d->ph[k], runs) * 1e3);
    printf(" | after the last byte %.1f ms, response %.1f ms\n", median(d->wait, runs) * 1e3,
           median(d->resp, runs) * 1e3);
    free(d->total);
    free(d->wait);
    free(d->resp);
    for (int k = 0; k < 5; k++)
        free(d->ph[k]);
}

/* The large requests against this build's daemon and, interleaved, the base one. */
static void sides_run(int runs, int threads, const void *body, size_t len, const uint8_t *expect,
                      size_t expect_len, double cli_med, bool mem)
{
    struct side d[2];
    int n = squantd_base ? 2 : 1;
    side_start(&d[0], "daemon:", squantd_path, threads, 0, runs);
    if (n > 1)
        side_start(&d[1], "base:", squantd_base, threads, 1, runs);
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < n; i++)
            side_post(&d[(r + i) % n], r, body, len, expect,
                      expect_len); /* alternate who is first */
    for (int i = 0; i < n; i++)
        side_stop(&d[i]);
    double ratio = n > 1 ? median(d[0].total, runs) / median(d[1].total, runs) : 0;
    for (int i = 0; i < n; i++)
        side_print(&d[i], runs, cli_med, mem);
    if (n > 1)
        printf("  daemon / base: %.2fx\n", ratio);
}

/* One LLM-shaped model through the CLI and the daemon. */
static void llm_case(int layers, bool bf16, int runs, int threads)
{
    char model[300], out[300];
    snprintf(model, sizeof(model), "%s/llm.safetensors", tmpdir);
    snprintf(out, sizeof(out), "%s/llm-cli.safetensors", tmpdir);
    double bytes = (double)layers * (4096.0 * 4096 + 4096) * (bf16 ? 2 : 4);
    struct statvfs vfs;
    if (statvfs(tmpdir, &vfs) == 0 &&
        (double)vfs.f_bavail * (double)vfs.f_frsize < 2.6 * bytes + (1u << 30)) {
        printf("llm %d x 4096x4096 %s: skipped, %.1f GB free on %s is not enough\n", layers,
               bf16 ? "bf16" : "f32", (double)vfs.f_bavail * (double)vfs.f_frsize / 1e9, tmpdir);
        return;
    }
    size_t weights, mbytes = write_llm(model, layers, bf16, &weights);
    printf("model: %d x [4096] + %d x 4096x4096 %s, %.2f G weights, %.2f GB\n", layers, layers,
           bf16 ? "bfloat16" : "float32", (double)weights / 1e9, (double)mbytes / 1e9);
    double *cli = calloc((size_t)runs, sizeof(double)), *cpu = calloc((size_t)runs, sizeof(double));
    struct mem cm = {0, 0, 0, 0};
    for (int r = 0; r < runs; r++) {
        char *args[] = {(char *)squant_path, "quantize", "-q", model, "-o", out, NULL};
        cpu[r] = (cli[r] = run_sampled(args, &cm)) < 0 ? 0 : cm.cpu;
        if (cli[r] < 0) {
            fprintf(stderr, "bench_e2e: %s failed on the LLM model\n", squant_path);
            exit(1);
        }
    }
    double cli_med = median(cli, runs);
    printf("  CLI:    median %.3f s over %d runs = %.2f GB/s of input (CPU user+sys %.3f s); peak "
           "RssAnon %.1f MB, peak RssFile %.1f MB, VmHWM %.1f MB\n",
           cli_med, runs, (double)mbytes / cli_med / 1e9, median(cpu, runs), (double)cm.anon / 1024,
           (double)cm.file / 1024, (double)cm.hwm / 1024);
    size_t mlen, clen;
    void *mbody = map_file(model, &mlen);
    void *cli_out = map_file(out, &clen);
    sides_run(runs, threads, mbody, mlen, cli_out, clen, cli_med, true);
    munmap(mbody, mlen);
    munmap(cli_out, clen);
    unlink(out);
    if (keep) {
        printf("kept %s\n", model);
        exit(0);
    }
    unlink(model);
    free(cli);
    free(cpu);
}

/* ------------------------------------------------------------ small-request load */

struct load {
    const void *body;
    size_t len;
    int requests;
    int ok;
};

static void *client(void *arg)
{
    struct load *l = arg;
    int fd = connect_daemon();
    for (int i = 0; i < l->requests; i++) {
        struct answer a;
        if (!post(fd, "/v1/quantize?bits=4", "application/x-npy", l->body, l->len, false, &a)) {
            close(fd);
            fd = connect_daemon();
            continue;
        }
        l->ok += a.status == 200;
    }
    close(fd);
    return NULL;
}

static double small_load(const void *body, size_t len, int clients, int requests, int *ok)
{
    pthread_t *t = calloc((size_t)clients, sizeof(*t));
    struct load *l = calloc((size_t)clients, sizeof(*l));
    double t0 = now();
    for (int i = 0; i < clients; i++) {
        l[i] = (struct load){body, len, requests, 0};
        pthread_create(&t[i], NULL, client, &l[i]);
    }
    *ok = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        *ok += l[i].ok;
    }
    double dt = now() - t0;
    free(t);
    free(l);
    return dt;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    int runs = 5, clients = 64, requests = 40, threads_max = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int llm_runs = 3;
    const char *llm = "1,2b,4"; /* GB of the LLM-shaped models; "b": bfloat16 */
    bool llm_only = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--squantd"))
            squantd_path = argv[i + 1];
        else if (!strcmp(argv[i], "--squantd-base"))
            squantd_base = argv[i + 1];
        else if (!strcmp(argv[i], "--squant"))
            squant_path = argv[i + 1];
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients"))
            clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--requests"))
            requests = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads-max"))
            threads_max = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--llm"))
            llm = argv[i + 1];
        else if (!strcmp(argv[i], "--llm-runs"))
            llm_runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--keep"))
            keep = !strcmp(argv[i + 1], "yes");
        else if (!strcmp(argv[i], "--only"))
            llm_only = !strcmp(argv[i + 1], "llm");
    }
    if (runs < 1 || runs > 50 || clients < 1 || clients > 512 || requests < 1 || threads_max < 1 ||
        llm_runs < 1 || llm_runs > 50) {
        fprintf(stderr, "bench_e2e: bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* In the build tree (the current directory) unless TMPDIR says otherwise: the LLM-shaped
     * models are gigabytes, written one at a time and deleted after use. */
    snprintf(tmpdir, sizeof(tmpdir), "%s/squantd-bench.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : ".");
    if (!mkdtemp(tmpdir))
        die("mkdtemp");
    char model[300], small[300], out[300];
    snprintf(model, sizeof(model), "%s/resnet50.safetensors", tmpdir);
    snprintf(small, sizeof(small), "%s/layer.npy", tmpdir);
    snprintf(out, sizeof(out), "%s/cli.safetensors", tmpdir);

    /* 0. LLM-shaped models: 16 (1 GB float32), 64 (2 GB bfloat16, 4 GB float32) 4096x4096
     * layers, each alone on disk */
    for (const char *p = llm; strcmp(llm, "none") != 0 && *p;) {
        char *end;
        long gb = strtol(p, &end, 10);
        bool bf16 = *end == 'b';
        end += bf16;
        if (gb < 1 || gb > 64 || (*end && *end != ',')) {
            fprintf(stderr, "bench_e2e: --llm takes a list like 1,2b,4\n");
            return 2;
        }
        int layers = (int)(gb * 16 * (bf16 ? 2 : 1));
        llm_case(layers, bf16, gb > 1 ? (llm_runs < 2 ? llm_runs : 2) : llm_runs, threads_max);
        fflush(stdout);
        p = *end ? end + 1 : end;
    }
    if (llm_only) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : 1;
    }

    resnet50();
    size_t weights, model_bytes = write_model(model, &weights);
    write_small(small);
    printf("model: ResNet-50 shapes, %d tensors, %.2f M weights, %.1f MB\n", ntensors,
           (double)weights / 1e6, (double)model_bytes / 1e6);

    /* 1. the CLI */
    double *cli = calloc((size_t)runs, sizeof(double));
    for (int r = 0; r < runs; r++) {
        char *args[] = {(char *)squant_path, "quantize", "-q", model, "-o", out, NULL};
        double t0 = now();
        if (run(args) != 0) {
            fprintf(stderr, "bench_e2e: %s failed\n", squant_path);
            return 1;
        }
        cli[r] = now() - t0;
    }
    double cli_med = median(cli, runs);
    printf("squant quantize (CLI, whole process): median %.3f s over %d runs\n", cli_med, runs);

    /* 2. the same file over HTTP */
    size_t mlen, clen;
    void *mbody = map_file(model, &mlen);
    void *cli_out = map_file(out, &clen);
    printf("POST /v1/quantize (%d threads), %d runs:\n", threads_max, runs);
    sides_run(runs, threads_max, mbody, mlen, cli_out, clen, cli_med, true);

    /* 3. small requests, many clients */
    size_t slen;
    void *sbody = map_file(small, &slen);
    double rps[2] = {0, 0};
    int tcount[2] = {1, threads_max};
    for (int i = 0; i < (threads_max > 1 ? 2 : 1); i++) {
        start_daemon(tcount[i]);
        int ok;
        small_load(sbody, slen, clients, requests / 4 > 0 ? requests / 4 : 1, &ok); /* warm-up */
        double dt = small_load(sbody, slen, clients, requests, &ok);
        stop_daemon();
        rps[i] = ok / dt;
        printf("small layer 64x64x3x3 (%zu bytes), %d clients x %d requests, %d thread%s: "
               "%.0f req/s (%d/%d ok)\n",
               slen, clients, requests, tcount[i], tcount[i] > 1 ? "s" : "", rps[i], ok,
               clients * requests);
    }
    if (threads_max > 1)
        printf("scaling 1 -> %d threads: %.2fx\n", threads_max, rps[1] / rps[0]);

    munmap(mbody, mlen);
    munmap(cli_out, clen);
    munmap(sbody, slen);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_e2e: could not remove %s\n", tmpdir);
    return 0;
}

/*
 * Fuzz harness for the real request path: the whole daemon (sqd_main)
 * runs in a thread of this process on 127.0.0.1 with an ephemeral port,
 * and every input is sent as the bytes of one connection (uploads,
 * multipart, chunked bodies, garbage), which is then half-closed; the
 * answer is read until the daemon closes. Properties: the daemon survives
 * (a sanitizer report or a crash ends the run); after every input it still
 * answers GET /healthz with 200; and every few thousand inputs, with no
 * request in flight, its HTTP thread is idle (a connection that made
 * libmicrohttpd's thread spin once went unnoticed for a whole campaign).
 * At exit the daemon is stopped with SIGTERM and its spool removed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <dirent.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "fuzz.h"

static char dir[256], port_file[300], spool[300];
static pthread_t daemon_thread;
static int port;

static void *run_daemon(void *arg)
{
    (void)arg;
    char *argv[] = {"squantd",     "--listen",
                    "127.0.0.1:0", "--port-file",
                    port_file,     "--spool-dir",
                    spool,         "--access-log",
                    "no",          "--threads",
                    "1",           "--max-body-size",
                    "1M",          "--header-timeout",
                    "2",           "--drain-timeout",
                    "1",           "--max-connections",
                    "1024",        "--max-connections-per-ip",
                    "0",           "--memory-body-limit",
                    "0",           NULL};
    sqd_main((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv);
    return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void stop_daemon(void)
{
    kill(getpid(), SIGTERM);
    pthread_join(daemon_thread, NULL);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int connect_daemon(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a)), e = errno;
    if (rc != 0 && e == EINTR) {
        /*
         * libFuzzer's SIGALRM (its -timeout watchdog, without SA_RESTART)
         * can interrupt a connect that waits for the handshake; the
         * connection goes on, and its result is the socket's error.
         */
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        socklen_t len = sizeof(e);
        while ((rc = poll(&pfd, 1, 10000)) < 0 && errno == EINTR) {
        }
        rc = rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e == 0 ? 0 : -1;
    }
    if (rc != 0)
        fprintf(stderr, "connect to the daemon: %s\n", strerror(e));
    FUZZ_CHECK(rc == 0);
    return fd;
}

/* Send, half-close, read until the daemon closes (bounded); returns the bytes read. */
static size_t exchange(const void *data, size_t n, char *out, size_t outsize, int patience)
{
    int fd = connect_daemon();
    const char *p = data;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the daemon answered early and closed */
        p += w;
        n -= (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    /*
     * libmicrohttpd does not close a half-closed connection whose request is
     * incomplete (the header-timeout sweep does, later): stop listening after
     * a short silence rather than wait for it.
     */
    size_t got = 0;
    for (int quiet = 0; quiet < patience;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 10) <= 0) {
            quiet++;
            continue;
        }
        quiet = 0;
        char buf[4096];
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0)
            break;
        size_t k = (size_t)r < outsize - 1 - got ? (size_t)r : outsize - 1 - got;
        memcpy(out + got, buf, k);
        got += k;
    }
    out[got] = '\0';
    close(fd);
    return got;
}

static void start_once(void)
{
    if (port)
        return;
    snprintf(dir, sizeof(dir), "%s/squantd-fuzz-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    FUZZ_CHECK(mkdtemp(dir));
    snprintf(port_file, sizeof(port_file), "%s/port", dir);
    snprintf(spool, sizeof(spool), "%s/spool", dir);
    signal(SIGPIPE, SIG_IGN);
    /* The daemon's loop takes SIGTERM through libuv; other threads leave it alone. */
    FUZZ_CHECK(pthread_create(&daemon_thread, NULL, run_daemon, NULL) == 0);
    for (int i = 0; i < 500 && !port; i++) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (!port)
            usleep(10000);
    }
    FUZZ_CHECK(port > 0);
    atexit(stop_daemon);
}

/* CPU time (utime + stime, in clock ticks) of this process's thread named `name`, or -1. */
static long thread_ticks(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    long ticks = -1;
    for (struct dirent *e; d && ticks < 0 && (e = readdir(d));) {
        char path[300], comm[64] = "", stat[1024];
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(comm, sizeof(comm), f))
            comm[0] = '\0';
        fclose(f);
        comm[strcspn(comm, "\n")] = '\0';
        if (strcmp(comm, name) != 0)
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        f = fopen(path, "r");
        size_t n = f ? fread(stat, 1, sizeof(stat) - 1, f) : 0;
        if (f)
            fclose(f);
        stat[n] = '\0';
        /* fields 14 and 15 (utime, stime), counted after the ")" that ends the name */
        const char *p = strrchr(stat, ')');
        long ut, st;
        if (p &&
            sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st) == 2)
            ticks = ut + st;
    }
    if (d)
        closedir(d);
    return ticks;
}

/* With nothing in flight for a moment, libmicrohttpd's thread uses (almost) no CPU. */
static void check_http_thread_idle(void)
{
    usleep(100000);
    long t0 = thread_ticks("MHD-single");
    usleep(500000);
    long t1 = thread_ticks("MHD-single");
    if (t0 < 0 || t1 < 0)
        return; /* another threading mode or no /proc: nothing to check */
    long hz = sysconf(_SC_CLK_TCK);
    if ((t1 - t0) * 4 > hz) /* over 1/4 s of CPU in 1/2 s */
        fprintf(stderr, "the HTTP thread used %ld of %ld ticks while idle\n", t1 - t0, hz / 2);
    FUZZ_CHECK((t1 - t0) * 4 <= hz);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    start_once();
    static char answer[65536];
    exchange(data, size, answer, sizeof(answer), 3);
    /* Whatever came before, a health check is answered. */
    static const char health[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    /* Up to 5 s of silence: the daemon's HTTP thread may wait behind a write to the spool. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t n = exchange(health, sizeof(health) - 1, answer, sizeof(answer), 500);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (n <= 12 || strncmp(answer, "HTTP/1.1 200", 12) != 0)
        fprintf(stderr, "GET /healthz after %.0f ms: %zu bytes \"%.40s\"\n", ms, n, answer);
    FUZZ_CHECK(n > 12 && strncmp(answer, "HTTP/1.1 200", 12) == 0);
    static unsigned inputs;
    if (++inputs % 4096 == 0)
        check_http_thread_idle();
    return 0;
}

/*
 * Fault injection for the disk-full tests, loaded with LD_PRELOAD: write(2)
 * on a file whose path contains $SQ_ENOSPC_PATH fails with ENOSPC, as on a
 * full disk. Everything else is passed to the real write.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ssize_t write(int fd, const void *buf, size_t n)
{
    ssize_t (*real)(int, const void *, size_t) =
        (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    const char *pat = getenv("SQ_ENOSPC_PATH");
    if (pat && *pat && fd > 2) {
        char link[64], path[4096];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t k = readlink(link, path, sizeof(path) - 1);
        if (k > 0) {
            path[k] = '\0';
            if (strstr(path, pat)) {
                errno = ENOSPC;
                return -1;
            }
        }
    }
    return real(fd, buf, n);
}

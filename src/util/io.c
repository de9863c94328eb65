/*
 * File helpers shared by the CLI and the daemon: a write that finishes or
 * fails, and dropping the pages of a read-only mapping that is done with.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "util.h"

bool sqi_write_full(int fd, const void *data, size_t len, int64_t off)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return false;
        }
        p += w;
        len -= (size_t)w;
        if (off >= 0)
            off += w;
    }
    return true;
}

void sqi_drop_pages(const void *map, size_t map_len, const void *p, size_t len)
{
    const uint8_t *m = map, *b = p;
    if (!m || b < m || b >= m + map_len)
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)b + page - 1) & ~(page - 1), hi = ((uintptr_t)b + len) & ~(page - 1);
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

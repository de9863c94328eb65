/*
 * Replays a fuzz corpus through a harness's LLVMFuzzerTestOneInput, so
 * that `make check` runs the corpus as an ordinary test when libFuzzer is
 * not there (as Knot DNS does in tests-fuzz/). Each input is copied into a
 * buffer of exactly its size, so that a sanitizer build sees any read past
 * the end.
 *
 * Usage: replay_X [FILE|DIR]...   Without arguments it replays
 * $top_srcdir/tests/fuzz/corpus/FUZZ_CORPUS (top_srcdir from the test
 * environment, "." when unset).
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_CORPUS
#error "define FUZZ_CORPUS, the corpus directory under tests/fuzz/corpus"
#endif

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *p = realloc(buf, cap *= 2);
            if (!p)
                free(buf);
            buf = p;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        fprintf(stderr, "%s: cannot read\n", path);
        return -1;
    }
    uint8_t *exact = malloc(len ? len : 1); /* exactly len bytes: overreads are caught */
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file of `dir` in name order; returns the count, -1 on error. */
static long replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.')
            continue;
        if (count == cap) {
            char **p = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
            if (!p)
                break;
            names = p;
        }
        size_t n = strlen(dir) + strlen(ent->d_name) + 2;
        if (!(names[count] = malloc(n)))
            break;
        snprintf(names[count], n, "%s/%s", dir, ent->d_name);
        count++;
    }
    closedir(d);
    qsort(names, count, sizeof *names, compare);
    long done = 0;
    for (size_t i = 0; i < count; i++) {
        struct stat sb;
        if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (replay_file(names[i]) != 0)
                done = -1;
            else if (done >= 0)
                done++;
        }
        free(names[i]);
    }
    free(names);
    return done;
}

int main(int argc, char **argv)
{
    char path[4096];
    long total = 0;
    if (argc < 2) {
        const char *top = getenv("top_srcdir");
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", top ? top : ".", FUZZ_CORPUS);
        long n = replay_dir(path);
        if (n <= 0) {
            fprintf(stderr, "no corpus replayed from %s\n", path);
            return EXIT_FAILURE;
        }
        printf("replayed %ld inputs from %s\n", n, path);
        return EXIT_SUCCESS;
    }
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        long n = stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode) ? replay_dir(argv[i])
                                                                : (replay_file(argv[i]) ? -1 : 1);
        if (n < 0)
            return EXIT_FAILURE;
        total += n;
    }
    printf("replayed %ld inputs\n", total);
    return EXIT_SUCCESS;
}

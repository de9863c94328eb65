/*
 * The spool: async jobs on disk, so that none is lost to a crash or a
 * restart. Layout under spool-dir:
 *
 *   lock                   flock()ed by the daemon that uses the directory (its pid)
 *   tmp/                   unlinked upload files of large sync requests
 *   jobs/<id>/input.part   an upload in progress (removed at start-up)
 *   jobs/<id>/input        the model bytes, fsynced before 202 is sent
 *   jobs/<id>/request.json how to read them and the options (struct sqd_spec)
 *   jobs/<id>/state.json   the job record (struct sqd_jobrec), replaced atomically
 *   jobs/<id>/result       the result, written as result.tmp, fsynced, renamed
 *   jobs/<id>/report.json  the per-layer report of a done job, written before the result
 *
 * Every file is written to a temporary name, fsynced and renamed, and the
 * directory fsynced, so a crash leaves either the old or the new version.
 * At start-up queued and running jobs are returned to be queued again
 * (their work is redone from the input); finished ones are remembered
 * until result-ttl. The spool starts no job itself: daemon.c does.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "body.h"
#include "ctx.h"
#include "log.h"
#include "registry.h"
#include "spec.h"
#include "spool.h"
#include "util.h"

static enum sq_status fail(struct sq_error *err, enum sq_status st, const char *what,
                           const char *path)
{
    /* Clients read these messages: the file's name, never the machine's path. */
    int e = errno;
    if (e == ENOSPC || e == EDQUOT)
        st = SQ_ERR_NOSPACE;
    if (err) {
        const char *base = strrchr(path, '/');
        err->status = st;
        snprintf(err->message, sizeof(err->message), "spool: cannot %s %.100s: %s", what,
                 base ? base + 1 : path, st == SQ_ERR_NOSPACE ? "the disk is full" : strerror(e));
    }
    return st;
}

static char *path_join(const char *a, const char *b)
{
    char *p;
    return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

static bool fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

static bool mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof(buf))
        return false;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST)
                return false;
            buf[i] = c;
        }
    }
    return true;
}

/* Write `len` bytes to dir/name atomically: name.tmp, fsync, rename, fsync dir. */
static enum sq_status write_atomic(const char *dir, const char *name, const void *data, size_t len,
                                   struct sq_error *err)
{
    char tmp[4200], final[4200];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= sizeof(tmp) ||
        (size_t)snprintf(final, sizeof(final), "%s/%s", dir, name) >= sizeof(final)) {
        errno = ENAMETOOLONG;
        return fail(err, SQ_ERR_IO, "name", dir);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return fail(err, SQ_ERR_IO, "create", tmp);
    if (!sqi_write_full(fd, data, len, -1)) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return fail(err, SQ_ERR_IO, "write", tmp);
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return fail(err, SQ_ERR_IO, "fsync", tmp);
    }
    close(fd);
    if (rename(tmp, final) != 0)
        return fail(err, SQ_ERR_IO, "rename", tmp);
    if (!fsync_dir(dir))
        return fail(err, SQ_ERR_IO, "fsync", dir);
    return SQ_OK;
}

static enum sq_status write_json(const char *dir, const char *name, json_t *doc,
                                 struct sq_error *err)
{
    char *text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(9)) : NULL;
    if (!text) {
        if (err) {
            err->status = SQ_ERR_NOMEM;
            snprintf(err->message, sizeof(err->message), "spool: out of memory");
        }
        return SQ_ERR_NOMEM;
    }
    enum sq_status st = write_atomic(dir, name, text, strlen(text), err);
    free(text);
    return st;
}

/* The record as state.json holds it: the API's document and the owner id. */
static json_t *state_json(const struct sqd_jobrec *rec)
{
    json_t *doc = sqd_jobrec_json(rec);
    if (doc && rec->owner[0] && json_object_set_new(doc, "owner", json_string(rec->owner)) != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* ------------------------------------------------------------ files */

char *sqd_spool_job_dir(struct sqd_ctx *ctx, const char *id)
{
    return path_join(ctx->jobs_dir, id);
}

int sqd_spool_create(struct sqd_ctx *ctx, const char *id, char **dir, struct sq_error *err)
{
    char *d = sqd_spool_job_dir(ctx, id);
    char *in = d ? path_join(d, "input.part") : NULL;
    int fd = -1;
    if (!in) {
        err->status = SQ_ERR_NOMEM;
        snprintf(err->message, sizeof(err->message), "out of memory");
    } else if (mkdir(d, 0750) != 0) {
        fail(err, SQ_ERR_IO, "create", d);
    } else if ((fd = open(in, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
        fail(err, SQ_ERR_IO, "create", in);
        rmdir(d);
    }
    free(in);
    if (fd < 0) {
        free(d);
        return -1;
    }
    *dir = d;
    return fd;
}

enum sq_status sqd_spool_commit(struct sqd_ctx *ctx, const char *dir, struct sqd_body *body,
                                const struct sqd_spec *spec, const struct sqd_jobrec *rec,
                                struct sq_error *err)
{
    enum sq_status st = sqd_body_sync(body, err);
    if (st != SQ_OK)
        return st;
    json_t *req = sqd_spec_to_json(spec);
    st = write_json(dir, "request.json", req, err);
    json_decref(req);
    if (st != SQ_OK)
        return st;
    uv_mutex_lock(&ctx->reg.lock);
    json_t *state = state_json(rec);
    uv_mutex_unlock(&ctx->reg.lock);
    st = write_json(dir, "state.json", state, err);
    json_decref(state);
    if (st != SQ_OK)
        return st;
    char *part = path_join(dir, "input.part"), *in = path_join(dir, "input");
    if (!part || !in || rename(part, in) != 0)
        st = fail(err, SQ_ERR_IO, "rename", dir);
    free(part);
    free(in);
    if (st == SQ_OK && (!fsync_dir(dir) || !fsync_dir(ctx->jobs_dir)))
        st = fail(err, SQ_ERR_IO, "fsync", dir);
    return st;
}

enum sq_status sqd_spool_write_state(const char *dir, const struct sqd_jobrec *rec,
                                     struct sq_error *err)
{
    json_t *doc = state_json(rec);
    enum sq_status st = write_json(dir, "state.json", doc, err);
    json_decref(doc);
    return st;
}

enum sq_status sqd_spool_write_result(const char *dir, const uint8_t *data, size_t len,
                                      struct sq_error *err)
{
    return write_atomic(dir, "result", data, len, err);
}

enum sq_status sqd_spool_write_report(const char *dir, const char *text, struct sq_error *err)
{
    /* With a final newline, as every JSON answer ends (and `squant report --json` prints). */
    size_t n = strlen(text);
    char *line = malloc(n + 2);
    if (!line) {
        errno = ENOMEM;
        return fail(err, SQ_ERR_NOMEM, "write", "report.json");
    }
    memcpy(line, text, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    enum sq_status st = write_atomic(dir, "report.json", line, n + 1, err);
    free(line);
    return st;
}

void sqd_spool_drop_input(const char *dir)
{
    char *in = path_join(dir, "input");
    if (in)
        unlink(in);
    free(in);
}

/* Remove every file of a directory whose name does not start with '.'. */
static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

void sqd_spool_remove(const char *dir)
{
    empty_dir(dir);
    rmdir(dir);
}

static json_t *load_json(const char *dir, const char *name)
{
    char *p = path_join(dir, name);
    json_t *j = p ? json_load_file(p, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(p);
    return j;
}

static bool has_input(const char *dir)
{
    char *in = path_join(dir, "input");
    bool ok = in && access(in, R_OK) == 0;
    free(in);
    return ok;
}

/* Read what a spooled job needs to run again (start-up): its request and its input. */
static bool load_job(struct sqd_ctx *ctx, struct sqd_jobrec *rec, const char *dir,
                     struct sqd_spooled *out)
{
    json_t *request = load_json(dir, "request.json");
    char *in = path_join(dir, "input");
    struct sq_error err;
    sq_error_init(&err);
    sqd_spec_init(&out->spec);
    sqd_body_init(&out->body, 0, 0, NULL);
    out->rec = rec;
    out->dir = NULL;
    bool ok = request && in && sqd_spec_from_json(&out->spec, request, &err) == SQ_OK &&
              sqd_body_open(&out->body, in, &err) == SQ_OK && (out->dir = strdup(dir)) != NULL;
    json_decref(request);
    free(in);
    if (!ok) {
        sqd_log(ctx, "spool: job %s cannot be resumed (%s); removed", rec->id,
                err.message[0] ? err.message : "request.json or input missing");
        sqd_spec_free(&out->spec);
        sqd_body_free(&out->body);
        return false;
    }
    rec->state = SQD_QUEUED;
    rec->layers_done = rec->items_done = 0;
    return true;
}

void sqd_spooled_free(struct sqd_spooled *found, size_t n)
{
    for (size_t i = 0; found && i < n; i++) {
        sqd_spec_free(&found[i].spec);
        sqd_body_free(&found[i].body);
        free(found[i].dir);
    }
    free(found);
}

/*
 * One daemon per spool: two would resume the same queued jobs. The lock is
 * flock() on spool-dir/lock, held until the process ends (the kernel drops
 * it on any exit, kill -9 included); the file holds the holder's pid.
 */
static bool lock_spool(struct sqd_ctx *ctx, char *msg, size_t msgsize)
{
    char *path = path_join(ctx->cfg.spool_dir, "lock");
    int fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640) : -1;
    if (fd < 0) {
        snprintf(msg, msgsize, "spool-dir %s: cannot open its lock file: %s", ctx->cfg.spool_dir,
                 strerror(errno));
        free(path);
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[24] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? strspn(pid, "0123456789") : 0] = '\0';
        if (e == EWOULDBLOCK)
            snprintf(msg, msgsize,
                     "spool-dir %s is in use by another squantd (pid %s holds %s); give each "
                     "instance its own spool-dir",
                     ctx->cfg.spool_dir, pid[0] ? pid : "unknown", path);
        else
            snprintf(msg, msgsize, "spool-dir %s: cannot lock %s: %s", ctx->cfg.spool_dir, path,
                     strerror(e));
        close(fd);
        free(path);
        return false;
    }
    free(path);
    char pid[24];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        sqd_log(ctx, "spool: cannot write the pid to the lock file: %s", strerror(errno));
    ctx->spool_lock = fd;
    return true;
}

bool sqd_spool_open(struct sqd_ctx *ctx, struct sqd_spooled **found, size_t *nfound, char *msg,
                    size_t msgsize)
{
    *found = NULL;
    *nfound = 0;
    ctx->tmp_dir = path_join(ctx->cfg.spool_dir, "tmp");
    ctx->jobs_dir = path_join(ctx->cfg.spool_dir, "jobs");
    if (!ctx->tmp_dir || !ctx->jobs_dir) {
        snprintf(msg, msgsize, "out of memory");
        return false;
    }
    if (!mkdir_p(ctx->tmp_dir) || !mkdir_p(ctx->jobs_dir)) {
        snprintf(msg, msgsize, "spool-dir %s: %s", ctx->cfg.spool_dir, strerror(errno));
        return false;
    }
    if (access(ctx->jobs_dir, W_OK) != 0 || access(ctx->tmp_dir, W_OK) != 0) {
        snprintf(msg, msgsize, "spool-dir %s is not writable: %s", ctx->cfg.spool_dir,
                 strerror(errno));
        return false;
    }
    if (!lock_spool(ctx, msg, msgsize))
        return false;
    /* Leftover upload files of a previous run (only the mkstemp fallback leaves names). */
    empty_dir(ctx->tmp_dir);
    DIR *d = opendir(ctx->jobs_dir);
    if (!d) {
        snprintf(msg, msgsize, "spool-dir %s: %s", ctx->jobs_dir, strerror(errno));
        return false;
    }
    size_t resumed = 0, kept = 0, others = 0, retried = 0;
    struct dirent *e;
    int64_t now = (int64_t)time(NULL);
    while ((e = readdir(d))) {
        if (!sqd_job_id_owned(ctx->cfg.instance, e->d_name)) {
            /* Another instance's job (the instance was renamed?): left alone. */
            others += sqd_job_id_valid(e->d_name);
            continue;
        }
        char *dir = path_join(ctx->jobs_dir, e->d_name);
        json_t *state = dir ? load_json(dir, "state.json") : NULL;
        struct sqd_jobrec *rec = calloc(1, sizeof(*rec));
        bool ok =
            state && rec && sqd_jobrec_from_json(rec, state) && strcmp(rec->id, e->d_name) == 0;
        json_decref(state);
        bool keep = false;
        /* A job that ran out of disk space kept its input: it runs again. */
        const char *code =
            ok && rec->error ? json_string_value(json_object_get(rec->error, "code")) : NULL;
        if (ok && rec->state == SQD_FAILED && code &&
            strcmp(code, sq_status_name(SQ_ERR_NOSPACE)) == 0 && has_input(dir)) {
            json_decref(rec->error);
            rec->error = NULL;
            rec->finished = 0;
            rec->state = SQD_QUEUED;
            retried++;
        }
        if (ok && (rec->state == SQD_QUEUED || rec->state == SQD_RUNNING)) {
            struct sqd_spooled *grown = realloc(*found, (*nfound + 1) * sizeof(**found));
            if (grown)
                *found = grown;
            if (grown && sqd_reg_add(&ctx->reg, rec)) {
                if (load_job(ctx, rec, dir, &(*found)[*nfound])) {
                    ++*nfound;
                    keep = true;
                    resumed++;
                } else {
                    sqd_reg_remove(&ctx->reg, rec); /* frees it */
                    rec = NULL;
                }
            }
        } else if (ok && rec->finished && now - rec->finished < (int64_t)ctx->cfg.result_ttl) {
            keep = sqd_reg_add(&ctx->reg, rec);
            kept += keep;
        }
        if (!keep) {
            /* expired, an unfinished upload, or unreadable: nothing to keep */
            if (rec) {
                json_decref(rec->error);
                free(rec);
            }
            if (dir)
                sqd_spool_remove(dir);
        }
        free(dir);
    }
    closedir(d);
    if (resumed || kept)
        sqd_log(ctx,
                "spool: %zu job(s) resumed (%zu of them had run out of disk space), %zu "
                "finished job(s) kept",
                resumed, retried, kept);
    if (others)
        sqd_log(ctx, "spool: %zu job(s) of another instance name left alone (instance = \"%s\")",
                others, ctx->cfg.instance);
    return true;
}

void sqd_spool_expire(struct sqd_ctx *ctx)
{
    int64_t now = (int64_t)time(NULL);
    char(*ids)[SQD_JOBID_LEN + 1] = NULL;
    size_t n = 0;
    uv_mutex_lock(&ctx->reg.lock);
    for (size_t i = 0; i < ctx->reg.n;) {
        struct sqd_jobrec *rec = ctx->reg.recs[i];
        if (!rec->live && rec->finished && now - rec->finished >= (int64_t)ctx->cfg.result_ttl) {
            char(*grown)[SQD_JOBID_LEN + 1] = realloc(ids, (n + 1) * sizeof(*ids));
            if (!grown)
                break;
            ids = grown;
            memcpy(ids[n++], rec->id, SQD_JOBID_LEN + 1);
            sqd_reg_remove(&ctx->reg, rec); /* swaps the last record into slot i */
            continue;
        }
        i++;
    }
    uv_mutex_unlock(&ctx->reg.lock);
    for (size_t i = 0; i < n; i++) {
        char *dir = sqd_spool_job_dir(ctx, ids[i]);
        if (dir)
            sqd_spool_remove(dir);
        free(dir);
    }
    free(ids);
}

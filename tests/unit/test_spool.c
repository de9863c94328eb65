/*
 * src/daemon/spool.c: what start-up keeps, returns to resume and removes,
 * and the job record's round trip through state.json.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "ctx.h"
#include "errors.h"
#include "jobs.h"
#include "registry.h"
#include "spool.h"

static struct sqd_ctx ctx;
static char root[64];
/* What the last open_spool found to resume (the spool starts no job itself). */
static struct sqd_spooled *found;
static size_t nfound;

static bool open_spool(struct sqd_ctx *c, char *msg, size_t msgsize)
{
    sqd_spooled_free(found, nfound);
    found = NULL;
    nfound = 0;
    return sqd_spool_open(c, &found, &nfound, msg, msgsize);
}

static void setup(void)
{
    memset(&ctx, 0, sizeof(ctx));
    ctx.spool_lock = -1;
    ck_assert(sqd_config_defaults(&ctx.cfg));
    strcpy(root, "/tmp/sqd-spool-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    free(ctx.cfg.spool_dir);
    ctx.cfg.spool_dir = strdup(root);
    ck_assert(sqd_reg_init(&ctx.reg));
    ck_assert_int_eq(uv_mutex_init(&ctx.log.lock), 0);
}

static void teardown(void)
{
    sqd_spooled_free(found, nfound);
    found = NULL;
    nfound = 0;
    sqd_reg_free(&ctx.reg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
    free(ctx.tmp_dir);
    free(ctx.jobs_dir);
    if (ctx.spool_lock >= 0)
        close(ctx.spool_lock);
    sqd_config_free(&ctx.cfg);
}

static char *job_dir(const char *id)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "%s/jobs/%s", root, id);
    return buf;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* A job directory with a record in `state`, finished `age` seconds ago (0 = not finished). */
static void make_job(const char *id, enum sqd_job_state state, int64_t age)
{
    char jobs[256];
    snprintf(jobs, sizeof(jobs), "%s/jobs", root);
    mkdir(jobs, 0750);
    ck_assert_int_eq(mkdir(job_dir(id), 0750), 0);
    struct sqd_jobrec rec;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.id, sizeof(rec.id), "%s", id);
    rec.state = state;
    rec.created = (int64_t)time(NULL) - age - 5;
    rec.finished = age ? (int64_t)time(NULL) - age : 0;
    rec.layers_total = rec.layers_done = 3;
    rec.items_total = rec.items_done = 7;
    rec.ms_quantize = 12.5;
    rec.out_format = SQ_FORMAT_NPY;
    rec.result_bytes = state == SQD_DONE ? 1234 : 0;
    if (state == SQD_FAILED)
        rec.error = sqd_error_json(422, "no_tensor", "nothing to do", NULL);
    struct sq_error err;
    sq_error_init(&err);
    ck_assert_int_eq(sqd_spool_write_state(job_dir(id), &rec, &err), SQ_OK);
    json_decref(rec.error);
}

#define ID_DONE "0000000000000000000000000000000a"
#define ID_FAILED "0000000000000000000000000000000b"
#define ID_OLD "0000000000000000000000000000000c"
#define ID_QUEUED "0000000000000000000000000000000d"
#define ID_NOINPUT "0000000000000000000000000000000e"
#define ID_PARTIAL "0000000000000000000000000000000f"
#define ID_BROKEN "00000000000000000000000000000010"

START_TEST(test_startup)
{
    make_job(ID_DONE, SQD_DONE, 10);
    write_file(job_dir(ID_DONE), "result", "x");
    make_job(ID_FAILED, SQD_FAILED, 10);
    make_job(ID_OLD, SQD_DONE, 7200); /* past result-ttl (1 h) */
    make_job(ID_QUEUED, SQD_RUNNING, 0);
    write_file(job_dir(ID_QUEUED), "input", "not a model, but resumable");
    write_file(job_dir(ID_QUEUED), "request.json",
               "{\"input\":\"safetensors\",\"shape\":[],\"options\":[[\"bits\",\"3\"]]}");
    make_job(ID_NOINPUT, SQD_QUEUED, 0); /* crashed before its input was renamed */
    mkdir(job_dir(ID_PARTIAL), 0750);    /* an upload cut short */
    write_file(job_dir(ID_PARTIAL), "input.part", "abc");
    mkdir(job_dir(ID_BROKEN), 0750);
    write_file(job_dir(ID_BROKEN), "state.json", "{\"id\": 12");
    char msg[256];
    ck_assert_msg(open_spool(&ctx, msg, sizeof(msg)), "%s", msg);

    struct sqd_jobrec *r = sqd_reg_find(&ctx.reg, ID_DONE);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->state, SQD_DONE);
    ck_assert_uint_eq(r->layers_done, 3);
    ck_assert_uint_eq(r->items_total, 7);
    ck_assert_int_eq(r->out_format, SQ_FORMAT_NPY);
    ck_assert_uint_eq(r->result_bytes, 1234);
    ck_assert(r->ms_quantize > 12.4 && r->ms_quantize < 12.6);
    ck_assert(r->finished > 0 && r->live == NULL);

    r = sqd_reg_find(&ctx.reg, ID_FAILED);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->state, SQD_FAILED);
    ck_assert_str_eq(json_string_value(json_object_get(r->error, "code")), "no_tensor");

    r = sqd_reg_find(&ctx.reg, ID_QUEUED);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->state, SQD_QUEUED); /* running at the crash: queued again */
    ck_assert_ptr_null(r->live); /* returned, not started: the daemon hands it to the queue */
    ck_assert_uint_eq(nfound, 1);
    ck_assert_ptr_eq(found[0].rec, r);
    ck_assert_str_eq(found[0].dir, job_dir(ID_QUEUED));
    ck_assert_uint_eq(found[0].spec.nopts, 1);
    ck_assert_uint_eq(found[0].body.len, strlen("not a model, but resumable"));
    ck_assert_uint_eq(atomic_load(&ctx.admitted), 0);

    ck_assert_ptr_null(sqd_reg_find(&ctx.reg, ID_OLD));
    ck_assert(!exists(job_dir(ID_OLD), ""));
    ck_assert_ptr_null(sqd_reg_find(&ctx.reg, ID_NOINPUT));
    ck_assert(!exists(job_dir(ID_NOINPUT), ""));
    ck_assert(!exists(job_dir(ID_PARTIAL), ""));
    ck_assert(!exists(job_dir(ID_BROKEN), ""));
    ck_assert_uint_eq(ctx.reg.n, 3);
    ck_assert_uint_eq(sqd_reg_count(&ctx.reg, SQD_DONE), 1);
}
END_TEST

START_TEST(test_expire)
{
    make_job(ID_DONE, SQD_DONE, 10);
    char msg[256];
    ck_assert(open_spool(&ctx, msg, sizeof(msg)));
    ck_assert_uint_eq(ctx.reg.n, 1);
    sqd_spool_expire(&ctx);
    ck_assert_uint_eq(ctx.reg.n, 1);
    ctx.cfg.result_ttl = 5;
    sqd_spool_expire(&ctx);
    ck_assert_uint_eq(ctx.reg.n, 0);
    ck_assert(!exists(job_dir(ID_DONE), ""));
}
END_TEST

START_TEST(test_result_atomic)
{
    char msg[256];
    ck_assert(open_spool(&ctx, msg, sizeof(msg)));
    struct sq_error err;
    sq_error_init(&err);
    char *dir = NULL;
    int fd = sqd_spool_create(&ctx, ID_DONE, &dir, &err);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert(exists(dir, "input.part"));
    ck_assert_int_eq(sqd_spool_write_result(dir, (const uint8_t *)"abc", 3, &err), SQ_OK);
    ck_assert(exists(dir, "result") && !exists(dir, "result.tmp"));
    /* the same id twice: refused, not overwritten */
    ck_assert_int_lt(sqd_spool_create(&ctx, ID_DONE, &(char *){NULL}, &err), 0);
    ck_assert_int_eq(err.status, SQ_ERR_IO);
    sqd_spool_remove(dir);
    ck_assert(!exists(dir, ""));
    free(dir);
}
END_TEST

/* A second daemon on the same spool-dir is refused while the first holds the lock. */
START_TEST(test_lock)
{
    char msg[512];
    ck_assert_msg(open_spool(&ctx, msg, sizeof(msg)), "%s", msg);
    ck_assert_int_ge(ctx.spool_lock, 0);
    struct sqd_ctx other;
    memset(&other, 0, sizeof(other));
    other.spool_lock = -1;
    ck_assert_int_eq(uv_mutex_init(&other.log.lock), 0);
    ck_assert(sqd_config_defaults(&other.cfg));
    free(other.cfg.spool_dir);
    other.cfg.spool_dir = strdup(root);
    ck_assert(!open_spool(&other, msg, sizeof(msg)));
    ck_assert_msg(strstr(msg, "in use by another squantd") != NULL, "%s", msg);
    char pid[32];
    snprintf(pid, sizeof(pid), "pid %ld holds", (long)getpid());
    ck_assert_msg(strstr(msg, pid) != NULL, "%s", msg);
    ck_assert_int_eq(other.spool_lock, -1);
    /* The holder ends (its fd closes): the spool is free again. */
    close(ctx.spool_lock);
    ctx.spool_lock = -1;
    free(other.tmp_dir);
    free(other.jobs_dir);
    ck_assert_msg(open_spool(&other, msg, sizeof(msg)), "%s", msg);
    ck_assert_int_ge(other.spool_lock, 0);
    close(other.spool_lock);
    free(other.tmp_dir);
    free(other.jobs_dir);
    sqd_config_free(&other.cfg);
    uv_mutex_destroy(&other.log.lock);
}
END_TEST

#define ID_A "a.0000000000000000000000000000000a"
#define ID_B "b.0000000000000000000000000000000b"

/* With an instance name, start-up takes only its own jobs and leaves the others' alone. */
START_TEST(test_instance_startup)
{
    free(ctx.cfg.instance);
    ctx.cfg.instance = strdup("a");
    make_job(ID_A, SQD_DONE, 10);
    make_job(ID_B, SQD_DONE, 10);
    make_job(ID_DONE, SQD_DONE, 10); /* a bare id, from before the instance had a name */
    char msg[256];
    ck_assert_msg(open_spool(&ctx, msg, sizeof(msg)), "%s", msg);
    ck_assert_ptr_nonnull(sqd_reg_find(&ctx.reg, ID_A));
    ck_assert_ptr_null(sqd_reg_find(&ctx.reg, ID_B));
    ck_assert_ptr_null(sqd_reg_find(&ctx.reg, ID_DONE));
    ck_assert_uint_eq(ctx.reg.n, 1);
    ck_assert(exists(job_dir(ID_B), "state.json"));
    ck_assert(exists(job_dir(ID_DONE), "state.json"));
}
END_TEST

static Suite *spool_suite(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("startup");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_startup);
    tcase_add_test(tc, test_expire);
    tcase_add_test(tc, test_result_atomic);
    tcase_add_test(tc, test_lock);
    tcase_add_test(tc, test_instance_startup);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(spool_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

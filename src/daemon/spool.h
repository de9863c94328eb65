/*
 * The spool (spool.c): async jobs as files, so that none is lost to a crash
 * or a restart. It reads and writes files and the registry's records, and
 * nothing else: it starts no job (sqd_spool_open returns the jobs to
 * resume; the daemon hands them to the queue).
 */
#ifndef SQD_SPOOL_H
#define SQD_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squant/squant.h>

#include "body.h"
#include "registry.h"
#include "spec.h"

struct sqd_ctx;

/* A job found queued (or running) at start-up, to be run again. */
struct sqd_spooled {
    struct sqd_jobrec *rec; /* in the registry, state queued; rec->live is NULL */
    char *dir;              /* the job's directory (owned) */
    struct sqd_spec spec;   /* from request.json */
    struct sqd_body body;   /* its input, opened read-only */
};

/*
 * Create the spool layout, lock it, and read what it holds (loop thread,
 * at start): finished jobs are added to the registry, queued and running
 * ones too and returned in *found (*nfound of them; malloc'ed: the caller
 * takes what it needs and frees the rest with sqd_spooled_free).
 */
bool sqd_spool_open(struct sqd_ctx *ctx, struct sqd_spooled **found, size_t *nfound, char *msg,
                    size_t msgsize);
/* Free what sqd_spool_open returned (the records stay in the registry). */
void sqd_spooled_free(struct sqd_spooled *found, size_t n);
/* Directory of a job (malloc'ed). */
char *sqd_spool_job_dir(struct sqd_ctx *ctx, const char *id);
/* Create a job directory and its input file; returns the fd of input.part or -1. */
int sqd_spool_create(struct sqd_ctx *ctx, const char *id, char **dir, struct sq_error *err);
/*
 * Make an uploaded job durable: fsync its input `body`, write request.json
 * (`spec`) and state.json (`rec`, read under the registry lock), rename
 * input.part to input, fsync the directories. Blocking: a pool thread.
 */
enum sq_status sqd_spool_commit(struct sqd_ctx *ctx, const char *dir, struct sqd_body *body,
                                const struct sqd_spec *spec, const struct sqd_jobrec *rec,
                                struct sq_error *err);
/* Write state.json atomically (pool thread or loop). */
enum sq_status sqd_spool_write_state(const char *dir, const struct sqd_jobrec *rec,
                                     struct sq_error *err);
/* Write the result atomically (tmp, fsync, rename, fsync dir). */
enum sq_status sqd_spool_write_result(const char *dir, const uint8_t *data, size_t len,
                                      struct sq_error *err);
/* Write the report document of a finished job (report.json) atomically. */
enum sq_status sqd_spool_write_report(const char *dir, const char *text, struct sq_error *err);
/* Remove the input of a job that will not run again. */
void sqd_spool_drop_input(const char *dir);
/* Remove a job's files and directory. */
void sqd_spool_remove(const char *dir);
/* Forget expired results: their records and their directories (loop thread, from a timer). */
void sqd_spool_expire(struct sqd_ctx *ctx);

#endif

/*
 * The job registry (registry.c): the records of async jobs, what
 * GET /v1/jobs/{id} shows, and job ids. It knows no job, file or request:
 * the job queue (jobs.c) keeps a record up to date, the spool (spool.c)
 * reads and writes it as state.json, the metrics count it, the handlers
 * answer from it.
 */
#ifndef SQD_REGISTRY_H
#define SQD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include <squant/squant.h>

#include "auth.h"

/*
 * Job ids: 32 random hex digits, prefixed with "INSTANCE." when the
 * `instance` key is set (docs/operations.md). SQD_JOBID_LEN is the longest.
 */
#define SQD_INSTANCE_MAX 63
#define SQD_JOBID_HEX 32
#define SQD_JOBID_LEN (SQD_INSTANCE_MAX + 1 + SQD_JOBID_HEX)

/* A new job id: "INSTANCE." (if instance is not empty) and 32 random hex digits. */
void sqd_random_id(const char *instance, char out[SQD_JOBID_LEN + 1]);
/* An id of the form any instance gives (only such ids are looked up or used in paths). */
bool sqd_job_id_valid(const char *id);
/* A valid id that `instance` ("" = none) gives out. */
bool sqd_job_id_owned(const char *instance, const char *id);
/* An instance name: 1..SQD_INSTANCE_MAX of [a-z0-9-], not starting or ending with '-'. */
bool sqd_instance_valid(const char *name, size_t len);

enum sqd_job_state { SQD_QUEUED, SQD_RUNNING, SQD_DONE, SQD_FAILED, SQD_CANCELLED, SQD_STATES };
const char *sqd_state_name(enum sqd_job_state s);

struct sqd_job; /* jobs.h: a record points at its job while it is queued or running */

/*
 * A job's public record: what GET /v1/jobs/{id} shows. Async jobs keep one
 * in the registry (under its lock) until they expire or are deleted.
 */
struct sqd_jobrec {
    char id[SQD_JOBID_LEN + 1];
    char owner[SQD_OWNER_LEN + 1]; /* the creating token's owner id; "" = anyone's */
    enum sqd_job_state state;
    int64_t created;  /* unix seconds */
    int64_t finished; /* unix seconds, 0 while active */
    size_t layers_total, layers_done;
    size_t items_total, items_done;
    double ms_queued, ms_parse, ms_quantize, ms_write;
    enum sq_format out_format;
    uint64_t result_bytes;
    json_t *error;        /* the error object, or NULL */
    bool forget;          /* DELETE of a job that was ending: removed when the loop lets go */
    struct sqd_job *live; /* while queued or running (loop-owned) */
};

/* Status document of a record (caller holds the lock). New reference. */
json_t *sqd_jobrec_json(const struct sqd_jobrec *rec);
/* Read a state.json document back into a zeroed record (false: not a valid record). */
bool sqd_jobrec_from_json(struct sqd_jobrec *rec, json_t *j);

/*
 * The records, in no order. `lock` guards everything: the MHD thread reads
 * (GET, DELETE, listing), the loop and pool threads update. The registry
 * owns the records (sqd_reg_remove frees one).
 */
struct sqd_registry {
    uv_mutex_t lock;
    struct sqd_jobrec **recs;
    size_t n, cap;
};

/* An empty registry. False: no mutex. */
bool sqd_reg_init(struct sqd_registry *reg);
/* Free every record and the array (no thread uses the registry any more). */
void sqd_reg_free(struct sqd_registry *reg);
/* Find (caller holds the lock), add (takes rec; false when memory runs out), remove (frees). */
struct sqd_jobrec *sqd_reg_find(struct sqd_registry *reg, const char *id);
bool sqd_reg_add(struct sqd_registry *reg, struct sqd_jobrec *rec);
void sqd_reg_remove(struct sqd_registry *reg, struct sqd_jobrec *rec);
/* Records in `state` (takes the lock). */
size_t sqd_reg_count(struct sqd_registry *reg, enum sqd_job_state state);

#endif

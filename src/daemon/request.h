/*
 * One HTTP request and the route it matched (http.c creates and frees
 * it; the handlers, uploads and the job queue read and fill it).
 */
#ifndef SQD_REQUEST_H
#define SQD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include <squant/squant.h>

#include "auth.h"
#include "body.h"
#include "log.h"
#include "registry.h"
#include "spec.h"

struct sqd_ctx;
struct sqd_conn;
struct sqd_multipart;
struct sqd_request;

typedef void (*sqd_handler_fn)(struct sqd_request *req);

enum sqd_route_flags {
    SQD_ROUTE_BODY = 1,   /* takes a model upload */
    SQD_ROUTE_NOAUTH = 2, /* answered without a token (health probes) */
};

struct sqd_route {
    const char *path; /* template: "{id}" matches one segment */
    const char *method;
    sqd_handler_fn handler;
    unsigned flags;
};

/* NEW: headers in; DEFER: no body, answered when complete; BODY: receiving a model;
 * WAIT: a sync job runs (or has just resumed the connection); ANSWERED. */
enum sqd_phase { SQD_PH_NEW, SQD_PH_DEFER, SQD_PH_BODY, SQD_PH_WAIT, SQD_PH_ANSWERED };

/*
 * One HTTP request. Created by the URI log callback, freed by the
 * completed-request callback, both on the MHD thread. While a sync job runs
 * the connection is suspended, and the loop thread writes the answer fields
 * (ans_*) before it resumes the connection.
 */
struct sqd_request {
    struct sqd_ctx *ctx;
    struct MHD_Connection *conn;
    struct sqd_conn *cn; /* its connection's record (NULL if none) */
    char id[SQD_REQID_MAX];
    char method[16];
    char *path;  /* owned; without the query string */
    char *query; /* owned; the raw query string, "" if none */
    const struct sqd_route *route;
    bool path_known; /* no route, but the path exists: 405 */
    size_t uri_len;
    unsigned reject;      /* answered with this status before routing (400, 414, 431) */
    char reject_msg[160]; /* and this message */
    char allow[128];      /* the path's methods, for 405 */
    char job_id[SQD_JOBID_LEN + 2];
    char owner[SQD_OWNER_LEN + 1]; /* of the request's token ("" with auth off) */
    uint64_t t_start;
    uint64_t t_body; /* body complete */
    uint64_t bytes_in;
    uint64_t bytes_out;
    unsigned status;
    enum sqd_phase phase;
    bool vary_accept; /* the answer depends on Accept: say so (Vary) */
    bool admitted;    /* holds a queue slot (released when its job ends, or with the request) */

    /* uploads */
    struct sqd_body body;
    struct sqd_multipart *pp;
    void *pp_state; /* the post processor's closure (upload.c) */
    struct sqd_spec spec;
    bool saw_model_part;
    char *options_text; /* multipart "options" part, bounded */
    size_t options_len;
    enum sq_status upload_status; /* first failure while receiving */
    struct sq_error upload_err;
    char *job_dir;         /* async: the job's spool directory (owned) */
    struct sqd_feed *feed; /* sync safetensors: the job that runs while the body arrives */
    bool feed_decided;     /* whether the body can feed a job early has been decided */

    /* the answer of a sync job, filled by the loop thread before resume */
    unsigned ans_status;
    uint8_t *ans_body; /* malloc'ed; handed to MHD */
    size_t ans_len;
    int ans_fd; /* >= 0: the answer is ans_len bytes of this file at ans_off (owned) */
    uint64_t ans_off, ans_size;
    const char *ans_type;
    char ans_timing[256];
    char ans_layers[32];
    char ans_location[SQD_JOBID_LEN + 16]; /* async: the Location of a 202 */
};

#endif

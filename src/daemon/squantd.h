/*
 * squantd internals, shared by the files of src/daemon (names start with
 * sqd_). Everything the daemon knows lives in one struct sqd_ctx that is
 * passed around; there is no hidden global state.
 *
 * Threads:
 *   - the MHD thread (libmicrohttpd's internal polling thread) runs every
 *     HTTP callback: routing, uploads, small answers;
 *   - the loop thread (main's thread, running ctx->loop) owns the job
 *     queue, starts work, collects results and resumes connections;
 *   - libuv's pool threads run the heavy work: parsing, sq_plan_run per
 *     item, sq_plan_write and spool I/O.
 * Data shared between them is named below with the lock or atomic that
 * guards it.
 */
#ifndef SQD_SQUANTD_H
#define SQD_SQUANTD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>
#include <uv.h>

#include <squant/squant.h>

#if defined(__GNUC__)
#define SQD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SQD_PRINTF(f, a)
#endif

struct sqd_ctx;
struct sqd_request;
struct sqd_job;
struct sqd_jobrec;

/* ------------------------------------------------------------------ config.c */

/*
 * The configuration: one field per row of the option table in config.c.
 * Strings are owned by the struct (sqd_config_free).
 */
struct sqd_config {
    char *listen;
    char *port_file;
    char *spool_dir;
    char *auth_token_file;
    char *instance; /* "" or a label that prefixes job ids (sqd_instance_valid) */
    uint64_t threads;
    uint64_t max_active_jobs;
    uint64_t max_queued_jobs;
    uint64_t max_stored_jobs;
    uint64_t retry_after;
    uint64_t max_body_size;
    uint64_t memory_body_limit;
    uint64_t max_response_size;
    uint64_t max_tensors;
    uint64_t max_rank;
    uint64_t max_dim;
    uint64_t max_tensor_elements;
    uint64_t max_total_elements;
    uint64_t max_header_bytes;
    uint64_t max_connections;
    uint64_t max_connections_per_ip;
    uint64_t connection_reserve;
    uint64_t header_timeout;
    uint64_t min_body_rate;
    uint64_t connection_timeout;
    uint64_t connection_memory;
    uint64_t result_ttl;
    uint64_t drain_timeout;
    uint64_t drain_delay;
    bool access_log;
    bool ui;
};

enum sqd_opt_type { SQD_OPT_STRING, SQD_OPT_UINT, SQD_OPT_BYTES, SQD_OPT_SECONDS, SQD_OPT_BOOL };

/* Row flags. */
#define SQD_OPT_LIMIT 1u /* reported under "limits" by GET /v1/info */

/* One configuration key. The table is the single source for the file, the flags, /v1/info and docs.
 */
struct sqd_option {
    const char *name; /* as written in squantd.conf and as --name on the command line */
    enum sqd_opt_type type;
    size_t offset; /* of the field in struct sqd_config */
    const char *def;
    uint64_t min, max; /* inclusive bounds of numeric types */
    unsigned flags;
    const char *help;
};

/* The table, and its number of rows. */
const struct sqd_option *sqd_options(size_t *count);
const char *sqd_opt_type_name(enum sqd_opt_type type);

/* Set every key to its default. Returns false only if memory runs out. */
bool sqd_config_defaults(struct sqd_config *cfg);
void sqd_config_free(struct sqd_config *cfg);
/*
 * Set one key from text. `origin` names where it came from ("squantd.conf:12",
 * "--listen") for the message, which is written into `msg` (msgsize bytes).
 */
bool sqd_config_set(struct sqd_config *cfg, const char *key, const char *value, const char *origin,
                    char *msg, size_t msgsize);
/* Read `key = value` lines from a file. */
bool sqd_config_load(struct sqd_config *cfg, const char *path, char *msg, size_t msgsize);
/* The same from an open stream; `path` names it in messages. */
bool sqd_config_read(struct sqd_config *cfg, FILE *f, const char *path, char *msg, size_t msgsize);
/* Cross-key checks after everything is set (e.g. listen address syntax). */
bool sqd_config_check(const struct sqd_config *cfg, char *msg, size_t msgsize);
/* The value of a key as text, in the syntax the file accepts (malloc'ed; caller frees). */
char *sqd_config_format(const struct sqd_config *cfg, const struct sqd_option *opt);

/* What main should do after reading the command line. */
enum sqd_cli_action { SQD_RUN, SQD_CHECK_CONFIG, SQD_PRINT_HELP, SQD_PRINT_VERSION, SQD_CLI_ERROR };

/*
 * Parse argv: --config F first (file, then every other flag overrides it),
 * then --key value / --key=value for every table key, and --check-config,
 * --version, --help. Fills cfg (defaults included).
 */
enum sqd_cli_action sqd_config_from_args(struct sqd_config *cfg, int argc, char **argv, char *msg,
                                         size_t msgsize);
/* Print --help (generated from the table) to `out`. */
void sqd_config_usage(FILE *out);
/* The effective pool size: threads, or the number of usable cores when 0. */
unsigned sqd_config_threads(const struct sqd_config *cfg);
unsigned sqd_config_active_jobs(const struct sqd_config *cfg);

/* Parse "HOST:PORT" / "[V6]:PORT" into a socket address. */
bool sqd_parse_listen(const char *text, struct sockaddr_storage *ss, size_t *sslen, char *msg,
                      size_t msgsize);

/* ------------------------------------------------------------------ errors.c */

/* The HTTP status and JSON code for a libsquant status: the one table. */
unsigned sqd_http_status(enum sq_status st);

/*
 * A JSON answer's text: `doc` (consumed) dumped with `flags` and a final
 * newline, so that curl output ends its line. malloc'ed (caller frees), or
 * NULL when memory runs out.
 */
char *sqd_json_text(json_t *doc, size_t flags, size_t *len);
/*
 * The object inside an error document {"error": {...}}: status, code,
 * message, and tensor/offset/channel/index from `where` (may be NULL) when
 * set. New reference, or NULL when memory runs out.
 */
json_t *sqd_error_json(unsigned http, const char *code, const char *message,
                       const struct sq_error *where);

/* ------------------------------------------------------------------ body.c */

/*
 * A request body with a hard limit: held in memory up to `mem_limit` bytes,
 * then moved to a file (unlinked, in `tmp_dir`) or, when the caller opened
 * one (sqd_body_init_file), always in that file. sqd_body_map makes the
 * whole body readable as one buffer (memory or a read-only mmap).
 */
struct sqd_body {
    uint8_t *mem;
    size_t len;
    size_t cap;
    size_t limit;     /* hard limit on len */
    size_t mem_limit; /* past this, spill to a file */
    const char *tmp_dir;
    int fd;    /* -1 while in memory */
    void *map; /* mmap of the file after sqd_body_map */
    size_t map_len;
};

void sqd_body_init(struct sqd_body *b, size_t limit, size_t mem_limit, const char *tmp_dir);
/* Write into an open file `fd` (taken over: closed by sqd_body_free). */
void sqd_body_init_file(struct sqd_body *b, size_t limit, int fd);
/* SQ_ERR_LIMIT past the limit, SQ_ERR_NOMEM/SQ_ERR_IO otherwise. */
enum sq_status sqd_body_append(struct sqd_body *b, const void *data, size_t n,
                               struct sq_error *err);
/* Flush a file-backed body to disk (fdatasync). */
enum sq_status sqd_body_sync(struct sqd_body *b, struct sq_error *err);
/* Make the body readable: data and len stay valid until sqd_body_free. */
enum sq_status sqd_body_map(struct sqd_body *b, const uint8_t **data, size_t *len,
                            struct sq_error *err);
/* Open an existing file read-only as a body (used to resume spooled jobs). */
enum sq_status sqd_body_open(struct sqd_body *b, const char *path, struct sq_error *err);
void sqd_body_free(struct sqd_body *b);

/* ------------------------------------------------------------------ spec.c */

/* An option as it came in: key and value text for sq_options_set. */
struct sqd_kv {
    char *key;
    char *value;
};

/*
 * What a quantize request asks for, besides the weights: how to read the
 * body and the options. It is all a spooled job needs to run again after
 * a restart (spool.c stores it as request.json).
 */
/* A multipart part kept as a slice of the body: an ONNX model's external data. */
struct sqd_part {
    char *name; /* owned: the part's name, the location the model refers to */
    uint64_t off, len;
};

struct sqd_spec {
    enum sq_format input; /* AUTO (detect), RAW, NPY, SAFETENSORS or ONNX */
    bool have_dtype;
    enum sq_dtype dtype;
    unsigned rank; /* 0 = no shape given */
    int64_t shape[SQ_MAX_RANK];
    char *name;          /* tensor name for raw and npy input (NULL = "weight") */
    struct sqd_kv *opts; /* in order; passed to sq_options_set */
    size_t nopts;
    bool have_format; /* a `format` option was given */
    bool octet;       /* sent as application/octet-stream: say so if it is no known format */
    /* multipart with file parts besides "model": the model is a slice of the body too */
    bool sliced;
    uint64_t model_off, model_len;
    struct sqd_part *parts;
    size_t nparts;
    struct sq_external *ext; /* owned: the parts as sq_onnx_parse takes them (sqd_spec_parse) */
};
/* Record a file part: `name` starts at body offset `off`. SQ_ERR_ARG/LIMIT with a message. */
enum sq_status sqd_spec_add_part(struct sqd_spec *s, const char *name, uint64_t off,
                                 struct sq_error *err);

void sqd_spec_init(struct sqd_spec *s);
void sqd_spec_free(struct sqd_spec *s);
/*
 * Add one request parameter: dtype, shape and name describe the input, any
 * other key is an option (checked by sq_options_set later). SQ_ERR_ARG with
 * a message for a bad value.
 */
enum sq_status sqd_spec_param(struct sqd_spec *s, const char *key, const char *value,
                              struct sq_error *err);
/* Parameters from a JSON object (the multipart "options" part). */
enum sq_status sqd_spec_json(struct sqd_spec *s, const char *text, size_t len,
                             struct sq_error *err);
/* Input format from a Content-Type (media type only, parameters ignored). */
enum sqd_ctype {
    SQD_CT_NONE,
    SQD_CT_NPY,
    SQD_CT_SAFETENSORS,
    SQD_CT_ONNX,
    SQD_CT_RAW,
    SQD_CT_MULTIPART,
    SQD_CT_OTHER,
    SQD_CT_UNSUPPORTED
};
enum sqd_ctype sqd_ctype_parse(const char *content_type);
/*
 * The output format an Accept header prefers, by q-value: AUTO when it has
 * no preference (absent, or a wildcard that admits the default). False when
 * none of the formats we write is acceptable (406).
 */
bool sqd_accept_format(const char *accept, enum sq_format *out);
/* Whether Accept admits format f (true without an Accept). */
bool sqd_accept_allows(const char *accept, enum sq_format f);
const char *sqd_format_mime(enum sq_format f);
/*
 * Build the sq_options of a spec (caller-initialized `opt`, freed by the
 * caller) and check that the input description is consistent.
 */
enum sq_status sqd_spec_options(const struct sqd_spec *s, struct sq_options *opt,
                                struct sq_error *err);
/* Parse the model bytes as the spec says. `model` is initialized by the caller. */
enum sq_status sqd_spec_parse(struct sqd_spec *s, const struct sq_limits *limits,
                              const uint8_t *data, size_t len, struct sq_model *model,
                              struct sq_error *err);
json_t *sqd_spec_to_json(const struct sqd_spec *s);
enum sq_status sqd_spec_from_json(struct sqd_spec *s, json_t *j, struct sq_error *err);

/* ------------------------------------------------------------------ metrics.c */

#define SQD_HIST_BUCKETS 12

enum sqd_job_state { SQD_QUEUED, SQD_RUNNING, SQD_DONE, SQD_FAILED, SQD_CANCELLED, SQD_STATES };
const char *sqd_state_name(enum sqd_job_state s);

/* Counters are atomics: any thread adds to them, /metrics reads them. */
struct sqd_metrics {
    atomic_uint_fast64_t *requests; /* [route][status slot] */
    size_t nroutes;
    atomic_uint_fast64_t bytes_in, bytes_out;
    atomic_int_fast64_t in_flight;
    atomic_uint_fast64_t jobs_finished[SQD_STATES];
    atomic_uint_fast64_t tensors, weights;
    atomic_uint_fast64_t hist[SQD_HIST_BUCKETS + 1];
    atomic_uint_fast64_t hist_sum_us;
    atomic_uint_fast64_t rejected; /* 503 for a full queue */
};

bool sqd_metrics_init(struct sqd_metrics *m, size_t nroutes);
void sqd_metrics_free(struct sqd_metrics *m);
void sqd_metrics_request(struct sqd_metrics *m, size_t route, unsigned status);
void sqd_metrics_quantized(struct sqd_metrics *m, double seconds, uint64_t tensors,
                           uint64_t weights);
/* The Prometheus text exposition (malloc'ed, caller frees). */
char *sqd_metrics_render(struct sqd_ctx *ctx, size_t *len);

/* ------------------------------------------------------------------ auth.c */

struct sqd_auth {
    uv_rwlock_t lock; /* tokens are swapped by SIGHUP on the loop thread */
    char **tokens;
    size_t count;
    bool enabled;
};

bool sqd_auth_init(struct sqd_auth *a);
/* (Re)load tokens from `path` (one per line, # comments). Keeps the old set on failure. */
bool sqd_auth_load(struct sqd_auth *a, const char *path, char *msg, size_t msgsize);
/* Check an Authorization header value; true when auth is off or a token matches. */
bool sqd_auth_check(struct sqd_auth *a, const char *authorization);
/*
 * The same, and the owner id of the matching token: 32 hex digits derived
 * from it by SHA-256 (the token itself is never stored), "" with auth off.
 * Async jobs keep it (state.json) and answer only requests with the same.
 */
#define SQD_OWNER_LEN 32
bool sqd_auth_identify(struct sqd_auth *a, const char *authorization,
                       char owner[SQD_OWNER_LEN + 1]);
void sqd_sha256(const void *data, size_t len, uint8_t out[32]);
void sqd_auth_free(struct sqd_auth *a);
/* Constant-time comparison of two byte strings (time depends on the lengths only). */
bool sqd_ct_equal(const char *a, size_t alen, const char *b, size_t blen);

/* ------------------------------------------------------------------ log.c */

#define SQD_REQID_MAX 72

/* A request id: 16 hex digits from a per-process random prefix and a counter. */
void sqd_request_id(struct sqd_ctx *ctx, char out[SQD_REQID_MAX]);
/* Accept a client-supplied X-Request-Id if it is 1..64 chars of [A-Za-z0-9._-] (a UUID is 36). */
bool sqd_request_id_valid(const char *id);
void sqd_log(struct sqd_ctx *ctx, const char *fmt, ...) SQD_PRINTF(2, 3);
void sqd_access_log(struct sqd_ctx *ctx, const struct sqd_request *req);
uint64_t sqd_now_ns(void);

/* ------------------------------------------------------------------ notify.c */

/* Tell systemd (NOTIFY_SOCKET) a state such as "READY=1"; no-op without it. */
void sqd_notify(const char *state);

/* ------------------------------------------------------------------ multipart.c */

/*
 * One piece of a part's data (off = bytes of the part before it). name,
 * filename and content_type are NULL when the part's headers do not give
 * them. An empty part is reported once with size 0. False stops the reader.
 */
typedef bool (*sqd_part_fn)(void *cls, const char *name, const char *filename,
                            const char *content_type, const char *data, uint64_t off, size_t size);
struct sqd_multipart;
/* The boundary parameter of a multipart Content-Type (1-70 bchars). */
bool sqd_multipart_boundary(const char *content_type, char *out, size_t outsize);
/* A reader for a body of this Content-Type; NULL without a valid boundary (or memory). */
struct sqd_multipart *sqd_multipart_new(const char *content_type, sqd_part_fn fn, void *cls);
/* Feed body bytes. False: malformed, or the callback said stop. */
bool sqd_multipart_feed(struct sqd_multipart *mp, const char *data, size_t n);
/* At the end of the body: true if the closing delimiter was seen (or no delimiter at all). */
bool sqd_multipart_end(struct sqd_multipart *mp);
void sqd_multipart_free(struct sqd_multipart *mp);

/* ------------------------------------------------------------------ conns.c */

/*
 * Every open connection, for the slow-client defences: a deadline for a
 * request's line and headers, a least upload rate, and a reserve of free
 * slots kept by closing the oldest connection still sending headers.
 * Created and freed by MHD's connection notifications (MHD thread); the
 * loop thread's tick sweeps the list. All fields under sqd_conns.lock.
 * A connection is closed from outside with shutdown(2) on its socket,
 * which MHD then sees as the client's end; the record is unlinked before
 * MHD closes the socket, so a swept fd is never a reused one.
 */
enum sqd_conn_phase {
    SQD_CONN_HEADERS, /* waiting for (the rest of) a request's line and headers */
    SQD_CONN_IDLE,    /* keep-alive between requests: closed after connection-timeout */
    SQD_CONN_BODY,    /* receiving an upload */
    SQD_CONN_BUSY     /* being answered, or a job runs: no deadline */
};

struct sqd_conn {
    struct sqd_conn *prev, *next;
    int fd;
    enum sqd_conn_phase phase;
    uint64_t since;         /* monotonic ns: start of the phase */
    uint64_t bytes;         /* body bytes received in the phase */
    unsigned closed_status; /* 408 or 503 once swept or evicted: for the access log */
    char addr[48];          /* the client address, for the access log */
};

struct sqd_conns {
    uv_mutex_t lock;
    struct sqd_conn *head, *tail;
    size_t count;
    atomic_uint_fast64_t timed_out; /* closed by a deadline */
    atomic_uint_fast64_t evicted;   /* closed to keep the reserve */
};

struct sqd_conn *sqd_conn_open(struct sqd_ctx *ctx, struct MHD_Connection *conn);
void sqd_conn_close(struct sqd_ctx *ctx, struct sqd_conn *c);
void sqd_conn_phase(struct sqd_ctx *ctx, struct sqd_conn *c, enum sqd_conn_phase phase);
/* A request line arrived: an idle keep-alive connection starts its header deadline. */
void sqd_conn_request_line(struct sqd_ctx *ctx, struct sqd_conn *c);
void sqd_conn_body(struct sqd_ctx *ctx, struct sqd_conn *c, size_t n);
/* How the connection was closed by a sweep (0 = it was not). */
unsigned sqd_conn_closed_status(struct sqd_ctx *ctx, struct sqd_conn *c);
/* Loop thread: close connections past their deadlines. */
void sqd_conns_sweep(struct sqd_ctx *ctx);

/* ------------------------------------------------------------------ routes.c / http.c */

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

/* The table of routes, and its size. Index = metrics label slot. */
const struct sqd_route *sqd_routes(size_t *count);
/*
 * Find the route for method and path. Returns the row, or NULL with
 * *path_known telling 404 (false) from 405 (true); `allow` then receives the
 * methods the path accepts ("GET, HEAD, DELETE"). `id` receives the {id}
 * segment if any (at most idsize-1 chars, else no match).
 */
const struct sqd_route *sqd_route_find(const char *method, const char *path, bool *path_known,
                                       char *allow, size_t allowsize, char *id, size_t idsize);
/* Index of a route row in the table (for metrics); the row after the last is "unmatched". */
size_t sqd_route_index(const struct sqd_route *r);
/* The first row whose template matches the path, whatever its method (NULL if none). */
const struct sqd_route *sqd_route_path(const char *path);

/*
 * Job ids: 32 random hex digits, prefixed with "INSTANCE." when the
 * `instance` key is set (docs/operations.md). SQD_JOBID_LEN is the longest.
 */
#define SQD_INSTANCE_MAX 63
#define SQD_JOBID_HEX 32
#define SQD_JOBID_LEN (SQD_INSTANCE_MAX + 1 + SQD_JOBID_HEX)

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
    bool admitted; /* holds a queue slot (released when its job ends, or with the request) */

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
    char *job_dir; /* async: the job's spool directory (owned) */

    /* the answer of a sync job, filled by the loop thread before resume */
    unsigned ans_status;
    uint8_t *ans_body; /* malloc'ed; handed to MHD */
    size_t ans_len;
    int ans_fd;        /* >= 0: the answer is ans_len bytes of this file at ans_off (owned) */
    uint64_t ans_off, ans_size;
    const char *ans_type;
    char ans_timing[256];
    char ans_layers[32];
};

/* Queue an answer; `body` (malloc'ed, may be NULL) is handed to MHD, which frees it. */
void sqd_respond(struct sqd_request *req, unsigned status, const char *content_type, void *body,
                 size_t len);
/* Indented, with times to the microsecond: how every JSON document is answered. */
#define SQD_JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(6))
/* Answer with a JSON document (consumed). */
void sqd_respond_jsonv(struct sqd_request *req, unsigned status, json_t *doc);
void sqd_respond_error(struct sqd_request *req, unsigned status, const char *code, const char *fmt,
                       ...) SQD_PRINTF(4, 5);
void sqd_respond_sq(struct sqd_request *req, const struct sq_error *err);
/* Queue an answer with extra headers (NULL-terminated name/value list). */
void sqd_respond_headers(struct sqd_request *req, unsigned status, const char *content_type,
                         void *body, size_t len, const char *const *headers);
/* Answer with bytes that outlive the daemon (embedded files): not copied, not freed. */
void sqd_respond_static(struct sqd_request *req, unsigned status, const char *content_type,
                        const void *body, size_t len, const char *const *headers);
/* Answer from an open file (taken over). */
void sqd_respond_fd(struct sqd_request *req, unsigned status, const char *content_type, int fd,
                    uint64_t size);
/* The same from `offset` of the file, with extra headers as sqd_respond_headers. */
void sqd_respond_fd_at(struct sqd_request *req, unsigned status, const char *content_type, int fd,
                       uint64_t offset, uint64_t size, const char *const *headers);

bool sqd_http_start(struct sqd_ctx *ctx, char *msg, size_t msgsize);
void sqd_http_quiesce(struct sqd_ctx *ctx);
void sqd_http_stop(struct sqd_ctx *ctx);

/* Route handlers (handlers.c). */
void sqd_h_healthz(struct sqd_request *req);
void sqd_h_readyz(struct sqd_request *req);
void sqd_h_info(struct sqd_request *req);
void sqd_h_metrics(struct sqd_request *req);
void sqd_h_quantize(struct sqd_request *req);
void sqd_h_jobs_post(struct sqd_request *req);
void sqd_h_job_get(struct sqd_request *req);
void sqd_h_job_delete(struct sqd_request *req);
void sqd_h_job_result(struct sqd_request *req);
void sqd_h_jobs_list(struct sqd_request *req);
/* ui.c: the page at / and its assets at /ui/{name}, embedded in the binary. */
void sqd_h_ui_page(struct sqd_request *req);
void sqd_h_ui_asset(struct sqd_request *req);

/* An embedded file of the page (ui_assets.c, generated from ui/ at build time). */
struct sqd_asset {
    const char *name; /* as in /ui/{name}; "index.html" is the page */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted strong validator: a hash of the bytes */
};
const struct sqd_asset *sqd_ui_assets(size_t *count);
void sqd_h_job_report(struct sqd_request *req);
/*
 * Whether the caller of `req` may see job `rec` (caller holds reg_lock): the
 * one place every job endpoint asks. A job created with auth on belongs to
 * its token's owner id (rec->owner); one created without, to every caller.
 */
bool sqd_job_visible(const struct sqd_request *req, const struct sqd_jobrec *rec);

/* GET /v1/jobs paging: default and largest `limit`. */
#define SQD_JOBS_PAGE_DEFAULT 20
#define SQD_JOBS_PAGE_MAX 100

/* upload.c: the body-carrying requests. */
/* First call (headers complete): set up the sink and the parameters. False = answered. */
bool sqd_upload_begin(struct sqd_request *req);
/* A chunk of body. False = abort the connection (answer impossible mid-body). */
bool sqd_upload_data(struct sqd_request *req, const char *data, size_t size);
/* The body is complete: turn it into a job (or answer an error). */
void sqd_upload_end(struct sqd_request *req);
void sqd_upload_free(struct sqd_request *req);
/* 406 not_acceptable: nothing in Accept is a format we write. */
void sqd_respond_not_acceptable(struct sqd_request *req);

/* ------------------------------------------------------------------ jobs.c */

/* A job's timings (monotonic ns; 0 = not reached). */
struct sqd_timings {
    uint64_t received; /* request headers */
    uint64_t admitted; /* body complete, job created */
    uint64_t started;
    uint64_t parsed;
    uint64_t quantized;
    uint64_t written;
};

/*
 * A job's public record: what GET /v1/jobs/{id} shows. Async jobs keep one
 * in the registry (ctx->reg_lock) until they expire or are deleted.
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

/*
 * A streamed safetensors result (stream.c): the data section written to an
 * unnamed file in the spool's tmp directory at `base` as layers finish, the
 * header in front of it at the end. The loop thread owns next_begin,
 * next_write and writing; one pool task at a time writes.
 */
struct sqd_stream {
    bool active;
    int fd;
    uint64_t base;     /* file offset of the data section */
    uint64_t data_len; /* bytes of it written so far */
    uint8_t *head;     /* the header, once finished */
    size_t head_len;
    uint64_t offset, size; /* the answer: [offset, offset + size) of fd */
    const uint8_t *input;  /* the input mapping: its pages are dropped once written */
    size_t input_len;
    size_t next_begin, next_write; /* layers */
    uint64_t held;                 /* bytes of codes of the layers begun, not written */
    bool writing;                  /* a write task is on the pool */
    size_t write_to;               /* that task writes layers next_write .. write_to - 1 */
    enum sq_status write_status;
    struct sq_error write_err;
    uv_work_t work;
};

void sqd_stream_init(struct sqd_stream *s);
void sqd_stream_free(struct sqd_stream *s);
/* Create the file (in tmp_dir) for plan's output; `input` is the mapping the model borrows. */
enum sq_status sqd_stream_open(struct sqd_stream *s, const char *tmp_dir,
                               const struct sq_plan *plan, const struct sq_model *model,
                               const uint8_t *input, size_t input_len, struct sq_error *err);
/* Write layers from .. to - 1 (all their items done, in order) and what precedes them. */
enum sq_status sqd_stream_layers(struct sqd_stream *s, struct sq_plan *plan,
                                 const struct sq_model *model, size_t from, size_t to,
                                 struct sq_error *err);
/* Every layer written: the rest of the data and the header. SQ_ERR_LIMIT past `limit`. */
enum sq_status sqd_stream_finish(struct sqd_stream *s, struct sq_plan *plan, uint64_t limit,
                                 struct sq_error *err);
/* Hand the finished file over (the caller closes it): the answer is *size bytes at *offset. */
int sqd_stream_take(struct sqd_stream *s, const char *tmp_dir, uint64_t *offset, uint64_t *size,
                    struct sq_error *err);
/* Async: the finished result as dir/result (fsynced, renamed into place). */
enum sq_status sqd_stream_save(struct sqd_stream *s, const char *dir, struct sq_error *err);

/*
 * A unit of work: one request's model, options, plan and output. Created
 * on the MHD thread and handed to the loop thread, which owns it from then
 * on and frees it when it ends (sqd_job_free).
 */
struct sqd_job {
    struct sqd_ctx *ctx;
    struct sqd_job *next; /* inbox / wait list / active list (loop thread) */
    char id[SQD_JOBID_LEN + 1];
    bool async;
    struct sqd_request *req; /* sync: the suspended request (borrowed until resumed) */
    int client_fd;           /* sync: polled for a disconnect */
    struct sqd_spec spec;
    struct sqd_body body;
    char *dir;              /* async: spool directory (owned) */
    struct sqd_jobrec *rec; /* async: registry record (owned by the registry) */

    /* pool-thread results, read by the loop thread after each stage */
    struct sq_model model;
    struct sq_options opt;
    struct sq_plan *plan;
    size_t nitems, items_done, items_running, next_item;
    size_t nlayers, layers_done;
    size_t *layer_left;
    struct sqd_item *items;
    atomic_int cancel; /* SQD_CANCEL_* */
    enum sq_status status;
    struct sq_error err;
    unsigned http_override; /* 0, or an HTTP status for daemon-level failures */
    const char *code_override;
    uint8_t *out;
    size_t out_len;
    struct sqd_stream stream; /* safetensors output of a multi-item job */
    int out_fd;               /* sync, streamed: the answer file, until handed to the request */
    uint64_t out_off;
    enum sq_format out_format;
    struct sqd_timings t;
    uv_work_t work;
    bool running;
    bool inline_done; /* a one-item job ran and was written within its parse task */
};

enum { SQD_CANCEL_NONE = 0, SQD_CANCEL_USER, SQD_CANCEL_CLIENT, SQD_CANCEL_SHUTDOWN };

struct sqd_item {
    uv_work_t work;
    struct sqd_job *job;
    size_t index;
    enum sq_status status;
    struct sq_error err;
};

/* Reserve a queue slot (MHD thread): false when the queue is full. */
bool sqd_jobs_admit(struct sqd_ctx *ctx);
void sqd_jobs_release(struct sqd_ctx *ctx);
/* New job (id generated), or NULL when memory runs out. */
struct sqd_job *sqd_job_new(struct sqd_ctx *ctx, bool async);
void sqd_job_free(struct sqd_job *job);
/* Hand a job to the loop thread (any thread). */
void sqd_jobs_submit(struct sqd_ctx *ctx, struct sqd_job *job);
bool sqd_jobs_init(struct sqd_ctx *ctx);
void sqd_jobs_close(struct sqd_ctx *ctx);
/* Begin draining (loop thread). */
void sqd_jobs_drain(struct sqd_ctx *ctx);
/* A new job id: "INSTANCE." (if instance is not empty) and 32 random hex digits. */
void sqd_random_id(const char *instance, char out[SQD_JOBID_LEN + 1]);
/* An id of the form any instance gives (only such ids are looked up or used in paths). */
bool sqd_job_id_valid(const char *id);
/* A valid id that `instance` ("" = none) gives out. */
bool sqd_job_id_owned(const char *instance, const char *id);
/* An instance name: 1..SQD_INSTANCE_MAX of [a-z0-9-], not starting or ending with '-'. */
bool sqd_instance_valid(const char *name, size_t len);
/* Status document of a record (caller holds reg_lock). New reference. */
json_t *sqd_jobrec_json(const struct sqd_jobrec *rec);
/* Read a state.json document back into a zeroed record (false: not a valid record). */
bool sqd_jobrec_from_json(struct sqd_jobrec *rec, json_t *j);

/* ------------------------------------------------------------------ spool.c */

/* Create the spool layout and resume the jobs found in it (loop thread, at start). */
bool sqd_spool_open(struct sqd_ctx *ctx, char *msg, size_t msgsize);
/* Directory of a job (malloc'ed). */
char *sqd_spool_job_dir(struct sqd_ctx *ctx, const char *id);
/* Create a job directory and its input file; returns the fd of input.part or -1. */
int sqd_spool_create(struct sqd_ctx *ctx, const char *id, char **dir, struct sq_error *err);
/* Make an uploaded job durable: fsync input, write request.json and state, fsync dirs. */
enum sq_status sqd_spool_commit(struct sqd_ctx *ctx, const char *dir, struct sqd_job *job,
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
/* Registry: find (caller holds reg_lock), add, remove. */
struct sqd_jobrec *sqd_reg_find(struct sqd_ctx *ctx, const char *id);
bool sqd_reg_add(struct sqd_ctx *ctx, struct sqd_jobrec *rec);
void sqd_reg_remove(struct sqd_ctx *ctx, struct sqd_jobrec *rec);
size_t sqd_reg_count(struct sqd_ctx *ctx, enum sqd_job_state state);
/* Forget expired results (loop thread, from a timer). */
void sqd_spool_expire(struct sqd_ctx *ctx);

/* ------------------------------------------------------------------ the context */

struct sqd_ctx {
    struct sqd_config cfg;
    struct sq_limits limits;
    unsigned pool_size;
    unsigned max_active;
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    uint16_t port;
    char *tmp_dir;  /* spool_dir/tmp */
    char *jobs_dir; /* spool_dir/jobs */
    int spool_lock; /* fd holding flock(spool_dir/lock), or -1 */
    uint64_t t_start;
    uint32_t reqid_prefix;
    atomic_uint_fast64_t reqid_counter;

    /* admission (any thread) */
    atomic_size_t admitted;

    /* inbox: MHD thread -> loop thread */
    uv_mutex_t inbox_lock;
    struct sqd_job *inbox_head, *inbox_tail;
    uv_async_t inbox_async;

    /* loop thread only */
    struct sqd_job *wait_head, *wait_tail;
    size_t waiting;
    size_t running;
    struct sqd_job *active; /* running jobs */
    uv_timer_t tick;        /* disconnect polling, expiry, drain progress */
    uint64_t last_expiry;
    uv_signal_t sig_term, sig_int, sig_hup;
    uint64_t drain_deadline;
    uint64_t quiesce_at; /* end of drain-delay */
    bool quiesced;       /* the listener is closed */
    bool stopping;

    atomic_size_t queued_gauge; /* waiting jobs, for /metrics */
    atomic_size_t running_gauge;

    /* async job registry */
    uv_mutex_t reg_lock;
    struct sqd_jobrec **recs;
    size_t nrecs, caprecs;

    struct sqd_auth auth;
    struct sqd_metrics metrics;
    struct sqd_conns conns;
    atomic_bool draining;
    uv_mutex_t log_lock;
    /*
     * Test hook, from $SQUANTD_TEST_ITEM_DELAY_MS: every work item first sleeps
     * this long, so that tests can catch jobs while they run. 0 in production.
     */
    unsigned test_item_delay_ms;
};

#endif

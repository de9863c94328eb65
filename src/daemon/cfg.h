/* The configuration (config.c); the file is not config.h, which is autoconf's. */
#ifndef SQD_CFG_H
#define SQD_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

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

#endif

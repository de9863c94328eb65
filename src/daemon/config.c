/*
 * Configuration: ONE table of options. Each row names a key, its type,
 * default, bounds and help text; the same row drives squantd.conf parsing,
 * the --key overrides, --help, the limits in GET /v1/info and the unit test
 * that checks docs/config.md against the table.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "cfg.h"
#include "registry.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

#define OFF(field) offsetof(struct sqd_config, field)

/* clang-format off */
static const struct sqd_option options[] = {
    {"listen", SQD_OPT_STRING, OFF(listen), "127.0.0.1:8080", 0, 0, 0,
     "Address and port to listen on: HOST:PORT or [IPV6]:PORT. Port 0 picks a free port "
     "(see port-file)."},
    {"port-file", SQD_OPT_STRING, OFF(port_file), "", 0, 0, 0,
     "If set, the port actually bound is written to this file once the daemon listens."},
    {"spool-dir", SQD_OPT_STRING, OFF(spool_dir), "/var/lib/squantd", 0, 0, 0,
     "Directory for async jobs (inputs, state, results) and for large uploads. Created if "
     "missing."},
    {"instance", SQD_OPT_STRING, OFF(instance), "", 0, 0, 0,
     "Name of this instance (1-63 of a-z 0-9 -): job ids start with NAME. and other "
     "instances' ids get 404 wrong_instance. Empty: bare ids."},
    {"auth-token-file", SQD_OPT_STRING, OFF(auth_token_file), "", 0, 0, 0,
     "File of bearer tokens, one per line (# starts a comment). Empty: no authentication. "
     "Reloaded on SIGHUP."},
    {"threads", SQD_OPT_UINT, OFF(threads), "0", 0, 1024, 0,
     "Worker threads that quantize (libuv pool size). 0: one per usable core."},
    {"max-active-jobs", SQD_OPT_UINT, OFF(max_active_jobs), "0", 0, 4096, 0,
     "Jobs parsed and quantized at the same time; the others wait in the queue. 0: twice "
     "the number of threads."},
    {"max-queued-jobs", SQD_OPT_UINT, OFF(max_queued_jobs), "64", 0, 1000000, SQD_OPT_LIMIT,
     "Jobs (sync and async) waiting beyond the active ones. Past this, requests get 503 "
     "with Retry-After."},
    {"max-stored-jobs", SQD_OPT_UINT, OFF(max_stored_jobs), "1000", 1, 1000000, SQD_OPT_LIMIT,
     "Async jobs remembered at once (any state). Past this, POST /v1/jobs gets 503."},
    {"retry-after", SQD_OPT_SECONDS, OFF(retry_after), "2", 1, 3600, 0,
     "Seconds sent in Retry-After with a 503."},
    {"max-body-size", SQD_OPT_BYTES, OFF(max_body_size), "1G", 1, 1ull << 46, SQD_OPT_LIMIT,
     "Largest request body. A larger Content-Length gets 413 before the body is read."},
    {"memory-body-limit", SQD_OPT_BYTES, OFF(memory_body_limit), "16M", 0, 1ull << 40, 0,
     "Bodies up to this size are held in memory; larger ones go to an unlinked file in "
     "spool-dir/tmp."},
    {"max-response-size", SQD_OPT_BYTES, OFF(max_response_size), "2G", 1, 1ull << 46,
     SQD_OPT_LIMIT, "Largest result; a larger one fails with 413."},
    {"max-tensors", SQD_OPT_UINT, OFF(max_tensors), "65536", 1, 1ull << 32, SQD_OPT_LIMIT,
     "Most tensors in one model file."},
    {"max-rank", SQD_OPT_UINT, OFF(max_rank), "8", 1, SQ_MAX_RANK, SQD_OPT_LIMIT,
     "Most dimensions of one tensor."},
    {"max-dim", SQD_OPT_UINT, OFF(max_dim), "1073741824", 1, 1ull << 62, SQD_OPT_LIMIT,
     "Largest single dimension."},
    {"max-tensor-elements", SQD_OPT_UINT, OFF(max_tensor_elements), "1073741824", 1,
     1ull << 62, SQD_OPT_LIMIT, "Most elements in one tensor."},
    {"max-total-elements", SQD_OPT_UINT, OFF(max_total_elements), "4294967296", 1, 1ull << 62,
     SQD_OPT_LIMIT, "Most elements over all tensors of one request."},
    {"max-header-bytes", SQD_OPT_BYTES, OFF(max_header_bytes), "16M", 64, 1ull << 32,
     SQD_OPT_LIMIT, "Largest safetensors JSON header or .npy header."},
    {"max-connections", SQD_OPT_UINT, OFF(max_connections), "256", 1, 65536, SQD_OPT_LIMIT,
     "Most simultaneous client connections."},
    {"connection-timeout", SQD_OPT_SECONDS, OFF(connection_timeout), "60", 1, 86400, 0,
     "Idle seconds before a connection is closed (not counted while a job runs)."},
    {"max-connections-per-ip", SQD_OPT_UINT, OFF(max_connections_per_ip), "64", 0, 65536,
     SQD_OPT_LIMIT,
     "Most simultaneous connections from one client address. 0: no per-address limit (set "
     "it behind a proxy, where every client has the proxy's address)."},
    {"connection-reserve", SQD_OPT_UINT, OFF(connection_reserve), "16", 0, 65535, 0,
     "Connection slots kept free for clients that send their request promptly: when fewer "
     "are left, a new connection closes the oldest one still sending its headers."},
    {"header-timeout", SQD_OPT_SECONDS, OFF(header_timeout), "10", 1, 3600, SQD_OPT_LIMIT,
     "Seconds a client has to send a request's line and headers (and how long an idle "
     "keep-alive connection is kept); later, the connection is closed."},
    {"min-body-rate", SQD_OPT_BYTES, OFF(min_body_rate), "1K", 0, 1ull << 40, SQD_OPT_LIMIT,
     "Least average upload rate in bytes per second, checked once a body has taken longer "
     "than header-timeout; a slower upload is closed. 0: no minimum."},
    {"connection-memory", SQD_OPT_BYTES, OFF(connection_memory), "64K", 8192, 16 * MIB, 0,
     "Memory per connection for the request line and headers."},
    {"result-ttl", SQD_OPT_SECONDS, OFF(result_ttl), "1h", 1, 365 * 86400ull, SQD_OPT_LIMIT,
     "How long a finished async job and its result are kept."},
    {"drain-timeout", SQD_OPT_SECONDS, OFF(drain_timeout), "30", 0, 86400, 0,
     "On SIGTERM, how long running sync requests may take to finish before they are "
     "cancelled."},
    {"drain-delay", SQD_OPT_SECONDS, OFF(drain_delay), "0", 0, 3600, 0,
     "On SIGTERM, how long the daemon keeps accepting connections while /readyz answers 503 "
     "(and new quantize requests 503 with Retry-After), before drain-timeout starts."},
    {"access-log", SQD_OPT_BOOL, OFF(access_log), "yes", 0, 1, 0,
     "One line per request on stderr."},
    {"ui", SQD_OPT_BOOL, OFF(ui), "yes", 0, 1, 0,
     "Serve the page for people at / (upload, progress, per-layer table and plots)."},
};
/* clang-format on */

const struct sqd_option *sqd_options(size_t *count)
{
    *count = sizeof(options) / sizeof(options[0]);
    return options;
}

const char *sqd_opt_type_name(enum sqd_opt_type type)
{
    switch (type) {
    case SQD_OPT_STRING:
        return "string";
    case SQD_OPT_UINT:
        return "integer";
    case SQD_OPT_BYTES:
        return "size";
    case SQD_OPT_SECONDS:
        return "duration";
    case SQD_OPT_BOOL:
        return "boolean";
    }
    return "?";
}

static const struct sqd_option *find_option(const char *name, size_t n)
{
    size_t count;
    const struct sqd_option *opts = sqd_options(&count);
    for (size_t i = 0; i < count; i++) {
        const char *o = opts[i].name;
        size_t k = 0;
        /* '_' and '-' are the same, so --spool_dir works like --spool-dir. */
        for (; k < n && o[k]; k++) {
            char c = name[k] == '_' ? '-' : name[k];
            if (c != o[k])
                break;
        }
        if (k == n && o[k] == '\0')
            return &opts[i];
    }
    return NULL;
}

/* Decimal with an optional unit suffix; false on syntax error or overflow. */
static bool parse_scaled(const char *s, bool bytes, uint64_t *out)
{
    if (!isdigit((unsigned char)*s))
        return false;
    uint64_t v = 0;
    while (isdigit((unsigned char)*s)) {
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
            return false;
        s++;
    }
    uint64_t mul = 1;
    if (*s) {
        char u = (char)tolower((unsigned char)*s);
        if (bytes) {
            mul = u == 'k' ? KIB : u == 'm' ? MIB : u == 'g' ? GIB : u == 't' ? 1024 * GIB : 0;
            s++;
            if (*s == 'b' || *s == 'B')
                s++;
        } else {
            mul = u == 's' ? 1 : u == 'm' ? 60 : u == 'h' ? 3600 : u == 'd' ? 86400 : 0;
            s++;
        }
        if (mul == 0 || *s)
            return false;
    }
    return !__builtin_mul_overflow(v, mul, out);
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, true;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

static bool set_option(struct sqd_config *cfg, const struct sqd_option *o, const char *value,
                       const char *origin, char *msg, size_t msgsize)
{
    void *field = (char *)cfg + o->offset;
    switch (o->type) {
    case SQD_OPT_STRING: {
        char *copy = strdup(value);
        if (!copy) {
            snprintf(msg, msgsize, "%s: out of memory", origin);
            return false;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return true;
    }
    case SQD_OPT_BOOL:
        if (!parse_bool(value, (bool *)field)) {
            snprintf(msg, msgsize, "%s: %s must be yes or no, not \"%s\"", origin, o->name, value);
            return false;
        }
        return true;
    case SQD_OPT_UINT:
    case SQD_OPT_BYTES:
    case SQD_OPT_SECONDS: {
        uint64_t v;
        bool ok = o->type == SQD_OPT_UINT ? parse_scaled(value, false, &v) &&
                                                strspn(value, "0123456789") == strlen(value)
                                          : parse_scaled(value, o->type == SQD_OPT_BYTES, &v);
        if (!ok) {
            snprintf(msg, msgsize, "%s: %s must be %s, not \"%s\"", origin, o->name,
                     o->type == SQD_OPT_UINT    ? "a non-negative integer"
                     : o->type == SQD_OPT_BYTES ? "a size such as 512K, 16M or 1G"
                                                : "a duration such as 30, 30s, 5m or 1h",
                     value);
            return false;
        }
        if (v < o->min || v > o->max) {
            snprintf(msg, msgsize, "%s: %s = %s is out of range [%" PRIu64 ", %" PRIu64 "]", origin,
                     o->name, value, o->min, o->max);
            return false;
        }
        *(uint64_t *)field = v;
        return true;
    }
    }
    return false;
}

bool sqd_config_set(struct sqd_config *cfg, const char *key, const char *value, const char *origin,
                    char *msg, size_t msgsize)
{
    const struct sqd_option *o = find_option(key, strlen(key));
    if (!o) {
        snprintf(msg, msgsize, "%s: unknown key \"%s\" (see squantd --help)", origin, key);
        return false;
    }
    return set_option(cfg, o, value, origin, msg, msgsize);
}

bool sqd_config_defaults(struct sqd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    size_t count;
    const struct sqd_option *opts = sqd_options(&count);
    char msg[256];
    for (size_t i = 0; i < count; i++) {
        if (!set_option(cfg, &opts[i], opts[i].def, "default", msg, sizeof(msg)))
            return false;
    }
    return true;
}

void sqd_config_free(struct sqd_config *cfg)
{
    size_t count;
    const struct sqd_option *opts = sqd_options(&count);
    for (size_t i = 0; i < count; i++) {
        if (opts[i].type == SQD_OPT_STRING) {
            char **p = (char **)((char *)cfg + opts[i].offset);
            free(*p);
            *p = NULL;
        }
    }
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

bool sqd_config_load(struct sqd_config *cfg, const char *path, char *msg, size_t msgsize)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, msgsize, "%s: %s", path, strerror(errno));
        return false;
    }
    bool ok = sqd_config_read(cfg, f, path, msg, msgsize);
    fclose(f);
    return ok;
}

bool sqd_config_read(struct sqd_config *cfg, FILE *f, const char *path, char *msg, size_t msgsize)
{
    char line[4096];
    unsigned lineno = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof(line), f)) {
        lineno++;
        char origin[512];
        snprintf(origin, sizeof(origin), "%s:%u", path, lineno);
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(msg, msgsize, "%s: line too long", origin);
            ok = false;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(msg, msgsize, "%s: expected \"key = value\"", origin);
            ok = false;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        ok = sqd_config_set(cfg, key, value, origin, msg, msgsize);
    }
    if (ok && ferror(f)) {
        snprintf(msg, msgsize, "%s: read error", path);
        ok = false;
    }
    return ok;
}

bool sqd_parse_listen(const char *text, struct sockaddr_storage *ss, size_t *sslen, char *msg,
                      size_t msgsize)
{
    char host[256];
    const char *colon, *port;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
            goto bad;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port = close + 2;
    } else {
        colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof(host) || colon == text)
            goto bad;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        if (strchr(host, ':'))
            goto bad; /* IPv6 needs brackets */
        port = colon + 1;
    }
    uint64_t p;
    if (!parse_scaled(port, false, &p) || strspn(port, "0123456789") != strlen(port) || p > 65535)
        goto bad;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(msg, msgsize, "listen: cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return false;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
bad:
    snprintf(msg, msgsize, "listen: \"%s\" is not HOST:PORT or [IPV6]:PORT", text);
    return false;
}

bool sqd_config_check(const struct sqd_config *cfg, char *msg, size_t msgsize)
{
    struct sockaddr_storage ss;
    size_t len;
    if (!sqd_parse_listen(cfg->listen, &ss, &len, msg, msgsize))
        return false;
    if (!cfg->spool_dir[0]) {
        snprintf(msg, msgsize, "spool-dir must not be empty");
        return false;
    }
    if (cfg->instance[0] && !sqd_instance_valid(cfg->instance, strlen(cfg->instance))) {
        snprintf(msg, msgsize,
                 "instance \"%.80s\" must be 1-%d of a-z, 0-9 and -, not starting or ending "
                 "with -",
                 cfg->instance, SQD_INSTANCE_MAX);
        return false;
    }
    if (cfg->connection_reserve >= cfg->max_connections) {
        snprintf(msg, msgsize,
                 "connection-reserve (%" PRIu64 ") must be less than "
                 "max-connections (%" PRIu64 ")",
                 cfg->connection_reserve, cfg->max_connections);
        return false;
    }
    return true;
}

char *sqd_config_format(const struct sqd_config *cfg, const struct sqd_option *opt)
{
    const void *field = (const char *)cfg + opt->offset;
    char buf[64];
    switch (opt->type) {
    case SQD_OPT_STRING:
        return strdup(*(char *const *)field ? *(char *const *)field : "");
    case SQD_OPT_BOOL:
        return strdup(*(const bool *)field ? "yes" : "no");
    default:
        snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)field);
        return strdup(buf);
    }
}

unsigned sqd_config_threads(const struct sqd_config *cfg)
{
    if (cfg->threads)
        return (unsigned)cfg->threads;
    unsigned n = uv_available_parallelism();
    return n ? (n > 1024 ? 1024 : n) : 1;
}

unsigned sqd_config_active_jobs(const struct sqd_config *cfg)
{
    if (cfg->max_active_jobs)
        return (unsigned)cfg->max_active_jobs;
    return 2 * sqd_config_threads(cfg);
}

void sqd_config_usage(FILE *out)
{
    fprintf(out, "Usage: squantd [--config FILE] [--KEY VALUE | --KEY=VALUE]...\n"
                 "       squantd --check-config [--config FILE] [--KEY VALUE]...\n"
                 "       squantd --version | --help\n\n"
                 "SQuant weight quantization over HTTP. Every configuration key can be given\n"
                 "on the command line, where it overrides the file.\n\n"
                 "  --config FILE       read FILE (squantd.conf syntax) first\n"
                 "  --check-config      check the configuration and exit (0 = valid)\n"
                 "  --version           print the version and exit\n"
                 "  --help              print this text and exit\n\nKeys:\n");
    size_t count;
    const struct sqd_option *opts = sqd_options(&count);
    for (size_t i = 0; i < count; i++) {
        fprintf(out, "  --%s (%s, default \"%s\")\n      %s\n", opts[i].name,
                sqd_opt_type_name(opts[i].type), opts[i].def, opts[i].help);
    }
}

enum sqd_cli_action sqd_config_from_args(struct sqd_config *cfg, int argc, char **argv, char *msg,
                                         size_t msgsize)
{
    enum sqd_cli_action action = SQD_RUN;
    if (!sqd_config_defaults(cfg)) {
        snprintf(msg, msgsize, "out of memory");
        return SQD_CLI_ERROR;
    }
    /* First pass: the file, so that flags override it whatever their order. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0 || strncmp(a, "--config=", 9) == 0) {
            const char *path = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!path) {
                snprintf(msg, msgsize, "--config needs a file name");
                return SQD_CLI_ERROR;
            }
            if (!sqd_config_load(cfg, path, msg, msgsize))
                return SQD_CLI_ERROR;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0)
            continue;
        if (strcmp(a, "--check-config") == 0) {
            action = SQD_CHECK_CONFIG;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return SQD_PRINT_HELP;
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0)
            return SQD_PRINT_VERSION;
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            snprintf(msg, msgsize, "unexpected argument \"%s\" (see squantd --help)", a);
            return SQD_CLI_ERROR;
        }
        const char *key = a + 2, *eq = strchr(key, '='), *value;
        size_t klen = eq ? (size_t)(eq - key) : strlen(key);
        const struct sqd_option *o = find_option(key, klen);
        if (!o) {
            snprintf(msg, msgsize, "unknown option \"%.*s\" (see squantd --help)", (int)klen + 2,
                     a);
            return SQD_CLI_ERROR;
        }
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(msg, msgsize, "--%s needs a value", o->name);
            return SQD_CLI_ERROR;
        }
        char origin[80];
        snprintf(origin, sizeof(origin), "--%s", o->name);
        if (!set_option(cfg, o, value, origin, msg, msgsize))
            return SQD_CLI_ERROR;
    }
    if (!sqd_config_check(cfg, msg, msgsize))
        return SQD_CLI_ERROR;
    return action;
}

/*
 * The job registry: async job records under one lock, their JSON
 * documents, job ids and state names. See registry.h.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "registry.h"
#include "spec.h"

/* ------------------------------------------------------------ ids */

void sqd_random_id(const char *instance, char out[SQD_JOBID_LEN + 1])
{
    size_t pre = 0;
    if (instance && *instance) {
        pre = strnlen(instance, SQD_INSTANCE_MAX);
        memcpy(out, instance, pre);
        out[pre++] = '.';
    }
    uint8_t raw[SQD_JOBID_HEX / 2];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n <= 0) {
            /* No entropy source: fall back on time and address (ids need only be unique). */
            uint64_t t = sqd_now_ns() ^ (uint64_t)(uintptr_t)out;
            for (; got < sizeof(raw); got++, t = t * 6364136223846793005u + 1)
                raw[got] = (uint8_t)(t >> 56);
            break;
        }
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[pre + 2 * i] = hex[raw[i] >> 4];
        out[pre + 2 * i + 1] = hex[raw[i] & 15];
    }
    out[pre + SQD_JOBID_HEX] = '\0';
}

bool sqd_instance_valid(const char *name, size_t len)
{
    if (len == 0 || len > SQD_INSTANCE_MAX || name[0] == '-' || name[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

/* Length of the "INSTANCE." prefix of a valid id (0: none), or -1 if the id is not valid. */
static ptrdiff_t id_prefix(const char *id)
{
    size_t n = strnlen(id, SQD_JOBID_LEN + 1);
    if (n < SQD_JOBID_HEX || n > SQD_JOBID_LEN)
        return -1;
    const char *hex = id + n - SQD_JOBID_HEX;
    if (strspn(hex, "0123456789abcdef") != SQD_JOBID_HEX)
        return -1;
    size_t pre = n - SQD_JOBID_HEX;
    if (pre == 0)
        return 0;
    if (id[pre - 1] != '.' || !sqd_instance_valid(id, pre - 1))
        return -1;
    return (ptrdiff_t)pre;
}

bool sqd_job_id_valid(const char *id)
{
    return id_prefix(id) >= 0;
}

bool sqd_job_id_owned(const char *instance, const char *id)
{
    ptrdiff_t pre = id_prefix(id);
    if (pre < 0)
        return false;
    size_t ilen = instance ? strlen(instance) : 0;
    if (pre == 0)
        return ilen == 0;
    return (size_t)pre == ilen + 1 && memcmp(id, instance, ilen) == 0;
}

/* ------------------------------------------------------------ states */

static const char *const state_names[SQD_STATES] = {"queued", "running", "done", "failed",
                                                    "cancelled"};

const char *sqd_state_name(enum sqd_job_state s)
{
    return (unsigned)s < SQD_STATES ? state_names[s] : "unknown";
}

/* ------------------------------------------------------------ the registry */

bool sqd_reg_init(struct sqd_registry *reg)
{
    reg->recs = NULL;
    reg->n = reg->cap = 0;
    return uv_mutex_init(&reg->lock) == 0;
}

void sqd_reg_free(struct sqd_registry *reg)
{
    while (reg->n)
        sqd_reg_remove(reg, reg->recs[reg->n - 1]);
    free(reg->recs);
    reg->recs = NULL;
    reg->cap = 0;
}

struct sqd_jobrec *sqd_reg_find(struct sqd_registry *reg, const char *id)
{
    for (size_t i = 0; i < reg->n; i++) {
        if (strcmp(reg->recs[i]->id, id) == 0)
            return reg->recs[i];
    }
    return NULL;
}

bool sqd_reg_add(struct sqd_registry *reg, struct sqd_jobrec *rec)
{
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? 2 * reg->cap : 64;
        struct sqd_jobrec **p = realloc(reg->recs, cap * sizeof(*p));
        if (!p)
            return false;
        reg->recs = p;
        reg->cap = cap;
    }
    reg->recs[reg->n++] = rec;
    return true;
}

void sqd_reg_remove(struct sqd_registry *reg, struct sqd_jobrec *rec)
{
    for (size_t i = 0; i < reg->n; i++) {
        if (reg->recs[i] == rec) {
            reg->recs[i] = reg->recs[--reg->n];
            break;
        }
    }
    json_decref(rec->error);
    free(rec);
}

size_t sqd_reg_count(struct sqd_registry *reg, enum sqd_job_state state)
{
    size_t n = 0;
    uv_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n; i++)
        n += reg->recs[i]->state == state;
    uv_mutex_unlock(&reg->lock);
    return n;
}

/* ------------------------------------------------------------ records as JSON */

static json_t *iso_time(int64_t t)
{
    if (t <= 0)
        return json_null();
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static int64_t parse_iso(const char *s)
{
    struct tm tm = {0};
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

json_t *sqd_jobrec_json(const struct sqd_jobrec *rec)
{
    json_t *doc = json_pack(
        "{s:s, s:s, s:o, s:o, s:{s:I, s:I}, s:{s:I, s:I}, s:{s:f, s:f, s:f, s:f}}", "id", rec->id,
        "state", sqd_state_name(rec->state), "created_at", iso_time(rec->created), "finished_at",
        iso_time(rec->finished), "layers", "done", (json_int_t)rec->layers_done, "total",
        (json_int_t)rec->layers_total, "items", "done", (json_int_t)rec->items_done, "total",
        (json_int_t)rec->items_total, "timings_ms", "queued", rec->ms_queued, "parse",
        rec->ms_parse, "quantize", rec->ms_quantize, "write", rec->ms_write);
    if (!doc)
        return NULL;
    if (rec->state == SQD_DONE) {
        char url[SQD_JOBID_LEN + 32];
        snprintf(url, sizeof(url), "/v1/jobs/%s/result", rec->id);
        json_object_set_new(doc, "result",
                            json_pack("{s:s, s:s, s:s, s:I}", "url", url, "format",
                                      sq_format_name(rec->out_format), "content_type",
                                      sqd_format_mime(rec->out_format), "bytes",
                                      (json_int_t)rec->result_bytes));
    }
    if (rec->error)
        json_object_set(doc, "error", rec->error);
    return doc;
}

/* Read back what state_json wrote (state.json). */
bool sqd_jobrec_from_json(struct sqd_jobrec *rec, json_t *j)
{
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *state = json_string_value(json_object_get(j, "state"));
    if (!id || !sqd_job_id_valid(id) || !state)
        return false;
    snprintf(rec->id, sizeof(rec->id), "%s", id);
    const char *owner = json_string_value(json_object_get(j, "owner"));
    if (owner) {
        if (strlen(owner) != SQD_OWNER_LEN || strspn(owner, "0123456789abcdef") != SQD_OWNER_LEN)
            return false;
        memcpy(rec->owner, owner, SQD_OWNER_LEN + 1);
    }
    rec->state = SQD_STATES;
    for (int s = 0; s < SQD_STATES; s++) {
        if (strcmp(state, sqd_state_name((enum sqd_job_state)s)) == 0)
            rec->state = (enum sqd_job_state)s;
    }
    if (rec->state == SQD_STATES)
        return false;
    rec->created = parse_iso(json_string_value(json_object_get(j, "created_at")));
    rec->finished = parse_iso(json_string_value(json_object_get(j, "finished_at")));
    json_t *layers = json_object_get(j, "layers"), *items = json_object_get(j, "items");
    json_t *t = json_object_get(j, "timings_ms"), *res = json_object_get(j, "result");
    rec->layers_done = (size_t)json_integer_value(json_object_get(layers, "done"));
    rec->layers_total = (size_t)json_integer_value(json_object_get(layers, "total"));
    rec->items_done = (size_t)json_integer_value(json_object_get(items, "done"));
    rec->items_total = (size_t)json_integer_value(json_object_get(items, "total"));
    rec->ms_queued = json_number_value(json_object_get(t, "queued"));
    rec->ms_parse = json_number_value(json_object_get(t, "parse"));
    rec->ms_quantize = json_number_value(json_object_get(t, "quantize"));
    rec->ms_write = json_number_value(json_object_get(t, "write"));
    rec->out_format = SQ_FORMAT_SAFETENSORS;
    if (res) {
        const char *f = json_string_value(json_object_get(res, "format"));
        if (f)
            sq_format_from_name(f, &rec->out_format);
        rec->result_bytes = (uint64_t)json_integer_value(json_object_get(res, "bytes"));
    }
    json_t *e = json_object_get(j, "error");
    rec->error = json_is_object(e) ? json_incref(e) : NULL;
    return true;
}

/*
 * What a quantize request asks for: how to read its body (Content-Type,
 * dtype, shape, name) and the options for sq_options_set. Every value
 * comes from the network and is checked here before anything uses it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spec.h"
#include "util.h"

#define SQD_NAME_MAX 256
#define SQD_OPTS_MAX 256

void sqd_spec_init(struct sqd_spec *s)
{
    memset(s, 0, sizeof(*s));
    s->input = SQ_FORMAT_AUTO;
}

void sqd_spec_free(struct sqd_spec *s)
{
    for (size_t i = 0; i < s->nopts; i++) {
        free(s->opts[i].key);
        free(s->opts[i].value);
    }
    free(s->opts);
    free(s->name);
    for (size_t i = 0; i < s->nparts; i++)
        free(s->parts[i].name);
    free(s->parts);
    free(s->ext);
    sqd_spec_init(s);
}

#define SQD_PARTS_MAX 1024

enum sq_status sqd_spec_add_part(struct sqd_spec *s, const char *name, uint64_t off,
                                 struct sq_error *err)
{
    for (size_t i = 0; i < s->nparts; i++)
        if (strcmp(s->parts[i].name, name) == 0)
            return sqi_fail(err, SQ_ERR_ARG, "the multipart body has two parts named '%.100s'",
                            name);
    if (s->nparts >= SQD_PARTS_MAX)
        return sqi_fail(err, SQ_ERR_LIMIT, "more than %d external data parts", SQD_PARTS_MAX);
    struct sqd_part *p = realloc(s->parts, (s->nparts + 1) * sizeof *p);
    if (!p)
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    s->parts = p;
    if (!(p[s->nparts].name = strdup(name)))
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    p[s->nparts].off = off;
    p[s->nparts].len = 0;
    s->nparts++;
    s->sliced = true;
    return SQ_OK;
}

static enum sq_status add_opt(struct sqd_spec *s, const char *key, const char *value,
                              struct sq_error *err)
{
    if (s->nopts >= SQD_OPTS_MAX)
        return sqi_fail(err, SQ_ERR_ARG, "more than %d parameters", SQD_OPTS_MAX);
    struct sqd_kv *p = realloc(s->opts, (s->nopts + 1) * sizeof(*p));
    if (!p)
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    s->opts = p;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
    }
    s->opts[s->nopts].key = k;
    s->opts[s->nopts].value = v;
    s->nopts++;
    if (strcmp(key, "format") == 0)
        s->have_format = true;
    return SQ_OK;
}

/* "64,64,3,3": 1..SQ_MAX_RANK positive decimal dimensions. */
static enum sq_status parse_shape(struct sqd_spec *s, const char *v, struct sq_error *err)
{
    unsigned rank = 0;
    const char *p = v;
    int64_t shape[SQ_MAX_RANK];
    for (;;) {
        if (!isdigit((unsigned char)*p))
            goto bad;
        uint64_t d = 0;
        while (isdigit((unsigned char)*p)) {
            if (__builtin_mul_overflow(d, 10, &d) ||
                __builtin_add_overflow(d, (uint64_t)(*p - '0'), &d) || d > INT64_MAX)
                return sqi_fail(err, SQ_ERR_ARG, "shape: dimension too large in '%.64s'", v);
            p++;
        }
        if (d == 0)
            return sqi_fail(err, SQ_ERR_ARG, "shape: dimensions must be at least 1 in '%.64s'", v);
        if (rank == SQ_MAX_RANK)
            return sqi_fail(err, SQ_ERR_ARG, "shape: more than %d dimensions", SQ_MAX_RANK);
        shape[rank++] = (int64_t)d;
        if (*p == '\0')
            break;
        if (*p != ',' && *p != 'x')
            goto bad;
        p++;
    }
    memcpy(s->shape, shape, sizeof(shape));
    s->rank = rank;
    return SQ_OK;
bad:
    return sqi_fail(err, SQ_ERR_ARG,
                    "shape must be dimensions separated by commas (e.g. 64,64,3,3), "
                    "not '%.64s'",
                    v);
}

enum sq_status sqd_spec_param(struct sqd_spec *s, const char *key, const char *value,
                              struct sq_error *err)
{
    if (!value)
        return sqi_fail(err, SQ_ERR_ARG, "parameter '%.64s' needs a value", key);
    if (strcmp(key, "dtype") == 0) {
        enum sq_dtype d;
        if (sq_dtype_from_name(value, &d) != SQ_OK || !sq_dtype_is_quantizable(d))
            return sqi_fail(err, SQ_ERR_ARG, "dtype must be F32, F16, BF16 or F64, not '%.32s'",
                            value);
        s->dtype = d;
        s->have_dtype = true;
        return SQ_OK;
    }
    if (strcmp(key, "shape") == 0)
        return parse_shape(s, value, err);
    if (strcmp(key, "name") == 0) {
        size_t n = strlen(value);
        if (n == 0 || n > SQD_NAME_MAX)
            return sqi_fail(err, SQ_ERR_ARG, "name must be 1 to %d bytes", SQD_NAME_MAX);
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
                return sqi_fail(err, SQ_ERR_ARG, "name contains a control character");
        }
        char *copy = strdup(value);
        if (!copy)
            return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
        free(s->name);
        s->name = copy;
        return SQ_OK;
    }
    return add_opt(s, key, value, err);
}

/* One JSON value as option text: strings as is, integers in decimal. */
static enum sq_status json_param(struct sqd_spec *s, const char *key, json_t *v,
                                 struct sq_error *err)
{
    char num[32];
    if (json_is_string(v))
        return sqd_spec_param(s, key, json_string_value(v), err);
    if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        return sqd_spec_param(s, key, num, err);
    }
    return sqi_fail(err, SQ_ERR_ARG, "options: '%.64s' must be a string or an integer", key);
}

enum sq_status sqd_spec_json(struct sqd_spec *s, const char *text, size_t len, struct sq_error *err)
{
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return sqi_fail(err, SQ_ERR_ARG, "options: invalid JSON at line %d column %d: %s", je.line,
                        je.column, je.text);
    enum sq_status st = SQ_OK;
    if (!json_is_object(doc)) {
        st = sqi_fail(err, SQ_ERR_ARG, "options must be a JSON object");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if (json_is_array(v) && strcmp(key, "shape") == 0) {
            /* [64, 64, 3, 3] */
            char buf[SQ_MAX_RANK * 21 + 1] = "";
            size_t i, off = 0;
            json_t *d;
            if (json_array_size(v) == 0 || json_array_size(v) > SQ_MAX_RANK) {
                st = sqi_fail(err, SQ_ERR_ARG, "options: shape must have 1 to %d dimensions",
                              SQ_MAX_RANK);
                goto out;
            }
            json_array_foreach(v, i, d)
            {
                if (!json_is_integer(d) || json_integer_value(d) < 1) {
                    st = sqi_fail(err, SQ_ERR_ARG,
                                  "options: shape dimensions must be integers >= 1");
                    goto out;
                }
                off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%lld", i ? "," : "",
                                        (long long)json_integer_value(d));
            }
            st = sqd_spec_param(s, key, buf, err);
        } else if (json_is_array(v)) {
            /* include/exclude lists: one option per element */
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if ((st = json_param(s, key, e, err)) != SQ_OK)
                    goto out;
            }
        } else if (json_is_object(v) &&
                   (strcmp(key, "bits_for") == 0 || strcmp(key, "group_for") == 0)) {
            /* {"fc.*": 8} */
            const char *pat;
            json_t *bits;
            json_object_foreach(v, pat, bits)
            {
                char rule[1100];
                if (!json_is_integer(bits)) {
                    st = sqi_fail(err, SQ_ERR_ARG, "options: %s values must be integers", key);
                    goto out;
                }
                if ((size_t)snprintf(rule, sizeof(rule), "%s=%lld", pat,
                                     (long long)json_integer_value(bits)) >= sizeof(rule)) {
                    st = sqi_fail(err, SQ_ERR_ARG, "options: %s pattern too long", key);
                    goto out;
                }
                if ((st = sqd_spec_param(s, key, rule, err)) != SQ_OK)
                    goto out;
            }
        } else {
            st = json_param(s, key, v, err);
        }
        if (st != SQ_OK)
            goto out;
    }
out:
    json_decref(doc);
    return st;
}

/* Compare the media type of a Content-Type (before ';', trimmed) case-insensitively. */
static bool media_is(const char *ct, const char *type)
{
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strlen(type);
    if (strncasecmp(ct, type, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

enum sqd_ctype sqd_ctype_parse(const char *ct)
{
    if (!ct || !*ct)
        return SQD_CT_NONE;
    if (media_is(ct, "application/x-npy") || media_is(ct, "application/npy"))
        return SQD_CT_NPY;
    if (media_is(ct, "application/vnd.safetensors") || media_is(ct, "application/safetensors"))
        return SQD_CT_SAFETENSORS;
    if (media_is(ct, "application/onnx") || media_is(ct, "application/x-onnx"))
        return SQD_CT_ONNX;
    if (media_is(ct, "application/octet-stream"))
        return SQD_CT_RAW;
    if (media_is(ct, "multipart/form-data"))
        return SQD_CT_MULTIPART;
    /* curl --data-binary without -H sends this; the magic bytes decide. */
    if (media_is(ct, "application/x-www-form-urlencoded"))
        return SQD_CT_OTHER;
    return SQD_CT_UNSUPPORTED;
}

const char *sqd_format_mime(enum sq_format f)
{
    switch (f) {
    case SQ_FORMAT_NPY:
        return "application/x-npy";
    case SQ_FORMAT_JSON:
        return "application/json";
    case SQ_FORMAT_SAFETENSORS:
        return "application/vnd.safetensors";
    case SQ_FORMAT_ONNX:
        return "application/onnx";
    default:
        return "application/octet-stream";
    }
}

/*
 * Accept (RFC 9110 12.5.1): each of the formats we write gets the q-value of
 * the most specific media range that matches it (type/subtype, then a type
 * wildcard, then the full wildcard); unmatched ones get 0 once an Accept is given. The best q
 * wins; ties go to an explicit range, then to the earlier one in the
 * header, then to the order below (safetensors first: the default).
 */
static const struct {
    enum sq_format f;
    const char *mime, *alias;
} writable[] = {
    {SQ_FORMAT_SAFETENSORS, "application/vnd.safetensors", "application/safetensors"},
    {SQ_FORMAT_NPY, "application/x-npy", "application/npy"},
    {SQ_FORMAT_JSON, "application/json", NULL},
    {SQ_FORMAT_ONNX, "application/onnx", NULL},
};
#define NWRITABLE (sizeof(writable) / sizeof(writable[0]))

struct accept_score {
    int spec; /* 0 none, 1 * / *, 2 application/ *, 3 exact */
    int q;    /* thousandths */
    int pos;  /* index of the item in the header */
};

/* The q parameter in thousandths; 1000 when absent, -1 when malformed. */
static int accept_q(const char *params, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (params[i] == ';' || params[i] == ' ' || params[i] == '\t'))
            i++;
        size_t start = i;
        while (i < n && params[i] != ';')
            i++;
        const char *p = params + start;
        size_t len = i - start;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            p += 2;
            len -= 2;
            if (len == 0 || len > 5 || (p[0] != '0' && p[0] != '1'))
                return -1;
            int q = (p[0] - '0') * 1000;
            if (len > 1) {
                if (p[1] != '.')
                    return -1;
                int scale = 100;
                for (size_t k = 2; k < len; k++, scale /= 10) {
                    if (p[k] < '0' || p[k] > '9')
                        return -1;
                    q += (p[k] - '0') * scale;
                }
            }
            return q > 1000 ? -1 : q;
        }
    }
    return 1000;
}

static bool range_is(const char *r, size_t n, const char *type)
{
    return type && strlen(type) == n && strncasecmp(r, type, n) == 0;
}

/* Score every writable format against the header. False if it has no usable item. */
static bool accept_scores(const char *accept, struct accept_score sc[NWRITABLE])
{
    memset(sc, 0, NWRITABLE * sizeof(*sc));
    bool any = false;
    int pos = 0;
    for (const char *p = accept; p && *p; pos++) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *semi = memchr(p, ';', n);
        size_t rn = semi ? (size_t)(semi - p) : n;
        const char *r = p;
        while (rn && (*r == ' ' || *r == '\t')) {
            r++;
            rn--;
        }
        while (rn && (r[rn - 1] == ' ' || r[rn - 1] == '\t'))
            rn--;
        int q = semi ? accept_q(semi, n - (size_t)(semi - p)) : 1000;
        p = end ? end + 1 : NULL;
        if (rn == 0 || q < 0)
            continue;
        any = true;
        int spec = range_is(r, rn, "*/*") ? 1 : range_is(r, rn, "application/*") ? 2 : 3;
        for (size_t f = 0; f < NWRITABLE; f++) {
            if (spec == 3 && !range_is(r, rn, writable[f].mime) &&
                !range_is(r, rn, writable[f].alias))
                continue;
            if (spec > sc[f].spec) {
                sc[f].spec = spec;
                sc[f].q = q;
                sc[f].pos = pos;
            }
        }
    }
    return any;
}

bool sqd_accept_format(const char *accept, enum sq_format *out)
{
    *out = SQ_FORMAT_AUTO;
    struct accept_score sc[NWRITABLE];
    if (!accept || !accept_scores(accept, sc))
        return true; /* no preference */
    size_t best = NWRITABLE;
    for (size_t f = 0; f < NWRITABLE; f++) {
        if (sc[f].q <= 0)
            continue;
        if (best == NWRITABLE || sc[f].q > sc[best].q ||
            (sc[f].q == sc[best].q &&
             ((sc[f].spec == 3) > (sc[best].spec == 3) ||
              ((sc[f].spec == 3) == (sc[best].spec == 3) && sc[f].pos < sc[best].pos))))
            best = f;
    }
    if (best == NWRITABLE)
        return false; /* nothing we write is acceptable: 406 */
    /* A wildcard that admits the default is no preference. */
    if (sc[best].spec < 3 && writable[best].f == SQ_FORMAT_SAFETENSORS)
        return true;
    *out = writable[best].f;
    return true;
}

bool sqd_accept_allows(const char *accept, enum sq_format f)
{
    struct accept_score sc[NWRITABLE];
    if (!accept || !accept_scores(accept, sc))
        return true;
    for (size_t i = 0; i < NWRITABLE; i++)
        if (writable[i].f == f)
            return sc[i].q > 0;
    return false;
}

enum sq_status sqd_spec_options(const struct sqd_spec *s, struct sq_options *opt,
                                struct sq_error *err)
{
    for (size_t i = 0; i < s->nopts; i++) {
        enum sq_status st = sq_options_set(opt, s->opts[i].key, s->opts[i].value, err);
        if (st != SQ_OK)
            return st;
    }
    if (s->input == SQ_FORMAT_RAW && (!s->have_dtype || s->rank == 0))
        return sqi_fail(
            err, SQ_ERR_ARG,
            "a raw body (application/octet-stream) needs the dtype and shape parameters");
    if (s->input != SQ_FORMAT_RAW && s->input != SQ_FORMAT_AUTO && (s->have_dtype || s->rank))
        return sqi_fail(err, SQ_ERR_ARG, "dtype and shape apply to raw input only; this body is %s",
                        sq_format_name(s->input));
    return SQ_OK;
}

enum sq_status sqd_spec_parse(struct sqd_spec *s, const struct sq_limits *limits,
                              const uint8_t *data, size_t len, struct sq_model *model,
                              struct sq_error *err)
{
    const char *name = s->name ? s->name : "weight";
    if (s->sliced) { /* the model and its external data are slices of the body */
        if (s->model_off > len || s->model_len > len - s->model_off)
            return sqi_fail(err, SQ_ERR_FORMAT, "the stored request does not match its body");
        free(s->ext);
        if (!(s->ext = calloc(s->nparts + 1, sizeof *s->ext)))
            return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < s->nparts; i++) {
            if (s->parts[i].off > len || s->parts[i].len > len - s->parts[i].off)
                return sqi_fail(err, SQ_ERR_FORMAT, "the stored request does not match its body");
            s->ext[i] = (struct sq_external){s->parts[i].name, data + s->parts[i].off,
                                             (size_t)s->parts[i].len};
        }
        data += s->model_off;
        len = (size_t)s->model_len;
        if (sq_format_detect(data, len) != SQ_FORMAT_ONNX && s->input != SQ_FORMAT_ONNX)
            return sqi_fail(err, SQ_ERR_ARG,
                            "file parts besides 'model' are external data of an ONNX model; "
                            "the model part is not ONNX");
        return sq_onnx_parse(data, len, s->ext, s->nparts, limits, model, err);
    }
    enum sq_format f = s->input;
    if (f == SQ_FORMAT_AUTO) {
        f = sq_format_detect(data, len);
        if (f == SQ_FORMAT_AUTO) {
            if (s->have_dtype && s->rank)
                f = SQ_FORMAT_RAW;
            else if (len == 0)
                return sqi_fail(err, SQ_ERR_FORMAT, "the request has no body");
            else if (s->octet)
                return sqi_fail(err, SQ_ERR_ARG,
                                "a raw body (application/octet-stream) needs the dtype and shape "
                                "parameters");
            else
                return sqi_fail(err, SQ_ERR_UNSUPPORTED,
                                "unknown input format: send Content-Type application/x-npy, "
                                "application/vnd.safetensors, application/onnx, or "
                                "application/octet-stream with dtype and shape");
        }
    }
    if (f == SQ_FORMAT_RAW)
        return sq_raw_parse(data, len, s->dtype, s->rank, s->shape, limits, name, model, err);
    return sq_model_parse(data, len, f, limits, name, model, err);
}

json_t *sqd_spec_to_json(const struct sqd_spec *s)
{
    json_t *opts = json_array(), *shape = json_array();
    for (size_t i = 0; i < s->nopts; i++)
        json_array_append_new(opts, json_pack("[ss]", s->opts[i].key, s->opts[i].value));
    for (unsigned i = 0; i < s->rank; i++)
        json_array_append_new(shape, json_integer(s->shape[i]));
    json_t *j = json_pack("{s:s, s:o, s:o}", "input", sq_format_name(s->input), "shape", shape,
                          "options", opts);
    if (j && s->have_dtype)
        json_object_set_new(j, "dtype", json_string(sq_dtype_name(s->dtype)));
    if (j && s->name)
        json_object_set_new(j, "name", json_string(s->name));
    if (j && s->octet)
        json_object_set_new(j, "octet", json_true());
    if (j && s->sliced) {
        json_t *parts = json_array();
        for (size_t i = 0; parts && i < s->nparts; i++)
            json_array_append_new(parts,
                                  json_pack("[sII]", s->parts[i].name, (json_int_t)s->parts[i].off,
                                            (json_int_t)s->parts[i].len));
        json_object_set_new(j, "model_slice",
                            json_pack("[II]", (json_int_t)s->model_off, (json_int_t)s->model_len));
        json_object_set_new(j, "parts", parts);
    }
    return j;
}

enum sq_status sqd_spec_from_json(struct sqd_spec *s, json_t *j, struct sq_error *err)
{
    const char *input = json_string_value(json_object_get(j, "input"));
    json_t *opts = json_object_get(j, "options"), *shape = json_object_get(j, "shape");
    if (!input || !json_is_array(opts) || !json_is_array(shape))
        return sqi_fail(err, SQ_ERR_FORMAT, "request.json is incomplete");
    s->octet = json_is_true(json_object_get(j, "octet"));
    if (sq_format_from_name(input, &s->input) != SQ_OK)
        return sqi_fail(err, SQ_ERR_FORMAT, "request.json: bad input format");
    enum sq_status st;
    const char *dtype = json_string_value(json_object_get(j, "dtype"));
    const char *name = json_string_value(json_object_get(j, "name"));
    if (dtype && (st = sqd_spec_param(s, "dtype", dtype, err)) != SQ_OK)
        return st;
    if (name && (st = sqd_spec_param(s, "name", name, err)) != SQ_OK)
        return st;
    size_t i;
    json_t *e;
    json_array_foreach(shape, i, e)
    {
        if (i >= SQ_MAX_RANK || !json_is_integer(e) || json_integer_value(e) < 1)
            return sqi_fail(err, SQ_ERR_FORMAT, "request.json: bad shape");
        s->shape[i] = json_integer_value(e);
        s->rank = (unsigned)i + 1;
    }
    json_array_foreach(opts, i, e)
    {
        const char *k = json_string_value(json_array_get(e, 0));
        const char *v = json_string_value(json_array_get(e, 1));
        if (!k || !v)
            return sqi_fail(err, SQ_ERR_FORMAT, "request.json: bad option");
        if ((st = add_opt(s, k, v, err)) != SQ_OK)
            return st;
    }
    json_t *slice = json_object_get(j, "model_slice"), *parts = json_object_get(j, "parts");
    if (slice) {
        json_int_t o = json_integer_value(json_array_get(slice, 0));
        json_int_t l = json_integer_value(json_array_get(slice, 1));
        if (!json_is_array(parts) || o < 0 || l < 0)
            return sqi_fail(err, SQ_ERR_FORMAT, "request.json: bad model_slice");
        s->sliced = true;
        s->model_off = (uint64_t)o;
        s->model_len = (uint64_t)l;
        json_array_foreach(parts, i, e)
        {
            const char *k = json_string_value(json_array_get(e, 0));
            json_int_t po = json_integer_value(json_array_get(e, 1));
            json_int_t pl = json_integer_value(json_array_get(e, 2));
            if (!k || po < 0 || pl < 0)
                return sqi_fail(err, SQ_ERR_FORMAT, "request.json: bad part");
            if ((st = sqd_spec_add_part(s, k, (uint64_t)po, err)) != SQ_OK)
                return st;
            s->parts[s->nparts - 1].len = (uint64_t)pl;
        }
    }
    return SQ_OK;
}

/*
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * (padded with spaces), then the data section. The JSON object maps each
 * tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the data section) and may hold "__metadata__", an object of
 * strings.
 *
 * Parsing keeps the header's order of tensors: jansson (>= 2.13, which
 * configure requires) iterates an object in insertion order, which is the
 * order of the text.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "formats.h"

#define META_KEY "__metadata__"

struct entry {
    const char *name;
    size_t name_len;
    enum sq_dtype dtype;
    unsigned rank;
    int64_t shape[SQ_MAX_RANK];
    size_t nelems, nbytes;
    uint64_t begin, end;
};

struct parse {
    const uint8_t *buf;
    size_t len;
    uint64_t hlen; /* header bytes */
    size_t dstart; /* file offset of the data section */
    size_t dlen;   /* bytes in the data section */
    const struct sq_limits *lim;
    struct sq_error *err;
    json_t *root;
    struct entry *entries;
    size_t count;
    json_t *meta;
};

static enum sq_status nomem(struct sq_error *err)
{
    return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory reading safetensors");
}

static enum sq_status parse_meta(struct parse *p, json_t *meta)
{
    if (json_is_null(meta))
        return SQ_OK; /* what the reference implementation reads as "no metadata" */
    if (!json_is_object(meta))
        return sqi_fail_at(p->err, SQ_ERR_FORMAT, NULL, 8,
                           "safetensors header: \"" META_KEY "\" must be an object of strings");
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v)
    {
        if (!json_is_string(v))
            return sqi_fail_at(
                p->err, SQ_ERR_FORMAT, NULL, 8,
                "safetensors header: the " META_KEY " value of '%.80s' is not a string", k);
    }
    p->meta = meta;
    return SQ_OK;
}

/* A JSON integer in [0, INT64_MAX], or -1. */
static int64_t json_nonneg(const json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return (int64_t)json_integer_value(v);
}

static enum sq_status parse_entry(struct parse *p, const char *name, json_t *v, struct entry *e,
                                  uint64_t *total)
{
    struct sq_error *err = p->err;
    size_t nlen = strlen(name);
    if (nlen == 0)
        return sqi_fail_at(err, SQ_ERR_FORMAT, NULL, 8,
                           "safetensors header: a tensor has an empty name");
    if (nlen > p->lim->max_name_bytes)
        return sqi_fail_at(err, SQ_ERR_LIMIT, name, 8,
                           "tensor name of %zu bytes is above the limit %zu (max_name_bytes)", nlen,
                           p->lim->max_name_bytes);
    e->name = name;
    e->name_len = nlen;
    if (!json_is_object(v))
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, 8,
                           "tensor '%.100s': its header entry is not a JSON object", name);
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        if (strcmp(k, "dtype") != 0 && strcmp(k, "shape") != 0 && strcmp(k, "data_offsets") != 0)
            return sqi_fail_at(err, SQ_ERR_FORMAT, name, 8,
                               "tensor '%.100s': unknown key '%.40s' (expected dtype, shape, "
                               "data_offsets)",
                               name, k);
    }

    json_t *dtype = json_object_get(v, "dtype");
    if (!json_is_string(dtype))
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, 8,
                           "tensor '%.100s': \"dtype\" is missing or not a string", name);
    if (sq_dtype_from_name(json_string_value(dtype), &e->dtype) != SQ_OK)
        return sqi_fail_at(err, SQ_ERR_DTYPE, name, 8, "tensor '%.100s': unknown dtype '%.40s'",
                           name, json_string_value(dtype));

    json_t *shape = json_object_get(v, "shape");
    if (!json_is_array(shape))
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, 8,
                           "tensor '%.100s': \"shape\" is missing or not an array", name);
    size_t rank = json_array_size(shape);
    if (rank > p->lim->max_rank)
        return sqi_fail_at(err, SQ_ERR_LIMIT, name, 8,
                           "tensor '%.100s': rank %zu is above the limit %u (max_rank)", name, rank,
                           p->lim->max_rank);
    e->rank = (unsigned)rank;
    for (size_t i = 0; i < rank; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d))
            return sqi_fail_at(err, SQ_ERR_FORMAT, name, 8,
                               "tensor '%.100s': dimension %zu of \"shape\" is not an integer",
                               name, i);
        e->shape[i] = (int64_t)json_integer_value(d);
    }
    enum sq_status st = sqi_check_shape(p->lim, e->rank, e->shape, total, &e->nelems, name, 8, err);
    if (st != SQ_OK)
        return st;
    if (!sqi_mul(e->nelems, sq_dtype_size(e->dtype), &e->nbytes))
        return sqi_fail_at(err, SQ_ERR_LIMIT, name, 8, "tensor '%.100s': its size overflows", name);

    json_t *off = json_object_get(v, "data_offsets");
    int64_t b = -1, end = -1;
    if (json_is_array(off) && json_array_size(off) == 2) {
        b = json_nonneg(json_array_get(off, 0));
        end = json_nonneg(json_array_get(off, 1));
    }
    if (b < 0 || end < 0)
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, 8,
                           "tensor '%.100s': \"data_offsets\" must be [begin, end] of non-negative "
                           "integers",
                           name);
    if (b > end)
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, 8,
                           "tensor '%.100s': data_offsets [%" PRId64 ", %" PRId64
                           "] end before they "
                           "begin",
                           name, b, end);
    if ((uint64_t)end > p->dlen)
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, (int64_t)p->dstart,
                           "tensor '%.100s': data_offsets [%" PRId64 ", %" PRId64
                           "] run past the end of the %zu-byte data section",
                           name, b, end, p->dlen);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)end;
    if (e->end - e->begin != e->nbytes) {
        char s[96];
        sqi_shape_str(s, sizeof s, e->rank, e->shape);
        return sqi_fail_at(
            err, SQ_ERR_SHAPE, name, (int64_t)(p->dstart + e->begin),
            "tensor '%.100s': shape %s of %s needs %zu bytes, but data_offsets [%" PRId64
            ", %" PRId64 "] hold %" PRIu64,
            name, s, sq_dtype_name(e->dtype), e->nbytes, b, end, e->end - e->begin);
    }
    return SQ_OK;
}

/* Where a tensor's bytes lie; sorted to check that the tensors tile the data section. */
struct span {
    uint64_t begin, end;
    size_t index;
};

static int by_offsets(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : 1;
}

/* The tensors must cover the data section exactly: no gap, no overlap, nothing left over. */
static enum sq_status check_tiling(struct parse *p)
{
    struct span *s = NULL;
    size_t bytes;
    if (p->count && (!sqi_mul(p->count, sizeof *s, &bytes) || !(s = malloc(bytes))))
        return nomem(p->err);
    for (size_t i = 0; i < p->count; i++)
        s[i] = (struct span){p->entries[i].begin, p->entries[i].end, i};
    if (p->count > 1)
        qsort(s, p->count, sizeof *s, by_offsets);
    enum sq_status st = SQ_OK;
    uint64_t at = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < p->count && st == SQ_OK; i++) {
        const struct entry *e = &p->entries[s[i].index];
        if (e->begin > at)
            st = sqi_fail_at(p->err, SQ_ERR_FORMAT, e->name, (int64_t)(p->dstart + at),
                             "safetensors data: a gap of %" PRIu64 " bytes at data byte %" PRIu64
                             ", before tensor '%.100s'",
                             e->begin - at, at, e->name);
        else if (e->begin < at)
            st = sqi_fail_at(p->err, SQ_ERR_FORMAT, e->name, (int64_t)(p->dstart + e->begin),
                             "safetensors data: tensor '%.100s' at data bytes [%" PRIu64
                             ", %" PRIu64 "] overlaps tensor '%.100s'",
                             e->name, e->begin, e->end, prev ? prev : "");
        at = e->end;
        prev = e->name;
    }
    if (st == SQ_OK && at != p->dlen)
        st = sqi_fail_at(p->err, SQ_ERR_FORMAT, NULL, (int64_t)(p->dstart + at),
                         "safetensors data: the tensors cover %" PRIu64
                         " bytes of the %zu-byte data section, %" PRIu64 " bytes are left over",
                         at, p->dlen, p->dlen - at);
    free(s);
    return st;
}

static enum sq_status parse_root(struct parse *p, struct sq_model *model)
{
    struct sq_error *err = p->err;
    size_t size = json_object_size(p->root);
    json_t *meta = json_object_get(p->root, META_KEY);
    size_t ntensors = size - (meta != NULL);
    if (ntensors > p->lim->max_tensors)
        return sqi_fail_at(err, SQ_ERR_LIMIT, NULL, 8,
                           "safetensors header lists %zu tensors, above the limit %zu "
                           "(max_tensors)",
                           ntensors, p->lim->max_tensors);
    size_t bytes;
    if (ntensors &&
        (!sqi_mul(ntensors, sizeof *p->entries, &bytes) || !(p->entries = malloc(bytes))))
        return nomem(err);

    enum sq_status st;
    uint64_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(p->root, k, v)
    {
        if (strcmp(k, META_KEY) == 0)
            st = parse_meta(p, v);
        else
            st = parse_entry(p, k, v, &p->entries[p->count++], &total);
        if (st != SQ_OK)
            return st;
    }
    if ((st = check_tiling(p)) != SQ_OK)
        return st;

    if ((st = sqi_model_reserve(model, p->count, err)) != SQ_OK)
        return st;
    for (size_t i = 0; i < p->count && st == SQ_OK; i++) {
        const struct entry *e = &p->entries[i];
        st = sqi_model_push(model, e->name, e->name_len, e->dtype, e->rank, e->shape, e->nelems,
                            p->buf + p->dstart + e->begin, e->nbytes, NULL, err);
    }
    if (p->meta)
        json_object_foreach(p->meta, k, v)
        {
            if (st == SQ_OK)
                st = sqi_model_push_meta(model, k, json_string_value(v), err);
        }
    return st;
}

static enum sq_status st_parse(struct parse *p, struct sq_model *model)
{
    struct sq_error *err = p->err;
    if (p->len < 8)
        return sqi_fail_at(err, SQ_ERR_FORMAT, NULL, 0,
                           "safetensors file is %zu bytes, too short for the 8-byte header "
                           "length",
                           p->len);
    p->hlen = sqi_le64(p->buf);
    if (p->hlen > p->len - 8)
        return sqi_fail_at(err, SQ_ERR_FORMAT, NULL, 0,
                           "safetensors header length %" PRIu64
                           " at byte 0 runs past the end of the %zu-byte file",
                           p->hlen, p->len);
    if (p->hlen > p->lim->max_header_bytes)
        return sqi_fail_at(err, SQ_ERR_LIMIT, NULL, 0,
                           "safetensors header length %" PRIu64
                           " is above the limit %zu (max_header_bytes)",
                           p->hlen, p->lim->max_header_bytes);
    if (p->hlen < 2 || p->buf[8] != '{')
        return sqi_fail_at(err, SQ_ERR_FORMAT, NULL, 8,
                           "safetensors header at byte 8 must be a JSON object (start with '{')");
    p->dstart = 8 + (size_t)p->hlen;
    p->dlen = p->len - p->dstart;

    json_error_t je;
    p->root = json_loadb((const char *)p->buf + 8, (size_t)p->hlen, JSON_REJECT_DUPLICATES, &je);
    if (!p->root) {
        /* jansson leaves the text empty when an allocation fails before it can say more */
        if (json_error_code(&je) == json_error_out_of_memory || je.text[0] == '\0')
            return nomem(err);
        return sqi_fail_at(err, SQ_ERR_FORMAT, NULL, 8 + (int64_t)je.position,
                           "safetensors header is not valid JSON: %s (at byte %" PRId64 ")",
                           je.text, 8 + (int64_t)je.position);
    }
    if (!json_is_object(p->root))
        return sqi_fail_at(err, SQ_ERR_FORMAT, NULL, 8,
                           "safetensors header at byte 8 must be a JSON object");
    return parse_root(p, model);
}

enum sq_status sq_safetensors_parse(const uint8_t *buf, size_t len, const struct sq_limits *limits,
                                    struct sq_model *model, struct sq_error *err)
{
    struct sq_limits lim;
    sqi_limits_effective(limits, &lim);
    enum sq_status st = sqi_model_require_empty(model, err);
    if (st != SQ_OK)
        return st;
    if (!buf && len)
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1, "sq_safetensors_parse: no buffer");
    struct parse p = {.buf = buf ? buf : (const uint8_t *)"", .len = len, .lim = &lim, .err = err};
    st = st_parse(&p, model);
    free(p.entries);
    json_decref(p.root);
    if (st != SQ_OK)
        sq_model_free(model);
    return st;
}

/* ------------------------------------------------------------------ write */

struct dump {
    struct sqi_buf *b;
    enum sq_status st;
};

static int dump_to_buf(const char *text, size_t size, void *data)
{
    struct dump *d = data;
    d->st = sqi_buf_append(d->b, text, size);
    return d->st == SQ_OK ? 0 : -1;
}

static enum sq_status nomem_write(struct sq_error *err)
{
    return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory writing safetensors");
}

/* The header object: __metadata__ first, then the tensors in model order, contiguous. */
static enum sq_status build_header(const struct sq_model *model, json_t *root, bool need_data,
                                   struct sq_error *err)
{
    if (model->meta_count) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, META_KEY, m) != 0)
            return nomem_write(err);
        for (size_t i = 0; i < model->meta_count; i++) {
            const char *k = model->meta[i].key, *val = model->meta[i].value;
            if (json_object_get(m, k))
                return sqi_fail_at(err, SQ_ERR_CONFLICT, NULL, -1,
                                   "metadata key '%.80s' appears twice", k);
            if (!sqi_utf8_valid(k, strlen(k)) || !sqi_utf8_valid(val, strlen(val)))
                return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1,
                                   "metadata entry '%.80s' is not valid UTF-8", k);
            if (json_object_set_new(m, k, json_string(val)) != 0)
                return nomem_write(err);
        }
    }
    uint64_t at = 0;
    for (size_t i = 0; i < model->count; i++) {
        const struct sq_tensor *t = &model->tensors[i];
        size_t nelems, nbytes;
        if (t->rank > SQ_MAX_RANK || !sqi_shape_product(t->shape, t->rank, &nelems) ||
            !sqi_mul(nelems, sq_dtype_size(t->dtype), &nbytes) || nbytes != t->nbytes ||
            (need_data && nbytes && !t->data))
            return sqi_fail_at(err, SQ_ERR_ARG, t->name, -1,
                               "tensor '%.100s': its shape, size and data disagree", t->name);
        if (!t->name || !t->name[0] || !sqi_utf8_valid(t->name, strlen(t->name)))
            return sqi_fail_at(err, SQ_ERR_ARG, t->name, -1,
                               "tensor %zu: its name is empty or not valid UTF-8", i);
        if (strcmp(t->name, META_KEY) == 0 || json_object_get(root, t->name))
            return sqi_fail_at(err, SQ_ERR_CONFLICT, t->name, -1,
                               "tensor name '%.100s' appears twice (or is " META_KEY ")", t->name);
        uint64_t end = at + nbytes;
        if (end < at || end > INT64_MAX)
            return sqi_fail_at(err, SQ_ERR_LIMIT, t->name, -1, "safetensors data too large");
        json_t *e = json_object(), *shape = json_array(), *off = json_array();
        if (e && shape && off) {
            for (unsigned d = 0; d < t->rank; d++)
                json_array_append_new(shape, json_integer(t->shape[d]));
            json_array_append_new(off, json_integer((json_int_t)at));
            json_array_append_new(off, json_integer((json_int_t)end));
        }
        if (!e || !shape || !off || json_array_size(shape) != t->rank ||
            json_array_size(off) != 2 ||
            json_object_set_new(e, "dtype", json_string(sq_dtype_name(t->dtype))) != 0 ||
            json_object_set(e, "shape", shape) != 0 ||
            json_object_set(e, "data_offsets", off) != 0) {
            json_decref(e);
            json_decref(shape);
            json_decref(off);
            return nomem_write(err);
        }
        json_decref(shape);
        json_decref(off);
        if (json_object_set_new(root, t->name, e) != 0)
            return nomem_write(err);
        at = end;
    }
    return SQ_OK;
}

/*
 * The header (length, JSON, padding) into the empty buffer `b`. *reported
 * tells whether a failure was already described in `err`; otherwise it is a
 * buffer failure (SQ_ERR_LIMIT or SQ_ERR_NOMEM) for the caller to describe.
 */
static enum sq_status write_header(const struct sq_model *model, bool need_data, struct sqi_buf *b,
                                   bool *reported, struct sq_error *err)
{
    *reported = true;
    json_t *root = json_object();
    if (!root)
        return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory writing safetensors");
    enum sq_status st = build_header(model, root, need_data, err);
    if (st != SQ_OK) {
        json_decref(root);
        return st;
    }
    *reported = false;
    st = sqi_buf_append_byte(b, 0, 8); /* the header length, filled in below */
    struct dump d = {b, SQ_OK};
    if (st == SQ_OK && json_dump_callback(root, dump_to_buf, &d, JSON_COMPACT) != 0)
        st = d.st != SQ_OK ? d.st : SQ_ERR_NOMEM; /* jansson's own allocation failed */
    json_decref(root);
    if (st == SQ_OK)
        st = sqi_buf_append_byte(b, ' ', (8 - b->len % 8) % 8);
    if (st == SQ_OK)
        sqi_put_le64(b->data, (uint64_t)(b->len - 8));
    return st;
}

static enum sq_status write_failed(enum sq_status st, size_t limit, struct sq_error *err)
{
    if (st == SQ_ERR_LIMIT)
        return sqi_fail_at(err, st, NULL, -1,
                           "the safetensors output would exceed the limit of %zu bytes", limit);
    return sqi_fail_at(err, st, NULL, -1, "out of memory writing safetensors");
}

enum sq_status sq_safetensors_write(const struct sq_model *model, size_t limit, uint8_t **out,
                                    size_t *out_len, struct sq_error *err)
{
    if (!model || !out || !out_len)
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1, "sq_safetensors_write: missing argument");
    struct sqi_buf b;
    sqi_buf_init(&b, limit);
    bool reported;
    enum sq_status st = write_header(model, true, &b, &reported, err);
    if (st != SQ_OK && reported) {
        sqi_buf_free(&b);
        return st;
    }
    size_t data = 0;
    for (size_t i = 0; i < model->count; i++)
        data += model->tensors[i].nbytes; /* no overflow: build_header checked the sum */
    if (st == SQ_OK)
        st = sqi_buf_reserve(&b, data);
    for (size_t i = 0; i < model->count && st == SQ_OK; i++)
        st = sqi_buf_append(&b, model->tensors[i].data, model->tensors[i].nbytes);
    if (st == SQ_OK && !(*out = sqi_buf_take(&b, out_len)))
        st = SQ_ERR_NOMEM;
    sqi_buf_free(&b);
    return st == SQ_OK ? SQ_OK : write_failed(st, limit, err);
}

enum sq_status sq_safetensors_write_header(const struct sq_model *model, size_t limit,
                                           uint8_t **out, size_t *out_len, struct sq_error *err)
{
    if (!model || !out || !out_len)
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1,
                           "sq_safetensors_write_header: missing argument");
    struct sqi_buf b;
    sqi_buf_init(&b, limit);
    bool reported;
    enum sq_status st = write_header(model, false, &b, &reported, err);
    if (st == SQ_OK && !(*out = sqi_buf_take(&b, out_len)))
        st = SQ_ERR_NOMEM;
    sqi_buf_free(&b);
    if (st != SQ_OK && reported)
        return st;
    return st == SQ_OK ? SQ_OK : write_failed(st, limit, err);
}

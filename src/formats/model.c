/*
 * struct sq_model (an ordered set of named tensors plus string metadata),
 * the parse limits, format names and detection, and the checks the parsers
 * share.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

/* ------------------------------------------------------------------ errors */

enum sq_status sqi_fail_at(struct sq_error *err, enum sq_status status, const char *tensor,
                           int64_t offset, const char *fmt, ...)
{
    if (err) {
        err->tensor[0] = '\0';
        sqi_error_tensor(err, tensor);
        err->offset = offset;
        err->channel = -1;
        err->index = -1;
        va_list ap;
        va_start(ap, fmt);
        sqi_vfail(err, status, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* ------------------------------------------------------------------ limits */

void sq_limits_init(struct sq_limits *limits)
{
    limits->max_tensors = 100000;
    limits->max_rank = SQ_MAX_RANK;
    limits->max_dim = UINT64_C(1) << 31;
    limits->max_tensor_elements = UINT64_C(1) << 34;
    limits->max_total_elements = UINT64_C(1) << 36;
    limits->max_header_bytes = (size_t)100 << 20;
    limits->max_name_bytes = 1024;
}

void sqi_limits_effective(const struct sq_limits *limits, struct sq_limits *out)
{
    if (limits)
        *out = *limits;
    else
        sq_limits_init(out);
    if (out->max_rank > SQ_MAX_RANK)
        out->max_rank = SQ_MAX_RANK;
}

/* ------------------------------------------------------------------ checks */

bool sqi_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p++;
        if (c < 0x80) {
            if (c == 0)
                return false;
            continue;
        }
        unsigned need;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false; /* continuation byte, overlong lead 0xc0/0xc1, or > U+10FFFF */
        }
        if ((size_t)(end - p) < need)
            return false;
        for (unsigned i = 0; i < need; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        p += need;
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

void sqi_shape_str(char *buf, size_t n, unsigned rank, const int64_t *shape)
{
    assert(n >= 8);
    size_t o = 0;
    buf[o++] = '[';
    for (unsigned i = 0; i < rank; i++) {
        char d[24];
        int k = snprintf(d, sizeof d, "%s%" PRId64, i ? ", " : "", shape[i]);
        if (o + (size_t)k + 2 > n) {
            if (o + 5 > n)
                o = n - 5;
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, d, (size_t)k);
        o += (size_t)k;
    }
    buf[o++] = ']';
    buf[o] = '\0';
}

enum sq_status sqi_check_shape(const struct sq_limits *lim, unsigned rank, const int64_t *shape,
                               uint64_t *total, size_t *nelems, const char *tensor, int64_t offset,
                               struct sq_error *err)
{
    if (rank > lim->max_rank)
        return sqi_fail_at(err, SQ_ERR_LIMIT, tensor, offset,
                           "tensor '%s': rank %u is above the limit %u (max_rank)", tensor, rank,
                           lim->max_rank);
    uint64_t p = 1;
    bool over = false;
    for (unsigned i = 0; i < rank; i++) {
        if (shape[i] < 0)
            return sqi_fail_at(err, SQ_ERR_SHAPE, tensor, offset,
                               "tensor '%s': dimension %u is %" PRId64 ", must be >= 0", tensor, i,
                               shape[i]);
        if ((uint64_t)shape[i] > lim->max_dim)
            return sqi_fail_at(err, SQ_ERR_LIMIT, tensor, offset,
                               "tensor '%s': dimension %u is %" PRId64 ", above the limit %" PRIu64
                               " (max_dim)",
                               tensor, i, shape[i], lim->max_dim);
        if (__builtin_mul_overflow(p, (uint64_t)shape[i], &p))
            over = true;
    }
    /* A zero dimension makes the product 0 even after an overflow. */
    for (unsigned i = 0; over && i < rank; i++)
        if (shape[i] == 0)
            over = false, p = 0;
    if (over || p > lim->max_tensor_elements || p > SIZE_MAX) {
        char s[96];
        sqi_shape_str(s, sizeof s, rank, shape);
        return sqi_fail_at(err, SQ_ERR_LIMIT, tensor, offset,
                           "tensor '%s': shape %s has more than %" PRIu64
                           " elements (max_tensor_elements)",
                           tensor, s, lim->max_tensor_elements);
    }
    uint64_t t;
    if (__builtin_add_overflow(*total, p, &t) || t > lim->max_total_elements)
        return sqi_fail_at(err, SQ_ERR_LIMIT, tensor, offset,
                           "tensor '%s': the tensors hold more than %" PRIu64
                           " elements in total (max_total_elements)",
                           tensor, lim->max_total_elements);
    *total = t;
    *nelems = (size_t)p;
    return SQ_OK;
}

/* ------------------------------------------------------------------ model */

void sq_model_init(struct sq_model *model)
{
    model->tensors = NULL;
    model->count = 0;
    model->cap = 0;
    model->meta = NULL;
    model->meta_count = 0;
}

void sq_model_free(struct sq_model *model)
{
    if (!model)
        return;
    for (size_t i = 0; i < model->count; i++) {
        free(model->tensors[i].name);
        free(model->tensors[i].owned);
    }
    free(model->tensors);
    for (size_t i = 0; i < model->meta_count; i++) {
        free(model->meta[i].key);
        free(model->meta[i].value);
    }
    free(model->meta);
    sq_model_init(model);
}

ptrdiff_t sq_model_find(const struct sq_model *model, const char *name)
{
    for (size_t i = 0; i < model->count; i++)
        if (strcmp(model->tensors[i].name, name) == 0)
            return (ptrdiff_t)i;
    return -1;
}

enum sq_status sqi_model_require_empty(const struct sq_model *model, struct sq_error *err)
{
    if (model->count || model->meta_count)
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1,
                           "the model to parse into must be empty (sq_model_init)");
    return SQ_OK;
}

enum sq_status sqi_model_reserve(struct sq_model *model, size_t more, struct sq_error *err)
{
    size_t need, bytes;
    if (!sqi_add(model->count, more, &need))
        return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory: too many tensors");
    if (need <= model->cap)
        return SQ_OK;
    size_t cap = model->cap ? model->cap : 8;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    struct sq_tensor *t;
    if (!sqi_mul(cap, sizeof *t, &bytes) || !(t = realloc(model->tensors, bytes)))
        return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory for %zu tensors", need);
    model->tensors = t;
    model->cap = cap;
    return SQ_OK;
}

enum sq_status sqi_model_push(struct sq_model *model, const char *name, size_t name_len,
                              enum sq_dtype dtype, unsigned rank, const int64_t *shape,
                              size_t nelems, const uint8_t *data, size_t nbytes, uint8_t *owned,
                              struct sq_error *err)
{
    assert(rank <= SQ_MAX_RANK && (rank == 0 || shape));
    enum sq_status st = sqi_model_reserve(model, 1, err);
    if (st != SQ_OK)
        return st;
    char *copy = sqi_strndup(name, name_len);
    if (!copy)
        return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory");
    struct sq_tensor *t = &model->tensors[model->count++];
    memset(t, 0, sizeof *t);
    t->name = copy;
    t->dtype = dtype;
    t->rank = rank;
    if (rank)
        memcpy(t->shape, shape, rank * sizeof *shape);
    t->nelems = nelems;
    t->nbytes = nbytes;
    t->data = data;
    t->owned = owned;
    return SQ_OK;
}

enum sq_status sq_model_add(struct sq_model *model, const char *name, enum sq_dtype dtype,
                            unsigned rank, const int64_t *shape, const void *data, size_t nbytes,
                            bool owned, struct sq_error *err)
{
    if (!model || !name)
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1, "sq_model_add: model and name are required");
    size_t len = strlen(name);
    if (len == 0)
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1, "a tensor name must not be empty");
    if (!sqi_utf8_valid(name, len))
        return sqi_fail_at(err, SQ_ERR_ARG, name, -1, "tensor name is not valid UTF-8");
    if ((unsigned)dtype >= SQ_DTYPE_COUNT)
        return sqi_fail_at(err, SQ_ERR_DTYPE, name, -1, "tensor '%s': unknown dtype %d", name,
                           (int)dtype);
    if (rank > SQ_MAX_RANK)
        return sqi_fail_at(err, SQ_ERR_SHAPE, name, -1, "tensor '%s': rank %u is above %d", name,
                           rank, SQ_MAX_RANK);
    if (rank && !shape)
        return sqi_fail_at(err, SQ_ERR_ARG, name, -1, "tensor '%s': rank %u without a shape", name,
                           rank);
    char s[96];
    size_t nelems, need;
    if (!sqi_shape_product(shape, rank, &nelems) || !sqi_mul(nelems, sq_dtype_size(dtype), &need)) {
        sqi_shape_str(s, sizeof s, rank, shape);
        return sqi_fail_at(err, SQ_ERR_SHAPE, name, -1,
                           "tensor '%s': shape %s has a negative dimension or too many elements",
                           name, s);
    }
    if (need != nbytes) {
        sqi_shape_str(s, sizeof s, rank, shape);
        return sqi_fail_at(err, SQ_ERR_SHAPE, name, -1,
                           "tensor '%s': shape %s of %s needs %zu bytes, got %zu", name, s,
                           sq_dtype_name(dtype), need, nbytes);
    }
    if (!data && nbytes)
        return sqi_fail_at(err, SQ_ERR_ARG, name, -1, "tensor '%s': no data", name);
    if (sq_model_find(model, name) >= 0)
        return sqi_fail_at(err, SQ_ERR_CONFLICT, name, -1, "tensor '%s' is already in the model",
                           name);
    return sqi_model_push(model, name, len, dtype, rank, shape, nelems, data, nbytes,
                          owned ? (uint8_t *)data : NULL, err);
}

/* The meta array grows by doubling; its capacity is implied by meta_count. */
static enum sq_status meta_grow(struct sq_model *model, struct sq_error *err)
{
    size_t n = model->meta_count, cap;
    if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
        return SQ_OK; /* room left: capacity is max(4, next power of two) */
    cap = n == 0 ? 4 : n * 2;
    struct sq_meta *m;
    size_t bytes;
    if (cap < n || !sqi_mul(cap, sizeof *m, &bytes) || !(m = realloc(model->meta, bytes)))
        return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory for metadata");
    model->meta = m;
    return SQ_OK;
}

enum sq_status sqi_model_push_meta(struct sq_model *model, const char *key, const char *value,
                                   struct sq_error *err)
{
    enum sq_status st = meta_grow(model, err);
    if (st != SQ_OK)
        return st;
    char *k = sqi_strdup(key), *v = k ? sqi_strdup(value) : NULL;
    if (!v) {
        free(k);
        return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory for metadata");
    }
    model->meta[model->meta_count].key = k;
    model->meta[model->meta_count].value = v;
    model->meta_count++;
    return SQ_OK;
}

enum sq_status sq_model_set_meta(struct sq_model *model, const char *key, const char *value,
                                 struct sq_error *err)
{
    if (!model || !key || !value)
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1,
                           "sq_model_set_meta: model, key and value are required");
    if (!sqi_utf8_valid(key, strlen(key)) || !sqi_utf8_valid(value, strlen(value)))
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1, "metadata key or value is not valid UTF-8");
    for (size_t i = 0; i < model->meta_count; i++) {
        if (strcmp(model->meta[i].key, key) == 0) {
            char *v = sqi_strdup(value);
            if (!v)
                return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory for metadata");
            free(model->meta[i].value);
            model->meta[i].value = v;
            return SQ_OK;
        }
    }
    return sqi_model_push_meta(model, key, value, err);
}

/* ------------------------------------------------------------------ formats */

static const char *const format_names[SQ_FORMAT_COUNT] = {
    [SQ_FORMAT_AUTO] = "auto", [SQ_FORMAT_RAW] = "raw",
    [SQ_FORMAT_NPY] = "npy",   [SQ_FORMAT_SAFETENSORS] = "safetensors",
    [SQ_FORMAT_JSON] = "json",
};

const char *sq_format_name(enum sq_format format)
{
    if ((unsigned)format >= SQ_FORMAT_COUNT)
        return "unknown";
    return format_names[format];
}

enum sq_status sq_format_from_name(const char *name, enum sq_format *out)
{
    if (!name)
        return SQ_ERR_UNSUPPORTED;
    for (unsigned i = 0; i < SQ_FORMAT_COUNT; i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = (enum sq_format)i;
            return SQ_OK;
        }
    }
    return SQ_ERR_UNSUPPORTED;
}

enum sq_format sq_format_detect(const uint8_t *buf, size_t len)
{
    if (len >= 6 && memcmp(buf, "\x93NUMPY", 6) == 0)
        return SQ_FORMAT_NPY;
    if (len >= 8 + 2) {
        uint64_t n = sqi_le64(buf);
        if (n <= len - 8 && buf[8] == '{')
            return SQ_FORMAT_SAFETENSORS;
    }
    return SQ_FORMAT_AUTO;
}

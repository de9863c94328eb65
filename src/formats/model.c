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
                           "tensor '%.100s': rank %u is above the limit %u (max_rank)", tensor,
                           rank, lim->max_rank);
    uint64_t p = 1;
    bool over = false;
    for (unsigned i = 0; i < rank; i++) {
        if (shape[i] < 0)
            return sqi_fail_at(err, SQ_ERR_SHAPE, tensor, offset,
                               "tensor '%.100s': dimension %u is %" PRId64 ", must be >= 0", tensor,
                               i, shape[i]);
        if ((uint64_t)shape[i] > lim->max_dim)
            return sqi_fail_at(err, SQ_ERR_LIMIT, tensor, offset,
                               "tensor '%.100s': dimension %u is %" PRId64
                               ", above the limit %" PRIu64 " (max_dim)",
                               tensor, i, shape[i], lim->max_dim);
        if (__builtin_mul_overflow(p, (uint64_t)shape[i], &p))
            over = true;
    }
    /*
     * A running product that overflows is refused even when a later
     * dimension is 0, as sqi_shape_product (and so sq_model_add and the
     * writers) refuses it.
     */
    if (over || p > lim->max_tensor_elements || p > SIZE_MAX) {
        char s[96];
        sqi_shape_str(s, sizeof s, rank, shape);
        return sqi_fail_at(err, SQ_ERR_LIMIT, tensor, offset,
                           "tensor '%.100s': shape %s has more than %" PRIu64
                           " elements (max_tensor_elements)",
                           tensor, s, lim->max_tensor_elements);
    }
    uint64_t t;
    if (__builtin_add_overflow(*total, p, &t) || t > lim->max_total_elements)
        return sqi_fail_at(err, SQ_ERR_LIMIT, tensor, offset,
                           "tensor '%.100s': the tensors hold more than %" PRIu64
                           " elements in total (max_total_elements)",
                           tensor, lim->max_total_elements);
    *total = t;
    *nelems = (size_t)p;
    return SQ_OK;
}

/* ------------------------------------------------------------------ name index */

/*
 * A hash table over the names of an array (tensor names or metadata keys),
 * so that sq_model_add, sq_model_set_meta and sq_model_find stay O(1): the
 * plan rebuilds models of up to max_tensors tensors with them, and a
 * hostile file must not make that quadratic. Open addressing with linear
 * probing, at most half full; a slot holds index + 1 (0: empty). A table
 * remembers the array (base) and how many of its entries it covers, so a
 * model whose arrays were changed by hand is searched linearly instead.
 */
struct name_table {
    size_t *slots;
    size_t mask;      /* slot count - 1 (a power of two); 0: no table */
    size_t count;     /* entries [0, count) of `base` are in the table */
    const void *base; /* the array they are in (a realloc moves it: then rebuilt) */
};

struct sq_model_index {
    struct name_table tensors, meta;
    uint64_t seed;
};

typedef const char *(*key_fn)(const void *base, size_t i);

static const char *tensor_key(const void *base, size_t i)
{
    return ((const struct sq_tensor *)base)[i].name;
}

static const char *meta_key(const void *base, size_t i)
{
    return ((const struct sq_meta *)base)[i].key;
}

/* FNV-1a from a per-model seed (an address: not known offline), then a final mix. */
static uint64_t name_hash(uint64_t seed, const char *s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325) ^ seed;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * UINT64_C(0x100000001b3);
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

static void table_insert(struct name_table *t, uint64_t seed, key_fn key, size_t i)
{
    size_t s = (size_t)name_hash(seed, key(t->base, i)) & t->mask;
    while (t->slots[s])
        s = (s + 1) & t->mask;
    t->slots[s] = i + 1;
}

static ptrdiff_t table_lookup(const struct name_table *t, uint64_t seed, key_fn key,
                              const char *name)
{
    size_t s = (size_t)name_hash(seed, name) & t->mask;
    for (; t->slots[s]; s = (s + 1) & t->mask)
        if (strcmp(key(t->base, t->slots[s] - 1), name) == 0)
            return (ptrdiff_t)(t->slots[s] - 1);
    return -1;
}

/*
 * Bring `t` up to date with entries [0, count) of `base`, with room for one
 * more. On SQ_ERR_NOMEM there is no table (lookups then scan).
 */
static enum sq_status table_prepare(struct name_table *t, uint64_t seed, key_fn key,
                                    const void *base, size_t count)
{
    size_t want = 16;
    while (want / 2 < count + 1) {
        if (want > SIZE_MAX / 4 / sizeof *t->slots)
            return SQ_ERR_NOMEM;
        want *= 2;
    }
    if (want > t->mask + 1 || !t->mask) {
        free(t->slots);
        t->mask = 0;
        if (!(t->slots = calloc(want, sizeof *t->slots)))
            return SQ_ERR_NOMEM;
        t->mask = want - 1;
        t->count = 0;
    } else if (t->base != base || t->count > count) {
        memset(t->slots, 0, (t->mask + 1) * sizeof *t->slots);
        t->count = 0;
    }
    t->base = base;
    for (; t->count < count; t->count++)
        table_insert(t, seed, key, t->count);
    return SQ_OK;
}

static struct sq_model_index *index_get(struct sq_model *model)
{
    if (!model->index) {
        struct sq_model_index *ix = calloc(1, sizeof *ix);
        if (!ix)
            return NULL;
        ix->seed = (uint64_t)(uintptr_t)ix * UINT64_C(0x9e3779b97f4a7c15);
        model->index = ix;
    }
    return model->index;
}

/* The index with its tensor table current and room for one more; NULL when out of memory. */
static struct sq_model_index *tensor_index(struct sq_model *model)
{
    struct sq_model_index *ix = index_get(model);
    if (!ix || table_prepare(&ix->tensors, ix->seed, tensor_key, model->tensors, model->count))
        return NULL;
    return ix;
}

static struct sq_model_index *meta_index(struct sq_model *model)
{
    struct sq_model_index *ix = index_get(model);
    if (!ix || table_prepare(&ix->meta, ix->seed, meta_key, model->meta, model->meta_count))
        return NULL;
    return ix;
}

/* ------------------------------------------------------------------ model */

void sq_model_init(struct sq_model *model)
{
    model->tensors = NULL;
    model->count = 0;
    model->cap = 0;
    model->meta = NULL;
    model->meta_count = 0;
    model->index = NULL;
    model->onnx = NULL;
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
    if (model->index) {
        free(model->index->tensors.slots);
        free(model->index->meta.slots);
        free(model->index);
    }
    sqi_onnx_free(model->onnx);
    sq_model_init(model);
}

ptrdiff_t sq_model_find(const struct sq_model *model, const char *name)
{
    const struct sq_model_index *ix = model->index;
    if (ix && ix->tensors.mask && ix->tensors.base == model->tensors &&
        ix->tensors.count == model->count)
        return table_lookup(&ix->tensors, ix->seed, tensor_key, name);
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
    struct sq_model_index *ix = copy ? tensor_index(model) : NULL;
    if (!ix) {
        free(copy);
        return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory");
    }
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
    table_insert(&ix->tensors, ix->seed, tensor_key, ix->tensors.count++);
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
        return sqi_fail_at(err, SQ_ERR_DTYPE, name, -1, "tensor '%.100s': unknown dtype %d", name,
                           (int)dtype);
    if (rank > SQ_MAX_RANK)
        return sqi_fail_at(err, SQ_ERR_SHAPE, name, -1, "tensor '%.100s': rank %u is above %d",
                           name, rank, SQ_MAX_RANK);
    if (rank && !shape)
        return sqi_fail_at(err, SQ_ERR_ARG, name, -1, "tensor '%.100s': rank %u without a shape",
                           name, rank);
    char s[96];
    size_t nelems, need;
    if (!sqi_shape_product(shape, rank, &nelems) || !sqi_mul(nelems, sq_dtype_size(dtype), &need)) {
        sqi_shape_str(s, sizeof s, rank, shape);
        return sqi_fail_at(
            err, SQ_ERR_SHAPE, name, -1,
            "tensor '%.100s': shape %s has a negative dimension or too many elements", name, s);
    }
    if (need != nbytes) {
        sqi_shape_str(s, sizeof s, rank, shape);
        return sqi_fail_at(err, SQ_ERR_SHAPE, name, -1,
                           "tensor '%.100s': shape %s of %s needs %zu bytes, got %zu", name, s,
                           sq_dtype_name(dtype), need, nbytes);
    }
    if (!data && nbytes)
        return sqi_fail_at(err, SQ_ERR_ARG, name, -1, "tensor '%.100s': no data", name);
    struct sq_model_index *ix = tensor_index(model);
    if (!ix)
        return sqi_fail_at(err, SQ_ERR_NOMEM, name, -1, "out of memory");
    if (table_lookup(&ix->tensors, ix->seed, tensor_key, name) >= 0)
        return sqi_fail_at(err, SQ_ERR_CONFLICT, name, -1,
                           "tensor '%.100s' is already in the model", name);
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
    struct sq_model_index *ix = v ? meta_index(model) : NULL;
    if (!ix) {
        free(k);
        free(v);
        return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory for metadata");
    }
    model->meta[model->meta_count].key = k;
    model->meta[model->meta_count].value = v;
    model->meta_count++;
    table_insert(&ix->meta, ix->seed, meta_key, ix->meta.count++);
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
    struct sq_model_index *ix = meta_index(model);
    if (!ix)
        return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory for metadata");
    ptrdiff_t i = table_lookup(&ix->meta, ix->seed, meta_key, key);
    if (i < 0)
        return sqi_model_push_meta(model, key, value, err);
    char *v = sqi_strdup(value);
    if (!v)
        return sqi_fail_at(err, SQ_ERR_NOMEM, NULL, -1, "out of memory for metadata");
    free(model->meta[i].value);
    model->meta[i].value = v;
    return SQ_OK;
}

/* ------------------------------------------------------------------ formats */

static const char *const format_names[SQ_FORMAT_COUNT] = {
    [SQ_FORMAT_AUTO] = "auto",
    [SQ_FORMAT_RAW] = "raw",
    [SQ_FORMAT_NPY] = "npy",
    [SQ_FORMAT_SAFETENSORS] = "safetensors",
    [SQ_FORMAT_JSON] = "json",
    [SQ_FORMAT_ONNX] = "onnx",
    [SQ_FORMAT_DEQUANTIZED] = "dequantized",
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
    /*
     * ONNX: a ModelProto starts with ir_version (field 1, varint: 0x08 and a
     * small version), then a length-delimited field (producer_name,
     * graph...). Exporters write ir_version first.
     */
    if (len >= 3 && buf[0] == 0x08 && buf[1] >= 1 && buf[1] <= 0x7f && (buf[2] & 7) == 2 &&
        buf[2] >= 0x12 && buf[2] <= 0x72)
        return SQ_FORMAT_ONNX;
    return SQ_FORMAT_AUTO;
}

/*
 * NumPy .npy, versions 1.0, 2.0 and 3.0.
 *
 * The header is a Python dict literal. It is read by a small strict parser
 * for exactly the grammar NumPy writes (no eval, no general Python):
 *
 *   header := '{' ws [item (ws ',' ws item)* [ws ',']] ws '}' ' '* '\n' <end>
 *   item   := key ws ':' ws value        key := 'descr' | 'fortran_order' | 'shape'
 *   value  := string | 'True' | 'False' | tuple
 *   tuple  := '(' ws [int (ws ',' ws int)* [ws ',']] ws ')'   ("(5)" is not a tuple)
 *   string := '...' or "..." of printable ASCII, no escapes
 *   int    := '0' | [1-9][0-9]*           ws := ' '*
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
/* NumPy leaves room to grow the first dimension in place (numpy/lib/format.py). */
#define NPY_GROWTH_AXIS_MAX_DIGITS 21

/* One row per dtype that .npy can carry: numpy's kind and size. */
static const struct {
    enum sq_dtype dtype;
    char kind;
    unsigned size;
} npy_types[] = {
    {SQ_DTYPE_F32, 'f', 4}, {SQ_DTYPE_F16, 'f', 2}, {SQ_DTYPE_F64, 'f', 8}, {SQ_DTYPE_I8, 'i', 1},
    {SQ_DTYPE_U8, 'u', 1},  {SQ_DTYPE_I16, 'i', 2}, {SQ_DTYPE_U16, 'u', 2}, {SQ_DTYPE_I32, 'i', 4},
    {SQ_DTYPE_U32, 'u', 4}, {SQ_DTYPE_I64, 'i', 8}, {SQ_DTYPE_U64, 'u', 8}, {SQ_DTYPE_BOOL, 'b', 1},
};

/* ------------------------------------------------------------------ header parser */

struct npy_header {
    const uint8_t *buf; /* the whole file: positions are absolute */
    size_t pos, end;    /* cursor and end of the header */
    const char *tensor;
    struct sq_error *err;
    /* results */
    const char *descr;
    size_t descr_len;
    bool fortran;
    unsigned rank;
    int64_t shape[SQ_MAX_RANK];
    const struct sq_limits *lim;
};

static enum sq_status hfail(struct npy_header *h, enum sq_status st, const char *fmt, ...)
    SQI_PRINTF(3, 4);

static enum sq_status hfail(struct npy_header *h, enum sq_status st, const char *fmt, ...)
{
    char what[SQ_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sqi_fail_at(h->err, st, h->tensor, (int64_t)h->pos, "npy header at byte %zu: %s", h->pos,
                       what);
}

/* A readable name for the byte at the cursor, for messages. */
static const char *hbyte(const struct npy_header *h, char *tmp, size_t n)
{
    if (h->pos >= h->end)
        return "the end of the header";
    unsigned c = h->buf[h->pos];
    if (c == '\'')
        return "a quote";
    if (c == '\n')
        return "a newline";
    if (c >= 0x20 && c < 0x7f)
        snprintf(tmp, n, "'%c'", (char)c);
    else
        snprintf(tmp, n, "byte 0x%02x", c);
    return tmp;
}

static void skip_ws(struct npy_header *h)
{
    while (h->pos < h->end && h->buf[h->pos] == ' ')
        h->pos++;
}

static bool accept(struct npy_header *h, char c)
{
    if (h->pos < h->end && h->buf[h->pos] == (uint8_t)c) {
        h->pos++;
        return true;
    }
    return false;
}

/* A quoted string: *s, *len point into the header (without the quotes). */
static enum sq_status parse_string(struct npy_header *h, const char *what, const char **s,
                                   size_t *len)
{
    char tmp[16];
    if (h->pos >= h->end || (h->buf[h->pos] != '\'' && h->buf[h->pos] != '"'))
        return hfail(h, SQ_ERR_FORMAT, "expected a quoted string for %s, found %s", what,
                     hbyte(h, tmp, sizeof tmp));
    uint8_t q = h->buf[h->pos++];
    size_t start = h->pos;
    for (;;) {
        if (h->pos >= h->end)
            return hfail(h, SQ_ERR_FORMAT, "unterminated string for %s", what);
        uint8_t c = h->buf[h->pos];
        if (c == q)
            break;
        if (c == '\\')
            return hfail(h, SQ_ERR_FORMAT, "escape sequences are not supported in %s", what);
        if (c < 0x20 || c >= 0x7f)
            return hfail(h, SQ_ERR_FORMAT, "%s holds byte 0x%02x: only printable ASCII is allowed",
                         what, c);
        h->pos++;
    }
    *s = (const char *)h->buf + start;
    *len = h->pos - start;
    h->pos++;
    return SQ_OK;
}

static bool word(struct npy_header *h, const char *w)
{
    size_t n = strlen(w);
    if (h->end - h->pos < n || memcmp(h->buf + h->pos, w, n) != 0)
        return false;
    h->pos += n;
    return true;
}

static enum sq_status parse_bool(struct npy_header *h, bool *out)
{
    char tmp[16];
    if (word(h, "True"))
        *out = true;
    else if (word(h, "False"))
        *out = false;
    else
        return hfail(h, SQ_ERR_FORMAT,
                     "the value of 'fortran_order' must be True or False, found %s",
                     hbyte(h, tmp, sizeof tmp));
    return SQ_OK;
}

static enum sq_status parse_dim(struct npy_header *h, int64_t *out)
{
    char tmp[16];
    unsigned i = h->rank;
    if (h->pos < h->end && h->buf[h->pos] == '-')
        return hfail(h, SQ_ERR_SHAPE, "dimension %u of the shape is negative", i);
    if (h->pos >= h->end || h->buf[h->pos] < '0' || h->buf[h->pos] > '9')
        return hfail(h, SQ_ERR_FORMAT, "expected an integer in the shape, found %s",
                     hbyte(h, tmp, sizeof tmp));
    size_t start = h->pos;
    uint64_t v = 0;
    bool big = false;
    while (h->pos < h->end && h->buf[h->pos] >= '0' && h->buf[h->pos] <= '9') {
        unsigned d = h->buf[h->pos] - '0';
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            big = true;
        else
            v = v * 10 + d;
        h->pos++;
    }
    if (h->buf[start] == '0' && h->pos - start > 1) {
        h->pos = start;
        return hfail(h, SQ_ERR_FORMAT, "dimension %u of the shape has a leading zero", i);
    }
    if (big || v > h->lim->max_dim) {
        h->pos = start;
        return hfail(h, SQ_ERR_LIMIT,
                     "dimension %u of the shape is above the limit %" PRIu64 " (max_dim)", i,
                     h->lim->max_dim);
    }
    *out = (int64_t)v;
    return SQ_OK;
}

static enum sq_status parse_shape(struct npy_header *h)
{
    char tmp[16];
    size_t open = h->pos;
    if (!accept(h, '('))
        return hfail(h, SQ_ERR_FORMAT, "the value of 'shape' must be a tuple, found %s",
                     hbyte(h, tmp, sizeof tmp));
    skip_ws(h);
    bool comma = false;
    h->rank = 0;
    while (!accept(h, ')')) {
        if (h->rank > 0 && !comma)
            return hfail(h, SQ_ERR_FORMAT, "expected ',' or ')' in the shape, found %s",
                         hbyte(h, tmp, sizeof tmp));
        if (h->rank >= h->lim->max_rank)
            return hfail(h, SQ_ERR_LIMIT, "the shape has more than %u dimensions (max_rank)",
                         h->lim->max_rank);
        enum sq_status st = parse_dim(h, &h->shape[h->rank]);
        if (st != SQ_OK)
            return st;
        h->rank++;
        skip_ws(h);
        comma = accept(h, ',');
        skip_ws(h);
    }
    if (h->rank == 1 && !comma) {
        h->pos = open;
        return hfail(h, SQ_ERR_FORMAT,
                     "the value of 'shape' is not a tuple: a 1-tuple is "
                     "written (n,)");
    }
    return SQ_OK;
}

enum key { KEY_DESCR, KEY_FORTRAN, KEY_SHAPE, KEY_COUNT };
static const char *const key_names[KEY_COUNT] = {"descr", "fortran_order", "shape"};

static enum sq_status parse_header(struct npy_header *h)
{
    char tmp[16];
    bool seen[KEY_COUNT] = {false};
    size_t start = h->pos;
    enum sq_status st;
    if (!accept(h, '{'))
        return hfail(h, SQ_ERR_FORMAT, "expected '{', found %s", hbyte(h, tmp, sizeof tmp));
    skip_ws(h);
    while (!accept(h, '}')) {
        const char *k;
        size_t klen;
        size_t kpos = h->pos;
        if ((st = parse_string(h, "a key", &k, &klen)) != SQ_OK)
            return st;
        unsigned key = 0;
        while (key < KEY_COUNT &&
               !(strlen(key_names[key]) == klen && memcmp(key_names[key], k, klen) == 0))
            key++;
        if (key == KEY_COUNT) {
            h->pos = kpos;
            return hfail(h, SQ_ERR_FORMAT,
                         "unknown key '%.*s' (expected 'descr', 'fortran_order', 'shape')",
                         (int)(klen > 40 ? 40 : klen), k);
        }
        if (seen[key]) {
            h->pos = kpos;
            return hfail(h, SQ_ERR_FORMAT, "key '%s' appears twice", key_names[key]);
        }
        seen[key] = true;
        skip_ws(h);
        if (!accept(h, ':'))
            return hfail(h, SQ_ERR_FORMAT, "expected ':' after the key '%s', found %s",
                         key_names[key], hbyte(h, tmp, sizeof tmp));
        skip_ws(h);
        switch (key) {
        case KEY_DESCR:
            if (h->pos < h->end && h->buf[h->pos] == '[')
                return hfail(h, SQ_ERR_DTYPE,
                             "structured dtypes (a list as 'descr') are not "
                             "supported");
            st = parse_string(h, "the value of 'descr'", &h->descr, &h->descr_len);
            break;
        case KEY_FORTRAN:
            st = parse_bool(h, &h->fortran);
            break;
        default:
            st = parse_shape(h);
            break;
        }
        if (st != SQ_OK)
            return st;
        skip_ws(h);
        if (accept(h, ',')) {
            skip_ws(h);
            continue;
        }
        if (h->pos < h->end && h->buf[h->pos] == '}')
            continue;
        return hfail(h, SQ_ERR_FORMAT, "expected ',' or '}' after the value of '%s', found %s",
                     key_names[key], hbyte(h, tmp, sizeof tmp));
    }
    for (unsigned key = 0; key < KEY_COUNT; key++) {
        if (!seen[key]) {
            h->pos = start;
            return hfail(h, SQ_ERR_FORMAT, "the header lacks the key '%s'", key_names[key]);
        }
    }
    while (h->pos < h->end && h->buf[h->pos] == ' ')
        h->pos++;
    if (h->pos + 1 != h->end || h->buf[h->pos] != '\n')
        return hfail(h, SQ_ERR_FORMAT, "expected spaces and a final '\\n' after the dict, found %s",
                     hbyte(h, tmp, sizeof tmp));
    return SQ_OK;
}

/* Map a descr such as '<f4' to a dtype; *swap is set for big-endian multi-byte types. */
static enum sq_status descr_dtype(struct npy_header *h, size_t descr_pos, enum sq_dtype *out,
                                  bool *swap)
{
    const char *d = h->descr;
    size_t n = h->descr_len;
    h->pos = descr_pos;
    int shown = (int)(n > 40 ? 40 : n);
    if ((n == 1 && d[0] == 'O') || (n == 2 && d[1] == 'O'))
        return hfail(h, SQ_ERR_DTYPE,
                     "object arrays ('%.*s') are not supported: save a numeric array", shown, d);
    if (n == 3 && (d[0] == '<' || d[0] == '>' || d[0] == '|') && d[2] >= '1' && d[2] <= '8') {
        unsigned size = (unsigned)(d[2] - '0');
        for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++) {
            if (npy_types[i].kind != d[1] || npy_types[i].size != size)
                continue;
            if (d[0] == '|' && size != 1)
                break; /* "not applicable" byte order on a multi-byte type */
            *out = npy_types[i].dtype;
            *swap = d[0] == '>' && size > 1;
            return SQ_OK;
        }
    }
    return hfail(h, SQ_ERR_DTYPE,
                 "dtype '%.*s' is not supported (npy input holds '<f4', '<f2', '<f8', their "
                 "big-endian forms, or integers and bools)",
                 shown, d);
}

/* ------------------------------------------------------------------ parse */

static enum sq_status npy_parse(const uint8_t *buf, size_t len, const struct sq_limits *lim,
                                const char *name, struct sq_model *model, struct sq_error *err)
{
    if (len < NPY_MAGIC_LEN || memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, 0,
                           "not an npy file: it does not start with \\x93NUMPY");
    if (len < 8)
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, (int64_t)len,
                           "npy file is truncated: %zu bytes, the version needs 8", len);
    unsigned major = buf[6], minor = buf[7];
    size_t lenbytes = major == 1 ? 2 : 4;
    if (major < 1 || major > 3 || minor != 0)
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, 6,
                           "npy version %u.%u is not supported (1.0, 2.0 and 3.0 are)", major,
                           minor);
    size_t hstart = 8 + lenbytes;
    if (len < hstart)
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, (int64_t)len,
                           "npy file is truncated: %zu bytes, the header length needs %zu", len,
                           hstart);
    size_t hlen = major == 1 ? sqi_le16(buf + 8) : sqi_le32(buf + 8);
    if (hlen > len - hstart)
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, 8,
                           "npy header of %zu bytes at byte %zu runs past the end of the "
                           "%zu-byte file",
                           hlen, hstart, len);
    if (hlen > lim->max_header_bytes)
        return sqi_fail_at(err, SQ_ERR_LIMIT, name, 8,
                           "npy header length %zu is above the limit %zu (max_header_bytes)", hlen,
                           lim->max_header_bytes);

    struct npy_header h = {
        .buf = buf, .pos = hstart, .end = hstart + hlen, .tensor = name, .err = err, .lim = lim};
    enum sq_status st = parse_header(&h);
    if (st != SQ_OK)
        return st;
    if (h.fortran) {
        h.pos = hstart;
        return hfail(&h, SQ_ERR_FORMAT,
                     "Fortran order is not supported; save with np.ascontiguousarray");
    }
    /* Find the descr's value again for the error position. */
    size_t descr_pos = (size_t)((const uint8_t *)h.descr - buf) - 1;
    enum sq_dtype dtype = SQ_DTYPE_F32;
    bool swap = false;
    if ((st = descr_dtype(&h, descr_pos, &dtype, &swap)) != SQ_OK)
        return st;

    uint64_t total = 0;
    size_t nelems, nbytes, dstart = h.end;
    if ((st = sqi_check_shape(lim, h.rank, h.shape, &total, &nelems, name, (int64_t)hstart, err)) !=
        SQ_OK)
        return st;
    if (!sqi_mul(nelems, sq_dtype_size(dtype), &nbytes))
        return sqi_fail_at(err, SQ_ERR_LIMIT, name, (int64_t)dstart, "npy data size overflows");
    char s[96];
    if (len - dstart != nbytes) {
        sqi_shape_str(s, sizeof s, h.rank, h.shape);
        return sqi_fail_at(err, SQ_ERR_FORMAT, name, (int64_t)dstart,
                           "npy data at byte %zu is %zu bytes, but shape %s of '%.*s' needs %zu%s",
                           dstart, len - dstart, s, (int)h.descr_len, h.descr, nbytes,
                           len - dstart < nbytes ? " (truncated file)" : " (trailing bytes)");
    }
    const uint8_t *data = buf + dstart;
    uint8_t *owned = NULL;
    if (swap && nbytes) {
        size_t sz = sq_dtype_size(dtype);
        if (!(owned = malloc(nbytes)))
            return sqi_fail_at(err, SQ_ERR_NOMEM, name, -1,
                               "out of memory converting big-endian data");
        for (size_t i = 0; i < nbytes; i += sz)
            for (size_t j = 0; j < sz; j++)
                owned[i + j] = data[i + sz - 1 - j];
        data = owned;
    }
    st = sqi_model_push(model, name, strlen(name), dtype, h.rank, h.shape, nelems, data, nbytes,
                        owned, err);
    if (st != SQ_OK)
        free(owned);
    return st;
}

enum sq_status sq_npy_parse(const uint8_t *buf, size_t len, const struct sq_limits *limits,
                            const char *name, struct sq_model *model, struct sq_error *err)
{
    struct sq_limits lim;
    sqi_limits_effective(limits, &lim);
    if (!name)
        name = "tensor";
    enum sq_status st = sqi_model_require_empty(model, err);
    if (st != SQ_OK)
        return st;
    if (!buf && len)
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1, "sq_npy_parse: no buffer");
    size_t nlen = strlen(name);
    if (nlen == 0 || !sqi_utf8_valid(name, nlen))
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1,
                           "the tensor name for an npy input must be non-empty UTF-8");
    if (nlen > lim.max_name_bytes)
        return sqi_fail_at(err, SQ_ERR_LIMIT, NULL, -1,
                           "tensor name of %zu bytes is above the limit %zu (max_name_bytes)", nlen,
                           lim.max_name_bytes);
    if (lim.max_tensors < 1)
        return sqi_fail_at(err, SQ_ERR_LIMIT, name, -1,
                           "an npy file holds one tensor, above the limit 0 (max_tensors)");
    st = npy_parse(buf ? buf : (const uint8_t *)"", len, &lim, name, model, err);
    if (st != SQ_OK)
        sq_model_free(model);
    return st;
}

/* ------------------------------------------------------------------ write */

static const char *npy_descr(enum sq_dtype dtype)
{
    switch (dtype) {
    case SQ_DTYPE_F32:
        return "<f4";
    case SQ_DTYPE_F16:
        return "<f2";
    case SQ_DTYPE_F64:
        return "<f8";
    case SQ_DTYPE_I8:
        return "|i1";
    case SQ_DTYPE_U8:
        return "|u1";
    case SQ_DTYPE_I16:
        return "<i2";
    case SQ_DTYPE_U16:
        return "<u2";
    case SQ_DTYPE_I32:
        return "<i4";
    case SQ_DTYPE_U32:
        return "<u4";
    case SQ_DTYPE_I64:
        return "<i8";
    case SQ_DTYPE_U64:
        return "<u8";
    case SQ_DTYPE_BOOL:
        return "|b1";
    default:
        return NULL;
    }
}

enum sq_status sq_npy_write(const struct sq_tensor *t, size_t limit, uint8_t **out, size_t *out_len,
                            struct sq_error *err)
{
    const char *name = t && t->name ? t->name : NULL;
    if (!t || !out || !out_len)
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1, "sq_npy_write: missing argument");
    const char *descr = npy_descr(t->dtype);
    if (!descr)
        return sqi_fail_at(err, SQ_ERR_DTYPE, name, -1,
                           "tensor '%.100s': %s has no .npy dtype (use safetensors)",
                           name ? name : "", sq_dtype_name(t->dtype));
    size_t nelems, nbytes;
    if (t->rank > SQ_MAX_RANK || !sqi_shape_product(t->shape, t->rank, &nelems) ||
        !sqi_mul(nelems, sq_dtype_size(t->dtype), &nbytes) || nbytes != t->nbytes ||
        (nbytes && !t->data))
        return sqi_fail_at(err, SQ_ERR_ARG, name, -1,
                           "sq_npy_write: the tensor's shape, size and data disagree");

    /* The dict exactly as numpy.save writes it (numpy/lib/format.py). */
    char dict[64 + SQ_MAX_RANK * 24 + NPY_GROWTH_AXIS_MAX_DIGITS];
    int n =
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (unsigned i = 0; i < t->rank; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%" PRId64, i ? ", " : "", t->shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", t->rank == 1 ? "," : "");
    if (t->rank > 0) {
        int digits = snprintf(NULL, 0, "%" PRId64, t->shape[0]);
        for (int i = digits; i < NPY_GROWTH_AXIS_MAX_DIGITS; i++)
            dict[n++] = ' ';
    }
    /* Pad with 1..64 spaces and a '\n' so that the data starts at a multiple of 64. */
    size_t hlen = (size_t)n + 1, prefix = NPY_MAGIC_LEN + 2 + 2;
    uint8_t major = 1;
    size_t pad = NPY_ALIGN - (prefix + hlen) % NPY_ALIGN;
    if (hlen + pad > 65535) {
        major = 2;
        prefix = NPY_MAGIC_LEN + 2 + 4;
        pad = NPY_ALIGN - (prefix + hlen) % NPY_ALIGN;
    }
    size_t total = prefix + hlen + pad;
    if (!sqi_add(total, nbytes, &total) || total > limit)
        return sqi_fail_at(err, SQ_ERR_LIMIT, name, -1,
                           "the .npy output of %s would exceed the limit of %zu bytes",
                           name ? name : "the tensor", limit);
    struct sqi_buf b;
    sqi_buf_init(&b, limit);
    uint8_t len4[4];
    sqi_put_le32(len4, (uint32_t)(hlen + pad));
    enum sq_status st = sqi_buf_reserve(&b, total);
    if (st == SQ_OK) {
        sqi_buf_append(&b, NPY_MAGIC, NPY_MAGIC_LEN);
        sqi_buf_append_byte(&b, major, 1);
        sqi_buf_append_byte(&b, 0, 1);
        sqi_buf_append(&b, len4, major == 1 ? 2 : 4);
        sqi_buf_append(&b, dict, (size_t)n);
        sqi_buf_append_byte(&b, ' ', pad);
        sqi_buf_append_byte(&b, '\n', 1);
        sqi_buf_append(&b, t->data, nbytes);
        if (!(*out = sqi_buf_take(&b, out_len)))
            st = SQ_ERR_NOMEM;
    }
    sqi_buf_free(&b);
    if (st != SQ_OK)
        return sqi_fail_at(err, st, name, -1, "%s writing .npy", sq_strerror(st));
    return SQ_OK;
}

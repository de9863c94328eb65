/*
 * ONNX models: ModelProto -> struct sq_model (the weights of Conv,
 * ConvTranspose, Gemm and MatMul, in the [out, in, kernel...] layout of the
 * core), and the model written back with SQuant's weights (QDQ or
 * dequantized floats), every other field kept.
 *
 * Decoding is protobuf-c with our own schema (onnx.proto): fields it does
 * not declare are kept as unknown fields and written back as they were.
 * The decoder runs on a budgeted allocator, so a hostile file cannot make
 * it allocate more than a fixed multiple of its size.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "onnx.pb-c.h"

#define S(x) ((x) ? (x) : "")

enum {
    OT_FLOAT = 1,
    OT_UINT8 = 2,
    OT_INT8 = 3,
    OT_INT32 = 6,
    OT_INT64 = 7,
    OT_FLOAT16 = 10,
    OT_DOUBLE = 11,
    OT_BFLOAT16 = 16,
    OT_INT4 = 22,
};
enum { AT_FLOAT = 1, AT_INT = 2, AT_TENSOR = 4 };

/* Weights ONNX Runtime can consume this way: where they come from, how they are laid out. */
struct onnx_weight {
    Onnx__TensorProto *tp;
    size_t init;    /* index in graph.initializer, or SIZE_MAX */
    size_t node;    /* index of the Constant node in graph.node, or SIZE_MAX */
    const char *op; /* the consumer's operator */
    int axis;       /* output-channel axis in the model's layout */
    int64_t group;  /* ConvTranspose groups (1 otherwise) */
    unsigned rank;
    int64_t dims[SQ_MAX_RANK]; /* the model's layout */
    int data_type;
};

struct onnx_skip {
    char *name;
    char *reason;
};

struct sqi_onnx {
    Onnx__ModelProto *proto;
    ProtobufCAllocator alloc;
    size_t budget, used;
    bool over;
    int64_t opset, ir_version;
    struct onnx_weight *w; /* one per model tensor, same index */
    struct onnx_skip *skip;
    size_t skip_count;
};

/* ------------------------------------------------------------ budgeted allocator */

static void *budget_alloc(void *data, size_t size)
{
    struct sqi_onnx *o = data;
    if (size > o->budget - o->used) {
        o->over = true;
        return NULL;
    }
    size_t *p = malloc(size + sizeof(max_align_t));
    if (!p)
        return NULL;
    o->used += size;
    *p = size;
    return (char *)p + sizeof(max_align_t);
}

static void budget_free(void *data, void *ptr)
{
    struct sqi_onnx *o = data;
    if (!ptr)
        return;
    size_t *p = (size_t *)(void *)((char *)ptr - sizeof(max_align_t));
    o->used -= *p;
    free(p);
}

void sqi_onnx_free(struct sqi_onnx *o)
{
    if (!o)
        return;
    if (o->proto)
        onnx__model_proto__free_unpacked(o->proto, &o->alloc);
    for (size_t i = 0; i < o->skip_count; i++) {
        free(o->skip[i].name);
        free(o->skip[i].reason);
    }
    free(o->skip);
    free(o->w);
    free(o);
}

/* ------------------------------------------------------------ helpers */

/*
 * Whether no message in m holds an unknown field numbered 0: protobuf-c
 * keeps such a field on reading (from a key with a redundant varint
 * encoding) but writes it back as key 0, which no reader accepts, so a
 * model we wrote would not read again. Messages nested deeper than 256
 * (ONNX nests a few levels: subgraphs in attributes) are refused too.
 */
static bool tags_valid(const ProtobufCMessage *m, unsigned depth)
{
    if (depth > 256)
        return false;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return false;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + fd->quantifier_offset) != fd->id)
            continue;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + fd->quantifier_offset);
            ProtobufCMessage *const *v =
                *(ProtobufCMessage *const *const *)(const void *)(base + fd->offset);
            for (size_t k = 0; k < n; k++)
                if (v[k] && !tags_valid(v[k], depth + 1))
                    return false;
        } else {
            const ProtobufCMessage *s =
                *(ProtobufCMessage *const *)(const void *)(base + fd->offset);
            if (s && !tags_valid(s, depth + 1))
                return false;
        }
    }
    return true;
}

/*
 * onnx__model_proto__unpack through o's budgeted allocator (decoded size is
 * about the file's size; many tiny messages cost more: 8 times it plus 64
 * MiB); NULL also for a field numbered 0 (see tags_valid). o->over says
 * whether the budget was the reason.
 */
static Onnx__ModelProto *unpack_model(struct sqi_onnx *o, size_t len, const uint8_t *buf)
{
    o->alloc = (ProtobufCAllocator){budget_alloc, budget_free, o};
    o->budget = len > (SIZE_MAX - ((size_t)64 << 20)) / 8 ? SIZE_MAX : 8 * len + ((size_t)64 << 20);
    Onnx__ModelProto *m = onnx__model_proto__unpack(&o->alloc, len, buf);
    if (m && !tags_valid(&m->base, 0)) {
        onnx__model_proto__free_unpacked(m, &o->alloc);
        return NULL;
    }
    return m;
}

static enum sq_status fail(struct sq_error *err, enum sq_status st, const char *tensor,
                           const char *fmt, ...) SQI_PRINTF(4, 5);
static enum sq_status fail(struct sq_error *err, enum sq_status st, const char *tensor,
                           const char *fmt, ...)
{
    if (err) {
        err->tensor[0] = '\0';
        sqi_error_tensor(err, tensor);
        err->offset = -1;
        err->channel = -1;
        err->index = -1;
        va_list ap;
        va_start(ap, fmt);
        sqi_vfail(err, st, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* Serialize a model into a new buffer (*out, for the caller to free) of at most `limit` bytes. */
static enum sq_status pack_model(const Onnx__ModelProto *m, size_t limit, uint8_t **out,
                                 size_t *out_len, struct sq_error *err)
{
    size_t size = onnx__model_proto__get_packed_size(m);
    if (size > limit)
        return fail(err, SQ_ERR_LIMIT, NULL,
                    "the ONNX output would be %zu bytes, above the limit %zu", size, limit);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return fail(err, SQ_ERR_NOMEM, NULL, "out of memory for %zu bytes of output", size);
    *out_len = onnx__model_proto__pack(m, buf);
    *out = buf;
    return SQ_OK;
}

static bool dtype_of(int t, enum sq_dtype *out)
{
    switch (t) {
    case OT_FLOAT:
        *out = SQ_DTYPE_F32;
        return true;
    case OT_FLOAT16:
        *out = SQ_DTYPE_F16;
        return true;
    case OT_BFLOAT16:
        *out = SQ_DTYPE_BF16;
        return true;
    case OT_DOUBLE:
        *out = SQ_DTYPE_F64;
        return true;
    default:
        return false;
    }
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(S(n->attribute[i]->name), name) == 0)
            return n->attribute[i];
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_i ? a->i : dflt;
}

static bool default_domain(const char *d)
{
    return !d || !*d || strcmp(d, "ai.onnx") == 0;
}

/* A sorted index of the graph's constant names: initializers and Constant outputs. */
struct cname {
    const char *name;
    size_t init, node;
    Onnx__TensorProto *tp;
};

static int cname_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cname *)a)->name, ((const struct cname *)b)->name);
}

static struct cname *cname_find(struct cname *v, size_t n, const char *name)
{
    struct cname key = {.name = name};
    return bsearch(&key, v, n, sizeof *v, cname_cmp);
}

/* ------------------------------------------------------------ layouts */

/*
 * The model's layout [A, B, s] (A = g*Ai, s = the product of the remaining
 * dims) against the core's [g*B, Ai, s]: core[gi*B + b][i][k] =
 * model[gi*Ai + i][b][k]. This is MatMul/Gemm [K, N] -> [N, K] (g = 1,
 * s = 1) and ConvTranspose [C_in, C_out/g, k...] -> [C_out, C_in/g, k...].
 */
static void swap_groups(const uint8_t *src, uint8_t *dst, size_t esz, size_t A, size_t B, size_t s,
                        size_t g, bool to_core)
{
    size_t Ai = A / g;
    for (size_t gi = 0; gi < g; gi++)
        for (size_t b = 0; b < B; b++)
            for (size_t i = 0; i < Ai; i++) {
                size_t m = ((gi * Ai + i) * B + b) * s, c = ((gi * B + b) * Ai + i) * s;
                if (to_core)
                    memcpy(dst + c * esz, src + m * esz, s * esz);
                else
                    memcpy(dst + m * esz, src + c * esz, s * esz);
            }
}

static void weight_abs(const struct onnx_weight *w, size_t *A, size_t *B, size_t *s)
{
    *A = (size_t)w->dims[0];
    *B = (size_t)w->dims[1];
    *s = 1;
    for (unsigned i = 2; i < w->rank; i++)
        *s *= (size_t)w->dims[i];
}

/* ------------------------------------------------------------ reading tensors */

/*
 * The bytes of a weight in the model's layout (little-endian elements of
 * its dtype): borrowed from the decoded message or an external file
 * (*owned NULL), or converted into a new buffer (*owned).
 */
static enum sq_status tensor_bytes(const Onnx__TensorProto *tp, const char *name, enum sq_dtype dt,
                                   size_t nelems, const struct sq_external *ext, size_t next,
                                   const uint8_t **data, uint8_t **owned, struct sq_error *err)
{
    size_t esz = sq_dtype_size(dt), nbytes = nelems * esz;
    *owned = NULL;
    if (tp->has_data_location && tp->data_location == 1) {
        const char *loc = NULL;
        uint64_t off = 0, len = UINT64_MAX;
        for (size_t i = 0; i < tp->n_external_data; i++) {
            const char *k = S(tp->external_data[i]->key), *v = S(tp->external_data[i]->value);
            if (strcmp(k, "location") == 0) {
                loc = v;
            } else if (strcmp(k, "offset") == 0 || strcmp(k, "length") == 0) {
                char *end;
                if (!*v || *v == '-' || *v == '+')
                    return fail(err, SQ_ERR_FORMAT, name,
                                "tensor '%.100s': external_data %s '%.40s' is not a number", name,
                                k, v);
                errno = 0;
                unsigned long long x = strtoull(v, &end, 10);
                if (*end || errno)
                    return fail(err, SQ_ERR_FORMAT, name,
                                "tensor '%.100s': external_data %s '%.40s' is not a number", name,
                                k, v);
                *(strcmp(k, "offset") == 0 ? &off : &len) = x;
            }
        }
        if (!loc || !*loc)
            return fail(err, SQ_ERR_FORMAT, name,
                        "tensor '%.100s': external data without a location", name);
        const struct sq_external *e = NULL;
        for (size_t i = 0; i < next && !e; i++)
            if (strcmp(ext[i].name, loc) == 0)
                e = &ext[i];
        if (!e)
            return fail(err, SQ_ERR_FORMAT, name,
                        "tensor '%.100s': its external data file '%.200s' was not given (send it "
                        "as a part named '%.200s', or put it beside the model)",
                        name, loc, loc);
        if (len == UINT64_MAX)
            len = off <= e->len ? e->len - off : 0;
        if (off > e->len || len > e->len - off)
            return fail(err, SQ_ERR_FORMAT, name,
                        "tensor '%.100s': external data offset %" PRIu64 " length %" PRIu64
                        " is beyond the end of '%.200s' (%zu bytes)",
                        name, off, len, loc, e->len);
        if (len != nbytes)
            return fail(err, SQ_ERR_SHAPE, name,
                        "tensor '%.100s': external data holds %" PRIu64
                        " bytes, its shape needs %zu",
                        name, len, nbytes);
        *data = e->data + off;
        return SQ_OK;
    }
    if (tp->has_raw_data) {
        if (tp->raw_data.len != nbytes)
            return fail(err, SQ_ERR_SHAPE, name,
                        "tensor '%.100s': raw_data holds %zu bytes, its shape needs %zu", name,
                        tp->raw_data.len, nbytes);
        *data = tp->raw_data.data;
        return SQ_OK;
    }
    size_t have;
    const char *field;
    switch (dt) {
    case SQ_DTYPE_F32:
        have = tp->n_float_data, field = "float_data";
        break;
    case SQ_DTYPE_F64:
        have = tp->n_double_data, field = "double_data";
        break;
    default:
        have = tp->n_int32_data, field = "int32_data";
        break;
    }
    if (have != nelems)
        return fail(err, SQ_ERR_SHAPE, name,
                    "tensor '%.100s': %s holds %zu values, its shape needs %zu", name, field, have,
                    nelems);
    if (dt == SQ_DTYPE_F32) {
        *data = (const uint8_t *)tp->float_data;
    } else if (dt == SQ_DTYPE_F64) {
        *data = (const uint8_t *)tp->double_data;
    } else {
        uint8_t *b = malloc(nbytes ? nbytes : 1);
        if (!b)
            return fail(err, SQ_ERR_NOMEM, name, "out of memory");
        for (size_t i = 0; i < nelems; i++) {
            int32_t v = tp->int32_data[i];
            if (v < 0 || v > 0xffff) {
                free(b);
                return fail(err, SQ_ERR_FORMAT, name,
                            "tensor '%.100s': int32_data[%zu] = %" PRId32
                            " is not a 16-bit pattern",
                            name, i, v);
            }
            b[2 * i] = (uint8_t)v;
            b[2 * i + 1] = (uint8_t)(v >> 8);
        }
        *data = *owned = b;
    }
    return SQ_OK;
}

/* ------------------------------------------------------------ parse */

struct use {
    struct cname *c;
    const char *op;
    int axis;
    int64_t group;
    bool bad;
    char why[160];
};

static enum sq_status add_skip(struct sqi_onnx *o, const char *name, const char *reason,
                               struct sq_error *err)
{
    struct onnx_skip *s = realloc(o->skip, (o->skip_count + 1) * sizeof *s);
    if (!s)
        return fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
    o->skip = s;
    s[o->skip_count].name = sqi_strndup(name, strlen(name));
    s[o->skip_count].reason = sqi_strndup(reason, strlen(reason));
    if (!s[o->skip_count].name || !s[o->skip_count].reason) {
        free(s[o->skip_count].name);
        free(s[o->skip_count].reason);
        return fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
    }
    o->skip_count++;
    return SQ_OK;
}

static enum sq_status check_dims(const struct sq_limits *lim, const Onnx__TensorProto *tp,
                                 const char *name, struct sq_error *err)
{
    if (tp->n_dims > 64)
        return fail(err, SQ_ERR_LIMIT, name, "tensor '%.100s': %zu dimensions (at most 64)", name,
                    tp->n_dims);
    uint64_t p = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0)
            return fail(err, SQ_ERR_SHAPE, name,
                        "tensor '%.100s': dimension %zu is %" PRId64 ", must be >= 0", name, i,
                        tp->dims[i]);
        if (__builtin_mul_overflow(p, (uint64_t)tp->dims[i], &p) || p > lim->max_tensor_elements)
            return fail(err, SQ_ERR_LIMIT, name,
                        "tensor '%.100s': more than %" PRIu64 " elements (max_tensor_elements)",
                        name, lim->max_tensor_elements);
    }
    return SQ_OK;
}

/* Which weight input of node n (if any) and along which axis. */
static void weight_use(const Onnx__NodeProto *n, struct cname *idx, size_t nidx, struct use *u)
{
    memset(u, 0, sizeof *u);
    if (!default_domain(n->domain) || n->n_input < 2)
        return;
    const char *op = S(n->op_type);
    int axis;
    int64_t group = 1;
    if (strcmp(op, "Conv") == 0) {
        axis = 0;
    } else if (strcmp(op, "ConvTranspose") == 0) {
        axis = 1;
        group = attr_int(n, "group", 1);
    } else if (strcmp(op, "Gemm") == 0) {
        axis = attr_int(n, "transB", 0) ? 0 : 1;
    } else if (strcmp(op, "MatMul") == 0) {
        axis = 1;
    } else {
        return;
    }
    struct cname *c = cname_find(idx, nidx, n->input[1]);
    if (!c)
        return;
    const Onnx__TensorProto *tp = c->tp;
    u->c = c;
    u->op = op;
    u->axis = axis;
    u->group = group;
    bool rank2 = strcmp(op, "Gemm") == 0 || strcmp(op, "MatMul") == 0;
    if (rank2 ? tp->n_dims != 2 : tp->n_dims < 3) {
        u->bad = true;
        snprintf(u->why, sizeof u->why, "%s weight of rank %zu", op, tp->n_dims);
    } else if (group < 1 || (uint64_t)tp->dims[0] % (uint64_t)group != 0) {
        u->bad = true;
        snprintf(u->why, sizeof u->why, "ConvTranspose group %" PRId64 " does not divide %" PRId64,
                 group, tp->dims[0]);
    }
}

static int opset_of(const Onnx__ModelProto *m, int64_t *out)
{
    for (size_t i = 0; i < m->n_opset_import; i++)
        if (default_domain(m->opset_import[i]->domain)) {
            *out = m->opset_import[i]->has_version ? m->opset_import[i]->version : 1;
            return 0;
        }
    return -1;
}

static enum sq_status parse_graph(struct sqi_onnx *o, const struct sq_limits *lim,
                                  const struct sq_external *ext, size_t next,
                                  struct sq_model *model, struct sq_error *err)
{
    Onnx__GraphProto *g = o->proto->graph;
    if (g->n_initializer > lim->max_tensors)
        return fail(err, SQ_ERR_LIMIT, NULL,
                    "the graph has %zu initializers, above the limit %zu (max_tensors)",
                    g->n_initializer, lim->max_tensors);
    size_t nconst = 0;
    for (size_t i = 0; i < g->n_node; i++)
        nconst += strcmp(S(g->node[i]->op_type), "Constant") == 0;
    if (nconst > lim->max_tensors)
        return fail(err, SQ_ERR_LIMIT, NULL,
                    "the graph has %zu Constant nodes, above the limit %zu (max_tensors)", nconst,
                    lim->max_tensors);
    size_t nidx = 0;
    struct cname *idx = calloc(g->n_initializer + nconst + 1, sizeof *idx);
    if (!idx)
        return fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
    enum sq_status st = SQ_OK;
    for (size_t i = 0; st == SQ_OK && i < g->n_initializer; i++) {
        Onnx__TensorProto *tp = g->initializer[i];
        const char *name = S(tp->name);
        if (!*name)
            st = fail(err, SQ_ERR_FORMAT, NULL, "initializer %zu has no name", i);
        else if (strlen(name) > lim->max_name_bytes || !sqi_utf8_valid(name, strlen(name)))
            st = fail(err, SQ_ERR_FORMAT, NULL,
                      "initializer %zu: name is not UTF-8 of at most %zu bytes", i,
                      lim->max_name_bytes);
        else
            st = check_dims(lim, tp, name, err);
        idx[nidx++] = (struct cname){name, i, SIZE_MAX, tp};
    }
    for (size_t i = 0; st == SQ_OK && i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (strcmp(S(n->op_type), "Constant") != 0 || !default_domain(n->domain))
            continue;
        const Onnx__AttributeProto *a = attr(n, "value");
        if (!a || !a->t || n->n_output != 1)
            continue;
        const char *name = n->output[0];
        if (!*name || strlen(name) > lim->max_name_bytes || !sqi_utf8_valid(name, strlen(name))) {
            st = fail(err, SQ_ERR_FORMAT, NULL,
                      "Constant node %zu: output name is empty or not UTF-8 of at most %zu bytes",
                      i, lim->max_name_bytes);
            break;
        }
        st = check_dims(lim, a->t, name, err);
        idx[nidx++] = (struct cname){name, SIZE_MAX, i, a->t};
    }
    if (st != SQ_OK)
        goto done;
    qsort(idx, nidx, sizeof *idx, cname_cmp);
    for (size_t i = 1; i < nidx; i++)
        if (strcmp(idx[i - 1].name, idx[i].name) == 0) {
            st = fail(err, SQ_ERR_FORMAT, idx[i].name,
                      "tensor '%.100s' is defined twice (initializer or Constant output)",
                      idx[i].name);
            goto done;
        }
    /* Axis per constant: the first weight use; a later one that disagrees marks it. */
    struct use *first = calloc(nidx + 1, sizeof *first);
    bool *conflict = calloc(nidx + 1, sizeof *conflict);
    if (!first || !conflict) {
        free(first);
        free(conflict);
        st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        struct use u;
        weight_use(g->node[i], idx, nidx, &u);
        if (!u.c)
            continue;
        size_t k = (size_t)(u.c - idx);
        if (!first[k].c)
            first[k] = u;
        else if (!first[k].bad && (u.bad || u.axis != first[k].axis || u.group != first[k].group)) {
            conflict[k] = true;
            snprintf(first[k].why, sizeof first[k].why,
                     "used by %s (axis %d) and %s (axis %d), which disagree", first[k].op,
                     first[k].axis, u.op, u.axis);
        }
    }
    uint64_t total = 0;
    /* Model tensors in the order of the graph: initializers, then Constant nodes. */
    for (int pass = 0; st == SQ_OK && pass < 2; pass++) {
        size_t count = pass == 0 ? g->n_initializer : g->n_node;
        for (size_t j = 0; st == SQ_OK && j < count; j++) {
            const char *name = pass == 0 ? S(g->initializer[j]->name) : NULL;
            if (pass == 1) {
                const Onnx__NodeProto *n = g->node[j];
                if (strcmp(S(n->op_type), "Constant") != 0 || !default_domain(n->domain) ||
                    n->n_output != 1 || !attr(n, "value") || !attr(n, "value")->t)
                    continue;
                name = n->output[0];
            }
            struct cname *c = cname_find(idx, nidx, name);
            if (!c || (pass == 0 ? c->init != j : c->node != j))
                continue;
            size_t k = (size_t)(c - idx);
            struct use *u = &first[k];
            if (!u->c)
                continue;
            enum sq_dtype dt;
            if (u->bad || conflict[k]) {
                st = add_skip(o, name, u->why, err);
                continue;
            }
            if (!dtype_of(c->tp->data_type, &dt)) {
                char why[96];
                snprintf(why, sizeof why, "%s weight of ONNX data type %d: not a float type", u->op,
                         (int)c->tp->data_type);
                st = add_skip(o, name, why, err);
                continue;
            }
            struct onnx_weight w = {.tp = c->tp,
                                    .init = c->init,
                                    .node = c->node,
                                    .op = u->op,
                                    .axis = u->axis,
                                    .group = u->group,
                                    .rank = (unsigned)c->tp->n_dims,
                                    .data_type = c->tp->data_type};
            if (w.rank > lim->max_rank) {
                st = fail(err, SQ_ERR_LIMIT, name,
                          "tensor '%.100s': rank %u is above the limit %u (max_rank)", name, w.rank,
                          lim->max_rank);
                break;
            }
            memcpy(w.dims, c->tp->dims, w.rank * sizeof *w.dims);
            int64_t core[SQ_MAX_RANK];
            memcpy(core, w.dims, sizeof core);
            if (w.axis == 1) {
                core[0] = w.dims[1] * w.group;
                core[1] = w.dims[0] / w.group;
            }
            size_t nelems;
            st = sqi_check_shape(lim, w.rank, core, &total, &nelems, name, -1, err);
            if (st != SQ_OK)
                break;
            const uint8_t *data = NULL;
            uint8_t *owned = NULL;
            st = tensor_bytes(c->tp, name, dt, nelems, ext, next, &data, &owned, err);
            if (st != SQ_OK)
                break;
            size_t esz = sq_dtype_size(dt);
            if (w.axis == 1 && nelems) {
                uint8_t *t = malloc(nelems * esz);
                if (!t) {
                    free(owned);
                    st = fail(err, SQ_ERR_NOMEM, name, "out of memory");
                    break;
                }
                size_t A, B, s;
                weight_abs(&w, &A, &B, &s);
                swap_groups(data, t, esz, A, B, s, (size_t)w.group, true);
                free(owned);
                data = owned = t;
            }
            struct onnx_weight *nw = realloc(o->w, (model->count + 1) * sizeof *nw);
            if (!nw) {
                free(owned);
                st = fail(err, SQ_ERR_NOMEM, name, "out of memory");
                break;
            }
            o->w = nw;
            nw[model->count] = w;
            st = sqi_model_reserve(model, 1, err);
            if (st == SQ_OK)
                st = sqi_model_push(model, name, strlen(name), dt, w.rank, core, nelems, data,
                                    nelems * esz, owned, err);
            if (st != SQ_OK)
                free(owned);
        }
    }
    free(first);
    free(conflict);
done:
    free(idx);
    return st;
}

enum sq_status sq_onnx_parse(const uint8_t *buf, size_t len, const struct sq_external *ext,
                             size_t next, const struct sq_limits *limits, struct sq_model *model,
                             struct sq_error *err)
{
    enum sq_status st = sqi_model_require_empty(model, err);
    if (st != SQ_OK)
        return st;
    struct sq_limits lim;
    sqi_limits_effective(limits, &lim);
    struct sqi_onnx *o = calloc(1, sizeof *o);
    if (!o)
        return fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
    o->proto = unpack_model(o, len, buf);
    if (!o->proto) {
        st = o->over ? fail(err, SQ_ERR_LIMIT, NULL,
                            "the ONNX model needs more than %zu bytes of memory to decode "
                            "(8 times its size plus 64 MiB)",
                            o->budget)
                     : fail(err, SQ_ERR_FORMAT, NULL,
                            "not a valid ONNX model: the protobuf encoding of ModelProto is "
                            "malformed (truncated, a bad tag or wire type, a field numbered 0, or "
                            "a length beyond the end)");
        sqi_onnx_free(o);
        return st;
    }
    if (!o->proto->graph) {
        sqi_onnx_free(o);
        return fail(err, SQ_ERR_FORMAT, NULL, "not an ONNX model: ModelProto has no graph");
    }
    if (opset_of(o->proto, &o->opset) != 0) {
        sqi_onnx_free(o);
        return fail(err, SQ_ERR_FORMAT, NULL,
                    "not an ONNX model: no opset_import for the default domain");
    }
    o->ir_version = o->proto->has_ir_version ? o->proto->ir_version : 0;
    st = parse_graph(o, &lim, ext, next, model, err);
    for (size_t i = 0; st == SQ_OK && i < o->proto->n_metadata_props; i++) {
        const char *k = S(o->proto->metadata_props[i]->key);
        const char *v = S(o->proto->metadata_props[i]->value);
        if (!sqi_utf8_valid(k, strlen(k)) || !sqi_utf8_valid(v, strlen(v)))
            st = fail(err, SQ_ERR_FORMAT, NULL, "metadata_props entry %zu is not UTF-8", i);
        else if (*k)
            st = sq_model_set_meta(model, k, v, err);
    }
    if (st != SQ_OK) {
        sq_model_free(model);
        sqi_onnx_free(o);
        return st;
    }
    model->onnx = o;
    return SQ_OK;
}

void sq_onnx_locations_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

static enum sq_status add_location(const Onnx__TensorProto *tp, char ***names, size_t *n,
                                   struct sq_error *err)
{
    if (!tp->has_data_location || tp->data_location != 1)
        return SQ_OK;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        if (strcmp(S(tp->external_data[i]->key), "location") != 0)
            continue;
        const char *v = S(tp->external_data[i]->value);
        for (size_t j = 0; j < *n; j++)
            if (strcmp((*names)[j], v) == 0)
                return SQ_OK;
        char **nn = realloc(*names, (*n + 1) * sizeof *nn);
        if (!nn)
            return fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
        *names = nn;
        if (!(nn[*n] = sqi_strndup(v, strlen(v))))
            return fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
        ++*n;
    }
    return SQ_OK;
}

enum sq_status sq_onnx_locations(const uint8_t *buf, size_t len, const struct sq_limits *limits,
                                 char ***names, size_t *n, struct sq_error *err)
{
    struct sq_model m;
    sq_model_init(&m);
    *names = NULL;
    *n = 0;
    struct sq_limits lim;
    sqi_limits_effective(limits, &lim);
    struct sqi_onnx o = {0};
    Onnx__ModelProto *p = unpack_model(&o, len, buf);
    if (!p)
        return fail(err, o.over ? SQ_ERR_LIMIT : SQ_ERR_FORMAT, NULL,
                    "not a valid ONNX model: the protobuf encoding of ModelProto is malformed");
    enum sq_status st = SQ_OK;
    const Onnx__GraphProto *g = p->graph;
    for (size_t i = 0; g && st == SQ_OK && i < g->n_initializer; i++)
        st = add_location(g->initializer[i], names, n, err);
    for (size_t i = 0; g && st == SQ_OK && i < g->n_node; i++) {
        const Onnx__AttributeProto *a = attr(g->node[i], "value");
        if (strcmp(S(g->node[i]->op_type), "Constant") == 0 && a && a->t)
            st = add_location(a->t, names, n, err);
    }
    if (st == SQ_OK && *n > lim.max_tensors)
        st = fail(err, SQ_ERR_LIMIT, NULL, "%zu external data files (max_tensors %zu)", *n,
                  lim.max_tensors);
    onnx__model_proto__free_unpacked(p, &o.alloc);
    if (st != SQ_OK) {
        sq_onnx_locations_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return st;
}

bool sq_model_is_onnx(const struct sq_model *model, int64_t *opset)
{
    if (!model->onnx)
        return false;
    if (opset)
        *opset = model->onnx->opset;
    return true;
}

bool sq_onnx_tensor_info(const struct sq_model *model, size_t tensor,
                         struct sq_onnx_tensor_info *info)
{
    const struct sqi_onnx *o = model->onnx;
    if (!o || tensor >= model->count)
        return false;
    const struct onnx_weight *w = &o->w[tensor];
    info->op = w->op;
    info->axis = w->axis;
    info->group = w->group;
    info->rank = w->rank;
    info->dims = w->dims;
    info->constant_node = w->node != SIZE_MAX;
    info->opset = o->opset;
    return true;
}

size_t sq_onnx_skipped(const struct sq_model *model, size_t i, const char **name,
                       const char **reason)
{
    const struct sqi_onnx *o = model->onnx;
    if (!o)
        return 0;
    if (i < o->skip_count) {
        *name = o->skip[i].name;
        *reason = o->skip[i].reason;
    }
    return o->skip_count;
}

/* ------------------------------------------------------------ writing */

/* Every allocation of one write, freed together. */
struct arena {
    void **p;
    size_t n, cap;
    bool oom;
};

static void *ar_alloc(struct arena *a, size_t size)
{
    if (a->oom)
        return NULL;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        void **p = realloc(a->p, cap * sizeof *p);
        if (!p) {
            a->oom = true;
            return NULL;
        }
        a->p = p;
        a->cap = cap;
    }
    void *x = calloc(1, size ? size : 1);
    if (!x) {
        a->oom = true;
        return NULL;
    }
    a->p[a->n++] = x;
    return x;
}

static void ar_free(struct arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->p[i]);
    free(a->p);
}

static char *ar_cat(struct arena *a, const char *x, const char *y)
{
    size_t n = strlen(x), m = strlen(y);
    char *s = ar_alloc(a, n + m + 1);
    if (s) {
        memcpy(s, x, n);
        memcpy(s + n, y, m + 1);
    }
    return s;
}

static Onnx__TensorProto *new_tensor(struct arena *a, const char *name, int type, unsigned rank,
                                     const int64_t *dims, const void *data, size_t nbytes)
{
    Onnx__TensorProto *t = ar_alloc(a, sizeof *t);
    int64_t *d = ar_alloc(a, (rank + 1) * sizeof *d);
    if (!t || !d)
        return NULL;
    onnx__tensor_proto__init(t);
    if (rank)
        memcpy(d, dims, rank * sizeof *d);
    t->n_dims = rank;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = type;
    t->name = (char *)name;
    t->has_raw_data = 1;
    t->raw_data.len = nbytes;
    t->raw_data.data = (uint8_t *)data;
    return t;
}

static Onnx__AttributeProto *new_attr_int(struct arena *a, const char *name, int64_t v)
{
    Onnx__AttributeProto *x = ar_alloc(a, sizeof *x);
    if (!x)
        return NULL;
    onnx__attribute_proto__init(x);
    x->name = (char *)name;
    x->has_type = 1;
    x->type = AT_INT;
    x->has_i = 1;
    x->i = v;
    return x;
}

static Onnx__AttributeProto *new_attr_tensor(struct arena *a, Onnx__TensorProto *t)
{
    Onnx__AttributeProto *x = ar_alloc(a, sizeof *x);
    if (!x)
        return NULL;
    onnx__attribute_proto__init(x);
    x->name = "value";
    x->has_type = 1;
    x->type = AT_TENSOR;
    x->t = t;
    return x;
}

static Onnx__NodeProto *new_node(struct arena *a, const char *op, const char *name, const char *in0,
                                 const char *in1, const char *in2, const char *out,
                                 Onnx__AttributeProto *at)
{
    Onnx__NodeProto *n = ar_alloc(a, sizeof *n);
    char **in = ar_alloc(a, 3 * sizeof *in);
    char **o = ar_alloc(a, sizeof *o);
    Onnx__AttributeProto **atv = ar_alloc(a, sizeof *atv);
    if (!n || !in || !o || !atv || (at == NULL && a->oom))
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    in[0] = (char *)in0, in[1] = (char *)in1, in[2] = (char *)in2;
    n->n_input = in2 ? 3 : in1 ? 2 : in0 ? 1 : 0;
    n->input = in;
    o[0] = (char *)out;
    n->n_output = 1;
    n->output = o;
    if (at) {
        atv[0] = at;
        n->n_attribute = 1;
        n->attribute = atv;
    }
    return n;
}

/* n codes in [-8, 7] two per byte, element 0 in the low nibble (ONNX INT4). */
static void pack_int4(const int8_t *codes, size_t n, uint8_t *out)
{
    memset(out, 0, n / 2 + n % 2);
    for (size_t k = 0; k < n; k++)
        out[k / 2] |= (uint8_t)(((uint8_t)codes[k] & 15u) << (4 * (k % 2)));
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* What one weight turns into. */
struct rewrite {
    Onnx__TensorProto *replace;  /* dequantized: the new tensor in place of the old */
    Onnx__TensorProto *extra[5]; /* QDQ: the tensors to add */
    Onnx__NodeProto *nodes[6];   /* QDQ: the nodes that compute the weight */
    size_t n_extra, n_nodes;
    bool nbits; /* extra[0..2] are MatMulNBits' B, scales, zero points; no nodes */
};

/*
 * A weight quantized per group of g input channels (scales [C, G] in the
 * core's order, G = ceil(I / g)). The input channels run along axis 1 of
 * the model's layout for an output-channel axis 0 (Conv, Gemm transB = 1)
 * and along axis 0 otherwise (MatMul and Gemm [K, N], ConvTranspose).
 * Opset >= 21 with zero points in the code range: DequantizeLinear with
 * axis and block_size, scale and zero point of the weight's dims with the
 * blocked axis cut to G (kernel dims repeated). Otherwise, int8 codes and g
 * dividing I: Cast/Reshape/Sub/Mul/Reshape with a FLOAT scale and zero point
 * per group; else Cast/Sub/Mul with a FLOAT scale and zero point per
 * (output, input) channel pair, shaped [dims0, dims1, 1...] to broadcast
 * over the kernel.
 */
/* Whether every zero point is an integer that the codes' type (int8 or INT4) holds. */
static bool zero_points_fit(const float *zp, size_t n, bool int4)
{
    float lo = int4 ? -8.0f : -128.0f, hi = int4 ? 7.0f : 127.0f;
    for (size_t k = 0; k < n; k++)
        if (!(zp[k] >= lo && zp[k] <= hi && zp[k] == (float)(int)zp[k]))
            return false;
    return true;
}

/* The codes as an INT8 or packed INT4 initializer in the weight's layout; NULL if out of memory. */
static Onnx__TensorProto *codes_tensor(struct arena *a, const char *name,
                                       const struct onnx_weight *w, const struct sq_tensor *t,
                                       const int8_t *codes, bool int4)
{
    if (!int4)
        return new_tensor(a, name, OT_INT8, w->rank, w->dims, codes, t->nelems);
    uint8_t *p = ar_alloc(a, t->nelems / 2 + 1);
    if (!p)
        return NULL;
    pack_int4(codes, t->nelems, p);
    return new_tensor(a, name, OT_INT4, w->rank, w->dims, p, t->nelems / 2 + t->nelems % 2);
}

static enum sq_status rewrite_grouped(struct arena *a, const struct sqi_onnx *o,
                                      const struct sq_tensor *t, const struct onnx_weight *w,
                                      const struct sq_onnx_weight *qw, const int8_t *codes,
                                      bool int4, const char *const *nm, const char **names,
                                      size_t n_names, struct rewrite *rw, struct sq_error *err)
{
    const char *N = t->name;
    size_t A, B, s;
    weight_abs(w, &A, &B, &s);
    size_t C = (size_t)t->shape[0], I = (size_t)t->shape[1], g = qw->group;
    size_t G = (I + g - 1) / g, grp = (size_t)w->group;
    unsigned bax = w->axis == 0 ? 1 : 0;
    bool zp_fits = zero_points_fit(qw->zero_point, C * G, int4);
    bool dql = o->opset >= 21 && zp_fits && grp == 1;
    if (!dql && o->opset < 7)
        return fail(err, SQ_ERR_UNSUPPORTED, N,
                    "tensor '%.100s': the model's opset %" PRId64
                    " is below 7, where Cast/Sub/Mul cannot express the dequantization",
                    N, o->opset);
    if (!(rw->extra[0] = codes_tensor(a, nm[0], w, t, codes, int4)))
        return fail(err, SQ_ERR_NOMEM, N, "out of memory");
    int64_t bd[SQ_MAX_RANK];
    for (unsigned i = 0; i < w->rank; i++)
        bd[i] = w->dims[i];
    if (dql) {
        /* [A, G, s] (bax 1) or [G, B, s] (bax 0) */
        bd[bax] = (int64_t)G;
        size_t cnt = (bax ? A * G : G * B) * s;
        float *sc = ar_alloc(a, cnt * sizeof *sc);
        int8_t *zp = ar_alloc(a, cnt);
        uint8_t *zp4 = ar_alloc(a, cnt / 2 + 1);
        if (!sc || !zp || !zp4)
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        for (size_t k = 0; k < cnt; k++) {
            size_t x = k / s, c, j;
            if (bax) {
                c = x / G, j = x % G;
            } else {
                j = x / B, c = x % B;
            }
            sc[k] = qw->scale[c * G + j];
            zp[k] = (int8_t)qw->zero_point[c * G + j];
        }
        pack_int4(zp, cnt, zp4);
        rw->extra[1] = new_tensor(a, nm[1], OT_FLOAT, w->rank, bd, sc, cnt * sizeof *sc);
        rw->extra[2] = int4 ? new_tensor(a, nm[2], OT_INT4, w->rank, bd, zp4, cnt / 2 + cnt % 2)
                            : new_tensor(a, nm[2], OT_INT8, w->rank, bd, zp, cnt);
        rw->n_extra = 3;
        Onnx__NodeProto *dq = new_node(a, "DequantizeLinear", nm[0], nm[0], nm[1], nm[2], N,
                                       new_attr_int(a, "axis", (int64_t)bax));
        Onnx__AttributeProto **av = ar_alloc(a, 2 * sizeof *av);
        Onnx__AttributeProto *bs = new_attr_int(a, "block_size", (int64_t)g);
        if (!dq || !av || !bs)
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        av[0] = dq->attribute[0];
        av[1] = bs;
        dq->attribute = av;
        dq->n_attribute = 2;
        rw->nodes[0] = dq;
        rw->n_nodes = 1;
        return a->oom ? fail(err, SQ_ERR_NOMEM, N, "out of memory") : SQ_OK;
    }
    if (!int4 && grp == 1 && I % g == 0) {
        /*
         * g divides I: Cast -> Reshape to the view [A, G, g, s] (bax 1) or
         * [G, g, B, s] (bax 0) -> Sub -> Mul with scale and zero point
         * [A, G, 1, 1] or [G, 1, B, 1] -> Reshape to W's dims.
         */
        const char *vsfx[] = {"_view_shape", "_shape", "_view", "_scaled"};
        const char *vn[4];
        for (int i = 0; i < 4; i++) {
            if (!(vn[i] = ar_cat(a, N, vsfx[i])))
                return fail(err, SQ_ERR_NOMEM, N, "out of memory");
            if (bsearch(&vn[i], names, n_names, sizeof *names, str_cmp))
                return fail(err, SQ_ERR_CONFLICT, N,
                            "cannot add '%.100s%s': the model already has a tensor of that name", N,
                            vsfx[i]);
        }
        int64_t *view = ar_alloc(a, 4 * sizeof *view), *shape = ar_alloc(a, 8 * w->rank + 8);
        int64_t sd[4], four = 4, rk = (int64_t)w->rank;
        size_t cnt = bax ? A * G : G * B;
        float *sc = ar_alloc(a, cnt * sizeof *sc), *zf = ar_alloc(a, cnt * sizeof *zf);
        if (!view || !shape || !sc || !zf)
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        if (bax) {
            view[0] = (int64_t)A, view[1] = (int64_t)G, view[2] = (int64_t)g, view[3] = (int64_t)s;
            sd[0] = (int64_t)A, sd[1] = (int64_t)G, sd[2] = 1, sd[3] = 1;
        } else {
            view[0] = (int64_t)G, view[1] = (int64_t)g, view[2] = (int64_t)B, view[3] = (int64_t)s;
            sd[0] = (int64_t)G, sd[1] = 1, sd[2] = (int64_t)B, sd[3] = 1;
        }
        for (size_t k = 0; k < cnt; k++) {
            size_t c = bax ? k / G : k % B, j = bax ? k % G : k / B;
            sc[k] = qw->scale[c * G + j];
            zf[k] = qw->zero_point[c * G + j];
        }
        memcpy(shape, w->dims, 8 * w->rank);
        rw->extra[1] = new_tensor(a, nm[1], OT_FLOAT, 4, sd, sc, cnt * sizeof *sc);
        rw->extra[2] = new_tensor(a, nm[2], OT_FLOAT, 4, sd, zf, cnt * sizeof *zf);
        rw->extra[3] = new_tensor(a, vn[0], OT_INT64, 1, &four, view, 4 * 8);
        rw->extra[4] = new_tensor(a, vn[1], OT_INT64, 1, &rk, shape, 8 * w->rank);
        rw->n_extra = 5;
        rw->nodes[0] =
            new_node(a, "Cast", nm[3], nm[0], NULL, NULL, nm[3], new_attr_int(a, "to", OT_FLOAT));
        rw->nodes[1] = new_node(a, "Reshape", vn[2], nm[3], vn[0], NULL, vn[2], NULL);
        rw->nodes[2] = new_node(a, "Sub", nm[4], vn[2], nm[2], NULL, nm[4], NULL);
        rw->nodes[3] = new_node(a, "Mul", vn[3], nm[4], nm[1], NULL, vn[3], NULL);
        rw->nodes[4] = new_node(a, "Reshape", N, vn[3], vn[1], NULL, N, NULL);
        rw->n_nodes = 5;
        return a->oom ? fail(err, SQ_ERR_NOMEM, N, "out of memory") : SQ_OK;
    }
    for (unsigned i = 2; i < w->rank; i++)
        bd[i] = 1;
    if (!int4 && grp == 1) {
        /*
         * g does not divide I: scale and zero point [A, G, 1...] (bax 1) or
         * [G, B, 1...] (bax 0), spread to [dims0, dims1, 1...] by Gather along
         * the input-channel axis with the INT64 indices i / g.
         */
        const char *gsfx[] = {"_group_index", "_scale_gathered", "_zero_point_gathered"};
        const char *gn[3];
        for (int i = 0; i < 3; i++) {
            if (!(gn[i] = ar_cat(a, N, gsfx[i])))
                return fail(err, SQ_ERR_NOMEM, N, "out of memory");
            if (bsearch(&gn[i], names, n_names, sizeof *names, str_cmp))
                return fail(err, SQ_ERR_CONFLICT, N,
                            "cannot add '%.100s%s': the model already has a tensor of that name", N,
                            gsfx[i]);
        }
        int64_t cd[SQ_MAX_RANK], il = (int64_t)I;
        memcpy(cd, bd, sizeof cd);
        cd[bax] = (int64_t)G;
        size_t cnt = bax ? A * G : G * B;
        float *sc = ar_alloc(a, cnt * sizeof *sc), *zf = ar_alloc(a, cnt * sizeof *zf);
        uint8_t *idx = ar_alloc(a, 8 * I);
        if (!sc || !zf || !idx)
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        for (size_t k = 0; k < cnt; k++) {
            size_t c = bax ? k / G : k % B, j = bax ? k % G : k / B;
            sc[k] = qw->scale[c * G + j];
            zf[k] = qw->zero_point[c * G + j];
        }
        for (size_t i = 0; i < I; i++)
            for (int b = 0; b < 8; b++)
                idx[8 * i + (size_t)b] = (uint8_t)((uint64_t)(i / g) >> (8 * b));
        rw->extra[1] = new_tensor(a, nm[1], OT_FLOAT, w->rank, cd, sc, cnt * sizeof *sc);
        rw->extra[2] = new_tensor(a, nm[2], OT_FLOAT, w->rank, cd, zf, cnt * sizeof *zf);
        rw->extra[3] = new_tensor(a, gn[0], OT_INT64, 1, &il, idx, 8 * I);
        rw->n_extra = 4;
        rw->nodes[0] = new_node(a, "Gather", gn[1], nm[1], gn[0], NULL, gn[1],
                                new_attr_int(a, "axis", (int64_t)bax));
        rw->nodes[1] = new_node(a, "Gather", gn[2], nm[2], gn[0], NULL, gn[2],
                                new_attr_int(a, "axis", (int64_t)bax));
        rw->nodes[2] =
            new_node(a, "Cast", nm[3], nm[0], NULL, NULL, nm[3], new_attr_int(a, "to", OT_FLOAT));
        rw->nodes[3] = new_node(a, "Sub", nm[4], nm[3], gn[2], NULL, nm[4], NULL);
        rw->nodes[4] = new_node(a, "Mul", N, nm[4], gn[1], NULL, N, NULL);
        rw->n_nodes = 5;
        return a->oom ? fail(err, SQ_ERR_NOMEM, N, "out of memory") : SQ_OK;
    }
    size_t cnt = A * B;
    float *sc = ar_alloc(a, cnt * sizeof *sc), *zf = ar_alloc(a, cnt * sizeof *zf);
    if (!sc || !zf)
        return fail(err, SQ_ERR_NOMEM, N, "out of memory");
    for (size_t k = 0; k < cnt; k++) {
        size_t x = k / B, y = k % B, c, i;
        if (bax) {
            c = x, i = y;
        } else {
            c = (x / (A / grp)) * B + y, i = x % (A / grp);
        }
        sc[k] = qw->scale[c * G + i / g];
        zf[k] = qw->zero_point[c * G + i / g];
    }
    rw->extra[1] = new_tensor(a, nm[1], OT_FLOAT, w->rank, bd, sc, cnt * sizeof *sc);
    rw->extra[2] = new_tensor(a, nm[2], OT_FLOAT, w->rank, bd, zf, cnt * sizeof *zf);
    rw->n_extra = 3;
    if (int4) {
        static const float one = 1.0f;
        static const uint8_t zero4 = 0;
        rw->extra[3] = new_tensor(a, nm[5], OT_FLOAT, 0, NULL, &one, sizeof one);
        rw->extra[4] = new_tensor(a, nm[6], OT_INT4, 0, NULL, &zero4, 1);
        rw->n_extra = 5;
        rw->nodes[0] = new_node(a, "DequantizeLinear", nm[3], nm[0], nm[5], nm[6], nm[3], NULL);
    } else {
        rw->nodes[0] =
            new_node(a, "Cast", nm[3], nm[0], NULL, NULL, nm[3], new_attr_int(a, "to", OT_FLOAT));
    }
    rw->nodes[1] = new_node(a, "Sub", nm[4], nm[3], nm[2], NULL, nm[4], NULL);
    rw->nodes[2] = new_node(a, "Mul", N, nm[4], nm[1], NULL, N, NULL);
    rw->n_nodes = 3;
    return a->oom ? fail(err, SQ_ERR_NOMEM, N, "out of memory") : SQ_OK;
}

bool sq_onnx_nbits_block_ok(size_t g)
{
    return g >= 16 && g <= 256 && (g & (g - 1)) == 0;
}

/* Whether every reader of `name` is a MatMul (with an A) taking it as B, and no graph output. */
static bool read_as_matmul_b(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_output; i++)
        if (strcmp(S(g->output[i]->name), name) == 0)
            return false;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t j = 0; j < n->n_input; j++)
            if (strcmp(n->input[j], name) == 0 &&
                !(j == 1 && n->n_input == 2 && *n->input[0] && n->n_output == 1 &&
                  default_domain(n->domain) && strcmp(S(n->op_type), "MatMul") == 0))
                return false;
    }
    return true;
}

/*
 * A MatMul weight [K, N] (the core's [N, K]) as the inputs of ONNX Runtime's
 * com.microsoft MatMulNBits: B UINT8 [N, ceil(K / g), g / 2] holding the
 * codes + 8 (0...15) two per byte along K, element 0 in the low nibble, the
 * last block padded with zeros; scales FLOAT [N * ceil(K / g)]; zero points
 * + 8 as UINT8 [N * ceil(ceil(K / g) / 2)] two per byte when they are all
 * integers in 0...15, else FLOAT [N * ceil(K / g)] (SQUANT-SPEC 8.1). False
 * (the caller writes the QDQ form) when a zero point + 8 is not exact in float.
 */
static bool rewrite_nbits(struct arena *a, const struct sq_tensor *t,
                          const struct sq_onnx_weight *qw, const char *const *nm,
                          struct rewrite *rw)
{
    size_t N = (size_t)t->shape[0], K = (size_t)t->shape[1], g = qw->group;
    size_t nb = (K + g - 1) / g, half = (nb + 1) / 2, cnt = N * nb;
    float *zf = ar_alloc(a, cnt * sizeof *zf);
    if (!zf)
        return true; /* a->oom: the caller fails */
    bool packed = true;
    for (size_t k = 0; k < cnt; k++) {
        float z = qw->zero_point[k];
        zf[k] = z + 8.0f;
        if ((double)zf[k] != (double)z + 8.0)
            return false;
        packed = packed && zf[k] >= 0.0f && zf[k] <= 15.0f && zf[k] == (float)(int)zf[k];
    }
    uint8_t *b = ar_alloc(a, N * nb * (g / 2));
    uint8_t *zp = ar_alloc(a, N * half);
    if (!b || !zp)
        return true;
    memset(b, 0, N * nb * (g / 2));
    memset(zp, 0, N * half);
    for (size_t n = 0; n < N; n++) {
        const int8_t *q = qw->codes + n * K;
        uint8_t *row = b + n * nb * (g / 2);
        for (size_t k = 0; k < K; k++)
            row[(k / g) * (g / 2) + (k % g) / 2] |=
                (uint8_t)(((unsigned)(q[k] + 8) & 15u) << (4 * (k % 2)));
        for (size_t j = 0; packed && j < nb; j++)
            zp[n * half + j / 2] |= (uint8_t)((unsigned)zf[n * nb + j] << (4 * (j % 2)));
    }
    int64_t bd[3] = {(int64_t)N, (int64_t)nb, (int64_t)(g / 2)}, sd = (int64_t)cnt,
            zd = (int64_t)(packed ? N * half : cnt);
    rw->extra[0] = new_tensor(a, nm[0], OT_UINT8, 3, bd, b, N * nb * (g / 2));
    rw->extra[1] = new_tensor(a, nm[1], OT_FLOAT, 1, &sd, qw->scale, cnt * sizeof(float));
    rw->extra[2] = packed ? new_tensor(a, nm[2], OT_UINT8, 1, &zd, zp, N * half)
                          : new_tensor(a, nm[2], OT_FLOAT, 1, &zd, zf, cnt * sizeof *zf);
    rw->n_extra = 3;
    rw->nbits = true;
    return true;
}

/* MatMul(A, W) -> MatMulNBits(A, W_quantized, W_scale, W_zero_point) of the weight `t`. */
static Onnx__NodeProto *nbits_node(struct arena *a, const Onnx__NodeProto *mm,
                                   const struct sq_tensor *t, const struct sq_onnx_weight *qw,
                                   const struct rewrite *rw)
{
    Onnx__NodeProto *n = ar_alloc(a, sizeof *n);
    char **in = ar_alloc(a, 4 * sizeof *in);
    Onnx__AttributeProto **av = ar_alloc(a, 4 * sizeof *av);
    if (!n || !in || !av)
        return NULL;
    *n = *mm;
    n->domain = "com.microsoft";
    n->op_type = "MatMulNBits";
    in[0] = mm->input[0];
    for (int i = 0; i < 3; i++)
        in[i + 1] = rw->extra[i]->name;
    n->input = in;
    n->n_input = 4;
    av[0] = new_attr_int(a, "K", t->shape[1]);
    av[1] = new_attr_int(a, "N", t->shape[0]);
    av[2] = new_attr_int(a, "bits", 4);
    av[3] = new_attr_int(a, "block_size", (int64_t)qw->group);
    n->attribute = av;
    n->n_attribute = 4;
    return a->oom ? NULL : n;
}

/*
 * The QDQ forms compute FLOAT: a FLOAT16, BFLOAT16 or DOUBLE weight gets a
 * Cast back to its type (the node that computed `W` now computes
 * `W_float`), so that its consumers see the type they had; the values are
 * those of the dequantized output, float rounded to nearest even.
 */
static enum sq_status cast_back(struct arena *a, const char *N, int type, const char **names,
                                size_t n_names, struct rewrite *rw, struct sq_error *err)
{
    const char *fn = ar_cat(a, N, "_float");
    if (!fn)
        return fail(err, SQ_ERR_NOMEM, N, "out of memory");
    if (bsearch(&fn, names, n_names, sizeof *names, str_cmp))
        return fail(err, SQ_ERR_CONFLICT, N,
                    "cannot add '%.100s_float': the model already has a tensor of that name", N);
    Onnx__NodeProto *last = rw->nodes[rw->n_nodes - 1];
    last->output[0] = (char *)fn;
    Onnx__NodeProto *c =
        new_node(a, "Cast", fn, fn, NULL, NULL, N, new_attr_int(a, "to", (int64_t)type));
    if (!c)
        return fail(err, SQ_ERR_NOMEM, N, "out of memory");
    rw->nodes[rw->n_nodes++] = c;
    return SQ_OK;
}

static enum sq_status rewrite_weight(struct arena *a, const struct sqi_onnx *o,
                                     const struct sq_model *model, const struct sq_onnx_weight *qw,
                                     enum sq_onnx_layout layout, const char **names, size_t n_names,
                                     struct rewrite *rw, struct sq_error *err)
{
    const struct sq_tensor *t = &model->tensors[qw->tensor];
    const struct onnx_weight *w = &o->w[qw->tensor];
    const char *N = t->name;
    size_t C = (size_t)t->shape[0], A, B, s;
    weight_abs(w, &A, &B, &s);
    memset(rw, 0, sizeof *rw);
    if (layout == SQ_ONNX_DEQUANTIZED) {
        size_t esz = sq_dtype_size(t->dtype);
        uint8_t *core = ar_alloc(a, t->nelems * esz), *mine = core;
        Onnx__TensorProto *nt = ar_alloc(a, sizeof *nt);
        if (!core || !nt)
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        sq_tensor_from_f32(t->dtype, qw->dequantized, t->nelems, core);
        if (w->axis == 1 && !(mine = ar_alloc(a, t->nelems * esz)))
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        if (w->axis == 1)
            swap_groups(core, mine, esz, A, B, s, (size_t)w->group, false);
        *nt = *w->tp;
        nt->n_float_data = nt->n_int32_data = nt->n_double_data = nt->n_int64_data = 0;
        nt->n_uint64_data = nt->n_external_data = 0;
        nt->has_data_location = 0;
        nt->has_raw_data = 1;
        nt->raw_data.len = t->nelems * esz;
        nt->raw_data.data = mine;
        rw->replace = nt;
        return SQ_OK;
    }
    const char *sfx[] = {"_quantized", "_scale", "_zero_point", "_cast",
                         "_centered",  "_one",   "_zero"};
    const char *nm[7];
    for (int i = 0; i < 7; i++) {
        if (!(nm[i] = ar_cat(a, N, sfx[i])))
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        if (bsearch(&nm[i], names, n_names, sizeof *names, str_cmp))
            return fail(err, SQ_ERR_CONFLICT, N,
                        "cannot add '%.100s%s': the model already has a tensor of that name", N,
                        sfx[i]);
    }
    if (layout == SQ_ONNX_MATMULNBITS && strcmp(w->op, "MatMul") == 0 && w->rank == 2 &&
        w->data_type == OT_FLOAT && read_as_matmul_b(o->proto->graph, N)) {
        if (qw->bits > 4 || !sq_onnx_nbits_block_ok(qw->group))
            return fail(err, SQ_ERR_ARG, N,
                        "tensor '%.100s': MatMulNBits takes codes of at most 4 bits in blocks "
                        "of 16, 32, 64, 128 or 256 input channels (group)",
                        N);
        if (rewrite_nbits(a, t, qw, nm, rw))
            return a->oom ? fail(err, SQ_ERR_NOMEM, N, "out of memory") : SQ_OK;
        memset(rw, 0, sizeof *rw); /* a zero point + 8 not exact in float: QDQ below */
    }
    int8_t *codes = (int8_t *)qw->codes;
    if (w->axis == 1) {
        if (!(codes = ar_alloc(a, t->nelems)))
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        swap_groups((const uint8_t *)qw->codes, (uint8_t *)codes, 1, A, B, s, (size_t)w->group,
                    false);
    }
    bool int4 = layout == SQ_ONNX_QDQ_INT4;
    if (qw->group && qw->group < (size_t)t->shape[1]) /* else one group: per channel */
        return rewrite_grouped(a, o, t, w, qw, codes, int4, nm, names, n_names, rw, err);
    bool zp_fits = zero_points_fit(qw->zero_point, C, int4);
    bool per_axis = w->axis == 0 || w->group == 1;
    bool dql = o->opset >= 13 && zp_fits && per_axis;
    if (!dql && o->opset < 7)
        return fail(err, SQ_ERR_UNSUPPORTED, N,
                    "tensor '%.100s': the model's opset %" PRId64
                    " is below 7, where Cast/Sub/Mul cannot express the dequantization",
                    N, o->opset);
    if (!(rw->extra[0] = codes_tensor(a, nm[0], w, t, codes, int4)))
        return fail(err, SQ_ERR_NOMEM, N, "out of memory");
    if (dql) {
        int64_t dc = (int64_t)C;
        int8_t *zp = ar_alloc(a, C);
        uint8_t *zp4 = ar_alloc(a, C / 2 + 1);
        if (!zp || !zp4)
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        for (size_t c = 0; c < C; c++)
            zp[c] = (int8_t)qw->zero_point[c];
        pack_int4(zp, C, zp4);
        rw->extra[1] = new_tensor(a, nm[1], OT_FLOAT, 1, &dc, qw->scale, C * sizeof(float));
        rw->extra[2] = int4 ? new_tensor(a, nm[2], OT_INT4, 1, &dc, zp4, C / 2 + C % 2)
                            : new_tensor(a, nm[2], OT_INT8, 1, &dc, zp, C);
        rw->nodes[0] = new_node(a, "DequantizeLinear", nm[0], nm[0], nm[1], nm[2], N,
                                new_attr_int(a, "axis", w->axis));
        rw->n_nodes = 1;
    } else {
        /* Broadcast shapes: [C, 1...] along the axis, or [A, B, 1...] for grouped ConvTranspose. */
        int64_t bd[SQ_MAX_RANK];
        unsigned br = 0;
        size_t cnt = C;
        if (per_axis) {
            bd[br++] = (int64_t)C;
            for (unsigned i = (unsigned)w->axis + 1; i < w->rank; i++)
                bd[br++] = 1;
        } else {
            bd[br++] = (int64_t)A;
            bd[br++] = (int64_t)B;
            for (unsigned i = 2; i < w->rank; i++)
                bd[br++] = 1;
            cnt = A * B;
        }
        float *sc = ar_alloc(a, cnt * sizeof *sc), *zf = ar_alloc(a, cnt * sizeof *zf);
        if (!sc || !zf)
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        for (size_t k = 0; k < cnt; k++) {
            size_t c = per_axis ? k : (k / B) / (A / (size_t)w->group) * B + k % B;
            sc[k] = qw->scale[c];
            zf[k] = qw->zero_point[c];
        }
        rw->extra[1] = new_tensor(a, nm[1], OT_FLOAT, br, bd, sc, cnt * sizeof *sc);
        rw->extra[2] = new_tensor(a, nm[2], OT_FLOAT, br, bd, zf, cnt * sizeof *zf);
        rw->n_extra = 3;
        if (int4) {
            /*
             * INT4 to float: DequantizeLinear with scale 1 and zero point 0 is
             * exact and exists at opset 21 (ONNX Runtime has no Cast from INT4).
             */
            static const float one = 1.0f;
            static const uint8_t zero4 = 0;
            rw->extra[3] = new_tensor(a, nm[5], OT_FLOAT, 0, NULL, &one, sizeof one);
            rw->extra[4] = new_tensor(a, nm[6], OT_INT4, 0, NULL, &zero4, 1);
            rw->n_extra = 5;
            rw->nodes[0] = new_node(a, "DequantizeLinear", nm[3], nm[0], nm[5], nm[6], nm[3], NULL);
        } else {
            rw->nodes[0] = new_node(a, "Cast", nm[3], nm[0], NULL, NULL, nm[3],
                                    new_attr_int(a, "to", OT_FLOAT));
        }
        rw->nodes[1] = new_node(a, "Sub", nm[4], nm[3], nm[2], NULL, nm[4], NULL);
        rw->nodes[2] = new_node(a, "Mul", N, nm[4], nm[1], NULL, N, NULL);
        rw->n_nodes = 3;
        if (a->oom)
            return fail(err, SQ_ERR_NOMEM, N, "out of memory");
        return SQ_OK;
    }
    rw->n_extra = 3;
    if (a->oom)
        return fail(err, SQ_ERR_NOMEM, N, "out of memory");
    return SQ_OK;
}

/* MatMulNBits lives in ONNX Runtime's domain: import com.microsoft version 1 unless the model does.
 */
static enum sq_status import_microsoft(struct arena *a, const Onnx__ModelProto *m,
                                       Onnx__ModelProto *m2, struct sq_error *err)
{
    for (size_t i = 0; i < m->n_opset_import; i++)
        if (strcmp(S(m->opset_import[i]->domain), "com.microsoft") == 0)
            return SQ_OK;
    Onnx__OperatorSetIdProto **v = ar_alloc(a, (m->n_opset_import + 1) * sizeof *v);
    Onnx__OperatorSetIdProto *ms = ar_alloc(a, sizeof *ms);
    if (!v || !ms)
        return fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
    onnx__operator_set_id_proto__init(ms);
    ms->domain = "com.microsoft";
    ms->has_version = 1;
    ms->version = 1;
    if (m->n_opset_import)
        memcpy(v, m->opset_import, m->n_opset_import * sizeof *v);
    v[m->n_opset_import] = ms;
    m2->opset_import = v;
    m2->n_opset_import = m->n_opset_import + 1;
    return SQ_OK;
}

enum sq_status sq_onnx_write(const struct sq_model *model, const struct sq_onnx_weight *qw,
                             size_t n, enum sq_onnx_layout layout, const char *report, size_t limit,
                             uint8_t **out, size_t *out_len, struct sq_error *err)
{
    const struct sqi_onnx *o = model->onnx;
    if (!o)
        return fail(err, SQ_ERR_ARG, NULL,
                    "format onnx needs an ONNX input (the graph to put the weights in)");
    if (layout == SQ_ONNX_QDQ_INT4 && o->opset < 21)
        return fail(err, SQ_ERR_DTYPE, NULL,
                    "packing int4 needs ONNX INT4 tensors and DequantizeLinear of opset 21; this "
                    "model's opset is %" PRId64
                    " (squantd never changes a model's opset): use packing=none",
                    o->opset);
    const Onnx__ModelProto *m = o->proto;
    const Onnx__GraphProto *g = m->graph;
    struct arena a = {0};
    enum sq_status st = SQ_OK;
    Onnx__ModelProto m2 = *m;
    Onnx__GraphProto g2 = *g;
    m2.graph = &g2;
    struct rewrite *rw = ar_alloc(&a, (n + 1) * sizeof *rw);
    /* which model tensor each initializer / node is, SIZE_MAX: none */
    size_t *init_w = ar_alloc(&a, (g->n_initializer + 1) * sizeof *init_w);
    size_t *node_w = ar_alloc(&a, (g->n_node + 1) * sizeof *node_w);
    size_t n_names = g->n_initializer + g->n_input;
    for (size_t i = 0; i < g->n_node; i++)
        n_names += g->node[i]->n_output;
    const char **names = ar_alloc(&a, (n_names + 1) * sizeof *names);
    if (!rw || !init_w || !node_w || !names) {
        st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < g->n_initializer; i++)
        names[k++] = S(g->initializer[i]->name);
    for (size_t i = 0; i < g->n_input; i++)
        names[k++] = S(g->input[i]->name);
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t j = 0; j < g->node[i]->n_output; j++)
            names[k++] = g->node[i]->output[j];
    qsort(names, n_names, sizeof *names, str_cmp);
    memset(init_w, 0xff, (g->n_initializer + 1) * sizeof *init_w);
    memset(node_w, 0xff, (g->n_node + 1) * sizeof *node_w);
    size_t add_inits = 0, add_nodes = 0, n_nbits = 0;
    for (size_t i = 0; i < n; i++) {
        if (qw[i].tensor >= model->count || model->tensors[qw[i].tensor].nelems == 0) {
            st = fail(err, SQ_ERR_ARG, NULL, "weight %zu: no such tensor, or an empty one", i);
            goto done;
        }
        const struct onnx_weight *w = &o->w[qw[i].tensor];
        st = rewrite_weight(&a, o, model, &qw[i], layout, names, n_names, &rw[i], err);
        if (st == SQ_OK && rw[i].n_nodes && w->data_type != OT_FLOAT)
            st = cast_back(&a, model->tensors[qw[i].tensor].name, w->data_type, names, n_names,
                           &rw[i], err);
        if (st != SQ_OK)
            goto done;
        if (w->init != SIZE_MAX)
            init_w[w->init] = i;
        else
            node_w[w->node] = i;
        n_nbits += rw[i].nbits;
        add_nodes += rw[i].n_nodes + (w->init == SIZE_MAX ? rw[i].n_extra : 0);
        add_inits += w->init != SIZE_MAX ? rw[i].n_extra : 0;
    }
    /* Initializers: kept in order, a quantized one replaced (dequantized) or dropped (QDQ). */
    g2.initializer = ar_alloc(&a, (g->n_initializer + add_inits + 1) * sizeof *g2.initializer);
    g2.node = ar_alloc(&a, (g->n_node + add_nodes + 1) * sizeof *g2.node);
    g2.input = ar_alloc(&a, (g->n_input + 1) * sizeof *g2.input);
    m2.metadata_props = ar_alloc(&a, (m->n_metadata_props + 1) * sizeof *m2.metadata_props);
    Onnx__StringStringEntryProto *rep = ar_alloc(&a, sizeof *rep);
    if (!g2.initializer || !g2.node || !g2.input || !m2.metadata_props || !rep) {
        st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    g2.n_initializer = g2.n_node = g2.n_input = m2.n_metadata_props = 0;
    for (size_t i = 0; i < g->n_initializer; i++) {
        size_t wi = init_w[i];
        if (wi == SIZE_MAX)
            g2.initializer[g2.n_initializer++] = g->initializer[i];
        else if (rw[wi].replace)
            g2.initializer[g2.n_initializer++] = rw[wi].replace;
    }
    /* The nodes that compute the weights come first: their inputs are constants. */
    for (size_t i = 0; i < n; i++) {
        const struct onnx_weight *w = &o->w[qw[i].tensor];
        if (w->init != SIZE_MAX) {
            for (size_t j = 0; j < rw[i].n_extra; j++)
                g2.initializer[g2.n_initializer++] = rw[i].extra[j];
        } else {
            for (size_t j = 0; j < rw[i].n_extra; j++) {
                Onnx__TensorProto *t = rw[i].extra[j];
                Onnx__NodeProto *c = new_node(&a, "Constant", t->name, NULL, NULL, NULL, t->name,
                                              new_attr_tensor(&a, t));
                if (!c) {
                    st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
                    goto done;
                }
                g2.node[g2.n_node++] = c;
            }
        }
        for (size_t j = 0; j < rw[i].n_nodes; j++)
            g2.node[g2.n_node++] = rw[i].nodes[j];
    }
    for (size_t i = 0; i < g->n_node; i++) {
        size_t wi = node_w[i];
        if (wi == SIZE_MAX) {
            const Onnx__NodeProto *on = g->node[i];
            size_t nb = SIZE_MAX; /* the MatMulNBits weight this MatMul reads as B */
            for (size_t j = 0; n_nbits && j < n && nb == SIZE_MAX; j++)
                if (rw[j].nbits && on->n_input == 2 &&
                    strcmp(on->input[1], model->tensors[qw[j].tensor].name) == 0)
                    nb = j;
            Onnx__NodeProto *nn = (Onnx__NodeProto *)on;
            if (nb != SIZE_MAX &&
                !(nn = nbits_node(&a, on, &model->tensors[qw[nb].tensor], &qw[nb], &rw[nb]))) {
                st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
                goto done;
            }
            g2.node[g2.n_node++] = nn;
        } else if (rw[wi].replace) {
            /* The Constant node with its value attribute pointing at the new tensor. */
            const Onnx__NodeProto *on = g->node[i];
            Onnx__NodeProto *nn = ar_alloc(&a, sizeof *nn);
            Onnx__AttributeProto **av = ar_alloc(&a, (on->n_attribute + 1) * sizeof *av);
            Onnx__AttributeProto *va = ar_alloc(&a, sizeof *va);
            if (!nn || !av || !va) {
                st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
                goto done;
            }
            *nn = *on;
            for (size_t j = 0; j < on->n_attribute; j++) {
                av[j] = on->attribute[j];
                if (strcmp(S(av[j]->name), "value") == 0 && av[j]->t == o->w[qw[wi].tensor].tp) {
                    *va = *av[j];
                    va->t = rw[wi].replace;
                    av[j] = va;
                }
            }
            nn->attribute = av;
            g2.node[g2.n_node++] = nn;
        }
    }
    /* A quantized initializer that was also a graph input (IR < 4) is no longer one. */
    for (size_t i = 0; i < g->n_input; i++) {
        bool drop = false;
        for (size_t j = 0; layout != SQ_ONNX_DEQUANTIZED && j < n && !drop; j++)
            drop = o->w[qw[j].tensor].init != SIZE_MAX &&
                   strcmp(S(g->input[i]->name), model->tensors[qw[j].tensor].name) == 0;
        if (!drop)
            g2.input[g2.n_input++] = g->input[i];
    }
    if (n_nbits && (st = import_microsoft(&a, m, &m2, err)) != SQ_OK)
        goto done;
    for (size_t i = 0; i < m->n_metadata_props; i++)
        if (strcmp(S(m->metadata_props[i]->key), "squant") != 0)
            m2.metadata_props[m2.n_metadata_props++] = m->metadata_props[i];
    if (report) {
        onnx__string_string_entry_proto__init(rep);
        rep->key = "squant";
        rep->value = (char *)report;
        m2.metadata_props[m2.n_metadata_props++] = rep;
    }
    st = pack_model(&m2, limit, out, out_len, err);
done:
    ar_free(&a);
    return st;
}

/* ------------------------------------------------------------ reading QDQ back */

/* A constant of the graph: an initializer or a Constant node's value. */
struct konst {
    const char *name;
    Onnx__TensorProto *tp;
    size_t init, node;
    size_t uses; /* inputs of nodes that stay, and graph outputs */
};

static int konst_cmp(const void *a, const void *b)
{
    return strcmp(((const struct konst *)a)->name, ((const struct konst *)b)->name);
}

/* Output name -> producing node. */
struct prod {
    const char *name;
    size_t node;
    size_t uses;
};

static int prod_cmp(const void *a, const void *b)
{
    return strcmp(((const struct prod *)a)->name, ((const struct prod *)b)->name);
}

struct dq_ctx {
    const Onnx__GraphProto *g;
    const struct sq_limits *lim;
    struct konst *k;
    size_t nk;
    struct prod *p;
    size_t np;
    uint64_t total;
};

static struct konst *konst_get(struct dq_ctx *c, const char *name)
{
    struct konst key = {.name = name};
    return bsearch(&key, c->k, c->nk, sizeof *c->k, konst_cmp);
}

static struct prod *prod_get(struct dq_ctx *c, const char *name)
{
    struct prod key = {.name = name};
    return bsearch(&key, c->p, c->np, sizeof *c->p, prod_cmp);
}

/* The values of an integer (INT8, UINT8, INT4) or FLOAT constant as float, or NULL. */
static float *konst_values(struct dq_ctx *c, const Onnx__TensorProto *tp, size_t *n,
                           struct sq_error *err, enum sq_status *st)
{
    const char *name = S(tp->name);
    *st = check_dims(c->lim, tp, name, err);
    if (*st != SQ_OK)
        return NULL;
    size_t count = 1;
    for (size_t i = 0; i < tp->n_dims; i++)
        count *= (size_t)tp->dims[i];
    uint64_t t;
    if (__builtin_add_overflow(c->total, (uint64_t)count, &t) || t > c->lim->max_total_elements) {
        *st = fail(err, SQ_ERR_LIMIT, name,
                   "the weights hold more than %" PRIu64 " elements in total (max_total_elements)",
                   c->lim->max_total_elements);
        return NULL;
    }
    c->total = t;
    int type = tp->data_type;
    size_t need = type == OT_FLOAT ? 4 * count : type == OT_INT4 ? count / 2 + count % 2 : count;
    const uint8_t *d = tp->raw_data.data;
    size_t have = tp->raw_data.len;
    if (!tp->has_raw_data && type == OT_FLOAT) {
        d = (const uint8_t *)tp->float_data;
        have = 4 * tp->n_float_data;
    }
    if (tp->has_data_location && tp->data_location == 1) {
        *st = SQ_OK; /* not ours: the writer inlines what it adds */
        return NULL;
    }
    if ((type != OT_FLOAT && type != OT_INT8 && type != OT_UINT8 && type != OT_INT4) ||
        (!tp->has_raw_data && type != OT_FLOAT)) {
        *st = SQ_OK;
        return NULL;
    }
    if (have != need) {
        *st = fail(err, SQ_ERR_SHAPE, name,
                   "tensor '%.100s': %zu bytes of data, its shape needs %zu", name, have, need);
        return NULL;
    }
    float *v = malloc((count ? count : 1) * sizeof *v);
    if (!v) {
        *st = fail(err, SQ_ERR_NOMEM, name, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (type == OT_FLOAT) {
            memcpy(&v[i], d + 4 * i, 4);
        } else if (type == OT_INT8) {
            v[i] = (float)(int8_t)d[i];
        } else if (type == OT_UINT8) {
            v[i] = (float)d[i];
        } else {
            unsigned nib = (d[i / 2] >> (4 * (i % 2))) & 15u;
            v[i] = (float)(nib >= 8 ? (int)nib - 16 : (int)nib);
        }
    }
    *n = count;
    *st = SQ_OK;
    return v;
}

/*
 * Index into a tensor of dims `bd` (rank br) broadcast right-aligned
 * against `dims` (rank r), for flat index i of dims. -1 if it does not
 * broadcast.
 */
static bool broadcasts(const int64_t *bd, size_t br, const int64_t *dims, size_t r)
{
    if (br > r)
        return false;
    for (size_t k = 0; k < br; k++) {
        int64_t a = bd[k], b = dims[r - br + k];
        if (a != 1 && a != b)
            return false;
    }
    return true;
}

static size_t bindex(size_t i, const int64_t *bd, size_t br, const int64_t *dims, size_t r)
{
    size_t off = 0, stride = 1;
    for (size_t k = r; k-- > 0;) {
        size_t d = (size_t)dims[k], ix = i % d;
        i /= d;
        size_t j = k + br;
        if (j >= r) { /* this axis exists in bd */
            size_t bk = j - r;
            size_t bdim = (size_t)bd[bk];
            off += (bdim == 1 ? 0 : ix) * stride;
            stride *= bdim;
        }
    }
    return off;
}

/* One weight computed by a DQ subgraph: its value and what computes it. */
struct restored {
    const char *name; /* the weight (the subgraph's output) */
    struct konst *q;  /* the codes */
    size_t nodes[7];  /* the nodes that go */
    size_t n_nodes;
    float *w;                /* owned: the values, dims of q (or dims) */
    int type;                /* 0: FLOAT; else the Cast's type (FLOAT16, BFLOAT16, DOUBLE) */
    int64_t dims[2];         /* MatMulNBits: the weight's [K, N] */
    Onnx__NodeProto *matmul; /* MatMulNBits: the MatMul that takes its place */
};

/* The MatMul(A, name) that takes the place of MatMulNBits node ni; w (owned, or NULL) its weight.
 */
static enum sq_status nbits_matmul(struct arena *a, const Onnx__NodeProto *n, const char *name,
                                   struct konst *q, size_t ni, float *w, int64_t K, int64_t N,
                                   struct restored *r, struct sq_error *err)
{
    Onnx__NodeProto *mm = ar_alloc(a, sizeof *mm);
    char **in = ar_alloc(a, 2 * sizeof *in);
    if (!mm || !in) {
        free(w);
        return fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
    }
    onnx__node_proto__init(mm);
    mm->name = n->name;
    mm->op_type = "MatMul";
    in[0] = n->input[0];
    in[1] = (char *)name;
    mm->input = in;
    mm->n_input = 2;
    mm->output = n->output;
    mm->n_output = 1;
    *r = (struct restored){
        .name = name, .q = q, .nodes = {ni}, .n_nodes = 1, .w = w, .dims = {K, N}, .matmul = mm};
    return SQ_OK;
}

/*
 * com.microsoft MatMulNBits(A, B, scales[, zero_points]) over constants, 4
 * bits, as sq_onnx_write writes it: the MatMul(A, W) it stands for, with W
 * [K, N] = (B - zero point) * scale (ONNX Runtime's definition; the zero
 * point 8 when absent). W is named after B without its "_quantized"; a B
 * named otherwise, or a name taken, is left as it is.
 */
static enum sq_status try_nbits(struct dq_ctx *c, struct arena *a, size_t ni,
                                const struct restored *done_r, size_t n_done, struct restored *r,
                                struct sq_error *err)
{
    const Onnx__NodeProto *n = c->g->node[ni];
    if (n->n_input < 3 || n->n_input > 4 || n->n_output != 1 || !*n->input[0])
        return SQ_OK;
    int64_t K = attr_int(n, "K", 0), N = attr_int(n, "N", 0), bs = attr_int(n, "block_size", 0);
    if (attr_int(n, "bits", 4) != 4 || K <= 0 || N <= 0 || bs < 16 || (bs & (bs - 1)) != 0 ||
        (uint64_t)K > c->lim->max_dim || (uint64_t)N > c->lim->max_dim)
        return SQ_OK;
    struct konst *q = konst_get(c, n->input[1]), *s = konst_get(c, n->input[2]);
    struct konst *z = n->n_input > 3 && *n->input[3] ? konst_get(c, n->input[3]) : NULL;
    const char *qn = n->input[1];
    size_t ql = strlen(qn), sl = strlen("_quantized");
    if (!q || !s || (n->n_input > 3 && *n->input[3] && !z) || q->tp->data_type != OT_UINT8 ||
        s->tp->data_type != OT_FLOAT ||
        (z && z->tp->data_type != OT_UINT8 && z->tp->data_type != OT_FLOAT) || ql <= sl ||
        strcmp(qn + ql - sl, "_quantized") != 0)
        return SQ_OK;
    char *name = ar_alloc(a, ql - sl + 1);
    if (!name)
        return fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
    memcpy(name, qn, ql - sl);
    name[ql - sl] = 0;
    if (konst_get(c, name) || prod_get(c, name))
        return SQ_OK;
    const struct restored *same = NULL; /* B already folded for another MatMulNBits */
    for (size_t j = 0; j < n_done && !same; j++)
        if (done_r[j].matmul && done_r[j].w && done_r[j].q == q)
            same = &done_r[j];
    if (same) {
        /* The same weight only if the same scales, zero points and attributes. */
        const Onnx__NodeProto *f = c->g->node[same->nodes[0]];
        bool eq = f->n_input == n->n_input && same->dims[0] == K && same->dims[1] == N &&
                  attr_int(f, "block_size", 0) == bs;
        for (size_t i = 2; eq && i < n->n_input; i++)
            eq = strcmp(f->input[i], n->input[i]) == 0;
        return eq ? nbits_matmul(a, n, same->name, q, ni, NULL, K, N, r, err) : SQ_OK;
    }
    size_t nb = ((size_t)K + (size_t)bs - 1) / (size_t)bs, half = (nb + 1) / 2, cnt, bytes;
    if (__builtin_mul_overflow((size_t)N, nb, &cnt) ||
        __builtin_mul_overflow(cnt, (size_t)bs / 2, &bytes))
        return SQ_OK;
    enum sq_status st = SQ_OK;
    size_t nq = 0, ns = 0, nz = 0;
    float *qv = NULL, *sv = NULL, *zv = NULL, *w = NULL;
    if (q->tp->n_dims != 3 || q->tp->dims[0] != N || (size_t)q->tp->dims[1] != nb ||
        q->tp->dims[2] != bs / 2 || !(qv = konst_values(c, q->tp, &nq, err, &st)) || nq != bytes ||
        !(sv = konst_values(c, s->tp, &ns, err, &st)) || ns != cnt)
        goto done;
    if (z && (!(zv = konst_values(c, z->tp, &nz, err, &st)) ||
              nz != (z->tp->data_type == OT_UINT8 ? (size_t)N * half : cnt)))
        goto done;
    if (!(w = malloc((size_t)K * (size_t)N * sizeof *w))) {
        st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t col = 0; col < (size_t)N; col++)
        for (size_t k = 0; k < (size_t)K; k++) {
            size_t j = k / (size_t)bs, blk = col * nb + j;
            unsigned byte = (unsigned)qv[blk * ((size_t)bs / 2) + (k % (size_t)bs) / 2];
            float u = (float)((byte >> (4 * (k % 2))) & 15u), zp = 8.0f;
            if (zv && z->tp->data_type == OT_UINT8)
                zp = (float)(((unsigned)zv[col * half + j / 2] >> (4 * (j % 2))) & 15u);
            else if (zv)
                zp = zv[blk];
            w[k * (size_t)N + col] = (u - zp) * sv[blk];
        }
    st = nbits_matmul(a, n, name, q, ni, w, K, N, r, err);
done:
    free(qv);
    free(sv);
    free(zv);
    return st;
}

/* DequantizeLinear(q, s[, z]) with constant inputs: y = (q - z) * s along `axis`. */
static enum sq_status try_dql(struct dq_ctx *c, size_t ni, float **out, struct konst **qk,
                              struct sq_error *err)
{
    const Onnx__NodeProto *n = c->g->node[ni];
    *out = NULL;
    if (n->n_input < 2 || n->n_output != 1)
        return SQ_OK;
    struct konst *q = konst_get(c, n->input[0]), *s = konst_get(c, n->input[1]);
    struct konst *z = n->n_input > 2 && *n->input[2] ? konst_get(c, n->input[2]) : NULL;
    if (!q || !s || (n->n_input > 2 && *n->input[2] && !z) || s->tp->data_type != OT_FLOAT)
        return SQ_OK;
    enum sq_status st;
    size_t nq = 0, ns = 0, nz = 0;
    float *qv = konst_values(c, q->tp, &nq, err, &st), *sv = NULL, *zv = NULL;
    if (!qv || q->tp->data_type == OT_FLOAT)
        goto done;
    if (!(sv = konst_values(c, s->tp, &ns, err, &st)))
        goto done;
    if (z &&
        (z->tp->data_type != q->tp->data_type || !(zv = konst_values(c, z->tp, &nz, err, &st))))
        goto done;
    int64_t r = (int64_t)q->tp->n_dims, axis = attr_int(n, "axis", 1);
    if (axis < 0)
        axis += r;
    int64_t bsz = attr_int(n, "block_size", 0);
    if (attr(n, "block_size") && bsz > 0 && axis >= 0 && axis < r && s->tp->n_dims == (size_t)r &&
        (!zv || (z->tp->n_dims == (size_t)r && nz == ns))) {
        /* Blocked: s has q's dims but ceil(dims[axis] / block_size) along axis. */
        size_t D = (size_t)q->tp->dims[axis], Gb = (D + (size_t)bsz - 1) / (size_t)bsz, post = 1;
        bool same = (size_t)s->tp->dims[axis] == Gb;
        for (int64_t k = 0; k < r; k++) {
            if (k != axis)
                same = same && s->tp->dims[k] == q->tp->dims[k];
            if (zv && z->tp->dims[k] != s->tp->dims[k])
                same = false;
            if (k > axis)
                post *= (size_t)q->tp->dims[k];
        }
        if (!same)
            goto done;
        float *w = malloc((nq ? nq : 1) * sizeof *w);
        if (!w) {
            st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < nq; i++) {
            size_t p = i / (post * D), d = (i / post) % D, rr = i % post;
            size_t ch = (p * Gb + d / (size_t)bsz) * post + rr;
            w[i] = (qv[i] - (zv ? zv[ch] : 0.0f)) * sv[ch];
        }
        *out = w;
        *qk = q;
        goto done;
    }
    bool per_tensor = s->tp->n_dims == 0 || ns == 1;
    if ((!per_tensor &&
         (s->tp->n_dims != 1 || axis < 0 || axis >= r || (size_t)q->tp->dims[axis] != ns)) ||
        (zv && nz != ns) || attr(n, "block_size"))
        goto done;
    size_t inner = 1;
    for (int64_t k = axis + 1; !per_tensor && k < r; k++)
        inner *= (size_t)q->tp->dims[k];
    float *w = malloc((nq ? nq : 1) * sizeof *w);
    if (!w) {
        st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nq; i++) {
        size_t ch = per_tensor ? 0 : (i / inner) % ns;
        w[i] = (qv[i] - (zv ? zv[ch] : 0.0f)) * sv[ch];
    }
    *out = w;
    *qk = q;
done:
    free(qv);
    free(sv);
    free(zv);
    return st;
}

/* The values of a rank-1 INT64 constant in raw_data or int64_data (at most SQ_MAX_RANK). */
static size_t konst_shape(const struct konst *k, int64_t *v)
{
    const Onnx__TensorProto *t = k->tp;
    if (t->data_type != OT_INT64 || t->n_dims != 1 || t->dims[0] < 1 || t->dims[0] > SQ_MAX_RANK ||
        (t->has_data_location && t->data_location != 0))
        return 0;
    size_t n = (size_t)t->dims[0];
    if (t->has_raw_data && t->raw_data.len == 8 * n) {
        for (size_t i = 0; i < n; i++) {
            uint64_t u = 0;
            for (int b = 7; b >= 0; b--)
                u = u << 8 | t->raw_data.data[8 * i + (size_t)b];
            v[i] = (int64_t)u;
        }
    } else if (!t->has_raw_data && t->n_int64_data == n) {
        memcpy(v, t->int64_data, n * sizeof *v);
    } else {
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (v[i] < 1)
            return 0;
    return n;
}

/*
 * The values (malloc'ed) and dims of a FLOAT constant, or of Gather(FLOAT
 * constant, INT64 [L] constant, axis) used once (*gnode: that node, else
 * SIZE_MAX); NULL if `name` is neither.
 */
static float *operand(struct dq_ctx *c, const char *name, int64_t *dims, size_t *rank,
                      size_t *gnode, struct sq_error *err, enum sq_status *st)
{
    struct konst *k = konst_get(c, name);
    size_t n = 0;
    *gnode = SIZE_MAX;
    if (k) {
        if (k->tp->data_type != OT_FLOAT || k->tp->n_dims > SQ_MAX_RANK)
            return NULL;
        *rank = k->tp->n_dims;
        if (*rank) /* a scalar has no dims array */
            memcpy(dims, k->tp->dims, *rank * sizeof *dims);
        return konst_values(c, k->tp, &n, err, st);
    }
    struct prod *p = prod_get(c, name);
    if (!p || p->uses != 1)
        return NULL;
    const Onnx__NodeProto *g = c->g->node[p->node];
    struct konst *d, *ik;
    if (strcmp(S(g->op_type), "Gather") != 0 || !default_domain(g->domain) || g->n_input != 2 ||
        !(d = konst_get(c, g->input[0])) || !(ik = konst_get(c, g->input[1])) ||
        d->tp->data_type != OT_FLOAT || d->tp->n_dims < 1 || d->tp->n_dims > SQ_MAX_RANK)
        return NULL;
    const Onnx__TensorProto *it = ik->tp;
    int64_t axis = attr_int(g, "axis", 0), r = (int64_t)d->tp->n_dims;
    if (it->data_type != OT_INT64 || it->n_dims != 1 || it->dims[0] < 1 || axis < 0 || axis >= r ||
        (it->has_data_location && it->data_location != 0) || !it->has_raw_data ||
        it->raw_data.len != 8 * (size_t)it->dims[0])
        return NULL;
    size_t L = (size_t)it->dims[0], D = (size_t)d->tp->dims[axis], pre = 1, post = 1;
    for (int64_t i = 0; i < r; i++) {
        if (i < axis)
            pre *= (size_t)d->tp->dims[i];
        if (i > axis)
            post *= (size_t)d->tp->dims[i];
    }
    uint64_t total = (uint64_t)pre * L;
    if (L == 0 || pre == 0 || post == 0 || total > c->lim->max_tensor_elements ||
        post > c->lim->max_tensor_elements / total)
        return NULL;
    float *dv = konst_values(c, d->tp, &n, err, st);
    float *out = dv ? malloc((size_t)(total * post) * sizeof *out) : NULL;
    if (dv && !out)
        *st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
    for (size_t a = 0; out && a < pre; a++)
        for (size_t l = 0; l < L; l++) {
            uint64_t u = 0;
            for (int b = 7; b >= 0; b--)
                u = u << 8 | it->raw_data.data[8 * l + (size_t)b];
            if (u >= D) {
                free(out);
                out = NULL;
                break;
            }
            memcpy(out + (a * L + l) * post, dv + (a * D + u) * post, post * sizeof *out);
        }
    free(dv);
    if (!out)
        return NULL;
    *rank = (size_t)r;
    memcpy(dims, d->tp->dims, *rank * sizeof *dims);
    dims[axis] = (int64_t)L;
    *gnode = p->node;
    return out;
}

/*
 * Mul(Sub(Cast(q) | DequantizeLinear(q, 1, 0), z), s), each inner value used
 * once; with `view`, Mul(Sub(Reshape(Cast(q), view shape), z), s) computed
 * in the view's dims (the caller checks the Reshape back).
 */
static enum sq_status try_chain_view(struct dq_ctx *c, size_t ni, struct restored *r, bool view,
                                     struct sq_error *err)
{
    const Onnx__NodeProto *mul = c->g->node[ni];
    if (mul->n_input != 2 || mul->n_output != 1)
        return SQ_OK;
    struct prod *ps = prod_get(c, mul->input[0]);
    if (!ps || ps->uses != 1)
        return SQ_OK;
    const Onnx__NodeProto *sub = c->g->node[ps->node];
    if (strcmp(S(sub->op_type), "Sub") != 0 || !default_domain(sub->domain) || sub->n_input != 2)
        return SQ_OK;
    struct prod *pc = prod_get(c, sub->input[0]);
    if (!pc || pc->uses != 1)
        return SQ_OK;
    int64_t vd[SQ_MAX_RANK];
    size_t vr = 0, vnode = pc->node;
    if (view) {
        const Onnx__NodeProto *rs = c->g->node[pc->node];
        struct konst *vk;
        if (strcmp(S(rs->op_type), "Reshape") != 0 || !default_domain(rs->domain) ||
            rs->n_input != 2 || rs->n_attribute != 0 || !(vk = konst_get(c, rs->input[1])) ||
            !(vr = konst_shape(vk, vd)) || !(pc = prod_get(c, rs->input[0])) || pc->uses != 1)
            return SQ_OK;
    }
    const Onnx__NodeProto *cast = c->g->node[pc->node];
    if (view && strcmp(S(cast->op_type), "Cast") != 0)
        return SQ_OK;
    if (!default_domain(cast->domain) || cast->n_input < 1)
        return SQ_OK;
    float *x = NULL;
    struct konst *q = NULL;
    enum sq_status st = SQ_OK;
    size_t nq = 0;
    if (strcmp(S(cast->op_type), "Cast") == 0 && attr_int(cast, "to", 0) == OT_FLOAT) {
        q = konst_get(c, cast->input[0]);
        if (!q || q->tp->data_type == OT_FLOAT)
            return SQ_OK;
        x = konst_values(c, q->tp, &nq, err, &st);
    } else if (strcmp(S(cast->op_type), "DequantizeLinear") == 0) {
        st = try_dql(c, pc->node, &x, &q, err);
        if (x)
            for (size_t i = 0, d = 1; i < q->tp->n_dims; i++, nq = d)
                d *= (size_t)q->tp->dims[i];
        if (x && q->tp->n_dims == 0)
            nq = 1;
    }
    if (!x)
        return st;
    int64_t zd[SQ_MAX_RANK], sd[SQ_MAX_RANK];
    size_t zr = 0, sr = 0, zg = SIZE_MAX, sg = SIZE_MAX;
    float *zv = operand(c, sub->input[1], zd, &zr, &zg, err, &st), *sv = NULL;
    if (zv && st == SQ_OK)
        sv = operand(c, mul->input[1], sd, &sr, &sg, err, &st);
    const int64_t *dims = q->tp->dims;
    size_t rank = q->tp->n_dims;
    if (view) {
        size_t prod = 1;
        for (size_t i = 0; i < vr; i++)
            prod =
                (uint64_t)vd[i] <= nq && prod <= nq / (size_t)vd[i] ? prod * (size_t)vd[i] : nq + 1;
        dims = vd;
        rank = vr;
        if (prod != nq)
            rank = SQ_MAX_RANK + 1; /* not a view of q: fails broadcasts */
    }
    if (!zv || !sv || st != SQ_OK || rank > SQ_MAX_RANK || !broadcasts(zd, zr, dims, rank) ||
        !broadcasts(sd, sr, dims, rank)) {
        free(x);
        free(zv);
        free(sv);
        return st;
    }
    for (size_t i = 0; i < nq; i++) {
        float d = x[i] - zv[bindex(i, zd, zr, dims, rank)];
        x[i] = d * sv[bindex(i, sd, sr, dims, rank)];
    }
    free(zv);
    free(sv);
    r->name = mul->output[0];
    r->q = q;
    r->nodes[0] = ni;
    r->nodes[1] = ps->node;
    r->nodes[2] = pc->node;
    r->n_nodes = 3;
    if (view)
        r->nodes[r->n_nodes++] = vnode;
    if (zg != SIZE_MAX)
        r->nodes[r->n_nodes++] = zg;
    if (sg != SIZE_MAX)
        r->nodes[r->n_nodes++] = sg;
    r->w = x;
    return SQ_OK;
}

static enum sq_status try_chain(struct dq_ctx *c, size_t ni, struct restored *r,
                                struct sq_error *err)
{
    return try_chain_view(c, ni, r, false, err);
}

/* Reshape(Mul(Sub(Reshape(Cast(q), view), z), s), q's dims): the grouped form below opset 21. */
static enum sq_status try_reshape(struct dq_ctx *c, size_t ni, struct restored *r,
                                  struct sq_error *err)
{
    const Onnx__NodeProto *rs = c->g->node[ni];
    if (rs->n_input != 2 || rs->n_output != 1 || rs->n_attribute != 0)
        return SQ_OK;
    struct prod *pm = prod_get(c, rs->input[0]);
    struct konst *sk = konst_get(c, rs->input[1]);
    int64_t d[SQ_MAX_RANK];
    size_t n;
    if (!pm || pm->uses != 1 || !sk || !(n = konst_shape(sk, d)) ||
        strcmp(S(c->g->node[pm->node]->op_type), "Mul") != 0 ||
        !default_domain(c->g->node[pm->node]->domain))
        return SQ_OK;
    struct restored x = {0};
    enum sq_status st = try_chain_view(c, pm->node, &x, true, err);
    if (!x.w)
        return st;
    bool same = n == x.q->tp->n_dims;
    for (size_t i = 0; same && i < n; i++)
        same = d[i] == x.q->tp->dims[i];
    if (!same) {
        free(x.w);
        return st;
    }
    x.name = rs->output[0];
    x.nodes[x.n_nodes++] = ni;
    *r = x;
    return st;
}

enum sq_status sq_onnx_dequantize(const uint8_t *buf, size_t len, const struct sq_limits *limits,
                                  size_t limit, uint8_t **out, size_t *out_len, size_t *restored,
                                  struct sq_error *err)
{
    struct sq_limits lim;
    sqi_limits_effective(limits, &lim);
    struct sqi_onnx o = {0};
    Onnx__ModelProto *m = unpack_model(&o, len, buf);
    if (!m)
        return fail(err, o.over ? SQ_ERR_LIMIT : SQ_ERR_FORMAT, NULL,
                    "not a valid ONNX model: the protobuf encoding of ModelProto is malformed");
    if (!m->graph) {
        onnx__model_proto__free_unpacked(m, &o.alloc);
        return fail(err, SQ_ERR_FORMAT, NULL, "not an ONNX model: ModelProto has no graph");
    }
    const Onnx__GraphProto *g = m->graph;
    struct dq_ctx c = {.g = g, .lim = &lim};
    struct arena a = {0};
    enum sq_status st = SQ_OK;
    size_t nout = 0, nr = 0;
    for (size_t i = 0; i < g->n_node; i++)
        nout += g->node[i]->n_output;
    c.k = calloc(g->n_initializer + g->n_node + 1, sizeof *c.k);
    c.p = calloc(nout + 1, sizeof *c.p);
    struct restored *r = calloc(g->n_node + 1, sizeof *r);
    bool *gone = calloc(g->n_node + 1, sizeof *gone);
    if (!c.k || !c.p || !r || !gone) {
        st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < g->n_initializer; i++)
        c.k[c.nk++] = (struct konst){S(g->initializer[i]->name), g->initializer[i], i, SIZE_MAX, 0};
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        const Onnx__AttributeProto *v = attr(n, "value");
        if (strcmp(S(n->op_type), "Constant") == 0 && default_domain(n->domain) && v && v->t &&
            n->n_output == 1)
            c.k[c.nk++] = (struct konst){n->output[0], v->t, SIZE_MAX, i, 0};
        for (size_t j = 0; j < n->n_output; j++)
            c.p[c.np++] = (struct prod){n->output[j], i, 0};
    }
    qsort(c.k, c.nk, sizeof *c.k, konst_cmp);
    qsort(c.p, c.np, sizeof *c.p, prod_cmp);
    for (size_t i = 1; i < c.nk; i++)
        if (strcmp(c.k[i - 1].name, c.k[i].name) == 0) {
            st = fail(err, SQ_ERR_FORMAT, c.k[i].name, "tensor '%.100s' is defined twice",
                      c.k[i].name);
            goto done;
        }
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t j = 0; j < g->node[i]->n_input; j++) {
            struct prod *p = prod_get(&c, g->node[i]->input[j]);
            if (p)
                p->uses++;
        }
    for (size_t i = 0; i < g->n_output; i++) {
        struct prod *p = prod_get(&c, S(g->output[i]->name));
        if (p)
            p->uses += 2; /* a graph output is never folded away */
    }
    /* The chains first (their inner DequantizeLinear is part of them), then the rest. */
    for (int pass = 0; st == SQ_OK && pass < 2; pass++)
        for (size_t i = 0; st == SQ_OK && i < g->n_node; i++) {
            const Onnx__NodeProto *n = g->node[i];
            struct restored x = {0};
            if (gone[i])
                continue;
            if (pass == 1 && strcmp(S(n->domain), "com.microsoft") == 0 &&
                strcmp(S(n->op_type), "MatMulNBits") == 0)
                st = try_nbits(&c, &a, i, r, nr, &x, err);
            else if (!default_domain(n->domain))
                continue;
            if (pass == 0 && strcmp(S(n->op_type), "Reshape") == 0) {
                st = try_reshape(&c, i, &x, err);
            } else if (pass == 0 && strcmp(S(n->op_type), "Mul") == 0) {
                st = try_chain(&c, i, &x, err);
            } else if (pass == 1 && strcmp(S(n->op_type), "DequantizeLinear") == 0) {
                st = try_dql(&c, i, &x.w, &x.q, err);
                if (x.w) { /* try_dql folds only a node with one output */
                    x.name = n->output[0];
                    x.nodes[0] = i;
                    x.n_nodes = 1;
                }
            }
            if (!x.w && !x.matmul)
                continue;
            for (size_t k = 0; k < x.n_nodes; k++)
                gone[x.nodes[k]] = true;
            r[nr++] = x;
        }
    if (st != SQ_OK)
        goto done;
    /*
     * A restored weight that only a Cast to FLOAT16, BFLOAT16 or DOUBLE reads
     * (how the writer gives such a weight its type back) becomes a constant
     * of that type, under the Cast's output name.
     */
    for (size_t j = 0; j < nr; j++) {
        struct prod *p = r[j].w ? prod_get(&c, r[j].name) : NULL;
        for (size_t i = 0; p && p->uses == 1 && i < g->n_node; i++) {
            const Onnx__NodeProto *n = g->node[i];
            if (gone[i] || n->n_input != 1 || strcmp(n->input[0], r[j].name) != 0)
                continue;
            enum sq_dtype dt;
            int64_t to = attr_int(n, "to", 0);
            if (strcmp(S(n->op_type), "Cast") == 0 && default_domain(n->domain) &&
                n->n_output == 1 && to != OT_FLOAT && to > 0 && to < INT32_MAX &&
                dtype_of((int)to, &dt)) {
                r[j].name = n->output[0];
                r[j].type = (int)to;
                r[j].nodes[r[j].n_nodes++] = i;
                gone[i] = true;
            }
            break;
        }
    }
    /* Uses of each constant by the nodes that stay: the unused ones go. */
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t j = 0; !gone[i] && j < g->node[i]->n_input; j++) {
            struct konst *k = konst_get(&c, g->node[i]->input[j]);
            if (k)
                k->uses++;
        }
    for (size_t j = 0; j < nr; j++) {
        struct konst *k = r[j].matmul ? konst_get(&c, r[j].matmul->input[0]) : NULL;
        if (k)
            k->uses++;
    }
    for (size_t i = 0; i < g->n_output; i++) {
        struct konst *k = konst_get(&c, S(g->output[i]->name));
        if (k)
            k->uses++;
    }
    bool *init_gone = calloc(g->n_initializer + 1, sizeof *init_gone);
    if (!init_gone) {
        st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < c.nk; i++) {
        if (c.k[i].uses)
            continue;
        bool ours = false; /* only constants a folded subgraph read */
        for (size_t j = 0; j < nr && !ours; j++)
            for (size_t t = 0; t < r[j].n_nodes && !ours; t++)
                for (size_t u = 0; u < g->node[r[j].nodes[t]]->n_input && !ours; u++)
                    ours = strcmp(g->node[r[j].nodes[t]]->input[u], c.k[i].name) == 0;
        if (!ours)
            continue;
        if (c.k[i].init != SIZE_MAX)
            init_gone[c.k[i].init] = true;
        else
            gone[c.k[i].node] = true;
    }
    Onnx__ModelProto m2 = *m;
    Onnx__GraphProto g2 = *g;
    m2.graph = &g2;
    g2.initializer = ar_alloc(&a, (g->n_initializer + nr + 1) * sizeof *g2.initializer);
    g2.node = ar_alloc(&a, (g->n_node + nr + 1) * sizeof *g2.node);
    if (!g2.initializer || !g2.node) {
        free(init_gone);
        st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    g2.n_initializer = g2.n_node = 0;
    for (size_t i = 0; i < g->n_initializer; i++)
        if (!init_gone[i])
            g2.initializer[g2.n_initializer++] = g->initializer[i];
    free(init_gone);
    for (size_t j = 0; j < nr; j++) {
        if (!r[j].w)
            continue; /* a second MatMul of a weight restored already */
        unsigned rank = r[j].matmul ? 2 : (unsigned)r[j].q->tp->n_dims;
        const int64_t *dims = r[j].matmul ? r[j].dims : r[j].q->tp->dims;
        size_t n = 1;
        for (size_t d = 0; d < rank; d++)
            n *= (size_t)dims[d];
        enum sq_dtype dt = SQ_DTYPE_F32;
        if (r[j].type && !dtype_of(r[j].type, &dt))
            dt = SQ_DTYPE_F32; /* not reached: the Cast's type was checked */
        uint8_t *data = (uint8_t *)r[j].w;
        if (dt != SQ_DTYPE_F32 && (data = ar_alloc(&a, n * sq_dtype_size(dt) + 1)))
            sq_tensor_from_f32(dt, r[j].w, n, data);
        Onnx__TensorProto *t = data ? new_tensor(&a, r[j].name, r[j].type ? r[j].type : OT_FLOAT,
                                                 rank, dims, data, n * sq_dtype_size(dt))
                                    : NULL;
        if (!t) {
            st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
            goto done;
        }
        if (r[j].q->init != SIZE_MAX) {
            g2.initializer[g2.n_initializer++] = t;
        } else {
            Onnx__NodeProto *cn = new_node(&a, "Constant", r[j].name, NULL, NULL, NULL, r[j].name,
                                           new_attr_tensor(&a, t));
            if (!cn) {
                st = fail(err, SQ_ERR_NOMEM, NULL, "out of memory");
                goto done;
            }
            g2.node[g2.n_node++] = cn;
        }
    }
    for (size_t i = 0; i < g->n_node; i++) {
        if (!gone[i])
            g2.node[g2.n_node++] = g->node[i];
        for (size_t j = 0; gone[i] && j < nr; j++)
            if (r[j].matmul && r[j].nodes[0] == i)
                g2.node[g2.n_node++] = r[j].matmul; /* in the MatMulNBits' place */
    }
    st = pack_model(&m2, limit, out, out_len, err);
    if (st == SQ_OK) {
        *restored = 0;
        for (size_t j = 0; j < nr; j++)
            *restored += r[j].w != NULL;
    }
done:
    for (size_t j = 0; r && j < nr; j++)
        free(r[j].w);
    free(r);
    free(gone);
    free(c.k);
    free(c.p);
    ar_free(&a);
    onnx__model_proto__free_unpacked(m, &o.alloc);
    return st;
}

/*
 * The pipeline shared by the daemon and the CLI: choose the tensors of a
 * model to quantize, cut the work into independent items (a layer, or a
 * range of its output channels), and assemble the output. The plan does not
 * schedule: callers run the items, in any order and on any threads, then
 * write the result. Same model and options give byte-identical output,
 * whatever the thread count or the order the items ran in.
 */
#ifndef SQUANT_PLAN_H
#define SQUANT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squant/status.h>
#include <squant/tensor.h>
#include <squant/quant.h>
#include <squant/format.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A per-tensor bit width: tensors whose name matches `pattern` (fnmatch glob) get `bits`. */
struct sq_bits_rule {
    char *pattern;
    unsigned bits;
};

/* A per-tensor group size: tensors whose name matches `pattern` get `group` (0 = per channel). */
struct sq_group_rule {
    char *pattern;
    size_t group;
};

/* Largest group size accepted (a group is never longer than a channel, 2^30 elements). */
#define SQ_GROUP_MAX ((size_t)1 << 30)

/* How codes are stored in the output. */
enum sq_packing {
    SQ_PACKING_NONE, /* one code per byte: I8 (safetensors), INT8 (ONNX) */
    SQ_PACKING_INT4, /* two codes per byte, element 0 in the low nibble (bits <= 4): U8 in
                        safetensors (recorded in the metadata), INT4 in ONNX (opset >= 21) */
    SQ_PACKING_MATMULNBITS, /* ONNX out only: MatMul weights as ONNX Runtime's com.microsoft
                               MatMulNBits (bits <= 4, group a power of two >= 16), the other
                               weights as with NONE */
};

/* What to quantize and how. Caller-allocated; sq_options_init / sq_options_free. */
struct sq_options {
    struct sq_params params;       /* defaults for every selected tensor */
    char **include;                /* globs; empty = every eligible tensor */
    size_t include_count;
    char **exclude;                /* globs applied after include */
    size_t exclude_count;
    struct sq_bits_rule *bits_for; /* first matching rule wins */
    size_t bits_for_count;
    enum sq_format output;         /* AUTO (default: ONNX for an ONNX input, else SAFETENSORS),
                                      SAFETENSORS, ONNX, DEQUANTIZED, NPY or JSON */
    size_t group;                  /* input channels per range; 0 = per output channel */
    struct sq_group_rule *group_for; /* first matching rule wins */
    size_t group_for_count;
    enum sq_dtype scale_dtype; /* F32 (default) or F16: how scales (and zero points) are stored */
    enum sq_packing packing;       /* NONE (default), INT4 or MATMULNBITS */
};

SQ_API void sq_options_init(struct sq_options *opt);
SQ_API void sq_options_free(struct sq_options *opt);

/*
 * Set one option from text, as the CLI flags, the query string and the JSON
 * options part all spell them:
 *   bits=2..8  mode=squant|squant-k|squant-c|rtn|squant-e
 *   scheme=asymmetric|symmetric  impl=auto|ref|generic|avx2|avx512
 *   include=GLOB  exclude=GLOB  (each call appends one; commas separate several)
 *   bits_for=GLOB=N  (appends a rule; commas separate several)
 *   group=0..SQ_GROUP_MAX  group_for=GLOB=G  (like bits_for)  scale_dtype=F32|F16
 *   format=auto|safetensors|onnx|dequantized|npy|json  packing=none|int4|matmulnbits
 * SQ_ERR_ARG naming the key and the value on a bad key or value.
 */
SQ_API enum sq_status sq_options_set(struct sq_options *opt, const char *key, const char *value,
                                     struct sq_error *err);

/* Per quantized tensor ("layer") information, valid while the plan lives. */
struct sq_layer_info {
    const char *name;
    unsigned rank;
    const int64_t *shape;
    enum sq_dtype dtype;        /* of the input */
    unsigned bits;
    struct sq_layer layer;
    size_t items;               /* work items it was cut into */
    struct sq_report report;    /* complete once all its items ran */
    double seconds;             /* sum of its items' run times */
    size_t group;               /* as asked: input channels per group, 0 = per channel */
    size_t groups;              /* groups per output channel (sq_layer_groups) */
    /* Once all its items ran: layer.channels * groups steps and zero points,
     * row-major [O, groups], w ~ (q - zero_point) * scale; input channel i
     * belongs to group i / group (group 0 if groups == 1). What a writer
     * needs for blocked outputs (block size = group along the input axis). */
    const float *scale;
    const float *zero_point;
    enum sq_dtype scale_dtype;      /* how the output stores them: F32, or F16 if asked and */
    enum sq_dtype zero_point_dtype; /* every step is a normal F16; I8, I16 or F32 */
    double bits_per_weight;         /* bits + (scale and zero point bits) * groups / weights */
};

struct sq_plan;

/*
 * Build the plan for `model` (borrowed: it must outlive the plan). Checks
 * the options, selects the tensors (floating, rank >= 2, include/exclude),
 * validates their shapes and sizes, checks that no output name collides
 * with an input tensor, and allocates the outputs. SQ_ERR_NO_TENSOR if
 * nothing is selected. On success *out is a new plan for sq_plan_free.
 */
SQ_API enum sq_status sq_plan_new(const struct sq_model *model, const struct sq_options *opt,
                                  struct sq_plan **out, struct sq_error *err);
SQ_API void sq_plan_free(struct sq_plan *plan);

/* Number of work items, and of quantized tensors. */
SQ_API size_t sq_plan_item_count(const struct sq_plan *plan);
SQ_API size_t sq_plan_layer_count(const struct sq_plan *plan);
/* Index (0 .. layer_count-1) of the layer an item belongs to. */
SQ_API size_t sq_plan_item_layer(const struct sq_plan *plan, size_t item);
SQ_API void sq_plan_layer_info(const struct sq_plan *plan, size_t layer,
                               struct sq_layer_info *info);

/*
 * Run one work item: convert its weights to float32 and quantize its
 * channel range. Safe to call concurrently for distinct items; each item
 * must run once. Allocates its scratch memory for the duration of the call.
 */
SQ_API enum sq_status sq_plan_run(struct sq_plan *plan, size_t item, struct sq_error *err);

/*
 * The format sq_plan_write writes for `format`: AUTO becomes ONNX for a
 * model parsed from ONNX, else SAFETENSORS; the others stay.
 */
SQ_API enum sq_format sq_plan_output_format(const struct sq_plan *plan, enum sq_format format);

/*
 * Once every item has run successfully: serialize the result in `format`
 * (AUTO, SAFETENSORS, ONNX for an ONNX input (QDQ), DEQUANTIZED (the
 * input's container, ONNX or safetensors, with SQuant's dequantized floats
 * in place of the weights, same names, dtype and layout), NPY for a single
 * quantized tensor, or JSON). Output is malloc'ed and handed to the caller.
 * SQ_ERR_LIMIT beyond `limit` bytes.
 */
SQ_API enum sq_status sq_plan_write(struct sq_plan *plan, enum sq_format format, size_t limit,
                                    uint8_t **out, size_t *out_len, struct sq_error *err);

/*
 * The parameters and per-layer reports as a JSON document (text, malloc'ed,
 * caller frees): what the safetensors metadata key "squant" holds.
 * With `timings`, each layer also carries its "seconds".
 */
SQ_API enum sq_status sq_plan_report_json(const struct sq_plan *plan, bool timings, char **out,
                                          struct sq_error *err);

/*
 * Streaming: bounded memory for any model size (safetensors output).
 *
 * sq_plan_new_streaming builds the same plan as sq_plan_new but allocates
 * no codes: the caller calls sq_plan_layer_begin(layer) before running that
 * layer's items (it allocates the layer's codes), and once they have all
 * run, sq_plan_stream_data(layer), layers in increasing order. That hands
 * the output's data section, from where the previous call stopped through
 * the layer's codes, scale and zero point, to `write` (in order, pieces of
 * any size; a status other than SQ_OK stops and is returned), then frees
 * the layer's codes. sq_plan_stream_data(plan, sq_plan_layer_count(plan))
 * writes what follows the last layer. The data section is
 * sq_plan_data_bytes long (known before anything runs with scale_dtype F32;
 * with F16 the stored dtypes of a layer's scales and zero points depend on
 * their values, so it is exact once every layer has run). sq_plan_write_header (once every item ran) gives
 * the header that goes before it, malloc'ed for the caller: header + data
 * are the bytes sq_plan_write(SAFETENSORS) gives. sq_plan_write refuses a
 * plan whose codes are not all held. sq_plan_layers_held_max: the most
 * layers whose codes were allocated at the same time.
 */
typedef enum sq_status (*sq_write_fn)(void *ctx, const void *data, size_t len,
                                      struct sq_error *err);
SQ_API enum sq_status sq_plan_new_streaming(const struct sq_model *model,
                                            const struct sq_options *opt, struct sq_plan **out,
                                            struct sq_error *err);
SQ_API enum sq_status sq_plan_layer_begin(struct sq_plan *plan, size_t layer,
                                          struct sq_error *err);
SQ_API enum sq_status sq_plan_stream_data(struct sq_plan *plan, size_t layer, sq_write_fn write,
                                          void *ctx, struct sq_error *err);
SQ_API uint64_t sq_plan_data_bytes(const struct sq_plan *plan);
SQ_API enum sq_status sq_plan_write_header(const struct sq_plan *plan, size_t limit, uint8_t **out,
                                           size_t *out_len, struct sq_error *err);
SQ_API size_t sq_plan_layers_held_max(const struct sq_plan *plan);
/*
 * The input bytes sq_plan_run(item) reads: [*data, *data + *len) of its
 * tensor's data (the item's channel range). A caller whose input is still
 * arriving runs an item only once these bytes are there.
 */
SQ_API void sq_plan_item_input(const struct sq_plan *plan, size_t item, const uint8_t **data,
                               size_t *len);

/*
 * Turn a quantized model back into float32: every I8 tensor W that has
 * tensors W.scale (F32 or F16, [O] or [O, G]) and W.zero_point (F32, I8 or
 * I16, the same shape) becomes F32 (W - zero_point) * scale; with G > 1 the
 * group size comes from the "squant" metadata (its layer's "group");
 * the .scale/.zero_point tensors are dropped and every other tensor is passed
 * through. `out` is initialized by the caller; it owns the dequantized data
 * and borrows the passed-through tensors from `in`, which must outlive it.
 */
SQ_API enum sq_status sq_dequantize_model(const struct sq_model *in, struct sq_model *out,
                                          struct sq_error *err);

#ifdef __cplusplus
}
#endif

#endif

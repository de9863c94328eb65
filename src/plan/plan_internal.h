/* Internals of the plan layer shared between its files. */
#ifndef SQ_PLAN_INTERNAL_H
#define SQ_PLAN_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include <squant/plan.h>

#include "util.h"

/* One quantized tensor. */
struct plan_layer {
    size_t tensor;         /* index in the model */
    struct sq_params params;
    struct sq_layer geom;
    size_t len;            /* elements per channel */
    int8_t *codes;         /* owned, one per weight */
    size_t group;          /* as asked (0 = per channel) */
    size_t groups;         /* groups per channel */
    size_t units;          /* channels * groups: scales, and what items cut */
    float *scale;          /* owned, one per group, [channels, groups] */
    float *zero_point;     /* owned, one per group */
    char *scale_name;      /* owned: "<name>.scale" */
    char *zero_point_name; /* owned: "<name>.zero_point" */
    uint8_t *packed;       /* owned: the codes two per byte (packing int4), made by the writer */
    size_t first_item, items;
};

struct plan_item {
    size_t layer, c0, c1; /* groups [c0, c1) of the layer (channels when per channel) */
    struct sq_report report;
    double seconds;
};

/* The plan (opaque in the public API). */
struct sq_plan {
    const struct sq_model *model; /* borrowed */
    struct sq_params defaults;
    size_t group;              /* the request's default group */
    enum sq_dtype scale_dtype; /* asked for: F32 or F16 */
    enum sq_packing packing;
    struct plan_layer *layers;
    size_t layer_count;
    struct plan_item *items;
    size_t item_count;
    bool lazy; /* codes allocated per layer by sq_plan_layer_begin (streaming) */
    /* Streaming: one thread may begin a layer while another writes an earlier one. */
    atomic_size_t stream_next; /* the next model tensor whose data is to be written */
    atomic_size_t layers_held; /* layers whose codes are allocated now */
    atomic_size_t layers_held_max;
};

/*
 * Append layer l's output tensors to `out`, as the output has them: its
 * codes (borrowed), scale and zero point in their stored dtypes (converted
 * copies owned by `out`, or borrowed when F32).
 */
enum sq_status sqi_plan_layer_outputs(const struct sq_plan *plan, const struct plan_layer *l,
                                      struct sq_model *out, struct sq_error *err);

/* Allocate layer l's codes (idempotent). */
enum sq_status sqi_plan_layer_alloc(struct sq_plan *plan, size_t l, struct sq_error *err);

/* Whether `name` matches any of the n fnmatch globs. */
bool sqi_options_match_any(char *const *globs, size_t n, const char *name);
/* Bits for tensor `name`: the first matching bits_for rule, else the default. */
unsigned sqi_options_bits_for(const struct sq_options *opt, const char *name);
/* Group size for tensor `name`: the first matching group_for rule, else the default. */
size_t sqi_options_group_for(const struct sq_options *opt, const char *name);

/*
 * How the output stores a layer's scales and zero points: F32/F32, or with
 * scale_dtype F16, F16 scales when every step is a normal F16 (else F32) and
 * the narrowest of I8, I16, F32 that holds every zero point exactly.
 */
void sqi_plan_stored_dtypes(const struct sq_plan *plan, const struct plan_layer *l,
                            enum sq_dtype *scale, enum sq_dtype *zero_point);
/* f32 -> f16 bits, round to nearest even, for normal F16 values only. */
uint16_t sqi_f16_bits(float v);

/* The metadata key that records packed tensors in safetensors. */
#define SQI_PACKING_KEY "squant.packing"

#endif

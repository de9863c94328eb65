/* Internals of the plan layer shared between its files. */
#ifndef SQ_PLAN_INTERNAL_H
#define SQ_PLAN_INTERNAL_H

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
    float *scale;          /* owned, one per channel */
    float *zero_point;     /* owned, one per channel */
    char *scale_name;      /* owned: "<name>.scale" */
    char *zero_point_name; /* owned: "<name>.zero_point" */
    size_t first_item, items;
};

struct plan_item {
    size_t layer, c0, c1;
    struct sq_report report;
    double seconds;
};

/* The plan (opaque in the public API). */
struct sq_plan {
    const struct sq_model *model; /* borrowed */
    struct sq_params defaults;
    struct plan_layer *layers;
    size_t layer_count;
    struct plan_item *items;
    size_t item_count;
};

/* Whether `name` matches any of the n fnmatch globs. */
bool sqi_options_match_any(char *const *globs, size_t n, const char *name);
/* Bits for tensor `name`: the first matching bits_for rule, else the default. */
unsigned sqi_options_bits_for(const struct sq_options *opt, const char *name);

#endif

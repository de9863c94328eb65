/*
 * Internals shared by the files of src/formats. Names start with sqi_.
 */
#ifndef SQ_FORMATS_H
#define SQ_FORMATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squant/format.h>

#include "util.h"

/*
 * Fail with a location: `tensor` (NULL: none) and byte `offset` (-1: none)
 * are recorded, channel and index reset to -1. Returns `status`.
 */
enum sq_status sqi_fail_at(struct sq_error *err, enum sq_status status, const char *tensor,
                           int64_t offset, const char *fmt, ...) SQI_PRINTF(5, 6);

/* The limits a parser applies: `*limits`, or the defaults when NULL; max_rank <= SQ_MAX_RANK. */
void sqi_limits_effective(const struct sq_limits *limits, struct sq_limits *out);

/* True if the `len` bytes at `s` are well-formed UTF-8 (no overlongs, surrogates or NUL). */
bool sqi_utf8_valid(const char *s, size_t len);

/*
 * Check one tensor's rank, dimensions and element count against `lim`, and
 * add its elements to `*total` (checked against max_total_elements). On
 * success *nelems is the element count. Failures name `tensor` and
 * `offset`: SQ_ERR_SHAPE for a negative dimension, SQ_ERR_LIMIT otherwise.
 */
enum sq_status sqi_check_shape(const struct sq_limits *lim, unsigned rank, const int64_t *shape,
                               uint64_t *total, size_t *nelems, const char *tensor, int64_t offset,
                               struct sq_error *err);

/* "[2, 3]" (at most n - 1 characters, truncated with "...]"). */
void sqi_shape_str(char *buf, size_t n, unsigned rank, const int64_t *shape);

/* SQ_ERR_ARG unless the model is empty (the parsers fill empty models only). */
enum sq_status sqi_model_require_empty(const struct sq_model *model, struct sq_error *err);

/* Make room for `more` tensors beyond count. */
enum sq_status sqi_model_reserve(struct sq_model *model, size_t more, struct sq_error *err);

/*
 * sq_model_add for the parsers: the caller has validated name, shape and
 * sizes and guarantees the name is not yet in the model (no O(n) search).
 * `nelems` is the shape's product. Ownership of `owned` (NULL: borrowed) is
 * taken on success only.
 */
enum sq_status sqi_model_push(struct sq_model *model, const char *name, size_t name_len,
                              enum sq_dtype dtype, unsigned rank, const int64_t *shape,
                              size_t nelems, const uint8_t *data, size_t nbytes, uint8_t *owned,
                              struct sq_error *err);

/* Append a metadata entry whose key the caller knows is new. Both copied. */
enum sq_status sqi_model_push_meta(struct sq_model *model, const char *key, const char *value,
                                   struct sq_error *err);

struct sqi_onnx;
/* Free what sq_onnx_parse kept of the graph (NULL: nothing). */
void sqi_onnx_free(struct sqi_onnx *onnx);

#endif

/*
 * Tensors and models: named, typed, shaped byte ranges.
 */
#ifndef SQUANT_TENSOR_H
#define SQUANT_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squant/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, named as safetensors names them. */
enum sq_dtype {
    SQ_DTYPE_F32,
    SQ_DTYPE_F16,
    SQ_DTYPE_BF16,
    SQ_DTYPE_F64,
    SQ_DTYPE_F8_E4M3,
    SQ_DTYPE_F8_E5M2,
    SQ_DTYPE_I8,
    SQ_DTYPE_U8,
    SQ_DTYPE_I16,
    SQ_DTYPE_U16,
    SQ_DTYPE_I32,
    SQ_DTYPE_U32,
    SQ_DTYPE_I64,
    SQ_DTYPE_U64,
    SQ_DTYPE_BOOL,
    SQ_DTYPE_COUNT
};

/* Bytes per element (1..8). */
SQ_API size_t sq_dtype_size(enum sq_dtype dtype);
/* The safetensors name ("F32", "BF16", ...). Never NULL. */
SQ_API const char *sq_dtype_name(enum sq_dtype dtype);
/* Look up a safetensors dtype name (exact, case-sensitive). SQ_ERR_DTYPE if unknown. */
SQ_API enum sq_status sq_dtype_from_name(const char *name, enum sq_dtype *out);
/* True for the floating types that can be quantized: F32, F16, BF16, F64. */
SQ_API bool sq_dtype_is_quantizable(enum sq_dtype dtype);

/*
 * One tensor. `data` points at `nbytes` bytes of little-endian elements in C
 * order; it is either borrowed (from the buffer a model was parsed from) or
 * owned by the tensor (`owned` == data), in which case sq_model_free frees it.
 */
struct sq_tensor {
    char *name;                  /* owned, NUL-terminated */
    enum sq_dtype dtype;
    unsigned rank;
    int64_t shape[SQ_MAX_RANK];
    size_t nelems;               /* product of shape (1 for rank 0) */
    size_t nbytes;               /* nelems * sq_dtype_size(dtype) */
    const uint8_t *data;
    uint8_t *owned;              /* NULL when data is borrowed */
};

/*
 * An ordered set of named tensors, plus string metadata (safetensors
 * __metadata__). Caller-allocated; sq_model_init / sq_model_free.
 */
struct sq_meta {
    char *key;
    char *value;
};

struct sq_model_index;

struct sq_model {
    struct sq_tensor *tensors;
    size_t count;
    size_t cap;
    struct sq_meta *meta;
    size_t meta_count;
    struct sq_model_index *index; /* private: hash of the names, kept by the sq_model_* calls */
    struct sqi_onnx *onnx;        /* private: the ONNX graph the model was parsed from, or NULL */
};

SQ_API void sq_model_init(struct sq_model *model);
/* Free the tensors, their names, owned data and metadata. The struct itself is the caller's. */
SQ_API void sq_model_free(struct sq_model *model);
/*
 * Index of the tensor called `name`, or -1. O(1) on a model built by the
 * parsers and sq_model_add (a hash kept in `index`); a linear scan when the
 * tensors array or count were changed by hand (renaming a tensor in place
 * is not supported). Never modifies the model, so threads may share it.
 */
SQ_API ptrdiff_t sq_model_find(const struct sq_model *model, const char *name);

/*
 * Convert `count` elements of a float tensor starting at element `first` to
 * float32 (F64 rounds to nearest; F16/BF16 are exact). The range must lie
 * inside the tensor and the dtype must be quantizable; violations are
 * programmer errors (asserted).
 */
SQ_API void sq_tensor_to_f32(const struct sq_tensor *t, size_t first, size_t count, float *out);

#ifdef __cplusplus
}
#endif

#endif

/*
 * Tensor containers: bytes <-> struct sq_model. Strict parsers: every
 * length, offset, dtype and shape is checked before use, and a bad file
 * yields a status and a message naming what is wrong and where.
 *
 * Parsed tensors borrow the input buffer: it must outlive the model.
 */
#ifndef SQUANT_FORMAT_H
#define SQUANT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squant/status.h>
#include <squant/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sq_format {
    SQ_FORMAT_AUTO,        /* detect from the magic bytes (input only) */
    SQ_FORMAT_RAW,         /* bare little-endian elements; dtype and shape given separately */
    SQ_FORMAT_NPY,         /* NumPy .npy, versions 1 to 3 */
    SQ_FORMAT_SAFETENSORS, /* safetensors */
    SQ_FORMAT_JSON,        /* output only: metadata and base64 data */
    SQ_FORMAT_ONNX,        /* ONNX ModelProto; as output: the input model in QDQ form */
    SQ_FORMAT_DEQUANTIZED, /* output only: the input's own container, dequantized floats */
    SQ_FORMAT_COUNT
};

/* "auto", "raw", "npy", "safetensors", "json", "onnx", "dequantized". Never NULL. */
SQ_API const char *sq_format_name(enum sq_format format);
SQ_API enum sq_status sq_format_from_name(const char *name, enum sq_format *out);
/* NPY, SAFETENSORS or ONNX from the first bytes, or AUTO when none matches. */
SQ_API enum sq_format sq_format_detect(const uint8_t *buf, size_t len);

/* Limits applied while parsing. Each bound is inclusive. */
struct sq_limits {
    size_t max_tensors;          /* tensors in one file */
    unsigned max_rank;           /* <= SQ_MAX_RANK */
    uint64_t max_dim;            /* any one dimension */
    uint64_t max_tensor_elements;
    uint64_t max_total_elements; /* over all tensors of a file */
    size_t max_header_bytes;     /* safetensors JSON header, npy header */
    size_t max_name_bytes;       /* tensor names */
};

/* Defaults that no sane model exceeds (see docs/formats.md). */
SQ_API void sq_limits_init(struct sq_limits *limits);

/*
 * Parse `len` bytes as `format` (AUTO detects; RAW is not accepted here, use
 * sq_raw_parse). On success `model` (initialized by the caller) holds the
 * tensors, borrowing `buf`. A single .npy becomes one tensor called
 * `npy_name` ("tensor" when NULL). The model must be empty (SQ_ERR_ARG
 * otherwise); on failure it is left empty. `limits` NULL: the defaults.
 */
SQ_API enum sq_status sq_model_parse(const uint8_t *buf, size_t len, enum sq_format format,
                                     const struct sq_limits *limits, const char *npy_name,
                                     struct sq_model *model, struct sq_error *err);

SQ_API enum sq_status sq_npy_parse(const uint8_t *buf, size_t len, const struct sq_limits *limits,
                                   const char *name, struct sq_model *model, struct sq_error *err);

SQ_API enum sq_status sq_safetensors_parse(const uint8_t *buf, size_t len,
                                           const struct sq_limits *limits, struct sq_model *model,
                                           struct sq_error *err);

/* n float32 values as little-endian `dtype` elements (F32, F16, BF16, F64; round to nearest even). */
SQ_API void sq_tensor_from_f32(enum sq_dtype dtype, const float *src, size_t n, uint8_t *out);

/* A file an ONNX model refers to (external data), by its `location`. Borrowed. */
struct sq_external {
    const char *name;
    const uint8_t *data;
    size_t len;
};

/*
 * An ONNX ModelProto. The model gets one tensor per weight that SQuant can
 * quantize (the weight input of Conv, ConvTranspose, Gemm, and MatMul with
 * a constant rank-2 B, from initializers or Constant nodes), in the core's
 * [out, in, kernel...] layout (transposed when the operator's channel axis
 * is not 0), plus the graph itself for sq_onnx_write. External data is
 * looked up by location in `ext` (n_ext entries), which must outlive the
 * model like `buf`.
 */
SQ_API enum sq_status sq_onnx_parse(const uint8_t *buf, size_t len, const struct sq_external *ext,
                                    size_t n_ext, const struct sq_limits *limits,
                                    struct sq_model *model, struct sq_error *err);

/*
 * The distinct external-data locations the weights of an ONNX model would
 * read (what sq_onnx_parse needs in `ext`): *names is a malloc'ed array of
 * malloc'ed strings for sq_onnx_locations_free.
 */
SQ_API enum sq_status sq_onnx_locations(const uint8_t *buf, size_t len,
                                        const struct sq_limits *limits, char ***names, size_t *n,
                                        struct sq_error *err);
SQ_API void sq_onnx_locations_free(char **names, size_t n);

/* Where a tensor of a model parsed from ONNX comes from. */
struct sq_onnx_tensor_info {
    const char *op;      /* the consumer: "Conv", "ConvTranspose", "Gemm", "MatMul" */
    int axis;            /* the output-channel axis in the model's own layout */
    int64_t group;       /* ConvTranspose groups, else 1 */
    unsigned rank;
    const int64_t *dims; /* the model's own layout */
    bool constant_node;  /* from a Constant node (else an initializer) */
    int64_t opset;       /* of the default domain */
};
/* Whether the model was parsed from ONNX; then *opset (NULL: not wanted) is its default-domain opset. */
SQ_API bool sq_model_is_onnx(const struct sq_model *model, int64_t *opset);
/* False if the model is not from ONNX or the index is out of range. */
SQ_API bool sq_onnx_tensor_info(const struct sq_model *model, size_t tensor,
                                struct sq_onnx_tensor_info *info);
/* How many weights were left float (and why); entry i (< the count) into *name, *reason. */
SQ_API size_t sq_onnx_skipped(const struct sq_model *model, size_t i, const char **name,
                              const char **reason);

/*
 * Whether g is a block size MatMulNBits is written with: 16, 32, 64, 128 or
 * 256 (the operator asks for a power of two >= 16; ONNX Runtime 1.20's CPU
 * kernel computes NaN beyond 256).
 */
SQ_API bool sq_onnx_nbits_block_ok(size_t g);

enum sq_onnx_layout {
    SQ_ONNX_QDQ,         /* int8 codes + DequantizeLinear (or Cast/Sub/Mul below opset 13) */
    SQ_ONNX_DEQUANTIZED, /* the float weights replaced in place */
    SQ_ONNX_QDQ_INT4,    /* INT4 codes + DequantizeLinear, opset >= 21 */
    SQ_ONNX_MATMULNBITS, /* MatMul weights as com.microsoft MatMulNBits (4 bits, blocks of a
                            power of two >= 16), every other weight as SQ_ONNX_QDQ */
};

/*
 * One quantized weight for sq_onnx_write, in the core's layout: codes
 * [out, ...], scale and zero point per output channel or per group (the
 * public convention w = (q - zero_point) * scale), or the dequantized floats.
 */
struct sq_onnx_weight {
    size_t tensor; /* index in the model */
    const int8_t *codes;
    const float *scale;
    const float *zero_point;
    const float *dequantized; /* SQ_ONNX_DEQUANTIZED only */
    unsigned bits;
    size_t group; /* 0: scale[c] per output channel; g: scale[c * ceil(I / g) + j], j = i / g */
};

/*
 * Write the ONNX model `model` came from with the `n` weights replaced as
 * `layout` says; every other field is kept. `report` (NULL: none) goes into
 * metadata_props under "squant". Output malloc'ed for the caller.
 */
SQ_API enum sq_status sq_onnx_write(const struct sq_model *model, const struct sq_onnx_weight *w,
                                    size_t n, enum sq_onnx_layout layout, const char *report,
                                    size_t limit, uint8_t **out, size_t *out_len,
                                    struct sq_error *err);

/*
 * The inverse of the QDQ forms sq_onnx_write writes: every DequantizeLinear
 * with constant inputs (blocked too), every Mul(Sub(Cast(q) |
 * DequantizeLinear(q, 1, 0), zero_point), scale) chain over constants
 * (zero_point and scale each a constant or a Gather of constants), and
 * every Reshape(Mul(Sub(Reshape(Cast(q), view), zero_point), scale), q's
 * dims) (groups below opset 21), is folded into a FLOAT
 * weight of the same name (an initializer, or a Constant node when the codes
 * were one), computed as ONNX Runtime computes it; the constants only those
 * nodes read go too, everything else is kept. *restored counts the weights.
 */
SQ_API enum sq_status sq_onnx_dequantize(const uint8_t *buf, size_t len,
                                         const struct sq_limits *limits, size_t limit,
                                         uint8_t **out, size_t *out_len, size_t *restored,
                                         struct sq_error *err);

/* A raw blob: `len` must equal the shape's element count times the dtype's size. */
SQ_API enum sq_status sq_raw_parse(const uint8_t *buf, size_t len, enum sq_dtype dtype,
                                   unsigned rank, const int64_t *shape,
                                   const struct sq_limits *limits, const char *name,
                                   struct sq_model *model, struct sq_error *err);

/*
 * Append a tensor. The name (non-empty UTF-8) is copied. If `owned` is true
 * the model takes `data` (which must come from malloc) and frees it;
 * otherwise it borrows. On failure the model takes nothing: an owned
 * `data` is still the caller's to free. nbytes must equal the shape's
 * element count times the dtype size (SQ_ERR_SHAPE); a name already in the
 * model is SQ_ERR_CONFLICT.
 */
SQ_API enum sq_status sq_model_add(struct sq_model *model, const char *name, enum sq_dtype dtype,
                                   unsigned rank, const int64_t *shape, const void *data,
                                   size_t nbytes, bool owned, struct sq_error *err);
/* Set (or replace) a metadata entry; both strings (UTF-8) are copied. Entries keep the order
 * in which they were first set. */
SQ_API enum sq_status sq_model_set_meta(struct sq_model *model, const char *key, const char *value,
                                        struct sq_error *err);

/*
 * Serialize. The result is malloc'ed and handed to the caller (*out, *out_len),
 * who frees it. SQ_ERR_LIMIT if it would exceed `limit` bytes.
 */
SQ_API enum sq_status sq_safetensors_write(const struct sq_model *model, size_t limit,
                                           uint8_t **out, size_t *out_len, struct sq_error *err);
/*
 * Only the header of what sq_safetensors_write produces (the 8-byte length,
 * the JSON and its padding): the data section, the tensors' bytes in model
 * order, can then be written by the caller piece by piece. Tensor data may
 * be NULL here. Ownership and errors as sq_safetensors_write.
 */
SQ_API enum sq_status sq_safetensors_write_header(const struct sq_model *model, size_t limit,
                                                  uint8_t **out, size_t *out_len,
                                                  struct sq_error *err);
/* One tensor as .npy version 1.0 (2.0 if the header needs it), little-endian. */
SQ_API enum sq_status sq_npy_write(const struct sq_tensor *tensor, size_t limit, uint8_t **out,
                                   size_t *out_len, struct sq_error *err);

#ifdef __cplusplus
}
#endif

#endif

/*
 * Raw little-endian blobs (dtype and shape given by the caller), and the
 * format dispatch of sq_model_parse.
 */
#include <string.h>

#include "formats.h"

static enum sq_status raw_parse(const uint8_t *buf, size_t len, enum sq_dtype dtype, unsigned rank,
                                const int64_t *shape, const struct sq_limits *lim, const char *name,
                                struct sq_model *model, struct sq_error *err)
{
    size_t nlen = strlen(name);
    if (nlen == 0 || !sqi_utf8_valid(name, nlen))
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1,
                           "the tensor name for a raw input must be non-empty UTF-8");
    if (nlen > lim->max_name_bytes)
        return sqi_fail_at(err, SQ_ERR_LIMIT, NULL, -1,
                           "tensor name of %zu bytes is above the limit %zu (max_name_bytes)", nlen,
                           lim->max_name_bytes);
    if ((unsigned)dtype >= SQ_DTYPE_COUNT)
        return sqi_fail_at(err, SQ_ERR_DTYPE, name, -1, "raw input: unknown dtype %d", (int)dtype);
    if (rank < 1 || rank > SQ_MAX_RANK || !shape)
        return sqi_fail_at(err, SQ_ERR_SHAPE, name, -1,
                           "raw input: the shape needs 1 to %d dimensions, got %u", SQ_MAX_RANK,
                           rank);
    if (lim->max_tensors < 1)
        return sqi_fail_at(err, SQ_ERR_LIMIT, name, -1,
                           "a raw input holds one tensor, above the limit 0 (max_tensors)");
    uint64_t total = 0;
    size_t nelems, nbytes;
    enum sq_status st = sqi_check_shape(lim, rank, shape, &total, &nelems, name, -1, err);
    if (st != SQ_OK)
        return st;
    if (!sqi_mul(nelems, sq_dtype_size(dtype), &nbytes))
        return sqi_fail_at(err, SQ_ERR_LIMIT, name, -1, "raw input: data size overflows");
    if (len != nbytes) {
        char s[96];
        sqi_shape_str(s, sizeof s, rank, shape);
        return sqi_fail_at(err, SQ_ERR_SHAPE, name, (int64_t)(len < nbytes ? len : nbytes),
                           "raw input is %zu bytes, but shape %s of %s needs %zu", len, s,
                           sq_dtype_name(dtype), nbytes);
    }
    return sqi_model_push(model, name, nlen, dtype, rank, shape, nelems, buf, nbytes, NULL, err);
}

enum sq_status sq_raw_parse(const uint8_t *buf, size_t len, enum sq_dtype dtype, unsigned rank,
                            const int64_t *shape, const struct sq_limits *limits, const char *name,
                            struct sq_model *model, struct sq_error *err)
{
    struct sq_limits lim;
    sqi_limits_effective(limits, &lim);
    enum sq_status st = sqi_model_require_empty(model, err);
    if (st != SQ_OK)
        return st;
    if (!buf && len)
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1, "sq_raw_parse: no buffer");
    st = raw_parse(buf ? buf : (const uint8_t *)"", len, dtype, rank, shape, &lim,
                   name ? name : "tensor", model, err);
    if (st != SQ_OK)
        sq_model_free(model);
    return st;
}

enum sq_status sq_model_parse(const uint8_t *buf, size_t len, enum sq_format format,
                              const struct sq_limits *limits, const char *npy_name,
                              struct sq_model *model, struct sq_error *err)
{
    if (format == SQ_FORMAT_AUTO)
        format = sq_format_detect(buf ? buf : (const uint8_t *)"", buf ? len : 0);
    switch (format) {
    case SQ_FORMAT_NPY:
        return sq_npy_parse(buf, len, limits, npy_name, model, err);
    case SQ_FORMAT_SAFETENSORS:
        return sq_safetensors_parse(buf, len, limits, model, err);
    case SQ_FORMAT_ONNX:
        return sq_onnx_parse(buf, len, NULL, 0, limits, model, err);
    case SQ_FORMAT_AUTO:
        return sqi_fail_at(err, SQ_ERR_UNSUPPORTED, NULL, 0,
                           "unrecognized input: not .npy (\\x93NUMPY), safetensors (8-byte "
                           "header length + JSON) or ONNX (a ModelProto starting with "
                           "ir_version)");
    case SQ_FORMAT_RAW:
        return sqi_fail_at(err, SQ_ERR_ARG, NULL, -1,
                           "a raw input needs a dtype and a shape: use sq_raw_parse");
    default:
        return sqi_fail_at(err, SQ_ERR_UNSUPPORTED, NULL, -1, "%s is not an input format",
                           sq_format_name(format));
    }
}

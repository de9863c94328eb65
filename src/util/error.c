#include <stdio.h>
#include <string.h>

#include "util.h"

/* One row per status: the stable name (JSON error code) and a description. */
static const struct {
    const char *name;
    const char *text;
} status_table[SQ_STATUS_COUNT] = {
    [SQ_OK] = {"ok", "success"},
    [SQ_ERR_NOMEM] = {"out_of_memory", "out of memory"},
    [SQ_ERR_ARG] = {"bad_parameter", "a parameter is out of range or malformed"},
    [SQ_ERR_FORMAT] = {"bad_format", "the input is not a well-formed file of its format"},
    [SQ_ERR_DTYPE] = {"bad_dtype", "the element type cannot be read here"},
    [SQ_ERR_SHAPE] = {"bad_shape", "the shape cannot be quantized or disagrees with the data"},
    [SQ_ERR_NONFINITE] = {"nonfinite_weight", "a weight is NaN or infinite"},
    [SQ_ERR_LIMIT] = {"limit_exceeded", "a configured limit was exceeded"},
    [SQ_ERR_UNSUPPORTED] = {"unsupported_format", "the format is not supported"},
    [SQ_ERR_NO_TENSOR] = {"no_tensor", "no tensor is selected for quantization"},
    [SQ_ERR_CONFLICT] = {"name_conflict", "an output name collides with an input tensor"},
    [SQ_ERR_IO] = {"io_error", "reading or writing a file failed"},
    [SQ_ERR_CANCELLED] = {"cancelled", "the work was cancelled"},
    [SQ_ERR_INTERNAL] = {"internal_error", "internal error (a bug in libsquant)"},
    [SQ_ERR_NOSPACE] = {"insufficient_storage", "no space is left on the disk"},
};

const char *sq_status_name(enum sq_status status)
{
    if ((unsigned)status >= SQ_STATUS_COUNT)
        return "unknown";
    return status_table[status].name;
}

const char *sq_strerror(enum sq_status status)
{
    if ((unsigned)status >= SQ_STATUS_COUNT)
        return "unknown status";
    return status_table[status].text;
}

void sq_error_init(struct sq_error *err)
{
    if (!err)
        return;
    err->status = SQ_OK;
    err->tensor[0] = '\0';
    err->offset = -1;
    err->channel = -1;
    err->index = -1;
    err->message[0] = '\0';
}

enum sq_status sqi_vfail(struct sq_error *err, enum sq_status status, const char *fmt, va_list ap)
{
    if (err) {
        err->status = status;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
    }
    return status;
}

enum sq_status sqi_fail(struct sq_error *err, enum sq_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqi_vfail(err, status, fmt, ap);
    va_end(ap);
    return status;
}

void sqi_error_tensor(struct sq_error *err, const char *name)
{
    if (!err || !name)
        return;
    size_t n = strlen(name);
    if (n >= sizeof err->tensor)
        n = sizeof err->tensor - 1;
    memcpy(err->tensor, name, n);
    err->tensor[n] = '\0';
}

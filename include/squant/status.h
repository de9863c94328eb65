/*
 * Version, status codes and the caller-owned error record that every
 * fallible function of libsquant fills. Part of <squant/squant.h>.
 */
#ifndef SQUANT_STATUS_H
#define SQUANT_STATUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQ_VERSION_MAJOR 0
#define SQ_VERSION_MINOR 1
#define SQ_VERSION_PATCH 0
#define SQ_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define SQ_API __attribute__((visibility("default")))
#else
#define SQ_API
#endif

/*
 * Status codes. Every public function returns one; SQ_OK is 0. The daemon
 * maps each to exactly one HTTP status and JSON error code (src/daemon).
 */
enum sq_status {
    SQ_OK = 0,
    SQ_ERR_NOMEM,       /* an allocation failed or a size overflowed size_t */
    SQ_ERR_ARG,         /* a parameter is out of range or malformed (bits, mode, glob, ...) */
    SQ_ERR_FORMAT,      /* the bytes are not a well-formed file of their format */
    SQ_ERR_DTYPE,       /* a dtype that cannot be read where it was found */
    SQ_ERR_SHAPE,       /* a shape that cannot be quantized, or that disagrees with the data */
    SQ_ERR_NONFINITE,   /* NaN or Inf in a weight that is to be quantized */
    SQ_ERR_LIMIT,       /* a configured limit (tensors, rank, elements, bytes) was exceeded */
    SQ_ERR_UNSUPPORTED, /* an input or output format that is not supported */
    SQ_ERR_NO_TENSOR,   /* the input holds no tensor that the request selects for quantization */
    SQ_ERR_CONFLICT,    /* an output name collides with an input tensor */
    SQ_ERR_IO,          /* reading or writing a file failed */
    SQ_ERR_CANCELLED,   /* the work was cancelled before it finished */
    SQ_ERR_INTERNAL,    /* a broken invariant: a bug in libsquant */
    SQ_ERR_NOSPACE,     /* a file could not be written: the disk (or quota) is full */
    SQ_STATUS_COUNT
};

/* Short, stable identifier of a status ("format", "nonfinite", ...). Never NULL. */
SQ_API const char *sq_status_name(enum sq_status status);
/* One-sentence description of a status. Never NULL. */
SQ_API const char *sq_strerror(enum sq_status status);

/* The largest tensor rank libsquant handles. */
#define SQ_MAX_RANK 8

#define SQ_ERROR_TENSOR_MAX 160
#define SQ_ERROR_MESSAGE_MAX 320

/*
 * What went wrong, and where. Caller-owned (usually on the stack); functions
 * that take one fill it when they fail and leave it alone when they succeed.
 * Fields that do not apply are "" or -1.
 */
struct sq_error {
    enum sq_status status;
    char tensor[SQ_ERROR_TENSOR_MAX];   /* tensor name, truncated */
    int64_t offset;                     /* byte offset in the input */
    int64_t channel;                    /* output channel */
    int64_t index;                      /* element index (C order) within the tensor */
    char message[SQ_ERROR_MESSAGE_MAX]; /* complete sentence, names what and where */
};

/* Reset to "no error": status SQ_OK, empty strings, -1 positions. */
SQ_API void sq_error_init(struct sq_error *err);

#ifdef __cplusplus
}
#endif

#endif

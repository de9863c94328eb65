/*
 * The SQuant core: quantize the output channels of one weight tensor.
 *
 * Pure functions over caller-owned float buffers: no I/O, no global state,
 * no allocation (the caller passes scratch memory), reentrant. Two threads
 * may quantize disjoint channel ranges of the same tensor at once.
 */
#ifndef SQUANT_QUANT_H
#define SQUANT_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squant/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQ_BITS_MIN 2
#define SQ_BITS_MAX 8
#define SQ_BITS_DEFAULT 4

/* Which stages run (SQUANT-SPEC section 1). */
enum sq_mode {
    SQ_MODE_SQUANT,   /* E + K + C: the default */
    SQ_MODE_SQUANT_K, /* E + K */
    SQ_MODE_SQUANT_C, /* E + C */
    SQ_MODE_RTN,      /* E only: round to nearest; also called "squant-e" */
    SQ_MODE_COUNT
};

/* How each channel's range maps onto the codes. */
enum sq_scheme {
    SQ_SCHEME_ASYMMETRIC, /* [min, max] onto [t_min, t_max] with a zero point (the paper's) */
    SQ_SCHEME_SYMMETRIC,  /* [-max|w|, max|w|] onto [-t_max, t_max], zero point 0 */
    SQ_SCHEME_COUNT
};

/* Which implementation computes the codes. All give identical results. */
enum sq_impl {
    SQ_IMPL_AUTO,    /* the fastest available on this CPU */
    SQ_IMPL_REF,     /* the scalar reference: SQUANT-SPEC written out literally */
    SQ_IMPL_GENERIC, /* portable optimized C */
    SQ_IMPL_AVX2,    /* x86-64 with AVX2 */
    SQ_IMPL_AVX512,  /* x86-64 with AVX-512 F/BW/VL/DQ */
    SQ_IMPL_COUNT
};

SQ_API const char *sq_mode_name(enum sq_mode mode);
/* Accepts "squant", "squant-k", "squant-c", "rtn" and its alias "squant-e". */
SQ_API enum sq_status sq_mode_from_name(const char *name, enum sq_mode *out);
SQ_API const char *sq_scheme_name(enum sq_scheme scheme);
SQ_API enum sq_status sq_scheme_from_name(const char *name, enum sq_scheme *out);
SQ_API const char *sq_impl_name(enum sq_impl impl);
SQ_API enum sq_status sq_impl_from_name(const char *name, enum sq_impl *out);
/* Whether `impl` can run on this CPU (AUTO, REF and GENERIC always can). */
SQ_API bool sq_impl_available(enum sq_impl impl);

struct sq_params {
    unsigned bits;          /* SQ_BITS_MIN..SQ_BITS_MAX */
    enum sq_mode mode;
    enum sq_scheme scheme;
    enum sq_impl impl;
};

/* Defaults: 4 bits, squant, asymmetric, auto. */
SQ_API void sq_params_init(struct sq_params *params);
/* SQ_ERR_ARG with a message if a field is out of range or the impl is unavailable. */
SQ_API enum sq_status sq_params_check(const struct sq_params *params, struct sq_error *err);

/*
 * Geometry of a weight tensor: `channels` output channels, each made of
 * `kernels` kernels of `ksize` consecutive elements. From the shape:
 * [O, I] -> (O, I, 1); [O, I, k] -> (O, I, k); [O, I, kh, kw] -> (O, I, kh*kw);
 * higher ranks [O, I, d1, ..., dn] -> (O, I, d1*...*dn).
 */
struct sq_layer {
    size_t channels;
    size_t kernels;
    size_t ksize;
};

/*
 * Derive the geometry from a shape of rank 2..SQ_MAX_RANK with every
 * dimension >= 1. SQ_ERR_SHAPE otherwise; SQ_ERR_LIMIT if the element count
 * overflows or a channel exceeds 2^30 elements.
 */
SQ_API enum sq_status sq_layer_init(struct sq_layer *layer, unsigned rank, const int64_t *shape,
                                    struct sq_error *err);
/* Elements per output channel (kernels * ksize). */
SQ_API size_t sq_layer_channel_size(const struct sq_layer *layer);

/*
 * Quality report for a tensor or part of one. Sums and maxima, so that the
 * reports of disjoint channel ranges merge (sq_report_merge) into the
 * tensor's. Errors are measured on dequantized weights w' = (q - zp) * scale
 * against the input, for the chosen mode and for round to nearest; residuals
 * are |sum(q - x)| in code units over a kernel or a channel, where x is the
 * real-valued code (SQUANT-SPEC section 3).
 */
struct sq_report {
    uint64_t weights;             /* elements covered */
    double sse;                   /* sum of squared dequantization errors */
    double max_abs;               /* largest absolute dequantization error */
    double rtn_sse;               /* the same for round to nearest */
    double rtn_max_abs;
    double max_kernel_residual;   /* largest |sum(q - x)| over kernels */
    double max_channel_residual;  /* largest |sum(q - x)| over channels */
    double rtn_max_kernel_residual;
    double rtn_max_channel_residual;
    uint64_t flips;               /* elements whose final code differs from round to nearest */
    uint64_t kernel_flips;        /* elements the kernel stage changed */
    uint64_t channel_flips;       /* elements the channel stage changed */
};

SQ_API void sq_report_init(struct sq_report *report);
/* dst += src. */
SQ_API void sq_report_merge(struct sq_report *dst, const struct sq_report *src);

/*
 * Bytes of scratch memory sq_quantize_range needs for this layer (at least
 * one channel's worth; independent of the range). 64-byte alignment is
 * best but not required.
 */
SQ_API enum sq_status sq_scratch_size(const struct sq_layer *layer, size_t *bytes);

/*
 * Quantize output channels [c0, c1) of `layer`. Every array argument starts
 * at channel c0 (not at the start of the tensor), so a caller can convert
 * or allocate just the range:
 *
 * w          (c1 - c0) * channel_size float32 weights, C order.
 * codes      (c1 - c0) * channel_size int8 codes (written).
 * scale      c1 - c0 per-channel step sizes (written).
 * zero_point c1 - c0 per-channel zero points, integer values held in floats
 *            (written), so that w ~ (code - zero_point) * scale.
 * scratch    at least sq_scratch_size() bytes, not shared with another thread.
 * report     optional (NULL skips the report, and its cost): filled with the
 *            report of channels [c0, c1).
 *
 * c0 only serves to number channels and elements in errors. SQ_ERR_NONFINITE
 * (err->channel and err->index counted from the start of the tensor) if a
 * weight is NaN or infinite; the outputs are then unspecified. SQ_ERR_ARG for
 * bad params, a bad range or too little scratch.
 */
SQ_API enum sq_status sq_quantize_range(const struct sq_params *params, const struct sq_layer *layer,
                                        const float *w, size_t c0, size_t c1, int8_t *codes,
                                        float *scale, float *zero_point, void *scratch,
                                        size_t scratch_size, struct sq_report *report,
                                        struct sq_error *err);

/*
 * Group-wise ranges (docs/algorithm.md, "Groups"). With group g >= 1, output
 * channel o is cut along the input dimension into G = ceil(kernels / g)
 * consecutive groups of g kernels (input channels, each with all its ksize
 * elements), the last one possibly shorter; each group gets its own range,
 * scale and zero point, and SQuant runs on it as if it were an output
 * channel. group 0 means one group per channel: per-channel SQuant. A group
 * >= kernels is one group per channel too (G = 1).
 *
 * Groups are numbered u = o * G + j (j-th group of channel o); they are
 * contiguous in memory in that order, so a range of groups is a range of
 * weights, and scales and zero points of a tensor form an [O, G] array.
 */

/* Groups per output channel: 1 for group 0, else ceil(kernels / group). */
SQ_API size_t sq_layer_groups(const struct sq_layer *layer, size_t group);
/* Offset, in elements from the start of the tensor, of the first weight of group u. */
SQ_API size_t sq_group_offset(const struct sq_layer *layer, size_t group, size_t u);
/* Scratch for sq_quantize_groups (no more than sq_scratch_size of the layer). */
SQ_API enum sq_status sq_group_scratch_size(const struct sq_layer *layer, size_t group,
                                            size_t *bytes);

/*
 * Quantize groups [u0, u1) of `layer` cut into groups of `group` kernels:
 * exactly sq_quantize_range applied to each group as a one-channel layer
 * {1, its kernels, ksize} (for group 0, exactly sq_quantize_range over
 * channels [u0, u1)). Arrays start at group u0: w and codes at weight
 * sq_group_offset(u0), scale and zero_point at index u0 of the [O, G] array;
 * they hold sq_group_offset(u1) - sq_group_offset(u0) weights and u1 - u0
 * scales. The report covers the range, its "channel" residuals are group
 * residuals. SQ_ERR_NONFINITE names the output channel and the element
 * counted from the start of the tensor; SQ_ERR_ARG for bad arguments.
 */
SQ_API enum sq_status sq_quantize_groups(const struct sq_params *params,
                                         const struct sq_layer *layer, size_t group,
                                         const float *w, size_t u0, size_t u1, int8_t *codes,
                                         float *scale, float *zero_point, void *scratch,
                                         size_t scratch_size, struct sq_report *report,
                                         struct sq_error *err);

/*
 * Dequantize n codes of one channel: out[i] = f32((codes[i] - zero_point) * scale),
 * computed in double and rounded once. The report measures errors with it.
 */
SQ_API void sq_dequantize(const int8_t *codes, size_t n, float scale, float zero_point, float *out);

#ifdef __cplusplus
}
#endif

#endif

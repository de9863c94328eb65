/*
 * GNU C vectors (GCC and Clang) as wide as the target's registers, for the
 * portable code written once and compiled per ISA (report_body.h, the
 * generic implementation): the compiler maps them onto whatever the target
 * has (SSE2 or NEON, AVX2, AVX-512) without intrinsics.
 *
 * SQI_DW double lanes (2 for SSE2 and NEON, 4 for AVX2, 8 for AVX-512);
 * sqi_vf is a float vector of as many lanes, so that conversions pair up;
 * sqi_vfn is a whole register of floats (SQI_FW = 2 * SQI_DW lanes).
 */
#ifndef SQ_VEC_H
#define SQ_VEC_H

#include <stdint.h>

#if defined(__AVX512F__)
#define SQI_DW 8
#elif defined(__AVX__)
#define SQI_DW 4
#else
#define SQI_DW 2
#endif
#define SQI_FW (2 * SQI_DW)
#define SQI_NV (8 / SQI_DW)
typedef float sqi_vf __attribute__((vector_size(4 * SQI_DW)));
typedef double sqi_vd __attribute__((vector_size(8 * SQI_DW)));
typedef int32_t sqi_vi __attribute__((vector_size(4 * SQI_DW)));
typedef int64_t sqi_vl __attribute__((vector_size(8 * SQI_DW)));
typedef int8_t sqi_vb __attribute__((vector_size(SQI_DW)));
typedef float sqi_vfn __attribute__((vector_size(4 * SQI_FW)));
typedef int32_t sqi_vin __attribute__((vector_size(4 * SQI_FW)));

/* m ? a : b, lane-wise (m: all ones or zero) */
#define SQI_SELF(m, a, b) ((sqi_vf)(((m) & (sqi_vi)(a)) | (~(m) & (sqi_vi)(b))))
#define SQI_SELFN(m, a, b) ((sqi_vfn)(((m) & (sqi_vin)(a)) | (~(m) & (sqi_vin)(b))))
#define SQI_SELD(m, a, b) ((sqi_vd)(((m) & (sqi_vl)(a)) | (~(m) & (sqi_vl)(b))))
#define SQI_ABSD(v) ((sqi_vd)((sqi_vl)(v) & (INT64_MAX + (sqi_vl){0})))
#define SQI_MAXD(a, b) SQI_SELD((b) > (a), b, a)

#endif

/*
 * libsquant: data-free SQuant weight quantization (Guo et al., ICLR 2022).
 *
 * Umbrella header: include this one header to get the whole public API.
 *   status.h  version, enum sq_status, struct sq_error
 *   tensor.h  dtypes, struct sq_tensor, struct sq_model
 *   quant.h   the core: sq_quantize_range and its parameters and report
 *   format.h  .npy, safetensors and raw parsers and writers
 *   plan.h    options, work items and output assembly shared by CLI and daemon
 */
#ifndef SQUANT_SQUANT_H
#define SQUANT_SQUANT_H

#include <squant/status.h>
#include <squant/tensor.h>
#include <squant/quant.h>
#include <squant/format.h>
#include <squant/plan.h>

#endif

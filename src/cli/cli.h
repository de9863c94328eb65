/* Internals of the squant tool shared between its files. */
#ifndef SQ_CLI_H
#define SQ_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squant/squant.h>

/* "squant: FILE: message (tensor 'x', byte offset n)" on stderr. */
void cli_fail_line(const char *file, const struct sq_error *err);

/*
 * Quantize with bounded memory: run `plan` (from sq_plan_new_streaming over
 * `model`, parsed from the read-only mapping map/map_len) on libuv's pool,
 * a few layers in flight, stream the output's data section to an unnamed
 * temporary file beside `out_path` (or in $TMPDIR for "-"), then write the
 * header followed by the data to `out_path` atomically (temporary name,
 * fsync, rename) or to standard output. Input pages already consumed are
 * dropped from the mapping as the run goes. 0 on success, -1 after
 * printing the error.
 */
int cli_quantize_streaming(struct sq_plan *plan, const struct sq_model *model, const uint8_t *map,
                           size_t map_len, const char *out_path, bool progress,
                           const char *in_path);

#endif

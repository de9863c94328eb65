/* A streaming multipart/form-data reader (multipart.c). */
#ifndef SQD_MULTIPART_H
#define SQD_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One piece of a part's data (off = bytes of the part before it). name,
 * filename and content_type are NULL when the part's headers do not give
 * them. An empty part is reported once with size 0. False stops the reader.
 */
typedef bool (*sqd_part_fn)(void *cls, const char *name, const char *filename,
                            const char *content_type, const char *data, uint64_t off, size_t size);
struct sqd_multipart;
/* The boundary parameter of a multipart Content-Type (1-70 bchars). */
bool sqd_multipart_boundary(const char *content_type, char *out, size_t outsize);
/* A reader for a body of this Content-Type; NULL without a valid boundary (or memory). */
struct sqd_multipart *sqd_multipart_new(const char *content_type, sqd_part_fn fn, void *cls);
/* Feed body bytes. False: malformed, or the callback said stop. */
bool sqd_multipart_feed(struct sqd_multipart *mp, const char *data, size_t n);
/* At the end of the body: true if the closing delimiter was seen (or no delimiter at all). */
bool sqd_multipart_end(struct sqd_multipart *mp);
void sqd_multipart_free(struct sqd_multipart *mp);

#endif

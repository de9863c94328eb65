/* The route table and its lookups (routes.c). */
#ifndef SQD_ROUTES_H
#define SQD_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"

/* The table of routes, and its size. Index = metrics label slot. */
const struct sqd_route *sqd_routes(size_t *count);
/*
 * Find the route for method and path. Returns the row, or NULL with
 * *path_known telling 404 (false) from 405 (true); `allow` then receives the
 * methods the path accepts ("GET, HEAD, DELETE"). `id` receives the {id}
 * segment if any (at most idsize-1 chars, else no match).
 */
const struct sqd_route *sqd_route_find(const char *method, const char *path, bool *path_known,
                                       char *allow, size_t allowsize, char *id, size_t idsize);
/* Index of a route row in the table (for metrics); the row after the last is "unmatched". */
size_t sqd_route_index(const struct sqd_route *r);
/* The first row whose template matches the path, whatever its method (NULL if none). */
const struct sqd_route *sqd_route_path(const char *path);

#endif

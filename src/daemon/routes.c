/*
 * The table of routes: one row per path template and method. Lookups give
 * 404 for an unknown path and 405 (with the Allow list) for a known path
 * with another method. HEAD is served wherever GET is.
 */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "routes.h"
#include "ui.h"
#include "upload.h"

/* clang-format off */
static const struct sqd_route routes[] = {
    {"/v1/quantize",          "POST",   sqd_h_quantize,   SQD_ROUTE_BODY},
    {"/v1/jobs",              "POST",   sqd_h_jobs_post,  SQD_ROUTE_BODY},
    {"/v1/jobs",              "GET",    sqd_h_jobs_list,  0},
    {"/v1/jobs/{id}",         "GET",    sqd_h_job_get,    0},
    {"/v1/jobs/{id}",         "DELETE", sqd_h_job_delete, 0},
    {"/v1/jobs/{id}/result",  "GET",    sqd_h_job_result, 0},
    {"/v1/jobs/{id}/report",  "GET",    sqd_h_job_report, 0},
    {"/v1/info",              "GET",    sqd_h_info,       0},
    {"/healthz",              "GET",    sqd_h_healthz,    SQD_ROUTE_NOAUTH},
    {"/readyz",               "GET",    sqd_h_readyz,     SQD_ROUTE_NOAUTH},
    {"/metrics",              "GET",    sqd_h_metrics,    0},
    {"/",                     "GET",    sqd_h_ui_page,    SQD_ROUTE_NOAUTH},
    {"/ui/{name}",            "GET",    sqd_h_ui_asset,   SQD_ROUTE_NOAUTH},
};
/* clang-format on */

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

const struct sqd_route *sqd_routes(size_t *count)
{
    *count = NROUTES;
    return routes;
}

size_t sqd_route_index(const struct sqd_route *r)
{
    return r ? (size_t)(r - routes) : NROUTES;
}

/*
 * Match a template against a path; "{id}" (any "{...}") takes one non-empty
 * segment. A segment too long for `id` still matches, cut to idsize-1
 * bytes: no job has such an id, so the handler answers 404 under the route.
 */
static bool match(const char *tpl, const char *path, char *id, size_t idsize)
{
    while (*tpl && *path) {
        if (*tpl == '{') {
            size_t n = strcspn(path, "/");
            if (n == 0 || idsize == 0)
                return false;
            size_t k = n < idsize ? n : idsize - 1;
            memcpy(id, path, k);
            id[k] = '\0';
            tpl += strcspn(tpl, "}") + 1;
            path += n;
            continue;
        }
        if (*tpl != *path)
            return false;
        tpl++;
        path++;
    }
    return *tpl == '\0' && *path == '\0';
}

const struct sqd_route *sqd_route_path(const char *path)
{
    char scratch[SQD_JOBID_LEN + 2];
    for (size_t i = 0; i < NROUTES; i++)
        if (match(routes[i].path, path, scratch, sizeof(scratch)))
            return &routes[i];
    return NULL;
}

const struct sqd_route *sqd_route_find(const char *method, const char *path, bool *path_known,
                                       char *allow, size_t allowsize, char *id, size_t idsize)
{
    *path_known = false;
    allow[0] = '\0';
    size_t used = 0;
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (size_t i = 0; i < NROUTES; i++) {
        char scratch[SQD_JOBID_LEN + 2];
        if (!match(routes[i].path, path, scratch,
                   sizeof(scratch) < idsize ? sizeof(scratch) : idsize))
            continue;
        *path_known = true;
        if (strcmp(routes[i].method, m) == 0) {
            if (strchr(routes[i].path, '{'))
                snprintf(id, idsize, "%s", scratch);
            else if (idsize)
                id[0] = '\0';
            return &routes[i];
        }
        int n = snprintf(allow + used, allowsize - used, "%s%s%s", used ? ", " : "",
                         routes[i].method, strcmp(routes[i].method, "GET") == 0 ? ", HEAD" : "");
        if (n > 0 && (size_t)n < allowsize - used)
            used += (size_t)n;
    }
    return NULL;
}

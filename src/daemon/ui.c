/*
 * The page for people: GET / answers ui/index.html, GET /ui/{name} the
 * page's other files (its script, its style, the bundled plotting
 * library). The files are compiled into the binary (ui_assets.c, generated
 * from ui/ by scripts/embed-ui), so the daemon needs no directory of its
 * own and serves exactly the page it was built with.
 *
 * Every answer carries a strong ETag (a hash of the bytes; If-None-Match
 * gives 304), Cache-Control: no-cache (browsers revalidate, so an upgraded
 * daemon's page is picked up at once) and a Content-Security-Policy that
 * lets the page load and contact nothing but this origin. The page and its
 * files need no token: they hold nothing but code, and the page asks for
 * the token itself when the API answers 401.
 */
#include <string.h>

#include "ctx.h"
#include "respond.h"
#include "ui.h"

/* Nothing foreign: scripts, styles, fonts, fetches only from here; no frames, no plugins. */
static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
                          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static const struct sqd_asset *find_asset(const char *name)
{
    size_t n;
    const struct sqd_asset *a = sqd_ui_assets(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].name, name) == 0)
            return &a[i];
    return NULL;
}

/*
 * Whether an If-None-Match value names `etag`: "*", or a comma-separated
 * list of entity tags, weak ones (W/"...") compared weakly as RFC 9110 says.
 */
static bool etag_matches(const char *header, const char *etag)
{
    if (!header)
        return false;
    size_t elen = strlen(etag);
    const char *p = header;
    while (*p) {
        p += strspn(p, " \t,");
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        size_t n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == elen && memcmp(p, etag, n) == 0)
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

static void answer_asset(struct sqd_request *req, const struct sqd_asset *a)
{
    const char *h[] = {"ETag",
                       a->etag,
                       "Cache-Control",
                       "no-cache",
                       "Content-Security-Policy",
                       csp,
                       "X-Content-Type-Options",
                       "nosniff",
                       "Referrer-Policy",
                       "no-referrer",
                       NULL};
    const char *inm = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "If-None-Match");
    if (etag_matches(inm, a->etag)) {
        sqd_respond_headers(req, 304, NULL, NULL, 0, h);
        return;
    }
    sqd_respond_static(req, 200, a->content_type, a->data, a->len, h);
}

static bool ui_on(struct sqd_request *req)
{
    if (req->ctx->cfg.ui)
        return true;
    sqd_respond_error(req, 404, "not_found",
                      "no such endpoint: %.200s (the page is off: ui = no in the configuration)",
                      req->path);
    return false;
}

void sqd_h_ui_page(struct sqd_request *req)
{
    if (!ui_on(req))
        return;
    const struct sqd_asset *a = find_asset("index.html");
    if (!a) {
        sqd_respond_error(req, 404, "not_found", "this build has no page");
        return;
    }
    answer_asset(req, a);
}

void sqd_h_ui_asset(struct sqd_request *req)
{
    if (!ui_on(req))
        return;
    const struct sqd_asset *a = find_asset(req->job_id);
    if (!a || strcmp(a->name, "index.html") == 0) {
        sqd_respond_error(req, 404, "not_found", "no such file of the page: %.40s", req->job_id);
        return;
    }
    answer_asset(req, a);
}

/* The page at / and its assets at /ui/{name}, embedded in the binary (ui.c, ui_assets.c). */
#ifndef SQD_UI_H
#define SQD_UI_H

#include <stddef.h>

#include "request.h"

void sqd_h_ui_page(struct sqd_request *req);
void sqd_h_ui_asset(struct sqd_request *req);

/* An embedded file of the page (ui_assets.c, generated from ui/ at build time). */
struct sqd_asset {
    const char *name; /* as in /ui/{name}; "index.html" is the page */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted strong validator: a hash of the bytes */
};
const struct sqd_asset *sqd_ui_assets(size_t *count);

#endif

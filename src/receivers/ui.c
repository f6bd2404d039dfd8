/*
 * ui.c - serves the trace viewer's compiled-in files (see ui.h).
 *
 * Data flow: HTTP GET/HEAD (http.c) → pc_ui_handle → a copy of the asset's
 * bytes as the response body. libmicrohttpd leaves the body out for HEAD and
 * keeps its Content-Length. The extra headers live in the request arena, which
 * outlives the response being queued.
 */
#include "ui.h"

#include <string.h>

/* Scripts, styles, images, fetches: this origin only; nothing inline, no
 * plugins, no framing, no <base> rewrites, forms post nowhere else. */
#define UI_CSP                                                                                  \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "       \
    "form-action 'self'"

const pc_ui_asset *pc_ui_find(const char *path)
{
    const char *name;
    if (strcmp(path, "/") == 0)
        name = "index.html";
    else if (strncmp(path, PC_UI_PREFIX, strlen(PC_UI_PREFIX)) == 0)
        name = path + strlen(PC_UI_PREFIX);
    else
        return NULL;
    for (size_t i = 0; i < pc_ui_n_assets; i++)
        if (strcmp(pc_ui_assets[i].name, name) == 0) return &pc_ui_assets[i];
    return NULL;
}

const char *pc_ui_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

/* Whether If-None-Match |inm| lists |etag| (or is "*"). */
static int etag_matches(const char *inm, const char *etag)
{
    if (!inm) return 0;
    if (strcmp(inm, "*") == 0) return 1;
    size_t n = strlen(etag);
    for (const char *p = inm; (p = strstr(p, etag)); p += n) {
        char after = p[n];
        if (after == '\0' || after == ',' || after == ' ') return 1;
    }
    return 0;
}

void pc_ui_handle(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    (void)ctx;
    const pc_ui_asset *a = pc_ui_find(req->path);
    if (!a) {
        pc_http_error_detail(resp, 404, "no such page");
        return;
    }
    const char **h = pc_arena_alloc(req->arena, 11 * sizeof(*h));
    int i = 0;
    h[i++] = "Content-Security-Policy", h[i++] = UI_CSP;
    h[i++] = "Cache-Control", h[i++] = "no-cache";
    h[i++] = "ETag", h[i++] = a->etag;
    h[i++] = "Referrer-Policy", h[i++] = "no-referrer";
    h[i++] = "Cross-Origin-Opener-Policy", h[i++] = "same-origin";
    h[i] = NULL;
    resp->headers = h;
    resp->content_type = pc_ui_content_type(a->name);
    if (etag_matches(pc_http_header(req, "If-None-Match"), a->etag)) {
        resp->status = 304;
        return;
    }
    pc_buf_append(&resp->body, a->data, a->len);
    resp->status = 200;
}

/*
 * http.h - the HTTP/1.1 server every HTTP receiver is built on (libmicrohttpd).
 *
 * A receiver gives a route table and a context; this module owns sockets,
 * threads, body accumulation, Content-Encoding (gzip, zstd, deflate, identity),
 * size limits (on the wire and after decompression: 413), 404 for unknown paths,
 * 405 with Allow for a known path and a wrong method, and the common response
 * headers. Handlers see a complete, decompressed body.
 *
 * Authentication: when the headers are complete, a route with a scope gets
 * the key checked (auth.h): 401 / 403 / 429 are answered before any body byte
 * is read; a handler finds the sender in req->principal.
 *
 * Threads: one thread per connection, so a handler may block (exporters answer
 * only once data is durable) without stalling other connections.
 *
 * TLS: with cfg->tls, HTTPS through libmicrohttpd's GnuTLS; with a client CA
 * (mTLS) a request whose connection has no verified client certificate is
 * answered 403 before routing, so no handler and no body is ever reached.
 *
 * Memory: each request has an arena (arena.h) holding its body; a handler may
 * take the arena over (set req->arena to NULL after giving it to a batch).
 */
#ifndef PC_HTTP_H
#define PC_HTTP_H

#include "arena.h"
#include "auth.h"
#include "buf.h"
#include "tls.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pc_http_server pc_http_server;

typedef struct pc_http_req {
    void *conn; /* struct MHD_Connection */
    const char *method;
    const char *path;
    pc_arena *arena;
    char *body; /* decompressed, NUL-terminated, in arena */
    size_t body_len;
    pc_principal principal; /* who sent it (principal.valid = 0 without auth) */
} pc_http_req;

typedef struct pc_http_resp {
    int status;
    const char *content_type; /* static string; default application/json */
    pc_buf body;
    int retry_after; /* seconds; > 0 adds Retry-After */
    const char *allow; /* for 405 */
    const char *www_authenticate; /* for 401 */
} pc_http_resp;

/* Returns the request header |name| (case-insensitive), or NULL. */
const char *pc_http_header(const pc_http_req *r, const char *name);
/* Returns the URL query argument |name| (decoded), or NULL. */
const char *pc_http_query(const pc_http_req *r, const char *name);

typedef void (*pc_http_handler)(void *ctx, pc_http_req *req, pc_http_resp *resp);

typedef struct pc_http_route {
    const char *method; /* "GET", "POST" */
    const char *path;   /* exact, or a prefix when it ends with '/' and prefix is set */
    int prefix;
    pc_http_handler fn;
    unsigned scope; /* PC_SCOPE_*: the key scope it needs; PC_SCOPE_NONE = open */
} pc_http_route;

/* Writes an error answer for |status| with |msg| in the receiver's error format. */
typedef void (*pc_http_error_fn)(void *ctx, const pc_http_req *req, pc_http_resp *resp,
                                 int status, const char *msg);

typedef struct pc_http_config {
    const char *name;     /* component id, for logs */
    const char *endpoint; /* "host:port"; "0.0.0.0:4318", "127.0.0.1:0" */
    int64_t max_body;     /* limit on the body after decompression (and on the wire) */
    int max_connections;
    int timeout_s;        /* idle connection timeout */
    const char *cors_origins; /* comma list, JSON list or "*"; NULL/"" = no CORS headers */
    pc_http_error_fn error;   /* NULL = {"detail": msg} */
    pc_auth *auth;            /* checked for each route's scope; NULL = none */
    pc_budget *budget;        /* request arenas are charged here; NULL = unlimited */
    const pc_tls_config *tls; /* NULL or no cert_file = plaintext; see tls.h */
} pc_http_config;

/*
 * Starts serving |routes| (n entries) with |ctx| passed to handlers. Returns the
 * server, or NULL after logging why (bad endpoint, port in use, TLS files).
 */
pc_http_server *pc_http_start(const pc_http_config *cfg, const pc_http_route *routes, size_t n,
                              void *ctx);
/* The port actually bound (useful with port 0). */
int pc_http_port(const pc_http_server *s);
/* Stops accepting, waits for in-flight requests, frees the server. Accepts NULL. */
void pc_http_stop(pc_http_server *s);

/* Writes {"detail": msg} with |status|: the default error format. */
void pc_http_error_detail(pc_http_resp *resp, int status, const char *msg);

/* Splits "host:port" into |host| (NUL-terminated, in |hostbuf|) and |port|. 0 / -1. */
int pc_http_parse_endpoint(const char *endpoint, char *hostbuf, size_t hostlen, int *port);

#endif

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
 * Slow and stuck clients: at most max_connections connections, at most
 * max_connections_per_address from one client address (beyond either, new
 * connections are closed at accept); a connection that sends nothing for
 * timeout_s closes; and a request must arrive whole (request line, headers and
 * body) within request_timeout_ms of the connection opening or of the previous
 * response, or the connection is cut, however steadily it trickles bytes. The
 * clock stops while the handler runs and the response is sent.
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
#include "metrics.h"
#include "tls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/*
 * A streamed body (the live tail's Server-Sent Events): instead of |body|, the
 * answer's bytes come from |read|, called on the connection's own thread (one
 * thread per connection, so it may block while it waits for something to
 * send) with room for |max| bytes at |buf|; it returns how many it wrote (> 0),
 * PC_HTTP_STREAM_END to end the answer, or PC_HTTP_STREAM_CUT to cut the
 * connection. |free| runs once when the answer is done with (sent, cut, the
 * client gone, or never sent), before the connection's socket is closed.
 */
typedef ssize_t (*pc_http_stream_read_fn)(void *ctx, uint64_t pos, char *buf, size_t max);
#define PC_HTTP_STREAM_END ((ssize_t)-1)
#define PC_HTTP_STREAM_CUT ((ssize_t)-2)

typedef struct pc_http_stream {
    pc_http_stream_read_fn read; /* NULL = not streamed: the body is |body| */
    void (*free)(void *ctx);
    void *ctx;
} pc_http_stream;

typedef struct pc_http_resp {
    int status;
    const char *content_type; /* static string; default application/json */
    pc_buf body;
    int retry_after; /* seconds; > 0 adds Retry-After */
    const char *allow; /* for 405 */
    const char *www_authenticate; /* for 401 */
    /* more headers: name, value, name, value, ..., NULL; static or in the request
     * arena; NULL = none */
    const char *const *headers;
    pc_http_stream stream; /* a streamed body (see above); .read NULL = none */
    size_t held; /* bytes of body's capacity charged so far (pc_http_hold_body) */
} pc_http_resp;

/*
 * Charges the growth of |resp|'s body since the last call to the memory
 * budget, through the request's arena, for as long as the request lives (its
 * body goes out after the handler returns): 0, or -1 when the budget refuses
 * (the arena is then over budget and the server answers 429 + Retry-After
 * unless the handler answers 429 itself). A handler that builds a large answer
 * calls it as the body grows, to stop early; with hold_body the server charges
 * what is left after the handler. Without a budget it always succeeds.
 */
int pc_http_hold_body(pc_http_req *req, pc_http_resp *resp);

/* Returns the request header |name| (case-insensitive), or NULL. */
const char *pc_http_header(const pc_http_req *r, const char *name);
/* The socket of the request's connection (for a streamed answer that may have
 * to shutdown(2) it; valid until its stream's free runs), or -1. */
int pc_http_socket(const pc_http_req *r);
/* Returns the URL query argument |name| (decoded), or NULL. */
const char *pc_http_query(const pc_http_req *r, const char *name);
/* The URL query arguments whose name starts with |prefix|: how many there
 * are, and the first one's name and value (decoded) in |*name| / |*value|
 * (NULL when none). */
int pc_http_query_prefixed(const pc_http_req *r, const char *prefix, const char **name,
                           const char **value);

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
    int max_connections;  /* all connections; <= 0: 1024 */
    int max_connections_per_address; /* from one client address; <= 0: no limit */
    int timeout_s;        /* idle connection timeout (no byte for this long); <= 0: 60 */
    int64_t request_timeout_ms; /* a whole request must arrive within it; <= 0: 30 s */
    const char *cors_origins; /* comma list, JSON list or "*"; NULL/"" = no CORS headers */
    pc_http_error_fn error;   /* NULL = {"detail": msg} */
    pc_auth *auth;            /* checked for each route's scope; NULL = none */
    pc_budget *budget;        /* request arenas are charged here; NULL = unlimited */
    bool hold_body;           /* answers' bodies too (pc_http_hold_body), before they go out */
    const pc_tls_config *tls; /* NULL or no cert_file = plaintext; see tls.h */
    pc_metrics *metrics;      /* answers are counted here by status code; NULL = not */
    int nice; /* 0..19: each connection thread runs its handlers this much below the
               * priority it started with (nice(1) steps; 19 at most); 0 = unchanged */
} pc_http_config;

/*
 * The connection limits of an HTTP receiver as settings: embed one in the
 * receiver's config struct, list PC_HTTP_LIMIT_OPTIONS in its option table and
 * copy them into pc_http_config with pc_http_set_limits.
 */
typedef struct pc_http_limits {
    int64_t max_connections;
    int64_t max_connections_per_address;
    int64_t request_timeout_ms;
    int64_t idle_timeout_ms;
} pc_http_limits;

/* Option table rows for a pc_http_limits |field| of |T|, keys under |prefix|;
 * |conns| is the default of max_connections (text). */
#define PC_HTTP_LIMIT_OPTIONS(prefix, T, field, conns)                                          \
    {prefix "max_connections", PC_OPT_INT, conns, offsetof(T, field.max_connections), 1, 100000, \
     "connections open at once; beyond it new ones are closed at accept"},                      \
    {prefix "max_connections_per_address", PC_OPT_INT, "128",                                    \
     offsetof(T, field.max_connections_per_address), 1, 100000,                                  \
     "connections open at once from one client address (raise it behind a load balancer)"},     \
    {prefix "request_timeout", PC_OPT_DURATION, "30s", offsetof(T, field.request_timeout_ms),    \
     100, 3600000,                                                                               \
     "a request's line, headers and body must all arrive within it, or the connection is cut"}, \
    {prefix "idle_timeout", PC_OPT_DURATION, "60s", offsetof(T, field.idle_timeout_ms), 1000,    \
     86400000, "a connection that sends nothing for this long is closed"}

/* Copies |l| into the matching fields of |c|. */
void pc_http_set_limits(pc_http_config *c, const pc_http_limits *l);

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

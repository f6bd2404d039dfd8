/*
 * grpc.h - the gRPC server (HTTP/2 cleartext with prior knowledge, or HTTP/2
 * over TLS with ALPN "h2"; nghttp2, GnuTLS through tls.h) that gRPC receivers
 * are built on; the HTTP/2 sibling of http.h.
 *
 * A receiver gives a table of unary methods and a context; this module owns
 * the listening socket, the HTTP/2 sessions, flow control, gRPC message
 * framing (the 5-byte prefix), grpc-encoding (identity, gzip, deflate, zstd),
 * the message size limit (on the wire and after decompression), and turns a
 * handler's reply into HEADERS + DATA + trailers (grpc-status, grpc-message,
 * and grpc-status-details-bin carrying google.rpc.RetryInfo when asked).
 * Handlers see one complete, decompressed request message.
 *
 * Answers this module gives on its own (handlers never see these calls):
 *   HTTP 415            content-type not application/grpc[+proto|;...]
 *   HTTP 405            :method other than POST
 *   UNIMPLEMENTED       unknown :path, or a grpc-encoding it does not support
 *                       (with grpc-accept-encoding)
 *   RESOURCE_EXHAUSTED  message over max_msg (declared, on the wire or inflated)
 *                       or, with RetryInfo, when max_inflight calls are running
 *   INTERNAL            malformed framing: truncated prefix or message, more than
 *                       one message in a unary call, no message at all, the
 *                       compressed flag without grpc-encoding, undecompressable data
 *   UNAVAILABLE         the server is shutting down (with RetryInfo)
 *   UNAUTHENTICATED     no key or an unknown key in authorization / x-api-key
 *   PERMISSION_DENIED   the key lacks the method's scope
 *   RESOURCE_EXHAUSTED  (with RetryInfo) the key is over its rate limit or quota
 * The key is checked when the request headers are complete, before any DATA.
 *
 * Threads: one I/O thread runs every connection (epoll, non-blocking). Each
 * complete call runs its handler on a thread of its own, at most max_inflight
 * at once, so a handler may block (exporters answer only once data is durable)
 * without stalling any connection. The I/O thread sends the reply when the
 * handler returns. A call whose stream was reset, or whose connection closed,
 * still runs to the end; its reply is discarded.
 *
 * Slow and stuck clients:
 *   - at most max_connections connections, max_connections_per_address of
 *     them from one client address; beyond either, closed at accept;
 *   - a call's request (HEADERS to END_STREAM) must arrive within
 *     request_timeout_ms: past it the call is answered DEADLINE_EXCEEDED (its
 *     stream reset) and the connection, which stalls, gets GOAWAY;
 *   - a client's grpc-timeout is honoured over the whole call: past it the
 *     call is answered DEADLINE_EXCEEDED (a running handler finishes, unheard);
 *     a malformed grpc-timeout is INTERNAL;
 *   - flow control follows what the server took: a stream's window reopens as
 *     its message is buffered, the connection's only as buffered messages
 *     leave (handed to a handler, answered, or reset), so one connection never
 *     holds more than max_conn_buffer bytes of unfinished requests;
 *   - a connection without streams for idle_timeout_s gets GOAWAY, and one
 *     that has not read our answers for request_timeout_ms is closed.
 *
 * TLS (cfg->tls): the handshake runs on the I/O thread like everything else;
 * a client that does not negotiate ALPN "h2", or (mTLS) presents no
 * certificate the client CA signed, is disconnected during the handshake,
 * before any HTTP/2 frame is read. A handshake must finish within 10 s.
 *
 * Shutdown (pc_grpc_stop): GOAWAY to every connection, no new calls, running
 * calls finish and are answered (bounded by drain_timeout_ms), then the
 * sockets close.
 *
 * Memory: each call has an arena (arena.h) holding its message; a handler may
 * take the arena over (set call->arena to NULL after giving it to a batch).
 */
#ifndef PC_GRPC_H
#define PC_GRPC_H

#include "arena.h"
#include "auth.h"
#include "buf.h"
#include "metrics.h"
#include "tls.h"

#include <stddef.h>
#include <stdint.h>

/* gRPC status codes (google.rpc.Code). */
typedef enum pc_grpc_code {
    PC_GRPC_OK = 0,
    PC_GRPC_CANCELLED = 1,
    PC_GRPC_UNKNOWN = 2,
    PC_GRPC_INVALID_ARGUMENT = 3,
    PC_GRPC_DEADLINE_EXCEEDED = 4,
    PC_GRPC_NOT_FOUND = 5,
    PC_GRPC_ALREADY_EXISTS = 6,
    PC_GRPC_PERMISSION_DENIED = 7,
    PC_GRPC_RESOURCE_EXHAUSTED = 8,
    PC_GRPC_FAILED_PRECONDITION = 9,
    PC_GRPC_ABORTED = 10,
    PC_GRPC_OUT_OF_RANGE = 11,
    PC_GRPC_UNIMPLEMENTED = 12,
    PC_GRPC_INTERNAL = 13,
    PC_GRPC_UNAVAILABLE = 14,
    PC_GRPC_DATA_LOSS = 15,
    PC_GRPC_UNAUTHENTICATED = 16,
} pc_grpc_code;

typedef struct pc_grpc_server pc_grpc_server;
typedef struct pc_grpc_call pc_grpc_call;

/* One unary call as a handler sees it. */
struct pc_grpc_call {
    const char *path; /* "/package.Service/Method" */
    pc_arena *arena;  /* owns msg; a handler may take it over (then set NULL) */
    const uint8_t *msg; /* the request message, decompressed */
    size_t msg_len;
    pc_principal principal; /* who sent it (principal.valid = 0 without auth) */
    void *priv; /* grpc_call.c's; the metadata of the call */
};

/* Returns the request metadata |name| (lowercase, as HTTP/2 sends it), or NULL. */
const char *pc_grpc_metadata(const pc_grpc_call *c, const char *name);

/* What a handler answers. The server zero-fills it and owns |body| and |message|. */
typedef struct pc_grpc_reply {
    int code;        /* pc_grpc_code; PC_GRPC_OK sends |body| as the response */
    pc_buf body;     /* serialized response message (OK only; may be empty) */
    pc_buf message;  /* grpc-message text for errors (percent-encoded on the wire) */
    int retry_after_ms; /* > 0: adds google.rpc.RetryInfo{retry_delay} to the status */
} pc_grpc_reply;

typedef void (*pc_grpc_handler)(void *ctx, pc_grpc_call *call, pc_grpc_reply *reply);

typedef struct pc_grpc_method {
    const char *path; /* exact :path */
    pc_grpc_handler fn;
    unsigned scope; /* PC_SCOPE_*: the key scope it needs; PC_SCOPE_NONE = open */
} pc_grpc_method;

typedef struct pc_grpc_config {
    const char *name;         /* component id, for logs */
    const char *endpoint;     /* "host:port"; "0.0.0.0:4317", "127.0.0.1:0" */
    int64_t max_msg;          /* largest request message, compressed or inflated */
    int max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS per connection */
    int max_inflight;         /* handler calls running at once, all connections */
    int max_connections;      /* beyond it new connections are closed at accept */
    int max_connections_per_address; /* from one client address; <= 0: no limit */
    int idle_timeout_s;       /* a connection without streams for this long gets GOAWAY */
    int64_t request_timeout_ms; /* HEADERS to END_STREAM; <= 0: 30 s */
    int64_t max_conn_buffer;  /* unfinished request bytes per connection; raised to max_msg + 5 */
    int drain_timeout_ms;     /* how long stop waits for running calls */
    int retry_after_ms;       /* RetryInfo delay sent with RESOURCE_EXHAUSTED / UNAVAILABLE */
    pc_auth *auth;            /* checked for each method's scope; NULL = none */
    pc_budget *budget;        /* call arenas are charged here; NULL = unlimited */
    const pc_tls_config *tls; /* NULL or no cert_file = cleartext; see tls.h */
    pc_metrics *metrics;      /* answers are counted here by grpc-status; NULL = not */
} pc_grpc_config;

/*
 * The connection limits of a gRPC receiver as settings: embed one in the
 * receiver's config struct, list PC_GRPC_LIMIT_OPTIONS in its option table and
 * copy them into pc_grpc_config with pc_grpc_set_limits.
 */
typedef struct pc_grpc_limits {
    int64_t max_connections;
    int64_t max_connections_per_address;
    int64_t request_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t max_conn_buffer;
} pc_grpc_limits;

/* Option table rows for a pc_grpc_limits |field| of |T|, keys under |prefix|. */
#define PC_GRPC_LIMIT_OPTIONS(prefix, T, field)                                                  \
    {prefix "max_connections", PC_OPT_INT, "1024", offsetof(T, field.max_connections), 1,       \
     100000, "connections open at once; beyond it new ones are closed at accept"},              \
    {prefix "max_connections_per_address", PC_OPT_INT, "128",                                    \
     offsetof(T, field.max_connections_per_address), 1, 100000,                                  \
     "connections open at once from one client address (raise it behind a load balancer)"},     \
    {prefix "request_timeout", PC_OPT_DURATION, "30s", offsetof(T, field.request_timeout_ms),    \
     100, 3600000,                                                                               \
     "a call's request (HEADERS to END_STREAM) must arrive within it, else DEADLINE_EXCEEDED "   \
     "and GOAWAY"},                                                                              \
    {prefix "idle_timeout", PC_OPT_DURATION, "5m", offsetof(T, field.idle_timeout_ms), 1000,     \
     86400000, "a connection without open calls for this long gets GOAWAY"},                    \
    {prefix "max_connection_buffer", PC_OPT_SIZE, "16MiB", offsetof(T, field.max_conn_buffer),   \
     65536, 1073741824,                                                                          \
     "bytes of unfinished requests one connection may hold (HTTP/2 flow control window); "      \
     "at least max_recv_msg_size"}

/* Copies |l| into the matching fields of |c|. */
void pc_grpc_set_limits(pc_grpc_config *c, const pc_grpc_limits *l);

/*
 * Starts serving |methods| (n entries) with |ctx| passed to handlers. Returns
 * the server, or NULL after logging why (bad endpoint, port in use, TLS files).
 */
pc_grpc_server *pc_grpc_start(const pc_grpc_config *cfg, const pc_grpc_method *methods, size_t n,
                              void *ctx);
/* The port actually bound (useful with port 0). */
int pc_grpc_port(const pc_grpc_server *s);
/* GOAWAY, waits for running calls (see above), closes, frees. Accepts NULL. */
void pc_grpc_stop(pc_grpc_server *s);

#endif

/*
 * grpc.c - the gRPC server under every gRPC receiver (see grpc.h): unary calls
 * over HTTP/2 cleartext with prior knowledge, or over TLS (ALPN h2), on
 * nghttp2 and, for TLS, GnuTLS through tls.h.
 *
 * Data flow: socket -> nghttp2_session_mem_recv -> callbacks that build one
 * call per stream (headers and the framed message in the call's arena) -> at
 * END_STREAM the call is checked and handed to a handler thread, which inflates
 * the message, runs the receiver's handler, queues the call and writes the
 * eventfd -> the I/O thread joins that thread and submits HEADERS + DATA +
 * trailers -> nghttp2_session_mem_send -> the connection's out buffer -> socket.
 *
 * Threads and ownership: the I/O thread alone touches sessions, connections and
 * every call field marked [io]. While a call is RUNNING its handler thread owns
 * pub, reply and the arena; the call comes back through the done queue (under
 * mu). A call is freed by whichever side lets go last: a stream or connection
 * that closes frees its calls that are not RUNNING and detaches the RUNNING ones
 * (conn = NULL); the done queue frees a detached call instead of answering it.
 * Connections die in two steps (kill: off epoll; reap: freed at the end of the
 * loop turn), so an event or completion later in the same turn never sees
 * freed memory.
 *
 * TLS sits between the socket and nghttp2: a connection first runs its
 * handshake (conn_handshake, driven by epoll in whichever direction GnuTLS
 * waits for); only then is it read and flushed, through conn_recv / conn_send,
 * which are recv / send or their GnuTLS equivalents. Decrypted bytes GnuTLS
 * has buffered are invisible to epoll, so conn_read drains them before it
 * returns.
 *
 * Flow control (no automatic WINDOW_UPDATE): a stream's window is consumed as
 * its DATA is buffered (take_data), so one message is never stalled by its own
 * window; the connection's window (max_conn_buffer) only as a call's buffered
 * bytes stop being the connection's (release_data: the call goes to a handler,
 * is answered, or is reset). A connection therefore holds at most
 * max_conn_buffer bytes of unfinished requests however many streams it opens;
 * DATA for a call already answered is dropped and consumed at once.
 *
 * Deadlines: sweep() checks each connection's calls when the earliest known
 * deadline (s->next_check, at least once a second) has come: a request still
 * arriving past request_timeout_ms, or any call past its grpc-timeout, is
 * answered DEADLINE_EXCEEDED; the first also sends the connection a GOAWAY. A
 * RUNNING call answered so keeps its state (its thread owns it) with
 * |expired| set, and its handler's reply is dropped when it comes back.
 *
 * Why one I/O thread plus a thread per running call: nghttp2 sessions are not
 * thread-safe, and handlers block until exporters made data durable; running
 * them apart keeps every connection responsive while at most max_inflight
 * calls wait.
 */
#include "grpc.h"
#include "decompress.h"
#include "http.h" /* pc_http_parse_endpoint */
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STREAM_WINDOW (1 << 20)     /* SETTINGS_INITIAL_WINDOW_SIZE */
#define MAX_HEADER_BYTES (64 << 10) /* request header list, per call */
#define FIRST_MSG_BLOCK (64 << 10)  /* message buffer before it has to grow */
#define RETRY_OVER_BUDGET_MS 1000   /* RetryInfo when the memory budget refused a call */
#define OUT_HIGH (64 << 10)         /* stop pulling frames from nghttp2 past this */
#define READ_CHUNK (64 << 10)
#define MAX_MESSAGE_TEXT 1024 /* grpc-message, before percent-encoding */
#define ACCEPT_ENCODING "gzip, deflate, zstd, identity"
#define RETRY_INFO_URL "type.googleapis.com/google.rpc.RetryInfo"
#define DRAIN_PING "pcdrain!" /* 8 bytes of PING opaque data */
#define DRAIN_PING_WAIT_MS 1000 /* final GOAWAY at the PING's ack or after this */
#define ACCEPT_PAUSE_MS 100 /* out of descriptors: how long accepting pauses */
#define HANDSHAKE_TIMEOUT_MS 10000 /* a TLS client must finish its handshake by then */
#define IO_AGAIN (-1) /* conn_recv / conn_send: would block */
#define IO_ERROR (-2) /* conn_recv / conn_send: failed; the connection dies */

enum call_state {
    RECEIVING, /* collecting headers and the message */
    RUNNING,   /* the handler thread owns pub, reply and the arena */
    ANSWERED,  /* an answer is submitted; freed when the stream closes */
};

typedef struct header {
    const char *name, *value;
    struct header *next;
} header;

typedef struct conn conn;

typedef struct gcall {
    pc_grpc_call pub; /* the handler's view; pub.priv points here */
    pc_grpc_reply reply;
    pc_grpc_server *s;
    const pc_grpc_method *method;
    struct gcall *done_next; /* the done queue, under s->mu */
    /* [io] the rest; the handler thread only reads the request fields, which
     * are final before it starts */
    conn *conn; /* NULL once detached from its stream and connection */
    int32_t stream_id;
    struct gcall *prev, *next; /* conn->calls */
    int state;
    int remote_ended; /* END_STREAM received */
    const char *http_method, *content_type, *encoding_name;
    pc_encoding enc;
    header *headers, **tail; /* metadata in arrival order, in the arena */
    size_t header_bytes;
    uint8_t prefix[5];
    size_t prefix_len;
    uint8_t *msg; /* the message as received, in the arena */
    size_t msg_len, msg_cap, declared;
    uint64_t wire_bytes;
    int64_t recv_deadline;   /* HEADERS + request_timeout_ms: END_STREAM by then */
    int64_t client_deadline; /* from grpc-timeout; 0 = none */
    int expired;             /* answered DEADLINE_EXCEEDED while RUNNING */
    size_t held;             /* DATA bytes not yet given back to the connection window */
    uint8_t out_prefix[5]; /* the response message prefix */
    size_t out_off;        /* bytes of prefix + body handed to nghttp2 */
} gcall;

struct conn {
    pc_grpc_server *s;
    nghttp2_session *h2;
    int fd;
    int dead;   /* killed; freed at the end of the loop turn */
    int dirty;  /* has something to flush */
    int armed;  /* EPOLLOUT is on */
    int goaway; /* a final GOAWAY was submitted */
    pc_tls_conn *tls; /* NULL: cleartext */
    int handshaking;  /* TLS handshake not finished: no HTTP/2 yet */
    int nstreams;
    int64_t idle_since;
    int64_t blocked_since; /* > 0: the socket has been full since then */
    int64_t stalled_at;    /* > 0: a call's request timed out then */
    int goaway_due;        /* stalled: GOAWAY on the next turn, after the answers went out */
    struct sockaddr_storage addr; /* the client's address (port zeroed), for the per-address limit */
    gcall *calls;
    pc_buf out;
    size_t out_off;
    conn *prev, *next;
    char peer[64];
};

struct pc_grpc_server {
    pc_grpc_config cfg;
    const pc_grpc_method *methods;
    size_t n_methods;
    void *ctx;
    int port, lfd, efd, ep;
    pthread_t io;
    nghttp2_session_callbacks *cbs;
    pc_tls_server *tls; /* NULL: cleartext */
    pthread_mutex_t mu; /* guards done and stop */
    pthread_attr_t detached; /* handler threads are created detached */
    gcall *done;
    int stop;
    /* [io] */
    conn *conns;
    int nconns, inflight, draining;
    int64_t deadline;
    int64_t drain_started;
    int64_t accept_resume; /* > 0: accepting paused (out of descriptors) until then */
    int64_t accept_warned; /* when that was last logged (at most every 10 s) */
    int64_t next_check;    /* when sweep next looks at the calls' deadlines */
    nghttp2_option *h2opt;
    uint8_t rbuf[READ_CHUNK];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(pc_grpc_server *s)
{
    uint64_t one = 1;
    if (write(s->efd, &one, sizeof(one)) < 0) return; /* only when already signalled */
}

/* ---- wire encodings: grpc-message, base64, google.rpc.Status ------------ */

/* The length of |msg| cut to MAX_MESSAGE_TEXT bytes on a UTF-8 boundary. */
static size_t message_len(const char *msg)
{
    size_t n = strlen(msg);
    if (n <= MAX_MESSAGE_TEXT) return n;
    n = MAX_MESSAGE_TEXT;
    while (n && ((unsigned char)msg[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Appends |n| bytes of |msg| percent-encoded as the gRPC spec asks: bytes
 * outside 0x20..0x7E, and '%', become %XX. */
static void percent_encode(pc_buf *out, const char *msg, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)msg[i];
        if (ch >= 0x20 && ch <= 0x7E && ch != '%')
            pc_buf_putc(out, (char)ch);
        else
            pc_buf_printf(out, "%%%02X", ch);
    }
}

/* Appends |n| bytes as unpadded standard base64 (gRPC's -bin headers). */
static void base64(pc_buf *out, const uint8_t *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        pc_buf_putc(out, a[v >> 18]);
        pc_buf_putc(out, a[(v >> 12) & 63]);
        if (i + 1 < n) pc_buf_putc(out, a[(v >> 6) & 63]);
        if (i + 2 < n) pc_buf_putc(out, a[v & 63]);
    }
}

static void put_varint(pc_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        pc_buf_putc(b, (char)(v | 0x80));
        v >>= 7;
    }
    pc_buf_putc(b, (char)v);
}

/* Appends protobuf field |field| of wire type 2 (bytes, string, message). */
static void put_bytes(pc_buf *b, unsigned field, const void *p, size_t n)
{
    put_varint(b, field << 3 | 2);
    put_varint(b, n);
    if (n) pc_buf_append(b, p, n);
}

/* Appends base64 of google.rpc.Status{code, message, details: [Any{RetryInfo{
 * retry_delay: Duration{seconds, nanos}}}]}, hand-encoded. */
static void status_details(pc_buf *out, int code, const char *msg, size_t msg_len, int retry_ms)
{
    pc_buf dur = PC_BUF_INIT, info = PC_BUF_INIT, any = PC_BUF_INIT, st = PC_BUF_INIT;
    if (retry_ms / 1000) {
        put_varint(&dur, 1 << 3);
        put_varint(&dur, (uint64_t)(retry_ms / 1000));
    }
    if (retry_ms % 1000) {
        put_varint(&dur, 2 << 3);
        put_varint(&dur, (uint64_t)(retry_ms % 1000) * 1000000);
    }
    put_bytes(&info, 1, dur.data, dur.len);
    put_bytes(&any, 1, RETRY_INFO_URL, strlen(RETRY_INFO_URL));
    put_bytes(&any, 2, info.data, info.len);
    if (code) {
        put_varint(&st, 1 << 3);
        put_varint(&st, (uint64_t)code);
    }
    if (msg_len) put_bytes(&st, 2, msg, msg_len);
    put_bytes(&st, 3, any.data, any.len);
    base64(out, (const uint8_t *)st.data, st.len);
    pc_buf_free(&dur), pc_buf_free(&info), pc_buf_free(&any), pc_buf_free(&st);
}

/* ---- calls -------------------------------------------------------------- */

static gcall *call_new(conn *cn, int32_t stream_id)
{
    gcall *c = pc_xcalloc(1, sizeof(*c));
    c->s = cn->s;
    c->pub.arena = pc_arena_create(4096);
    c->pub.priv = c;
    c->conn = cn;
    c->stream_id = stream_id;
    c->recv_deadline = now_ms() + cn->s->cfg.request_timeout_ms;
    if (c->recv_deadline < cn->s->next_check) cn->s->next_check = c->recv_deadline;
    c->next = cn->calls;
    if (cn->calls) cn->calls->prev = c;
    cn->calls = c;
    cn->nstreams++;
    return c;
}

static void call_free(gcall *c)
{
    pc_arena_destroy(c->pub.arena);
    pc_buf_free(&c->reply.body);
    pc_buf_free(&c->reply.message);
    free(c);
}

/* Flow control: gives the DATA bytes |c| buffered back to its connection's
 * window; they are no longer the connection's to hold. */
static void release_data(gcall *c)
{
    if (c->held && c->conn && !c->conn->dead) {
        nghttp2_session_consume_connection(c->conn->h2, c->held);
        c->conn->dirty = 1;
    }
    c->held = 0;
}

/* Takes |c| off its connection; afterwards only the done queue may free it. */
static void call_detach(gcall *c)
{
    conn *cn = c->conn;
    if (!cn) return;
    release_data(c);
    *(c->prev ? &c->prev->next : &cn->calls) = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->conn = NULL;
    if (--cn->nstreams == 0) cn->idle_since = now_ms();
}

/* Detaches |c| and frees it unless its handler is still running. */
static void call_release(gcall *c)
{
    call_detach(c);
    if (c->state != RUNNING) call_free(c);
}

const char *pc_grpc_metadata(const pc_grpc_call *call, const char *name)
{
    const gcall *c = call->priv;
    for (const header *h = c->headers; h; h = h->next)
        if (strcmp(h->name, name) == 0) return h->value;
    return NULL;
}

/* ---- answers (I/O thread) ----------------------------------------------- */

/* A header for nghttp2, which copies it on submit. */
static nghttp2_nv hdr(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value), 0};
}

static void submit(gcall *c, const nghttp2_nv *nv, size_t n, const nghttp2_data_provider *dp)
{
    conn *cn = c->conn;
    release_data(c);
    c->state = ANSWERED;
    cn->dirty = 1;
    int rv = nghttp2_submit_response(cn->h2, c->stream_id, nv, n, dp);
    if (rv)
        pc_log(PC_LOG_DEBUG, cn->s->cfg.name, "%s: stream %d: cannot answer: %s", cn->peer,
               c->stream_id, nghttp2_strerror(rv));
}

/* Answers with a bare HTTP status (405, 415): not a gRPC response at all. */
static void answer_http(gcall *c, const char *status)
{
    nghttp2_nv nv[] = {hdr(":status", status)};
    submit(c, nv, 1, NULL);
}

/* Answers trailers-only: grpc-status |code|, grpc-message from |fmt| (cut at
 * MAX_MESSAGE_TEXT), RetryInfo when |retry_ms| > 0, and grpc-accept-encoding
 * when |accept| is set. */
static void answer(gcall *c, int code, int retry_ms, int accept, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void answer(gcall *c, int code, int retry_ms, int accept, const char *fmt, ...)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", code);
    pc_buf msg = PC_BUF_INIT, text = PC_BUF_INIT, details = PC_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    pc_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    size_t msg_len = message_len(msg.data);
    nghttp2_nv nv[6] = {hdr(":status", "200"), hdr("content-type", "application/grpc"),
                        hdr("grpc-status", num)};
    size_t n = 3;
    percent_encode(&text, msg.data, msg_len);
    if (text.len) nv[n++] = hdr("grpc-message", text.data);
    if (retry_ms > 0) {
        status_details(&details, code, msg.data, msg_len, retry_ms);
        nv[n++] = hdr("grpc-status-details-bin", details.data);
    }
    if (accept) nv[n++] = hdr("grpc-accept-encoding", ACCEPT_ENCODING);
    submit(c, nv, n, NULL);
    pc_buf_free(&msg), pc_buf_free(&text), pc_buf_free(&details);
}

/* nghttp2 data source of an OK response: the 5-byte prefix, the body, then
 * trailers (grpc-status 0) instead of END_STREAM on the last DATA frame. */
static ssize_t read_reply(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t len,
                          uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)user;
    gcall *c = src->ptr;
    size_t total = 5 + c->reply.body.len, n = 0;
    while (n < len && c->out_off < total) {
        const uint8_t *from = c->out_off < 5 ? c->out_prefix + c->out_off
                                             : (const uint8_t *)c->reply.body.data + c->out_off - 5;
        size_t avail = c->out_off < 5 ? 5 - c->out_off : total - c->out_off;
        size_t k = avail < len - n ? avail : len - n;
        memcpy(buf + n, from, k);
        n += k;
        c->out_off += k;
    }
    if (c->out_off == total) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv trailers[] = {hdr("grpc-status", "0")};
        if (nghttp2_submit_trailer(h2, stream_id, trailers, 1))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

/* Sends what the handler answered, on the call's still-open stream. */
static void submit_reply(gcall *c)
{
    pc_grpc_reply *r = &c->reply;
    if (r->code == PC_GRPC_OK && r->body.len > UINT32_MAX) {
        pc_buf_reset(&r->message);
        pc_buf_puts(&r->message, "response message too large");
        r->code = PC_GRPC_INTERNAL;
    }
    if (r->code != PC_GRPC_OK) {
        int code = r->code > 0 && r->code <= PC_GRPC_UNAUTHENTICATED ? r->code : PC_GRPC_UNKNOWN;
        answer(c, code, r->retry_after_ms, 0, "%s", r->message.data ? r->message.data : "");
        return;
    }
    uint32_t len = (uint32_t)r->body.len;
    c->out_prefix[0] = 0;
    c->out_prefix[1] = (uint8_t)(len >> 24), c->out_prefix[2] = (uint8_t)(len >> 16);
    c->out_prefix[3] = (uint8_t)(len >> 8), c->out_prefix[4] = (uint8_t)len;
    nghttp2_nv nv[] = {hdr(":status", "200"), hdr("content-type", "application/grpc"),
                       hdr("grpc-accept-encoding", ACCEPT_ENCODING)};
    nghttp2_data_provider dp = {.source.ptr = c, .read_callback = read_reply};
    submit(c, nv, 3, &dp);
}

/* ---- requests: headers, framing, END_STREAM (I/O thread) ----------------- */

static int content_type_ok(const char *ct)
{
    if (!ct || strncasecmp(ct, "application/grpc", 16) != 0) return 0;
    return ct[16] == '\0' || ct[16] == '+' || ct[16] == ';';
}

/* Checks the call's API key for its method's scope; answers a refusal. */
static void check_key(gcall *c)
{
    char msg[200];
    int retry = 0;
    pc_auth_status st = pc_auth_check(c->s->cfg.auth, pc_grpc_metadata(&c->pub, "x-api-key"),
                                      pc_grpc_metadata(&c->pub, "authorization"), c->method->scope,
                                      &c->pub.principal, msg, sizeof(msg), &retry);
    if (st == PC_AUTH_MISSING || st == PC_AUTH_INVALID)
        answer(c, PC_GRPC_UNAUTHENTICATED, 0, 0, "%s", msg);
    else if (st == PC_AUTH_FORBIDDEN)
        answer(c, PC_GRPC_PERMISSION_DENIED, 0, 0, "%s", msg);
    else if (st == PC_AUTH_LIMITED)
        answer(c, PC_GRPC_RESOURCE_EXHAUSTED, retry * 1000, 0, "%s", msg);
}

/* Parses a grpc-timeout value (1 to 8 digits and a unit: H M S m u n) into
 * milliseconds, rounding up. 0 / -1. */
static int parse_timeout(const char *v, int64_t *ms)
{
    size_t n = strlen(v);
    if (n < 2 || n > 9) return -1;
    int64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (v[i] - '0');
    }
    switch (v[n - 1]) {
    case 'H': x *= 3600000; break;
    case 'M': x *= 60000; break;
    case 'S': x *= 1000; break;
    case 'm': break;
    case 'u': x = (x + 999) / 1000; break;
    case 'n': x = (x + 999999) / 1000000; break;
    default: return -1;
    }
    *ms = x;
    return 0;
}

/* Sets the call's deadline from the client's grpc-timeout, if any; answers a
 * malformed one, or a deadline already gone. */
static void apply_timeout(gcall *c)
{
    const char *t = pc_grpc_metadata(&c->pub, "grpc-timeout");
    int64_t ms;
    if (!t) return;
    if (parse_timeout(t, &ms)) {
        answer(c, PC_GRPC_INTERNAL, 0, 0,
               "malformed grpc-timeout '%.20s' (1 to 8 digits and one of H M S m u n)", t);
        return;
    }
    if (ms == 0) {
        answer(c, PC_GRPC_DEADLINE_EXCEEDED, 0, 0, "grpc-timeout of 0 already expired");
        return;
    }
    c->client_deadline = now_ms() + ms;
    if (c->client_deadline < c->s->next_check) c->s->next_check = c->client_deadline;
}

/* The request headers are complete: answers at once what no handler may see. */
static void on_request_headers(gcall *c)
{
    pc_grpc_server *s = c->s;
    for (size_t i = 0; i < s->n_methods && !c->method && c->pub.path; i++)
        if (strcmp(c->pub.path, s->methods[i].path) == 0) c->method = &s->methods[i];
    c->enc = pc_encoding_parse(c->encoding_name);
    if (!c->http_method || strcmp(c->http_method, "POST") != 0)
        answer_http(c, "405");
    else if (!content_type_ok(c->content_type))
        answer_http(c, "415");
    else if (!c->method)
        answer(c, PC_GRPC_UNIMPLEMENTED, 0, 0, "unknown method %.200s",
               c->pub.path ? c->pub.path : "");
    else if (c->enc == PC_ENC_UNKNOWN)
        answer(c, PC_GRPC_UNIMPLEMENTED, 0, 1, "grpc-encoding '%.60s' is not supported",
               c->encoding_name);
    else if (s->draining)
        answer(c, PC_GRPC_UNAVAILABLE, s->cfg.retry_after_ms, 0, "the server is shutting down");
    else if (c->method->scope)
        check_key(c);
    if (c->state == RECEIVING) apply_timeout(c);
}

/* The 5-byte prefix is complete: checks it and sizes the message buffer, or
 * answers an error (the call is then no longer RECEIVING). */
static void on_prefix(gcall *c)
{
    pc_grpc_server *s = c->s;
    const uint8_t *p = c->prefix;
    c->declared = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
    if (p[0] > 1) {
        answer(c, PC_GRPC_INTERNAL, 0, 0, "invalid compressed flag %u in message prefix", p[0]);
        return;
    }
    if ((int64_t)c->declared > s->cfg.max_msg) {
        answer(c, PC_GRPC_RESOURCE_EXHAUSTED, 0, 0,
               "message of %zu bytes exceeds the limit of %lld bytes", c->declared,
               (long long)s->cfg.max_msg);
        return;
    }
    if (p[0] == 1 && c->enc == PC_ENC_IDENTITY) {
        answer(c, PC_GRPC_INTERNAL, 0, 0, "compressed flag set but no grpc-encoding");
        return;
    }
    /* The declared size is charged to the memory budget before any of it
     * arrives; the message blocks, inflation and decoding draw on that. */
    pc_arena_set_budget(c->pub.arena, s->cfg.budget);
    c->msg_cap = c->declared < FIRST_MSG_BLOCK ? c->declared : FIRST_MSG_BLOCK;
    if (pc_arena_prepay(c->pub.arena, c->declared + 1) ||
        !(c->msg = pc_arena_try_alloc(c->pub.arena, c->msg_cap + 1))) {
        answer(c, PC_GRPC_RESOURCE_EXHAUSTED, RETRY_OVER_BUDGET_MS, 0,
               "the server is over its memory budget (message of %zu bytes); retry later",
               c->declared);
        return;
    }
}

/* Appends DATA bytes to the call's message, answering framing and size errors
 * as soon as they show (the stream is then reset after the answer is sent). */
static void on_data(gcall *c, const uint8_t *p, size_t n)
{
    pc_grpc_server *s = c->s;
    c->wire_bytes += n;
    if (c->wire_bytes > (uint64_t)s->cfg.max_msg + 5) {
        answer(c, PC_GRPC_RESOURCE_EXHAUSTED, 0, 0, "request exceeds the limit of %lld bytes",
               (long long)s->cfg.max_msg);
        return;
    }
    while (n && c->state == RECEIVING) {
        if (c->prefix_len < 5) {
            size_t k = 5 - c->prefix_len < n ? 5 - c->prefix_len : n;
            memcpy(c->prefix + c->prefix_len, p, k);
            c->prefix_len += k, p += k, n -= k;
            if (c->prefix_len == 5) on_prefix(c);
            continue;
        }
        if (c->msg_len == c->declared) {
            answer(c, PC_GRPC_INTERNAL, 0, 0, "more than one message in a unary call");
            return;
        }
        size_t k = c->declared - c->msg_len < n ? c->declared - c->msg_len : n;
        if (c->msg_len + k > c->msg_cap) {
            size_t cap = c->msg_cap * 2;
            while (cap < c->msg_len + k)
                cap *= 2;
            if (cap > c->declared) cap = c->declared;
            uint8_t *m = pc_arena_try_realloc(c->pub.arena, c->msg, c->msg_len, cap + 1);
            if (!m) {
                answer(c, PC_GRPC_RESOURCE_EXHAUSTED, RETRY_OVER_BUDGET_MS, 0,
                       "the server is over its memory budget; retry later");
                return;
            }
            c->msg = m;
            c->msg_cap = cap;
        }
        memcpy(c->msg + c->msg_len, p, k);
        c->msg_len += k, p += k, n -= k;
    }
}

static void *call_main(void *arg);

/* Starts the handler thread of a complete, valid call. */
static void start_call(gcall *c)
{
    pc_grpc_server *s = c->s;
    c->msg[c->msg_len] = '\0';
    c->pub.msg = c->msg;
    c->pub.msg_len = c->msg_len;
    release_data(c); /* the handler's now */
    c->state = RUNNING;
    pthread_t t;
    int rv = pthread_create(&t, &s->detached, call_main, c);
    if (rv == 0) {
        s->inflight++;
        return;
    }
    c->state = RECEIVING;
    pc_log(PC_LOG_WARN, s->cfg.name, "cannot start a handler thread: %s", strerror(rv));
    answer(c, PC_GRPC_UNAVAILABLE, s->cfg.retry_after_ms, 0, "server overloaded; retry later");
}

/* END_STREAM: the request is complete. Checks the framing and the limits,
 * then starts the handler. */
static void on_request_end(gcall *c)
{
    pc_grpc_server *s = c->s;
    c->remote_ended = 1;
    if (c->state != RECEIVING) return;
    if (c->prefix_len == 0)
        answer(c, PC_GRPC_INTERNAL, 0, 0, "no request message in a unary call");
    else if (c->prefix_len < 5)
        answer(c, PC_GRPC_INTERNAL, 0, 0, "truncated message prefix: %zu of 5 bytes",
               c->prefix_len);
    else if (c->msg_len < c->declared)
        answer(c, PC_GRPC_INTERNAL, 0, 0, "truncated message: %zu of %zu bytes", c->msg_len,
               c->declared);
    else if (s->draining)
        answer(c, PC_GRPC_UNAVAILABLE, s->cfg.retry_after_ms, 0, "the server is shutting down");
    else if (s->inflight >= s->cfg.max_inflight)
        answer(c, PC_GRPC_RESOURCE_EXHAUSTED, s->cfg.retry_after_ms, 0,
               "too many calls in flight (%d); retry later", s->cfg.max_inflight);
    else
        start_call(c);
}

/* ---- handler threads ---------------------------------------------------- */

/* Inflates a compressed message into the arena. Returns -1 after filling the
 * reply with the error. */
static int inflate_msg(gcall *c)
{
    if (c->prefix[0] == 0) return 0;
    char why[120], *out;
    size_t out_len;
    int64_t limit = c->s->cfg.max_msg;
    int rc = pc_decompress(c->pub.arena, c->enc, c->msg, c->msg_len, limit, &out, &out_len, why,
                           sizeof(why));
    if (rc == PC_DECOMP_OK) {
        c->pub.msg = (const uint8_t *)out;
        c->pub.msg_len = out_len;
        return 0;
    }
    if (rc == PC_DECOMP_OVER_BUDGET) {
        c->reply.code = PC_GRPC_RESOURCE_EXHAUSTED;
        c->reply.retry_after_ms = RETRY_OVER_BUDGET_MS;
        pc_buf_printf(&c->reply.message, "the server is over its memory budget; retry later");
    } else if (rc == PC_DECOMP_TOO_BIG) {
        c->reply.code = PC_GRPC_RESOURCE_EXHAUSTED;
        pc_buf_printf(&c->reply.message, "decompressed message exceeds the limit of %lld bytes",
                      (long long)limit);
    } else {
        c->reply.code = PC_GRPC_INTERNAL;
        pc_buf_printf(&c->reply.message, "invalid %s message: %s", c->encoding_name, why);
    }
    return -1;
}

/*
 * A handler thread (detached): runs one call, then hands it back to the I/O
 * thread. It wakes the I/O thread before it lets go of s->mu, so once the I/O
 * thread has taken the call from the done list this thread touches nothing of
 * the server again; the I/O thread never waits for it to exit.
 *
 * Why detached and not joined: joining made the I/O thread, and with it every
 * connection, wait until the exiting thread was scheduled again, which on a
 * loaded machine took seconds (found by fuzz_grpc).
 */
static void *call_main(void *arg)
{
    gcall *c = arg;
    pc_grpc_server *s = c->s;
    if (inflate_msg(c) == 0) c->method->fn(s->ctx, &c->pub, &c->reply);
    pthread_mutex_lock(&s->mu);
    c->done_next = s->done;
    s->done = c;
    wake(s);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void begin_drain(pc_grpc_server *s);

/* The eventfd fired: a stop request, finished calls, or both. Finished calls
 * are answered when their stream is still open, else freed. */
static void on_wake(pc_grpc_server *s)
{
    uint64_t v;
    if (read(s->efd, &v, sizeof(v)) < 0) v = 0; /* nothing pending: fine */
    pthread_mutex_lock(&s->mu);
    gcall *done = s->done;
    s->done = NULL;
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    if (stop && !s->draining) begin_drain(s);
    while (done) {
        gcall *c = done;
        done = c->done_next;
        s->inflight--;
        c->state = ANSWERED; /* not RUNNING any more: stream close or reap frees it */
        if (!c->conn)
            call_free(c);
        else if (!c->conn->dead && !c->expired) /* expired: answered already */
            submit_reply(c);
    }
}

/* ---- nghttp2 callbacks (user_data is the conn) ---------------------------- */

static int cb_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    gcall *c = call_new(user, f->hd.stream_id);
    nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, c);
    return 0;
}

/* Records one request header in the call's arena; past MAX_HEADER_BYTES
 * nghttp2 resets the stream. Trailers from the client are ignored. */
static int cb_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    (void)flags, (void)user;
    gcall *c = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!c || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    c->header_bytes += nlen + vlen + 32;
    if (c->header_bytes > MAX_HEADER_BYTES) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const char *n = pc_arena_strndup(c->pub.arena, (const char *)name, nlen);
    const char *v = pc_arena_strndup(c->pub.arena, (const char *)value, vlen);
    if (strcmp(n, ":method") == 0) c->http_method = v;
    if (strcmp(n, ":path") == 0) c->pub.path = v;
    if (strcmp(n, "content-type") == 0) c->content_type = v;
    if (strcmp(n, "grpc-encoding") == 0) c->encoding_name = v;
    if (n[0] == ':') return 0;
    header *h = pc_arena_alloc(c->pub.arena, sizeof(*h));
    h->name = n, h->value = v, h->next = NULL;
    *(c->tail ? c->tail : &c->headers) = h;
    c->tail = &h->next;
    return 0;
}

static void final_goaway(conn *cn);

static int cb_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    conn *cn = user;
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK) &&
        memcmp(f->ping.opaque_data, DRAIN_PING, 8) == 0)
        final_goaway(cn);
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    gcall *c = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!c) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        on_request_headers(c);
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) on_request_end(c);
    return 0;
}

static int cb_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags, (void)user;
    gcall *c = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (!c || c->state != RECEIVING) { /* dropped: the client may send on */
        nghttp2_session_consume(h2, stream_id, len);
        return 0;
    }
    /* The stream may send on at once; the connection only once the call
     * lets go of these bytes (release_data). */
    nghttp2_session_consume_stream(h2, stream_id, len);
    c->held += len;
    on_data(c, data, len);
    return 0;
}

/* After a complete answer to a request still uploading, RST_STREAM(NO_ERROR)
 * tells the client to stop sending (RFC 9113, 8.1). */
static int cb_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    (void)user;
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    gcall *c = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (c && !c->remote_ended) nghttp2_submit_rst_stream(h2, 0, f->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int cb_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error, void *user)
{
    (void)error, (void)user;
    gcall *c = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (c) call_release(c);
    return 0;
}

/* ---- connections (I/O thread) ------------------------------------------- */

static void conn_arm(conn *cn, int out)
{
    if (cn->armed == out) return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = cn};
    epoll_ctl(cn->s->ep, EPOLL_CTL_MOD, cn->fd, &ev);
    cn->armed = out;
}

/* Takes |cn| off epoll; conn_reap frees it at the end of the loop turn. */
static void conn_kill(conn *cn, const char *why)
{
    if (cn->dead) return;
    cn->dead = 1;
    epoll_ctl(cn->s->ep, EPOLL_CTL_DEL, cn->fd, NULL);
    pc_log(PC_LOG_DEBUG, cn->s->cfg.name, "%s: closed (%s)", cn->peer, why);
}

/* Frees a killed connection: its calls (detaching RUNNING ones), session, socket. */
static void conn_reap(conn *cn)
{
    pc_grpc_server *s = cn->s;
    while (cn->calls)
        call_release(cn->calls);
    nghttp2_session_del(cn->h2);
    if (cn->tls && !cn->handshaking) pc_tls_bye(cn->tls);
    /* Reading what the peer sent meanwhile keeps close() from resetting the
     * connection under the last response still in the kernel's send buffer. */
    shutdown(cn->fd, SHUT_WR);
    for (int i = 0; i < 4 && recv(cn->fd, s->rbuf, sizeof(s->rbuf), 0) > 0; i++)
        continue;
    close(cn->fd);
    pc_tls_conn_destroy(cn->tls);
    pc_buf_free(&cn->out);
    *(cn->prev ? &cn->prev->next : &s->conns) = cn->next;
    if (cn->next) cn->next->prev = cn->prev;
    s->nconns--;
    free(cn);
}

/* send() of |n| bytes at |p|, or its TLS equivalent: bytes written, IO_AGAIN,
 * or IO_ERROR with the reason in |why|. After IO_AGAIN on TLS the same bytes
 * must be offered again (tls.h); the out buffer keeps them at its start. */
static ssize_t conn_send(conn *cn, const void *p, size_t n, const char **why)
{
    if (cn->tls) {
        ssize_t w = pc_tls_send(cn->tls, p, n);
        if (w == PC_TLS_ERROR) *why = pc_tls_error(cn->tls);
        return w == PC_TLS_AGAIN ? IO_AGAIN : w == PC_TLS_ERROR ? IO_ERROR : w;
    }
    for (;;) {
        ssize_t w = send(cn->fd, p, n, MSG_NOSIGNAL);
        if (w >= 0) return w;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return IO_AGAIN;
        *why = strerror(errno);
        return IO_ERROR;
    }
}

/* recv() into |p|, or its TLS equivalent: bytes read, 0 when the peer closed,
 * IO_AGAIN, or IO_ERROR with the reason in |why|. */
static ssize_t conn_recv(conn *cn, void *p, size_t n, const char **why)
{
    if (cn->tls) {
        ssize_t r = pc_tls_recv(cn->tls, p, n);
        if (r == PC_TLS_ERROR) *why = pc_tls_error(cn->tls);
        return r == PC_TLS_AGAIN ? IO_AGAIN : r == PC_TLS_ERROR ? IO_ERROR : r;
    }
    for (;;) {
        ssize_t r = recv(cn->fd, p, n, 0);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return IO_AGAIN;
        *why = strerror(errno);
        return IO_ERROR;
    }
}

/* Moves what nghttp2 has to send into the out buffer (at most about OUT_HIGH)
 * and writes it; while the socket is full, EPOLLOUT is on and nothing more is
 * pulled. Kills the connection on a write error or when nghttp2 is done. */
static void conn_flush(conn *cn)
{
    if (cn->dead || cn->handshaking) return; /* dirty stays set: flushed after the handshake */
    cn->dirty = 0;
    for (;;) {
        if (cn->out_off) { /* compact what a partial write left */
            memmove(cn->out.data, cn->out.data + cn->out_off, cn->out.len - cn->out_off);
            cn->out.len -= cn->out_off;
            cn->out_off = 0;
        }
        while (cn->out.len < OUT_HIGH) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(cn->h2, &p);
            if (n < 0) {
                conn_kill(cn, nghttp2_strerror((int)n));
                return;
            }
            if (n == 0) break;
            pc_buf_append(&cn->out, p, (size_t)n);
        }
        if (cn->out.len == 0) break;
        const char *why = NULL;
        ssize_t w = conn_send(cn, cn->out.data, cn->out.len, &why);
        if (w == IO_AGAIN) {
            if (!cn->blocked_since) cn->blocked_since = now_ms();
            conn_arm(cn, 1);
            return;
        }
        if (w < 0) {
            conn_kill(cn, why);
            return;
        }
        cn->blocked_since = 0;
        cn->out_off = (size_t)w;
        if (cn->out_off == cn->out.len) {
            cn->out_off = cn->out.len = 0;
            if (cn->out.cap > 16384) pc_buf_free(&cn->out); /* keep idle conns small */
        }
    }
    conn_arm(cn, 0);
    if (!nghttp2_session_want_read(cn->h2) && !nghttp2_session_want_write(cn->h2))
        conn_kill(cn, "done");
}

/* Reads what the socket has (up to 16 chunks, for fairness) into nghttp2.
 * TLS: reads on until the socket is empty or 16 records came, and past 16
 * while GnuTLS still holds decrypted bytes, which epoll would not report. */
static void conn_read(conn *cn)
{
    pc_grpc_server *s = cn->s;
    for (int i = 0; (i < 16 || (cn->tls && pc_tls_pending(cn->tls))) && !cn->dead; i++) {
        const char *why = NULL;
        ssize_t n = conn_recv(cn, s->rbuf, sizeof(s->rbuf), &why);
        if (n == IO_AGAIN) break;
        ssize_t rv = n > 0 ? nghttp2_session_mem_recv(cn->h2, s->rbuf, (size_t)n) : 0;
        if (n <= 0 || rv < 0) {
            conn_kill(cn, n == 0  ? "peer closed"
                          : n < 0 ? why
                                  : nghttp2_strerror((int)rv));
            return;
        }
        if (!cn->tls && (size_t)n < sizeof(s->rbuf)) break;
    }
    conn_flush(cn);
}

/* Advances the TLS handshake; once done, HTTP/2 starts: whatever the client
 * sent along is read and our SETTINGS go out. */
static void conn_handshake(conn *cn)
{
    if (cn->dead) return;
    int rc = pc_tls_handshake(cn->tls);
    if (rc == PC_TLS_AGAIN) {
        conn_arm(cn, pc_tls_want_write(cn->tls));
        return;
    }
    if (rc < 0) {
        conn_kill(cn, pc_tls_error(cn->tls));
        return;
    }
    cn->handshaking = 0;
    cn->idle_since = now_ms();
    conn_read(cn);
}

/* Sets up a session for an accepted socket: our SETTINGS (stream limit, 1 MiB
 * stream window) and a 16 MiB connection window, so uploads do not stall. */
static void conn_open(pc_grpc_server *s, int fd, const struct sockaddr *sa, socklen_t sl)
{
    conn *cn = pc_xcalloc(1, sizeof(*cn));
    cn->s = s;
    cn->fd = fd;
    cn->idle_since = now_ms();
    char host[48] = "?", serv[8] = "?";
    getnameinfo(sa, sl, host, sizeof(host), serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(cn->peer, sizeof(cn->peer), "%s:%s", host, serv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    cn->next = s->conns;
    if (s->conns) s->conns->prev = cn;
    s->conns = cn;
    s->nconns++;
    memcpy(&cn->addr, sa, sl <= sizeof(cn->addr) ? sl : sizeof(cn->addr));
    if (nghttp2_session_server_new2(&cn->h2, s->cbs, cn, s->h2opt)) {
        cn->dead = 1; /* never added to epoll */
        return;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)s->cfg.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BYTES},
    };
    nghttp2_submit_settings(cn->h2, NGHTTP2_FLAG_NONE, iv, 3);
    nghttp2_session_set_local_window_size(cn->h2, NGHTTP2_FLAG_NONE, 0,
                                          (int32_t)s->cfg.max_conn_buffer);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = cn};
    epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
    if (s->tls) {
        cn->tls = pc_tls_conn_create(s->tls, fd, "h2");
        cn->handshaking = 1;
        conn_handshake(cn);
        return;
    }
    conn_flush(cn);
}

/* Whether |a| and |b| are the same client address (ports aside). */
static int same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
    return 0;
}

/* How many live connections come from the address of |ss|. */
static int count_from(pc_grpc_server *s, const struct sockaddr_storage *ss)
{
    int n = 0;
    for (conn *cn = s->conns; cn; cn = cn->next)
        n += !cn->dead && same_address(&cn->addr, ss);
    return n;
}

/* Accepts every pending connection; beyond max_connections, or
 * max_connections_per_address from one address, closes them at once. */
static void accept_all(pc_grpc_server *s)
{
    while (s->lfd >= 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR) continue;
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
            /* Pending connections would wake epoll forever: stop listening for
             * a moment; sweep() resumes. */
            int64_t now = now_ms();
            if (!s->accept_warned || now - s->accept_warned >= 10000) {
                pc_log(PC_LOG_WARN, s->cfg.name, "accept: %s; new connections wait", strerror(errno));
                s->accept_warned = now;
            }
            epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL);
            s->accept_resume = now + ACCEPT_PAUSE_MS;
            return;
        }
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                pc_log(PC_LOG_DEBUG, s->cfg.name, "accept: %s", strerror(errno));
            return;
        }
        if (s->nconns >= s->cfg.max_connections) {
            pc_log(PC_LOG_DEBUG, s->cfg.name, "refusing a connection: max_connections (%d) open",
                   s->cfg.max_connections);
            close(fd);
            continue;
        }
        if (s->cfg.max_connections_per_address > 0 &&
            count_from(s, &ss) >= s->cfg.max_connections_per_address) {
            pc_log(PC_LOG_DEBUG, s->cfg.name,
                   "refusing a connection: max_connections_per_address (%d) open from its address",
                   s->cfg.max_connections_per_address);
            close(fd);
            continue;
        }
        conn_open(s, fd, (struct sockaddr *)&ss, sl);
    }
}

/* ---- shutdown and timers (I/O thread) ----------------------------------- */

/* GOAWAY naming the last stream this side will serve; later streams are refused. */
static void final_goaway(conn *cn)
{
    if (cn->goaway || cn->dead) return;
    cn->goaway = 1;
    cn->dirty = 1;
    nghttp2_submit_goaway(cn->h2, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(cn->h2), NGHTTP2_NO_ERROR, NULL,
                          0);
}

/* Stops accepting and starts a graceful GOAWAY on every connection: a notice
 * plus a PING now, the final GOAWAY when the PING comes back (one round trip,
 * so streams the client opened meanwhile are still counted). */
static void begin_drain(pc_grpc_server *s)
{
    s->draining = 1;
    s->drain_started = now_ms();
    s->deadline = s->drain_started + s->cfg.drain_timeout_ms;
    if (s->lfd >= 0) {
        epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL);
        close(s->lfd);
        s->lfd = -1;
    }
    for (conn *cn = s->conns; cn; cn = cn->next) {
        if (cn->dead || cn->goaway) continue;
        nghttp2_submit_shutdown_notice(cn->h2);
        nghttp2_submit_ping(cn->h2, NGHTTP2_FLAG_NONE, (const uint8_t *)DRAIN_PING);
        cn->dirty = 1;
    }
}

/* Answers DEADLINE_EXCEEDED for |c| past its grpc-timeout. A RUNNING call
 * stays RUNNING (its thread owns it); its reply is dropped (on_wake). */
static void expire(gcall *c)
{
    int running = c->state == RUNNING;
    answer(c, PC_GRPC_DEADLINE_EXCEEDED, 0, 0, "deadline exceeded (grpc-timeout)");
    if (running) {
        c->state = RUNNING;
        c->expired = 1;
    }
}

/* When the earliest deadline has come: answers the calls past theirs, sends
 * GOAWAY to connections whose requests stalled, closes a stalled connection
 * that still has no running call request_timeout_ms after its GOAWAY, and
 * notes the next deadline. */
static void check_deadlines(pc_grpc_server *s, int64_t now)
{
    if (now < s->next_check) return;
    int64_t next = now + 1000, limit = s->cfg.request_timeout_ms;
    for (conn *cn = s->conns; cn; cn = cn->next) {
        if (cn->dead || cn->handshaking) continue;
        int stalled = 0, running = 0, receiving = 0;
        for (gcall *c = cn->calls; c; c = c->next) {
            if (c->state == RECEIVING && now >= c->recv_deadline) {
                answer(c, PC_GRPC_DEADLINE_EXCEEDED, 0, 0,
                       "request not received within %lld ms", (long long)limit);
                stalled = 1;
            }
            int open = c->state == RECEIVING || (c->state == RUNNING && !c->expired);
            if (open && c->client_deadline && now >= c->client_deadline) expire(c);
            running += c->state == RUNNING;
            receiving += c->state == RECEIVING;
            if (c->state == RECEIVING && c->recv_deadline < next) next = c->recv_deadline;
            if (c->client_deadline && c->state != ANSWERED && !c->expired &&
                c->client_deadline < next)
                next = c->client_deadline;
        }
        /* The GOAWAY follows the answers (and their RST_STREAMs), on a later
         * turn once no request is left arriving (or request_timeout_ms on):
         * some clients take no frame for any stream once GOAWAY came. */
        if (cn->goaway_due && (!receiving || now - cn->stalled_at >= limit)) {
            cn->goaway_due = 0;
            final_goaway(cn);
        }
        if (stalled && !cn->stalled_at) {
            pc_log(PC_LOG_DEBUG, s->cfg.name, "%s: a request stalled, GOAWAY", cn->peer);
            cn->stalled_at = now;
            cn->goaway_due = 1;
            if (!receiving) next = now;
        }
        if (cn->stalled_at && !running && now - cn->stalled_at >= 2 * limit)
            conn_kill(cn, "stalled after GOAWAY");
        if (cn->goaway_due && !receiving) next = now;
        for (int k = 1; cn->stalled_at && k <= 2; k++) /* the GOAWAY and the close */
            if (cn->stalled_at + k * limit > now && cn->stalled_at + k * limit < next)
                next = cn->stalled_at + k * limit;
    }
    s->next_check = next;
}

/* Once per loop turn: flushes what callbacks and completions submitted, sends
 * GOAWAY to idle connections, closes all at the drain deadline, frees the dead. */
static void sweep(pc_grpc_server *s)
{
    int64_t now = now_ms();
    int64_t idle_ms = (int64_t)s->cfg.idle_timeout_s * 1000;
    int past_deadline = s->draining && now >= s->deadline;
    check_deadlines(s, now);
    if (s->accept_resume && now >= s->accept_resume && s->lfd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->lfd};
        epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev);
        s->accept_resume = 0;
    }
    for (conn *cn = s->conns, *next; cn; cn = next) {
        next = cn->next;
        if (!cn->dead && past_deadline) conn_kill(cn, "drain timeout");
        if (!cn->dead && cn->handshaking &&
            (s->draining || now - cn->idle_since >= HANDSHAKE_TIMEOUT_MS))
            conn_kill(cn, s->draining ? "shutting down during the TLS handshake"
                                      : "TLS handshake timeout");
        /* A client that never acknowledges the drain PING gets the final GOAWAY anyway. */
        if (s->draining && now - s->drain_started >= DRAIN_PING_WAIT_MS) final_goaway(cn);
        if (!cn->dead && !cn->goaway && cn->nstreams == 0 && now - cn->idle_since >= idle_ms) {
            pc_log(PC_LOG_DEBUG, s->cfg.name, "%s: idle for %ds, GOAWAY", cn->peer,
                   s->cfg.idle_timeout_s);
            final_goaway(cn);
        }
        if (!cn->dead && cn->blocked_since && now - cn->blocked_since >= s->cfg.request_timeout_ms)
            conn_kill(cn, "the client reads none of our answers");
        if (cn->dirty) conn_flush(cn);
        if (cn->dead) conn_reap(cn);
    }
}

/* epoll_wait's timeout: a 1 s tick for idle checks, the drain deadline, or
 * forever once only handler threads are left to wait for. */
static int loop_timeout(pc_grpc_server *s)
{
    if (!s->draining) {
        int64_t wait = s->accept_resume ? ACCEPT_PAUSE_MS : 1000, left = s->next_check - now_ms();
        return (int)(left < 0 ? 0 : left < wait ? left : wait);
    }
    int64_t left = s->deadline - now_ms();
    if (left <= 0) return s->conns ? 0 : -1;
    return left < 1000 ? (int)left : 1000;
}

/* The I/O thread: until stop, and after it until every connection closed and
 * every handler thread was joined. */
static void *io_main(void *arg)
{
    pc_grpc_server *s = arg;
    struct epoll_event ev[64];
    while (!s->draining || s->conns || s->inflight) {
        int n = epoll_wait(s->ep, ev, 64, loop_timeout(s));
        for (int i = 0; i < n; i++) {
            void *tag = ev[i].data.ptr;
            if (tag == &s->lfd)
                accept_all(s);
            else if (tag == &s->efd)
                on_wake(s);
            else if (((conn *)tag)->handshaking)
                conn_handshake(tag);
            else if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                conn_read(tag);
            else
                conn_flush(tag);
        }
        sweep(s);
    }
    return NULL;
}

/* ---- start / stop ------------------------------------------------------- */

static int listen_on(pc_grpc_server *s)
{
    const pc_grpc_config *cfg = &s->cfg;
    char host[256], portstr[8];
    int port;
    if (pc_http_parse_endpoint(cfg->endpoint, host, sizeof(host), &port)) {
        pc_log(PC_LOG_ERROR, cfg->name, "endpoint '%s' is not host:port", cfg->endpoint);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host[0] ? host : NULL, portstr, &hints, &ai) != 0 || !ai) {
        pc_log(PC_LOG_ERROR, cfg->name, "endpoint '%s': cannot resolve host '%s'", cfg->endpoint,
               host);
        return -1;
    }
    int one = 1;
    s->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lfd >= 0) setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rc =
        s->lfd < 0 || bind(s->lfd, ai->ai_addr, ai->ai_addrlen) || listen(s->lfd, 512) ? -1 : 0;
    int err = errno;
    freeaddrinfo(ai);
    if (rc) {
        pc_log(PC_LOG_ERROR, cfg->name, "cannot listen on %s: %s", cfg->endpoint, strerror(err));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(s->lfd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void server_free(pc_grpc_server *s)
{
    if (s->lfd >= 0) close(s->lfd);
    if (s->efd >= 0) close(s->efd);
    if (s->ep >= 0) close(s->ep);
    nghttp2_session_callbacks_del(s->cbs);
    nghttp2_option_del(s->h2opt);
    pc_tls_server_destroy(s->tls);
    pthread_mutex_destroy(&s->mu);
    pthread_attr_destroy(&s->detached);
    free(s);
}

static nghttp2_session_callbacks *callbacks(void)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs)) abort(); /* only fails on OOM */
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, cb_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
    return cbs;
}

pc_grpc_server *pc_grpc_start(const pc_grpc_config *cfg, const pc_grpc_method *methods, size_t n,
                              void *ctx)
{
    pc_grpc_server *s = pc_xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    if (s->cfg.max_msg <= 0) s->cfg.max_msg = 4 << 20;
    if (s->cfg.max_concurrent_streams <= 0) s->cfg.max_concurrent_streams = 100;
    if (s->cfg.max_inflight <= 0) s->cfg.max_inflight = 64;
    if (s->cfg.max_connections <= 0) s->cfg.max_connections = 1024;
    if (s->cfg.idle_timeout_s <= 0) s->cfg.idle_timeout_s = 300;
    if (s->cfg.request_timeout_ms <= 0) s->cfg.request_timeout_ms = 30000;
    if (s->cfg.max_conn_buffer <= 0) s->cfg.max_conn_buffer = 16 << 20;
    if (s->cfg.max_conn_buffer < s->cfg.max_msg + 5) s->cfg.max_conn_buffer = s->cfg.max_msg + 5;
    if (s->cfg.max_conn_buffer > INT32_MAX) s->cfg.max_conn_buffer = INT32_MAX;
    s->next_check = now_ms() + 1000;
    if (s->cfg.drain_timeout_ms < 0) s->cfg.drain_timeout_ms = 0;
    s->methods = methods;
    s->n_methods = n;
    s->ctx = ctx;
    s->lfd = s->efd = s->ep = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_attr_init(&s->detached);
    pthread_attr_setdetachstate(&s->detached, PTHREAD_CREATE_DETACHED);
    s->cbs = callbacks();
    if (nghttp2_option_new(&s->h2opt)) abort(); /* only fails on OOM */
    nghttp2_option_set_no_auto_window_update(s->h2opt, 1);
    if (pc_tls_enabled(cfg->tls) && !(s->tls = pc_tls_server_create(cfg->tls, cfg->name))) {
        server_free(s);
        return NULL;
    }
    if (listen_on(s)) {
        server_free(s);
        return NULL;
    }
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = &s->lfd};
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &s->efd};
    if (s->efd < 0 || s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &le) ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, s->efd, &ee) || pthread_create(&s->io, NULL, io_main, s)) {
        pc_log(PC_LOG_ERROR, cfg->name, "cannot start the gRPC server: %s", strerror(errno));
        server_free(s);
        return NULL;
    }
    pc_log(PC_LOG_INFO, cfg->name, "listening on %s (port %d, gRPC, %s)%s", cfg->endpoint, s->port,
           pc_tls_mutual(cfg->tls) ? "TLS with ALPN h2, client certificates required (mTLS)"
           : s->tls                ? "TLS with ALPN h2"
                                   : "cleartext HTTP/2",
           pc_auth_enabled(cfg->auth) ? ", API keys required" : "");
    pc_auth_warn_if_exposed(cfg->auth, cfg->name, cfg->endpoint);
    return s;
}

void pc_grpc_set_limits(pc_grpc_config *c, const pc_grpc_limits *l)
{
    c->max_connections = (int)l->max_connections;
    c->max_connections_per_address = (int)l->max_connections_per_address;
    c->idle_timeout_s = (int)((l->idle_timeout_ms + 999) / 1000);
    c->request_timeout_ms = l->request_timeout_ms;
    c->max_conn_buffer = l->max_conn_buffer;
}

int pc_grpc_port(const pc_grpc_server *s)
{
    return s->port;
}

void pc_grpc_stop(pc_grpc_server *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_mutex_unlock(&s->mu);
    wake(s);
    pthread_join(s->io, NULL);
    server_free(s);
}

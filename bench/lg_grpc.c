/*
 * lg_grpc.c - loadgen's gRPC transport (OTLP/gRPC): unary calls over HTTP/2
 * cleartext with prior knowledge, or over TLS with ALPN h2 (--tls-ca,
 * lg_tls.c), on nghttp2's client API.
 *
 * Each worker holds one HTTP/2 connection (non-blocking socket, poll) with up
 * to run->streams calls in flight; --streams 1 (the default) keeps one call in
 * flight per connection, as the HTTP/1.1 transport does, so N connections load
 * the collector alike. Every call has a slot with its own copy of the message:
 * the 5-byte gRPC prefix (uncompressed, big-endian length) and the workload
 * body patched with a fresh request number. A call is
 *   HEADERS  :method POST, :scheme http, :path run->path, :authority host:port,
 *            content-type application/grpc, te: trailers, user-agent
 *   DATA     the message (END_STREAM)
 * and completes when its stream closes: latency runs from submitting it to the
 * close. Outcome codes (lg_run.h):
 *   grpc-status 0..16   from the trailers (or a trailers-only answer); OK (0)
 *                       also needs a well-framed response message
 *   HTTP status >= 100  an answer other than :status 200 without grpc-status
 *   LG_IO               reset streams, connection failures or stalls (30 s
 *                       without progress), 200 without grpc-status, bad framing
 * 8 RESOURCE_EXHAUSTED and 14 UNAVAILABLE (and HTTP 429/503, which gRPC maps
 * to UNAVAILABLE) are refusals to retry, like HTTP 429/503.
 *
 * A connection that fails fails its calls in flight; the worker reconnects.
 * After the window ends no call starts; the worker waits for the calls in
 * flight, then closes.
 */
#include "lg_run.h"

#include "mem.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STALL_MS 30000 /* no I/O for this long with calls in flight: the connection is dead */
#define PREFIX 5       /* gRPC message prefix: compressed flag, 4-byte length */
#define LOCAL_WINDOW (1 << 20)

/* One call slot. stream_id 0: free. */
typedef struct call {
    int32_t stream_id;
    uint8_t *msg; /* PREFIX + body, this slot's own copy */
    size_t msg_len, sent;
    uint64_t req;
    int64_t t0;
    int http_status; /* :status, 0 until seen */
    int grpc_status; /* -1 until seen */
    size_t resp_len; /* response DATA bytes */
    uint8_t resp_prefix[PREFIX];
} call;

typedef struct gconn {
    lg_worker *w;
    int fd; /* -1: not connected */
    lg_tls *tls; /* NULL: cleartext (HTTP/2 prior knowledge) */
    nghttp2_session *s;
    nghttp2_session_callbacks *cbs;
    call *calls;
    int n_calls, inflight;
    uint64_t answered; /* calls the server answered on this connection */
    char authority[320];
    nghttp2_nv nv[8];
    size_t n_nv;
} gconn;

/* ------------------------------------------------------------- the calls -- */

/* Completes |c| with what its stream carried; |error_code| is the stream's
 * HTTP/2 close code. Frees the slot. */
static void finish_call(gconn *g, call *c, uint32_t error_code)
{
    int code = LG_IO;
    if (error_code != NGHTTP2_NO_ERROR) {
        code = LG_IO;
    } else if (c->grpc_status >= 0) {
        code = c->grpc_status;
        if (code == 0) { /* a unary OK carries exactly one message */
            uint32_t n = (uint32_t)c->resp_prefix[1] << 24 | (uint32_t)c->resp_prefix[2] << 16 |
                         (uint32_t)c->resp_prefix[3] << 8 | c->resp_prefix[4];
            if (c->resp_len < PREFIX || c->resp_len - PREFIX != n || c->resp_prefix[0] > 1)
                code = LG_IO;
        }
    } else if (c->http_status >= 100 && c->http_status < LG_MAX_CODE && c->http_status != 200) {
        code = c->http_status;
    }
    if (code != LG_IO) g->answered++;
    int64_t t1 = lg_now_ns(CLOCK_MONOTONIC);
    lg_record(g->w, code, t1, t1 - c->t0, c->req);
    c->stream_id = 0;
    g->inflight--;
}

/* nghttp2 asks for the next bytes of |c|'s message. */
static ssize_t read_msg(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)s, (void)stream_id, (void)user;
    call *c = src->ptr;
    size_t n = c->msg_len - c->sent;
    if (n > length) n = length;
    memcpy(buf, c->msg + c->sent, n);
    c->sent += n;
    if (c->sent == c->msg_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Submits a call in free slot |c|. Returns 0 or -1 (the session refused). */
static int start_call(gconn *g, call *c)
{
    c->req = lg_next_request(g->w, c->msg + PREFIX);
    c->sent = 0;
    c->http_status = 0;
    c->grpc_status = -1;
    c->resp_len = 0;
    nghttp2_data_provider dp = {.source.ptr = c, .read_callback = read_msg};
    c->t0 = lg_now_ns(CLOCK_MONOTONIC);
    int32_t id =
        nghttp2_submit_request(g->s, NULL, g->nv, g->n_nv, &dp, c);
    if (id < 0) return -1;
    c->stream_id = id;
    g->inflight++;
    g->w->st.sent_all++;
    return 0;
}

/* -------------------------------------------------- nghttp2 callbacks -- */

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t length, int flags,
                       void *user)
{
    (void)s, (void)flags;
    gconn *g = user;
    for (;;) {
        ssize_t n = lg_io_send(g->fd, g->tls, data, length);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? NGHTTP2_ERR_WOULDBLOCK
                                                       : NGHTTP2_ERR_CALLBACK_FAILURE;
    }
}

static int parse_status(const uint8_t *v, size_t n)
{
    int x = 0;
    if (!n || n > 3) return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags, (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    call *c = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (!c) return 0;
    if (namelen == 7 && !memcmp(name, ":status", 7)) {
        c->http_status = parse_status(value, valuelen);
    } else if (namelen == 11 && !memcmp(name, "grpc-status", 11)) {
        int st = parse_status(value, valuelen);
        c->grpc_status = st >= 0 && st <= 16 ? st : 99; /* 99: not a gRPC code */
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *user)
{
    (void)flags, (void)user;
    call *c = nghttp2_session_get_stream_user_data(s, stream_id);
    if (!c) return 0;
    for (size_t i = 0; i < len && c->resp_len + i < PREFIX; i++)
        c->resp_prefix[c->resp_len + i] = data[i];
    c->resp_len += len;
    return 0;
}

static int on_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *user)
{
    call *c = nghttp2_session_get_stream_user_data(s, stream_id);
    if (c && c->stream_id == stream_id) finish_call(user, c, error_code);
    return 0;
}

/* ----------------------------------------------------------- connection -- */

/* Connects and starts an HTTP/2 session (preface and SETTINGS go out with the
 * first send). Returns 0, or -1 with nothing open. */
static int gconn_open(gconn *g)
{
    g->fd = lg_connect(g->w->run, 1);
    if (g->fd < 0) return -1;
    if (g->w->run->tls_cred && !(g->tls = lg_tls_open(g->w->run, g->fd, "h2"))) {
        close(g->fd);
        g->fd = -1;
        return -1;
    }
    g->answered = 0;
    nghttp2_session_client_new(&g->s, g->cbs, g);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, LOCAL_WINDOW},
    };
    nghttp2_submit_settings(g->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(g->s, NGHTTP2_FLAG_NONE, 0, LOCAL_WINDOW);
    return 0;
}

/* Fails the calls in flight (LG_IO), ends the session, closes the socket. A
 * connection that failed before the server answered any call (not HTTP/2, say)
 * is followed by a 100 ms pause, as a failed connect is, rather than a busy
 * reconnect loop. */
static void gconn_close(gconn *g)
{
    int pause = !g->answered;
    for (int i = 0; i < g->n_calls; i++)
        if (g->calls[i].stream_id) finish_call(g, &g->calls[i], NGHTTP2_INTERNAL_ERROR);
    nghttp2_session_del(g->s); /* runs no callbacks */
    g->s = NULL;
    lg_tls_close(g->tls);
    g->tls = NULL;
    if (g->fd >= 0) close(g->fd);
    g->fd = -1;
    if (pause) usleep(100000);
}

/* Reads what the socket has and feeds it to the session. Returns 0, or -1 when
 * the connection is over (EOF, error, protocol error). */
static int pump_in(gconn *g)
{
    uint8_t buf[65536];
    for (int rounds = 0; rounds < 8 || lg_tls_pending(g->tls); rounds++) {
        ssize_t n = lg_io_recv(g->fd, g->tls, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        if (n == 0) return -1;
        if (nghttp2_session_mem_recv(g->s, buf, (size_t)n) < 0) return -1;
        if (!g->tls && (size_t)n < sizeof(buf)) return 0;
    }
    return 0;
}

/* A header for nghttp2; |name| and |value| must outlive the session. */
static nghttp2_nv header(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

static void *grpc_worker(void *arg)
{
    lg_worker *w = arg;
    const lg_run *run = w->run;
    gconn g = {.w = w, .fd = -1, .n_calls = run->streams};
    snprintf(g.authority, sizeof(g.authority), "%s:%s", run->host, run->port);
    nghttp2_nv nv[] = {
        header(":method", "POST"),
        header(":scheme", run->tls_cred ? "https" : "http"),
        header(":path", run->path),
        header(":authority", g.authority),
        header("content-type", run->content_type),
        header("te", "trailers"),
        header("user-agent", "prela-loadgen/1"),
        header("x-api-key", run->api_key ? run->api_key : ""),
    };
    g.n_nv = sizeof(nv) / sizeof(nv[0]) - (run->api_key ? 0 : 1);
    memcpy(g.nv, nv, sizeof(nv));
    nghttp2_session_callbacks_new(&g.cbs);
    nghttp2_session_callbacks_set_send_callback(g.cbs, on_send);
    nghttp2_session_callbacks_set_on_header_callback(g.cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g.cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(g.cbs, on_close);
    g.calls = pc_xcalloc((size_t)g.n_calls, sizeof(*g.calls));
    size_t body = run->body->len;
    for (int i = 0; i < g.n_calls; i++) {
        call *c = &g.calls[i];
        c->msg_len = PREFIX + body;
        c->msg = pc_xmalloc(c->msg_len);
        c->msg[0] = 0;
        c->msg[1] = (uint8_t)(body >> 24), c->msg[2] = (uint8_t)(body >> 16);
        c->msg[3] = (uint8_t)(body >> 8), c->msg[4] = (uint8_t)body;
        memcpy(c->msg + PREFIX, run->body->data, body);
    }

    for (;;) {
        int64_t t = lg_now_ns(CLOCK_MONOTONIC);
        int accepting = t < run->win_end;
        if (!accepting && !g.inflight) break;
        if (g.fd < 0) {
            if (!accepting) break;
            if (gconn_open(&g) < 0) {
                lg_record(w, LG_IO, t, -1, 0);
                usleep(100000);
                continue;
            }
        }
        int broken = 0;
        for (int i = 0; accepting && i < g.n_calls && !broken; i++)
            if (!g.calls[i].stream_id) broken = start_call(&g, &g.calls[i]) < 0;
        if (broken || nghttp2_session_send(g.s) != 0 ||
            (!nghttp2_session_want_read(g.s) && !nghttp2_session_want_write(g.s))) {
            gconn_close(&g);
            continue;
        }
        struct pollfd p = {g.fd, POLLIN | (nghttp2_session_want_write(g.s) ? POLLOUT : 0), 0};
        int r = poll(&p, 1, STALL_MS);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0 || ((p.revents & (POLLIN | POLLERR | POLLHUP)) && pump_in(&g) < 0))
            gconn_close(&g);
    }
    if (g.fd >= 0) gconn_close(&g);
    for (int i = 0; i < g.n_calls; i++)
        free(g.calls[i].msg);
    free(g.calls);
    nghttp2_session_callbacks_del(g.cbs);
    return NULL;
}

/* ------------------------------------------------------------- the codes -- */

static void grpc_code_name(int code, char *out, size_t n)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if (code < (int)(sizeof(names) / sizeof(names[0])))
        snprintf(out, n, "gRPC %d %s", code, names[code]);
    else if (code < 100)
        snprintf(out, n, "grpc-status outside 0..16");
    else
        snprintf(out, n, "HTTP %d without grpc-status", code);
}

const lg_transport lg_grpc = {
    .name = "gRPC",
    .ok_code = 0,
    .retry = {8, 14, 429, 503},
    .worker = grpc_worker,
    .code_name = grpc_code_name,
};

/*
 * grpc_call.c - the calls of the gRPC server (grpc.h): one per HTTP/2
 * request stream, from its first HEADERS to the trailers of its answer. The
 * transport (grpc.c) feeds it from nghttp2 callbacks; see grpc_call.h.
 *
 * Data flow: request headers and DATA -> the framed message in the call's
 * arena (5-byte prefix checked as soon as it is complete, size charged to the
 * memory budget before the bytes arrive) -> at END_STREAM the call is checked
 * and handed to a handler thread, which inflates the message, runs the
 * receiver's handler, queues the call on s->done and writes the eventfd -> the
 * I/O thread submits HEADERS + DATA + trailers (grpc-status, grpc-message,
 * grpc-status-details-bin with RetryInfo).
 *
 * Every answer gRPC gives on its own (framing, size, encoding, auth, timeouts)
 * is trailers-only and goes through answer(); an answer sets the call
 * ANSWERED and gives its buffered DATA bytes back to the connection window
 * (release_data), so DATA still arriving is dropped and consumed at once.
 *
 * Why one thread per running call: handlers block until exporters made data
 * durable; running them apart from the I/O thread keeps every connection
 * responsive while at most max_inflight calls wait.
 *
 * Handler threads: a thread that finished its call parks (up to PARK_MS) for
 * the next one instead of exiting, so a busy server does not create a thread,
 * allocate its stack and initialize its TLS per call (that was a fifth of the
 * gRPC path's CPU). start_call hands a call to a parked thread when there is
 * one (the work queue, under s->mu), else creates a thread. So there are never
 * more threads than calls running plus parked ones, and never more parked than
 * ran at once in the last PARK_MS. pc_grpc_stop (after the I/O thread ended,
 * so no call runs) sets closing and waits until every handler thread has left.
 */
#include "grpc_call.h"
#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define FIRST_MSG_BLOCK (64 << 10)  /* message buffer before it has to grow */
#define PARK_MS 10000               /* an idle handler thread waits this long for a call */
#define RETRY_OVER_BUDGET_MS 1000   /* RetryInfo when the memory budget refused a call */
#define MAX_MESSAGE_TEXT 1024 /* grpc-message, before percent-encoding */
#define ACCEPT_ENCODING "gzip, deflate, zstd, identity"
#define RETRY_INFO_URL "type.googleapis.com/google.rpc.RetryInfo"

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

gcall *pc_grpc_call_new(conn *cn, int32_t stream_id)
{
    gcall *c = pc_xcalloc(1, sizeof(*c));
    c->s = cn->s;
    c->pub.arena = pc_arena_create(4096);
    c->pub.priv = c;
    c->conn = cn;
    c->stream_id = stream_id;
    c->recv_deadline = pc_grpc_now_ms() + cn->s->cfg.request_timeout_ms;
    if (c->recv_deadline < cn->s->next_check) cn->s->next_check = c->recv_deadline;
    c->next = cn->calls;
    if (cn->calls) cn->calls->prev = c;
    cn->calls = c;
    cn->nstreams++;
    return c;
}

void pc_grpc_call_free(gcall *c)
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
    if (--cn->nstreams == 0) cn->idle_since = pc_grpc_now_ms();
}

/* Detaches |c| and frees it unless its handler is still running. */
void pc_grpc_call_release(gcall *c)
{
    call_detach(c);
    if (c->state != RUNNING) pc_grpc_call_free(c);
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
    pc_metrics_codes_add(&c->s->codes, code);
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
void pc_grpc_call_reply(gcall *c)
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
    pc_metrics_codes_add(&c->s->codes, PC_GRPC_OK);
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
    c->client_deadline = pc_grpc_now_ms() + ms;
    if (c->client_deadline < c->s->next_check) c->s->next_check = c->client_deadline;
}

/* The request headers are complete: answers at once what no handler may see. */
void pc_grpc_call_headers(gcall *c)
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
        !(c->msg = pc_arena_try_grow(c->pub.arena, NULL, c->msg_cap + 1))) {
        answer(c, PC_GRPC_RESOURCE_EXHAUSTED, RETRY_OVER_BUDGET_MS, 0,
               "the server is over its memory budget (message of %zu bytes); retry later",
               c->declared);
        return;
    }
}

/* Appends DATA bytes to the call's message, answering framing and size errors
 * as soon as they show (the stream is then reset after the answer is sent). */
void pc_grpc_call_data(gcall *c, const uint8_t *p, size_t n)
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
            uint8_t *m = pc_arena_try_grow(c->pub.arena, c->msg, cap + 1);
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
    s->inflight++;
    pthread_mutex_lock(&s->mu);
    if (s->parked > 0) { /* see "Handler threads" */
        s->parked--;
        c->work_next = s->work;
        s->work = c;
        pthread_cond_signal(&s->work_cv);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->handlers++;
    pthread_mutex_unlock(&s->mu);
    pthread_t t;
    int rv = pthread_create(&t, &s->detached, call_main, c);
    if (rv == 0) return;
    pthread_mutex_lock(&s->mu);
    s->handlers--;
    pthread_mutex_unlock(&s->mu);
    s->inflight--;
    c->state = RECEIVING;
    pc_log(PC_LOG_WARN, s->cfg.name, "cannot start a handler thread: %s", strerror(rv));
    answer(c, PC_GRPC_UNAVAILABLE, s->cfg.retry_after_ms, 0, "server overloaded; retry later");
}

/* END_STREAM: the request is complete. Checks the framing and the limits,
 * then starts the handler. */
void pc_grpc_call_end(gcall *c)
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
 * A handler thread (detached): runs its call, then hands it back to the I/O
 * thread, then parks for the next call (see "Handler threads"). It wakes the
 * I/O thread before it lets go of s->mu, so once the I/O thread has taken the
 * call from the done list this thread touches nothing of the call again; and
 * it leaves (handlers--, signalling pc_grpc_stop) under s->mu too, touching
 * nothing of the server after that unlock.
 *
 * Why detached and not joined: joining made the I/O thread, and with it every
 * connection, wait until the exiting thread was scheduled again, which on a
 * loaded machine took seconds (found by fuzz_grpc).
 */
static void *call_main(void *arg)
{
    gcall *c = arg;
    pc_thread_name("grpc-call");
    pc_grpc_server *s = c->s;
    for (;;) {
        if (inflate_msg(c) == 0) c->method->fn(s->ctx, &c->pub, &c->reply);
        pthread_mutex_lock(&s->mu);
        c->done_next = s->done;
        s->done = c;
        pc_grpc_wake(s);
        c = NULL;
        if (!s->closing) {
            s->parked++;
            int64_t until = pc_time_mono_ns() + PARK_MS * 1000000LL;
            while (!s->work && !s->closing)
                if (pc_cond_wait_until(&s->work_cv, &s->mu, until) == ETIMEDOUT) break;
            if (s->work) { /* start_call took it off parked already */
                c = s->work;
                s->work = c->work_next;
            } else {
                s->parked--;
            }
        }
        if (!c) break;
        pthread_mutex_unlock(&s->mu);
    }
    s->handlers--;
    pthread_cond_signal(&s->exit_cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Answers DEADLINE_EXCEEDED for |c| past its grpc-timeout. A RUNNING call
 * stays RUNNING (its thread owns it); its reply is dropped (on_wake). */
void pc_grpc_call_expire(gcall *c)
{
    int running = c->state == RUNNING;
    answer(c, PC_GRPC_DEADLINE_EXCEEDED, 0, 0, "deadline exceeded (grpc-timeout)");
    if (running) {
        c->state = RUNNING;
        c->expired = 1;
    }
}

void pc_grpc_call_timeout(gcall *c, int64_t limit_ms)
{
    answer(c, PC_GRPC_DEADLINE_EXCEEDED, 0, 0, "request not received within %lld ms",
           (long long)limit_ms);
}

void pc_grpc_wake(pc_grpc_server *s)
{
    uint64_t one = 1;
    if (write(s->efd, &one, sizeof(one)) < 0) return; /* only when already signalled */
}

/*
 * test_grpc.c - the gRPC server (src/core/grpc.c, grpc_call.c), driven by an nghttp2 client
 * session over a blocking socket: calls, framing and size errors, encodings,
 * status details, cancellation while a handler runs, concurrency, limits,
 * connections that are not HTTP/2, idle timeout and graceful stop.
 *
 * Handlers that must stay busy wait on a gate the test opens; the test waits
 * on events (gate counters, frames, EOF) with a deadline, never on sleeps.
 */
#include "check.h"
#include "grpc.h"
#include "log.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define WAIT_MS 10000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- handlers and the gate ---------------------------------------------- */

static struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, entered, finished;
} G = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void gate_reset(void)
{
    pthread_mutex_lock(&G.mu);
    G.open = G.entered = G.finished = 0;
    pthread_mutex_unlock(&G.mu);
}

static void gate_open(void)
{
    pthread_mutex_lock(&G.mu);
    G.open = 1;
    pthread_cond_broadcast(&G.cv);
    pthread_mutex_unlock(&G.mu);
}

/* Waits until *|field| >= |n|; returns 0, or -1 after WAIT_MS. */
static int gate_wait(int *field, int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    int rc = 0;
    pthread_mutex_lock(&G.mu);
    while (*field < n && rc == 0)
        rc = pthread_cond_timedwait(&G.cv, &G.mu, &ts);
    int ok = *field >= n;
    pthread_mutex_unlock(&G.mu);
    return ok ? 0 : -1;
}

/* Echoes the message, then "|" and x-prela-project-id when sent; takes the arena over. */
static void h_echo(void *ctx, pc_grpc_call *call, pc_grpc_reply *reply)
{
    (void)ctx;
    pc_buf_append(&reply->body, call->msg, call->msg_len);
    const char *pid = pc_grpc_metadata(call, "x-prela-project-id");
    if (pid) {
        pc_buf_putc(&reply->body, '|');
        pc_buf_puts(&reply->body, pid);
    }
    pc_arena *a = call->arena;
    call->arena = NULL;
    pc_arena_destroy(a);
}

#define FAIL_MSG "store busy: 100% full\nretry \xc3\xbc"

static void h_fail(void *ctx, pc_grpc_call *call, pc_grpc_reply *reply)
{
    (void)ctx, (void)call;
    reply->code = PC_GRPC_UNAVAILABLE;
    pc_buf_puts(&reply->message, FAIL_MSG);
    reply->retry_after_ms = 1500;
}

static void h_block(void *ctx, pc_grpc_call *call, pc_grpc_reply *reply)
{
    (void)ctx, (void)call;
    pthread_mutex_lock(&G.mu);
    G.entered++;
    pthread_cond_broadcast(&G.cv);
    while (!G.open)
        pthread_cond_wait(&G.cv, &G.mu);
    G.finished++;
    pthread_cond_broadcast(&G.cv);
    pthread_mutex_unlock(&G.mu);
    pc_buf_puts(&reply->body, "unblocked");
}

#define BIG_REPLY (16u << 20)

static void h_big(void *ctx, pc_grpc_call *call, pc_grpc_reply *reply)
{
    (void)ctx, (void)call;
    pc_buf_reserve(&reply->body, BIG_REPLY);
    for (uint32_t i = 0; i < BIG_REPLY; i++)
        reply->body.data[i] = (char)(i * 7);
    reply->body.len = BIG_REPLY;
}

/* Answers with the handler thread's kernel id (never reused soon, unlike a
 * pthread_t, whose memory glibc hands to the next thread). */
static void h_tid(void *ctx, pc_grpc_call *call, pc_grpc_reply *reply)
{
    (void)ctx, (void)call;
    pc_buf_printf(&reply->body, "%ld", (long)gettid());
}

static const pc_grpc_method METHODS[] = {
    {"/test.Svc/Tid", h_tid, PC_SCOPE_NONE},
    {"/test.Svc/Echo", h_echo, PC_SCOPE_NONE},
    {"/test.Svc/Fail", h_fail, PC_SCOPE_NONE},
    {"/test.Svc/Block", h_block, PC_SCOPE_NONE},
    {"/test.Svc/Big", h_big, PC_SCOPE_NONE},
};

static pc_grpc_config base_cfg(void)
{
    pc_grpc_config c = {.name = "grpc-test",
                        .endpoint = "127.0.0.1:0",
                        .max_msg = 4 << 20,
                        .max_concurrent_streams = 100,
                        .max_inflight = 64,
                        .max_connections = 64,
                        .idle_timeout_s = 60,
                        .drain_timeout_ms = 5000,
                        .retry_after_ms = 1500};
    return c;
}

static pc_grpc_server *start(const pc_grpc_config *cfg)
{
    pc_grpc_server *s = pc_grpc_start(cfg, METHODS, sizeof(METHODS) / sizeof(METHODS[0]), NULL);
    CHECK(s != NULL);
    return s;
}

/* ---- the nghttp2 client --------------------------------------------------- */

typedef struct resp {
    int status, header_blocks, closed;
    uint32_t error; /* of the stream close: RST_STREAM code, 0 for a clean end */
    char grpc_status[8], grpc_message[512], details[1024], accept[128], content_type[64];
    unsigned char *data;
    size_t len, cap;
    /* the request body */
    const unsigned char *body;
    size_t body_len, body_off;
    int no_end; /* do not end the stream after the body */
} resp;

typedef struct client {
    int fd;
    nghttp2_session *h2;
    int goaway, ping_acks, eof;
} client;

static void copy_hdr(char *dst, size_t cap, const uint8_t *v, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int c_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                    const uint8_t *v, size_t vlen, uint8_t flags, void *user)
{
    (void)nlen, (void)flags, (void)user;
    resp *r = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!r) return 0;
    const char *n = (const char *)name;
    if (strcmp(n, ":status") == 0)
        r->status = atoi((const char *)v);
    else if (strcmp(n, "grpc-status") == 0)
        copy_hdr(r->grpc_status, sizeof(r->grpc_status), v, vlen);
    else if (strcmp(n, "grpc-message") == 0)
        copy_hdr(r->grpc_message, sizeof(r->grpc_message), v, vlen);
    else if (strcmp(n, "grpc-status-details-bin") == 0)
        copy_hdr(r->details, sizeof(r->details), v, vlen);
    else if (strcmp(n, "grpc-accept-encoding") == 0)
        copy_hdr(r->accept, sizeof(r->accept), v, vlen);
    else if (strcmp(n, "content-type") == 0)
        copy_hdr(r->content_type, sizeof(r->content_type), v, vlen);
    return 0;
}

static int c_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    client *c = user;
    if (f->hd.type == NGHTTP2_GOAWAY) c->goaway++;
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK)) c->ping_acks++;
    resp *r = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (r && f->hd.type == NGHTTP2_HEADERS) r->header_blocks++;
    return 0;
}

static int c_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                  void *user)
{
    (void)flags, (void)user;
    resp *r = nghttp2_session_get_stream_user_data(h2, id);
    if (!r) return 0;
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2;
        r->data = realloc(r->data, r->cap);
    }
    memcpy(r->data + r->len, d, n);
    r->len += n;
    return 0;
}

static int c_close(nghttp2_session *h2, int32_t id, uint32_t error, void *user)
{
    (void)user;
    resp *r = nghttp2_session_get_stream_user_data(h2, id);
    if (r) r->closed = 1, r->error = error;
    return 0;
}

static ssize_t c_body(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *user)
{
    (void)h2, (void)id, (void)user;
    resp *r = src->ptr;
    size_t n = r->body_len - r->body_off < len ? r->body_len - r->body_off : len;
    memcpy(buf, r->body + r->body_off, n);
    r->body_off += n;
    if (r->body_off == r->body_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (r->no_end) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
}

static int dial(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Connects a client; |window| > 0 sets its receive windows (stream and connection). */
static client *cli_new(int port, int window, int rcvbuf)
{
    client *c = calloc(1, sizeof(*c));
    c->fd = dial(port, rcvbuf);
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, c_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, c_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, c_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, c_close);
    nghttp2_session_client_new(&c->h2, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)window}};
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, window > 0 ? 1 : 0);
    if (window > 0) nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, window);
    return c;
}

static void cli_free(client *c)
{
    if (!c) return;
    nghttp2_session_del(c->h2);
    if (c->fd >= 0) close(c->fd);
    free(c);
}

static void resp_free(resp *r)
{
    free(r->data);
    memset(r, 0, sizeof(*r));
}

static void cli_flush(client *c)
{
    const uint8_t *p;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(c->h2, &p)) > 0) {
        while (n > 0) {
            ssize_t w = send(c->fd, p, (size_t)n, MSG_NOSIGNAL);
            if (w <= 0) {
                c->eof = 1;
                return;
            }
            p += w, n -= w;
        }
    }
}

/* Sends what is pending, then reads for up to |ms| milliseconds. */
static void cli_pump(client *c, int ms)
{
    cli_flush(c);
    if (c->eof) return;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) <= 0) return;
    static __thread uint8_t buf[65536];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        c->eof = 1;
        return;
    }
    if (nghttp2_session_mem_recv(c->h2, buf, (size_t)n) < 0) c->eof = 1;
    cli_flush(c);
}

/* Pumps until *|flag| is set or the connection ends; returns *|flag|. */
static int cli_until(client *c, const int *flag)
{
    int64_t end = now_ms() + WAIT_MS;
    while (!*flag && !c->eof && now_ms() < end)
        cli_pump(c, 50);
    return *flag;
}

static int cli_until_eof(client *c)
{
    return cli_until(c, &c->eof);
}

#define NVS(n, v)                                                                                  \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE                 \
    }

/* Starts a request; |r| gets the answer. NULL |ctype| / |enc| / |xname| leave
 * those headers out; a NULL |r->body| sends no DATA (END_STREAM on HEADERS). */
static int32_t cli_req(client *c, resp *r, const char *method, const char *path, const char *ctype,
                       const char *enc, const char *xname, const char *xvalue)
{
    nghttp2_nv nv[8] = {NVS(":method", method), NVS(":scheme", "http"), NVS(":path", path),
                        NVS(":authority", "127.0.0.1"), NVS("te", "trailers")};
    size_t n = 5;
    if (ctype) nv[n++] = (nghttp2_nv)NVS("content-type", ctype);
    if (enc) nv[n++] = (nghttp2_nv)NVS("grpc-encoding", enc);
    if (xname) nv[n++] = (nghttp2_nv)NVS(xname, xvalue);
    nghttp2_data_provider dp = {.source.ptr = r, .read_callback = c_body};
    int32_t id = nghttp2_submit_request(c->h2, NULL, nv, n, r->body ? &dp : NULL, r);
    CHECK(id > 0);
    return id;
}

/* Returns a framed message: |flag|, |declared| big-endian, then |n| bytes of |p|. */
static unsigned char *frame(int flag, uint32_t declared, const void *p, size_t n, size_t *len)
{
    unsigned char *f = malloc(5 + n);
    f[0] = (unsigned char)flag;
    f[1] = (unsigned char)(declared >> 24), f[2] = (unsigned char)(declared >> 16);
    f[3] = (unsigned char)(declared >> 8), f[4] = (unsigned char)declared;
    if (n) memcpy(f + 5, p, n);
    *len = 5 + n;
    return f;
}

/* One unary call on |c| with |msg| framed plainly; waits for the answer. */
static void call(client *c, resp *r, const char *path, const void *msg, size_t n)
{
    size_t len;
    unsigned char *f = frame(0, (uint32_t)n, msg, n, &len);
    r->body = f, r->body_len = len;
    cli_req(c, r, "POST", path, "application/grpc", NULL, NULL, NULL);
    CHECK(cli_until(c, &r->closed));
    free(f);
}

/* Checks an OK answer whose message is |want| (|n| bytes). */
static void check_ok(const resp *r, const void *want, size_t n)
{
    CHECK_EQ_INT(r->status, 200);
    CHECK_EQ_STR(r->grpc_status, "0");
    CHECK_EQ_STR(r->content_type, "application/grpc");
    CHECK_EQ_INT(r->header_blocks, 2); /* HEADERS, then trailers */
    CHECK_EQ_INT(r->len, 5 + n);
    if (r->len != 5 + n) return;
    uint32_t declared = (uint32_t)r->data[1] << 24 | (uint32_t)r->data[2] << 16 |
                        (uint32_t)r->data[3] << 8 | r->data[4];
    CHECK_EQ_INT(r->data[0], 0);
    CHECK_EQ_INT(declared, n);
    CHECK(memcmp(r->data + 5, want, n) == 0);
}

/* Checks a trailers-only answer with grpc-status |code|. */
static void check_status(const resp *r, int code)
{
    char want[8];
    snprintf(want, sizeof(want), "%d", code);
    CHECK(r->closed);
    CHECK_EQ_INT(r->status, 200);
    CHECK_EQ_STR(r->grpc_status, want);
    CHECK_EQ_INT(r->header_blocks, 1);
    CHECK_EQ_INT(r->len, 0);
}

static size_t unbase64(const char *in, unsigned char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t v = 0;
    int bits = 0;
    size_t n = 0;
    for (; *in && *in != '='; in++) {
        const char *p = strchr(a, *in);
        if (!p) return 0;
        v = v << 6 | (uint32_t)(p - a);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(v >> bits);
        }
    }
    return n;
}

/* google.rpc.Any{type_url: RetryInfo, value: RetryInfo{retry_delay: 1.5s}}, by hand. */
static const unsigned char RETRY_ANY_1500MS[] = "\x0a\x28type.googleapis.com/google.rpc.RetryInfo"
                                                "\x12\x0a\x0a\x08\x08\x01\x10\x80\xca\xb5\xee\x01";

/* Checks that grpc-status-details-bin holds Status{code, message, [RetryInfo 1.5s]}. */
static void check_details(const resp *r, int code, const char *msg)
{
    unsigned char want[600], got[800];
    size_t n = 0, any = sizeof(RETRY_ANY_1500MS) - 1;
    want[n++] = 0x08, want[n++] = (unsigned char)code;
    want[n++] = 0x12, want[n++] = (unsigned char)strlen(msg);
    memcpy(want + n, msg, strlen(msg)), n += strlen(msg);
    want[n++] = 0x1a, want[n++] = (unsigned char)any;
    memcpy(want + n, RETRY_ANY_1500MS, any), n += any;
    CHECK(strchr(r->details, '=') == NULL); /* unpadded */
    size_t got_n = unbase64(r->details, got);
    CHECK_EQ_INT(got_n, n);
    CHECK(got_n == n && memcmp(got, want, n) == 0);
}

static size_t gzip(const void *in, size_t n, unsigned char *out, size_t cap)
{
    z_stream zs = {0};
    deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_FINISH);
    size_t len = zs.total_out;
    deflateEnd(&zs);
    return len;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_call(void)
{
    pc_grpc_config cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    client *c = cli_new(pc_grpc_port(s), 0, 0);
    resp r = {0};
    size_t len;
    unsigned char *f = frame(0, 5, "hello", 5, &len);
    r.body = f, r.body_len = len;
    cli_req(c, &r, "POST", "/test.Svc/Echo", "application/grpc", NULL, "x-prela-project-id",
            "proj-7");
    nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
    CHECK(cli_until(c, &r.closed));
    check_ok(&r, "hello|proj-7", 12);
    CHECK_EQ_STR(r.accept, "gzip, deflate, zstd, identity");
    CHECK_EQ_INT(r.error, 0);
    CHECK(cli_until(c, &c->ping_acks));
    CHECK_EQ_INT(
        nghttp2_session_get_remote_settings(c->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 100);
    free(f);
    resp_free(&r);

    /* application/grpc+proto and application/grpc;... are gRPC too; empty messages work */
    const char *types[] = {"application/grpc+proto", "application/grpc; charset=utf-8"};
    for (int i = 0; i < 2; i++) {
        f = frame(0, 0, NULL, 0, &len);
        r.body = f, r.body_len = len;
        cli_req(c, &r, "POST", "/test.Svc/Echo", types[i], NULL, NULL, NULL);
        CHECK(cli_until(c, &r.closed));
        check_ok(&r, "", 0);
        free(f);
        resp_free(&r);
    }
    cli_free(c);
    pc_grpc_stop(s);
    pc_grpc_stop(NULL);
}

/* Threads of this process (/proc/self/task entries). */
static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* Waits up to 2 s for this process to be down to `n` threads (handler
 * threads of a stopped server leave on their own); returns the count then. */
static int threads_settle_to(int n)
{
    int64_t until = now_ms() + 2000;
    int c;
    while ((c = thread_count()) != n && now_ms() < until) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return c;
}

/* Sequential calls run on one parked handler thread, not a thread each; stop
 * lets every parked thread go. */
static void test_handler_threads_reused(void)
{
    /* The servers of earlier tests may still have threads on their way out;
     * this test program has no thread of its own but main. */
    int before = threads_settle_to(1);
    CHECK_EQ_INT(before, 1);
    pc_grpc_config cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    client *c = cli_new(pc_grpc_port(s), 0, 0);
    char first[64] = "";
    for (int i = 0; i < 5; i++) {
        resp r = {0};
        size_t len;
        unsigned char *f = frame(0, 0, NULL, 0, &len);
        r.body = f, r.body_len = len;
        cli_req(c, &r, "POST", "/test.Svc/Tid", "application/grpc", NULL, NULL, NULL);
        CHECK(cli_until(c, &r.closed));
        CHECK(r.len > 5 && r.len < sizeof(first));
        char tid[64];
        snprintf(tid, sizeof(tid), "%.*s", (int)(r.len - 5), (const char *)r.data + 5);
        if (i == 0) memcpy(first, tid, sizeof(tid));
        CHECK_EQ_STR(tid, first);
        free(f);
        resp_free(&r);
    }
    CHECK_EQ_INT(thread_count(), before + 2); /* the I/O thread and one parked handler */
    cli_free(c);
    pc_grpc_stop(s);
    CHECK_EQ_INT(threads_settle_to(before), before);
}

static void test_compressed(void)
{
    pc_grpc_config cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    client *c = cli_new(pc_grpc_port(s), 0, 0);
    const char *text = "a compressed request, a compressed request, a compressed request";
    unsigned char z[256];
    size_t zn[2] = {gzip(text, strlen(text), z, sizeof(z)), 0};
    unsigned char zs[256];
    zn[1] = ZSTD_compress(zs, sizeof(zs), text, strlen(text), 3);
    const char *encs[] = {"gzip", "zstd"};
    unsigned char *bodies[] = {z, zs};
    for (int i = 0; i < 2; i++) {
        resp r = {0};
        size_t len;
        unsigned char *f = frame(1, (uint32_t)zn[i], bodies[i], zn[i], &len);
        r.body = f, r.body_len = len;
        cli_req(c, &r, "POST", "/test.Svc/Echo", "application/grpc", encs[i], NULL, NULL);
        CHECK(cli_until(c, &r.closed));
        check_ok(&r, text, strlen(text));
        free(f);
        resp_free(&r);
    }
    /* a corrupt gzip message: INTERNAL */
    resp r = {0};
    size_t len;
    unsigned char *f = frame(1, 8, "not gzip", 8, &len);
    r.body = f, r.body_len = len;
    cli_req(c, &r, "POST", "/test.Svc/Echo", "application/grpc", "gzip", NULL, NULL);
    CHECK(cli_until(c, &r.closed));
    check_status(&r, PC_GRPC_INTERNAL);
    CHECK(strstr(r.grpc_message, "invalid gzip message") != NULL);
    free(f);
    resp_free(&r);
    cli_free(c);
    pc_grpc_stop(s);
}

static void test_error_reply(void)
{
    pc_grpc_config cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    client *c = cli_new(pc_grpc_port(s), 0, 0);
    resp r = {0};
    call(c, &r, "/test.Svc/Fail", "x", 1);
    check_status(&r, PC_GRPC_UNAVAILABLE);
    CHECK_EQ_STR(r.content_type, "application/grpc");
    CHECK_EQ_STR(r.grpc_message, "store busy: 100%25 full%0Aretry %C3%BC");
    check_details(&r, PC_GRPC_UNAVAILABLE, FAIL_MSG);
    resp_free(&r);
    cli_free(c);
    pc_grpc_stop(s);
}

static void test_rejected_requests(void)
{
    pc_grpc_config cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    client *c = cli_new(pc_grpc_port(s), 0, 0);
    size_t len;
    unsigned char *f = frame(0, 2, "hi", 2, &len);
    resp r = {.body = f, .body_len = len};

    cli_req(c, &r, "POST", "/x/y", "application/grpc", NULL, NULL, NULL);
    CHECK(cli_until(c, &r.closed));
    check_status(&r, PC_GRPC_UNIMPLEMENTED);
    CHECK_EQ_STR(r.grpc_message, "unknown method /x/y");
    resp_free(&r);

    r = (resp){.body = f, .body_len = len};
    cli_req(c, &r, "POST", "/test.Svc/Echo", "application/grpc", "br", NULL, NULL);
    CHECK(cli_until(c, &r.closed));
    check_status(&r, PC_GRPC_UNIMPLEMENTED);
    CHECK_EQ_STR(r.accept, "gzip, deflate, zstd, identity");
    resp_free(&r);

    const char *bad_types[] = {"application/json", "application/grpcx", NULL};
    for (int i = 0; i < 3; i++) {
        r = (resp){.body = f, .body_len = len};
        cli_req(c, &r, "POST", "/test.Svc/Echo", bad_types[i], NULL, NULL, NULL);
        CHECK(cli_until(c, &r.closed));
        CHECK_EQ_INT(r.status, 415);
        CHECK_EQ_STR(r.grpc_status, "");
        resp_free(&r);
    }

    r = (resp){0};
    cli_req(c, &r, "GET", "/test.Svc/Echo", "application/grpc", NULL, NULL, NULL);
    CHECK(cli_until(c, &r.closed));
    CHECK_EQ_INT(r.status, 405);
    resp_free(&r);

    /* the connection is still fine */
    call(c, &r, "/test.Svc/Echo", "ok", 2);
    check_ok(&r, "ok", 2);
    resp_free(&r);
    free(f);
    cli_free(c);
    pc_grpc_stop(s);
}

/* Sends |body| (|n| bytes, already framed) and checks grpc-status |code| and
 * that grpc-message contains |msg|. */
static void expect(client *c, const void *body, size_t n, int no_end, const char *enc, int code,
                   const char *msg)
{
    resp r = {.body = body, .body_len = n, .no_end = no_end};
    cli_req(c, &r, "POST", "/test.Svc/Echo", "application/grpc", enc, NULL, NULL);
    CHECK(cli_until(c, &r.closed));
    check_status(&r, code);
    CHECK(strstr(r.grpc_message, msg) != NULL);
    if (!strstr(r.grpc_message, msg)) fprintf(stderr, "   grpc-message: %s\n", r.grpc_message);
    CHECK_EQ_INT(r.error, 0); /* RST_STREAM(NO_ERROR) when the request was still open */
    resp_free(&r);
}

static void test_framing_errors(void)
{
    pc_grpc_config cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    client *c = cli_new(pc_grpc_port(s), 0, 0);
    unsigned char buf[1200] = {0};
    size_t len;
    unsigned char *f;

    /* declared over max_msg, request left open: answered at once, stream reset */
    f = frame(0, 5u << 20, buf, 1000, &len);
    expect(c, f, len, 1, NULL, PC_GRPC_RESOURCE_EXHAUSTED, "exceeds the limit of 4194304 bytes");
    free(f);

    f = frame(0, 100, buf, 10, &len);
    expect(c, f, len, 0, NULL, PC_GRPC_INTERNAL, "truncated message: 10 of 100 bytes");
    free(f);
    expect(c, "\0\0\0", 3, 0, NULL, PC_GRPC_INTERNAL, "truncated message prefix: 3 of 5");
    expect(c, "", 0, 0, NULL, PC_GRPC_INTERNAL, "no request message");

    /* two messages; the second one ends the stream, and leaves it open */
    unsigned char two[14] = {0, 0, 0, 0, 2, 'h', 'i', 0, 0, 0, 0, 2, 'h', 'o'};
    expect(c, two, sizeof(two), 0, NULL, PC_GRPC_INTERNAL, "more than one message");
    expect(c, two, sizeof(two), 1, NULL, PC_GRPC_INTERNAL, "more than one message");

    f = frame(1, 2, "hi", 2, &len);
    expect(c, f, len, 0, NULL, PC_GRPC_INTERNAL, "compressed flag set but no grpc-encoding");
    free(f);
    f = frame(7, 2, "hi", 2, &len);
    expect(c, f, len, 0, NULL, PC_GRPC_INTERNAL, "invalid compressed flag 7");
    free(f);

    /* a gzip bomb: 16 MiB of zeros in a few KiB, over max_msg once inflated */
    size_t big = 16u << 20, cap = 1 << 20;
    char *zeros = calloc(1, big);
    unsigned char *z = malloc(cap);
    size_t zn = gzip(zeros, big, z, cap);
    f = frame(1, (uint32_t)zn, z, zn, &len);
    expect(c, f, len, 0, "gzip", PC_GRPC_RESOURCE_EXHAUSTED, "decompressed message exceeds");
    free(f);
    free(z);

    /* 3 MiB up and back: the large windows and flow control work */
    unsigned char *msg = malloc(3u << 20);
    for (size_t i = 0; i < (3u << 20); i++)
        msg[i] = (unsigned char)(i * 31 + 7);
    resp r = {0};
    call(c, &r, "/test.Svc/Echo", msg, 3u << 20);
    check_ok(&r, msg, 3u << 20);
    resp_free(&r);
    free(msg);
    free(zeros);
    cli_free(c);
    pc_grpc_stop(s);
}

static void test_reset_while_running(void)
{
    gate_reset();
    pc_grpc_config cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    client *c = cli_new(pc_grpc_port(s), 0, 0);
    size_t len;
    unsigned char *f = frame(0, 1, "b", 1, &len);
    resp r = {.body = f, .body_len = len};
    int32_t id = cli_req(c, &r, "POST", "/test.Svc/Block", "application/grpc", NULL, NULL, NULL);
    cli_flush(c);
    CHECK_EQ_INT(gate_wait(&G.entered, 1), 0);
    nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    cli_flush(c);
    CHECK(cli_until(c, &r.closed));
    CHECK_EQ_INT(r.error, NGHTTP2_CANCEL);
    gate_open();
    CHECK_EQ_INT(gate_wait(&G.finished, 1), 0);
    resp_free(&r);
    call(c, &r, "/test.Svc/Echo", "after", 5); /* the server is still healthy */
    check_ok(&r, "after", 5);
    resp_free(&r);

    /* the whole connection goes away while a handler runs */
    gate_reset();
    r = (resp){.body = f, .body_len = len};
    cli_req(c, &r, "POST", "/test.Svc/Block", "application/grpc", NULL, NULL, NULL);
    cli_flush(c);
    CHECK_EQ_INT(gate_wait(&G.entered, 1), 0);
    cli_free(c);
    gate_open();
    CHECK_EQ_INT(gate_wait(&G.finished, 1), 0);
    resp_free(&r);
    c = cli_new(pc_grpc_port(s), 0, 0);
    call(c, &r, "/test.Svc/Echo", "again", 5);
    check_ok(&r, "again", 5);
    resp_free(&r);
    free(f);
    cli_free(c);
    pc_grpc_stop(s);
}

#define STREAMS 50

/* Runs |n| concurrent calls on a connection of its own; returns how many failed. */
static int calls_on_one_conn(int port, int n, int tag)
{
    client *c = cli_new(port, 0, 0);
    resp *r = calloc((size_t)n, sizeof(*r));
    unsigned char **f = calloc((size_t)n, sizeof(*f));
    char(*msg)[32] = calloc((size_t)n, sizeof(*msg));
    for (int i = 0; i < n; i++) {
        size_t len;
        snprintf(msg[i], sizeof(msg[i]), "call %d of %d", i, tag);
        f[i] = frame(0, (uint32_t)strlen(msg[i]), msg[i], strlen(msg[i]), &len);
        r[i].body = f[i], r[i].body_len = len;
        nghttp2_nv nv[] = {NVS(":method", "POST"),
                           NVS(":scheme", "http"),
                           NVS(":path", "/test.Svc/Echo"),
                           NVS(":authority", "x"),
                           NVS("content-type", "application/grpc"),
                           NVS("te", "trailers")};
        nghttp2_data_provider dp = {.source.ptr = &r[i], .read_callback = c_body};
        nghttp2_submit_request(c->h2, NULL, nv, 6, &dp, &r[i]);
    }
    int64_t end = now_ms() + WAIT_MS;
    int done = 0;
    while (done < n && !c->eof && now_ms() < end) {
        cli_pump(c, 50);
        done = 0;
        for (int i = 0; i < n; i++)
            done += r[i].closed;
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        size_t ml = strlen(msg[i]);
        int wrong = !r[i].closed || r[i].len != 5 + ml || strcmp(r[i].grpc_status, "0") != 0 ||
                    memcmp(r[i].data + 5, msg[i], ml) != 0;
        if (wrong)
            fprintf(stderr,
                    "   conn %d call %d: closed %d error %u grpc-status '%s' (%s) len %zu\n", tag,
                    i, r[i].closed, r[i].error, r[i].grpc_status, r[i].grpc_message, r[i].len);
        bad += wrong;
        free(r[i].data);
        free(f[i]);
    }
    free(r), free(f), free(msg);
    cli_free(c);
    return bad;
}

typedef struct worker {
    pthread_t th;
    int port, tag, bad;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    w->bad = calls_on_one_conn(w->port, 25, w->tag);
    return NULL;
}

static void test_concurrency(void)
{
    pc_grpc_config cfg = base_cfg();
    cfg.max_inflight = 4 * 25 + STREAMS;
    pc_grpc_server *s = start(&cfg);
    CHECK_EQ_INT(calls_on_one_conn(pc_grpc_port(s), STREAMS, 0), 0);
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.port = pc_grpc_port(s), .tag = i + 1};
        pthread_create(&w[i].th, NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(w[i].th, NULL);
        CHECK_EQ_INT(w[i].bad, 0);
    }
    pc_grpc_stop(s);
}

static void test_max_inflight(void)
{
    gate_reset();
    pc_grpc_config cfg = base_cfg();
    cfg.max_inflight = 2;
    pc_grpc_server *s = start(&cfg);
    client *c = cli_new(pc_grpc_port(s), 0, 0);
    size_t len;
    unsigned char *f = frame(0, 1, "b", 1, &len);
    resp b[2] = {{.body = f, .body_len = len}, {.body = f, .body_len = len}};
    cli_req(c, &b[0], "POST", "/test.Svc/Block", "application/grpc", NULL, NULL, NULL);
    cli_req(c, &b[1], "POST", "/test.Svc/Block", "application/grpc", NULL, NULL, NULL);
    cli_flush(c);
    CHECK_EQ_INT(gate_wait(&G.entered, 2), 0);
    resp r = {0};
    call(c, &r, "/test.Svc/Echo", "third", 5);
    check_status(&r, PC_GRPC_RESOURCE_EXHAUSTED);
    CHECK_EQ_STR(r.grpc_message, "too many calls in flight (2); retry later");
    check_details(&r, PC_GRPC_RESOURCE_EXHAUSTED, "too many calls in flight (2); retry later");
    resp_free(&r);
    gate_open();
    CHECK(cli_until(c, &b[0].closed));
    CHECK(cli_until(c, &b[1].closed));
    check_ok(&b[0], "unblocked", 9);
    check_ok(&b[1], "unblocked", 9);
    resp_free(&b[0]), resp_free(&b[1]);
    free(f);
    cli_free(c);
    pc_grpc_stop(s);
}

static void *stop_main(void *arg)
{
    pc_grpc_stop(arg);
    return NULL;
}

static void test_stop_drains(void)
{
    gate_reset();
    pc_grpc_config cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    int port = pc_grpc_port(s);
    client *c = cli_new(port, 0, 0);
    size_t len;
    unsigned char *f = frame(0, 1, "b", 1, &len);
    resp r = {.body = f, .body_len = len};
    cli_req(c, &r, "POST", "/test.Svc/Block", "application/grpc", NULL, NULL, NULL);
    cli_flush(c);
    CHECK_EQ_INT(gate_wait(&G.entered, 1), 0);
    pthread_t th;
    pthread_create(&th, NULL, stop_main, s);
    CHECK(cli_until(c, &c->goaway));
    int64_t end = now_ms() + WAIT_MS; /* the notice, then the final GOAWAY after the PING */
    while (c->goaway < 2 && !c->eof && now_ms() < end)
        cli_pump(c, 50);
    CHECK_EQ_INT(c->goaway, 2);
    CHECK(!r.closed);
    CHECK_EQ_INT(dial(port, 0), -1); /* no longer accepting */
    gate_open();
    CHECK(cli_until(c, &r.closed));
    check_ok(&r, "unblocked", 9);
    CHECK(cli_until_eof(c));
    pthread_join(th, NULL);
    resp_free(&r);
    free(f);
    cli_free(c);
}

static void test_stop_past_drain_timeout(void)
{
    gate_reset();
    pc_grpc_config cfg = base_cfg();
    cfg.drain_timeout_ms = 100;
    pc_grpc_server *s = start(&cfg);
    client *c = cli_new(pc_grpc_port(s), 0, 0);
    size_t len;
    unsigned char *f = frame(0, 1, "b", 1, &len);
    resp r = {.body = f, .body_len = len};
    cli_req(c, &r, "POST", "/test.Svc/Block", "application/grpc", NULL, NULL, NULL);
    cli_flush(c);
    CHECK_EQ_INT(gate_wait(&G.entered, 1), 0);
    pthread_t th;
    pthread_create(&th, NULL, stop_main, s);
    CHECK(cli_until_eof(c)); /* closed at the drain deadline, the handler still blocked */
    CHECK(!r.closed);
    gate_open(); /* stop waits for the handler past the deadline */
    pthread_join(th, NULL);
    CHECK_EQ_INT(G.finished, 1);
    resp_free(&r);
    free(f);
    cli_free(c);
}

/* Sends |bytes| on a raw connection and waits until the server closes it. */
static int closed_after(int port, const char *bytes)
{
    int fd = dial(port, 0);
    if (fd < 0) return 0;
    if (*bytes) send(fd, bytes, strlen(bytes), MSG_NOSIGNAL);
    char buf[4096];
    int64_t end = now_ms() + WAIT_MS;
    int closed = 0;
    while (!closed && now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0) continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        closed = n == 0 || (n < 0 && errno == ECONNRESET);
    }
    close(fd);
    return closed;
}

static void test_not_http2(void)
{
    pc_grpc_config cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    int port = pc_grpc_port(s);
    CHECK(closed_after(port, "POST /test.Svc/Echo HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(closed_after(port, "\x01\x02garbage garbage garbage garbage garbage\r\n\r\n"));
    client *c = cli_new(port, 0, 0);
    resp r = {0};
    call(c, &r, "/test.Svc/Echo", "fine", 4);
    check_ok(&r, "fine", 4);
    resp_free(&r);
    cli_free(c);
    pc_grpc_stop(s);
}

static void test_connection_limits(void)
{
    pc_grpc_config cfg = base_cfg();
    cfg.max_connections = 2;
    cfg.idle_timeout_s = 1;
    pc_grpc_server *s = start(&cfg);
    int port = pc_grpc_port(s);
    client *c[2];
    for (int i = 0; i < 2; i++) {
        c[i] = cli_new(port, 0, 0);
        resp r = {0};
        call(c[i], &r, "/test.Svc/Echo", "x", 1);
        check_ok(&r, "x", 1);
        resp_free(&r);
    }
    CHECK(closed_after(port, "")); /* the third connection */

    /* a client GOAWAY closes the connection */
    nghttp2_submit_goaway(c[0]->h2, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    CHECK(cli_until_eof(c[0]));

    /* idle for idle_timeout_s: GOAWAY, then closed */
    CHECK(cli_until(c[1], &c[1]->goaway));
    CHECK(cli_until_eof(c[1]));
    cli_free(c[0]);
    cli_free(c[1]);
    pc_grpc_stop(s);
}

static void test_slow_reader(void)
{
    pc_grpc_config cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    int port = pc_grpc_port(s);
    client *slow = cli_new(port, 1 << 30, 16384);
    resp big = {0};
    size_t len;
    unsigned char *f = frame(0, 0, NULL, 0, &len);
    big.body = f, big.body_len = len;
    cli_req(slow, &big, "POST", "/test.Svc/Big", "application/grpc", NULL, NULL, NULL);
    for (int i = 0; i < 10; i++)
        cli_pump(slow, 20); /* the request goes out, then no reading */

    client *c = cli_new(port, 0, 0);
    for (int i = 0; i < 5; i++) {
        resp r = {0};
        call(c, &r, "/test.Svc/Echo", "quick", 5);
        check_ok(&r, "quick", 5);
        resp_free(&r);
    }
    CHECK(cli_until(slow, &big.closed));
    CHECK_EQ_INT(big.len, 5 + BIG_REPLY);
    int same = big.len == 5 + BIG_REPLY;
    for (uint32_t i = 0; same && i < BIG_REPLY; i++)
        same = big.data[5 + i] == (unsigned char)(i * 7);
    CHECK(same);
    resp_free(&big);
    free(f);
    cli_free(c);
    cli_free(slow);
    pc_grpc_stop(s);
}

static void test_start_errors(void)
{
    pc_grpc_config cfg = base_cfg();
    cfg.endpoint = "no-port";
    CHECK(pc_grpc_start(&cfg, METHODS, 1, NULL) == NULL);
    cfg = base_cfg();
    pc_grpc_server *s = start(&cfg);
    char ep[32];
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", pc_grpc_port(s));
    cfg.endpoint = ep;
    CHECK(pc_grpc_start(&cfg, METHODS, 1, NULL) == NULL); /* port in use */
    pc_grpc_stop(s);
}

int main(void)
{
    if (getenv("PC_TEST_DEBUG")) pc_log_set_level(PC_LOG_DEBUG);
    RUN(test_call);
    RUN(test_handler_threads_reused);
    RUN(test_compressed);
    RUN(test_error_reply);
    RUN(test_rejected_requests);
    RUN(test_framing_errors);
    RUN(test_reset_while_running);
    RUN(test_concurrency);
    RUN(test_max_inflight);
    RUN(test_stop_drains);
    RUN(test_stop_past_drain_timeout);
    RUN(test_not_http2);
    RUN(test_connection_limits);
    RUN(test_slow_reader);
    RUN(test_start_errors);
    return CHECK_DONE();
}

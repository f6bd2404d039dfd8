/*
 * grpc.c - the gRPC server under every gRPC receiver (see grpc.h), its HTTP/2
 * transport: unary calls over HTTP/2 cleartext with prior knowledge, or over
 * TLS (ALPN h2), on nghttp2 and, for TLS, GnuTLS through tls.h. The calls
 * themselves (framing, answers, handler threads) are grpc_call.c's.
 *
 * Data flow: socket -> nghttp2_session_mem_recv -> callbacks that feed one
 * call per stream (pc_grpc_call_*: headers, DATA, END_STREAM) -> a handler
 * thread -> the eventfd -> on_wake, which has the call submit its reply ->
 * nghttp2_session_mem_send -> the connection's out buffer -> socket.
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
 * its DATA is buffered (cb_data_chunk), so one message is never stalled by its own
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
 * Why one I/O thread: nghttp2 sessions are not thread-safe; handlers, which
 * may block, run on threads of their own (grpc_call.c).
 */
#include "grpc_call.h"
#include "http.h" /* pc_http_parse_endpoint */
#include "log.h"
#include "mem.h"
#include "sync.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define STREAM_WINDOW (1 << 20)     /* SETTINGS_INITIAL_WINDOW_SIZE */
#define OUT_HIGH (64 << 10)         /* stop pulling frames from nghttp2 past this */
#define DRAIN_PING "pcdrain!" /* 8 bytes of PING opaque data */
#define DRAIN_PING_WAIT_MS 1000 /* final GOAWAY at the PING's ack or after this */
#define ACCEPT_PAUSE_MS 100 /* out of descriptors: how long accepting pauses */
#define HANDSHAKE_TIMEOUT_MS 10000 /* a TLS client must finish its handshake by then */
#define IO_AGAIN (-1) /* conn_recv / conn_send: would block */
#define IO_ERROR (-2) /* conn_recv / conn_send: failed; the connection dies */

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
            pc_grpc_call_free(c);
        else if (!c->conn->dead && !c->expired) /* expired: answered already */
            pc_grpc_call_reply(c);
    }
}

/* ---- nghttp2 callbacks (user_data is the conn) ---------------------------- */

static int cb_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    gcall *c = pc_grpc_call_new(user, f->hd.stream_id);
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
        pc_grpc_call_headers(c);
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) pc_grpc_call_end(c);
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
    pc_grpc_call_data(c, data, len);
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
    if (c) pc_grpc_call_release(c);
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
        pc_grpc_call_release(cn->calls);
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
            if (!cn->blocked_since) cn->blocked_since = pc_grpc_now_ms();
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
    cn->idle_since = pc_grpc_now_ms();
    conn_read(cn);
}

/* Sets up a session for an accepted socket: our SETTINGS (stream limit, 1 MiB
 * stream window) and a 16 MiB connection window, so uploads do not stall. */
static void conn_open(pc_grpc_server *s, int fd, const struct sockaddr *sa, socklen_t sl)
{
    conn *cn = pc_xcalloc(1, sizeof(*cn));
    cn->s = s;
    cn->fd = fd;
    cn->idle_since = pc_grpc_now_ms();
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
            int64_t now = pc_grpc_now_ms();
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
    s->drain_started = pc_grpc_now_ms();
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
                pc_grpc_call_timeout(c, limit);
                stalled = 1;
            }
            int open = c->state == RECEIVING || (c->state == RUNNING && !c->expired);
            if (open && c->client_deadline && now >= c->client_deadline) pc_grpc_call_expire(c);
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
    int64_t now = pc_grpc_now_ms();
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
        int64_t wait = s->accept_resume ? ACCEPT_PAUSE_MS : 1000,
                left = s->next_check - pc_grpc_now_ms();
        return (int)(left < 0 ? 0 : left < wait ? left : wait);
    }
    int64_t left = s->deadline - pc_grpc_now_ms();
    if (left <= 0) return s->conns ? 0 : -1;
    return left < 1000 ? (int)left : 1000;
}

/* The I/O thread: until stop, and after it until every connection closed and
 * every handler thread was joined. */
static void *io_main(void *arg)
{
    pc_grpc_server *s = arg;
    pc_thread_name("grpc-io");
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
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->exit_cv);
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
    pc_metrics_codes_init(&s->codes, cfg->metrics, "prela_grpc_server_requests",
                          "gRPC calls answered, by listener and grpc-status.", cfg->name,
                          "rpc_grpc_status_code");
    if (s->cfg.max_msg <= 0) s->cfg.max_msg = 4 << 20;
    if (s->cfg.max_concurrent_streams <= 0) s->cfg.max_concurrent_streams = 100;
    if (s->cfg.max_inflight <= 0) s->cfg.max_inflight = 64;
    if (s->cfg.max_connections <= 0) s->cfg.max_connections = 1024;
    if (s->cfg.idle_timeout_s <= 0) s->cfg.idle_timeout_s = 300;
    if (s->cfg.request_timeout_ms <= 0) s->cfg.request_timeout_ms = 30000;
    if (s->cfg.max_conn_buffer <= 0) s->cfg.max_conn_buffer = 16 << 20;
    if (s->cfg.max_conn_buffer < s->cfg.max_msg + 5) s->cfg.max_conn_buffer = s->cfg.max_msg + 5;
    if (s->cfg.max_conn_buffer > INT32_MAX) s->cfg.max_conn_buffer = INT32_MAX;
    s->next_check = pc_grpc_now_ms() + 1000;
    if (s->cfg.drain_timeout_ms < 0) s->cfg.drain_timeout_ms = 0;
    s->methods = methods;
    s->n_methods = n;
    s->ctx = ctx;
    s->lfd = s->efd = s->ep = -1;
    pthread_mutex_init(&s->mu, NULL);
    pc_cond_init_mono(&s->work_cv);
    pthread_cond_init(&s->exit_cv, NULL);
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
    pc_grpc_wake(s);
    pthread_join(s->io, NULL);
    /* no call runs now (the I/O thread ends when none does): let the parked
     * handler threads go, and wait until the last one left (grpc_call.c) */
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_broadcast(&s->work_cv);
    while (s->handlers > 0)
        pthread_cond_wait(&s->exit_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    server_free(s);
}

/*
 * http.c - the HTTP/1.1 server under every HTTP receiver (see http.h).
 *
 * libmicrohttpd calls access_cb several times per request: first with no body
 * (we route, check the method and Content-Length, and set up a request arena),
 * then once per body chunk (appended to one growing arena block, capped at
 * max_body on the wire), then once with no more data (we decompress under the
 * same cap, call the handler, queue its response). Per-request state is freed
 * in completed_cb, which also runs when the client goes away mid-request.
 * Early errors (404, 405, 413 from Content-Length) are answered on the first
 * call, so an oversized or misrouted body is never read.
 *
 * Memory budget: each request arena is charged to cfg->budget (budget.h). The
 * declared Content-Length is reserved on the first call (429 at once when it
 * does not fit), a chunked body as it grows (429 as soon as a growth is
 * refused, without reading the rest), the inflated body as it inflates; a
 * refusal anywhere, decoding included, is answered 429 + Retry-After. With
 * hold_body the answer's body is charged too (pc_http_hold_body: by the
 * handler as it grows, the rest after it), held by the arena, which dies in
 * completed_cb once the answer went out.
 *
 * Slow clients: libmicrohttpd enforces the connection limits (total and per
 * address) and the idle timeout, which any byte resets. The whole-request
 * deadline is ours: each connection is tracked from NOTIFY_CONNECTION (STARTED
 * to CLOSED) with the time its current request began (the connection opening or
 * the previous request completing) and whether its handler is running or its
 * response going out. A watchdog thread cuts, with shutdown(2), every
 * connection whose request is still arriving past request_timeout; the
 * connection's own thread then sees the socket end and closes it. libmicrohttpd
 * reports CLOSED before it closes the socket, and both sides hold watch_mu, so
 * the watchdog never touches a descriptor that was closed and reused.
 *
 * Why a thread per connection and not libmicrohttpd's thread pool: a pool
 * thread runs access_cb inline for all of its connections, and handlers block
 * until exporters made the data durable, so one slow export would stall every
 * connection of that thread. Making a pool work needs suspend/resume and a
 * second pool for handlers; instead the limits above bound the threads, and an
 * idle connection's thread costs a few pages of stack. Connections are polled
 * with poll(2), not select(2), so descriptors past FD_SETSIZE still work.
 *
 * TLS is libmicrohttpd's (GnuTLS, the PEM text from tls.c in memory). With a
 * client CA it only *requests* a client certificate, so the first call of
 * every request verifies the session's peer (client_refused) before anything
 * else and answers 403 when there is no valid certificate.
 */
#include "http.h"
#include "decompress.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <poll.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define WATCH_TICK_MS 100 /* the deadline watchdog's period, at most */

/* One open connection, as the deadline watchdog sees it (under watch_mu). */
typedef struct watched {
    int fd;
    int busy;         /* the handler runs or the response goes out: no deadline */
    int cut;          /* shut down once already */
    int64_t since_ms; /* when the request now arriving began */
    struct watched *prev, *next;
} watched;

struct pc_http_server {
    struct MHD_Daemon *daemon;
    pc_http_config cfg;
    pc_strlist cors; /* allowed origins; one "*" = any (then never with credentials) */
    const pc_http_route *routes;
    size_t n_routes;
    void *ctx;
    int port;
    pc_tls_server *tls; /* NULL: plaintext */
    int mutual;         /* client certificates required */
    pthread_mutex_t watch_mu; /* guards watch and stopping */
    pthread_cond_t watch_cv;
    watched *watch;
    int stopping;
    pthread_t watchdog;
    int watchdog_started;
    pc_metrics_codes codes; /* answers by status code (metrics.h) */
};

typedef struct request {
    pc_http_req req;
    const pc_http_route *route;
    size_t cap;
    int early_status; /* answered on the first call */
    char early_msg[160];
    int too_big;
    int over_budget; /* the memory budget refused the body (answered 429 at once) */
    int growable;    /* req.body is a pc_arena_try_grow block */
} request;

#define RETRY_OVER_BUDGET_S 1
#define MSG_OVER_BUDGET "the collector is over its memory budget; retry later"

const char *pc_http_header(const pc_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int pc_http_socket(const pc_http_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

const char *pc_http_query(const pc_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct prefixed {
    const char *prefix;
    size_t len;
    int n;
    const char *name, *value;
} prefixed;

static enum MHD_Result prefixed_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    prefixed *p = cls;
    if (key && strncmp(key, p->prefix, p->len) == 0 && p->n++ == 0) {
        p->name = key;
        p->value = value;
    }
    return MHD_YES;
}

int pc_http_query_prefixed(const pc_http_req *r, const char *prefix, const char **name,
                           const char **value)
{
    prefixed p = {prefix, strlen(prefix), 0, NULL, NULL};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, prefixed_cb, &p);
    *name = p.name;
    *value = p.value;
    return p.n;
}

void pc_http_error_detail(pc_http_resp *resp, int status, const char *msg)
{
    resp->status = status;
    resp->content_type = "application/json";
    pc_buf_reset(&resp->body);
    pc_buf_puts(&resp->body, "{\"detail\":");
    pc_json_write_cstr(&resp->body, msg);
    pc_buf_putc(&resp->body, '}');
}

void pc_http_set_limits(pc_http_config *c, const pc_http_limits *l)
{
    c->max_connections = (int)l->max_connections;
    c->max_connections_per_address = (int)l->max_connections_per_address;
    c->request_timeout_ms = l->request_timeout_ms;
    c->timeout_s = (int)((l->idle_timeout_ms + 999) / 1000);
}

/*
 * Once per connection thread (a thread serves one connection): names it
 * after the server (cfg.name) and lowers its CPU priority by cfg.nice (Linux
 * keeps a nice value per thread). A failure only logs: the handler still runs.
 */
static void thread_setup(const pc_http_server *s)
{
    static __thread int done;
    if (done) return;
    done = 1;
    pc_thread_name(s->cfg.name);
    if (s->cfg.nice <= 0) return;
    int err = pc_thread_lower_priority(s->cfg.nice);
    if (err)
        pc_log(PC_LOG_WARN, s->cfg.name, "cannot lower a connection thread's priority: %s",
               strerror(err));
}

/* Marks the request of |conn| as no longer arriving (|busy|), or as a new one
 * beginning now. */
static void watch_mark(pc_http_server *s, struct MHD_Connection *conn, int busy)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    watched *w = ci ? ci->socket_context : NULL;
    if (!w) return;
    pthread_mutex_lock(&s->watch_mu);
    w->busy = busy;
    if (!busy) w->since_ms = pc_time_mono_ns() / 1000000;
    pthread_mutex_unlock(&s->watch_mu);
}

/* NOTIFY_CONNECTION: tracks a connection from STARTED to CLOSED. */
static void connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    pc_http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci) return;
        watched *w = pc_xcalloc(1, sizeof(*w));
        w->fd = ci->connect_fd;
        w->since_ms = pc_time_mono_ns() / 1000000;
        pthread_mutex_lock(&s->watch_mu);
        w->next = s->watch;
        if (s->watch) s->watch->prev = w;
        s->watch = w;
        pthread_mutex_unlock(&s->watch_mu);
        *socket_context = w;
        return;
    }
    watched *w = *socket_context;
    if (!w) return;
    pthread_mutex_lock(&s->watch_mu);
    *(w->prev ? &w->prev->next : &s->watch) = w->next;
    if (w->next) w->next->prev = w->prev;
    pthread_mutex_unlock(&s->watch_mu);
    free(w);
    *socket_context = NULL;
}

/* The watchdog thread: cuts connections whose request is overdue. */
static void *watchdog_main(void *arg)
{
    pc_http_server *s = arg;
    pc_thread_name("http-watchdog");
    int64_t limit = s->cfg.request_timeout_ms;
    int64_t tick = limit / 4 < WATCH_TICK_MS ? (limit / 4 > 10 ? limit / 4 : 10) : WATCH_TICK_MS;
    pthread_mutex_lock(&s->watch_mu);
    while (!s->stopping) {
        int64_t now = pc_time_mono_ns() / 1000000;
        int cut = 0;
        for (watched *w = s->watch; w; w = w->next) {
            if (w->busy || w->cut || now - w->since_ms < limit) continue;
            w->cut = 1;
            shutdown(w->fd, SHUT_RDWR);
            cut++;
        }
        if (cut)
            pc_log(PC_LOG_DEBUG, s->cfg.name, "cut %d connection(s): request not received within %lld ms",
                   cut, (long long)limit);
        int rc = pc_cond_wait_until(&s->watch_cv, &s->watch_mu,
                                    pc_time_mono_ns() + tick * 1000000LL);
        (void)rc; /* ETIMEDOUT or a stop signal: both loop */
    }
    pthread_mutex_unlock(&s->watch_mu);
    return NULL;
}

static void error(pc_http_server *s, const pc_http_req *req, pc_http_resp *resp, int status,
                  const char *msg)
{
    if (s->cfg.error) s->cfg.error(s->ctx, req, resp, status, msg);
    else pc_http_error_detail(resp, status, msg);
}

/* Finds the route for |method| |path|. When none matches, |allow| (if not NULL)
 * receives the methods that |path| does accept; empty means an unknown path. */
static const pc_http_route *route_find(pc_http_server *s, const char *method, const char *path,
                                       pc_buf *allow)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        const pc_http_route *r = &s->routes[i];
        size_t pl = strlen(r->path);
        int match = r->prefix ? strncmp(path, r->path, pl) == 0 && path[pl] != '\0'
                              : strcmp(path, r->path) == 0;
        if (!match) continue;
        if (method && strcmp(method, r->method) == 0) return r;
        if (allow) {
            if (allow->len) pc_buf_puts(allow, ", ");
            pc_buf_puts(allow, r->method);
        }
    }
    return NULL;
}

/*
 * Adds the CORS headers for the request's Origin when it is allowed; with
 * |preflight| also the methods and headers a browser may use. "*" answers any
 * origin with a literal "*" and never with Allow-Credentials (browsers refuse
 * that pair, and echoing the origin with credentials would open every key's
 * data to every site); a listed origin is echoed with credentials allowed.
 */
static void add_cors(struct MHD_Connection *conn, pc_http_server *s, struct MHD_Response *r,
                     int preflight)
{
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (!s->cors.n || !origin) return;
    int any = s->cors.n == 1 && !strcmp(s->cors.v[0], "*"), ok = any;
    for (size_t i = 0; i < s->cors.n && !ok; i++) ok = !strcmp(s->cors.v[i], origin);
    if (!ok) return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", any ? "*" : origin);
    if (!any) {
        MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
        MHD_add_response_header(r, "Vary", "Origin");
    }
    if (preflight) {
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Authorization, X-API-Key, Content-Type, Content-Encoding, "
                                "X-Prela-Project-Id");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    }
}

/*
 * Parses cors_origins: "*", a comma list ("https://a.example, https://b.example")
 * or a JSON list (["https://a.example"], the original backend's CORS_ORIGINS).
 */
static void parse_cors(const char *text, pc_strlist *out)
{
    memset(out, 0, sizeof(*out));
    if (!text) return;
    const char *p = text;
    while (*p == ' ') p++;
    int json = *p == '[';
    if (json) p++;
    while (*p) {
        size_t l = strcspn(p, ",]");
        const char *e = p + l;
        while (l && (*p == ' ' || *p == '"' || *p == '\'')) p++, l--;
        while (l && (p[l - 1] == ' ' || p[l - 1] == '"' || p[l - 1] == '\'')) l--;
        if (l) {
            out->v = pc_xrealloc(out->v, (out->n + 1) * sizeof(char *));
            out->v[out->n++] = pc_xstrndup(p, l);
        }
        if (!*e || *e == ']') break;
        p = e + 1;
    }
}

#define STREAM_BLOCK 4096 /* the most bytes one call of a stream's read may give */
_Static_assert(PC_HTTP_STREAM_END == MHD_CONTENT_READER_END_OF_STREAM &&
                   PC_HTTP_STREAM_CUT == MHD_CONTENT_READER_END_WITH_ERROR,
               "http.h's stream results are libmicrohttpd's");

static enum MHD_Result send_resp(struct MHD_Connection *conn, pc_http_server *s, pc_http_resp *resp)
{
    struct MHD_Response *r;
    if (resp->stream.read) {
        /* streamed: our read has the shape of libmicrohttpd's
         * ContentReaderCallback (same end / error values); sent chunked */
        pc_buf_free(&resp->body);
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                              resp->stream.read,
                                              resp->stream.ctx, resp->stream.free);
        if (!r) {
            if (resp->stream.free) resp->stream.free(resp->stream.ctx);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Cache-Control", "no-cache");
    } else {
        size_t len;
        char *body = pc_buf_steal(&resp->body, &len);
        r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    }
    MHD_add_response_header(r, "Content-Type",
                            resp->content_type ? resp->content_type : "application/json");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    if (resp->retry_after > 0) {
        char tmp[16];
        snprintf(tmp, sizeof(tmp), "%d", resp->retry_after);
        MHD_add_response_header(r, "Retry-After", tmp);
    }
    if (resp->allow) MHD_add_response_header(r, "Allow", resp->allow);
    if (resp->www_authenticate)
        MHD_add_response_header(r, "WWW-Authenticate", resp->www_authenticate);
    for (const char *const *h = resp->headers; h && h[0] && h[1]; h += 2)
        MHD_add_response_header(r, h[0], h[1]);
    add_cors(conn, s, r, 0);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    pc_metrics_codes_add(&s->codes, resp->status);
    return rc;
}

static enum MHD_Result answer_error(struct MHD_Connection *conn, pc_http_server *s, request *rq,
                                    int status, const char *msg, const char *allow)
{
    pc_http_resp resp = {.status = status, .allow = allow, .body = PC_BUF_INIT};
    error(s, &rq->req, &resp, status, msg);
    resp.allow = allow;
    return send_resp(conn, s, &resp);
}

/* Answers a refused credential: 401 (with WWW-Authenticate), 403 or 429. The
 * body, if any, is never read: the connection closes after the answer. */
static enum MHD_Result answer_auth(struct MHD_Connection *conn, pc_http_server *s, request *rq,
                                   pc_auth_status st, const char *msg, int retry_after)
{
    int status = st == PC_AUTH_FORBIDDEN ? 403 : st == PC_AUTH_LIMITED ? 429 : 401;
    pc_http_resp resp = {.status = status, .body = PC_BUF_INIT};
    error(s, &rq->req, &resp, status, msg);
    if (st == PC_AUTH_LIMITED) resp.retry_after = retry_after;
    if (status == 401) resp.www_authenticate = "Bearer";
    return send_resp(conn, s, &resp);
}

/* Answers 429 + Retry-After: the memory budget (budget.h) refused the request's
 * body, its inflation or its decoding. */
static enum MHD_Result answer_over_budget(struct MHD_Connection *conn, pc_http_server *s,
                                          request *rq)
{
    pc_http_resp resp = {.status = 429, .body = PC_BUF_INIT};
    error(s, &rq->req, &resp, 429, MSG_OVER_BUDGET);
    resp.retry_after = RETRY_OVER_BUDGET_S;
    return send_resp(conn, s, &resp);
}

/* Writes |n| bytes of |p| to the connection's socket (or its TLS session),
 * waiting at most |ms| milliseconds for room: 0, or -1. */
static int write_raw(struct MHD_Connection *conn, int tls, const char *p, size_t n, int ms)
{
    const union MHD_ConnectionInfo *fdi =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ti =
        tls ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION) : NULL;
    if (!fdi || (tls && (!ti || !ti->tls_session))) return -1;
    int fd = fdi->connect_fd;
    while (n) {
        ssize_t k = tls ? gnutls_record_send((gnutls_session_t)ti->tls_session, p, n)
                        : send(fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        int again = tls ? (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
                        : (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (!again || poll(&pfd, 1, ms) <= 0) return -1;
    }
    /* the end of the stream follows the answer: close_notify, or the FIN */
    if (tls) gnutls_bye((gnutls_session_t)ti->tls_session, GNUTLS_SHUT_WR);
    else shutdown(fd, SHUT_WR);
    return 0;
}

/*
 * Answers 429 + Retry-After in the middle of a request body and closes the
 * connection, so the rest of the body is never read. Why by hand:
 * libmicrohttpd (0.9.75) only queues a response before the body or after all
 * of it, so the answer is written to the socket (or TLS session) directly
 * (the connection's own thread runs this, and libmicrohttpd writes nothing
 * while a body arrives) and MHD_NO makes libmicrohttpd close the connection.
 * No CORS headers: browsers do not send chunked bodies.
 */
static enum MHD_Result refuse_mid_body(struct MHD_Connection *conn, pc_http_server *s,
                                       request *rq)
{
    pc_http_resp resp = {.status = 429, .body = PC_BUF_INIT};
    error(s, &rq->req, &resp, 429, MSG_OVER_BUDGET);
    pc_buf out = PC_BUF_INIT;
    char head[300];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 429 Too Many Requests\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nRetry-After: %d\r\nConnection: close\r\n"
                      "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n\r\n",
                      resp.content_type ? resp.content_type : "application/json", resp.body.len,
                      RETRY_OVER_BUDGET_S);
    pc_buf_append(&out, head, (size_t)hn);
    pc_buf_append(&out, resp.body.data ? resp.body.data : "", resp.body.len);
    if (write_raw(conn, s->tls != NULL, out.data, out.len, 1000))
        pc_log(PC_LOG_DEBUG, s->cfg.name, "could not write a 429 to a client mid-body");
    pc_buf_free(&out);
    pc_buf_free(&resp.body);
    return MHD_NO;
}

/* mTLS: 0 when the connection of |conn| presented a client certificate that
 * verifies against the client CA; else -1 with the reason in |why|. */
static int client_refused(struct MHD_Connection *conn, char *why, size_t whylen)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) {
        snprintf(why, whylen, "no TLS session");
        return -1;
    }
    return pc_tls_verify_peer(ci->tls_session, why, whylen);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    pc_http_server *s = cls;
    request *rq = *con_cls;
    if (!rq) {
        rq = pc_xcalloc(1, sizeof(*rq));
        *con_cls = rq;
        rq->req.conn = conn;
        rq->req.method = method;
        rq->req.path = url;
        char why[300];
        if (s->mutual && client_refused(conn, why, sizeof(why))) {
            pc_log(PC_LOG_DEBUG, s->cfg.name, "refused a request: %s", why);
            return answer_error(conn, s, rq, 403, why, NULL);
        }
        if (strcmp(method, "OPTIONS") == 0 && s->cors.n) {
            struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
            add_cors(conn, s, r, 1);
            enum MHD_Result rc = MHD_queue_response(conn, 204, r);
            MHD_destroy_response(r);
            pc_metrics_codes_add(&s->codes, 204);
            return rc;
        }
        rq->route = route_find(s, method, url, NULL);
        if (!rq->route) {
            pc_buf allow = PC_BUF_INIT;
            route_find(s, NULL, url, &allow);
            enum MHD_Result r;
            if (allow.len) {
                char msg[160];
                snprintf(msg, sizeof(msg), "method %s not allowed on %s (allowed: %s)", method,
                         url, allow.data);
                r = answer_error(conn, s, rq, 405, msg, allow.data);
            } else {
                char msg[200];
                snprintf(msg, sizeof(msg), "no such path: %.150s", url);
                r = answer_error(conn, s, rq, 404, msg, NULL);
            }
            pc_buf_free(&allow);
            return r;
        }
        if (rq->route->scope) {
            char msg[200];
            int retry = 0;
            pc_auth_status st = pc_auth_check(
                s->cfg.auth, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-API-Key"),
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
                rq->route->scope, &rq->req.principal, msg, sizeof(msg), &retry);
            if (st != PC_AUTH_OK) return answer_auth(conn, s, rq, st, msg, retry);
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        long long clen = cl ? atoll(cl) : 0;
        if (clen > s->cfg.max_body) {
            char msg[160];
            snprintf(msg, sizeof(msg), "request body of %lld bytes exceeds the limit of %lld bytes",
                     clen, (long long)s->cfg.max_body);
            return answer_error(conn, s, rq, 413, msg, NULL);
        }
        /* The declared body is charged to the memory budget before it is read. */
        rq->req.arena = pc_arena_create(clen > 0 ? (size_t)clen + 4096 : 16384);
        pc_arena_set_budget(rq->req.arena, s->cfg.budget);
        if (clen > 0) {
            rq->cap = (size_t)clen;
            if (pc_arena_prepay(rq->req.arena, rq->cap + 4096) ||
                !(rq->req.body = pc_arena_try_alloc(rq->req.arena, rq->cap + 1)))
                return answer_over_budget(conn, s, rq);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rq->too_big || rq->over_budget) return MHD_YES;
        if ((int64_t)(rq->req.body_len + n) > s->cfg.max_body) {
            rq->too_big = 1;
            return MHD_YES;
        }
        if (rq->req.body_len + n > rq->cap) {
            /* Only a chunked body grows (one that also declares a Content-Length
             * outgrows the block allocated for it): one growable block, by half
             * at a time. */
            size_t cap = rq->cap ? rq->cap + rq->cap / 2 : 16384;
            if (cap < rq->req.body_len + n) cap = rq->req.body_len + n;
            if ((int64_t)cap > s->cfg.max_body) cap = (size_t)s->cfg.max_body;
            char *body = pc_arena_try_grow(rq->req.arena, rq->growable ? rq->req.body : NULL,
                                           cap + 1);
            if (body && !rq->growable && rq->req.body_len)
                memcpy(body, rq->req.body, rq->req.body_len);
            rq->growable = body != NULL;
            if (!body) {
                /* Refused at once: 429 now and the connection closes, so the
                 * rest is never read (see refuse_mid_body). */
                rq->over_budget = 1;
                return refuse_mid_body(conn, s, rq);
            }
            rq->req.body = body;
            rq->cap = cap;
        }
        memcpy(rq->req.body + rq->req.body_len, upload_data, n);
        rq->req.body_len += n;
        return MHD_YES;
    }

    /* The whole body is here. */
    if (rq->too_big) {
        char msg[160];
        snprintf(msg, sizeof(msg), "request body exceeds the limit of %lld bytes",
                 (long long)s->cfg.max_body);
        return answer_error(conn, s, rq, 413, msg, NULL);
    }
    if (rq->over_budget) return answer_over_budget(conn, s, rq);
    if (!rq->req.body && !(rq->req.body = pc_arena_try_alloc(rq->req.arena, 1)))
        return answer_over_budget(conn, s, rq);
    rq->req.body[rq->req.body_len] = '\0';
    const char *ce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    pc_encoding enc = pc_encoding_parse(ce);
    if (enc == PC_ENC_UNKNOWN) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "Content-Encoding '%.60s' is not supported (use gzip, zstd, deflate or identity)",
                 ce);
        return answer_error(conn, s, rq, 415, msg, NULL);
    }
    if (enc != PC_ENC_IDENTITY) {
        char why[120], *out;
        size_t out_len;
        int rc = pc_decompress(rq->req.arena, enc, rq->req.body, rq->req.body_len,
                               s->cfg.max_body, &out, &out_len, why, sizeof(why));
        if (rc == PC_DECOMP_OVER_BUDGET) return answer_over_budget(conn, s, rq);
        if (rc == PC_DECOMP_TOO_BIG) {
            char msg[160];
            snprintf(msg, sizeof(msg), "decompressed request body exceeds the limit of %lld bytes",
                     (long long)s->cfg.max_body);
            return answer_error(conn, s, rq, 413, msg, NULL);
        }
        if (rc != PC_DECOMP_OK) {
            char msg[200];
            snprintf(msg, sizeof(msg), "invalid %s body: %s", ce, why);
            return answer_error(conn, s, rq, 400, msg, NULL);
        }
        rq->req.body = out;
        rq->req.body_len = out_len;
    }
    pc_http_resp resp = {.status = 200, .content_type = "application/json", .body = PC_BUF_INIT};
    watch_mark(s, conn, 1); /* arrived: the deadline no longer applies */
    thread_setup(s);
    rq->route->fn(s->ctx, &rq->req, &resp);
    if (s->cfg.hold_body && !resp.stream.read) pc_http_hold_body(&rq->req, &resp);
    if (rq->req.arena && pc_arena_over(rq->req.arena) && resp.status != 429) {
        /* The handler kept the arena and the budget refused part of its work
         * (a decoder that stopped early): whatever it answered, retry later
         * (a handler that answered 429 itself said why). */
        pc_buf_free(&resp.body);
        if (resp.stream.free) resp.stream.free(resp.stream.ctx);
        return answer_over_budget(conn, s, rq);
    }
    return send_resp(conn, s, &resp);
}

int pc_http_hold_body(pc_http_req *req, pc_http_resp *resp)
{
    if (resp->body.cap <= resp->held) return 0;
    if (!req->arena || pc_arena_hold(req->arena, resp->body.cap - resp->held)) return -1;
    resp->held = resp->body.cap;
    return 0;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    watch_mark(cls, conn, 0); /* the next request on this connection begins */
    request *rq = *con_cls;
    if (!rq) return;
    pc_arena_destroy(rq->req.arena);
    free(rq);
    *con_cls = NULL;
}

static void free_cors(pc_http_server *s)
{
    for (size_t i = 0; i < s->cors.n; i++) free(s->cors.v[i]);
    free(s->cors.v);
}

int pc_http_parse_endpoint(const char *endpoint, char *hostbuf, size_t hostlen, int *port)
{
    const char *colon = strrchr(endpoint, ':');
    if (!colon || colon == endpoint) return -1;
    size_t hl = (size_t)(colon - endpoint);
    if (endpoint[0] == '[' && hl >= 2 && endpoint[hl - 1] == ']') {
        endpoint++;
        hl -= 2;
    }
    if (hl >= hostlen) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535) return -1;
    memcpy(hostbuf, endpoint, hl);
    hostbuf[hl] = '\0';
    *port = (int)p;
    return 0;
}

pc_http_server *pc_http_start(const pc_http_config *cfg, const pc_http_route *routes, size_t n,
                              void *ctx)
{
    char host[256];
    int port;
    if (pc_http_parse_endpoint(cfg->endpoint, host, sizeof(host), &port)) {
        pc_log(PC_LOG_ERROR, cfg->name, "endpoint '%s' is not host:port", cfg->endpoint);
        return NULL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host[0] ? host : NULL, portstr, &hints, &ai) != 0 || !ai) {
        pc_log(PC_LOG_ERROR, cfg->name, "endpoint '%s': cannot resolve host '%s'", cfg->endpoint,
               host);
        return NULL;
    }
    pc_http_server *s = pc_xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    pc_metrics_codes_init(&s->codes, cfg->metrics, "prela_http_server_requests",
                          "HTTP requests answered, by listener and status code.", cfg->name,
                          "http_response_status_code");
    parse_cors(cfg->cors_origins, &s->cors);
    s->routes = routes;
    s->n_routes = n;
    s->ctx = ctx;
    pthread_mutex_init(&s->watch_mu, NULL);
    pc_cond_init_mono(&s->watch_cv);
    if (s->cfg.request_timeout_ms <= 0) s->cfg.request_timeout_ms = 30000;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_SUPPRESS_DATE_NO_CLOCK;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls_opts[4] = {{MHD_OPTION_END, 0, NULL}};
    if (pc_tls_enabled(cfg->tls)) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            pc_log(PC_LOG_ERROR, cfg->name, "this libmicrohttpd was built without TLS");
            freeaddrinfo(ai);
            pc_http_stop(s);
            return NULL;
        }
        if (!(s->tls = pc_tls_server_create(cfg->tls, cfg->name))) {
            freeaddrinfo(ai);
            pc_http_stop(s);
            return NULL;
        }
        flags |= MHD_USE_TLS;
        int k = 0;
        tls_opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                                (void *)pc_tls_server_cert_pem(s->tls)};
        tls_opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
                                                (void *)pc_tls_server_key_pem(s->tls)};
        if (pc_tls_server_ca_pem(s->tls)) {
            s->mutual = 1;
            tls_opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0,
                                                    (void *)pc_tls_server_ca_pem(s->tls)};
        }
        tls_opts[k] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, access_cb, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->max_connections > 0 ? cfg->max_connections : 1024),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)(cfg->max_connections_per_address > 0 ? cfg->max_connections_per_address : 0),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->timeout_s > 0 ? cfg->timeout_s : 60),
        MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s,
        MHD_OPTION_NOTIFY_CONNECTION, connection_cb, s,
        MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        pc_log(PC_LOG_ERROR, cfg->name, "cannot listen on %s (address in use or not permitted)",
               cfg->endpoint);
        pc_http_stop(s);
        return NULL;
    }
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s)) {
        pc_log(PC_LOG_ERROR, cfg->name, "cannot start the request deadline thread");
        pc_http_stop(s);
        return NULL;
    }
    s->watchdog_started = 1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : port;
    pc_log(PC_LOG_INFO, cfg->name, "listening on %s (port %d, %s)%s", cfg->endpoint, s->port,
           s->mutual ? "HTTPS, client certificates required (mTLS)"
           : s->tls  ? "HTTPS (TLS)"
                     : "plaintext HTTP",
           pc_auth_enabled(cfg->auth) ? ", API keys required" : "");
    pc_auth_warn_if_exposed(cfg->auth, cfg->name, cfg->endpoint);
    return s;
}

int pc_http_port(const pc_http_server *s)
{
    return s->port;
}

void pc_http_stop(pc_http_server *s)
{
    if (!s) return;
    if (s->daemon) MHD_stop_daemon(s->daemon); /* every connection reports CLOSED */
    if (s->watchdog_started) {
        pthread_mutex_lock(&s->watch_mu);
        s->stopping = 1;
        pthread_cond_signal(&s->watch_cv);
        pthread_mutex_unlock(&s->watch_mu);
        pthread_join(s->watchdog, NULL);
    }
    pthread_mutex_destroy(&s->watch_mu);
    pthread_cond_destroy(&s->watch_cv);
    pc_tls_server_destroy(s->tls);
    free_cors(s);
    free(s);
}

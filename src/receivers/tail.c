/*
 * tail.c - the live tail (see tail.h): one poller over the store, a bounded
 * queue per subscriber, streams read on their connections' threads.
 *
 * Reading order: the subscribers and their queues; the scan (one list read
 * of the watched window, a hash table over it, compared with the previous
 * scan's); the poller thread; the stream (read and free callbacks); the
 * handler; create and destroy.
 *
 * Ownership: a client is created by the handler and freed by its stream's
 * free callback (http.c runs it once, before the socket closes), which also
 * unlinks it; the poller only touches linked clients, under mu. A scan's rows
 * and strings live in the scan's arena; the poller keeps the previous scan to
 * compare with and frees it when the next one replaces it.
 */
#include "tail.h"

#include "hash.h"
#include "log.h"
#include "mem.h"
#include "query_json.h"
#include "span.h"
#include "sync.h"
#include "timefmt.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define PAGE 1000                 /* traces one list read returns */
#define MAX_FACT_TRACES 500       /* traces per poll whose spans are read for span_type/model */
#define MAX_FACT_SPANS 10000      /* spans read of one trace for them */
#define MAX_MODELS 16             /* models remembered per trace */
#define WAKE_MS 1000              /* a waiting stream checks its client this often */
#define RETRY_FULL_S 5            /* Retry-After of the 503 when full */
#define SOCKET_SNDBUF (64 * 1024) /* a tail socket's kernel send buffer (Linux doubles it) */

/* |cv| waits on |mu| for at most |ms| (monotonic deadline). */
static void wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    pc_cond_wait_until(cv, mu, pc_time_mono_ns() + ms * 1000000LL);
}

/* ------------------------------------------------------------- clients -- */

typedef struct client {
    struct client *prev, *next;
    /* filters, heap copies; NULL = any */
    char *project, *service, *status, *session, *user, *model;
    int span_type; /* pc_span_type, -1 = any */
    pc_buf q;      /* bytes to send, from q_off */
    size_t q_off;
    size_t charged;  /* bytes of q charged to the budget */
    int ready;       /* a scan has run since it came: ": ready" queued */
    int dropped;     /* its queue overflowed: the stream is cut */
    int fd;          /* its socket, for the cut */
    int64_t last_ms; /* when a byte last went out to it */
} client;

/* One trace of a scan; strings in the scan's arena. */
typedef struct trow {
    const char *project, *trace_id, *service, *status, *session, *user;
    const char *json; /* its object, as GET /api/v1/traces writes it */
    size_t json_len;
    uint64_t h;     /* of (project, trace id) */
    uint64_t fp;    /* of json: any change of its summary changes it */
    int changed;    /* new or changed since the previous scan */
    int facts;      /* types and models read */
    unsigned types; /* bit (1 << pc_span_type) per span type it has */
    const char *models[MAX_MODELS];
    int n_models;
} trow;

typedef struct scan {
    pc_arena *arena;
    trow *rows;
    int n, cap;
    int *slots; /* hash table over rows: index + 1, 0 = empty */
    size_t mask;
    pc_trace_key last; /* the last row's, for the next page */
    pc_buf tmp;
} scan;

struct pc_tail {
    pc_tail_config cfg;
    char *name;
    pthread_mutex_t mu;
    pthread_cond_t data_cv; /* streams wait here for bytes */
    pthread_cond_t poll_cv; /* the poller waits here for clients */
    client *clients;
    int n_clients;
    int stopping; /* streams end; new ones refused */
    int quit;     /* the poller ends */
    pthread_t poller;
    int started;
    uint64_t seq; /* event ids */
    pc_gauge *g_clients;
    pc_counter *c_dropped, *c_events;
};

static void client_free(client *c)
{
    free(c->project);
    free(c->service);
    free(c->status);
    free(c->session);
    free(c->user);
    free(c->model);
    pc_buf_free(&c->q);
    free(c);
}

/* Cuts |c|: its queue is freed and its socket shut down, so its stream ends
 * now even when the client reads nothing. Under mu. */
static void drop(pc_tail *t, client *c)
{
    c->dropped = 1;
    pc_budget_release(t->cfg.budget, c->charged);
    c->charged = 0;
    pc_buf_free(&c->q);
    c->q_off = 0;
    /* the fd stays valid until the stream's free, which takes mu first */
    if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
    if (t->c_dropped) pc_counter_add(t->c_dropped, 1);
    pc_log(PC_LOG_WARN, t->name,
           "dropped a live tail client: it read too slowly (its queue passed "
           "tail_client_buffer, %lld bytes)",
           (long long)t->cfg.client_buffer);
}

/* Queues |n| bytes for |c|, or drops it when they do not fit its buffer or
 * the memory budget. Under mu. */
static void enqueue(pc_tail *t, client *c, const char *p, size_t n)
{
    if (c->dropped) return;
    size_t pending = c->q.len - c->q_off;
    if (pending + n > (size_t)t->cfg.client_buffer || pc_budget_reserve(t->cfg.budget, n)) {
        drop(t, c);
        return;
    }
    if (c->q_off && c->q_off >= c->q.len / 2) { /* keep the buffer near what is pending */
        memmove(c->q.data, c->q.data + c->q_off, pending);
        c->q.len = pending;
        c->q_off = 0;
    }
    pc_buf_append(&c->q, p, n);
    c->charged += n;
}

static int has_model(const trow *r, const char *m)
{
    for (int i = 0; i < r->n_models; i++)
        if (strcmp(r->models[i], m) == 0) return 1;
    return 0;
}

static int eq(const char *want, const char *have)
{
    return !want || strcmp(want, have ? have : "") == 0;
}

/* Whether trace |r| passes |c|'s filters (span type and model need r's facts). */
static int matches(const client *c, const trow *r)
{
    if (!eq(c->project, r->project) || !eq(c->service, r->service) || !eq(c->status, r->status) ||
        !eq(c->session, r->session) || !eq(c->user, r->user))
        return 0;
    if (c->span_type >= 0 && !(r->facts && (r->types & (1u << c->span_type)))) return 0;
    if (c->model && !(r->facts && has_model(r, c->model))) return 0;
    return 1;
}

/* ---------------------------------------------------------------- scans -- */

static char *adup(pc_arena *a, const char *s)
{
    return pc_arena_strndup(a, s ? s : "", s ? strlen(s) : 0);
}

static uint64_t key_hash(const char *project, const char *trace_id)
{
    return pc_hash_seeded(pc_hash(project, strlen(project)), trace_id, strlen(trace_id));
}

static int scan_row_cb(void *ud, const pc_trace_row *row)
{
    scan *s = ud;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->rows = pc_xrealloc(s->rows, (size_t)s->cap * sizeof(*s->rows));
    }
    trow *r = &s->rows[s->n++];
    memset(r, 0, sizeof(*r));
    r->project = adup(s->arena, row->project_id);
    r->trace_id = adup(s->arena, row->trace_id);
    r->service = adup(s->arena, row->service_name);
    r->status = adup(s->arena, row->status);
    r->session = adup(s->arena, row->session_id);
    r->user = adup(s->arena, row->user_id);
    pc_buf_reset(&s->tmp);
    pc_query_write_trace(&s->tmp, row);
    r->json = pc_arena_strndup(s->arena, s->tmp.data, s->tmp.len);
    r->json_len = s->tmp.len;
    r->h = key_hash(r->project, r->trace_id);
    r->fp = pc_hash(r->json, r->json_len);
    s->last = (pc_trace_key){row->started_ns, r->trace_id, r->project};
    return 0;
}

static void scan_free(scan *s)
{
    pc_arena_destroy(s->arena);
    free(s->rows);
    free(s->slots);
    pc_buf_free(&s->tmp);
    memset(s, 0, sizeof(*s));
}

static trow *scan_find(const scan *s, uint64_t h, const char *project, const char *trace_id)
{
    if (!s->slots) return NULL;
    for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
        int k = s->slots[i];
        if (!k) return NULL;
        trow *r = &s->rows[k - 1];
        if (r->h == h && !strcmp(r->trace_id, trace_id) && !strcmp(r->project, project)) return r;
    }
}

/* Reads the watched window into |s| (newest first, at most cfg.scan traces)
 * and indexes it. 0, or the store's negative result. */
static int scan_run(pc_tail *t, scan *s)
{
    s->arena = pc_arena_create(64 * 1024);
    pc_trace_filter f = {0};
    int64_t now = pc_time_now_ns();
    f.start_ns = now - t->cfg.lookback_ms * 1000000;
    pc_trace_key after;
    while (s->n < t->cfg.scan) {
        f.limit = t->cfg.scan - s->n < PAGE ? t->cfg.scan - s->n : PAGE;
        int before = s->n;
        int rc = t->cfg.store->ops->list_traces(t->cfg.store->ctx, &f, scan_row_cb, s);
        if (rc < 0) return rc;
        if (s->n - before < f.limit) break;
        after = s->last;
        f.after = &after;
    }
    size_t cap = 16;
    while (cap < (size_t)s->n * 2)
        cap *= 2;
    s->slots = pc_xcalloc(cap, sizeof(int));
    s->mask = cap - 1;
    for (int k = 0; k < s->n; k++) {
        trow *r = &s->rows[k];
        if (scan_find(s, r->h, r->project, r->trace_id)) continue; /* listed twice: once */
        size_t i = r->h & s->mask;
        while (s->slots[i])
            i = (i + 1) & s->mask;
        s->slots[i] = k + 1;
    }
    return 0;
}

typedef struct facts_ud {
    trow *r;
    pc_arena *arena;
} facts_ud;

static void add_model(facts_ud *u, const char *m)
{
    if (!m || !*m || u->r->n_models == MAX_MODELS || has_model(u->r, m)) return;
    u->r->models[u->r->n_models++] = adup(u->arena, m);
}

static int facts_cb(void *ud, const pc_span_row *s)
{
    facts_ud *u = ud;
    int ty = pc_span_type_parse((pc_str){s->span_type, strlen(s->span_type)});
    if (ty >= 0) u->r->types |= 1u << ty;
    add_model(u, s->llm_model);
    add_model(u, s->llm_request_model);
    return 0;
}

/* ---------------------------------------------------------------- poller -- */

/* Whether some ready client filters on span type or model. Under mu. */
static int need_facts(const pc_tail *t)
{
    for (const client *c = t->clients; c; c = c->next)
        if (c->ready && !c->dropped && (c->span_type >= 0 || c->model)) return 1;
    return 0;
}

/* Queues each changed trace of |s| for the ready clients it matches, then
 * makes the waiting clients ready. Under mu. */
static void fan_out(pc_tail *t, scan *s)
{
    pc_buf ev = PC_BUF_INIT;
    for (int k = 0; k < s->n; k++) {
        trow *r = &s->rows[k];
        if (!r->changed) continue;
        int header = 0;
        for (client *c = t->clients; c; c = c->next) {
            if (!c->ready || c->dropped || !matches(c, r)) continue;
            if (!header) {
                pc_buf_reset(&ev);
                pc_buf_printf(&ev, "id: %llu\nevent: trace\ndata: ", (unsigned long long)++t->seq);
                pc_buf_append(&ev, r->json, r->json_len);
                pc_buf_puts(&ev, "\n\n");
                header = 1;
            }
            enqueue(t, c, ev.data, ev.len);
            if (t->c_events) pc_counter_add(t->c_events, 1);
        }
    }
    pc_buf_free(&ev);
    static const char ready[] = "retry: 2000\n: ready\n\n";
    for (client *c = t->clients; c; c = c->next)
        if (!c->ready) {
            c->ready = 1;
            enqueue(t, c, ready, sizeof(ready) - 1);
        }
    pthread_cond_broadcast(&t->data_cv);
}

static void *poller_main(void *arg)
{
    pc_tail *t = arg;
    pc_thread_name("tail-poller");
    scan prev = {0};
    int primed = 0, failing = 0;
    pthread_mutex_lock(&t->mu);
    while (!t->quit) {
        if (!t->n_clients || t->stopping) {
            /* nobody watches: forget the window, ask the store nothing */
            scan_free(&prev);
            primed = 0;
            pthread_cond_wait(&t->poll_cv, &t->mu);
            continue;
        }
        pthread_mutex_unlock(&t->mu);

        scan cur = {0};
        int rc = scan_run(t, &cur);
        if (rc < 0) {
            if (!failing++) /* once per outage, not once per poll */
                pc_log(PC_LOG_WARN, t->name, "live tail: the store read failed; retrying");
            scan_free(&cur);
        } else {
            if (failing) pc_log(PC_LOG_INFO, t->name, "live tail: the store reads again");
            failing = 0;
            for (int k = 0; k < cur.n; k++) {
                trow *r = &cur.rows[k];
                const trow *p = scan_find(&prev, r->h, r->project, r->trace_id);
                r->changed = primed && (!p || p->fp != r->fp) &&
                             scan_find(&cur, r->h, r->project, r->trace_id) == r;
            }
            pthread_mutex_lock(&t->mu);
            int facts = need_facts(t);
            pthread_mutex_unlock(&t->mu);
            for (int k = 0, read = 0; facts && k < cur.n && read < MAX_FACT_TRACES; k++) {
                trow *r = &cur.rows[k];
                if (!r->changed) continue;
                facts_ud u = {r, cur.arena};
                if (t->cfg.store->ops->get_spans(t->cfg.store->ctx, r->project, r->trace_id,
                                                 MAX_FACT_SPANS, 0, facts_cb, &u) == 0)
                    r->facts = 1;
                read++;
            }
            pthread_mutex_lock(&t->mu);
            fan_out(t, &cur);
            pthread_mutex_unlock(&t->mu);
            scan_free(&prev);
            prev = cur;
            primed = 1;
        }

        pthread_mutex_lock(&t->mu);
        if (!t->quit) wait_ms(&t->poll_cv, &t->mu, t->cfg.poll_ms);
    }
    pthread_mutex_unlock(&t->mu);
    scan_free(&prev);
    return NULL;
}

/* ---------------------------------------------------------------- stream -- */

/* Whether the peer of |fd| has gone (closed or reset its side). */
static int peer_gone(int fd)
{
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

typedef struct stream {
    pc_tail *t;
    client *c;
} stream;

/* http.h's stream read: queued bytes, a heartbeat, or the end; blocks until
 * one of them. */
static ssize_t stream_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream *st = ctx;
    pc_tail *t = st->t;
    client *c = st->c;
    static const char beat[] = ": heartbeat\n\n";
    ssize_t out;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (c->dropped) {
            out = PC_HTTP_STREAM_CUT;
            break;
        }
        size_t pending = c->q.len - c->q_off;
        if (pending) {
            size_t n = pending < max ? pending : max;
            memcpy(buf, c->q.data + c->q_off, n);
            c->q_off += n;
            pc_budget_release(t->cfg.budget, n);
            c->charged -= n;
            if (c->q_off == c->q.len) c->q.len = c->q_off = 0;
            c->last_ms = pc_time_mono_ns() / 1000000;
            out = (ssize_t)n;
            break;
        }
        if (t->stopping) {
            out = PC_HTTP_STREAM_END;
            break;
        }
        int64_t idle = pc_time_mono_ns() / 1000000 - c->last_ms;
        if (c->ready && idle >= t->cfg.heartbeat_ms && max >= sizeof(beat) - 1) {
            memcpy(buf, beat, sizeof(beat) - 1);
            c->last_ms = pc_time_mono_ns() / 1000000;
            out = (ssize_t)(sizeof(beat) - 1);
            break;
        }
        if (peer_gone(c->fd)) {
            out = PC_HTTP_STREAM_CUT;
            break;
        }
        /* until the next heartbeat is due (once ready), at most WAKE_MS */
        int64_t wait = WAKE_MS, left = t->cfg.heartbeat_ms - idle;
        if (c->ready && left < wait) wait = left > 1 ? left : 1;
        wait_ms(&t->data_cv, &t->mu, wait);
    }
    pthread_mutex_unlock(&t->mu);
    return out;
}

/* http.h's stream free: unlinks and frees the client. */
static void stream_free(void *ctx)
{
    stream *st = ctx;
    pc_tail *t = st->t;
    client *c = st->c;
    pthread_mutex_lock(&t->mu);
    *(c->prev ? &c->prev->next : &t->clients) = c->next;
    if (c->next) c->next->prev = c->prev;
    t->n_clients--;
    if (t->g_clients) pc_gauge_add(t->g_clients, -1);
    pc_budget_release(t->cfg.budget, c->charged);
    c->fd = -1;
    pthread_cond_broadcast(&t->poll_cv); /* the last one leaving lets the poller idle */
    pthread_mutex_unlock(&t->mu);
    client_free(c);
    free(st);
}

/* --------------------------------------------------------------- handler -- */

static char *opt_dup(const char *s)
{
    return s ? pc_xstrdup(s) : NULL;
}

void pc_tail_handle(void *ctx, pc_http_req *req, pc_http_resp *resp)
{
    pc_tail *t = ctx;
    /* the list's filters that a tail cannot apply (it shows what is new) */
    static const char *const unsupported[] = {"start_time", "end_time", "limit", "offset",
                                              "cursor",     "min_cost", "query", NULL};
    for (const char *const *u = unsupported; *u; u++)
        if (pc_query_param(req, *u)) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "%s: not a filter of the tail (it takes project_id, "
                     "service_name, status, span_type, session_id, user_id, model)",
                     *u);
            pc_query_bad_request(resp, msg);
            return;
        }
    const char *an, *av;
    if (pc_http_query_prefixed(req, "attr.", &an, &av)) {
        pc_query_bad_request(resp, "attr.<key>: not a filter of the tail");
        return;
    }
    const char *project;
    if (pc_query_read_project(req, resp, &project)) return;
    int span_type = -1;
    const char *st = pc_query_param(req, "span_type");
    if (st && (span_type = pc_span_type_parse((pc_str){st, strlen(st)})) < 0) {
        pc_query_bad_request(resp, "span_type: must be one of agent, llm, tool, retrieval, "
                                   "embedding, custom");
        return;
    }
    const char *status = pc_query_param(req, "status");
    if (status) status = pc_query_lowercase(req->arena, status);

    pthread_mutex_lock(&t->mu);
    if (t->stopping || t->n_clients >= t->cfg.max_clients) {
        int stopping = t->stopping;
        pthread_mutex_unlock(&t->mu);
        char msg[200];
        if (stopping)
            snprintf(msg, sizeof(msg), "the collector is shutting down");
        else
            snprintf(msg, sizeof(msg),
                     "too many live tail clients: %d open, the most that query.tail_max_clients "
                     "allows; retry later or raise it",
                     t->cfg.max_clients);
        pc_http_error_detail(resp, 503, msg);
        resp->retry_after = RETRY_FULL_S;
        return;
    }
    client *c = pc_xcalloc(1, sizeof(*c));
    c->project = opt_dup(project);
    c->service = opt_dup(pc_query_param(req, "service_name"));
    c->status = opt_dup(status);
    c->session = opt_dup(pc_query_param(req, "session_id"));
    c->user = opt_dup(pc_query_param(req, "user_id"));
    c->model = opt_dup(pc_query_param(req, "model"));
    c->span_type = span_type;
    c->q = (pc_buf)PC_BUF_INIT;
    c->fd = pc_http_socket(req);
    /* A fixed kernel send buffer: without it Linux grows it (to tcp_wmem's
     * 4 MB) for a client that does not read, before our queue even fills. */
    int sndbuf = SOCKET_SNDBUF;
    if (c->fd >= 0) setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    c->last_ms = pc_time_mono_ns() / 1000000;
    c->next = t->clients;
    if (t->clients) t->clients->prev = c;
    t->clients = c;
    t->n_clients++;
    if (t->g_clients) pc_gauge_add(t->g_clients, 1);
    pthread_cond_broadcast(&t->poll_cv); /* a scan now makes it ready */
    pthread_mutex_unlock(&t->mu);

    stream *s = pc_xcalloc(1, sizeof(*s));
    s->t = t;
    s->c = c;
    static const char *const headers[] = {"X-Accel-Buffering", "no", NULL};
    resp->status = 200;
    resp->content_type = "text/event-stream; charset=utf-8";
    resp->headers = headers;
    resp->stream = (pc_http_stream){stream_read, stream_free, s};
}

/* ------------------------------------------------------------- lifecycle -- */

pc_tail *pc_tail_create(const pc_tail_config *cfg)
{
    pc_tail *t = pc_xcalloc(1, sizeof(*t));
    t->cfg = *cfg;
    t->name = pc_xstrdup(cfg->name ? cfg->name : "query");
    t->cfg.name = t->name;
    pthread_mutex_init(&t->mu, NULL);
    pc_cond_init_mono(&t->data_cv);
    pc_cond_init_mono(&t->poll_cv);
    if (cfg->metrics) {
        const char *labels[] = {"receiver", t->name, NULL};
        t->g_clients = pc_metrics_gauge(cfg->metrics, "prela_query_tail_clients",
                                        "Live tail streams (GET /api/v1/tail) open now.", labels);
        t->c_dropped = pc_metrics_counter(cfg->metrics, "prela_query_tail_dropped",
                                          "Live tail clients cut for reading too slowly.", labels);
        t->c_events = pc_metrics_counter(cfg->metrics, "prela_query_tail_events",
                                         "Trace events queued to live tail clients.", labels);
    }
    if (pthread_create(&t->poller, NULL, poller_main, t)) {
        pc_log(PC_LOG_ERROR, t->name, "cannot start the live tail's poller thread");
        pc_tail_destroy(t);
        return NULL;
    }
    t->started = 1;
    return t;
}

void pc_tail_stop(pc_tail *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_broadcast(&t->data_cv);
    pthread_cond_broadcast(&t->poll_cv);
    pthread_mutex_unlock(&t->mu);
}

void pc_tail_destroy(pc_tail *t)
{
    if (!t) return;
    pc_tail_stop(t);
    if (t->started) {
        pthread_mutex_lock(&t->mu);
        t->quit = 1;
        pthread_cond_broadcast(&t->poll_cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->poller, NULL);
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->data_cv);
    pthread_cond_destroy(&t->poll_cv);
    free(t->name);
    free(t);
}

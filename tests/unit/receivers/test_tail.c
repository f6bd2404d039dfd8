/*
 * test_tail.c - the live tail (tail.h) through the query receiver, over a real
 * embedded store.
 *
 * A `local` exporter in a temp directory is written through consume(); the
 * query receiver serves it on 127.0.0.1:0 with a fast poll, one client at
 * most and a short heartbeat. A raw socket reads GET /api/v1/tail: the
 * headers, ": ready", an event for a trace written after it (its id and its
 * list object), a filtered-out trace never, a heartbeat; a second tail is 503
 * naming the setting until the first leaves; shutdown ends an open stream.
 * Reads wait on the socket with deadlines, never on sleeps.
 */
#include "check.h"

#include "config.h"
#include "exporters/local.h"
#include "receivers/query.h"
#include "span.h"
#include "timefmt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000LL

static int port;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Opens a connection and sends GET |path|. The socket, or -1. */
static int open_get(const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) perror("write");
    return fd;
}

/* Reads from |fd| into |in| until it holds |what| (1), the peer closes or
 * |ms| pass (0). */
static int read_until(int fd, pc_buf *in, const char *what, int ms)
{
    int64_t end = now_ms() + ms;
    while (!(in->data && strstr(in->data, what))) {
        int64_t left = end - now_ms();
        if (left <= 0) return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) return 0;
        char tmp[4096];
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r <= 0) return in->data && strstr(in->data, what);
        pc_buf_append(in, tmp, (size_t)r);
    }
    return 1;
}

static pc_str S(pc_batch *b, const char *s)
{
    return (pc_str){pc_arena_strndup(b->arena, s, strlen(s)), strlen(s)};
}

/* Writes one span of trace |trace| (service |svc|), started a second ago. */
static void write_trace(void *local, const char *trace, const char *svc)
{
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = pc_time_now_ns();
    pc_span *s = pc_batch_add(b);
    s->trace_id = S(b, trace);
    s->span_id = S(b, "root");
    s->parent_id = S(b, "");
    s->name = S(b, "tail root");
    s->kind = 1;
    s->start_ns = b->received_ns - NS;
    s->end_ns = b->received_ns;
    s->project_id = S(b, "proj-1");
    s->span_type = PC_TYPE_AGENT;
    s->status = PC_STATUS_SUCCESS;
    s->service_name = S(b, svc);
    CHECK_EQ_INT(pc_local_exporter_ops.consume(local, b), PC_OK);
}

static void *make_cfg(const pc_component_ops *ops, const char *const *kv, size_t n)
{
    void *cfg = calloc(1, ops->config_size);
    pc_config_entry e[8];
    memset(e, 0, sizeof(e));
    for (size_t i = 0; i < n; i++) {
        e[i].key = kv[2 * i];
        e[i].value = kv[2 * i + 1];
    }
    char err[256] = "";
    CHECK_EQ_INT(pc_config_apply_options(ops->options, cfg, e, n, ops->type, err, sizeof(err)), 0);
    CHECK_EQ_INT(ops->validate(cfg, err, sizeof(err)), 0);
    return cfg;
}

static void test_tail(void *local, void *q)
{
    pc_buf in = PC_BUF_INIT;
    int fd = open_get("/api/v1/tail?service_name=wanted");
    CHECK(fd >= 0);
    CHECK(read_until(fd, &in, ": ready\n\n", 5000));
    CHECK(strncmp(in.data, "HTTP/1.1 200", 12) == 0);
    CHECK(strstr(in.data, "Content-Type: text/event-stream") != NULL);
    CHECK(strstr(in.data, "Cache-Control: no-cache") != NULL);

    /* the only slot is taken: 503 naming the setting */
    pc_buf other = PC_BUF_INIT;
    int fd2 = open_get("/api/v1/tail");
    CHECK(read_until(fd2, &other, "tail_max_clients", 5000));
    CHECK(strncmp(other.data, "HTTP/1.1 503", 12) == 0);
    CHECK(strstr(other.data, "Retry-After:") != NULL);
    close(fd2);
    pc_buf_free(&other);

    /* a trace of another service, then one it wants: only that one comes */
    write_trace(local, "unwanted-trace", "other");
    write_trace(local, "wanted-trace", "wanted");
    CHECK(read_until(fd, &in, "\"trace_id\":\"wanted-trace\"", 5000));
    CHECK(strstr(in.data, "event: trace\ndata: {") != NULL);
    CHECK(strstr(in.data, "\"service_name\":\"wanted\"") != NULL);
    CHECK(strstr(in.data, "\nid: 1\n") != NULL);
    CHECK(strstr(in.data, "unwanted-trace") == NULL);
    /* silence: heartbeats (200 ms here) */
    CHECK(read_until(fd, &in, ": heartbeat\n\n", 3000));
    CHECK(strstr(in.data, "unwanted-trace") == NULL);
    close(fd);
    pc_buf_free(&in);

    /* the client left: its slot frees within a second or so */
    int ok = 0;
    for (int64_t end = now_ms() + 5000; !ok && now_ms() < end;) {
        pc_buf b = PC_BUF_INIT;
        int f = open_get("/api/v1/tail");
        ok = read_until(f, &b, ": ready", 3000) && strncmp(b.data, "HTTP/1.1 200", 12) == 0;
        if (ok)
            fd = f;
        else
            close(f);
        pc_buf_free(&b);
    }
    CHECK(ok);

    /* shutdown with a stream open: it ends, and shutdown returns */
    int64_t t0 = now_ms();
    pc_query_receiver_ops.shutdown(q);
    CHECK(now_ms() - t0 < 5000);
    pc_buf rest = PC_BUF_INIT;
    read_until(fd, &rest, "never", 2000);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;
    CHECK(poll(&p, 1, 1000) == 1 && read(fd, &c, 1) <= 0); /* closed */
    pc_buf_free(&rest);
    close(fd);
}

static void test_validate(void)
{
    const char *kv[] = {"endpoint", "127.0.0.1:0", "tail_heartbeat", "90s", "idle_timeout", "60s"};
    void *cfg = calloc(1, pc_query_receiver_ops.config_size);
    pc_config_entry e[3];
    memset(e, 0, sizeof(e));
    for (int i = 0; i < 3; i++)
        e[i].key = kv[2 * i], e[i].value = kv[2 * i + 1];
    char err[256] = "";
    CHECK_EQ_INT(pc_config_apply_options(pc_query_receiver_ops.options, cfg, e, 3, "query", err,
                                         sizeof(err)),
                 0);
    CHECK(pc_query_receiver_ops.validate(cfg, err, sizeof(err)) != 0);
    CHECK(strncmp(err, "tail_heartbeat:", 15) == 0);
    pc_config_free_options(pc_query_receiver_ops.options, cfg);
    free(cfg);
}

int main(void)
{
    char dir[] = "/tmp/pc_tail_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    const char *lkv[] = {"directory", dir, "synchronous", "normal"};
    void *lcfg = make_cfg(&pc_local_exporter_ops, lkv, 2);
    void *local = pc_local_exporter_ops.create("local", lcfg, NULL);
    CHECK_EQ_INT(pc_local_exporter_ops.start(local, NULL), 0);

    const char *qkv[] = {"endpoint",           "127.0.0.1:0", "tail_max_clients", "1",
                         "tail_poll_interval", "50ms",        "tail_heartbeat",   "200ms"};
    void *qcfg = make_cfg(&pc_query_receiver_ops, qkv, 4);
    void *q = pc_query_receiver_ops.create("query", qcfg, NULL);
    CHECK_EQ_INT(pc_query_serve(q, pc_local_exporter_ops.store(local)), 0);
    port = pc_query_port(q);
    CHECK(port > 0);
    if (port > 0) {
        fprintf(stderr, "-- test_tail\n");
        test_tail(local, q);
    }
    RUN(test_validate);

    pc_query_receiver_ops.shutdown(q);
    pc_query_receiver_ops.destroy(q);
    pc_local_exporter_ops.shutdown(local);
    pc_local_exporter_ops.destroy(local);
    pc_config_free_options(pc_query_receiver_ops.options, qcfg);
    pc_config_free_options(pc_local_exporter_ops.options, lcfg);
    free(qcfg);
    free(lcfg);
    char p[128];
    static const char *const files[] = {"prela.db",        "prela.db-wal",
                                        "prela.db-shm",    "prela-search.db",
                                        "prela-search.db-wal", "prela-search.db-shm"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    CHECK_EQ_INT(rmdir(dir), 0); /* nothing left in it */
    return CHECK_DONE();
}

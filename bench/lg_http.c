/*
 * lg_http.c - loadgen's HTTP/1.1 transport (OTLP/HTTP, Prela JSON): one
 * keep-alive connection per worker on a raw blocking socket, one request in
 * flight: write headers + body, read the status line, the headers and the
 * Content-Length body (discarded). Outcome codes are HTTP statuses; 200
 * acknowledges, 429 and 503 are refusals to retry.
 *
 * With --tls-ca the connection is HTTPS (lg_tls.c): header and body are
 * corked into as few TLS records as they fit.
 *
 * Why raw sockets: the request is one writev of a prebuilt header and the
 * patched body, and the answer is a short fixed-length response, so the
 * client costs almost nothing next to the collector it measures.
 */
#include "lg_run.h"

#include "buf.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct conn {
    lg_worker *w;
    int fd;
    lg_tls *tls; /* NULL: plaintext */
    const char *header; /* request line and headers, the same for every request */
    size_t header_len;
    uint8_t *body; /* this connection's copy of the workload body */
    size_t body_len;
} conn;

static int send_request(conn *c)
{
    if (c->tls) {
        const void *parts[2] = {c->header, c->body};
        size_t lens[2] = {c->header_len, c->body_len};
        lg_tls_cork(c->tls, 1);
        for (int i = 0; i < 2; i++)
            for (size_t off = 0; off < lens[i];) {
                ssize_t w = lg_io_send(c->fd, c->tls, (const char *)parts[i] + off, lens[i] - off);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) return -1;
                off += (size_t)w;
            }
        return lg_tls_cork(c->tls, 0);
    }
    struct iovec iov[2] = {{(void *)c->header, c->header_len}, {c->body, c->body_len}};
    int idx = 0;
    while (idx < 2) {
        ssize_t w = writev(c->fd, iov + idx, 2 - idx);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        size_t left = (size_t)w;
        while (idx < 2 && left >= iov[idx].iov_len)
            left -= iov[idx++].iov_len;
        if (idx < 2) {
            iov[idx].iov_base = (char *)iov[idx].iov_base + left;
            iov[idx].iov_len -= left;
        }
    }
    return 0;
}

/* Case-insensitive search for header |name| in the header block; returns its value. */
static const char *find_header(const char *hdr, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(hdr, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n"))
        if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    return NULL;
}

/*
 * Reads one response: status line, headers, Content-Length bytes of body (which
 * are discarded). Returns the status, or LG_IO on I/O errors and responses we
 * do not understand. Sets |*close_after| when the server will close.
 */
static int read_response(conn *c, int *close_after)
{
    char buf[16384];
    size_t have = 0;
    char *eoh = NULL;
    while (!eoh) {
        if (have == sizeof(buf) - 1) return LG_IO;
        ssize_t r = lg_io_recv(c->fd, c->tls, buf + have, sizeof(buf) - 1 - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return LG_IO;
        have += (size_t)r;
        buf[have] = 0;
        eoh = strstr(buf, "\r\n\r\n");
    }
    eoh[2] = 0; /* keep the last header's CRLF for find_header */
    int status;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status >= LG_MAX_CODE)
        return LG_IO;
    const char *cl = find_header(buf, "Content-Length");
    const char *te = find_header(buf, "Transfer-Encoding");
    const char *co = find_header(buf, "Connection");
    *close_after = co && !strncasecmp(co, "close", 5);
    if (te || !cl) return LG_IO; /* libmicrohttpd always sends Content-Length here */
    size_t body = strtoull(cl, NULL, 10);
    size_t got = have - (size_t)(eoh + 4 - buf);
    while (got < body) {
        size_t want = body - got < sizeof(buf) ? body - got : sizeof(buf);
        ssize_t r = lg_io_recv(c->fd, c->tls, buf, want);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return LG_IO;
        got += (size_t)r;
    }
    return status;
}

static void conn_close(conn *c)
{
    lg_tls_close(c->tls);
    c->tls = NULL;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

void lg_http_header(pc_buf *hdr, const lg_run *run)
{
    pc_buf_printf(hdr,
                  "POST %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: prela-loadgen/1\r\n"
                  "Content-Type: %s\r\nContent-Length: %zu\r\n",
                  run->path, run->host, run->port, run->content_type, run->body->len);
    if (run->api_key) pc_buf_printf(hdr, "X-API-Key: %s\r\n", run->api_key);
    pc_buf_puts(hdr, "\r\n");
}

static void *http_worker(void *arg)
{
    lg_worker *w = arg;
    const lg_run *run = w->run;
    pc_buf hdr = PC_BUF_INIT;
    lg_http_header(&hdr, run);
    conn c = {.w = w,
              .fd = -1,
              .header = hdr.data,
              .header_len = hdr.len,
              .body = pc_xmalloc(run->body->len),
              .body_len = run->body->len};
    memcpy(c.body, run->body->data, c.body_len);
    int64_t t;
    while ((t = lg_now_ns(CLOCK_MONOTONIC)) < run->win_end) {
        if (c.fd < 0 && (c.fd = lg_connect(run, 0)) >= 0 && run->tls_cred &&
            !(c.tls = lg_tls_open(run, c.fd, NULL)))
            conn_close(&c);
        if (c.fd < 0) {
            lg_record(w, LG_IO, t, -1, 0);
            usleep(100000);
            continue;
        }
        uint64_t req = lg_next_request(w, c.body);
        int64_t t0 = lg_now_ns(CLOCK_MONOTONIC);
        int status = LG_IO, close_after = 1;
        if (send_request(&c) == 0) {
            w->st.sent_all++;
            status = read_response(&c, &close_after);
        }
        int64_t t1 = lg_now_ns(CLOCK_MONOTONIC);
        lg_record(w, status, t1, t1 - t0, req);
        if (status < 0 || close_after) conn_close(&c);
    }
    conn_close(&c);
    free(c.body);
    pc_buf_free(&hdr);
    return NULL;
}

static void http_code_name(int code, char *out, size_t n)
{
    snprintf(out, n, "HTTP %d", code);
}

const lg_transport lg_http = {
    .name = "HTTP/1.1",
    .ok_code = 200,
    .retry = {429, 503, -1},
    .worker = http_worker,
    .code_name = http_code_name,
};

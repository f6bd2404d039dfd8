/*
 * lg_run.h - what the load generator's driver (loadgen.c) shares with its
 * transports (lg_http.c, lg_grpc.c): the run, the per-connection worker with
 * its statistics, and the transport contract.
 *
 * Flow: the driver fills one lg_run, then starts one thread per connection,
 * each running transport->worker on its own lg_worker. A worker keeps one
 * connection to the target and up to run->streams calls in flight on it
 * (HTTP/1.1: always 1), takes a fresh request number for every call
 * (lg_next_request), and reports every outcome through lg_record. It stops
 * starting calls at run->win_end, finishes the calls in flight, and returns.
 * The driver then joins the threads and merges their lg_stats.
 *
 * Outcome codes: a transport reports the code the server answered with (HTTP
 * status, or gRPC status 0..16 with HTTP statuses >= 100 standing for answers
 * without grpc-status) or LG_IO for connect/send/receive failures and answers
 * it cannot parse. transport->ok_code is an acknowledgement; the codes in
 * transport->retry are refusals the client should retry (429/503, 8/14).
 *
 * TLS (--tls-ca): run->tls_cred is set and each transport wraps its socket in
 * an lg_tls right after lg_connect, then reads and writes through lg_io_recv /
 * lg_io_send, which are recv / send without TLS (lg_tls.c).
 *
 * Ownership: the run and everything it points to belong to the driver and are
 * read-only while workers run (next_req aside, which is atomic). A worker's
 * stats belong to the worker until the driver joins it.
 *
 * The query-scale tools (qs_load, qs_query) share two parts of this module and
 * nothing else: lg_stats as a latency sample (lg_stats_add_latency,
 * lg_stats_merge, lg_stats_latency) and the flag table (lg_parse_flags).
 */
#ifndef LG_RUN_H
#define LG_RUN_H

#include "buf.h"
#include "workload.h"

#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define LG_MAX_CODE 600 /* outcome codes are 0..599 */
#define LG_IO (-1)      /* connect/send/receive failure, or an answer we cannot parse */

typedef struct lg_run {
    const char *host, *port;     /* the target, as given */
    const struct addrinfo *addr; /* the target, resolved */
    const char *path;            /* HTTP path or gRPC method path */
    const char *content_type;
    const lg_workload *body;
    int streams;                /* calls in flight per connection (gRPC; HTTP: 1) */
    int64_t win_start, win_end; /* the measurement window, CLOCK_MONOTONIC ns */
    _Atomic uint64_t next_req;  /* request numbers, from 1, shared by all workers */
    /* --rate: 0 = closed loop (each worker sends as fast as answers come); else
     * request n starts no earlier than t_start + (n - 1) * interval_ns */
    int64_t t_start, interval_ns;
    void *tls_cred;      /* gnutls_certificate_credentials_t with the --tls-ca; NULL = plaintext */
    const char *api_key; /* --api-key: sent as X-API-Key / x-api-key; NULL = none */
} lg_run;

/* One worker's figures. Window figures count calls that completed inside
 * [win_start, win_end]; whole-run figures count every call. */
typedef struct lg_stats {
    int64_t *lat; /* ns from send to complete answer, every call completed in the window */
    size_t n_lat, cap_lat;
    uint64_t ok;                 /* window: acknowledged calls */
    uint64_t io;                 /* window: LG_IO outcomes, connect failures included */
    uint64_t codes[LG_MAX_CODE]; /* window: other answers, by code */
    uint64_t sent_all, ok_all;   /* whole run: calls sent and acknowledged */
    uint64_t last_ok_req;        /* whole run: highest acknowledged request number */
} lg_stats;

typedef struct lg_transport lg_transport;

typedef struct lg_worker {
    pthread_t th;
    int index;   /* 0 .. connections-1 */
    lg_run *run; /* read-only but for run->next_req */
    const lg_transport *tr;
    lg_stats st;
} lg_worker;

/*
 * A transport: how calls travel. Each implementation fills one constant
 * instance in its own file; loadgen.c's mode table lists them.
 */
struct lg_transport {
    const char *name; /* "HTTP/1.1", "gRPC" */
    int ok_code;      /* the outcome code that acknowledges a call */
    int retry[4];     /* codes that mean "refused, retry later"; -1 ends the list */
    /* Thread body: |arg| is an lg_worker; runs until the window ends (see above). */
    void *(*worker)(void *arg);
    /* Writes a short name of outcome code |code| (not LG_IO) into |out|. */
    void (*code_name)(int code, char *out, size_t n);
};

/* The transports (lg_http.c, lg_grpc.c). */
extern const lg_transport lg_http, lg_grpc;

/* Whether |code| is in tr->retry. */
int lg_is_retry(const lg_transport *tr, int code);

/* The time of |clk| in ns. */
int64_t lg_now_ns(clockid_t clk);

/* Takes the next request number and writes it into |body| (a copy of run->body's data);
 * with a rate, first sleeps until that request's start time. */
uint64_t lg_next_request(lg_worker *w, uint8_t *body);

/*
 * Connects a TCP socket to run->addr with TCP_NODELAY. Blocking sockets get
 * 30 s send and receive timeouts; with |nonblocking| the socket is switched
 * to O_NONBLOCK once connected. Returns the fd, or -1 with errno set.
 */
int lg_connect(const lg_run *run, int nonblocking);

/*
 * Records one outcome: |code| (transport code or LG_IO) of call |req|, which
 * completed at |done| (CLOCK_MONOTONIC ns) after |lat| ns. |lat| < 0 means
 * nothing was sent (a failed connect): counted, no latency. |req| 0: none.
 */
void lg_record(lg_worker *w, int code, int64_t done, int64_t lat, uint64_t req);

/* ---- TLS (lg_tls.c) ---- */

typedef struct lg_tls lg_tls;

/* Appends the HTTP/1.1 request head lg_http sends for |run| (ends in CRLF CRLF). */
void lg_http_header(pc_buf *hdr, const lg_run *run);

/* Loads the CA bundle |ca_file| into run->tls_cred. 0, or -1 after printing why. */
int lg_tls_init(lg_run *run, const char *ca_file);
void lg_tls_cleanup(lg_run *run);
/* A client session on the connected socket |fd| (blocking or not): handshake
 * verified against the CA and run->host, ALPN |alpn| (NULL: none) required.
 * Returns NULL when the handshake fails (the first failure is printed). */
lg_tls *lg_tls_open(const lg_run *run, int fd, const char *alpn);
/* Ends the session (close_notify if it fits), frees it; not the socket. Accepts NULL. */
void lg_tls_close(lg_tls *t);
/* send / recv over |t|, or over |fd| when |t| is NULL; send/recv's results
 * and errno. After EAGAIN from lg_io_send, offer the same bytes again. */
ssize_t lg_io_send(int fd, lg_tls *t, const void *p, size_t n);
ssize_t lg_io_recv(int fd, lg_tls *t, void *p, size_t n);
/* Decrypted bytes buffered in |t| that poll does not see (0 without TLS). */
size_t lg_tls_pending(const lg_tls *t);
/* Cork (|on|) or uncork and flush (blocking) |t|'s records, so a request goes
 * out in few records. Uncork returns 0 or -1; no-op without TLS. */
int lg_tls_cork(lg_tls *t, int on);

/* Adds |from|'s counters and latencies to |to|. */
void lg_stats_merge(lg_stats *to, const lg_stats *from);

/* Frees the latencies. */
void lg_stats_free(lg_stats *s);

/* ---- latency samples and flags, shared with the query-scale tools ---- */

/* Appends the latency |ns| to s->lat (growing it; the allocator aborts on OOM). */
void lg_stats_add_latency(lg_stats *s, int64_t ns);

/* p50 and p99 by nearest rank (with fewer than 100 samples p99 is the max) and the max, in ms. */
typedef struct lg_latency {
    double p50_ms, p99_ms, max_ms;
} lg_latency;

/* Sorts s->lat in place and returns its percentiles; all 0 when s holds none. */
lg_latency lg_stats_latency(lg_stats *s);

/* Parses "10s", "500ms", "2m" or "3" (seconds) into |*ns|. Returns 0, or -1 when |s|
 * is not a non-negative number with one of those suffixes. */
int lg_parse_duration(const char *s, int64_t *ns);

/* One "--name VALUE" flag of a tool's flag table, stored into |dst| by kind:
 * STR a const char *, U64 a uint64_t, I64 an int64_t, INT an int (all decimal, the
 * whole value a number), DURATION an int64_t of ns (lg_parse_duration). */
typedef enum { LG_STR, LG_U64, LG_I64, LG_INT, LG_DURATION } lg_flag_kind;
typedef struct lg_flag {
    const char *name; /* "--spans" */
    lg_flag_kind kind;
    void *dst;
} lg_flag;

/*
 * Parses argv[1..argc-1] as "--name VALUE" pairs of the |n| flags in |flags|.
 * Returns 0; 1 for -h or --help (the caller prints its usage and exits 0); -1
 * after printing "|prog|: ..." to stderr for an unknown flag, a flag without a
 * value, or a value that is not of its kind. Values are stored as they are
 * parsed: on -1 some may have been stored. Ranges are the caller's to check.
 */
int lg_parse_flags(const char *prog, int argc, char **argv, const lg_flag *flags, size_t n);

#endif

/*
 * grpc_call.h - what the two halves of the gRPC server share; internal to
 * grpc.c and grpc_call.c (receivers use grpc.h).
 *
 * grpc.c is the HTTP/2 transport: listener, epoll loop, connections, nghttp2
 * sessions and their callbacks, TLS, flow control of the connection window,
 * GOAWAY, timers, start and stop. grpc_call.c is the calls: one gcall per
 * stream, its headers and framed message, the answers gRPC itself gives,
 * grpc-timeout, the handler threads and the reply (HEADERS, DATA, trailers).
 * The transport calls pc_grpc_call_* from its nghttp2 callbacks and timers;
 * the calls submit their answers to the call's session and mark the
 * connection dirty, which the transport flushes at the end of the loop turn.
 *
 * Ownership (the rule of grpc.c's file comment): the I/O thread alone
 * touches sessions, connections and the [io] fields of a call; a RUNNING
 * call's pub, reply and arena are its handler thread's until the call comes
 * back through s->done (under s->mu).
 */
#ifndef PC_GRPC_CALL_H
#define PC_GRPC_CALL_H

#include "decompress.h"
#include "grpc.h"

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_HEADER_BYTES (64 << 10) /* request header list, per call */
#define READ_CHUNK (64 << 10)

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
    struct gcall *work_next; /* the work queue of parked handler threads, under s->mu */
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
    pthread_mutex_t mu; /* guards done, stop and the handler threads below */
    pthread_attr_t detached; /* handler threads are created detached */
    gcall *done;
    int stop;
    /* Handler threads (grpc_call.c, "Handler threads"), under mu. */
    pthread_cond_t work_cv; /* a parked thread waits for work or closing */
    pthread_cond_t exit_cv; /* pc_grpc_stop waits for handlers to reach 0 */
    gcall *work;            /* calls handed to parked threads, not yet taken */
    int parked;             /* threads waiting for work and not yet handed any */
    int handlers;           /* handler threads alive */
    int closing;            /* set by pc_grpc_stop: parked threads exit */
    /* [io] */
    conn *conns;
    int nconns, inflight, draining;
    int64_t deadline;
    int64_t drain_started;
    int64_t accept_resume; /* > 0: accepting paused (out of descriptors) until then */
    int64_t accept_warned; /* when that was last logged (at most every 10 s) */
    int64_t next_check;    /* when sweep next looks at the calls' deadlines */
    nghttp2_option *h2opt;
    pc_metrics_codes codes; /* answers by grpc-status (metrics.h) */
    uint8_t rbuf[READ_CHUNK];
};

/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t pc_grpc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wakes the I/O thread (the eventfd); safe from any thread. */
void pc_grpc_wake(pc_grpc_server *s);

/* ---- a call's life, driven by the transport (I/O thread) ---------------- */

/* A new call for request stream |stream_id| of |cn|, on cn->calls; the
 * connection owns it until pc_grpc_call_release. */
gcall *pc_grpc_call_new(conn *cn, int32_t stream_id);
/* The request headers are complete: answers what no handler may see
 * (405, 415, unknown method, encoding, draining, API key) or arms grpc-timeout. */
void pc_grpc_call_headers(gcall *c);
/* |n| DATA bytes of the request at |p| (already counted in c->held). */
void pc_grpc_call_data(gcall *c, const uint8_t *p, size_t n);
/* END_STREAM: checks the framing and limits, then starts the handler thread. */
void pc_grpc_call_end(gcall *c);
/* The handler came back (on_wake): submits its reply on the open stream. */
void pc_grpc_call_reply(gcall *c);
/* Answers DEADLINE_EXCEEDED: the request did not arrive within |limit_ms|. */
void pc_grpc_call_timeout(gcall *c, int64_t limit_ms);
/* Answers DEADLINE_EXCEEDED past grpc-timeout; a RUNNING call stays RUNNING
 * with |expired| set and its handler's reply is dropped. */
void pc_grpc_call_expire(gcall *c);
/* Takes |c| off its connection (giving its DATA bytes back to the window)
 * and frees it, unless its handler still runs: then the done queue frees it. */
void pc_grpc_call_release(gcall *c);
/* Frees |c|, its arena and its reply. */
void pc_grpc_call_free(gcall *c);

#endif

/*
 * tail.h - the live tail: GET /api/v1/tail, new traces as Server-Sent Events.
 *
 * Where it sits: a part of the query receiver (query.c routes the path here
 * and owns one pc_tail). It reads the same store the query API serves, so it
 * works over the embedded store and ClickHouse alike, and in the storage role
 * where spans arrive through Kafka (or through another process entirely).
 *
 *   GET /api/v1/tail?project_id=&service_name=&status=&span_type=&session_id=
 *                    &user_id=&model=
 *   200 text/event-stream:
 *     ": ready"                         once the tail is watching (then every
 *                                       trace first stored or changed after it
 *                                       comes as an event)
 *     "id: <n>\nevent: trace\ndata: <the trace object of GET /api/v1/traces>"
 *                                       a trace that is new, or whose summary
 *                                       changed (more spans, a status, a cost)
 *     ": heartbeat"                     every heartbeat (15 s) of silence
 *   503 + Retry-After when max_clients tails are open (the message names the
 *   setting), 400 naming a bad or unsupported parameter, 401/403 as the list.
 *
 * The project rule is the list's (query_json.h, pc_query_read_project): a
 * project key sees only its project's traces.
 *
 * Why one poller thread and not a hook on the write path: the tail must show
 * what the store holds, whoever wrote it (this process's exporter, a storage
 * collector consuming Kafka partitions elsewhere, ClickHouse fed by another
 * fleet); a hook sees only this process's writes, and would reach into every
 * exporter. One thread per process asks the store for the traces that started
 * within `lookback` (newest first, at most `scan` of them) every `poll`, and
 * only while a tail is open; it compares each trace's summary with the
 * previous scan's and fans the new and changed ones out to the subscribers
 * whose filters they pass. The store's cost is one list read per poll however
 * many tails are open; a subscriber costs a queue. Not shown: a trace that
 * started more than `lookback` ago (late spans of an old trace), and, past
 * `scan` traces within `lookback`, the oldest of them.
 *
 * Bounds: at most max_clients tails (503 beyond); each has a queue of at most
 * client_buffer bytes (charged to the memory budget) and a fixed kernel send
 * buffer (64 KiB, not Linux's autotuned 4 MB): a client that does not read
 * fast enough to keep its queue under that is dropped (its connection is cut,
 * counted in prela_query_tail_dropped_total), never buffered without end. One
 * poll's new traces (about 1 KB each) must fit in client_buffer, or even a
 * reading client is dropped in a burst.
 *
 * Threads: the handler runs on the request's connection thread; the stream is
 * read on it too (it blocks there waiting for events, waking every second to
 * notice a client that went away); the poller is its own thread. One mutex
 * guards the subscribers.
 */
#ifndef PC_TAIL_H
#define PC_TAIL_H

#include "budget.h"
#include "component.h"
#include "http.h"
#include "metrics.h"
#include "store.h"

#include <stdint.h>

typedef struct pc_tail pc_tail;

typedef struct pc_tail_config {
    const char *name;      /* the query receiver's id, for logs */
    const pc_store *store; /* read by the poller */
    int max_clients;       /* tails open at once; 0 = the tail is off (503) */
    int64_t client_buffer; /* bytes queued for one client before it is dropped */
    int64_t poll_ms;       /* how often the store is asked while a tail is open */
    int64_t heartbeat_ms;  /* a comment after this long without a byte */
    int64_t lookback_ms;   /* traces that started within it are watched */
    int scan;              /* at most this many of them (newest first) */
    pc_budget *budget;     /* queues are charged here; NULL = unlimited */
    pc_metrics *metrics;   /* NULL = none */
} pc_tail_config;

/* Creates the tail and starts its poller (idle until a tail opens). NULL
 * after logging when the thread cannot start. */
pc_tail *pc_tail_create(const pc_tail_config *cfg);

/* Ends every open stream and refuses new ones (503). Call before the HTTP
 * server stops (it waits for the streams' connections). Accepts NULL; safe
 * twice. */
void pc_tail_stop(pc_tail *t);

/* Stops the poller and frees the tail; every stream must have been freed
 * (the HTTP server stopped). Accepts NULL. */
void pc_tail_destroy(pc_tail *t);

/* The route handler of GET /api/v1/tail (|ctx| is the pc_tail). */
void pc_tail_handle(void *ctx, pc_http_req *req, pc_http_resp *resp);

#endif

/*
 * clickhouse_http.h - one ClickHouse server over its HTTP interface
 * (libcurl): the connection settings, POST of a statement with URL settings,
 * gzip bodies, and what a failed answer means (retry, permanent, bad
 * certificate, bad credentials).
 *
 * Data flow: the `clickhouse` exporter (clickhouse.c: schema setup, the
 * flusher's INSERTs) and its query store (clickhouse_store.c: SELECTs) send
 * every request through pc_ch_http_post; nothing else in the process talks to
 * ClickHouse.
 *
 * Threads: a pc_ch_http is shared by the flusher and every reader. post() is
 * safe from any thread as long as each thread uses its own CURL handle; the
 * pool of idle read handles (acquire/release) has its own lock.
 */
#ifndef PC_CLICKHOUSE_HTTP_H
#define PC_CLICKHOUSE_HTTP_H

#include "arena.h"
#include "buf.h"
#include "clickhouse_zip.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct pc_ch_http pc_ch_http;

/* Where and how to connect; strings are copied by pc_ch_http_create. */
typedef struct pc_ch_http_cfg {
    const char *id;   /* the component's name, for log lines */
    const char *host; /* ClickHouse host */
    int64_t port;
    bool tls;                  /* https */
    const char *user;          /* NULL: "default" */
    const char *password;      /* NULL: none */
    const char *ca_file;       /* NULL or "": the system's CAs */
    bool insecure_skip_verify; /* no certificate / host name check */
} pc_ch_http_cfg;

/* Creates the connection settings (no I/O). Free with pc_ch_http_destroy (NULL-safe). */
pc_ch_http *pc_ch_http_create(const pc_ch_http_cfg *cfg);
void pc_ch_http_destroy(pc_ch_http *H);

/* "http(s)://host:port/", for log lines; owned by |H|. */
const char *pc_ch_http_url(const pc_ch_http *H);

/* The result of one request. */
typedef struct pc_ch_reply {
    CURLcode curl;
    long status;                  /* HTTP status, 0 when none */
    pc_buf body;                  /* the caller frees it */
    char detail[CURL_ERROR_SIZE]; /* libcurl's own words on a failed transfer, or "" */
    int exception_code;           /* X-ClickHouse-Exception-Code header, 0 when absent */
    bool over_budget; /* the memory budget refused the answer (pc_ch_http_charge) */
} pc_ch_reply;

/*
 * POSTs |body| (|n| bytes, gzip-compressed first when |gzip|) with handle |h|;
 * |query| (URL-encoded here) goes in the URL when not NULL, |settings|
 * ("a=1&b=2") too. Waits at most |timeout_ms|. The answer lands in |r|, whose
 * body the caller frees.
 */
void pc_ch_http_post(pc_ch_http *H, CURL *h, const char *query, const char *settings,
                     const char *body, size_t n, bool gzip, long timeout_ms, pc_ch_reply *r);

/*
 * Abandoned reads: until the next call, each post of the calling thread asks
 * |gone|(|ud|) while it waits for the answer (curl's progress callback: many
 * times a second while bytes flow, about once a second while the server
 * thinks) and stops the transfer with CURLE_ABORTED_BY_CALLBACK once it
 * returns true. NULL (every thread's default): posts are never stopped so.
 */
void pc_ch_http_watch(bool (*gone)(void *ud), void *ud);

/*
 * Charged reads: until the next call, each post of the calling thread charges
 * its answer's body to |arena| as it arrives (pc_arena_try_hold: held until
 * the arena dies) and, once the memory budget refuses, gives back what the
 * answer held and stops the transfer (CURLE_WRITE_ERROR, the reply's
 * over_budget set; the caller frees the body at once). NULL (every thread's
 * default): answers are not charged.
 */
void pc_ch_http_charge(pc_arena *arena);

/*
 * Like pc_ch_http_post, but |zbody| (|zn| bytes) is already compressed
 * (clickhouse_zip.h) and is sent with Content-Encoding: |encoding| ("gzip",
 * "zstd"; NULL: sent as it is): a retried insert is compressed once, not
 * once per try.
 */
void pc_ch_http_post_encoded(pc_ch_http *H, CURL *h, const char *query, const char *settings,
                             const char *zbody, size_t zn, const char *encoding, long timeout_ms,
                             pc_ch_reply *r);

/* Replaces the contents of |out| with the gzip stream of |n| bytes at |p|. */
void pc_ch_gzip(pc_buf *out, const char *p, size_t n);

/* The ClickHouse error code: the X-ClickHouse-Exception-Code header when the
 * server sent one, else the "Code: 27, ..." at the start of the body, else 0. */
int pc_ch_error_code(const pc_ch_reply *r);

/*
 * What a failed INSERT means for the rows in it (pc_ch_classify):
 * TRANSIENT: nothing is wrong with the rows or the setup; the same request may
 *   succeed later (network, timeouts, HTTP 5xx without a code naming the
 *   data, too many simultaneous queries, memory limit, too many parts while
 *   merges catch up, replicas or Keeper away).
 * DATA: the rows of this block are refused (a row that does not parse or
 *   convert, a violated constraint, a block spanning too many partitions, a
 *   body too large); a smaller block without the culprits can succeed, so the
 *   exporter bisects and dead-letters the rows that fail alone.
 * FATAL: the setup is wrong (credentials, certificate, unknown table or
 *   column, read-only user, syntax of our own statement); no row can be
 *   stored until an operator fixes it, so rows are kept (retry), never
 *   dead-lettered.
 */
typedef enum pc_ch_error_class {
    PC_CH_ERR_TRANSIENT = 0,
    PC_CH_ERR_DATA = 1,
    PC_CH_ERR_FATAL = 2
} pc_ch_error_class;

/* The class of the failed reply |r| (not for a 200); see pc_ch_error_class. */
pc_ch_error_class pc_ch_classify(const pc_ch_reply *r);
/* The class's name: "transient", "data" or "fatal". */
const char *pc_ch_error_class_name(pc_ch_error_class c);
/* HTTP 200. */
bool pc_ch_reply_ok(const pc_ch_reply *r);
/* The server rejected the data itself, so sending it again cannot help. */
bool pc_ch_reply_permanent(const pc_ch_reply *r);
/* The server's certificate was refused (untrusted, expired, or not for this host). */
bool pc_ch_reply_tls_refused(const pc_ch_reply *r);
/* The server refused the user name or password. */
bool pc_ch_reply_auth_refused(const pc_ch_reply *r);

/* One line describing the failed reply |r| into |out|; certificate and
 * credential failures name the settings to check. */
void pc_ch_http_describe(const pc_ch_http *H, const pc_ch_reply *r, char *out, size_t len);

/* Logs why request |what| failed, frees r->body; returns -1. */
int pc_ch_http_log_failure(pc_ch_http *H, pc_ch_reply *r, const char *what);

/*
 * Runs |sql| (schema setup, start-up checks) with a handle of its own until it
 * succeeds or |timeout_ms| passed (the server may be starting): a failure that
 * may pass is tried again every 200 ms, each request getting the time left.
 * The answer lands in |out| (the caller frees it) when it is not NULL.
 * 0, or -1 after logging that |what| failed.
 */
int pc_ch_http_setup_sql(pc_ch_http *H, const char *sql, const char *what, long timeout_ms,
                         pc_buf *out);

/*
 * `compression: auto`: whether the server takes zstd bodies, asked by sending
 * it a zstd-compressed `SELECT 1`. PC_CH_CODEC_ZSTD when it answers 200, else
 * PC_CH_CODEC_GZIP (18.16 answers 'Unknown Content-Encoding', code 89; any
 * other failure also falls back to gzip, which every server takes), logged.
 */
pc_ch_codec pc_ch_http_probe_zstd(pc_ch_http *H, long timeout_ms);

/* Lends a read handle (idle or new); give it back with pc_ch_http_release. */
CURL *pc_ch_http_acquire(pc_ch_http *H);
void pc_ch_http_release(pc_ch_http *H, CURL *h);

#endif

/*
 * clickhouse_http.c - one ClickHouse server over HTTP(S) (see
 * clickhouse_http.h): URL and auth headers built once at create, one POST per
 * statement, and the classification of failed answers that the exporter's
 * retry loop and the query store act on; the start-up requests (retried
 * while the server starts) and the probe of the zstd bodies it takes.
 *
 * Data flow: clickhouse_flush.c / clickhouse_store.c → pc_ch_http_post → libcurl
 * → the server's HTTP interface; the answer body comes back in a pc_buf.
 *
 * Ownership: |H| owns its copies of the settings, the header list and the
 * idle handles in its pool; a caller owns the handle it uses and the body of
 * every reply it receives.
 */
#include "clickhouse_http.h"

#include "log.h"
#include "mem.h"
#include "timefmt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#define POOL_MAX 8

struct pc_ch_http {
    char *id, *host, *ca_file;
    bool insecure;
    char *base_url; /* "http(s)://host:port/"; every statement names its database */
    struct curl_slist *headers;
    pthread_mutex_t mu;   /* the pool */
    CURL *pool[POOL_MAX]; /* idle read handles */
    int n_pool;
};

/* libcurl's global state, once per process, before any thread uses it. */
static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

pc_ch_http *pc_ch_http_create(const pc_ch_http_cfg *c)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);
    pc_ch_http *H = pc_xcalloc(1, sizeof(*H));
    H->id = pc_xstrdup(c->id);
    H->host = pc_xstrdup(c->host);
    H->ca_file = c->ca_file && *c->ca_file ? pc_xstrdup(c->ca_file) : NULL;
    H->insecure = c->insecure_skip_verify;
    pthread_mutex_init(&H->mu, NULL);
    pc_buf url = PC_BUF_INIT;
    pc_buf_printf(&url, "%s://%s:%lld/", c->tls ? "https" : "http", c->host, (long long)c->port);
    H->base_url = pc_buf_steal(&url, NULL);
    pc_buf hdr = PC_BUF_INIT;
    pc_buf_printf(&hdr, "X-ClickHouse-User: %s", c->user ? c->user : "default");
    H->headers = curl_slist_append(NULL, hdr.data);
    pc_buf_reset(&hdr);
    pc_buf_printf(&hdr, "X-ClickHouse-Key: %s", c->password ? c->password : "");
    H->headers = curl_slist_append(H->headers, hdr.data);
    pc_buf_free(&hdr);
    return H;
}

void pc_ch_http_destroy(pc_ch_http *H)
{
    if (!H) return;
    for (int i = 0; i < H->n_pool; i++)
        curl_easy_cleanup(H->pool[i]);
    curl_slist_free_all(H->headers);
    pthread_mutex_destroy(&H->mu);
    free(H->base_url);
    free(H->ca_file);
    free(H->host);
    free(H->id);
    free(H);
}

const char *pc_ch_http_url(const pc_ch_http *H)
{
    return H->base_url;
}

/* The calling thread's charged reads (pc_ch_http_charge): the arena, and how
 * much of the current answer's capacity it holds. */
static __thread pc_arena *charge_arena;
static __thread size_t charge_held, charge_base; /* base: the capacity it had before */

void pc_ch_http_charge(pc_arena *arena)
{
    charge_arena = arena;
}

/* Appends to the answer; 0 (curl stops: CURLE_WRITE_ERROR) when the memory
 * budget refuses its growth. */
static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    pc_ch_reply *r = ud;
    pc_buf_append(&r->body, p, size * n);
    if (charge_arena && r->body.cap > charge_held) {
        if (pc_arena_try_hold(charge_arena, r->body.cap - charge_held)) {
            pc_arena_unhold(charge_arena, charge_held - charge_base);
            charge_held = charge_base;
            r->over_budget = true;
            return 0;
        }
        charge_held = r->body.cap;
    }
    return size * n;
}

/* Picks X-ClickHouse-Exception-Code out of the response headers. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    static const char name[] = "x-clickhouse-exception-code:";
    size_t len = size * n;
    pc_ch_reply *r = ud;
    if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        int code = 0;
        for (size_t i = sizeof(name) - 1; i < len && i < 40; i++) {
            if (p[i] >= '0' && p[i] <= '9')
                code = code * 10 + (p[i] - '0');
            else if (p[i] != ' ')
                break;
        }
        r->exception_code = code;
    }
    return len;
}

void pc_ch_gzip(pc_buf *out, const char *p, size_t n)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    deflateInit2(&zs, 3, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    size_t bound = deflateBound(&zs, n);
    pc_buf_reset(out);
    pc_buf_reserve(out, bound);
    zs.next_in = (Bytef *)p;
    zs.avail_in = (uInt)n;
    zs.next_out = (Bytef *)out->data;
    zs.avail_out = (uInt)bound;
    deflate(&zs, Z_FINISH);
    out->len = zs.total_out;
    deflateEnd(&zs);
}

/* The calling thread's abandonment check (pc_ch_http_watch); none by default. */
static __thread bool (*watch_gone)(void *ud);
static __thread void *watch_ud;

void pc_ch_http_watch(bool (*gone)(void *ud), void *ud)
{
    watch_gone = gone;
    watch_ud = ud;
}

/* curl's progress callback while a watch is set: non-zero stops the transfer. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ud, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return watch_gone && watch_gone(watch_ud);
}

/* POSTs |n| bytes at |body|, sent with Content-Encoding: |encoding| unless NULL. */
static void post(pc_ch_http *H, CURL *h, const char *query, const char *settings, const char *body,
                 size_t n, const char *encoding, long timeout_ms, pc_ch_reply *r)
{
    pc_buf url = PC_BUF_INIT;
    pc_buf_puts(&url, H->base_url);
    if (settings) pc_buf_printf(&url, "?%s", settings);
    if (query) {
        char *q = curl_easy_escape(h, query, 0);
        pc_buf_printf(&url, "%cquery=%s", settings ? '&' : '?', q);
        curl_free(q);
    }
    struct curl_slist *hdrs = H->headers, *gz = NULL;
    if (encoding) {
        char line[64];
        snprintf(line, sizeof(line), "Content-Encoding: %s", encoding);
        gz = curl_slist_append(NULL, line);
        gz->next = H->headers; /* borrowed tail; unlinked before freeing */
        hdrs = gz;
    }
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    r->exception_code = 0;
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms > 50 ? timeout_ms : 50L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000L);
    r->detail[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->detail);
    if (H->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, H->ca_file);
    if (H->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (watch_gone) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    r->status = 0;
    charge_held = charge_base = r->body.cap; /* only what this answer adds is charged */
    r->over_budget = false;
    r->curl = curl_easy_perform(h);
    if (r->curl == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL); /* |r| may not outlive the handle */
    curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
    if (gz) {
        gz->next = NULL;
        curl_slist_free_all(gz);
    }
    pc_buf_free(&url);
}

void pc_ch_http_post(pc_ch_http *H, CURL *h, const char *query, const char *settings,
                     const char *body, size_t n, bool gzip, long timeout_ms, pc_ch_reply *r)
{
    if (!gzip) {
        post(H, h, query, settings, body, n, NULL, timeout_ms, r);
        return;
    }
    pc_buf zbody = PC_BUF_INIT;
    pc_ch_gzip(&zbody, body, n);
    post(H, h, query, settings, zbody.data, zbody.len, "gzip", timeout_ms, r);
    pc_buf_free(&zbody);
}

void pc_ch_http_post_encoded(pc_ch_http *H, CURL *h, const char *query, const char *settings,
                             const char *zbody, size_t zn, const char *encoding, long timeout_ms,
                             pc_ch_reply *r)
{
    post(H, h, query, settings, zbody, zn, encoding, timeout_ms, r);
}

int pc_ch_error_code(const pc_ch_reply *r)
{
    if (r->exception_code > 0) return r->exception_code;
    const char *p = r->body.data ? strstr(r->body.data, "Code: ") : NULL;
    return p ? atoi(p + 6) : 0;
}

/* Whether the body of |r| contains |s| (ASCII case-insensitively). */
static bool body_says(const pc_ch_reply *r, const char *s)
{
    return r->body.data && strcasestr(r->body.data, s) != NULL;
}

pc_ch_error_class pc_ch_classify(const pc_ch_reply *r)
{
    if (pc_ch_reply_tls_refused(r) || pc_ch_reply_auth_refused(r)) return PC_CH_ERR_FATAL;
    if (r->curl != CURLE_OK) return PC_CH_ERR_TRANSIENT;
    switch (pc_ch_error_code(r)) {
    case 252: /* TOO_MANY_PARTS: the block's partitions, or merges behind (transient) */
        return body_says(r, "partitions") ? PC_CH_ERR_DATA : PC_CH_ERR_TRANSIENT;
    case 6:   /* CANNOT_PARSE_TEXT */
    case 26:  /* CANNOT_PARSE_QUOTED_STRING */
    case 27:  /* CANNOT_PARSE_INPUT_ASSERTION_FAILED */
    case 38:  /* CANNOT_PARSE_DATE */
    case 41:  /* CANNOT_PARSE_DATETIME */
    case 53:  /* TYPE_MISMATCH */
    case 69:  /* ARGUMENT_OUT_OF_BOUND */
    case 70:  /* CANNOT_CONVERT_TYPE */
    case 72:  /* CANNOT_PARSE_NUMBER */
    case 117: /* INCORRECT_DATA */
    case 131: /* TOO_LARGE_STRING_SIZE */
    case 321: /* VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE */
    case 407: /* DECIMAL_OVERFLOW */
    case 469: /* VIOLATED_CONSTRAINT */
        return PC_CH_ERR_DATA;
    case 16:  /* NO_SUCH_COLUMN_IN_TABLE */
    case 47:  /* UNKNOWN_IDENTIFIER */
    case 60:  /* UNKNOWN_TABLE */
    case 62:  /* SYNTAX_ERROR (of our own statement) */
    case 81:  /* UNKNOWN_DATABASE */
    case 164: /* READONLY */
    case 497: /* ACCESS_DENIED */
        return PC_CH_ERR_FATAL;
    case 0:
        /* No code: 400 / 413 are about the body; other statuses say nothing. */
        return r->status == 400 || r->status == 413 ? PC_CH_ERR_DATA : PC_CH_ERR_TRANSIENT;
    default:
        /* TIMEOUT_EXCEEDED 159, TOO_SLOW 160, TOO_MANY_SIMULTANEOUS_QUERIES 202,
         * SOCKET_TIMEOUT 209, NETWORK_ERROR 210, MEMORY_LIMIT_EXCEEDED 241,
         * TABLE_IS_READ_ONLY 242, KEEPER_EXCEPTION 999 ... and codes we do not
         * know: retrying costs a little time; dead-lettering would lose rows. */
        return PC_CH_ERR_TRANSIENT;
    }
}

const char *pc_ch_error_class_name(pc_ch_error_class c)
{
    return c == PC_CH_ERR_DATA ? "data" : c == PC_CH_ERR_FATAL ? "fatal" : "transient";
}

bool pc_ch_reply_permanent(const pc_ch_reply *r)
{
    if (r->curl != CURLE_OK) return false;
    if (r->status == 400 || r->status == 413) return true;
    switch (pc_ch_error_code(r)) {
    case 6:   /* CANNOT_PARSE_TEXT */
    case 26:  /* CANNOT_PARSE_QUOTED_STRING */
    case 27:  /* CANNOT_PARSE_INPUT_ASSERTION_FAILED */
    case 38:  /* CANNOT_PARSE_DATE */
    case 41:  /* CANNOT_PARSE_DATETIME */
    case 62:  /* SYNTAX_ERROR */
    case 72:  /* CANNOT_PARSE_NUMBER */
    case 117: /* INCORRECT_DATA */
    case 131: /* TOO_LARGE_STRING_SIZE */
        return true;
    default:
        return false;
    }
}

bool pc_ch_reply_tls_refused(const pc_ch_reply *r)
{
    return r->curl == CURLE_PEER_FAILED_VERIFICATION || r->curl == CURLE_SSL_CACERT_BADFILE ||
           r->curl == CURLE_SSL_ISSUER_ERROR;
}

bool pc_ch_reply_auth_refused(const pc_ch_reply *r)
{
    if (r->curl != CURLE_OK) return false;
    if (r->status == 401 || r->status == 403) return true;
    switch (pc_ch_error_code(r)) {
    case 192: /* UNKNOWN_USER */
    case 193: /* WRONG_PASSWORD */
    case 194: /* REQUIRED_PASSWORD */
    case 516: /* AUTHENTICATION_FAILED */
        return true;
    default:
        return false;
    }
}

void pc_ch_http_describe(const pc_ch_http *H, const pc_ch_reply *r, char *out, size_t len)
{
    if (pc_ch_reply_tls_refused(r)) {
        snprintf(
            out, len, "TLS: %s (%s): check tls.ca_file (%s) and that the certificate is for %s",
            r->detail[0] ? r->detail : curl_easy_strerror(r->curl), curl_easy_strerror(r->curl),
            H->ca_file ? H->ca_file : "empty: the system's CAs", H->host);
        return;
    }
    if (r->curl != CURLE_OK) {
        snprintf(out, len, "%s%s%s", curl_easy_strerror(r->curl), r->detail[0] ? ": " : "",
                 r->detail);
        return;
    }
    const char *b = r->body.data ? r->body.data : "";
    int n = (int)strcspn(b, "\n");
    snprintf(out, len, "%sHTTP %ld: %.*s",
             pc_ch_reply_auth_refused(r) ? "authentication failed (check user and password): " : "",
             r->status, n < 300 ? n : 300, b);
}

bool pc_ch_reply_ok(const pc_ch_reply *r)
{
    return r->curl == CURLE_OK && r->status == 200;
}

CURL *pc_ch_http_acquire(pc_ch_http *H)
{
    CURL *h = NULL;
    pthread_mutex_lock(&H->mu);
    if (H->n_pool > 0) h = H->pool[--H->n_pool];
    pthread_mutex_unlock(&H->mu);
    return h ? h : curl_easy_init();
}

void pc_ch_http_release(pc_ch_http *H, CURL *h)
{
    pthread_mutex_lock(&H->mu);
    if (H->n_pool < POOL_MAX) {
        H->pool[H->n_pool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&H->mu);
    if (h) curl_easy_cleanup(h);
}

int pc_ch_http_log_failure(pc_ch_http *H, pc_ch_reply *r, const char *what)
{
    char why[800];
    pc_ch_http_describe(H, r, why, sizeof(why));
    pc_log(PC_LOG_ERROR, H->id, "%s: %s", what, why);
    pc_buf_free(&r->body);
    return -1;
}

int pc_ch_http_setup_sql(pc_ch_http *H, const char *sql, const char *what, long timeout_ms,
                         pc_buf *out)
{
    int64_t deadline = pc_time_mono_ns() + (int64_t)timeout_ms * 1000000LL;
    CURL *h = curl_easy_init();
    pc_ch_reply r = {0};
    for (;;) {
        pc_buf_free(&r.body);
        int64_t left = (deadline - pc_time_mono_ns()) / 1000000LL;
        pc_ch_http_post(H, h, NULL, NULL, sql, strlen(sql), false,
                        (long)(left > 1 ? left : 1), &r);
        if (pc_ch_reply_ok(&r) || pc_ch_reply_permanent(&r) || pc_ch_reply_tls_refused(&r) ||
            pc_ch_reply_auth_refused(&r) || r.curl == CURLE_OPERATION_TIMEDOUT ||
            pc_time_mono_ns() + 200 * 1000000LL >= deadline)
            break;
        struct timespec ts = {0, 200 * 1000000LL};
        nanosleep(&ts, NULL);
    }
    curl_easy_cleanup(h);
    if (!pc_ch_reply_ok(&r)) return pc_ch_http_log_failure(H, &r, what);
    if (out)
        *out = r.body;
    else
        pc_buf_free(&r.body);
    return 0;
}

/* Why ask and not go by the version: a proxy in front of the server may decide. */
pc_ch_codec pc_ch_http_probe_zstd(pc_ch_http *H, long timeout_ms)
{
    static const char sql[] = "SELECT 1";
    pc_ch_zip *z = pc_ch_zip_create(PC_CH_CODEC_ZSTD, 1);
    pc_buf body = PC_BUF_INIT;
    pc_ch_reply r = {0};
    CURL *h = curl_easy_init();
    bool ok = pc_ch_zip_body(z, &body, sql, sizeof(sql) - 1) == 0;
    if (ok) pc_ch_http_post_encoded(H, h, NULL, NULL, body.data, body.len, "zstd", timeout_ms, &r);
    ok = ok && pc_ch_reply_ok(&r) && r.body.data && !strncmp(r.body.data, "1\n", 2);
    if (!ok) {
        const char *why = r.status && r.body.data ? r.body.data : "no answer";
        pc_log(PC_LOG_INFO, H->id,
               "compression auto: the server does not take zstd bodies (%.*s); inserts are "
               "gzip-compressed",
               (int)(strcspn(why, "\n") < 200 ? strcspn(why, "\n") : 200), why);
    }
    curl_easy_cleanup(h);
    pc_buf_free(&r.body);
    pc_buf_free(&body);
    pc_ch_zip_destroy(z);
    return ok ? PC_CH_CODEC_ZSTD : PC_CH_CODEC_GZIP;
}

/*
 * local_harness.h - the embedded store's unit-test harness, shared by
 * test_local.c (storage, summaries, search, retention, migrations 1..3) and
 * test_local_llm.c (issue 13: costs, sessions, users, models, messages,
 * attribute filters, sessions and stats reads, migration 3 -> 4).
 *
 * test_local_stats.c (the stats from hour rollups equal those from spans)
 * uses it too, and shares collect_stats with test_local_llm.c.
 *
 * A store is a real `local` exporter driven through its ops exactly as the
 * pipeline drives it (options table -> validate -> create -> start ->
 * consume -> store() reads -> shutdown -> destroy), in a temp directory of
 * its own that close_store removes. Batches are built by hand with the
 * derived fields set as normalize would set them.
 */
#ifndef PC_TEST_LOCAL_HARNESS_H
#define PC_TEST_LOCAL_HARNESS_H

#include "check.h"
#include "options.h"

#include "config.h"
#include "exporters/local.h"
#include "exporters/local_text.h"
#include "span.h"
#include "store.h"
#include "timefmt.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NS 1000000000LL
#define T0 1737972000000000000LL /* 2025-01-27T10:00:00Z */

/* ------------------------------------------------------------- harness -- */

typedef struct store_h {
    char dir[64];
    void *cfg;
    void *ctx;
    const pc_store *st;
} store_h;

/* Fills the config through the real option table with |n| key/value pairs. */
static inline void *make_cfg(const char *const *kv, size_t n)
{
    char err[256] = "";
    int rc;
    void *cfg = pc_test_options(&pc_local_exporter_ops, "exporters.local", NULL, NULL, kv, n, err,
                                sizeof(err), &rc);
    if (rc != 0) fprintf(stderr, "apply_options: %s\n", err);
    CHECK_EQ_INT(rc, 0);
    return cfg;
}

/*
 * Creates and starts a local exporter in a fresh temp dir (or |dir| when given),
 * with |extra| settings (n pairs) after the test defaults.
 */
static inline void open_store_kv(store_h *h, const char *dir, const char *retention,
                          const char *const *extra, size_t n)
{
    if (dir) {
        snprintf(h->dir, sizeof(h->dir), "%s", dir);
    } else {
        snprintf(h->dir, sizeof(h->dir), "/tmp/pc_local_XXXXXX");
        CHECK(mkdtemp(h->dir) != NULL);
    }
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/data/store", h->dir); /* mkdir -p of two levels */
    const char *kv[16] = {"directory",   sub,      "retention", retention ? retention : "0",
                          "synchronous", "normal", "timeout",   "30s"};
    for (size_t i = 0; i < 2 * n && i < 8; i++)
        kv[8 + i] = extra[i];
    h->cfg = make_cfg(kv, 4 + n);
    char err[256] = "";
    CHECK_EQ_INT(pc_local_exporter_ops.validate(h->cfg, err, sizeof(err)), 0);
    h->ctx = pc_local_exporter_ops.create("local", h->cfg, NULL);
    CHECK(h->ctx != NULL);
    CHECK_EQ_INT(pc_local_exporter_ops.start(h->ctx, NULL), 0);
    h->st = pc_local_exporter_ops.store(h->ctx);
    CHECK(h->st != NULL);
}

static inline void open_store(store_h *h, const char *dir, const char *retention)
{
    open_store_kv(h, dir, retention, NULL, 0);
}

/* Removes the store files and directories under |dir|, and |dir|. */
static inline void remove_store_dir(const char *dir)
{
    char p[256];
    static const char *const files[] = {"prela.db",        "prela.db-wal",
                                        "prela.db-shm",    "prela-search.db",
                                        "prela-search.db-wal", "prela-search.db-shm"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/data/store/%s", dir, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof(p), "%s/data/store", dir);
    rmdir(p);
    snprintf(p, sizeof(p), "%s/data", dir);
    rmdir(p);
    CHECK_EQ_INT(rmdir(dir), 0);
}

static inline void close_store(store_h *h, bool remove_dir)
{
    pc_local_exporter_ops.shutdown(h->ctx);
    pc_local_exporter_ops.shutdown(h->ctx); /* idempotent */
    pc_local_exporter_ops.destroy(h->ctx);
    pc_config_free_options(pc_local_exporter_ops.options, h->cfg);
    free(h->cfg);
    if (remove_dir) remove_store_dir(h->dir);
}

static inline pc_str S(pc_batch *b, const char *s)
{
    return (pc_str){pc_arena_strndup(b->arena, s, strlen(s)), strlen(s)};
}

/* One span with the derived fields set as normalize would. */
typedef struct span_spec {
    const char *trace, *span, *parent, *name, *service, *project;
    pc_span_type type;
    pc_status status;
    int64_t start, end;
    int64_t in_tok, out_tok;
} span_spec;

static inline pc_span *add_span(pc_batch *b, span_spec sp)
{
    pc_span *s = pc_batch_add(b);
    s->trace_id = S(b, sp.trace);
    s->span_id = S(b, sp.span);
    s->parent_id = S(b, sp.parent ? sp.parent : "");
    s->name = S(b, sp.name ? sp.name : "op");
    s->kind = 1;
    s->start_ns = sp.start;
    s->end_ns = sp.end;
    s->project_id = S(b, sp.project ? sp.project : "proj-1");
    s->source = PC_SOURCE_PRELA;
    s->span_type = sp.type;
    s->status = sp.status;
    s->service_name = S(b, sp.service ? sp.service : "svc");
    s->input_tokens = sp.in_tok;
    s->output_tokens = sp.out_tok;
    return s;
}

static inline pc_kv kv_str(pc_batch *b, const char *k, const char *v)
{
    pc_kv kv = {S(b, k), {.type = PC_V_STR}};
    kv.value.s = S(b, v);
    return kv;
}

static inline pc_batch *new_batch(int64_t received_ns)
{
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = received_ns;
    return b;
}

static inline pc_result consume(store_h *h, pc_batch *b)
{
    return pc_local_exporter_ops.consume(h->ctx, b);
}

static inline int count_trace(void *ud, const pc_trace_row *r)
{
    (void)r;
    (*(int *)ud)++;
    return 0;
}

/* How many traces (at most 100) the store's search finds for |q| in
 * |project| (NULL: every project). */
static inline int search_count(store_h *h, const char *project, const char *q)
{
    int n = 0;
    CHECK_EQ_INT(h->st->ops->search(h->st->ctx, project, q, 100, count_trace, &n), 0);
    return n;
}

/* A stats row copied out of a pc_stats_cb: r.group points at group, so a
 * copy must not move (compare group, not r.group, after copying one). */
typedef struct stats_row {
    pc_stats_row r;
    char group[64];
} stats_row;

#define STATS_ROWS_MAX 512

typedef struct stats_rows {
    stats_row v[STATS_ROWS_MAX];
    int n;
} stats_rows;

/* pc_stats_cb appending each row to the stats_rows |ud| (set n = 0 first);
 * stops the read (returns 1) once STATS_ROWS_MAX rows are held. */
static inline int collect_stats(void *ud, const pc_stats_row *r)
{
    stats_rows *l = ud;
    if (l->n >= STATS_ROWS_MAX) return 1;
    stats_row *c = &l->v[l->n++];
    c->r = *r;
    snprintf(c->group, sizeof(c->group), "%s", r->group);
    c->r.group = c->group;
    return 0;
}

static inline int64_t db_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Runs |sql| on the store file |path| from a connection of its own (the
 * store's writer may be running: it waits for its lock). */
static inline void db_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) fprintf(stderr, "db_exec %s: %s\n", sql, err ? err : "");
    CHECK_EQ_INT(rc, SQLITE_OK);
    sqlite3_free(err);
    sqlite3_close(db);
}

/* Rowids (search blocks) of the span_text index in the file |ipath| that
 * answer the FTS5 query |q|, only |rowid| counted unless it is negative;
 * read on a connection of the test's own (tokenizer registered). */
static inline int64_t index_hits(const char *ipath, const char *q, int64_t rowid)
{
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open_v2(ipath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    CHECK_EQ_INT(pc_local_text_register(db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM span_text WHERE span_text MATCH ?1"
                           " AND (?2 < 0 OR rowid = ?2)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, rowid);
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Rowids (search blocks) the span_text index beside the store |path| (its
 * prela-search.db) answers for the FTS5 query |q|. Call
 * pc_local_search_flush first. */
static inline int64_t fts_hits(const char *path, const char *q)
{
    char ipath[512];
    const char *slash = strrchr(path, '/');
    snprintf(ipath, sizeof(ipath), "%.*s/prela-search.db", (int)(slash ? slash - path : 1),
             slash ? path : ".");
    return index_hits(ipath, q, -1);
}

#endif

/*
 * local_index.c - the search index writer of the embedded store (see
 * local_index.h): prela-search.db, its connection and thread, the queue of
 * documents from the span writer, and the catch-up from prela.db at start.
 *
 * Why a file and a thread of its own: tokenizing the search text and FTS5's
 * segment writes and merges were about 40 % of the span writer's CPU (a load
 * of 400,000 spans: 23 collector CPU-s with the index in its transactions,
 * 13 without). SQLite has one writer per file, so the index moved to another
 * file, written on the other core. Measured on 600,000-span loads of
 * bench-query-scale's workload (8 connections, 2 cores, runs alternated):
 * 19,200-23,000 spans/s against 12,900-14,500 with the index in prela.db,
 * about the same collector CPU per span, request p99 78-104 ms against
 * 122-147; peak RSS 105-108 MB against 93 (this connection's page cache and
 * the queue).
 *
 * prela-search.db (PRAGMA user_version 1):
 *   span_text    FTS5 as schema 6 had it in prela.db (contentless, detail=none,
 *                columnsize=0, tokenizer pc_trigram, automerge 16, crisismerge
 *                64); rowid = search block (tid >> PC_LOCAL_BLOCK_BITS).
 *   index_state  one row: upto. Invariant: every span of prela.db with rowid
 *                <= upto has its search text in span_text (written in the
 *                same transaction as upto). Documents of later spans may be
 *                there too (so a trigram may name a block that no longer
 *                holds it: search verifies every candidate).
 * Spans past upto are the ones the thread has not written yet (at most
 * PC_LOCAL_INDEX_QUEUE_MAX bytes of text), or, after a crash, the ones whose
 * queued documents were lost: pc_local_index_create indexes them from
 * prela.db before the writer starts. spans rowids grow with ingest; retention
 * deletes the oldest, so a rowid is reused only once every span is deleted
 * (then upto > the largest rowid: the index is cleared and rebuilt).
 */
#include "local_index.h"

#include "local_checkpoint.h"
#include "local_recent.h"
#include "local_schema.h"
#include "local_store.h"
#include "local_text.h"

#include "buf.h"
#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define INDEX_VERSION 1
#define CATCHUP_CHUNK 20000 /* spans per catch-up transaction */
#define INDEX_CACHE_KIB 4096 /* the connection's page cache (the writer's is 64 MiB) */
#define GATHER_MS 250
#define GATHER_BYTES (2u << 20)
_Static_assert(GATHER_BYTES < PC_LOCAL_INDEX_QUEUE_MAX,
               "the writer would wait before a gather ends");

static const char SCHEMA[] =
    "CREATE VIRTUAL TABLE IF NOT EXISTS span_text USING fts5(text, content='', detail=none,"
    " columnsize=0, tokenize='pc_trigram');"
    "CREATE TABLE IF NOT EXISTS index_state (one INTEGER PRIMARY KEY CHECK (one = 1),"
    " upto INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO index_state (one, upto) VALUES (1, 0);"
    "INSERT INTO span_text (span_text, rank) VALUES ('automerge', 16);"
    "INSERT INTO span_text (span_text, rank) VALUES ('crisismerge', 64);"
    "PRAGMA user_version = " STR(INDEX_VERSION) ";";

/* ?1 the last upto: the next spans of prela.db and their documents. */
static const char CATCHUP[] =
    "SELECT s.rowid, s.tid >> " STR(PC_LOCAL_BLOCK_BITS) ", pc_search_text(s.name,"
    " pc_unzip(s.attributes), pc_unzip(s.events), pc_unzip(s.input_messages),"
    " pc_unzip(s.output_messages)) FROM store.spans s WHERE s.rowid > ?1 ORDER BY s.rowid"
    " LIMIT " STR(CATCHUP_CHUNK);

typedef struct doc {
    struct doc *next;
    int64_t block;
    pc_index_op op;
    size_t n;
    char text[];
} doc;

typedef struct doc_list {
    doc *head, **tail;
    size_t bytes;
} doc_list;

struct pc_local_index {
    const char *id;
    sqlite3 *db; /* main: prela-search.db; store: prela.db (read only by the catch-up) */
    pc_local_checkpoint *ckpt; /* checkpoints main's log */
    pc_local_recent *recent;   /* borrowed: the text for searches until written (or NULL) */
    sqlite3_stmt *begin, *commit, *rollback, *ins, *del, *set_upto;
    doc_list staged; /* writer thread only */
    pc_buf join;        /* the index thread's (catch_up's before it): a block's texts joined */
    int64_t join_block; /* the block of join */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, room_cv;
    doc_list queue;     /* mu */
    int64_t queue_upto; /* mu: the largest upto committed with the queued documents */
    int64_t upto;       /* mu: index_state.upto as last committed */
    bool failed;        /* mu: a write failed: upto stays (the spans stay searchable) */
    bool stopping;      /* mu */
    bool busy;          /* mu: the thread is writing what it took from the queue */
    int flushes;        /* mu: pc_local_index_flush calls waiting */
    pthread_t thread;
    bool thread_running;
};

static void list_init(doc_list *l)
{
    l->head = NULL;
    l->tail = &l->head;
    l->bytes = 0;
}

static void list_free(doc_list *l)
{
    for (doc *d = l->head, *nx; d; d = nx) {
        nx = d->next;
        free(d);
    }
    list_init(l);
}

/* Writes one document (a statement of its op). SQLite code. */
static int write_doc(pc_local_index *ix, int64_t block, pc_index_op op, const char *text,
                     size_t n)
{
    sqlite3_stmt *st = op == PC_INDEX_DELETE ? ix->del : ix->ins;
    sqlite3_bind_int64(st, 1, block);
    sqlite3_bind_text64(st, 2, text, n, SQLITE_STATIC, SQLITE_UTF8);
    return pc_local_step(st);
}

/*
 * ADD documents go through join: adjacent documents of one block (the
 * writer stages a block's text once per transaction of prela.db, so a block
 * arrives in a few of them; catch_up reads a block's spans one by one) are
 * written as one, their texts joined by a line break (no trigram spans a
 * line break). The tokenizer then emits each of the block's trigrams once
 * where it emitted them once per document. The index is the same: with
 * detail=none a block holds a trigram or not, however many documents
 * brought it (a DELETE of it takes it away whatever their number).
 */

/* Writes the joined text, if any. SQLite code. */
static int join_flush(pc_local_index *ix)
{
    if (ix->join.len == 0) return SQLITE_OK;
    int rc = write_doc(ix, ix->join_block, PC_INDEX_ADD, ix->join.data, ix->join.len);
    pc_buf_reset(&ix->join);
    return rc;
}

/* Adds the ADD document |text| of |block| to the joined text, first writing
 * another block's. SQLite code. */
static int join_add(pc_local_index *ix, int64_t block, const char *text, size_t n)
{
    int rc = SQLITE_OK;
    if (ix->join.len && block != ix->join_block) rc = join_flush(ix);
    if (n == 0) return rc;
    if (ix->join.len) pc_buf_putc(&ix->join, '\n');
    pc_buf_append(&ix->join, text, n);
    ix->join_block = block;
    return rc;
}

/* After a transaction: the joined text is empty (it was written, or the
 * transaction rolled back), and not kept if a block of huge spans grew it
 * past a gather. */
static void join_done(pc_local_index *ix)
{
    if (ix->join.cap > GATHER_BYTES) pc_buf_free(&ix->join);
    pc_buf_reset(&ix->join);
}

/* Writes |list| and upto |upto| in one transaction. SQLite code. */
static int write_list(pc_local_index *ix, const doc_list *list, int64_t upto)
{
    int rc = pc_local_step(ix->begin);
    for (const doc *d = list->head; d && rc == SQLITE_OK; d = d->next) {
        if (d->op == PC_INDEX_ADD) {
            rc = join_add(ix, d->block, d->text, d->n);
            continue;
        }
        rc = join_flush(ix);
        if (rc == SQLITE_OK) rc = write_doc(ix, d->block, d->op, d->text, d->n);
    }
    if (rc == SQLITE_OK) rc = join_flush(ix);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(ix->set_upto, 1, upto);
        rc = pc_local_step(ix->set_upto);
    }
    if (rc == SQLITE_OK) rc = pc_local_step(ix->commit);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(ix->db)) pc_local_step(ix->rollback);
    return rc;
}

/*
 * Indexes the spans of prela.db past upto, CATCHUP_CHUNK per transaction,
 * a block's adjacent spans as one document (join_add); first clears the
 * index when upto is past every span (see the file comment). Before the
 * thread starts. 0 / -1 after logging.
 */
static int catch_up(pc_local_index *ix, const char *path)
{
    int64_t upto = pc_local_scalar(ix->db, "SELECT upto FROM index_state");
    int64_t last = pc_local_scalar(ix->db, "SELECT coalesce(max(rowid), 0) FROM store.spans");
    if (upto < 0 || last < 0) {
        pc_log(PC_LOG_ERROR, ix->id, "cannot read %s: %s", path, sqlite3_errmsg(ix->db));
        return -1;
    }
    if (upto > last) {
        if (sqlite3_exec(ix->db,
                         "BEGIN; INSERT INTO span_text (span_text) VALUES ('delete-all');"
                         " UPDATE index_state SET upto = 0; COMMIT",
                         NULL, NULL, NULL) != SQLITE_OK) {
            pc_log(PC_LOG_ERROR, ix->id, "cannot clear %s: %s", path, sqlite3_errmsg(ix->db));
            sqlite3_exec(ix->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        upto = 0;
    }
    int64_t todo = last - upto; /* an upper bound: rowids may have gaps */
    if (todo > 100000)
        pc_log(PC_LOG_INFO, ix->id,
               "search index %s: indexing up to %lld spans (rowid %lld to %lld)",
               path, (long long)todo, (long long)upto + 1, (long long)last);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(ix->db, CATCHUP, -1, &st, NULL);
    int64_t done = 0;
    while (rc == SQLITE_OK && upto < last) {
        rc = pc_local_step(ix->begin);
        sqlite3_bind_int64(st, 1, upto);
        int64_t next = upto;
        int src;
        while (rc == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
            next = sqlite3_column_int64(st, 0);
            const char *text = (const char *)sqlite3_column_text(st, 2);
            size_t n = (size_t)sqlite3_column_bytes(st, 2);
            if (text && n) rc = join_add(ix, sqlite3_column_int64(st, 1), text, n);
            done++;
        }
        if (rc == SQLITE_OK && src != SQLITE_DONE) rc = src;
        if (rc == SQLITE_OK) rc = join_flush(ix);
        join_done(ix);
        sqlite3_reset(st);
        if (rc == SQLITE_OK && next == upto) { /* nothing past upto after all */
            pc_local_step(ix->rollback);
            break;
        }
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(ix->set_upto, 1, next);
            rc = pc_local_step(ix->set_upto);
        }
        if (rc == SQLITE_OK) rc = pc_local_step(ix->commit);
        if (rc == SQLITE_OK) upto = next;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, ix->id, "search index %s: cannot index the stored spans: %s", path,
               sqlite3_errmsg(ix->db));
        if (!sqlite3_get_autocommit(ix->db)) pc_local_step(ix->rollback);
        return -1;
    }
    if (todo > 100000)
        pc_log(PC_LOG_INFO, ix->id, "search index %s: indexed %lld spans", path, (long long)done);
    ix->upto = upto;
    return 0;
}

/*
 * Called with ix->mu held and work queued: waits up to GATHER_MS for
 * GATHER_BYTES of text to be queued (unless stopping or a flush waits), so
 * one transaction of the index takes many of the writer's. FTS5 flushes a
 * segment per transaction and merges them later; fewer, larger segments
 * cost the index thread less CPU per span (gathering 100 ms against none:
 * about a tenth; 250 ms or 2 MiB against 100 ms or 1 MiB, on a 13M-span
 * store: 14.6-17.9 us a span against 18.9-27.4, bench/README.md). The
 * spans past upto, which every search reads directly, are the ones gathered
 * (at most GATHER_MS, or GATHER_BYTES of text: about 4,000 spans of the
 * query-scale workload) and the ones queued while a transaction is written.
 * GATHER_BYTES stays under PC_LOCAL_INDEX_QUEUE_MAX, where the writer would
 * wait.
 */
static void gather(pc_local_index *ix)
{
    int64_t until = pc_time_mono_ns() + GATHER_MS * 1000000LL;
    while (ix->queue.bytes < GATHER_BYTES && !ix->stopping && ix->flushes == 0)
        if (pc_cond_wait_until(&ix->work_cv, &ix->mu, until) != 0) break;
}

static void *index_main(void *arg)
{
    pc_local_index *ix = arg;
    pc_thread_name("local-index");
    pthread_mutex_lock(&ix->mu);
    for (;;) {
        while (!ix->queue.head && ix->queue_upto <= ix->upto && !ix->stopping)
            pthread_cond_wait(&ix->work_cv, &ix->mu);
        if (!ix->queue.head && ix->queue_upto <= ix->upto) break; /* stopping, all written */
        gather(ix);
        doc_list list = ix->queue;
        int64_t upto = ix->queue_upto;
        list_init(&ix->queue);
        ix->busy = true;
        pthread_cond_broadcast(&ix->room_cv);
        bool failed = ix->failed;
        int64_t kept = ix->upto;
        pthread_mutex_unlock(&ix->mu);

        /* after a failure upto stays where it was: the spans past it are
         * still found (read directly), and the next start indexes them */
        int rc = write_list(ix, &list, failed ? kept : upto);
        join_done(ix);
        list_free(&list);

        pthread_mutex_lock(&ix->mu);
        if (rc != SQLITE_OK && !ix->failed)
            pc_log(PC_LOG_ERROR, ix->id,
                   "search index: cannot write: %s (spans from here on are searched without"
                   " the index until a restart indexes them)",
                   sqlite3_errmsg(ix->db));
        if (rc != SQLITE_OK) ix->failed = true;
        if (ix->failed) ix->queue_upto = ix->upto; /* nothing more to advance */
        else ix->upto = upto;
        if (!ix->failed) pc_local_recent_indexed(ix->recent, upto);
        ix->busy = false;
        pthread_cond_broadcast(&ix->room_cv);
    }
    pthread_mutex_unlock(&ix->mu);
    return NULL;
}

static int prepare(pc_local_index *ix, const char *sql, sqlite3_stmt **st)
{
    return pc_local_prepare(ix->id, ix->db, sql, st);
}

pc_local_index *pc_local_index_create(const char *id, const char *path, const char *store_path,
                                      const pc_local_gate *gate, pc_local_recent *recent)
{
    pc_local_index *ix = pc_xcalloc(1, sizeof(*ix));
    ix->id = id;
    ix->recent = recent;
    list_init(&ix->staged);
    list_init(&ix->queue);
    pthread_mutex_init(&ix->mu, NULL);
    pc_cond_init_mono(&ix->work_cv);
    pthread_cond_init(&ix->room_cv, NULL);
    ix->db = pc_local_db_open(id, path, false);
    if (!ix->db) goto fail;
    ix->ckpt = pc_local_checkpoint_create(id, path, ix->db, PC_LOCAL_CHECKPOINT_PAGES,
                                          PC_LOCAL_RESTART_PAGES, gate);
    if (!ix->ckpt) goto fail;
    sqlite3_exec(ix->db, "PRAGMA cache_size = -" STR(INDEX_CACHE_KIB), NULL, NULL, NULL);
    int64_t version = pc_local_scalar(ix->db, "PRAGMA user_version");
    if (version > INDEX_VERSION) {
        pc_log(PC_LOG_ERROR, id, "%s has version %lld; this collector knows up to %d", path,
               (long long)version, INDEX_VERSION);
        goto fail;
    }
    sqlite3_stmt *att = NULL;
    int rc = sqlite3_prepare_v2(ix->db, "ATTACH DATABASE ?1 AS store", -1, &att, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(att, 1, store_path, -1, SQLITE_STATIC);
        rc = pc_local_step(att);
    }
    sqlite3_finalize(att);
    if (rc != SQLITE_OK || sqlite3_exec(ix->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        pc_log(PC_LOG_ERROR, id, "cannot set up %s: %s", path, sqlite3_errmsg(ix->db));
        goto fail;
    }
    if (prepare(ix, "BEGIN", &ix->begin) < 0 || prepare(ix, "COMMIT", &ix->commit) < 0 ||
        prepare(ix, "ROLLBACK", &ix->rollback) < 0 ||
        prepare(ix, "INSERT INTO main.span_text (rowid, text) VALUES (?1, ?2)", &ix->ins) < 0 ||
        prepare(ix,
                "INSERT INTO main.span_text (span_text, rowid, text) VALUES ('delete', ?1, ?2)",
                &ix->del) < 0 ||
        prepare(ix, "UPDATE main.index_state SET upto = ?1", &ix->set_upto) < 0)
        goto fail;
    if (catch_up(ix, path) < 0) goto fail;
    pc_local_recent_reset(recent, ix->upto);
    rc = pthread_create(&ix->thread, NULL, index_main, ix);
    if (rc != 0) {
        pc_log(PC_LOG_ERROR, id, "cannot start the search index thread: %s", strerror(rc));
        goto fail;
    }
    ix->thread_running = true;
    return ix;
fail:
    pc_local_index_destroy(ix);
    return NULL;
}

void pc_local_index_destroy(pc_local_index *ix)
{
    if (!ix) return;
    if (ix->thread_running) {
        pthread_mutex_lock(&ix->mu);
        ix->stopping = true;
        pthread_cond_signal(&ix->work_cv);
        pthread_mutex_unlock(&ix->mu);
        pthread_join(ix->thread, NULL);
    }
    list_free(&ix->staged);
    list_free(&ix->queue);
    pc_buf_free(&ix->join);
    sqlite3_finalize(ix->begin);
    sqlite3_finalize(ix->commit);
    sqlite3_finalize(ix->rollback);
    sqlite3_finalize(ix->ins);
    sqlite3_finalize(ix->del);
    sqlite3_finalize(ix->set_upto);
    pc_local_checkpoint_destroy(ix->ckpt);
    sqlite3_close(ix->db);
    pthread_cond_destroy(&ix->work_cv);
    pthread_cond_destroy(&ix->room_cv);
    pthread_mutex_destroy(&ix->mu);
    free(ix);
}

void pc_local_index_add(pc_local_index *ix, int64_t block, pc_index_op op, const char *text,
                        size_t n)
{
    doc *d = pc_xmalloc(sizeof(*d) + n);
    *d = (doc){.next = NULL, .block = block, .op = op, .n = n};
    memcpy(d->text, text, n);
    if (op == PC_INDEX_ADD) pc_local_recent_add(ix->recent, block, text, n);
    *ix->staged.tail = d;
    ix->staged.tail = &d->next;
    ix->staged.bytes += n;
}

void pc_local_index_commit(pc_local_index *ix, int64_t upto)
{
    pc_local_recent_commit(ix->recent, upto); /* searchable before a wait for room */
    pthread_mutex_lock(&ix->mu);
    while (ix->queue.bytes > PC_LOCAL_INDEX_QUEUE_MAX && !ix->stopping)
        pthread_cond_wait(&ix->room_cv, &ix->mu);
    if (ix->staged.head) {
        *ix->queue.tail = ix->staged.head;
        ix->queue.tail = ix->staged.tail;
        ix->queue.bytes += ix->staged.bytes;
    }
    if (upto > ix->queue_upto) ix->queue_upto = upto;
    if (ix->staged.head || upto > ix->upto) pthread_cond_signal(&ix->work_cv);
    pthread_mutex_unlock(&ix->mu);
    list_init(&ix->staged);
}

void pc_local_index_abort(pc_local_index *ix)
{
    pc_local_recent_abort(ix->recent);
    list_free(&ix->staged);
}

int64_t pc_local_index_upto(pc_local_index *ix)
{
    pthread_mutex_lock(&ix->mu);
    int64_t v = ix->upto;
    pthread_mutex_unlock(&ix->mu);
    return v;
}

void pc_local_index_flush(pc_local_index *ix)
{
    pthread_mutex_lock(&ix->mu);
    ix->flushes++;
    pthread_cond_signal(&ix->work_cv); /* out of gather() */
    while ((ix->queue.head || ix->busy) && !ix->stopping)
        pthread_cond_wait(&ix->room_cv, &ix->mu);
    ix->flushes--;
    pthread_mutex_unlock(&ix->mu);
}

/*
 * test_local_index.c - the embedded store's search index file (schema 7,
 * local_index.c), through the real `local` exporter and its store() reads.
 *
 * Spans the index has not written (past index_state.upto) are still found,
 * through the recent text while the index thread cannot write;
 * a start indexes what the file lacks: after a lost queue (upto behind), a
 * file that does not belong to the store (upto past every span: cleared and
 * rebuilt), a deleted file; more text than the queue holds at once is all
 * indexed; the index file's FTS5 merge settings; adjacent documents of one
 * block written as one keep their trigrams apart.
 */
#include "check.h"
#include "exporters/local_harness.h"
#include "exporters/local_index.h"

#include "buf.h"

#include <stdint.h>

static void paths(const store_h *h, char *db, char *ix, size_t n)
{
    snprintf(db, n, "%s/data/store/prela.db", h->dir);
    snprintf(ix, n, "%s/data/store/" PC_LOCAL_INDEX_FILE, h->dir);
}

/* Runs |sql| on the index file |ix| from a connection of the test's own
 * (the tokenizer registered: FTS5 needs it to open span_text). */
static void ix_exec(const char *ix, const char *sql)
{
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open_v2(ix, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    CHECK_EQ_INT(pc_local_text_register(db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) fprintf(stderr, "ix_exec: %s\n", err ? err : "?");
    CHECK_EQ_INT(rc, SQLITE_OK);
    sqlite3_free(err);
    sqlite3_close(db);
}

/* Three traces of two spans (ids |prefix|-0 to 2), one word of each trace in
 * a span name. */
static void load_words(store_h *h, const char *prefix, const char *const words[3])
{
    pc_batch *b = new_batch(pc_time_now_ns());
    for (int i = 0; i < 3; i++) {
        char trace[16], name[64];
        snprintf(trace, sizeof(trace), "%s-%d", prefix, i);
        snprintf(name, sizeof(name), "step with %s inside", words[i]);
        add_span(b, (span_spec){.trace = trace, .span = "a", .name = name, .start = T0,
                                .end = T0 + 1});
        add_span(b, (span_spec){.trace = trace, .span = "b", .parent = "a", .name = "plain",
                                .start = T0, .end = T0 + 1});
    }
    CHECK_EQ_INT(consume(h, b), PC_OK);
}

static void test_tail_and_catch_up(void)
{
    static const char *const words[3] = {"aardvarkian", "bandicootish", "capybaresque"};
    store_h h;
    open_store(&h, NULL, NULL);
    char db[256], ix[256], dir[64];
    paths(&h, db, ix, sizeof(db));
    snprintf(dir, sizeof(dir), "%s", h.dir);
    load_words(&h, "ix", words);
    pc_local_search_flush(h.ctx);
    CHECK_EQ_INT(db_int(ix, "SELECT upto FROM index_state"),
                 db_int(db, "SELECT max(rowid) FROM spans"));
    CHECK_EQ_INT(fts_hits(db, "\"aar\" AND \"rki\""), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "Aardvarkian"), 1);

    /* The index loses everything and upto goes back, as if the thread had
     * not written yet: every span is past upto, and still found. */
    ix_exec(ix, "BEGIN; INSERT INTO span_text (span_text) VALUES ('delete-all');"
                " UPDATE index_state SET upto = 0; COMMIT");
    CHECK_EQ_INT(fts_hits(db, "\"aar\" AND \"rki\""), 0);
    CHECK_EQ_INT(search_count(&h, NULL, "aardvarkian"), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "BANDICOOTISH"), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "with"), 3);
    CHECK_EQ_INT(search_count(&h, NULL, "nowhere-at-all"), 0);
    close_store(&h, false);

    /* The next start indexes the spans past upto. */
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(db_int(ix, "SELECT upto FROM index_state"),
                 db_int(db, "SELECT max(rowid) FROM spans"));
    CHECK_EQ_INT(fts_hits(db, "\"aar\" AND \"rki\""), 1);
    CHECK_EQ_INT(fts_hits(db, "\"cap\" AND \"esq\""), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "capybaresque"), 1);
    close_store(&h, false);

    /* upto past every span: the file is not this store's (a stray block is
     * in it); cleared and rebuilt from the spans. */
    ix_exec(ix, "INSERT INTO span_text (rowid, text) VALUES (99, 'zzqqxx');"
                "UPDATE index_state SET upto = 1000000000");
    CHECK_EQ_INT(fts_hits(db, "\"zzq\""), 1);
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(fts_hits(db, "\"zzq\""), 0);
    CHECK_EQ_INT(fts_hits(db, "\"ban\" AND \"ish\""), 1);
    CHECK_EQ_INT(db_int(ix, "SELECT upto FROM index_state"),
                 db_int(db, "SELECT max(rowid) FROM spans"));
    close_store(&h, false);

    /* A deleted index file is made again from the spans. */
    char p[300];
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", ix, sfx[i]);
        unlink(p);
    }
    open_store(&h, dir, NULL);
    CHECK_EQ_INT(fts_hits(db, "\"aar\" AND \"rki\""), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "bandicootish"), 1);
    CHECK_EQ_INT(db_int(ix, "SELECT v FROM span_text_config WHERE k = 'automerge'"), 16);
    CHECK_EQ_INT(db_int(ix, "SELECT v FROM span_text_config WHERE k = 'crisismerge'"), 64);
    CHECK_EQ_INT(db_int(ix, "PRAGMA user_version"), 1);
    close_store(&h, true);
}

/*
 * The index thread cannot write (a connection of the test's own holds the
 * file's write lock): the spans acknowledged meanwhile are past upto and
 * found through the recent text (local_recent.h), beside the indexed ones;
 * once the lock goes, the thread writes them and they are found in the
 * index.
 */
static void test_held_index(void)
{
    static const char *const old[3] = {"aardvarkian", "bandicootish", "capybaresque"};
    static const char *const fresh[3] = {"dromedarial", "echidnaform", "fennecoidal"};
    store_h h;
    open_store(&h, NULL, NULL);
    char db[256], ix[256];
    paths(&h, db, ix, sizeof(db));
    load_words(&h, "old", old);
    pc_local_search_flush(h.ctx);
    int64_t upto = db_int(ix, "SELECT upto FROM index_state");
    CHECK_EQ_INT(upto, 6);

    sqlite3 *hold = NULL;
    CHECK_EQ_INT(sqlite3_open_v2(ix, &hold, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(hold, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    load_words(&h, "fresh", fresh);
    /* a span of an indexed trace, past upto */
    pc_batch *b = new_batch(pc_time_now_ns());
    add_span(b, (span_spec){.trace = "old-0", .span = "c", .parent = "a",
                            .name = "gnuish follow-up", .start = T0, .end = T0 + 1});
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(search_count(&h, NULL, "Dromedarial"), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "FENNECOIDAL"), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "gnuish"), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "aardvarkian"), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "with"), 6);
    CHECK_EQ_INT(search_count(&h, NULL, "nowhere-at-all"), 0);
    CHECK_EQ_INT(db_int(ix, "SELECT upto FROM index_state"), upto); /* none written */
    CHECK_EQ_INT(sqlite3_exec(hold, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(hold);

    pc_local_search_flush(h.ctx);
    CHECK_EQ_INT(db_int(ix, "SELECT upto FROM index_state"), 13);
    CHECK_EQ_INT(fts_hits(db, "\"dro\" AND \"ial\""), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "dromedarial"), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "gnuish"), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "with"), 6);
    close_store(&h, true);
}

/* More search text than PC_LOCAL_INDEX_QUEUE_MAX in one go: the writer waits
 * for room, and every document gets written. */
static void test_queue_full(void)
{
    enum { TRACES = 400, TEXT = 24 * 1024 };
    store_h h;
    open_store(&h, NULL, NULL);
    char db[256], ix[256];
    paths(&h, db, ix, sizeof(db));
    pc_buf text = PC_BUF_INIT;
    uint64_t x = 1;
    for (int i = 0; i < TRACES; i++) {
        pc_buf_reset(&text);
        pc_buf_printf(&text, "marker%04d ", i);
        while (text.len < TEXT) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            pc_buf_printf(&text, "w%llx ", (unsigned long long)(x >> 40));
        }
        pc_batch *b = new_batch(pc_time_now_ns());
        char trace[16];
        snprintf(trace, sizeof(trace), "q-%04d", i);
        add_span(b, (span_spec){.trace = trace, .span = "a", .name = text.data, .start = T0,
                                .end = T0 + 1});
        CHECK_EQ_INT(consume(&h, b), PC_OK);
    }
    CHECK((size_t)TRACES * TEXT > 2 * PC_LOCAL_INDEX_QUEUE_MAX);
    pc_local_search_flush(h.ctx);
    CHECK_EQ_INT(db_int(ix, "SELECT upto FROM index_state"), TRACES);
    /* "marker" is in every trace: one hit per block (tids 1..400 >> 4: 0..25) */
    CHECK_EQ_INT(fts_hits(db, "\"mar\" AND \"ker\""), TRACES / 16 + 1);
    CHECK_EQ_INT(search_count(&h, NULL, "marker0399"), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "marker0000"), 1);
    pc_buf_free(&text);
    close_store(&h, true);
}

/* The index thread writes adjacent ADD documents of one block as one
 * document (write_list): every trigram of each is found, none made of the
 * end of one and the start of the next; documents of other blocks and
 * DELETEs between them keep their own; a DELETE takes a trigram away from
 * the block whatever number of documents brought it. */
static void test_documents_of_a_block(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    char db[256], ix[300];
    paths(&h, db, ix, sizeof(db));
    snprintf(ix, sizeof(ix), "%s/data/store/other-search.db", h.dir);
    pc_local_index *x = pc_local_index_create("test", ix, db, NULL, NULL);
    CHECK(x != NULL);
    if (!x) {
        close_store(&h, true);
        return;
    }
    pc_local_index_add(x, 7, PC_INDEX_ADD, "alpha", 5);
    pc_local_index_add(x, 7, PC_INDEX_ADD, "omega", 5);
    pc_local_index_add(x, 7, PC_INDEX_ADD, "kappa", 5);
    pc_local_index_add(x, 8, PC_INDEX_ADD, "sigma", 5);
    pc_local_index_add(x, 7, PC_INDEX_ADD, "delta", 5);
    pc_local_index_commit(x, 0);
    pc_local_index_flush(x);
    static const char *const in7[] = {"alp", "pha", "ome", "ega", "kap", "ppa", "del", "lta"};
    for (size_t i = 0; i < sizeof(in7) / sizeof(in7[0]); i++)
        CHECK_EQ_INT(index_hits(ix, in7[i], 7), 1);
    /* across the joints of the first three, and of 7's texts with 8's */
    static const char *const none7[] = {"hao", "aom", "gak", "aka", "pas", "pad", "ade"};
    for (size_t i = 0; i < sizeof(none7) / sizeof(none7[0]); i++)
        CHECK_EQ_INT(index_hits(ix, none7[i], 7), 0);
    CHECK_EQ_INT(index_hits(ix, "sig", 8), 1);
    CHECK_EQ_INT(index_hits(ix, "alp", 8), 0);
    CHECK_EQ_INT(index_hits(ix, "sig", 7), 0);

    /* a DELETE between two ADDs of block 7 */
    pc_local_index_add(x, 7, PC_INDEX_ADD, "gamma", 5);
    pc_local_index_add(x, 7, PC_INDEX_DELETE, "omega", 5);
    pc_local_index_add(x, 7, PC_INDEX_ADD, "theta", 5);
    pc_local_index_commit(x, 0);
    pc_local_index_flush(x);
    CHECK_EQ_INT(index_hits(ix, "ome", 7), 0);
    CHECK_EQ_INT(index_hits(ix, "gam", 7), 1);
    CHECK_EQ_INT(index_hits(ix, "the", 7), 1);
    CHECK_EQ_INT(index_hits(ix, "alp", 7), 1);
    CHECK_EQ_INT(index_hits(ix, "mat", 7), 0); /* gamma's end and theta's start */
    pc_local_index_destroy(x);
    char p[320];
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", ix, sfx[i]);
        unlink(p);
    }
    close_store(&h, true);
}

int main(void)
{
    RUN(test_tail_and_catch_up);
    RUN(test_held_index);
    RUN(test_queue_full);
    RUN(test_documents_of_a_block);
    return CHECK_DONE();
}

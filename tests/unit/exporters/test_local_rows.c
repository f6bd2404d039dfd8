/*
 * test_local_rows.c - a batch's span rows encoded outside the writer
 * (local_rows.h): every column is the JSON the writer would bind (a frame
 * that decompresses to it with the stored dictionary, or the text), LATER
 * before a dictionary exists, equal neighbours share their bytes, the search
 * text is pc_local_span_text's, several threads encode at once with one
 * dictionary, and the rows are charged to the batch's memory budget (refused
 * past it, released when freed); the store's consume() encoding batches while
 * it shuts down loses none it answered OK.
 */
#include "check.h"
#include "exporters/local_harness.h"
#include "exporters/local_rows.h"
#include "exporters/local_text.h"
#include "exporters/local_zip.h"

#include "budget.h"

#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>
#include <zstd.h>

/* A zip state on an in-memory span_dicts with a dictionary trained from
 * the JSON of a few batches (|trained| false: none). */
static pc_local_zip *make_zip(sqlite3 **db, bool trained);

/* Batch |k|: |spans| spans (a multiple of 4) of traces "tr-k-0", "tr-k-1",
 * ... (4 spans each), one resource for all, prose attributes, an event,
 * messages on the LLM spans, and a carrier (events only) last. */
static pc_batch *batch_of(int k, int spans, pc_budget *budget)
{
    pc_arena *a = pc_arena_create(4096);
    if (budget) pc_arena_set_budget(a, budget);
    pc_batch *b = pc_batch_create(a);
    b->received_ns = T0;
    pc_kv *res_kv = pc_arena_alloc(b->arena, sizeof(*res_kv));
    *res_kv = kv_str(b, "service.name", "svc-a");
    pc_attrs *res = pc_arena_alloc(b->arena, sizeof(*res));
    *res = (pc_attrs){res_kv, 1};
    char trace[32], span[32], prompt[160];
    for (int i = 0; i < spans; i++) {
        snprintf(trace, sizeof(trace), "tr-%d-%d", k, i / 4);
        snprintf(span, sizeof(span), "s%d", i);
        pc_span *s = add_span(b, (span_spec){.trace = trace,
                                             .span = span,
                                             .name = "chat",
                                             .type = PC_TYPE_LLM,
                                             .start = T0 + i,
                                             .end = T0 + i + 9});
        s->resource = res;
        snprintf(prompt, sizeof(prompt),
                 "batch %d span %d: summarize the \"refund\" policy for the customer's order", k,
                 i);
        pc_kv *kv = pc_arena_alloc(b->arena, 2 * sizeof(*kv));
        kv[0] = kv_str(b, "gen_ai.prompt", prompt);
        kv[1] = (pc_kv){S(b, "gen_ai.request.temperature"), {.type = PC_V_DOUBLE, .d = 0.7}};
        s->attrs = (pc_attrs){kv, 2};
        pc_event *ev = pc_arena_alloc(b->arena, sizeof(*ev));
        *ev = (pc_event){S(b, "gen_ai.choice"), T0 + i, {kv, 1}, 0};
        s->events = ev;
        s->n_events = 1;
        if (i % 2) s->input_messages = S(b, "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\","
                                           "\"content\":\"where is my parcel\"}]}]");
        if (i == spans - 1) s->carrier = true;
    }
    return b;
}

/* Batch |k| of 20 spans (5 traces). */
static pc_batch *batch(int k, pc_budget *budget)
{
    return batch_of(k, 20, budget);
}

/* The JSON the writer binds as column |c| of |s|. */
static void column_json(pc_buf *out, const pc_span *s, int c)
{
    pc_buf_reset(out);
    switch (c) {
    case 0: pc_attrs_write_json(out, &s->attrs); break;
    case 1: pc_events_write_json(out, s->events, s->n_events); break;
    case 2: pc_links_write_json(out, s->links, s->n_links); break;
    case 3: pc_attrs_write_json(out, s->resource ? s->resource : &pc_empty_attrs); break;
    case 4: pc_scope_write_json(out, s->scope ? s->scope : &pc_empty_scope); break;
    case 5: pc_buf_append(out, s->input_messages.p, s->input_messages.n); break;
    default: pc_buf_append(out, s->output_messages.p, s->output_messages.n); break;
    }
}

/* Checks every row of |rows| against |b|; |dict| (NULL: none in use) is the
 * stored dictionary. Returns how many columns were ZIPPED. */
static int check_rows(const pc_batch *b, const pc_local_rows *rows, const void *dict,
                      size_t dict_n)
{
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    pc_buf want = PC_BUF_INIT, got = PC_BUF_INIT;
    int zipped = 0, bad = 0;
    CHECK_EQ_INT(rows->n, b->n);
    for (size_t i = 0; i < b->n; i++) {
        const pc_span *s = &b->spans[i];
        const pc_local_row *r = &rows->row[i];
        if (s->carrier) {
            bad += r->text_len != 0 || r->col[0].len != 0;
            continue;
        }
        for (int c = 0; c < PC_LOCAL_COLS; c++) {
            const pc_local_col *col = &r->col[c];
            const char *p = pc_local_rows_at(rows, col->off);
            column_json(&want, s, c);
            if (col->state == PC_COL_ZIPPED) {
                zipped++;
                bad += !dict;
                pc_buf_reset(&got);
                pc_buf_reserve(&got, want.len + 1);
                size_t n = ZSTD_decompress_usingDict(dc, got.data, want.len + 1, p, col->len,
                                                     dict, dict_n);
                bad += ZSTD_isError(n) || n != want.len || memcmp(got.data, want.data, n) != 0;
            } else {
                /* without a dictionary every column is the writer's to pack */
                bad += col->state != (dict ? PC_COL_TEXT : PC_COL_LATER);
                bad += col->len != want.len || (col->len && memcmp(p, want.data, col->len) != 0);
            }
        }
        pc_buf_reset(&want);
        pc_local_span_text(&want, s);
        bad += r->text_len != want.len ||
               memcmp(pc_local_rows_at(rows, r->text_off), want.data, want.len) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    pc_buf_free(&want);
    pc_buf_free(&got);
    ZSTD_freeDCtx(dc);
    return zipped;
}

static const void *stored_dict(sqlite3 *db, size_t *n)
{
    static char d[PC_LOCAL_ZIP_DICT_MAX];
    sqlite3_stmt *st = NULL;
    *n = 0;
    sqlite3_prepare_v2(db, "SELECT dict FROM span_dicts", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *n = (size_t)sqlite3_column_bytes(st, 0);
        memcpy(d, sqlite3_column_blob(st, 0), *n);
    }
    sqlite3_finalize(st);
    return *n ? d : NULL;
}

static pc_local_zip *make_zip(sqlite3 **db, bool trained)
{
    CHECK_EQ_INT(sqlite3_open(":memory:", db), SQLITE_OK);
    sqlite3_exec(*db, "CREATE TABLE span_dicts (id INTEGER PRIMARY KEY, created_ns INTEGER,"
                      " samples INTEGER, dict BLOB)", NULL, NULL, NULL);
    pc_local_zip *z = pc_local_zip_create("test", *db, trained ? 32768 : 0);
    CHECK(z != NULL);
    if (!trained) return z;
    pc_buf json = PC_BUF_INIT, out = PC_BUF_INIT;
    for (int k = 100; k < 400 && pc_local_zip_dict_id(z) == 0; k++) {
        pc_batch *b = batch(k, NULL);
        for (size_t i = 0; i < b->n; i++)
            for (int c = 0; c < PC_LOCAL_COLS; c++) {
                column_json(&json, &b->spans[i], c);
                pc_local_zip_pack(z, json.data, json.len, &out);
            }
        pc_batch_unref(b);
        pc_local_zip_train(z);
        pc_local_zip_wait(z);
        pc_local_zip_train(z);
    }
    CHECK(pc_local_zip_dict_id(z) != 0);
    pc_buf_free(&json);
    pc_buf_free(&out);
    return z;
}

/* Before a dictionary: every column LATER and the JSON itself; then with one:
 * frames that decompress to it, and equal resources share one frame. */
static void test_columns(void)
{
    sqlite3 *db0, *db1;
    pc_local_zip *none = make_zip(&db0, false), *z = make_zip(&db1, true);
    pc_batch *b = batch(1, NULL);

    pc_local_rows *rows = pc_local_rows_encode(b, none);
    CHECK_EQ_INT(check_rows(b, rows, NULL, 0), 0);
    pc_local_rows_free(rows);
    rows = pc_local_rows_encode(b, NULL);
    CHECK_EQ_INT(check_rows(b, rows, NULL, 0), 0);
    pc_local_rows_free(rows);

    size_t dn;
    const void *dict = stored_dict(db1, &dn);
    CHECK(dict != NULL);
    rows = pc_local_rows_encode(b, z);
    CHECK(check_rows(b, rows, dict, dn) >= 19 * 3); /* attributes, events, resource at least */
    CHECK_EQ_INT(rows->row[0].col[3].state, PC_COL_ZIPPED);
    CHECK_EQ_INT(rows->row[7].col[3].off, rows->row[0].col[3].off); /* one frame */
    CHECK(rows->row[7].col[0].off != rows->row[0].col[0].off);
    pc_local_rows_free(rows);

    pc_batch_unref(b);
    pc_local_zip_destroy(none);
    pc_local_zip_destroy(z);
    sqlite3_close(db0);
    sqlite3_close(db1);
}

typedef struct worker {
    pc_local_zip *z;
    const void *dict;
    size_t dict_n;
    int first, zipped;
} worker;

static void *encode_many(void *arg)
{
    worker *w = arg;
    for (int k = w->first; k < w->first + 50; k++) {
        pc_batch *b = batch(k, NULL);
        pc_local_rows *rows = pc_local_rows_encode(b, w->z);
        w->zipped += check_rows(b, rows, w->dict, w->dict_n);
        pc_local_rows_free(rows);
        pc_batch_unref(b);
    }
    return NULL;
}

/* Twelve threads (more than the contexts kept) encode with one dictionary. */
static void test_threads(void)
{
    sqlite3 *db;
    pc_local_zip *z = make_zip(&db, true);
    size_t dn;
    const void *dict = stored_dict(db, &dn);
    enum { N = 12 };
    pthread_t th[N];
    worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){z, dict, dn, 1000 + 100 * i, 0};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, encode_many, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        CHECK(w[i].zipped >= 50 * 19 * 3);
    }
    pc_local_zip_destroy(z);
    sqlite3_close(db);
}

/* The rows are charged to the batch's budget while they live; past it the
 * encoding is refused and nothing stays charged. */
static void test_budget(void)
{
    pc_budget *big = pc_budget_create(1 << 20);
    pc_batch *b = batch(1, big);
    int64_t batch_bytes = pc_budget_used(big);
    pc_local_rows *rows = pc_local_rows_encode(b, NULL);
    CHECK(rows != NULL);
    CHECK(pc_budget_used(big) > batch_bytes + 20 * 300);
    pc_local_rows_free(rows);
    CHECK_EQ_INT(pc_budget_used(big), batch_bytes);
    pc_batch_unref(b);
    CHECK_EQ_INT(pc_budget_used(big), 0);

    /* room for the batch, not for its rows as well */
    pc_budget *small = pc_budget_create(batch_bytes + 2048);
    b = batch(1, small);
    CHECK_EQ_INT(pc_budget_used(small), batch_bytes);
    CHECK(pc_local_rows_encode(b, NULL) == NULL);
    CHECK_EQ_INT(pc_budget_used(small), batch_bytes);
    CHECK(pc_budget_refused(small) >= 1);
    pc_batch_unref(b);
    pc_budget_destroy(big);
    pc_budget_destroy(small);
}

#define FEEDERS 8
#define FEED_MAX 400
#define FEED_SPANS 200 /* a batch: 50 traces; encoding it takes a while */

typedef struct feeder {
    store_h *h;
    int first;               /* its batches are first, first + 1, ... (batch_of()) */
    int n;                   /* how many it sent */
    pc_result res[FEED_MAX]; /* what each was answered */
} feeder;

static int fed_ok; /* batches answered OK in this round, all feeders (atomic) */
static int shut;   /* the main thread began the shutdown (atomic) */

/* Sends batches until one is refused after the shutdown began. */
static void *feed(void *arg)
{
    feeder *f = arg;
    for (f->n = 0; f->n < FEED_MAX;) {
        pc_result r = consume(f->h, batch_of(f->first + f->n, FEED_SPANS, NULL));
        f->res[f->n++] = r;
        if (r == PC_OK) __atomic_add_fetch(&fed_ok, 1, __ATOMIC_SEQ_CST);
        else if (__atomic_load_n(&shut, __ATOMIC_SEQ_CST)) break;
    }
    return NULL;
}

/* Spans stored of batch |k| (its traces "tr-k-*"), read from the closed store. */
static int64_t stored_of(const char *db, int k)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM spans s JOIN traces t ON t.tid = s.tid"
             " WHERE t.trace_id >= 'tr-%d-' AND t.trace_id < 'tr-%d.'",
             k, k);
    return db_int(db, sql);
}

/* One round of test_shutdown_while_encoding: the store shuts down once |after|
 * batches were answered OK. */
static void shutdown_round(int after)
{
    store_h h;
    open_store(&h, NULL, NULL);
    static feeder f[FEEDERS];
    pthread_t th[FEEDERS];
    __atomic_store_n(&fed_ok, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&shut, 0, __ATOMIC_SEQ_CST);
    for (int i = 0; i < FEEDERS; i++) {
        f[i] = (feeder){.h = &h, .first = 1000 * (i + 1)};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, feed, &f[i]), 0);
    }
    for (int waited = 0; __atomic_load_n(&fed_ok, __ATOMIC_SEQ_CST) < after && waited < 30000;
         waited++)
        usleep(1000);
    CHECK(__atomic_load_n(&fed_ok, __ATOMIC_SEQ_CST) >= after);
    __atomic_store_n(&shut, 1, __ATOMIC_SEQ_CST);
    pc_local_exporter_ops.shutdown(h.ctx);
    for (int i = 0; i < FEEDERS; i++)
        pthread_join(th[i], NULL);
    char dir[64], db[128];
    snprintf(dir, sizeof(dir), "%s", h.dir);
    snprintf(db, sizeof(db), "%s/data/store/prela.db", dir);
    close_store(&h, false);

    int ok = 0, whole = 0, partial = 0, lost = 0, refused = 0, first_ok = -1;
    for (int i = 0; i < FEEDERS; i++)
        for (int j = 0; j < f[i].n; j++) {
            int64_t n = stored_of(db, f[i].first + j);
            if (f[i].res[j] == PC_OK) {
                ok++;
                lost += n != FEED_SPANS - 1;
                if (first_ok < 0) first_ok = f[i].first + j;
            } else {
                whole += n == FEED_SPANS - 1;
                partial += n != 0 && n != FEED_SPANS - 1;
                refused += n == 0;
            }
        }
    CHECK(ok >= after);
    CHECK_EQ_INT(lost, 0);
    CHECK_EQ_INT(partial, 0);
    CHECK(refused >= FEEDERS - whole); /* each feeder ended on a refusal */

    open_store(&h, dir, NULL);
    char q[64];
    snprintf(q, sizeof(q), "batch %d span 3:", first_ok);
    CHECK_EQ_INT(search_count(&h, NULL, q), 1);
    close_store(&h, true);
}

/* consume() against shutdown: eight threads encode and queue batches while
 * the store shuts down (shutdown waits for the encoders, which use the
 * writer's compression state; a batch encoded meanwhile is answered retry).
 * Every batch answered OK is stored whole (all but the carrier) and found by
 * search after a reopen; any other is stored whole or not at all; the ones
 * refused are not stored. Rounds shut down at different points. */
static void test_shutdown_while_encoding(void)
{
    for (int round = 0; round < 6; round++)
        shutdown_round(4 + 6 * round);
}

int main(void)
{
    RUN(test_columns);
    RUN(test_threads);
    RUN(test_budget);
    RUN(test_shutdown_while_encoding);
    return CHECK_DONE();
}

/*
 * test_local_zip.c - the embedded store's compressed JSON columns (schema 5,
 * local_zip.c), through the real `local` exporter and its store() reads.
 *
 * Two stores take the same batches, one with a small compression_sample (its
 * dictionary is trained after a few traces) and one with 0 (all TEXT): every
 * span read back from both is byte-identical, stored rows are really BLOBs
 * with one dictionary, search, the attribute filter and retention's index
 * upkeep work on compressed rows, a reopened store keeps its dictionary,
 * migration 4 -> 5 keeps old TEXT rows readable beside new compressed ones,
 * and a corrupt or dictionary-less value fails the read instead of crashing.
 */
#include "check.h"
#include "exporters/local_harness.h"
#include "exporters/local_schema.h"

#include "buf.h"

#include <stdint.h>

#define TRACES 60
#define SPANS_PER 4

static const char *const WORDS[] = {
    "the",      "agent",  "order",   "refund", "policy",    "customer", "of",    "and",
    "shipping", "delay",  "invoice", "asked",  "to",        "review",   "model", "tokens",
    "report",   "region", "growth",  "stock",  "warehouse", "is",       "with",  "for"};

/* Deterministic prose of about |len| bytes from generator state |*x|. */
static void prose(pc_buf *out, uint64_t *x, size_t len)
{
    pc_buf_reset(out);
    while (out->len < len) {
        *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
        pc_buf_puts(out, WORDS[(*x >> 33) % (sizeof(WORDS) / sizeof(WORDS[0]))]);
        pc_buf_putc(out, (*x >> 20) % 9 == 0 ? '.' : ' ');
    }
}

/* Batch of traces |first| .. |first| + |n| - 1 (ingested at |at|); trace 7's
 * second span carries the rare word "zanzibarite" in its prompt, trace 50's
 * third span "quokkaplex" in its input messages. */
static pc_batch *batch(int first, int n, int64_t at)
{
    pc_batch *b = new_batch(at);
    pc_buf p = {0};
    char trace[32], span[32];
    for (int t = first; t < first + n; t++) {
        uint64_t x = (uint64_t)t * 977 + 1;
        snprintf(trace, sizeof(trace), "zt-%03d", t);
        for (int k = 0; k < SPANS_PER; k++) {
            snprintf(span, sizeof(span), "s%d", k);
            pc_span *s = add_span(b, (span_spec){.trace = trace,
                                                 .span = span,
                                                 .parent = k ? "s0" : NULL,
                                                 .name = "chat",
                                                 .type = k ? PC_TYPE_LLM : PC_TYPE_AGENT,
                                                 .start = T0 + t * NS,
                                                 .end = T0 + t * NS + k});
            prose(&p, &x, 150 + (x >> 40) % 400);
            if (t == 7 && k == 1) pc_buf_puts(&p, " zanzibarite");
            pc_kv *kv = pc_arena_calloc(b->arena, 3 * sizeof(pc_kv));
            kv[0] = kv_str(b, "gen_ai.prompt", p.data);
            kv[1] = kv_str(b, "tier", t % 2 ? "gold" : "silver");
            kv[2] = (pc_kv){S(b, "n"), {.type = PC_V_INT, .i = t * 10 + k}};
            s->attrs = (pc_attrs){kv, 3};
            pc_kv *rkv = pc_arena_calloc(b->arena, 3 * sizeof(pc_kv));
            rkv[0] = kv_str(b, "service.name", "zip-agent");
            rkv[1] = kv_str(b, "host.name", t % 3 ? "worker-1" : "worker-2");
            rkv[2] = kv_str(b, "telemetry.sdk.language", "python");
            pc_attrs *res = pc_arena_calloc(b->arena, sizeof(pc_attrs));
            *res = (pc_attrs){rkv, 3};
            s->resource = res;
            pc_scope *sc = pc_arena_calloc(b->arena, sizeof(pc_scope));
            sc->name = S(b, "opentelemetry.instrumentation.openai_v2");
            sc->version = S(b, "2.1b0");
            s->scope = sc;
            if (t % 5 == 0) {
                pc_event *ev = pc_arena_calloc(b->arena, sizeof(pc_event));
                ev->name = S(b, "exception");
                ev->time_ns = T0 + t * NS;
                pc_kv *ekv = pc_arena_calloc(b->arena, sizeof(pc_kv));
                ekv[0] = kv_str(b, "exception.message", "upstream timed out after 30 s");
                ev->attrs = (pc_attrs){ekv, 1};
                s->events = ev;
                s->n_events = 1;
            }
            if (k == 2) {
                prose(&p, &x, 120);
                if (t == 50) pc_buf_puts(&p, " quokkaplex");
                pc_buf m = {0};
                pc_buf_printf(&m,
                              "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":"
                              "\"%s\"}]}]",
                              p.data);
                s->input_messages = S(b, m.data);
                pc_buf_free(&m);
            }
        }
    }
    pc_buf_free(&p);
    return b;
}

/* Every JSON column of every span of the store's TRACES traces, in order. */
static int dump_span(void *ud, const pc_span_row *r)
{
    pc_buf *d = ud;
    pc_buf_printf(d, "%s|%s|%s|%s|%s|%s|%s|%s\n", r->span_id, r->attributes, r->events, r->links,
                  r->resource, r->scope, r->input_messages, r->output_messages);
    return 0;
}

static void dump(store_h *h, int traces, pc_buf *d)
{
    char trace[32];
    for (int t = 0; t < traces; t++) {
        snprintf(trace, sizeof(trace), "zt-%03d", t);
        CHECK_EQ_INT(h->st->ops->get_spans(h->st->ctx, "proj-1", trace, 100, 0, dump_span, d), 0);
    }
}

/* Stored bytes of the compressed attributes over the bytes of their JSON,
 * read with pc_unzip registered. */
static double zipped_ratio(const char *path)
{
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    CHECK_EQ_INT(pc_local_text_register(db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    double r = 1;
    CHECK_EQ_INT(sqlite3_prepare_v2(db,
                                    "SELECT sum(length(attributes)),"
                                    " sum(length(CAST(pc_unzip(attributes) AS BLOB))) FROM spans"
                                    " WHERE typeof(attributes) = 'blob'",
                                    -1, &st, NULL),
                 SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 1) > 0)
        r = (double)sqlite3_column_int64(st, 0) / (double)sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r;
}

static void db_path(const store_h *h, char *out, size_t n)
{
    snprintf(out, n, "%s/data/store/prela.db", h->dir);
}

/* Writes the traces in batches of 10. The dictionary is trained on its own
 * thread once the samples are complete, and used from the transaction after
 * it finished: each batch waits for a training it started, so that the
 * next one is compressed (the figures below count on it). */
static void load(store_h *h, int first, int n, int64_t at)
{
    for (int t = first; t < first + n; t += 10) {
        CHECK_EQ_INT(consume(h, batch(t, t + 10 <= first + n ? 10 : first + n - t, at)), PC_OK);
        pc_local_train_wait(h->ctx);
    }
}

static void test_same_reads(void)
{
    const char *zip[] = {"compression_sample", "32KiB"};
    const char *plain[] = {"compression_sample", "0"};
    store_h z, p;
    open_store_kv(&z, NULL, NULL, zip, 1);
    open_store_kv(&p, NULL, NULL, plain, 1);
    int64_t now = pc_time_now_ns();
    load(&z, 0, TRACES, now);
    load(&p, 0, TRACES, now);
    char path[256];
    db_path(&z, path, sizeof(path));
    /* one dictionary; the early rows TEXT, most later ones BLOBs */
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM span_dicts"), 1);
    int64_t blobs = db_int(path, "SELECT count(*) FROM spans WHERE typeof(attributes) = 'blob'");
    CHECK(blobs >= TRACES * SPANS_PER / 2);
    CHECK(db_int(path, "SELECT count(*) FROM spans WHERE typeof(attributes) = 'text'") > 0);
    CHECK(db_int(path, "SELECT count(*) FROM spans WHERE typeof(resource) = 'blob'") > 0);
    CHECK(db_int(path, "SELECT count(*) FROM spans WHERE typeof(input_messages) = 'blob'") > 0);
    CHECK(db_int(path, "SELECT count(*) FROM spans WHERE typeof(events) = 'blob'") > 0);
    /* and at most half the bytes of their JSON */
    CHECK(zipped_ratio(path) < 0.5);
    /* every column of every span reads back exactly as the plain store's */
    pc_buf dz = {0}, dp = {0};
    dump(&z, TRACES, &dz);
    dump(&p, TRACES, &dp);
    CHECK_EQ_INT((int64_t)dz.len, (int64_t)dp.len);
    CHECK(dz.len > 0 && dp.len == dz.len && memcmp(dz.data, dp.data, dz.len) == 0);
    CHECK(strstr(dz.data, "zanzibarite") != NULL);
    /* search and the attribute filter on compressed rows */
    CHECK_EQ_INT(search_count(&z, NULL, "zanzibarite"), 1);
    CHECK_EQ_INT(search_count(&z, NULL, "QUOKKAPLEX"), 1);
    CHECK_EQ_INT(search_count(&z, NULL, "timed out after"), search_count(&p, NULL, "timed out after"));
    CHECK_EQ_INT(search_count(&z, NULL, "timed out after"), TRACES / 5);
    int gold = 0;
    pc_trace_filter f = {.attr_key = "tier", .attr_value = "gold", .limit = 100};
    CHECK_EQ_INT(z.st->ops->list_traces(z.st->ctx, &f, count_trace, &gold), 0);
    CHECK_EQ_INT(gold, TRACES / 2);
    /* a reopened store keeps its dictionary and compresses with it */
    uint32_t id = (uint32_t)db_int(path, "SELECT id FROM span_dicts");
    char dir[64];
    snprintf(dir, sizeof(dir), "%s", z.dir);
    close_store(&z, false);
    open_store_kv(&z, dir, NULL, zip, 1);
    load(&z, TRACES, 20, now);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM span_dicts"), 1);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM spans s JOIN traces t ON t.tid = s.tid"
                              " WHERE t.trace_id >= 'zt-060' AND typeof(s.attributes) = 'text'"),
                 0);
    CHECK_EQ_INT((uint32_t)db_int(path, "SELECT id FROM span_dicts"), id);
    pc_buf_reset(&dz);
    dump(&z, TRACES, &dz);
    CHECK_EQ_INT((int64_t)dz.len, (int64_t)dp.len);
    CHECK(dz.len == dp.len && memcmp(dz.data, dp.data, dz.len) == 0);
    pc_buf_free(&dz);
    pc_buf_free(&dp);
    close_store(&z, true);
    close_store(&p, true);
}

/* Retention on compressed rows: their trigrams leave the index (FTS5
 * 'delete' with the decompressed text), the traces that stay are found. */
static void test_retention(void)
{
    const char *zip[] = {"compression_sample", "32KiB"};
    store_h h;
    open_store_kv(&h, NULL, "1d", zip, 1);
    int64_t now = pc_time_now_ns();
    load(&h, 0, 40, now);                   /* trains the dictionary */
    load(&h, 40, 20, now - 2 * 86400 * NS); /* compressed, and expired */
    char path[256];
    db_path(&h, path, sizeof(path));
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM span_dicts"), 1);
    CHECK(db_int(path, "SELECT count(*) FROM spans s JOIN traces t ON t.tid = s.tid WHERE"
                       " t.trace_id >= 'zt-040' AND typeof(s.attributes) = 'blob'") > 0);
    CHECK_EQ_INT(search_count(&h, NULL, "quokkaplex"), 1);
    CHECK_EQ_INT(pc_local_purge(h.ctx, now), 20);
    CHECK_EQ_INT(search_count(&h, NULL, "quokkaplex"), 0);
    pc_local_search_flush(h.ctx);
    CHECK_EQ_INT(fts_hits(path, "\"kka\" AND \"ple\""), 0);
    CHECK_EQ_INT(search_count(&h, NULL, "zanzibarite"), 1);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM spans"), 40 * SPANS_PER);
    close_store(&h, true);
}

/* Migration 4 -> 5: a version 4 file (no span_dicts; every column TEXT) opens,
 * keeps its rows readable, and new rows are compressed next to them. */
static void test_migration_4_5(void)
{
    const char *plain[] = {"compression_sample", "0"};
    const char *zip[] = {"compression_sample", "32KiB"};
    store_h p, h;
    open_store_kv(&p, NULL, NULL, plain, 1);
    int64_t now = pc_time_now_ns();
    load(&p, 0, TRACES, now);
    pc_buf want = {0};
    dump(&p, TRACES, &want);
    close_store(&p, false);
    /* what version 4 wrote: the same tables without span_dicts */
    char path[256];
    db_path(&p, path, sizeof(path));
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(
        sqlite3_exec(db, "DROP TABLE span_dicts; PRAGMA user_version = 4", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    CHECK_EQ_INT(db_int(path, "PRAGMA user_version"), 4);

    char dir[64];
    snprintf(dir, sizeof(dir), "%s", p.dir);
    open_store_kv(&h, dir, NULL, zip, 1);
    CHECK_EQ_INT(db_int(path, "PRAGMA user_version"), PC_LOCAL_SCHEMA_VERSION);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM span_dicts"), 0);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM spans WHERE typeof(attributes) != 'text'"), 0);
    pc_buf got = {0};
    dump(&h, TRACES, &got);
    CHECK(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);
    CHECK_EQ_INT(search_count(&h, NULL, "zanzibarite"), 1);
    /* new traces: a dictionary, compressed rows, both kinds read */
    load(&h, TRACES, 60, now);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM span_dicts"), 1);
    CHECK(db_int(path, "SELECT count(*) FROM spans WHERE typeof(attributes) = 'blob'") > 0);
    pc_buf_reset(&got);
    dump(&h, TRACES, &got);
    CHECK(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);
    CHECK_EQ_INT(search_count(&h, NULL, "timed out after"), (TRACES + 60) / 5);
    close_store(&h, false);
    /* once: the next start migrates nothing */
    open_store_kv(&h, dir, NULL, zip, 1);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM span_dicts"), 1);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM spans"), (TRACES + 60) * SPANS_PER);
    close_store(&h, true);
    pc_buf_free(&want);
    pc_buf_free(&got);
}

/* A damaged file: a compressed value that is not a zstd frame, or names a
 * dictionary the file lacks, fails its read (an error, no crash, no garbage). */
static void test_corrupt(void)
{
    const char *zip[] = {"compression_sample", "32KiB"};
    store_h h;
    open_store_kv(&h, NULL, NULL, zip, 1);
    load(&h, 0, TRACES, pc_time_now_ns());
    char path[256];
    db_path(&h, path, sizeof(path));
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    /* zt-058: garbage bytes; zt-059: a frame whose dictionary id is not stored */
    CHECK_EQ_INT(sqlite3_exec(db,
                              "UPDATE spans SET attributes = x'28b52ffd00ffffffffffffff0102'"
                              " WHERE tid = (SELECT tid FROM traces WHERE trace_id = 'zt-058');"
                              "UPDATE spans SET attributes = x'0102030405'"
                              " WHERE tid = (SELECT tid FROM traces WHERE trace_id = 'zt-057');"
                              "UPDATE spans SET attributes = CAST(x'28b52ffd2378563412' || "
                              " substr(attributes, 10) AS BLOB)"
                              " WHERE tid = (SELECT tid FROM traces WHERE trace_id = 'zt-059')"
                              " AND typeof(attributes) = 'blob'",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    pc_buf d = {0};
    CHECK(h.st->ops->get_spans(h.st->ctx, "proj-1", "zt-058", 100, 0, dump_span, &d) < 0);
    CHECK(h.st->ops->get_spans(h.st->ctx, "proj-1", "zt-057", 100, 0, dump_span, &d) < 0);
    CHECK(h.st->ops->get_spans(h.st->ctx, "proj-1", "zt-059", 100, 0, dump_span, &d) < 0);
    CHECK_EQ_INT(h.st->ops->get_spans(h.st->ctx, "proj-1", "zt-056", 100, 0, dump_span, &d), 0);
    CHECK(strstr(d.data ? d.data : "", "gen_ai.prompt") != NULL);
    pc_buf_free(&d);
    close_store(&h, true);
}

int main(void)
{
    RUN(test_same_reads);
    RUN(test_retention);
    RUN(test_migration_4_5);
    RUN(test_corrupt);
    return CHECK_DONE();
}

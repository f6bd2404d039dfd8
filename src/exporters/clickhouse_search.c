/*
 * clickhouse_search.c - the `clickhouse` exporter's search index: pieces
 * gathered per batch, blocks cut per insert, their rows, the DDL and the
 * reads' SQL (see clickhouse_search.h for the contract and the data flow).
 *
 * Cost: a piece's keys come from the same search text the local store
 * indexes (local_text.h: name, decoded attribute values, events, messages),
 * computed in consume()'s thread; the flusher only unions key lists (a hash
 * set) and writes lines.
 */
#include "clickhouse_search.h"

#include "json.h"
#include "clickhouse_query.h"
#include "local_text.h"
#include "mem.h"
#include "numfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A piece: the keys [key_end of the previous piece, key_end) and the traces
 * [trace_end of the previous piece, trace_end). */
typedef struct pc_ch_search_piece {
    size_t key_end, trace_end;
} pc_ch_search_piece;

typedef struct pc_ch_search_trace {
    int64_t started_ns;
    size_t meta; /* offset of "project\0trace\0" in acc->meta */
} pc_ch_search_trace;

#define GROW(ptr, n, cap, init)                                                                    \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? 2 * (cap) : (init);                                                    \
            (ptr) = pc_xrealloc((ptr), (cap) * sizeof(*(ptr)));                                    \
        }                                                                                          \
    } while (0)

static void add_trace(pc_ch_search_acc *acc, int64_t started_ns, pc_str project, pc_str trace)
{
    GROW(acc->traces, acc->ntraces, acc->cap_traces, 64);
    pc_ch_search_trace *t = &acc->traces[acc->ntraces++];
    t->started_ns = started_ns;
    t->meta = acc->meta.len;
    pc_buf_append(&acc->meta, project.p, project.n);
    pc_buf_putc(&acc->meta, '\0');
    pc_buf_append(&acc->meta, trace.p, trace.n);
    pc_buf_putc(&acc->meta, '\0');
}

/* Closes the piece being gathered: its keys are |set|'s. */
static void close_piece(pc_ch_search_acc *acc, pc_local_keyset *set)
{
    size_t from = acc->npieces ? acc->pieces[acc->npieces - 1].trace_end : 0;
    if (acc->ntraces == from) return;
    if (set->n) { /* traces without any search text have no keys */
        if (acc->nkeys + set->n > acc->cap_keys) {
            while (acc->nkeys + set->n > acc->cap_keys)
                acc->cap_keys = acc->cap_keys ? 2 * acc->cap_keys : 4096;
            acc->keys = pc_xrealloc(acc->keys, acc->cap_keys * sizeof(*acc->keys));
        }
        memcpy(acc->keys + acc->nkeys, set->key, set->n * sizeof(*set->key));
        acc->nkeys += set->n;
    }
    GROW(acc->pieces, acc->npieces, acc->cap_pieces, 16);
    acc->pieces[acc->npieces++] = (pc_ch_search_piece){acc->nkeys, acc->ntraces};
    pc_local_keyset_clear(set);
}

void pc_ch_search_span(pc_ch_search_acc *acc, const pc_span *s)
{
    if (s->start_ns < acc->started) acc->started = s->start_ns;
    pc_buf_reset(&acc->text);
    pc_local_span_text(&acc->text, s);
    pc_local_keyset_add_text(&acc->set, acc->text.data ? acc->text.data : "", acc->text.len);
}

void pc_ch_search_end_trace(pc_ch_search_acc *acc, pc_str project, pc_str trace)
{
    add_trace(acc, acc->started, project, trace);
    acc->started = INT64_MAX;
    size_t from = acc->npieces ? acc->pieces[acc->npieces - 1].trace_end : 0;
    if (acc->ntraces - from == PC_CH_SEARCH_BLOCK_TRACES) close_piece(acc, &acc->set);
}

void pc_ch_search_end_batch(pc_ch_search_acc *acc)
{
    close_piece(acc, &acc->set);
}

void pc_ch_search_add_batch(pc_ch_search_acc *acc, const pc_batch *b)
{
    pc_trace_group *tr;
    size_t nt = pc_batch_group_traces(b, &tr);
    for (size_t k = 0; k < nt; k++) {
        for (size_t i = 0; i < tr[k].n; i++)
            pc_ch_search_span(acc, tr[k].spans[i]);
        pc_ch_search_end_trace(acc, tr[k].spans[0]->project_id, tr[k].trace_id);
    }
    pc_ch_search_end_batch(acc);
    free(tr);
}

size_t pc_ch_search_bytes(const pc_ch_search_acc *acc)
{
    return acc->nkeys * sizeof(*acc->keys) + acc->npieces * sizeof(*acc->pieces) +
           acc->ntraces * sizeof(*acc->traces) + acc->meta.len;
}

void pc_ch_search_move(pc_ch_search_acc *dst, pc_ch_search_acc *src)
{
    size_t key0 = dst->nkeys, trace0 = dst->ntraces, meta0 = dst->meta.len;
    for (size_t i = 0; i < src->npieces; i++) {
        GROW(dst->pieces, dst->npieces, dst->cap_pieces, 16);
        dst->pieces[dst->npieces++] = (pc_ch_search_piece){key0 + src->pieces[i].key_end,
                                                           trace0 + src->pieces[i].trace_end};
    }
    if (src->nkeys) {
        if (dst->nkeys + src->nkeys > dst->cap_keys) {
            dst->cap_keys = dst->nkeys + src->nkeys;
            dst->keys = pc_xrealloc(dst->keys, dst->cap_keys * sizeof(*dst->keys));
        }
        memcpy(dst->keys + dst->nkeys, src->keys, src->nkeys * sizeof(*src->keys));
        dst->nkeys += src->nkeys;
    }
    for (size_t i = 0; i < src->ntraces; i++) {
        GROW(dst->traces, dst->ntraces, dst->cap_traces, 64);
        dst->traces[dst->ntraces++] =
            (pc_ch_search_trace){src->traces[i].started_ns, meta0 + src->traces[i].meta};
    }
    pc_buf_append(&dst->meta, src->meta.data, src->meta.len);
    src->nkeys = src->npieces = src->ntraces = 0;
    pc_buf_reset(&src->meta);
}

void pc_ch_search_free(pc_ch_search_acc *acc)
{
    free(acc->keys);
    free(acc->pieces);
    free(acc->traces);
    pc_buf_free(&acc->meta);
    pc_local_keyset_free(&acc->set);
    pc_buf_free(&acc->text);
    *acc = (pc_ch_search_acc)PC_CH_SEARCH_ACC_INIT;
}

/* The low bits of a block id: a per-process sequence number (see clickhouse_search.h). */
#define BLOCK_SEQ_MASK 0xFFu

/* Writes the rows of the block made of pieces [p0, p1); *seq numbers its id. */
static void block_rows(const pc_ch_search_acc *acc, size_t p0, size_t p1, uint64_t *seq,
                       pc_local_keyset *set, pc_ch_rows *grams, pc_ch_rows *blocks)
{
    size_t k0 = p0 ? acc->pieces[p0 - 1].key_end : 0, k1 = acc->pieces[p1 - 1].key_end;
    size_t t0 = p0 ? acc->pieces[p0 - 1].trace_end : 0, t1 = acc->pieces[p1 - 1].trace_end;
    int64_t latest = 0;
    for (size_t t = t0; t < t1; t++)
        if (acc->traces[t].started_ns > latest) latest = acc->traces[t].started_ns;
    uint64_t block = ((uint64_t)latest & ~(uint64_t)BLOCK_SEQ_MASK) | ((*seq)++ & BLOCK_SEQ_MASK);
    for (size_t t = t0; t < t1; t++) {
        const pc_ch_search_trace *tr = &acc->traces[t];
        const char *project = acc->meta.data + tr->meta, *trace = project + strlen(project) + 1;
        size_t off = blocks->text.len;
        pc_buf_printf(&blocks->text, "{\"block\":%llu,\"project_id\":", (unsigned long long)block);
        pc_json_write_str(&blocks->text, project, strlen(project));
        pc_buf_lit(&blocks->text, ",\"trace_id\":");
        pc_json_write_str(&blocks->text, trace, strlen(trace));
        pc_buf_printf(&blocks->text, ",\"started_ns\":%lld}\n", (long long)tr->started_ns);
        pc_ch_rows_add(blocks, off, pc_ch_month(tr->started_ns), (pc_str){project, strlen(project)},
                       (pc_str){trace, strlen(trace)}, PC_STR_NULL);
    }
    /* the union of the pieces' keys: each piece's keys are distinct already */
    size_t n = k1 - k0;
    const uint64_t *keys = n ? acc->keys + k0 : NULL;
    if (p1 - p0 > 1) {
        pc_local_keyset_clear(set);
        for (size_t p = p0; p < p1; p++) {
            size_t a = p ? acc->pieces[p - 1].key_end : 0;
            if (acc->pieces[p].key_end > a)
                pc_local_keyset_add_keys(set, acc->keys + a, acc->pieces[p].key_end - a);
        }
        keys = set->key;
        n = set->n;
    }
    int32_t month = pc_ch_month(latest);
    char tail[48] = ",\"block\":"; /* every row of the block ends the same */
    size_t tl = 9 + pc_fmt_u64(tail + 9, block);
    memcpy(tail + tl, "}\n", 2);
    tl += 2;
    for (size_t i = 0; i < n; i++) { /* the block's rows: a few per span, no printf */
        size_t off = grams->text.len;
        pc_buf_reserve(&grams->text, 9 + 20 + tl);
        char *o = grams->text.data + off;
        memcpy(o, "{\"gram\":", 8);
        size_t l = 8 + pc_fmt_u64(o + 8, keys[i]);
        memcpy(o + l, tail, tl);
        grams->text.len += l + tl;
        grams->text.data[grams->text.len] = '\0'; /* as every pc_buf append leaves it */
        pc_ch_rows_add(grams, off, month, PC_STR_NULL, PC_STR_NULL, PC_STR_NULL);
    }
}

void pc_ch_search_rows(const pc_ch_search_acc *acc, uint64_t *seq, pc_ch_rows *grams,
                       pc_ch_rows *blocks)
{
    pc_local_keyset set = PC_LOCAL_KEYSET_INIT;
    size_t p0 = 0, traces = 0, from = 0;
    for (size_t p = 0; p < acc->npieces; p++) {
        traces += acc->pieces[p].trace_end - from;
        from = acc->pieces[p].trace_end;
        if (traces >= PC_CH_SEARCH_BLOCK_TRACES || p + 1 == acc->npieces) {
            block_rows(acc, p0, p + 1, seq, &set, grams, blocks);
            p0 = p + 1;
            traces = 0;
        }
    }
    pc_local_keyset_free(&set);
}

void pc_ch_search_writer_init(pc_ch_search_writer *w, const char *db)
{
    *w = (pc_ch_search_writer){.grams = PC_CH_ROWS_INIT, .blocks = PC_CH_ROWS_INIT};
    pc_ch_insert_search_grams(&w->q_grams, db);
    pc_ch_insert_search_blocks(&w->q_blocks, db);
}

void pc_ch_search_writer_free(pc_ch_search_writer *w)
{
    pc_buf_free(&w->q_grams);
    pc_buf_free(&w->q_blocks);
    pc_ch_rows_free(&w->grams);
    pc_ch_rows_free(&w->blocks);
}

int pc_ch_search_store(pc_ch_search_writer *w, const pc_ch_search_acc *acc,
                       pc_ch_store_rows_fn store, void *ud)
{
    pc_ch_rows_reset(&w->grams);
    pc_ch_rows_reset(&w->blocks);
    pc_ch_search_rows(acc, &w->seq, &w->grams, &w->blocks);
    int st = store(ud, "search_blocks", w->q_blocks.data, &w->blocks);
    return st ? st : store(ud, "search_grams", w->q_grams.data, &w->grams);
}

/* ------------------------------------------------------------------ SQL -- */

/* The DateTime of a Unix time in ns held in |col|, clamped as DateTime holds it. */
#define SECONDS_OF(col) "toDateTime(least(greatest(intDiv(" col ", 1000000000), 0), 4294967295))"

void pc_ch_ddl_search(pc_buf *out, pc_ch_dialect d, const char *db, int table)
{
    const char *when = table == 0 ? SECONDS_OF("block") : SECONDS_OF("started_ns");
    char ttl[160] = "";
    if (d == PC_CH_MODERN) snprintf(ttl, sizeof(ttl), " TTL %s + INTERVAL 90 DAY", when);
    if (table == 0)
        pc_buf_printf(out,
                      "CREATE TABLE IF NOT EXISTS `%s`.`search_grams` (gram UInt64, block UInt64)"
                      " ENGINE = MergeTree PARTITION BY toYYYYMM(%s) ORDER BY (gram, block)%s",
                      db, when, ttl);
    else
        pc_buf_printf(out,
                      "CREATE TABLE IF NOT EXISTS `%s`.`search_blocks` (block UInt64,"
                      " project_id String, trace_id String, started_ns Int64) ENGINE = MergeTree"
                      " PARTITION BY toYYYYMM(%s) ORDER BY (block, project_id, trace_id)%s",
                      db, when, ttl);
}

void pc_ch_insert_search_grams(pc_buf *out, const char *db)
{
    pc_buf_printf(out, "INSERT INTO `%s`.search_grams (gram, block) FORMAT JSONEachRow", db);
}

void pc_ch_insert_search_blocks(pc_buf *out, const char *db)
{
    pc_buf_printf(out,
                  "INSERT INTO `%s`.search_blocks (block, project_id, trace_id, started_ns)"
                  " FORMAT JSONEachRow",
                  db);
}

void pc_ch_sql_search_candidates(pc_buf *out, const char *db, const uint64_t *keys, int n,
                                 int max)
{
    pc_buf_printf(out,
                  "SELECT project_id, trace_id, min(started_ns) AS s, groupUniqArray(block)"
                  " FROM `%s`.search_blocks WHERE block IN (SELECT block FROM `%s`.search_grams"
                  " WHERE gram IN (",
                  db, db);
    for (int i = 0; i < n; i++)
        pc_buf_printf(out, "%s%llu", i ? ", " : "", (unsigned long long)keys[i]);
    pc_buf_printf(out,
                  ") GROUP BY block HAVING uniqExact(gram) = %d ORDER BY block DESC LIMIT %d)"
                  " GROUP BY project_id, trace_id ORDER BY s DESC, trace_id DESC,"
                  " project_id DESC FORMAT TabSeparated",
                  n, max);
}

size_t pc_ch_search_ascii_run(const char *q, size_t n, size_t *at)
{
    size_t best = 0, start = 0;
    *at = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)q[i] : 0;
        if (i < n && c >= 0x20 && c < 0x7F && c != '"' && c != '\\') continue;
        if (i - start > best) {
            best = i - start;
            *at = start;
        }
        start = i + 1;
    }
    return best >= 3 ? best : 0;
}

/* Appends " AND (positionCaseInsensitive(<col>, '<run>') > 0 OR ...)" over the
 * |n| columns |cols|: the server's prefilter of candidate rows. */
static void run_prefilter(pc_buf *out, const char *const *cols, size_t n, const char *run,
                          size_t run_len)
{
    pc_buf_lit(out, " AND (");
    for (size_t i = 0; i < n; i++) {
        pc_buf_printf(out, "%spositionCaseInsensitive(%s, ", i ? " OR " : "", cols[i]);
        pc_ch_quote(out, run, run_len);
        pc_buf_lit(out, ") > 0");
    }
    pc_buf_putc(out, ')');
}

void pc_ch_sql_verify(pc_buf *out, const char *db, const char *const *projects,
                      const char *const *trace_ids, size_t n, const char *run, size_t run_len)
{
    /* the spans by trace id alone (see pc_ch_sql_summaries_of), as a
     * PREWHERE: the text columns only where a candidate's rows are */
    pc_buf_printf(out,
                  "SELECT project_id, trace_id, '', name, attributes, events, input_messages,"
                  " output_messages FROM `%s`.spans PREWHERE ",
                  db);
    pc_ch_sql_in(out, "trace_id", trace_ids, n);
    if (run_len) {
        static const char *const cols[] = {"name", "attributes", "events", "input_messages",
                                           "output_messages"};
        pc_buf_lit(out, " WHERE 1");
        run_prefilter(out, cols, sizeof(cols) / sizeof(cols[0]), run, run_len);
    }
    pc_buf_printf(out,
                  " UNION ALL SELECT project_id, trace_id, span_id, '', '{}',"
                  " concat('[', event, ']'), '', '' FROM `%s`.span_events"
                  " WHERE (trace_id, project_id) IN ",
                  db);
    pc_ch_sql_trace_tuples(out, projects, trace_ids, n);
    if (run_len) {
        static const char *const cols[] = {"event"};
        run_prefilter(out, cols, 1, run, run_len);
    }
    pc_buf_lit(out, " FORMAT TabSeparated");
}

void pc_ch_sql_spans_exist(pc_buf *out, const char *db, const char *const *projects,
                           const char *const *trace_ids, const char *const *span_ids, size_t n)
{
    pc_buf_printf(out,
                  "SELECT DISTINCT project_id, trace_id FROM `%s`.spans"
                  " WHERE (trace_id, project_id, span_id) IN ",
                  db);
    const char *const *cols[] = {trace_ids, projects, span_ids};
    pc_ch_sql_tuples(out, cols, 3, n);
    pc_buf_lit(out, " FORMAT TabSeparated");
}

/*
 * clickhouse_search.h - the `clickhouse` exporter's search index (schema 5):
 * trigram keys of the spans' search text per block of traces, so a search
 * reads the few blocks that can match instead of every span.
 *
 * Data flow, write side: consume() (clickhouse.c) turns its batch into
 * pieces while it writes the batch's rows, trace by trace: each span's search
 * text, from the attributes and events JSON its row has just been written
 * with (pc_ch_search_span), then the trace (pc_ch_search_end_trace), closing a
 * piece every PC_CH_SEARCH_BLOCK_TRACES traces and at the batch's end
 * (pc_ch_search_end_batch): the traces and the distinct trigram keys of their
 * spans' search text (local_text.h). The pieces join the pending insert
 * (pc_ch_search_move), and the flusher, after the spans and trace rows,
 * stores the insert's index in one call (pc_ch_search_store): it cuts the
 * pieces into blocks of at least PC_CH_SEARCH_BLOCK_TRACES traces, writes
 * their rows (pc_ch_search_rows) and inserts search_blocks (block, project,
 * trace) then search_grams (gram, block). Read side
 * (clickhouse_store_search.c): the query's keys (pc_local_query_keys) name
 * the blocks holding all of them and their traces
 * (pc_ch_sql_search_candidates, one read), which are verified in C on their
 * spans' search text (pc_ch_sql_verify, then pc_local_needle_in), exactly as
 * the local store verifies its candidates: both stores find the same texts.
 *
 * Tables (both dialects; plain MergeTree, so a redelivered batch adds rows
 * under another block id, which only adds candidates):
 *   search_grams   (gram UInt64, block UInt64) ORDER BY (gram, block): one
 *                  row per distinct key of a block. A block id is the latest
 *                  start (Unix ns) among its traces with its low 8 bits
 *                  replaced by a per-process sequence number, so the newest
 *                  blocks sort last, and the partition is the month of that
 *                  start (PARTITION BY toYYYYMM of the id's seconds): a block
 *                  is dropped no earlier than its last trace (retention, TTL
 *                  on modern) and no time column is stored per key. Two
 *                  blocks with one id (another collector, the same latest
 *                  start) read as one: more candidates, never fewer.
 *   search_blocks  (block UInt64, project_id String, trace_id String,
 *                  started_ns Int64) ORDER BY (block, project_id, trace_id),
 *                  PARTITION BY the month of started_ns: one row per trace and
 *                  block, in the trace's own month.
 */
#ifndef PC_CLICKHOUSE_SEARCH_H
#define PC_CLICKHOUSE_SEARCH_H

#include "buf.h"
#include "clickhouse_rows.h"
#include "clickhouse_sql.h"
#include "local_text.h"
#include "span.h"

#include <stddef.h>
#include <stdint.h>

/* Least traces per block; a block may hold up to one piece more. Measured on
 * the query-scale workload's prose: 4.1 key rows per span at 256 traces,
 * 12.6 at 64, 34 at 16. */
#define PC_CH_SEARCH_BLOCK_TRACES 256
/* Most keys a query looks up (sampled, first and last trigram included). */
#define PC_CH_SEARCH_KEYS 8

/* The pieces of one pending insert, and the piece being gathered. Owns its
 * memory. */
typedef struct pc_ch_search_acc {
    uint64_t *keys;
    size_t nkeys, cap_keys;
    struct pc_ch_search_piece *pieces;
    size_t npieces, cap_pieces;
    struct pc_ch_search_trace *traces;
    size_t ntraces, cap_traces;
    pc_buf meta; /* project, NUL, trace id, NUL per trace */
    pc_local_keyset set; /* the keys of the piece being gathered */
    pc_buf text;         /* scratch: one span's search text */
    int64_t started;     /* the trace being gathered: its earliest span start */
} pc_ch_search_acc;
#define PC_CH_SEARCH_ACC_INIT {.set = PC_LOCAL_KEYSET_INIT, .started = INT64_MAX}

/*
 * Gathering a batch's pieces into |acc| (see "Data flow"): for each trace,
 * pc_ch_search_span for each of its spans, then pc_ch_search_end_trace; at the
 * batch's end pc_ch_search_end_batch. A span's text is pc_local_span_text
 * (the same as from its row's JSON); a carrier (span.h), which has no span
 * row, brings its events' text the same way.
 */
void pc_ch_search_span(pc_ch_search_acc *acc, const pc_span *s);
void pc_ch_search_end_trace(pc_ch_search_acc *acc, pc_str project, pc_str trace);
void pc_ch_search_end_batch(pc_ch_search_acc *acc);
/* The same for a whole batch, its rows not written (tests). */
void pc_ch_search_add_batch(pc_ch_search_acc *acc, const pc_batch *b);
/* The bytes |acc|'s pieces hold (for the memory budget). */
size_t pc_ch_search_bytes(const pc_ch_search_acc *acc);
/* Appends |src|'s pieces to |dst| and empties |src|. */
void pc_ch_search_move(pc_ch_search_acc *dst, pc_ch_search_acc *src);
void pc_ch_search_free(pc_ch_search_acc *acc);

/* Stores |rows| into |table| with the INSERT |query|: 0, or the caller's
 * nonzero status, passed back by pc_ch_search_store. */
typedef int (*pc_ch_store_rows_fn)(void *ud, const char *table, const char *query,
                                   const pc_ch_rows *rows);

/* The flusher's side: the INSERTs, reused row buffers, and the block sequence. */
typedef struct pc_ch_search_writer {
    pc_buf q_grams, q_blocks;
    pc_ch_rows grams, blocks;
    uint64_t seq; /* numbers the block ids' low bits */
} pc_ch_search_writer;

void pc_ch_search_writer_init(pc_ch_search_writer *w, const char *db);
void pc_ch_search_writer_free(pc_ch_search_writer *w);
/* Writes the rows of |acc|'s blocks and stores them through |store|:
 * search_blocks, then search_grams (a block's keys never name a block the
 * table does not hold). 0, or the first nonzero |store| returned. A retried
 * insert writes its blocks again under new ids: more candidates, never fewer. */
int pc_ch_search_store(pc_ch_search_writer *w, const pc_ch_search_acc *acc,
                       pc_ch_store_rows_fn store, void *ud);

/*
 * The rows of |acc|'s blocks: JSONEachRow lines into |grams| (table
 * search_grams) and |blocks| (search_blocks), each with its partition. *seq
 * (the caller's, kept across calls) numbers the block ids' low bits.
 */
void pc_ch_search_rows(const pc_ch_search_acc *acc, uint64_t *seq, pc_ch_rows *grams,
                       pc_ch_rows *blocks);

/* DDL of table |table| (0 search_grams, 1 search_blocks; CREATE TABLE IF NOT
 * EXISTS) in database |db|. */
void pc_ch_ddl_search(pc_buf *out, pc_ch_dialect d, const char *db, int table);
/* INSERT ... FORMAT JSONEachRow of each table. */
void pc_ch_insert_search_grams(pc_buf *out, const char *db);
void pc_ch_insert_search_blocks(pc_buf *out, const char *db);

/* Reads. Every value is a number or quoted by pc_ch_quote; TabSeparated. */
/*
 * The traces of the newest |max| blocks holding every one of the |n| keys,
 * of every project, newest start first: project_id, trace_id, started_ns,
 * and the array of those blocks the trace is in ("[b1,b2]"), so the caller
 * counts the blocks found (one round trip for both).
 */
void pc_ch_sql_search_candidates(pc_buf *out, const char *db, const uint64_t *keys, int n,
                                 int max);
/*
 * The search columns of the |n| traces (projects[i], trace_ids[i]), their
 * spans' and their attached events' (clickhouse_events.h) in one answer.
 * The spans are read by trace id alone: rows of another project that has one
 * of those trace ids come too, and the caller drops them. The columns:
 * project_id, trace_id, span_id, name, attributes, events, input_messages,
 * output_messages. A span row has span_id ''; an event row has its span's id,
 * '' as name, '{}' as attributes, the event as a one-event array, '' as
 * messages (whether that span is stored is the caller's to ask:
 * pc_ch_sql_spans_exist). With |run_len| > 0 only the rows where one of those
 * columns holds |run| (ASCII case-insensitive), a superset of the rows whose
 * search text holds the query |run| was cut from (pc_ch_search_ascii_run).
 */
void pc_ch_sql_verify(pc_buf *out, const char *db, const char *const *projects,
                      const char *const *trace_ids, size_t n, const char *run, size_t run_len);
/* Which of the |n| (>= 1) traces (projects[i], trace_ids[i]) have the span
 * span_ids[i] stored: project_id, trace_id, each once. */
void pc_ch_sql_spans_exist(pc_buf *out, const char *db, const char *const *projects,
                           const char *const *trace_ids, const char *const *span_ids, size_t n);

/*
 * The longest run of the query |q| (|n| bytes) that the stored columns hold
 * as typed: printable ASCII except '"' and '\\' (the JSON writer escapes
 * those, and every byte outside ASCII is outside it). Folding maps ASCII to
 * ASCII only and nothing else to ASCII (local_text.h), so a span whose search
 * text holds q (folded) has a column holding the run in some ASCII case.
 * Returns its length and its offset in *at; 0 when shorter than 3 bytes.
 */
size_t pc_ch_search_ascii_run(const char *q, size_t n, size_t *at);

#endif

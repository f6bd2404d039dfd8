/*
 * clickhouse_sql.h - the text the `clickhouse` exporter writes: DDL of both
 * dialects, JSONEachRow rows for INSERT bodies, and string-literal escaping.
 * The reads' SQL and the reader of their answers are clickhouse_query.h.
 *
 * Data flow: clickhouse.c builds every request body with these functions;
 * nothing here does I/O, so the unit tests cover all of it without a server.
 * The table contract (columns, engines, keys) is documented in
 * clickhouse_sql.c.
 *
 * Safety: caller text reaches SQL only through pc_ch_quote (one escaping
 * function); integers are formatted here; the database name is checked by
 * pc_ch_valid_database before any builder sees it.
 */
#ifndef PC_CLICKHOUSE_SQL_H
#define PC_CLICKHOUSE_SQL_H

#include "attr_bloom.h"
#include "buf.h"
#include "span.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

/* modern: DateTime64(6), now64(6), TTL (ClickHouse >= 20, Cloud); legacy: 18.16. */
typedef enum pc_ch_dialect { PC_CH_MODERN = 0, PC_CH_LEGACY = 1 } pc_ch_dialect;

/* The dialect of a server answering |version| to SELECT version() ("18.16.1"). */
pc_ch_dialect pc_ch_dialect_of(const char *version);

/* True when |db| is a usable database name: 1..64 of [A-Za-z0-9_]. */
bool pc_ch_valid_database(const char *db);

/*
 * Appends |n| bytes of |p| as a single-quoted ClickHouse string literal:
 * backslash and quote are backslash-escaped, every byte outside printable
 * ASCII (control bytes, DEL, UTF-8 bytes) is written as \xHH, so the literal
 * is pure printable ASCII and means exactly the input bytes.
 */
void pc_ch_quote(pc_buf *out, const char *p, size_t n);
void pc_ch_quote_cstr(pc_buf *out, const char *s);
/* The bytes pc_ch_quote_cstr appends for |s| (NULL: "''"). */
size_t pc_ch_quoted_len(const char *s);

/*
 * DDL: CREATE DATABASE / TABLE ... IF NOT EXISTS for |db| in |d|. The spans
 * and traces tables are created as |table| (normally "spans" / "traces"; the
 * migration builds the new ones under other names first).
 */
void pc_ch_ddl_database(pc_buf *out, const char *db);

/* Rows per primary-key granule of the spans table (a trace lookup reads at least
 * one granule from each part that may hold the trace). */
#define PC_CH_SPAN_GRANULE 256
/* The least uncompressed bytes of a compressed block of a column of the tables
 * read by key, spans and trace_rows (min_compress_block_size; the server's
 * default is 65,536): reading a granule decompresses the whole block holding
 * it, so blocks about a granule's size (a string column's granule is a few KB)
 * cost a read of scattered traces a fraction. The modern dialect sets it on
 * those tables (clickhouse_sql.c); 18.16 takes it from the server's default
 * profile only (README, ClickHouse). */
#define PC_CH_BLOCK_BYTES 4096
void pc_ch_ddl_spans(pc_buf *out, pc_ch_dialect d, const char *db, const char *table);
/* Modern: sets PC_CH_BLOCK_BYTES on |table| of |db| (an ALTER of its
 * settings: parts written from then on, by inserts and merges). */
void pc_ch_ddl_blocks(pc_buf *out, const char *db, const char *table);
void pc_ch_ddl_traces(pc_buf *out, pc_ch_dialect d, const char *db, const char *table);
void pc_ch_ddl_schema_version(pc_buf *out, const char *db);

/*
 * Schema 8: trace_rows, the traces rows again, keyed by trace
 * (ORDER BY (trace_id, project_id), granules of PC_CH_TRACE_ROWS_GRANULE rows):
 * a list page reads the rows of its named traces whole, wherever in time they
 * lie, from a granule per part. Only the columns a trace's merged summary and
 * the list filters read (trace_rows_cols in clickhouse_sql.c). The
 * materialized view trace_rows_mv copies every row inserted into traces (the
 * exporter writes traces only; a row and its copy are one INSERT).
 * pc_ch_sql_trace_rows_copy: the migration to 8's copy of the traces rows
 * written before (those without span hashes) into trace_rows.
 */
#define PC_CH_TRACE_ROWS_GRANULE 64
void pc_ch_ddl_trace_rows(pc_buf *out, pc_ch_dialect d, const char *db);
void pc_ch_ddl_trace_rows_mv(pc_buf *out, const char *db);
void pc_ch_sql_trace_rows_copy(pc_buf *out, const char *db);
/*
 * A traces row the server refuses alone (dead-lettered) is missing from
 * trace_rows too, so its trace's other rows would merge without it: a
 * stand-in row there, merge_keys 0, sends that trace's list pages to its
 * spans. pc_ch_trace_rows_standin appends its JSONEachRow line (the refused
 * row's trace, project and start, so its partition; every other column its
 * default); pc_ch_insert_standins the INSERT it goes with.
 */
void pc_ch_trace_rows_standin(pc_buf *out, pc_ch_dialect d, const char *project,
                              const char *trace_id, int64_t started_ns);
void pc_ch_insert_standins(pc_buf *out, const char *db);

/*
 * Schema 4's columns (issue 13), appended to schema 3's in this order by both
 * the DDL and the 3 -> 4 migration (ALTER TABLE ... ADD COLUMN, which gives
 * existing rows the DEFAULT: "unknown"). |zstd|: compressed on the modern
 * dialect. Unknown costs are NULL (Nullable(Float64)), unknown token details
 * -1, absent strings ''.
 *
 * |bits| (the span costs), legacy dialect only: the column is stored as
 * <name>_bits Nullable(UInt64), the IEEE 754 bits of the double, and <name>
 * is an ALIAS decoding them (reinterpretAsFloat64(reinterpretAsString(..))).
 * Why: 18.16 parses a float in an INSERT body to a neighbouring double now
 * and then (2.7e-05 reads back as 2.7000000000000002e-05: 35 of 2,010 costs
 * in a test), and a span's cost must read back as the very double the
 * embedded store keeps; integers it parses exactly. Reads name <name> on
 * both dialects.
 */
typedef struct pc_ch_column {
    const char *name;
    const char *type; /* with its DEFAULT when it has one */
    bool zstd;
    bool bits;
} pc_ch_column;

/* The legacy dialect's ALIAS type of a |bits| column named |name|, appended to |out|:
 * "Nullable(Float64) ALIAS reinterpretAsFloat64(reinterpretAsString(<name>_bits))". */
void pc_ch_bits_alias(pc_buf *out, const char *name);
extern const pc_ch_column pc_ch_span_v4[];
extern const pc_ch_column pc_ch_trace_v4[];
extern const pc_ch_column pc_ch_trace_v7[];
extern const pc_ch_column pc_ch_trace_v8[];
extern const pc_ch_column pc_ch_trace_v9[];
#define PC_CH_SPAN_V4_N 12
#define PC_CH_TRACE_V4_N 4
#define PC_CH_TRACE_V7_N 6
#define PC_CH_TRACE_V8_N 1
#define PC_CH_TRACE_V9_N 1
#define PC_CH_SPAN_V4_COLS                                                                         \
    " llm_request_model, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd,"       \
    " cost_input_usd, cost_output_usd, cost_source, session_id, user_id, input_messages,"          \
    " output_messages"
#define PC_CH_TRACE_V4_COLS " session_id, user_id, cost_usd, models"
#define PC_CH_TRACE_V7_COLS                                                                        \
    " first_start_ns, first_span_id, root_created_ns, root_start_ns, cost_sum, merge_keys"
#define PC_CH_TRACE_V8_COLS " span_hashes"
#define PC_CH_TRACE_V9_COLS " attr_bloom"

/*
 * Schema 8: a traces row's span_hashes holds pc_ch_span_hash of each of its
 * spans' ids, so a trace's merged rows show whether they hold a span twice
 * (fewer distinct hashes than spans; two ids sharing a hash read the same,
 * which only sends that trace's page to its spans). The low 32 bits of
 * SipHash-2-4 under the zero key: ClickHouse's toUInt32(sipHash64(span_id)).
 * Stored: changing the function needs a schema version.
 */
uint32_t pc_ch_span_hash(pc_str span_id);

/*
 * Schema 9: a traces row's attr_bloom holds the attribute filter of its spans
 * (attr_bloom.h) as PC_CH_BLOOM_WORDS UInt64 words, bit i of the filter being
 * bit i % 64 of word i / 64 (element i / 64 + 1); rows written before hold an
 * empty array, which a list reads as "maybe" (clickhouse_query.h:
 * pc_ch_sql_attr_may). Stored: attr_bloom.h's format is this schema's too.
 */
#define PC_CH_BLOOM_WORDS (PC_ATTR_BLOOM_BYTES / 8)

/* Schema 3's columns, which the 2 -> 3 migration copies. */
#define PC_CH_SPAN_COLUMNS_V3                                                                      \
    "span_id, trace_id, parent_span_id, name, span_type, service_name, started_at, ended_at,"      \
    " duration_ms, status, attributes, events, created_at, project_id, kind, status_message,"      \
    " source, trace_state, start_ns, end_ns, created_ns, llm_provider, llm_model, input_tokens,"   \
    " output_tokens, links, resource, scope, first_write_rank"
#define PC_CH_TRACE_COLUMNS_V3                                                                     \
    "trace_id, service_name, started_at, completed_at, duration_ms, status, root_span_id,"         \
    " span_count, metadata, created_at, project_id, root_span_name, has_root, source,"             \
    " started_ns, completed_ns, created_ns, input_tokens, output_tokens, span_types"

/* Skip indexes of the modern dialect (18.16 has none), "INDEX name expr TYPE t
 * GRANULARITY g" each: in the DDL and added by the 3 -> 4 migration. */
typedef struct pc_ch_index {
    const char *table; /* "spans" or "traces" */
    const char *name;
    const char *def; /* expression, TYPE and GRANULARITY */
} pc_ch_index;
extern const pc_ch_index pc_ch_indexes_v4[];
#define PC_CH_INDEXES_V4_N 4

/* Every column the exporter writes to spans (in dialect |d|: legacy writes the
 * cost bits), comma-separated (static text); pc_ch_trace_columns: the traces
 * columns of schema 4, which the migrations' copies and backfills fill
 * (schema 7's take their defaults there: merge_keys 0). */
const char *pc_ch_span_columns(pc_ch_dialect d);
const char *pc_ch_trace_columns(void);

/* "INSERT INTO `db`.spans (<every column>) FORMAT JSONEachRow" (traces alike). */
void pc_ch_insert_spans(pc_buf *out, pc_ch_dialect d, const char *db);
void pc_ch_insert_traces(pc_buf *out, const char *db);

/*
 * Appends the JSONEachRow line (ending in '\n') of span |s|, first accepted at
 * |created_ns|. |scratch| is a caller buffer for the JSON columns (reset here).
 */
void pc_ch_span_row(pc_buf *out, pc_ch_dialect d, const pc_span *s, int64_t created_ns,
                    pc_buf *scratch);

/* One trace's partial summary over the spans of one INSERT. */
typedef struct pc_ch_trace_part {
    const pc_span *first; /* least (created, start, span_id) */
    const pc_span *root;  /* least parentless span by the same order, or NULL */
    int64_t first_created;
    int64_t root_created;
    int64_t created_ns; /* min ingest time */
    int64_t started_ns, completed_ns, span_count, input_tokens, output_tokens;
    unsigned types; /* bit 1 << pc_span_type of each span type seen */
    bool error;
    /* Schema 4: the least non-empty session_id / user_id (bytewise); the sum of
     * the known finite costs, negatives counted as 0 (so the sum over a
     * trace's rows is never below its exact cost: the min_cost candidates);
     * the distinct llm_model / llm_request_model values (pointers into the
     * spans, in a block owned here: pc_ch_part_free). */
    pc_str session_id, user_id;
    double cost_usd;
    bool cost_known;
    double cost_sum; /* schema 7: the known finite costs summed as they are */
    uint32_t *hashes; /* schema 8: pc_ch_span_hash of each span, in a block owned here */
    size_t n_hashes, cap_hashes;
    /* schema 9: the attribute filter of the part's spans (attr_bloom.h) */
    unsigned char bloom[PC_ATTR_BLOOM_BYTES];
    pc_str *models;
    size_t n_models, cap_models;
} pc_ch_trace_part;

/* Starts |p| with span |s| ingested at |created_ns|; pc_ch_part_add folds more in;
 * pc_ch_part_free releases what init and add allocated. */
void pc_ch_part_init(pc_ch_trace_part *p, const pc_span *s, int64_t created_ns);
void pc_ch_part_add(pc_ch_trace_part *p, const pc_span *s, int64_t created_ns);
void pc_ch_part_free(pc_ch_trace_part *p);

/* Writes the span_types column text of the type set |types| (bits 1 << pc_span_type)
 * to |out| (at least 128 bytes): ",llm,tool," (every type between commas, so a
 * type is found as ",<type>,"), "," for none. Returns its length (NUL-terminated). */
size_t pc_ch_span_types_text(char *out, unsigned types);

/* Appends the JSONEachRow line of the partial trace row |p|. */
void pc_ch_trace_row(pc_buf *out, pc_ch_dialect d, const pc_ch_trace_part *p);

#endif

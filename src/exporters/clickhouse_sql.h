/*
 * clickhouse_sql.h - the text the `clickhouse` exporter sends and reads: DDL
 * of both dialects, JSONEachRow rows for INSERT bodies, the SQL of the store
 * queries, string-literal escaping, and the TabSeparated reader.
 *
 * Data flow: clickhouse.c builds every request body with these functions and
 * parses every SELECT answer with pc_ch_tsv_row; nothing here does I/O, so the
 * unit tests cover all of it without a server. The table contract (columns,
 * engines, how a trace summary is merged) is documented in clickhouse_sql.c.
 *
 * Safety: caller text reaches SQL only through pc_ch_quote (one escaping
 * function); integers are formatted here; the database name is checked by
 * pc_ch_valid_database before any builder sees it.
 */
#ifndef PC_CLICKHOUSE_SQL_H
#define PC_CLICKHOUSE_SQL_H

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

/*
 * DDL: CREATE DATABASE / TABLE ... IF NOT EXISTS for |db| in |d|. The spans
 * and traces tables are created as |table| (normally "spans" / "traces"; the
 * migration builds the new ones under other names first).
 */
void pc_ch_ddl_database(pc_buf *out, const char *db);

/* Rows per primary-key granule of the spans table (a trace lookup reads at least
 * one granule from each part that may hold the trace). */
#define PC_CH_SPAN_GRANULE 256
void pc_ch_ddl_spans(pc_buf *out, pc_ch_dialect d, const char *db, const char *table);
void pc_ch_ddl_traces(pc_buf *out, pc_ch_dialect d, const char *db, const char *table);
void pc_ch_ddl_schema_version(pc_buf *out, const char *db);

/*
 * Appends "SELECT <every traces column, in pc_ch_trace_columns() order> FROM
 * `db`.spans GROUP BY project_id, trace_id": one traces row per trace of the
 * spans table (the migration to schema 3 builds its traces table with it).
 * span_count and the token sums count a span re-sent before merging twice;
 * reads never use them (summaries come from the spans).
 */
void pc_ch_sql_traces_from_spans(pc_buf *out, const char *db);

/* Every column the exporter writes to spans / traces, comma-separated (static text). */
const char *pc_ch_span_columns(void);
const char *pc_ch_trace_columns(void);

/* "INSERT INTO `db`.spans (<every column>) FORMAT JSONEachRow" (traces alike). */
void pc_ch_insert_spans(pc_buf *out, const char *db);
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
} pc_ch_trace_part;

/* Starts |p| with span |s| ingested at |created_ns|; pc_ch_part_add folds more in. */
void pc_ch_part_init(pc_ch_trace_part *p, const pc_span *s, int64_t created_ns);
void pc_ch_part_add(pc_ch_trace_part *p, const pc_span *s, int64_t created_ns);

/* Writes the span_types column text of the type set |types| (bits 1 << pc_span_type)
 * to |out| (at least 128 bytes): ",llm,tool," (every type between commas, so a
 * type is found as ",<type>,"), "," for none. Returns its length (NUL-terminated). */
size_t pc_ch_span_types_text(char *out, unsigned types);

/* Appends the JSONEachRow line of the partial trace row |p|. */
void pc_ch_trace_row(pc_buf *out, pc_ch_dialect d, const pc_ch_trace_part *p);

/*
 * Store queries (see store.h). Each appends one SELECT ending in FORMAT
 * TabSeparated whose columns are what pc_ch_read_trace / pc_ch_read_span
 * expect. A NULL |project_id| means every project for get_trace and search
 * (rows grouped by project), and "" (no project) for get_spans.
 */
void pc_ch_sql_get_trace(pc_buf *out, const char *db, const char *project_id,
                         const char *trace_id);
void pc_ch_sql_get_spans(pc_buf *out, const char *db, const char *project_id,
                         const char *trace_id, int limit, int offset);

/*
 * One window of a trace list (see the contract in clickhouse_sql.c): the
 * traces of |f| whose start is at or after |lo| (INT64_MIN: no edge), at or
 * before |top| (INT64_MAX: none; the caller passes the least of f->end_ns and
 * the cursor's start), newest first, at most f->limit after skipping
 * f->offset. When fewer than f->limit rows come back and the window did not
 * reach the range's start, the caller widens it (pc_ch_next_window).
 */
void pc_ch_sql_list_window(pc_buf *out, const char *db, const pc_trace_filter *f, int64_t lo,
                           int64_t top);

/* Rows the traces table is read below a window's edge (a trace whose earliest
 * row is within this of the edge is known to start before it), and extra
 * candidates a window takes beyond the page (room for traces that look inside
 * the window from their later rows alone); see the contract. */
#define PC_CH_WINDOW_GUARD (3600LL * 1000000000LL)
#define PC_CH_WINDOW_SLACK 8
/* Offsets up to this are applied after the exact check (summaries of offset +
 * limit + slack traces), deeper ones to the candidates; see the contract. */
#define PC_CH_OUTER_OFFSET 100
/* The first window's width and its growth factor; windows wider than
 * PC_CH_WINDOW_MAX have no lower edge. */
#define PC_CH_WINDOW_FIRST (3600LL * 1000000000LL)
#define PC_CH_WINDOW_MAX (PC_CH_WINDOW_FIRST << 16)

/*
 * Search (the traces having a span whose name or attributes contain |text|,
 * ASCII case-insensitively) looks at the first PC_CH_SEARCH_PREFIX bytes of
 * each span's name and of its attributes' JSON text only: a match further in
 * is not found. This bounds what one row costs the server, however large its
 * values; the run must also use max_block_size = pc_ch_search_block_rows()
 * and optimize_move_to_prewhere = 0 so the server's max_execution_time is
 * checked after every few rows (see clickhouse_store.c).
 */
#define PC_CH_SEARCH_PREFIX 65536
void pc_ch_sql_search(pc_buf *out, const char *db, const char *project_id, const char *text,
                      int limit);

/* Rows per block (max_block_size) for a search of a |pattern_len|-byte text:
 * a block's worst case stays under a fixed number of byte comparisons; 1..8192. */
int pc_ch_search_block_rows(size_t pattern_len);

#define PC_CH_TRACE_COLS 13
#define PC_CH_SPAN_COLS 24

/*
 * Splits the next TabSeparated line at |*cur| (up to |end|) into at most |max|
 * columns, unescaping them in place (NUL-terminated). Advances |*cur| past the
 * line. Returns the number of columns, 0 at the end of the text.
 */
int pc_ch_tsv_row(char **cur, char *end, char **cols, int max);

/* Fill rows from parsed columns (strings point into the columns). */
void pc_ch_read_trace(char **cols, pc_trace_row *r);
void pc_ch_read_span(char **cols, pc_span_row *r);

#endif

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

#endif

/*
 * clickhouse_rows.h - the rows of one pending INSERT, each with what the
 * exporter needs to split, bisect and dead-letter it: its partition (month)
 * and the ids that name it.
 *
 * Data flow: clickhouse.c encodes a batch's span and trace rows into a
 * pc_ch_rows (the JSONEachRow lines from clickhouse_sql.c), appends it to the
 * pending insert; the flusher groups the rows by partition
 * (pc_ch_rows_partition_groups), builds each group's body (pc_ch_rows_body)
 * and, when the server refuses a block, bisects the index list. Pure: no I/O,
 * unit-tested in tests/unit/exporters/test_clickhouse_poison.c.
 *
 * Ownership: a pc_ch_rows owns its text; pc_ch_rows_free releases it.
 */
#ifndef PC_CLICKHOUSE_ROWS_H
#define PC_CLICKHOUSE_ROWS_H

#include "buf.h"
#include "span.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One row: its line in text (without the '\n') and its ids in meta. */
typedef struct pc_ch_row {
    size_t off, len; /* the JSONEachRow line in pc_ch_rows.text */
    size_t meta;     /* project, trace id, span id: three NUL-terminated strings */
    int32_t month;   /* the partition: yyyymm of started_at, UTC */
} pc_ch_row;

typedef struct pc_ch_rows {
    pc_buf text; /* the lines, each ending in '\n' */
    pc_buf meta;
    pc_ch_row *v;
    size_t n, cap;
} pc_ch_rows;

#define PC_CH_ROWS_INIT                                                                            \
    {                                                                                              \
        PC_BUF_INIT, PC_BUF_INIT, NULL, 0, 0                                                       \
    }

/* The month (yyyymm, UTC) of Unix time |ns|: the tables' toYYYYMM(started_at). */
int32_t pc_ch_month(int64_t ns);

/*
 * Records the row whose line was appended to r->text since |off| (the length
 * of r->text before the caller wrote it), in partition |month|, named by
 * |project|, |trace_id| and |span_id| (copied; |span_id| may be empty).
 */
void pc_ch_rows_add(pc_ch_rows *r, size_t off, int32_t month, pc_str project, pc_str trace_id,
                    pc_str span_id);

/* Appends every row of |src| to |dst| (copies). */
void pc_ch_rows_append(pc_ch_rows *dst, const pc_ch_rows *src);
/* Like pc_ch_rows_append, but |src| is left empty (its blocks kept for reuse
 * or freeing): when |dst| holds no row, the two swap blocks instead of copying. */
void pc_ch_rows_move(pc_ch_rows *dst, pc_ch_rows *src);
/* Empties |r|, keeping its blocks for the next rows (no page is given back). */
void pc_ch_rows_reset(pc_ch_rows *r);

void pc_ch_rows_free(pc_ch_rows *r);
/* The bytes |r|'s rows hold (not its spare capacity): what the exporter
 * charges to the memory budget. */
size_t pc_ch_rows_bytes(const pc_ch_rows *r);

/* The ids of row |i|: pointers into r->meta, valid until |r| changes. */
const char *pc_ch_row_project(const pc_ch_rows *r, size_t i);
const char *pc_ch_row_trace(const pc_ch_rows *r, size_t i);
const char *pc_ch_row_span(const pc_ch_rows *r, size_t i);

/*
 * Clears the merge keys of the rows of trace (|project|, |trace_id|) in |r|,
 * trace rows of clickhouse_sql.c (pc_ch_trace_row: each line ends in
 * "merge_keys":1}): when one of the trace's spans was dead-lettered, its rows
 * count a span the spans table lacks, so its list pages must come from the
 * spans (clickhouse_query.c). Returns how many rows it changed.
 */
size_t pc_ch_rows_unmerge(pc_ch_rows *r, const char *project, const char *trace_id);

/*
 * Orders the rows into groups of at most |max_parts| partitions each: fills
 * |idx| (r->n entries, caller-allocated) with row indexes sorted by month
 * (stable: rows of one month keep their order) and |ends| (r->n entries at
 * most) with each group's end position in |idx|. Returns the number of
 * groups (0 when r->n is 0). |max_parts| >= 1.
 */
size_t pc_ch_rows_partition_groups(const pc_ch_rows *r, int max_parts, size_t *idx, size_t *ends);

/* Replaces |out| with the body of the |k| rows listed in |idx|. */
void pc_ch_rows_body(const pc_ch_rows *r, const size_t *idx, size_t k, pc_buf *out);

/*
 * When the |k| rows listed in |idx| (k >= 1) are consecutive rows whose lines
 * lie back to back in r->text, sets |p| and |n| to that stretch of text,
 * which is exactly their body, and returns true (no copy needed; valid until
 * |r| changes). False otherwise: build it with pc_ch_rows_body.
 */
bool pc_ch_rows_text_body(const pc_ch_rows *r, const size_t *idx, size_t k, const char **p,
                          size_t *n);

#endif

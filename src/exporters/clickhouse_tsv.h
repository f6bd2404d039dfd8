/*
 * clickhouse_tsv.h - the reader of the `clickhouse` store's TabSeparated
 * answers.
 *
 * Data flow: the store's reads (clickhouse_store*.c) run the statements of
 * clickhouse_query.h and friends, then split each answer's lines into
 * columns here and read them into store.h's rows, whose strings point into
 * the answer.
 */
#ifndef PC_CLICKHOUSE_TSV_H
#define PC_CLICKHOUSE_TSV_H

#include "buf.h"
#include "store.h"

#define PC_CH_TRACE_COLS 16
/* A trace_rows row as a list page reads it (pc_ch_sql_list_rows): a summary's
 * PC_CH_TRACE_COLS columns (the row's own: pc_ch_read_trace reads them, the
 * cost column being cost_sum), then merge_keys, has_root, root_created_ns,
 * root_start_ns, first_start_ns, first_span_id, span_hashes and the two
 * filter flags (span type, model). */
#define PC_CH_LIST_ROWS_COLS (PC_CH_TRACE_COLS + 9)
#define PC_CH_SPAN_COLS 36

/* A cost column's text ("\N" unescaped, "nan" or a number) as a double, NAN = unknown. */
double pc_ch_cost(const char *s);

/*
 * Splits the next TabSeparated line at |*cur| (up to |end|) into at most |max|
 * columns, unescaping them in place (NUL-terminated). Advances |*cur| past the
 * line. Returns the number of columns, 0 at the end of the text.
 */
int pc_ch_tsv_row(char **cur, char *end, char **cols, int max);

/* The rows (lines) of the TabSeparated answer |text|. */
int pc_ch_tsv_rows(const pc_buf *text);

/* Fill rows from parsed columns (strings point into the columns). */
void pc_ch_read_trace(char **cols, pc_trace_row *r);
void pc_ch_read_span(char **cols, pc_span_row *r);

#endif

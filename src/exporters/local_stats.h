/*
 * local_stats.h - the embedded store's aggregates (local_stats.c): the
 * store.h stats read, the same read from the spans alone (the reference the
 * tests compare against), the building of one hour's rollups, and what the
 * writer's deltas share with them: how a span counts (pc_local_fig),
 * stats_rollup's row codec, and the figures of whole traces (retention).
 *
 * Where it sits: pc_local_stats and pc_local_stats_spans run on a pooled
 * read connection (local_store.c's ops); an hour's rollups are gathered in
 * a read transaction and stored in a write one, and the writer's deltas
 * applied in its transactions, by local_rollup.c.
 */
#ifndef PC_LOCAL_STATS_H
#define PC_LOCAL_STATS_H

#include "local_cells.h"
#include "store.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* The rollup kinds (stats_rollup.kind): 0 none (the project is a key of
 * every row), 1 model, 2 service, 3 span type (local_cells.h's
 * pc_stats_kind). */
#define PC_ROLLUP_KINDS 4

/* A rollup's hour, in ns; stats_rollup.hour is start_ns / PC_ROLLUP_HOUR_NS
 * (SQLite's integer division: toward zero, as C's). */
#define PC_ROLLUP_HOUR_NS 3600000000000LL

/* stats_rollup's figure columns, in the order pc_local_rollup_row_add reads
 * and pc_local_rollup_row_bind binds them. */
#define PC_ROLLUP_FIGURES                                                                          \
    "spans, traces, errors, input_tokens, output_tokens, cost, unpriced, bins, priced"

/* One span's figures, as the stats count them (the stored span's columns). */
typedef struct pc_local_fig {
    bool error;                          /* status error */
    int64_t input_tokens, output_tokens; /* counted when > 0 */
    bool priced;                         /* a known cost: cost_usd */
    double cost_usd;
    bool unpriced; /* an LLM or embedding span naming a model, without a cost */
    bool ended;    /* end_ns > 0: duration_ns = end_ns - start_ns goes in a bin */
    int64_t duration_ns;
} pc_local_fig;

/* Adds span figures |f| to cell |c| (none when NULL: past a read's cut). */
void pc_local_fig_add(pc_cell *c, const pc_local_fig *f);

/* Adds the stored figures at columns |col|.. of |st| (PC_ROLLUP_FIGURES) to
 * |c|; false when the bins do not decode. */
bool pc_local_rollup_row_add(pc_cell *c, sqlite3_stmt *st, int col);

/* Binds |c|'s figures to parameters |col|.. of |st| (PC_ROLLUP_FIGURES), the
 * bins encoded through |bins| (scratch). */
void pc_local_rollup_row_bind(sqlite3_stmt *st, int col, pc_cell *c, pc_buf *bins);

/* "SELECT ... FROM traces t CROSS JOIN spans s ON s.tid = t.tid" with the
 * columns pc_local_stats_gather_traces reads, into |sql|; the caller adds a
 * WHERE on t that selects whole traces and orders nothing (a trace's spans
 * come together through the join). */
void pc_local_stats_traces_sql(pc_buf *sql);

/* Adds the spans |st| (pc_local_stats_traces_sql's, bound) yields to |acc|,
 * one pc_cells per kind keyed (the hour's first ns, "project\0value"): every
 * span in its hour, and each trace once per group in the hour of its first
 * span there, as a build counts them. SQLite code (SQLITE_OK). */
int pc_local_stats_gather_traces(sqlite3_stmt *st, pc_cells acc[PC_ROLLUP_KINDS]);

/* store.h's stats over a pc_local_reader: built hours from stats_rollup, the
 * rest from the spans. */
int pc_local_stats(void *ctx, const pc_stats_query *q, pc_stats_cb cb, void *ud);

/* The same answer from the spans alone, every hour gathered (tests). */
int pc_local_stats_spans(void *ctx, const pc_stats_query *q, pc_stats_cb cb, void *ud);

/* One hour's rollup figures, gathered (pc_local_stats_gather_hour). */
typedef struct pc_local_hour pc_local_hour;

/*
 * Gathers the rollup figures of hour |hour| (hour number: start_ns / 1 h)
 * from its spans, in the caller's transaction (a read one will do: the
 * figures are those of its snapshot). *|out| gets them (free with
 * pc_local_stats_hour_free), or NULL. SQLite code (SQLITE_OK).
 */
int pc_local_stats_gather_hour(sqlite3 *db, int64_t hour, pc_local_hour **out);

/* Replaces the rollups of |h|'s hour with its figures, inside the caller's
 * write transaction; *|spans| gets the hour's span count. SQLite code. */
int pc_local_stats_store_hour(sqlite3 *db, pc_local_hour *h, int64_t *spans);

void pc_local_stats_hour_free(pc_local_hour *h);

#endif

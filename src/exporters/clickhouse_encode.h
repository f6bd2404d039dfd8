/*
 * clickhouse_encode.h - one batch into the rows of the `clickhouse` exporter's
 * pending insert: the first step of consume() (clickhouse.c), in the caller's
 * thread, outside any lock.
 *
 * Data flow: normalized batch → pc_ch_encode_batch → span rows
 * (pc_ch_span_row, clickhouse_sql.h), attached events of carriers
 * (clickhouse_events.h), one partial trace row per trace (pc_ch_trace_row),
 * and the search index's pieces (clickhouse_search.h) → joined to the
 * pending insert → the flusher. Pure: no I/O, no lock.
 */
#ifndef PC_CLICKHOUSE_ENCODE_H
#define PC_CLICKHOUSE_ENCODE_H

#include "clickhouse_rows.h"
#include "clickhouse_search.h"
#include "clickhouse_sql.h"
#include "span.h"

/*
 * Appends the rows of |b| in dialect |d|, trace by trace: its spans' rows to
 * |spans|, the events of its carriers (span.h) to |events|, one partial row
 * per trace that has a span to |traces|, and its pieces to |search| (closed:
 * pc_ch_search_end_batch). Every row carries its partition and ids
 * (clickhouse_rows.h). Borrows |b|.
 */
void pc_ch_encode_batch(const pc_batch *b, pc_ch_dialect d, pc_ch_rows *spans, pc_ch_rows *traces,
                        pc_ch_rows *events, pc_ch_search_acc *search);

#endif

/*
 * clickhouse_encode.c - a batch into the rows of the `clickhouse` exporter's
 * pending insert (see clickhouse_encode.h).
 *
 * Cost: the span rows are the bulk of consume()'s work; the search index's
 * text is made from the decoded spans (pc_local_span_text), not from their
 * rows' JSON.
 */
#include "clickhouse_encode.h"

#include "clickhouse_events.h"

#include <stdlib.h>

void pc_ch_encode_batch(const pc_batch *b, pc_ch_dialect d, pc_ch_rows *spans, pc_ch_rows *traces,
                        pc_ch_rows *events, pc_ch_search_acc *search)
{
    pc_buf scratch = PC_BUF_INIT;
    pc_trace_group *tr;
    size_t nt = pc_batch_group_traces(b, &tr);
    for (size_t k = 0; k < nt; k++) {
        pc_str project = tr[k].spans[0]->project_id;
        size_t w = 0; /* the trace's spans, carriers left out: a trace row summarizes spans */
        for (size_t i = 0; i < tr[k].n; i++) {
            const pc_span *s = tr[k].spans[i];
            int64_t created = pc_span_received(b, s);
            if (s->carrier) {
                pc_ch_event_rows(events, d, s, created, &scratch);
            } else {
                size_t off = spans->text.len;
                pc_ch_span_row(&spans->text, d, s, created, &scratch);
                pc_ch_rows_add(spans, off, pc_ch_month(s->start_ns), s->project_id, s->trace_id,
                               s->span_id);
                tr[k].spans[w++] = s;
            }
            pc_ch_search_span(search, s);
        }
        pc_ch_search_end_trace(search, project, tr[k].trace_id);
        if (!w) continue;
        pc_ch_trace_part part;
        pc_ch_part_init(&part, tr[k].spans[0], pc_span_received(b, tr[k].spans[0]));
        for (size_t i = 1; i < w; i++)
            pc_ch_part_add(&part, tr[k].spans[i], pc_span_received(b, tr[k].spans[i]));
        size_t off = traces->text.len;
        pc_ch_trace_row(&traces->text, d, &part);
        pc_ch_part_free(&part);
        pc_ch_rows_add(traces, off, pc_ch_month(part.started_ns), tr[k].spans[0]->project_id,
                       tr[k].trace_id, PC_STR_NULL);
    }
    pc_ch_search_end_batch(search);
    free(tr);
    pc_buf_free(&scratch);
}


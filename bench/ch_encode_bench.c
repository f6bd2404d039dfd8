/*
 * ch_encode_bench.c - how fast the `clickhouse` exporter turns a request into
 * the rows of its pending insert: join_insert's work (clickhouse.c) without
 * its locks, that is pc_ch_encode_batch (span rows, one trace row per trace
 * with its attribute filter, the search index's keys) and pc_ch_rollup_marks,
 * per dialect, on one thread, without ClickHouse. The requests are the
 * query-scale benchmark's (qs_workload.h: LLM-agent traces with prose
 * prompts), decoded and normalized as the receiver hands them on. Then the
 * parts alone over the same spans, to read their shares: the attribute
 * filters (pc_attr_bloom_add_attrs) and the search keys
 * (pc_ch_search_add_batch). Prints microseconds of CPU a span and the rows'
 * bytes a span. It runs with the collector's malloc settings (pc_mem_tune):
 * with glibc's defaults, the rows' buffers were given back to the kernel
 * and faulted in again, request after request. A program that prints
 * numbers, not a test.
 *
 *   ch_encode_bench [SECONDS [TRACES_PER_REQUEST]]   (default 2 s a row, 50 traces)
 */
#include "qs_workload.h"
#include "workload.h"

#include "attr_bloom.h"
#include "mem.h"
#include "span.h"
#include "exporters/clickhouse_encode.h"
#include "exporters/clickhouse_rollup.h"
#include "exporters/clickhouse_rows.h"
#include "exporters/clickhouse_search.h"

#include <stdio.h>
#include <stdlib.h>

#define REQUESTS 32 /* distinct requests cycled through: their texts differ */

typedef enum { WHOLE_LEGACY, WHOLE_MODERN, FILTERS, SEARCH_KEYS, ROWS } row;

static const char *const NAMES[ROWS] = {"join_insert, legacy", "join_insert, modern",
                                        "attribute filters", "search keys"};

/* Runs row |r| over request |b| once; returns the rows' bytes. */
static size_t run(row r, const pc_batch *b)
{
    size_t bytes = 0;
    if (r == WHOLE_LEGACY || r == WHOLE_MODERN) {
        pc_ch_rows spans = PC_CH_ROWS_INIT, traces = PC_CH_ROWS_INIT, events = PC_CH_ROWS_INIT;
        pc_ch_rows marks = PC_CH_ROWS_INIT;
        pc_ch_search_acc piece = PC_CH_SEARCH_ACC_INIT;
        pc_ch_encode_batch(b, r == WHOLE_LEGACY ? PC_CH_LEGACY : PC_CH_MODERN, &spans, &traces,
                           &events, &piece);
        pc_ch_rollup_marks(b, &marks);
        bytes = pc_ch_rows_bytes(&spans) + pc_ch_rows_bytes(&traces) +
                pc_ch_rows_bytes(&events) + pc_ch_rows_bytes(&marks) +
                pc_ch_search_bytes(&piece);
        pc_ch_rows_free(&spans);
        pc_ch_rows_free(&traces);
        pc_ch_rows_free(&events);
        pc_ch_rows_free(&marks);
        pc_ch_search_free(&piece);
    } else if (r == FILTERS) {
        unsigned char bloom[PC_ATTR_BLOOM_BYTES] = {0};
        for (size_t i = 0; i < b->n; i++)
            pc_attr_bloom_add_attrs(bloom, &b->spans[i].attrs);
        bytes = bloom[0] & 1; /* used, so not optimized away */
    } else {
        pc_ch_search_acc acc = PC_CH_SEARCH_ACC_INIT;
        pc_ch_search_add_batch(&acc, b);
        bytes = pc_ch_search_bytes(&acc);
        pc_ch_search_free(&acc);
    }
    return bytes;
}

int main(int argc, char **argv)
{
    pc_mem_tune();
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    int per = argc > 2 ? atoi(argv[2]) : 50;
    if (per < 1) per = 1;
    qs_workload w;
    if (qs_workload_init(&w, 1, (uint64_t)REQUESTS * per * QS_SPANS_PER_TRACE, 0,
                         QS_ORDER_RANDOM))
        return 1;
    pc_batch *reqs[REQUESTS];
    for (int q = 0; q < REQUESTS; q++)
        if (!(reqs[q] = qs_workload_batch(&w, (uint64_t)q * per, per))) return 1;
    for (row r = 0; r < ROWS; r++) {
        size_t spans = 0, bytes = 0;
        double t0 = lg_cpu_seconds(), t = t0;
        for (int q = 0; t - t0 < seconds; q = (q + 1) % REQUESTS) {
            bytes += run(r, reqs[q]);
            spans += reqs[q]->n;
            if (q % 4 == 0) t = lg_cpu_seconds();
        }
        double el = t - t0;
        printf("ch_encode_bench %-20s: %d traces a request, %.0f spans per CPU-s (%.2f us a "
               "span)",
               NAMES[r], per, spans / el, el * 1e6 / spans);
        if (r == WHOLE_LEGACY || r == WHOLE_MODERN)
            printf(", %.0f bytes of rows a span", (double)bytes / spans);
        printf("\n");
    }
    for (int q = 0; q < REQUESTS; q++)
        pc_batch_unref(reqs[q]);
    return 0;
}

/*
 * search_keys_bench.c - how fast the `clickhouse` exporter gathers the search
 * index of a request (clickhouse_search.h: pc_ch_search_add_batch, the trigram
 * keys of every span's search text, deduplicated per piece, in consume()'s
 * thread) and cuts its blocks (pc_ch_search_rows, the flusher's part), on one
 * thread, without ClickHouse. The requests are the query-scale benchmark's
 * (qs_workload.h: LLM-agent traces with prose prompts, 10 spans a trace),
 * decoded with pc_otlp_proto_decode and normalized as the receiver holds them.
 * Prints spans per CPU-second, keys per span and the distinct keys per piece.
 * First, the search text both exporters make of each span (local_text.h):
 * from the decoded span (pc_local_span_text, what they do) against parsing
 * the row's attributes and events JSON back (pc_local_search_text, what they
 * did; the JSON is written beforehand, untimed, as the row had written it).
 * A program that prints numbers, not a test.
 *
 *   search_keys_bench [SECONDS [TRACES_PER_REQUEST]]   (default 2 s, 10 traces)
 */
#include "qs_workload.h"
#include "workload.h"

#include "span.h"
#include "exporters/clickhouse_rows.h"
#include "exporters/clickhouse_search.h"
#include "exporters/local_text.h"

#include <stdio.h>
#include <stdlib.h>

#define REQUESTS 64 /* distinct requests cycled through: the keys differ per trace */

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    int per = argc > 2 ? atoi(argv[2]) : 10;
    if (per < 1) per = 1;
    qs_workload w;
    if (qs_workload_init(&w, 1, (uint64_t)REQUESTS * per * 10, 0, QS_ORDER_RANDOM)) return 1;
    pc_batch *reqs[REQUESTS];
    for (int r = 0; r < REQUESTS; r++)
        if (!(reqs[r] = qs_workload_batch(&w, (uint64_t)r * per, per))) return 1;

    /* the search text of each span, both ways */
    size_t all_spans = 0;
    for (int r = 0; r < REQUESTS; r++)
        all_spans += reqs[r]->n;
    pc_buf *json = calloc(2 * all_spans, sizeof(pc_buf)); /* attributes, events per span */
    for (int r = 0, k = 0; r < REQUESTS; r++)
        for (size_t i = 0; i < reqs[r]->n; i++, k++) {
            pc_attrs_write_json(&json[2 * k], &reqs[r]->spans[i].attrs);
            pc_events_write_json(&json[2 * k + 1], reqs[r]->spans[i].events,
                                 reqs[r]->spans[i].n_events);
        }
    pc_buf text = PC_BUF_INIT;
    for (int way = 0; way < 2; way++) {
        size_t n = 0, bytes = 0;
        double t0 = lg_cpu_seconds(), t = t0;
        for (int r = 0, k = 0; t - t0 < seconds; r = (r + 1) % REQUESTS) {
            if (r == 0) k = 0;
            for (size_t i = 0; i < reqs[r]->n; i++, k++) {
                const pc_span *s = &reqs[r]->spans[i];
                pc_buf_reset(&text);
                if (way == 0) {
                    pc_local_span_text(&text, s);
                } else {
                    pc_local_text_in in = {s->name.p, s->name.n, json[2 * k].data,
                                           json[2 * k].len, json[2 * k + 1].data,
                                           json[2 * k + 1].len, s->input_messages.p,
                                           s->input_messages.n, s->output_messages.p,
                                           s->output_messages.n};
                    pc_local_search_text(&text, &in);
                }
                bytes += text.len;
            }
            n += reqs[r]->n;
            if (r % 16 == 0) t = lg_cpu_seconds();
        }
        double el = t - t0;
        printf("search_keys_bench text %s: %.0f spans per CPU-s (%.2f us a span), %.0f bytes a "
               "span\n",
               way == 0 ? "from the span" : "from its JSON", n / el, el * 1e6 / n,
               (double)bytes / n);
    }
    pc_buf_free(&text);
    for (size_t k = 0; k < 2 * all_spans; k++)
        pc_buf_free(&json[k]);
    free(json);

    /* consume()'s part: one accumulator per request, as join_insert makes it */
    size_t spans = 0, keys = 0, pieces = 0;
    double t0 = lg_cpu_seconds(), t = t0;
    for (int r = 0; t - t0 < seconds; r = (r + 1) % REQUESTS) {
        pc_ch_search_acc acc = PC_CH_SEARCH_ACC_INIT;
        pc_ch_search_add_batch(&acc, reqs[r]);
        spans += reqs[r]->n;
        keys += acc.nkeys;
        pieces += acc.npieces;
        pc_ch_search_free(&acc);
        if (r % 16 == 0) t = lg_cpu_seconds();
    }
    double el = t - t0;
    printf("search_keys_bench gather: %d traces a request, %.0f spans per CPU-s (%.2f us a span),"
           " %.0f distinct keys a piece, %.0f a span\n",
           per, spans / el, el * 1e6 / spans, (double)keys / pieces, (double)keys / spans);

    /* the flusher's part: the pieces of every request into blocks and rows */
    pc_ch_search_acc all = PC_CH_SEARCH_ACC_INIT;
    size_t in_all = 0;
    for (int r = 0; r < REQUESTS; r++) {
        pc_ch_search_acc acc = PC_CH_SEARCH_ACC_INIT;
        pc_ch_search_add_batch(&acc, reqs[r]);
        pc_ch_search_move(&all, &acc);
        pc_ch_search_free(&acc);
        in_all += reqs[r]->n;
    }
    size_t rounds = 0, grams_rows = 0;
    t0 = lg_cpu_seconds(), t = t0;
    uint64_t seq = 0;
    while (t - t0 < seconds) {
        pc_ch_rows grams = PC_CH_ROWS_INIT, blocks = PC_CH_ROWS_INIT;
        pc_ch_search_rows(&all, &seq, &grams, &blocks);
        grams_rows = grams.n;
        pc_ch_rows_free(&grams);
        pc_ch_rows_free(&blocks);
        rounds++;
        t = lg_cpu_seconds();
    }
    el = t - t0;
    printf("search_keys_bench blocks: %zu spans an insert, %.0f spans per CPU-s (%.2f us a span),"
           " %.1f gram rows a span\n",
           in_all, rounds * (double)in_all / el, el * 1e6 / (rounds * (double)in_all),
           (double)grams_rows / in_all);
    pc_ch_search_free(&all);
    for (int r = 0; r < REQUESTS; r++)
        pc_batch_unref(reqs[r]);
    return 0;
}

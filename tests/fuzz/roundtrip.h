/*
 * roundtrip.h - the invariant the ingest fuzz targets check after decoding:
 * whatever a gateway would acknowledge, the storage side can decode.
 *
 * fuzz_roundtrip() takes a batch as a receiver hands it on (decoded, then
 * normalized) and writes every span the way each exporter would: the three
 * Kafka encodings (src/formats/), the prela_json trace summary and the
 * ClickHouse rows of both dialects. Each Kafka message is decoded again with
 * the storage side's decoder (kafka_message.h); it must give back the span with
 * the same ids, times and events. A violation prints what differed and aborts,
 * so libFuzzer (and the corpus driver under ctest) reports it as a crash.
 *
 * Header-only (static inline, so targets that only need FUZZ_CHECK, such as
 * fuzz_json and fuzz_config, include it too): each target is one file.
 */
#ifndef PC_FUZZ_ROUNDTRIP_H
#define PC_FUZZ_ROUNDTRIP_H

#include "exporters/clickhouse_query.h"
#include "formats/kafka_message.h"
#include "formats/otlp_json.h"
#include "formats/otlp_proto.h"
#include "formats/prela_json.h"
#include "processors/normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                                                \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz invariant failed (%s:%d): %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

static inline int fuzz_same(pc_str a, pc_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* |got| (decoded from |enc|) must carry |want|'s ids, times and events. */
static inline void fuzz_same_span(const pc_span *want, const pc_span *got, const char *enc)
{
    FUZZ_CHECK(fuzz_same(want->trace_id, got->trace_id), "%s: trace_id '%.*s' came back '%.*s'",
               enc, (int)want->trace_id.n, want->trace_id.p, (int)got->trace_id.n,
               got->trace_id.p);
    FUZZ_CHECK(fuzz_same(want->span_id, got->span_id), "%s: span_id '%.*s' came back '%.*s'", enc,
               (int)want->span_id.n, want->span_id.p, (int)got->span_id.n, got->span_id.p);
    FUZZ_CHECK(fuzz_same(want->parent_id, got->parent_id), "%s: parent_span_id differs", enc);
    FUZZ_CHECK(want->start_ns == got->start_ns, "%s: start %lld came back %lld", enc,
               (long long)want->start_ns, (long long)got->start_ns);
    FUZZ_CHECK(want->end_ns == got->end_ns, "%s: end %lld came back %lld", enc,
               (long long)want->end_ns, (long long)got->end_ns);
    FUZZ_CHECK(want->n_events == got->n_events, "%s: %zu events came back %zu", enc,
               want->n_events, got->n_events);
    for (size_t i = 0; i < want->n_events; i++)
        FUZZ_CHECK(want->events[i].time_ns == got->events[i].time_ns,
                   "%s: events[%zu] time %lld came back %lld", enc, i,
                   (long long)want->events[i].time_ns, (long long)got->events[i].time_ns);
}

/* Decodes |m| in |enc|; it must give exactly |n| spans, equal to |want|'s. */
static inline void fuzz_decode_back(pc_kafka_encoding enc, const pc_buf *m, const pc_span *const *want,
                             size_t n)
{
    static const char *const names[] = {"prela_json", "otlp_proto", "otlp_json"};
    pc_batch *d = pc_batch_create(NULL);
    pc_kafka_decode_result r;
    pc_kafka_decoded k = pc_kafka_decode(d, enc, m->data, m->len, 1, &r);
    FUZZ_CHECK(k == PC_KAFKA_SPANS, "%s message is undecodable: %s\n%.*s", names[enc], r.error,
               (int)(m->len < 2000 ? m->len : 2000), m->data);
    FUZZ_CHECK(d->n == n && r.rejected == 0, "%s: %zu spans sent, %zu back (%lld rejected: %s)",
               names[enc], n, d->n, (long long)r.rejected, r.error);
    for (size_t i = 0; i < n; i++)
        fuzz_same_span(want[i], &d->spans[i], names[enc]);
    pc_batch_unref(d);
}

/* Normalizes the spans of |b| and checks every exporter's encoding of them. */
static inline void fuzz_roundtrip(pc_batch *b)
{
    if (!b->n) return;
    pc_buf m = PC_BUF_INIT, scratch = PC_BUF_INIT;
    const pc_span **all = malloc(b->n * sizeof(*all));
    for (size_t i = 0; i < b->n; i++) {
        pc_span *s = &b->spans[i];
        pc_normalize_span(s, PC_STR_LIT("fuzz-service"));
        all[i] = s;
        pc_buf_reset(&m);
        pc_prela_json_encode_span(&m, s, pc_span_received(b, s));
        fuzz_decode_back(PC_KAFKA_PRELA_JSON, &m, &all[i], 1);
        pc_buf_reset(&m);
        pc_otlp_proto_encode(&m, &all[i], 1);
        fuzz_decode_back(PC_KAFKA_OTLP_PROTO, &m, &all[i], 1);
        pc_buf_reset(&m);
        pc_otlp_json_encode(&m, &all[i], 1);
        fuzz_decode_back(PC_KAFKA_OTLP_JSON, &m, &all[i], 1);
        for (int d = 0; d < 2; d++) {
            pc_buf_reset(&m);
            pc_ch_span_row(&m, d ? PC_CH_LEGACY : PC_CH_MODERN, s, 1, &scratch);
        }
    }
    /* All spans in one message: the grouping by resource and scope. */
    pc_buf_reset(&m);
    pc_otlp_proto_encode(&m, all, b->n);
    pc_batch *d = pc_batch_create(NULL);
    pc_kafka_decode_result r;
    FUZZ_CHECK(pc_kafka_decode(d, PC_KAFKA_OTLP_PROTO, m.data, m.len, 1, &r) == PC_KAFKA_SPANS &&
                   d->n == b->n,
               "otlp_proto of %zu spans: %zu back: %s", b->n, d->n, r.error);
    pc_batch_unref(d);
    pc_buf_reset(&m);
    pc_prela_json_encode_trace(&m, all, b->n, 1);
    pc_ch_trace_part part;
    pc_ch_part_init(&part, all[0], 1);
    for (size_t i = 1; i < b->n; i++)
        pc_ch_part_add(&part, all[i], 1);
    for (int dl = 0; dl < 2; dl++) {
        pc_buf_reset(&m);
        pc_ch_trace_row(&m, dl ? PC_CH_LEGACY : PC_CH_MODERN, &part);
    }
    pc_ch_part_free(&part);
    free(all);
    pc_buf_free(&m);
    pc_buf_free(&scratch);
}

#endif

/*
 * encode_bench.c - how fast the `kafka` exporter encodes the reference
 * workload's batch (workload.h: one OTLP request of 100 spans, decoded with
 * pc_otlp_proto_decode and normalized, as a gateway holds it) in each trace
 * encoding, on one thread, without Kafka. It makes the exporter's own call,
 * pc_kafka_record_encode (kafka_record.h: pc_batch_group_traces, then one
 * encoder of src/formats/ per message), and prints per encoding: MB/s of
 * record bytes written, spans per CPU-second, and record bytes per span.
 * A program that prints numbers, not a test.
 *
 *   encode_bench [SECONDS [ENCODING]]   (default 2 per encoding, all three)
 */
#include "workload.h"

#include "exporters/kafka_record.h"
#include "formats/kafka_message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    pc_batch *b = lg_reference_batch(7);
    if (!b) return 1;

    static const struct {
        const char *name;
        int enc;
    } encs[] = {{"prela_json", PC_KAFKA_PRELA_JSON},
                {"otlp_proto", PC_KAFKA_OTLP_PROTO},
                {"otlp_json", PC_KAFKA_OTLP_JSON}};
    pc_buf rec = PC_BUF_INIT;
    for (size_t e = 0; e < sizeof(encs) / sizeof(encs[0]); e++) {
        if (argc > 2 && strcmp(argv[2], encs[e].name)) continue;
        size_t rounds = 0, bytes = 0, msgs = 0;
        double t0 = lg_cpu_seconds(), t = t0;
        while (t - t0 < seconds) {
            for (int k = 0; k < 20; k++) {
                pc_buf_reset(&rec);
                pc_kafka_drops drops = {0};
                msgs = pc_kafka_record_encode(&rec, b, encs[e].enc, 16u << 20, "bench", &drops);
                bytes += rec.len;
                rounds++;
            }
            t = lg_cpu_seconds();
        }
        double el = t - t0;
        printf("encode_bench %-10s: %zu spans in %zu messages, %zu batches in %.2f CPU s: %.1f "
               "MB/s, %.0f spans/s, %.0f bytes/span\n",
               encs[e].name, b->n, msgs, rounds, el, bytes / el / 1e6, rounds * (double)b->n / el,
               (double)bytes / rounds / b->n);
    }
    pc_buf_free(&rec);
    pc_batch_unref(b);
    return 0;
}

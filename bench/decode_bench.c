/*
 * decode_bench.c - how fast pc_otlp_proto_decode turns the reference workload
 * (workload.h: OTLP protobuf requests of 100 spans, ~61 KB) into spans, on one
 * thread, without HTTP: MB/s of request bytes and spans per CPU-second, and the arena bytes
 * one request's batch holds. A program that prints numbers, not a test.
 *
 *   decode_bench [SECONDS]   (default 3)
 */
#include "workload.h"

#include "formats/otlp_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    lg_workload w;
    uint8_t *body = lg_reference_request(&w, 7);
    if (!body) return 1;
    size_t reqs = 0, spans = 0, arena = 0;
    double t0 = lg_cpu_seconds(), t = t0;
    while (t - t0 < seconds) {
        for (int k = 0; k < 50; k++) {
            lg_workload_patch(&w, body, ++reqs);
            pc_batch *b = pc_batch_create(NULL);
            pc_otlp_result res;
            if (pc_otlp_proto_decode(b, body, w.len, NULL, "default", &pc_span_limits_default,
                                     &res)) {
                fprintf(stderr, "decode failed: %s\n", res.error);
                return 1;
            }
            spans += b->n;
            arena = pc_arena_used(b->arena);
            pc_batch_unref(b);
        }
        t = lg_cpu_seconds();
    }
    double el = t - t0;
    printf("decode_bench: %zu requests of %zu bytes, %zu spans in %.2f CPU s: %.1f MB/s, %.0f "
           "spans/s, "
           "%zu arena bytes per request\n",
           reqs, w.len, spans, el, reqs * (double)w.len / el / 1e6, spans / el, arena);
    free(body);
    lg_workload_free(&w);
    return 0;
}

/*
 * workload.h - the reference workload of design.md as request bodies: what
 * every loadgen transport sends. The spans are described once and encoded as
 * an OTLP ExportTraceServiceRequest (protobuf; OTLP/HTTP and OTLP/gRPC send the
 * same bytes, gRPC adds its 5-byte prefix) or as Prela SDK JSON
 * ({"spans": [...]} for /v1/batch), so every format carries exactly the same
 * spans: spans/10 traces of 10 spans (agent root, four LLM chat spans with
 * gen_ai.* attributes and ~512 + 256 bytes of prompt/completion text, two tool
 * spans, one embedding span, two HTTP client spans; the last LLM span of every
 * trace fails with an exception event).
 *
 * Distinct ids: the store deduplicates by (trace_id, span_id), so a repeated
 * body would cost the collector almost nothing. The body is built once with a
 * marker where every id holds its request number (6 bytes of OTLP ids, the last
 * 12 hex digits of the UUIDs); lg_workload_patch() overwrites those bytes in a
 * copy of the body. Ids also carry a per-run nonce, so runs never collide.
 * Timestamps are fixed when the body is built.
 *
 * Ownership: lg_workload owns |data| and |patch|; lg_workload_free() frees them.
 * A built workload is read-only, so threads share it; each thread patches its
 * own copy of |data|.
 *
 * The single-thread benchmarks (decode_bench, encode_bench, json_write, and
 * with the query-scale workload search_keys_bench, ch_encode_bench) share
 * more helpers: lg_reference_request / lg_reference_batch (one reference
 * request of 100 spans, as a receiver gets it or as an exporter holds it),
 * lg_decode_batch (any request body as an exporter holds it) and
 * lg_cpu_seconds, the clock they time with.
 */
#ifndef LG_WORKLOAD_H
#define LG_WORKLOAD_H

#include "span.h"

#include <stddef.h>
#include <stdint.h>

enum { LG_BODY_OTLP, LG_BODY_PRELA }; /* protobuf ExportTraceServiceRequest, Prela JSON */

#define LG_SPANS_PER_TRACE 10

typedef struct lg_workload {
    uint8_t *data; /* the body, ids holding the marker */
    size_t len;
    size_t *patch; /* offsets of the request-number field of every id */
    size_t n_patch;
    int format; /* LG_BODY_* */
    int spans;  /* spans per body, a multiple of LG_SPANS_PER_TRACE */
    uint32_t nonce;
} lg_workload;

/*
 * Builds the body of |spans| spans (a multiple of 10) in |format| with run
 * nonce |nonce| into |w|. Returns 0, or -1 after printing why (then |w| holds
 * nothing to free).
 */
int lg_workload_build(lg_workload *w, int format, int spans, uint32_t nonce);

/* Writes request number |req| (> 0, < 2^48) into every id of |body|, a copy of
 * w->data of w->len bytes. */
void lg_workload_patch(const lg_workload *w, uint8_t *body, uint64_t req);

/* The id of the first trace of request |req| as the query API shows it: 32 hex
 * digits (OTLP) or a UUID (Prela), NUL-terminated in |out|. */
void lg_workload_first_trace_id(const lg_workload *w, uint64_t req, char out[48]);

/* Frees what lg_workload_build() allocated. Accepts a zeroed |w|. */
void lg_workload_free(lg_workload *w);

/*
 * The reference request of design.md: builds |w| in OTLP protobuf with 100
 * spans and run nonce |nonce|, and returns a malloc'd copy of its body (w->len
 * bytes) holding request number 1. The caller frees the copy and, with
 * lg_workload_free, |w|. Returns NULL after printing why (|w| then holds
 * nothing to free).
 */
uint8_t *lg_reference_request(lg_workload *w, uint32_t nonce);

/*
 * That request as a gateway's exporter holds it: decoded with
 * pc_otlp_decode_proto (project "default", default span limits, no memory
 * budget) and normalized. The caller owns the batch (pc_batch_unref); it holds
 * no pointer into any workload. Returns NULL after printing why.
 */
pc_batch *lg_reference_batch(uint32_t nonce);

/* Any OTLP protobuf request body so decoded and normalized (the body is
 * copied; the caller frees it). NULL after printing why, naming |what|. */
pc_batch *lg_decode_batch(const uint8_t *body, size_t len, const char *what);

/* CPU seconds this process has used (CLOCK_PROCESS_CPUTIME_ID). Why CPU time
 * rather than wall time: it stays fair on a machine shared with other work. */
double lg_cpu_seconds(void);

#endif

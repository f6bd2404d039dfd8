/*
 * qs_workload.h - the query-scale workload (issue 15): N spans of LLM-agent
 * traces with a realistic shape and spread, as OTLP/HTTP protobuf request
 * bodies. qs_load (the generator) posts them to a running collector's OTLP/HTTP
 * receiver; qs_query (the driver) then times the query API over what they
 * stored. Where it sits: bench tool → otlp receiver → normalize → store (SQLite
 * or ClickHouse) ← query receiver ← bench tool.
 *
 * Every trace has 10 spans: an agent root; four LLM chat spans (gen_ai.* with
 * system, model, input/output tokens, a prompt of 0.3-2 KB and a completion of
 * 0.1-1 KB of prose); two tool spans; two retrieval spans (OpenInference
 * RETRIEVER, with the query text); one embedding span. One service of six per
 * trace (skewed), about 10% of traces with one failed LLM span (status ERROR and
 * an exception event), start times spread uniformly over the 30 days before
 * |base_ns|: at random in the load (QS_ORDER_RANDOM: a backfill, or many
 * clients whose clocks disagree; every time-ordered index takes each trace on
 * a random page) or rising with the trace number, as a collector receives
 * live traffic (QS_ORDER_ARRIVAL: trace g starts at its share of the 30 days,
 * less up to a second of jitter). The prose is sentences drawn from a
 * vocabulary of 8,000 words (the most frequent ones English, the rest
 * synthesized) with a Zipf
 * distribution, so it compresses like text, not like a word list. Each rare word
 * of qs_rare_word() is planted in the prompts of exactly three traces spread
 * over the load; qs_common_word() is in most prompts.
 *
 * Everything is a function of (seed, spans, base_ns) and the trace number, so
 * any request can be rebuilt on its own, in any thread, in any order.
 * The module's exported names use qs_, as loadgen's use lg_ (bench only).
 */
#ifndef QS_WORKLOAD_H
#define QS_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define QS_SPANS_PER_TRACE 10
#define QS_DAYS 30
#define QS_RARE_WORDS 8
#define QS_RARE_COPIES 3 /* traces each rare word is planted in */
#define QS_SERVICES 6

typedef enum { QS_ORDER_RANDOM, QS_ORDER_ARRIVAL } qs_order;

typedef struct qs_workload {
    uint64_t seed;
    uint64_t traces; /* spans / QS_SPANS_PER_TRACE */
    int64_t base_ns; /* the newest start time; the oldest is QS_DAYS before */
    qs_order order;  /* how start times follow the trace number (above) */
} qs_workload;

/* Sets up |w| for |spans| spans (a positive multiple of 10); |base_ns| 0 means now,
 * rounded down to the hour. Returns 0, or -1 after printing why. */
int qs_workload_init(qs_workload *w, uint64_t seed, uint64_t spans, int64_t base_ns,
                     qs_order order);

/* The order named |name| ("random" or "arrival") in *out; 0, or -1 when unknown. */
int qs_order_parse(const char *name, qs_order *out);

/*
 * The OTLP ExportTraceServiceRequest (protobuf) holding traces |first| ..
 * |first| + |n| - 1 (clipped to w->traces), one ResourceSpans per trace.
 * Returns a malloc'd body of *len bytes; the caller frees it. Thread-safe.
 */
uint8_t *qs_workload_request(const qs_workload *w, uint64_t first, int n, size_t *len);

/* The same request decoded (pc_otlp_proto_decode, project "default") and
 * normalized, as the OTLP receiver hands it to the pipeline: a batch the
 * caller unrefs, or NULL after printing why. */
struct pc_batch *qs_workload_batch(const qs_workload *w, uint64_t first, int n);

/* Trace |g|'s id as the query API shows it: 32 lowercase hex digits and a NUL. */
void qs_trace_id_hex(const qs_workload *w, uint64_t g, char out[33]);

/* Trace |g|'s start time (ns since the epoch). */
int64_t qs_trace_start_ns(const qs_workload *w, uint64_t g);

/* Service number (0 .. QS_SERVICES-1) of trace |g|, and a service's name. */
int qs_trace_service(const qs_workload *w, uint64_t g);
const char *qs_service_name(int i);

/* Whether trace |g| holds a failed span. */
int qs_trace_failed(const qs_workload *w, uint64_t g);

/* The planted words (0 .. QS_RARE_WORDS-1) and the frequent search word; static strings. */
const char *qs_rare_word(int k);
const char *qs_common_word(void);

/* Traces the rare word |k| is planted in: writes QS_RARE_COPIES trace numbers to |out|. */
void qs_rare_traces(const qs_workload *w, int k, uint64_t out[QS_RARE_COPIES]);

#endif

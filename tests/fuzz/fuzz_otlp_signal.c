/*
 * fuzz_otlp_signal.c - fuzz target of the OTLP receiver's metrics and logs
 * checker (pc_otlp_signal_decode, otlp_signal.c), protobuf and OTLP/JSON.
 *
 * Input: one selector byte (bit 0: metrics or logs; bit 1: protobuf or JSON),
 * then the request body. Checks: a refusal names its field; an accepted body
 * has a protobuf form (b->raw, what the exporters forward) that the checker
 * accepts again, as protobuf, with the same item count; that form is the body
 * itself for protobuf. So a JSON request the receiver acknowledges is always
 * one the storage side can read. For logs, the GenAI records of the accepted
 * request become carriers (otlp_events.h): the conversion never fails on a
 * checked request, and every carrier has hex ids of the right length and
 * 1..max_events events named gen_ai.*, within its bytes bound.
 */
#include "formats/otlp_events.h"
#include "formats/otlp_signal.h"
#include "roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    pc_signal sig = data[0] & 1 ? PC_SIGNAL_LOGS : PC_SIGNAL_METRICS;
    bool json = data[0] & 2;
    pc_batch *b = pc_batch_create(NULL);
    b->signal = sig;
    /* the checker's raw form may point into the body: it lives in the batch's arena */
    char *body = pc_arena_strndup(b->arena, (const char *)data + 1, size - 1);
    pc_otlp_result r;
    memset(&r, 0, sizeof(r));
    if (pc_otlp_signal_decode(b, body, size - 1, json, &r) == 0) {
        FUZZ_CHECK(b->items >= 0 && (int64_t)r.accepted == b->items, "%lld items, %lld accepted",
                   (long long)b->items, (long long)r.accepted);
        if (!json)
            FUZZ_CHECK(b->raw.n == size - 1 && (b->raw.n == 0 || memcmp(b->raw.p, body, b->raw.n) == 0),
                       "the protobuf raw form is not the body");
        pc_batch *again = pc_batch_create(NULL);
        again->signal = sig;
        char *raw = pc_arena_strndup(again->arena, b->raw.p ? b->raw.p : "", b->raw.n);
        pc_otlp_result r2;
        memset(&r2, 0, sizeof(r2));
        FUZZ_CHECK(pc_otlp_signal_decode(again, raw, b->raw.n, false, &r2) == 0,
                   "the raw form of an accepted %s body is refused: %s", json ? "JSON" : "protobuf",
                   r2.error);
        FUZZ_CHECK(again->items == b->items, "%lld items, %lld in the raw form",
                   (long long)b->items, (long long)again->items);
        pc_batch_unref(again);
        if (sig == PC_SIGNAL_LOGS) {
            pc_batch *cb = pc_batch_create(NULL);
            int64_t skipped = 0;
            int64_t n = pc_otlp_events_carriers(cb, b->raw, NULL, "default", NULL, &skipped);
            FUZZ_CHECK(n >= 0 && n + skipped <= b->items, "%lld attached, %lld skipped of %lld",
                       (long long)n, (long long)skipped, (long long)b->items);
            int64_t events = 0;
            for (size_t i = 0; i < cb->n; i++) {
                const pc_span *c = &cb->spans[i];
                FUZZ_CHECK(c->carrier && c->trace_id.n == 32 && c->span_id.n == 16 &&
                               c->n_events >= 1 && c->n_events <= 1024,
                           "carrier %zu: ids %zu/%zu, %zu events", i, c->trace_id.n,
                           c->span_id.n, c->n_events);
                for (size_t k = 0; k < c->n_events; k++)
                    FUZZ_CHECK(pc_otlp_events_genai(c->events[k].name), "event %zu not GenAI", k);
                events += (int64_t)c->n_events;
            }
            FUZZ_CHECK(events == (n > 0 ? n : 0), "%lld events for %lld records", (long long)events,
                       (long long)n);
            FUZZ_CHECK(pc_arena_used(cb->arena) <= PC_OTLP_EVENTS_FACTOR * b->raw.n + (2u << 20),
                       "%zu bytes for a %zu-byte request", pc_arena_used(cb->arena), b->raw.n);
            pc_batch_unref(cb);
        }
    } else {
        FUZZ_CHECK(r.error[0], "a refused request without a message");
    }
    pc_batch_unref(b);
    return 0;
}

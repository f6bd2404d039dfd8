/*
 * fuzz_otlp_signal.c - fuzz target of the OTLP receiver's metrics and logs
 * checker (pc_otlp_signal_decode, otlp_signal.c), protobuf and OTLP/JSON.
 *
 * Input: one selector byte (bit 0: metrics or logs; bit 1: protobuf or JSON),
 * then the request body. Checks: a refusal names its field; an accepted body
 * has a protobuf form (b->raw, what the exporters forward) that the checker
 * accepts again, as protobuf, with the same item count; that form is the body
 * itself for protobuf. So a JSON request the receiver acknowledges is always
 * one the storage side can read.
 */
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
    } else {
        FUZZ_CHECK(r.error[0], "a refused request without a message");
    }
    pc_batch_unref(b);
    return 0;
}

/*
 * fuzz_kafka.c - fuzz target of the Kafka receiver's message decoding
 * (pc_kafka_decode, kafka_message.h).
 *
 * Input: one selector byte (modulo 3: prela_json, otlp_proto, otlp_json), then
 * the message. Checks: a poison message has a reason; the spans of a message
 * that decodes pass roundtrip.h, i.e. a collector relaying them (kafka
 * receiver → kafka exporter) writes messages that decode again to the same
 * spans, in every encoding.
 */
#include "roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    pc_kafka_encoding enc = (pc_kafka_encoding)(data[0] % 3);
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = 1764500000000000000LL;
    pc_kafka_decode_result r;
    pc_kafka_decoded k = pc_kafka_decode(b, enc, data + 1, size - 1, 1764500000000000000LL, &r);
    if (k == PC_KAFKA_POISON) FUZZ_CHECK(r.error[0], "a poison message without a reason");
    FUZZ_CHECK(k == PC_KAFKA_SPANS || b->n == 0, "spans left in the batch after %d", (int)k);
    if (k == PC_KAFKA_SPANS) fuzz_roundtrip(b);
    pc_batch_unref(b);
    return 0;
}

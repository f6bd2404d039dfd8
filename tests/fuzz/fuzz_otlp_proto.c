/*
 * fuzz_otlp_proto.c - fuzz target of the OTLP receiver's protobuf decoding
 * (pc_otlp_decode_proto, otlp_decode.h) of an ExportTraceServiceRequest, then
 * normalize and every exporter encoding (roundtrip.h).
 */
#include "receivers/otlp_decode.h"
#include "roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = 1764500000000000000LL;
    pc_otlp_result r;
    if (pc_otlp_decode_proto(b, data, size, NULL, "default", &pc_span_limits_default, &r) == 0) fuzz_roundtrip(b);
    else FUZZ_CHECK(r.error[0], "a refused request without a message");
    pc_batch_unref(b);
    return 0;
}

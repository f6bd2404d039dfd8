/*
 * fuzz_otlp_json.c - fuzz target of the OTLP receiver's OTLP/JSON decoding
 * (pc_otlp_json_decode, otlp_json.h) of an ExportTraceServiceRequest, then
 * normalize and every exporter encoding (roundtrip.h).
 */
#include "formats/otlp_json.h"
#include "roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = 1764500000000000000LL;
    /* the decoder's strings point into the text: it lives in the batch's arena */
    char *text = pc_arena_strndup(b->arena, (const char *)data, size);
    pc_otlp_result r;
    if (pc_otlp_json_decode(b, text, size, NULL, "default", &pc_span_limits_default, &r) == 0) fuzz_roundtrip(b);
    else FUZZ_CHECK(r.error[0], "a refused request without a message");
    pc_batch_unref(b);
    return 0;
}

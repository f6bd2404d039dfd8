/*
 * fuzz_otlp_proto.c - fuzz target of the OTLP receiver's protobuf decoding
 * (pc_otlp_proto_decode, otlp_proto.h) of an ExportTraceServiceRequest, then
 * normalize and every exporter encoding (roundtrip.h).
 *
 * Differential too: the wire reader must agree with protobuf-c. Whenever
 * protobuf_c_message_unpack accepts the input, the reader (without limits)
 * must accept it as well and produce the same fields (otlp_oracle.h), except
 * for what it refuses on purpose: invalid UTF-8 and NUL in strings, times past
 * INT64_MAX (protobuf-c checks none of them). Inputs that repeat a singular
 * message field are not compared (protobuf-c merges them by rules of its own,
 * see otlp_oracle.h), nor inputs the reader's wire check refuses: protobuf-c
 * would recurse without bound on deep nesting.
 */
#include "formats/otlp_proto.h"
#include "otlp_oracle.h"
#include "roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void differential(const uint8_t *data, size_t size)
{
    pc_batch *b = pc_batch_create(NULL);
    pc_otlp_result r;
    int rc = pc_otlp_proto_decode(b, data, size, NULL, "default", NULL, &r);
    const ProtobufCMessageDescriptor *desc =
        &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
    if ((rc == 0 || !strstr(r.error, "invalid protobuf")) && !oracle_merges(data, size, desc, 0)) {
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, size, data);
        if (m && rc != 0)
            FUZZ_CHECK(strstr(r.error, "invalid UTF-8") || strstr(r.error, "U+0000") ||
                           strstr(r.error, "out of range"),
                       "protobuf-c accepts what the reader refuses: %s", r.error);
        if (m && rc == 0) {
            oracle o;
            FUZZ_CHECK(oracle_compare(&o, (const void *)m, b, &r, NULL, "default"),
                       "the reader and protobuf-c disagree: %s", o.why);
        }
        if (!m) FUZZ_CHECK(rc != 0, "the reader accepts what protobuf-c refuses");
        if (m) protobuf_c_message_free_unpacked(m, NULL);
    }
    pc_batch_unref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = 1764500000000000000LL;
    pc_otlp_result r;
    if (pc_otlp_proto_decode(b, data, size, NULL, "default", &pc_span_limits_default, &r) == 0)
        fuzz_roundtrip(b);
    else
        FUZZ_CHECK(r.error[0], "a refused request without a message");
    pc_batch_unref(b);
    differential(data, size);
    return 0;
}

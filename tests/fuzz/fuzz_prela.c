/*
 * fuzz_prela.c - fuzz target of the Prela receiver's body decoding
 * (pc_prela_json_decode_sdk_span, prela.h), then normalize and every exporter encoding.
 *
 * Input: one selector byte, then the JSON body. Selector bit 0 set: the body
 * is a span object (/v1/spans); clear: a trace object whose "spans" list is
 * decoded span by span with the trace's trace_id and service_name
 * (/v1/traces; /v1/batch decodes its list the same way).
 *
 * Checks: a refused span has a message; every accepted span passes
 * roundtrip.h (the storage side decodes what the gateway would acknowledge).
 */
#include "json.h"
#include "formats/prela_json.h"
#include "receivers/prela.h"
#include "roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pc_str str_field(const pc_value *o, const char *k)
{
    const pc_value *v = pc_json_get(o, k);
    return v && v->type == PC_V_STR ? v->s : PC_STR_NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int one_span = data[0] & 1;
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = 1764500000000000000LL;
    char *text = pc_arena_strndup(b->arena, (const char *)data + 1, size - 1);
    pc_value root;
    pc_json_error e;
    char err[256];
    if (pc_json_parse(b->arena, text, size - 1, &root, &e) == 0 && root.type == PC_V_MAP) {
        if (one_span) {
            err[0] = '\0';
            if (pc_prela_json_decode_sdk_span(b, &root, "", PC_STR_NULL, PC_STR_NULL, PC_STR_LIT("p"), err,
                                     sizeof(err))) {
                FUZZ_CHECK(err[0], "a refused span without a message");
            }
        } else {
            const pc_value *spans = pc_json_get(&root, "spans");
            pc_str trace_id = str_field(&root, "trace_id");
            for (size_t i = 0; spans && spans->type == PC_V_ARRAY && i < spans->arr.n; i++) {
                char where[32];
                snprintf(where, sizeof(where), "spans[%zu]", i);
                err[0] = '\0';
                if (pc_prela_json_decode_sdk_span(b, &spans->arr.v[i], where, trace_id,
                                         str_field(&root, "service_name"), PC_STR_LIT("p"), err,
                                         sizeof(err))) {
                    FUZZ_CHECK(!strncmp(err, where, strlen(where)),
                               "the message does not name %s: %s", where, err);
                } /* /v1/traces refuses the request; /v1/batch keeps the rest: both checked */
            }
        }
        fuzz_roundtrip(b);
    }
    pc_batch_unref(b);
    return 0;
}

/*
 * fuzz_json.c - fuzz target of the JSON reader (json.h), every JSON route's
 * first step: pc_json_parse on the input bytes as they are.
 *
 * Checks: an error names an offset within the input and a message; a tree
 * that parsed is written back with the writer (span.h) and that text parses
 * again (the writer never emits what the reader refuses), as the same type
 * (non-finite doubles excepted: they are written as strings).
 */
#include "json.h"
#include "roundtrip.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_arena *a = pc_arena_create(0);
    pc_value v;
    pc_json_error e;
    memset(&e, 0, sizeof(e));
    if (pc_json_parse(a, (const char *)data, size, &v, &e)) {
        FUZZ_CHECK(e.offset <= size, "error offset %zu past the end (%zu bytes): %s", e.offset,
                   size, e.msg);
        FUZZ_CHECK(e.msg[0] != '\0', "an error without a message");
    } else {
        pc_buf out = PC_BUF_INIT;
        pc_value_write_json(&out, &v);
        pc_value again;
        FUZZ_CHECK(pc_json_parse(a, out.data, out.len, &again, &e) == 0,
                   "the writer's output does not parse: %s\n%.*s", e.msg,
                   (int)(out.len < 2000 ? out.len : 2000), out.data);
        /* non-finite doubles are written as the strings "NaN", "Infinity" (json.h) */
        bool nonfinite = v.type == PC_V_DOUBLE && !isfinite(v.d);
        FUZZ_CHECK(again.type == (nonfinite ? PC_V_STR : v.type), "type %d came back %d", v.type,
                   again.type);
        pc_buf_free(&out);
    }
    pc_arena_destroy(a);
    return 0;
}

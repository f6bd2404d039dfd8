/*
 * fuzz_messages.c - fuzz target of the message normalizer (messages.h), which
 * reads what clients put in attributes and events on every LLM span.
 *
 * Input: a JSON document {"attributes": {...}, "events": [{"name",
 * "attributes"}]} becomes a span (structured values stay structured; a key
 * written "$key" is sent as its value's JSON text in string attribute "key",
 * as Python instrumentations send gen_ai.input.messages). Input that is not
 * such a document is sent as the string value (up to its first NUL: span
 * strings hold none) of every key and event a source reads, so the parsing of
 * JSON-string attributes is fuzzed directly.
 *
 * Checks, for both sides: empty, or JSON that parses, an array of at most
 * PC_MESSAGES_MAX objects with a string "role" and a "parts" array of at most
 * PC_MESSAGE_PARTS_MAX objects with a string "type"; no larger than the bound
 * of messages.h; the same bytes when extracted twice.
 */
#include "json.h"
#include "processors/messages.h"
#include "roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pc_attrs attrs_of(pc_arena *a, const pc_value *v)
{
    pc_attrs out = {NULL, 0};
    if (!v || v->type != PC_V_MAP) return out;
    out.kv = v->map.kv;
    out.n = v->map.n;
    for (size_t i = 0; i < out.n; i++) {
        pc_kv *kv = &out.kv[i];
        if (!kv->key.n || kv->key.p[0] != '$') continue;
        pc_buf b = PC_BUF_INIT;
        pc_value_write_json(&b, &kv->value);
        kv->value.type = PC_V_STR;
        kv->value.s = (pc_str){pc_arena_strndup(a, b.data, b.len), b.len};
        kv->key = (pc_str){kv->key.p + 1, kv->key.n - 1};
        pc_buf_free(&b);
    }
    return out;
}

/* The bound of messages.h: 8 x (value bytes, +16 per value) + 4 KiB. */
static size_t value_bytes(const pc_value *v)
{
    size_t n = 16;
    if (v->type == PC_V_STR || v->type == PC_V_BYTES) n += v->s.n;
    if (v->type == PC_V_ARRAY)
        for (size_t i = 0; i < v->arr.n; i++)
            n += value_bytes(&v->arr.v[i]);
    if (v->type == PC_V_MAP)
        for (size_t i = 0; i < v->map.n; i++)
            n += v->map.kv[i].key.n + value_bytes(&v->map.kv[i].value);
    return n;
}

static size_t attrs_bytes(const pc_attrs *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++)
        n += a->kv[i].key.n + value_bytes(&a->kv[i].value);
    return n;
}

static void check_side(pc_arena *a, pc_str got, size_t bound, const char *side)
{
    if (!got.n) return;
    FUZZ_CHECK(got.n <= bound, "%s: %zu bytes, over the bound %zu", side, got.n, bound);
    pc_value v;
    pc_json_error e;
    FUZZ_CHECK(pc_json_parse(a, got.p, got.n, &v, &e) == 0, "%s does not parse: %s\n%.*s", side,
               e.msg, (int)(got.n < 2000 ? got.n : 2000), got.p);
    FUZZ_CHECK(v.type == PC_V_ARRAY && v.arr.n >= 1 && v.arr.n <= PC_MESSAGES_MAX,
               "%s: not an array of 1..%d messages", side, PC_MESSAGES_MAX);
    for (size_t i = 0; i < v.arr.n; i++) {
        const pc_value *m = &v.arr.v[i];
        const pc_value *role = pc_json_get(m, "role"), *parts = pc_json_get(m, "parts");
        FUZZ_CHECK(role && role->type == PC_V_STR, "%s[%zu]: no string role", side, i);
        FUZZ_CHECK(parts && parts->type == PC_V_ARRAY && parts->arr.n <= PC_MESSAGE_PARTS_MAX,
                   "%s[%zu]: no parts array of at most %d", side, i, PC_MESSAGE_PARTS_MAX);
        for (size_t k = 0; k < parts->arr.n; k++) {
            const pc_value *t = pc_json_get(&parts->arr.v[k], "type");
            FUZZ_CHECK(t && t->type == PC_V_STR, "%s[%zu].parts[%zu]: no string type", side, i, k);
        }
    }
}

static const char *const string_keys[] = {"gen_ai.input.messages",
                                          "gen_ai.output.messages",
                                          "gen_ai.system_instructions",
                                          "gen_ai.prompt.0.content",
                                          "gen_ai.completion.1.content",
                                          "llm.input_messages.0.message.content",
                                          "input.value",
                                          "output.value",
                                          "traceloop.entity.input",
                                          NULL};
static const char *const event_names[] = {"gen_ai.user.message", "gen_ai.choice", "llm.request",
                                          "llm.response", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_arena *a = pc_arena_create(0);
    char *text = pc_arena_strndup(a, (const char *)data, size);
    pc_span s;
    memset(&s, 0, sizeof(s));
    s.resource = &pc_empty_attrs;
    s.scope = &pc_empty_scope;
    pc_value doc;
    pc_json_error e;
    if (pc_json_parse(a, text, size, &doc, &e) == 0 && doc.type == PC_V_MAP &&
        (pc_json_get(&doc, "attributes") || pc_json_get(&doc, "events"))) {
        s.attrs = attrs_of(a, pc_json_get(&doc, "attributes"));
        const pc_value *ev = pc_json_get(&doc, "events");
        if (ev && ev->type == PC_V_ARRAY) {
            s.events = pc_arena_calloc(a, (ev->arr.n + 1) * sizeof(pc_event));
            for (size_t i = 0; i < ev->arr.n; i++) {
                const pc_value *name = pc_json_get(&ev->arr.v[i], "name");
                if (name && name->type == PC_V_STR) s.events[i].name = name->s;
                s.events[i].attrs = attrs_of(a, pc_json_get(&ev->arr.v[i], "attributes"));
            }
            s.n_events = ev->arr.n;
        }
    } else {
        pc_str raw = {text, strnlen(text, size)};
        size_t nk = sizeof(string_keys) / sizeof(string_keys[0]) - 1;
        pc_kv *kv = pc_arena_calloc(a, nk * sizeof(pc_kv));
        for (size_t i = 0; i < nk; i++) {
            kv[i].key = (pc_str){string_keys[i], strlen(string_keys[i])};
            kv[i].value = (pc_value){.type = PC_V_STR, .s = raw};
        }
        /* the keys that win over the rest are dropped in turn, by the input's length */
        size_t skip = raw.n % (nk + 1);
        s.attrs = (pc_attrs){kv + skip, nk - skip};
        size_t ne = sizeof(event_names) / sizeof(event_names[0]) - 1;
        s.events = pc_arena_calloc(a, ne * sizeof(pc_event));
        for (size_t i = 0; i < ne; i++) {
            pc_kv *body = pc_arena_calloc(a, sizeof(pc_kv));
            body->key = i < 2 ? PC_STR_LIT("body")
                              : (i == 2 ? PC_STR_LIT("messages") : PC_STR_LIT("content"));
            body->value = (pc_value){.type = PC_V_STR, .s = raw};
            s.events[i].name = (pc_str){event_names[i], strlen(event_names[i])};
            s.events[i].attrs = (pc_attrs){body, 1};
        }
        s.n_events = ne;
    }
    size_t in = attrs_bytes(&s.attrs);
    for (size_t i = 0; i < s.n_events; i++)
        in += attrs_bytes(&s.events[i].attrs);
    size_t bound = in * 8 + 4096;
    pc_messages_extract(&s, a);
    check_side(a, s.input_messages, bound, "input_messages");
    check_side(a, s.output_messages, bound, "output_messages");
    pc_str in1 = s.input_messages, out1 = s.output_messages;
    pc_messages_extract(&s, a);
    FUZZ_CHECK(fuzz_same(in1, s.input_messages), "input_messages differ on a second extraction");
    FUZZ_CHECK(fuzz_same(out1, s.output_messages), "output_messages differ on a second extraction");
    pc_arena_destroy(a);
    return 0;
}

/*
 * test_local_text.c - the search text from a decoded span (local_text.h's
 * pc_local_span_text) is byte for byte the text pc_local_search_text makes
 * from the columns that span's row stores (its name, its attributes and
 * events as span.h's JSON writers write them, its messages): retention and
 * the migration recompute it from those columns, and the index's FTS5
 * 'delete' only removes what the same text put in.
 */
#include "check.h"

#include "arena.h"
#include "buf.h"
#include "exporters/local_text.h"
#include "span.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(next() % n);
}

/* Pieces of strings: plain words, what JSON escapes, valid UTF-8 of 2-4
 * bytes, and bytes that are not UTF-8 (stray, truncated, overlong,
 * surrogate), which the JSON writer replaces. */
static const char *const pieces[] = {
    "hello",     "World",     " ",          "\"",         "\\",        "\n",
    "\t",        "\x01",      "\x1f",       "/",          "caf\xc3\xa9", "\xe4\xb8\xad",
    "\xf0\x9f\x98\x80",       "\xce\xa3",   "\xff",       "\x80",      "\xc3",
    "\xe4\xb8",  "\xc0\x80",  "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xc3(b", "0.5",
};

static pc_str rand_str(pc_arena *a, bool allow_bad)
{
    size_t n = pick(6), len = 0;
    char *p = pc_arena_alloc(a, 6 * 8 + 2);
    for (size_t i = 0; i < n; i++) {
        const char *s = pieces[pick(sizeof(pieces) / sizeof(pieces[0]))];
        if (!allow_bad && (unsigned char)s[0] >= 0x80 && s[0] != '\xc3' && s[0] != '\xe4' &&
            s[0] != '\xf0' && s[0] != '\xce')
            s = "x";
        size_t k = strlen(s);
        memcpy(p + len, s, k);
        len += k;
    }
    if (pick(20) == 0) p[len++] = '\0'; /* a NUL byte: written as \u0000 */
    return (pc_str){p, len};
}

static double rand_double(void)
{
    static const double fixed[] = {0.0,   -0.0,     0.1,     0.7,       1.0,     -3.0,
                                    1e9,   1e15,     1e-4,    9.999e-5,  1e300,   -1e-300,
                                    5e-324, 123456789.123, 1e9 + 0.5, 2.5e16, 0.3333333333333333};
    switch (pick(4)) {
    case 0: return NAN;
    case 1: return pick(2) ? INFINITY : -INFINITY;
    case 2: return fixed[pick(sizeof(fixed) / sizeof(fixed[0]))];
    default: {
        uint64_t bits = next();
        double d;
        memcpy(&d, &bits, sizeof(d));
        return d;
    }
    }
}

static void rand_value(pc_arena *a, pc_value *v, int depth, int deep);

static pc_kv *rand_kvs(pc_arena *a, size_t n, int depth, int deep)
{
    pc_kv *kv = pc_arena_alloc(a, (n ? n : 1) * sizeof(*kv));
    for (size_t i = 0; i < n; i++) {
        kv[i].key = rand_str(a, true);
        rand_value(a, &kv[i].value, depth + 1, deep);
    }
    return kv;
}

/* A random value; |deep| > 0 nests one chain |deep| containers down (past
 * the direct way's limit, or the JSON parser's). */
static void rand_value(pc_arena *a, pc_value *v, int depth, int deep)
{
    memset(v, 0, sizeof(*v));
    if (deep > depth) {
        v->type = pick(2) ? PC_V_ARRAY : PC_V_MAP;
        if (v->type == PC_V_ARRAY) {
            v->arr.v = pc_arena_alloc(a, 2 * sizeof(pc_value));
            v->arr.n = 2;
            rand_value(a, &v->arr.v[0], depth + 1, deep);
            v->arr.v[1] = (pc_value){.type = PC_V_INT, .i = depth}; /* no other way back */
        } else {
            v->map.kv = rand_kvs(a, 1, depth, deep);
            v->map.n = 1;
        }
        return;
    }
    unsigned t = depth > 3 ? pick(6) : pick(8);
    switch (t) {
    case 0: v->type = PC_V_NULL; break;
    case 1: v->type = PC_V_STR; v->s = rand_str(a, pick(4) == 0); break;
    case 2: v->type = PC_V_BOOL; v->b = pick(2); break;
    case 3:
        v->type = PC_V_INT;
        v->i = pick(4) == 0 ? (pick(2) ? INT64_MIN : INT64_MAX) : (int64_t)next() >> pick(64);
        break;
    case 4: v->type = PC_V_DOUBLE; v->d = rand_double(); break;
    case 5:
        v->type = pick(8) == 0 ? PC_V_BYTES : PC_V_STR;
        v->s = rand_str(a, false);
        break;
    case 6:
        v->type = PC_V_ARRAY;
        v->arr.n = pick(4);
        v->arr.v = pc_arena_alloc(a, (v->arr.n ? v->arr.n : 1) * sizeof(pc_value));
        for (size_t i = 0; i < v->arr.n; i++)
            rand_value(a, &v->arr.v[i], depth + 1, 0);
        break;
    default:
        v->type = PC_V_MAP;
        v->map.n = pick(4);
        v->map.kv = rand_kvs(a, v->map.n, depth, 0);
        break;
    }
}

static pc_attrs rand_attrs(pc_arena *a, int deep)
{
    pc_attrs at = {NULL, pick(7)};
    at.kv = rand_kvs(a, at.n, 0, 0);
    if (deep && at.n) rand_value(a, &at.kv[pick((unsigned)at.n)].value, 0, deep);
    return at;
}

/* Messages as the span carries them: JSON text, or text that does not parse. */
static pc_str rand_messages(pc_arena *a)
{
    static const char *const m[] = {
        "",
        "[]",
        "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\","
        "\"content\":\"Caf\\u00e9 \\\"q\\\"\"}]}]",
        "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":\"c1\","
        "\"name\":\"get\",\"arguments\":{\"city\":\"Paris\",\"n\":3,\"x\":0.25}}]}]",
        "[{\"role\":\"user\"", /* cut short */
    };
    const char *s = m[pick(sizeof(m) / sizeof(m[0]))];
    size_t n = strlen(s);
    char *p = pc_arena_alloc(a, n + 1);
    memcpy(p, s, n + 1);
    return (pc_str){p, n};
}

/* The text the writer makes and the text the row's columns give. */
static void both_texts(const pc_span *s, pc_buf *direct, pc_buf *stored)
{
    pc_buf attrs = PC_BUF_INIT, events = PC_BUF_INIT;
    pc_attrs_write_json(&attrs, &s->attrs);
    pc_events_write_json(&events, s->events, s->n_events);
    pc_local_text_in in = {s->name.p ? s->name.p : "", s->name.n, attrs.data, attrs.len,
                           events.data, events.len,
                           s->input_messages.p ? s->input_messages.p : "",
                           s->input_messages.n,
                           s->output_messages.p ? s->output_messages.p : "",
                           s->output_messages.n};
    pc_buf_reset(direct);
    pc_buf_reset(stored);
    pc_local_search_text(stored, &in);
    pc_local_span_text(direct, s);
    pc_buf_free(&attrs);
    pc_buf_free(&events);
}

static bool same(const pc_buf *a, const pc_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* One span by hand: the text holds what a person would type. */
static void test_one_span(void)
{
    pc_arena *a = pc_arena_create(4096);
    pc_kv kv[5] = {
        {PC_STR_LIT("gen_ai.prompt"),
         {.type = PC_V_STR, .s = PC_STR_LIT("say \"hi\" \\ caf\xc3\xa9")}},
        {PC_STR_LIT("n"), {.type = PC_V_INT, .i = -42}},
        {PC_STR_LIT("t"), {.type = PC_V_DOUBLE, .d = 0.7}},
        {PC_STR_LIT("ok"), {.type = PC_V_BOOL, .b = true}},
        {PC_STR_LIT("none"), {.type = PC_V_NULL}},
    };
    pc_kv ev_kv[1] = {{PC_STR_LIT("x"), {.type = PC_V_DOUBLE, .d = NAN}}};
    pc_event ev = {PC_STR_LIT("gen_ai.choice"), 1, {ev_kv, 1}, 0};
    pc_span s = {0};
    s.name = PC_STR_LIT("chat gpt-4o");
    s.attrs = (pc_attrs){kv, 5};
    s.events = &ev;
    s.n_events = 1;
    pc_buf d = PC_BUF_INIT, st = PC_BUF_INIT;
    both_texts(&s, &d, &st);
    CHECK_EQ_STR(d.data, "chat gpt-4o\nsay \"hi\" \\ caf\xc3\xa9\n-42\n0.7\ntrue\n"
                         "gen_ai.choice\nNaN\n");
    CHECK(same(&d, &st));

    /* a string that is not UTF-8 and bytes: the JSON way, the same text */
    kv[0].value.s = PC_STR_LIT("a\xff" "b");
    kv[4].value = (pc_value){.type = PC_V_BYTES, .s = PC_STR_LIT("\x01\x02")};
    both_texts(&s, &d, &st);
    CHECK_EQ_STR(d.data, "chat gpt-4o\na\xef\xbf\xbd" "b\n-42\n0.7\ntrue\nAQI=\n"
                         "gen_ai.choice\nNaN\n");
    CHECK(same(&d, &st));
    pc_buf_free(&d);
    pc_buf_free(&st);
    pc_arena_destroy(a);
}

/* Random spans: every kind of value, strings that are not UTF-8, NULs,
 * doubles of every kind, bytes, nesting past the direct way's limit and
 * past the JSON parser's (whose part then gives no text either way). */
static void test_random_spans(void)
{
    pc_buf d = PC_BUF_INIT, st = PC_BUF_INIT;
    int differ = 0, deep = 0;
    size_t bytes = 0;
    for (int k = 0; k < 20000; k++) {
        pc_arena *a = pc_arena_create(16384);
        pc_span s = {0};
        s.name = rand_str(a, true);
        int dp = pick(50) == 0 ? (pick(2) ? 40 : 70) : 0;
        deep += dp > 0;
        s.attrs = rand_attrs(a, dp);
        s.n_events = pick(3);
        pc_event *ev = pc_arena_alloc(a, 3 * sizeof(*ev));
        for (size_t i = 0; i < s.n_events; i++) {
            ev[i] = (pc_event){rand_str(a, pick(3) == 0), (int64_t)next() >> 1,
                               rand_attrs(a, pick(40) == 0 ? 70 : 0), 0};
        }
        s.events = ev;
        s.input_messages = rand_messages(a);
        s.output_messages = rand_messages(a);
        both_texts(&s, &d, &st);
        bytes += d.len;
        if (!same(&d, &st) && differ++ < 3)
            fprintf(stderr, "span %d: direct %zu bytes, stored %zu bytes\n", k, d.len, st.len);
        pc_arena_destroy(a);
    }
    CHECK_EQ_INT(differ, 0);
    CHECK(deep > 200);
    CHECK(bytes > 20000 * 20); /* the texts are not empty */
    pc_buf_free(&d);
    pc_buf_free(&st);
}

int main(void)
{
    RUN(test_one_span);
    RUN(test_random_spans);
    return CHECK_DONE();
}

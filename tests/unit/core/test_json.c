/*
 * test_json.c - the JSON reader and writer (src/core/json.c).
 */
#include "check.h"
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static pc_arena *A;

static int parse(const char *text, pc_value *v, pc_json_error *e)
{
    return pc_json_parse(A, text, strlen(text), v, e);
}

static void test_types(void)
{
    pc_value v;
    pc_json_error e;
    CHECK_EQ_INT(parse("{\"s\": \"x\", \"i\": 42, \"neg\": -7, \"d\": 1.5, \"e\": 1e3, \"t\": true, "
                       "\"f\": false, \"n\": null, \"a\": [1, [2]], \"o\": {\"k\": \"v\"}, "
                       "\"big\": 123456789012345678901234}",
                       &v, &e),
                 0);
    CHECK_EQ_INT(v.type, PC_V_MAP);
    CHECK_EQ_INT(v.map.n, 11);
    CHECK_EQ_PSTR(pc_json_get(&v, "s")->s, "x");
    CHECK_EQ_INT(pc_json_get(&v, "i")->type, PC_V_INT);
    CHECK_EQ_INT(pc_json_get(&v, "i")->i, 42);
    CHECK_EQ_INT(pc_json_get(&v, "neg")->i, -7);
    CHECK_EQ_INT(pc_json_get(&v, "d")->type, PC_V_DOUBLE);
    CHECK(pc_json_get(&v, "d")->d == 1.5);
    CHECK_EQ_INT(pc_json_get(&v, "e")->type, PC_V_DOUBLE);
    CHECK_EQ_INT(pc_json_get(&v, "t")->b, 1);
    CHECK_EQ_INT(pc_json_get(&v, "f")->type, PC_V_BOOL);
    CHECK_EQ_INT(pc_json_get(&v, "n")->type, PC_V_NULL);
    CHECK_EQ_INT(pc_json_get(&v, "a")->arr.n, 2);
    CHECK_EQ_INT(pc_json_get(&v, "a")->arr.v[1].arr.v[0].i, 2);
    CHECK_EQ_PSTR(pc_json_get(pc_json_get(&v, "o"), "k")->s, "v");
    CHECK_EQ_INT(pc_json_get(&v, "big")->type, PC_V_DOUBLE);
    CHECK(pc_json_get(&v, "missing") == NULL);
}

static void test_python_tokens(void)
{
    pc_value v;
    pc_json_error e;
    CHECK_EQ_INT(parse("[NaN, Infinity, -Infinity]", &v, &e), 0);
    CHECK(isnan(v.arr.v[0].d));
    CHECK(isinf(v.arr.v[1].d) && v.arr.v[1].d > 0);
    CHECK(isinf(v.arr.v[2].d) && v.arr.v[2].d < 0);
}

static void test_escapes(void)
{
    pc_value v;
    pc_json_error e;
    CHECK_EQ_INT(parse("\"a\\n\\\"b\\u00e9\\ud83d\\ude00\\/\"", &v, &e), 0);
    CHECK_EQ_PSTR(v.s, "a\n\"b\xc3\xa9\xf0\x9f\x98\x80/");
    CHECK_EQ_INT(parse("\"lone \\ud800 x\"", &v, &e), 0); /* replaced, never stored raw */
    CHECK_EQ_PSTR(v.s, "lone \xef\xbf\xbd x");
}

static void test_errors(void)
{
    pc_value v;
    pc_json_error e;
    const char *bad[] = {"{",         "[1,]",       "{\"a\" 1}",    "\"abc",   "tru",
                         "01",        "1.",         "{} x",         "\"\\x\"", "\"\x01\"",
                         "\"\xff\"",  "\"\xc3\"",   "\"\xed\xa0\x80\"", "",    "[1 2]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i], &v, &e);
        if (rc != -1) fprintf(stderr, "accepted bad input #%zu\n", i);
        CHECK_EQ_INT(rc, -1);
    }
    CHECK_EQ_INT(parse("\"ok\xff\"", &v, &e), -1);
    CHECK(strstr(e.msg, "invalid UTF-8") != NULL);
}

static void test_depth(void)
{
    char deep[20001];
    memset(deep, '[', 10000);
    memset(deep + 10000, ']', 10000);
    deep[20000] = '\0';
    pc_value v;
    pc_json_error e;
    CHECK_EQ_INT(parse(deep, &v, &e), -1);
    CHECK(strstr(e.msg, "nesting") != NULL);
    char ok[129];
    memset(ok, '[', 64);
    memset(ok + 64, ']', 64);
    ok[128] = '\0';
    CHECK_EQ_INT(parse(ok, &v, &e), 0);
}

static void test_writer(void)
{
    pc_buf b = PC_BUF_INIT;
    pc_json_write_str(&b, "a\"\\\n\x01\xff\xc3\xa9", 8);
    CHECK_EQ_STR(b.data, "\"a\\\"\\\\\\n\\u0001\xef\xbf\xbd\xc3\xa9\"");
    pc_buf_reset(&b);
    pc_json_write_double(&b, 1.0);
    pc_buf_putc(&b, ' ');
    pc_json_write_double(&b, 0.1);
    pc_buf_putc(&b, ' ');
    pc_json_write_double(&b, NAN);
    pc_buf_putc(&b, ' ');
    pc_json_write_double(&b, -INFINITY);
    pc_buf_putc(&b, ' ');
    pc_json_write_double(&b, 1e300);
    CHECK_EQ_STR(b.data, "1.0 0.1 \"NaN\" \"-Infinity\" 1e+300");
    pc_buf_reset(&b);
    pc_json_write_base64(&b, (const unsigned char *)"hello", 5);
    CHECK_EQ_STR(b.data, "\"aGVsbG8=\"");
    pc_buf_reset(&b);
    pc_json_write_time(&b, 1737972000123456000LL);
    CHECK_EQ_STR(b.data, "\"2025-01-27T10:00:00.123456Z\"");
    pc_buf_free(&b);
}

static void test_roundtrip_attrs(void)
{
    pc_value v;
    pc_json_error e;
    const char *in = "{\"s\":\"x\",\"i\":3,\"d\":2.0,\"b\":false,\"a\":[1,\"two\"],\"m\":{\"k\":null}}";
    CHECK_EQ_INT(parse(in, &v, &e), 0);
    pc_buf b = PC_BUF_INIT;
    pc_attrs a = {v.map.kv, v.map.n};
    pc_attrs_write_json(&b, &a);
    CHECK_EQ_STR(b.data, in);
    pc_buf_free(&b);
}

/* A string ending in a lone backslash: the offset stays within the input. */
static void test_error_offset_in_range(void)
{
    const char *inputs[] = {"\"ab\\", "\"\\", "\\", "\"a\\u12", "[\"\\\"", "{\"k\":\"v\\"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        pc_value v;
        pc_json_error e;
        size_t n = strlen(inputs[i]);
        CHECK_EQ_INT(pc_json_parse(A, inputs[i], n, &v, &e), -1);
        CHECK(e.offset <= n);
        if (e.offset > n) fprintf(stderr, "input %zu: offset %zu of %zu\n", i, e.offset, n);
    }
    pc_value v;
    pc_json_error e;
    CHECK_EQ_INT(pc_json_parse(A, "\"ab\\", 4, &v, &e), -1);
    CHECK_EQ_STR(e.msg, "unterminated string at byte 4");
    CHECK_EQ_INT(e.offset, 4);
}

/* Containers get exactly their elements, also when strings hold brackets,
 * commas and escaped quotes that the counting pass must skip. */
static void test_container_sizes(void)
{
    pc_value v;
    pc_json_error e;
    const char *in = "[[1, 2], [], { }, {\"a\": [3, {}], \"b,]}\": \"x,]\\\"[{\"},"
                     " [[[ ]]], \"\\\\\", [\"\\\\\"], 7 ]";
    CHECK_EQ_INT(parse(in, &v, &e), 0);
    CHECK_EQ_INT(v.type, PC_V_ARRAY);
    CHECK_EQ_INT(v.arr.n, 8);
    CHECK_EQ_INT(v.arr.v[0].arr.n, 2);
    CHECK_EQ_INT(v.arr.v[0].arr.v[1].i, 2);
    CHECK_EQ_INT(v.arr.v[1].arr.n, 0);
    CHECK(v.arr.v[1].arr.v == NULL);
    CHECK_EQ_INT(v.arr.v[2].type, PC_V_MAP);
    CHECK_EQ_INT(v.arr.v[2].map.n, 0);
    const pc_value *o = &v.arr.v[3];
    CHECK_EQ_INT(o->map.n, 2);
    CHECK_EQ_INT(pc_json_get(o, "a")->arr.n, 2);
    CHECK_EQ_INT(pc_json_get(o, "a")->arr.v[1].map.n, 0);
    CHECK_EQ_PSTR(pc_json_get(o, "b,]}")->s, "x,]\"[{");
    CHECK_EQ_INT(v.arr.v[4].arr.n, 1);
    CHECK_EQ_INT(v.arr.v[4].arr.v[0].arr.v[0].arr.n, 0);
    CHECK_EQ_PSTR(v.arr.v[5].s, "\\");
    CHECK_EQ_PSTR(v.arr.v[6].arr.v[0].s, "\\");
    CHECK_EQ_INT(v.arr.v[7].i, 7);
}

/* Text where the counting pass and the parser part ways after the first error:
 * the parser's own message, never a write past a container's array (ASan). */
static void test_miscounted_text_fails_cleanly(void)
{
    struct {
        const char *in, *msg;
    } cases[] = {
        {"[1 2]", "expected ',' or ']' at byte 3"},
        {"[1,]", "unexpected character at byte 3"},
        {"{\"a\":1,}", "expected object key at byte 7"},
        {"{\"a\":1 \"b\":2}", "expected ',' or '}' at byte 7"},
        {"]", "unexpected character at byte 0"},
        {"[}", "unexpected character at byte 1"},
        {"[1,2", "unterminated array at byte 4"},
        {"[[[", "unexpected end of input at byte 3"},
        {"[\"a\\\"]", "unterminated string at byte 6"},
        {"[1]]", "trailing characters after JSON value at byte 3"},
        {"[1], [2, 3, 4]", "trailing characters after JSON value at byte 3"},
        {"{\"k\":[1,2}", "expected ',' or ']' at byte 9"},
        {"[\"\xff,\", 1, 2]", "invalid UTF-8 in string at byte 2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pc_value v;
        pc_json_error e;
        CHECK_EQ_INT(parse(cases[i].in, &v, &e), -1);
        CHECK_EQ_STR(e.msg, cases[i].msg);
    }
}

/* The tree is the only cost: `[0,0,...]` takes one exact-size array, 24 bytes
 * per element (12 per text byte), and the budget sees no more than that plus
 * the arena's first chunk; a budget too small for the array refuses it. */
static void test_bomb_costs_its_tree(void)
{
    size_t k = 1000000, n = 0;
    char *t = malloc(2 * k + 2);
    t[n++] = '[';
    for (size_t i = 0; i < k; i++, n += 2) memcpy(t + n, i + 1 < k ? "0," : "0]", 2);
    pc_budget *b = pc_budget_create(64 << 20);
    pc_arena *a = pc_arena_create(1024);
    pc_arena_set_budget(a, b);
    pc_value v;
    pc_json_error e;
    CHECK_EQ_INT(pc_json_parse(a, t, n, &v, &e), 0);
    CHECK_EQ_INT(v.arr.n, k);
    CHECK_EQ_INT(pc_arena_used(a), k * sizeof(pc_value));
    CHECK(pc_budget_peak(b) <= (int64_t)(k * sizeof(pc_value) + 4096));
    pc_arena_destroy(a);
    pc_budget_destroy(b);

    b = pc_budget_create(16 << 20);
    a = pc_arena_create(1024);
    pc_arena_set_budget(a, b);
    CHECK_EQ_INT(pc_json_parse(a, t, n, &v, &e), -1);
    CHECK(strstr(e.msg, "memory budget") != NULL);
    CHECK(pc_arena_over(a));
    pc_arena_destroy(a);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    pc_budget_destroy(b);
    free(t);
}

/* Many containers: the side array of counts grows (and is given back). */
static void test_many_containers(void)
{
    size_t k = 100000, n = 0;
    char *t = malloc(3 * k + 2);
    t[n++] = '[';
    for (size_t i = 0; i < k; i++) {
        memcpy(t + n, i + 1 < k ? "{}," : "[]]", 3);
        n += 3;
    }
    pc_budget *b = pc_budget_create(64 << 20);
    pc_arena *a = pc_arena_create(1024);
    pc_arena_set_budget(a, b);
    pc_value v;
    pc_json_error e;
    CHECK_EQ_INT(pc_json_parse(a, t, n, &v, &e), 0);
    CHECK_EQ_INT(v.arr.n, k);
    CHECK_EQ_INT(v.arr.v[0].type, PC_V_MAP);
    CHECK_EQ_INT(v.arr.v[k - 1].type, PC_V_ARRAY);
    CHECK(pc_budget_peak(b) > (int64_t)(k * sizeof(uint32_t))); /* the counts were charged */
    pc_arena_destroy(a);
    CHECK_EQ_INT(pc_budget_used(b), 0);
    pc_budget_destroy(b);
    free(t);
}

int main(void)
{
    A = pc_arena_create(1024);
    RUN(test_types);
    RUN(test_python_tokens);
    RUN(test_escapes);
    RUN(test_errors);
    RUN(test_depth);
    RUN(test_writer);
    RUN(test_roundtrip_attrs);
    RUN(test_error_offset_in_range);
    RUN(test_container_sizes);
    RUN(test_miscounted_text_fails_cleanly);
    RUN(test_bomb_costs_its_tree);
    RUN(test_many_containers);
    pc_arena_destroy(A);
    return CHECK_DONE();
}

/*
 * test_attr_bloom.c - a trace's attribute filter (attr_bloom.h): no false
 * negatives against the embedded store's exact matcher it guards (every pair
 * pc_attr_match can match in a span's stored attributes JSON is in the
 * filter, for every kind of value and the bytes the JSON writer changes),
 * its false-positive rate at a realistic number of pairs, the bits it gives
 * ClickHouse's test, and the embedded store's SQL functions (local_bloom.h).
 */
#include "check.h"

#include "exporters/local_bloom.h"
#include "exporters/local_text.h"

#include "arena.h"
#include "attr_bloom.h"
#include "buf.h"
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define B PC_ATTR_BLOOM_BYTES

static pc_str str_n(const char *p, size_t n)
{
    return (pc_str){p, n};
}
static pc_str str(const char *p)
{
    return str_n(p, strlen(p));
}

static pc_value v_str(const char *p, size_t n)
{
    return (pc_value){.type = PC_V_STR, .s = str_n(p, n)};
}
static pc_value v_int(int64_t i)
{
    return (pc_value){.type = PC_V_INT, .i = i};
}
static pc_value v_dbl(double d)
{
    return (pc_value){.type = PC_V_DOUBLE, .d = d};
}
static pc_value v_bool(bool b)
{
    return (pc_value){.type = PC_V_BOOL, .b = b};
}

/*
 * The contract on one set of attributes: every (key, text form) of the JSON
 * the store keeps for |a|, read back as pc_attr_match reads it, is matched
 * by pc_attr_match and allowed by the filter. Returns the misses.
 */
static int misses(const pc_attrs *a, unsigned char bloom[B])
{
    memset(bloom, 0, B);
    pc_attr_bloom_add_attrs(bloom, a);
    pc_buf json = PC_BUF_INIT, text = PC_BUF_INIT;
    pc_attrs_write_json(&json, a);
    pc_arena *ar = pc_arena_create(json.len + 1024);
    pc_value v;
    pc_json_error err;
    int miss = 0;
    if (pc_json_parse(ar, json.data, json.len, &v, &err) != 0 || v.type != PC_V_MAP) return 1000;
    for (size_t i = 0; i < v.map.n; i++) {
        const pc_kv *kv = &v.map.kv[i];
        pc_buf_reset(&text);
        if (!pc_attr_text(&text, &kv->value)) continue;
        const char *t = text.data ? text.data : "";
        if (!pc_local_attr_match(json.data, json.len, kv->key.p, kv->key.n, t, text.len)) {
            fprintf(stderr, "pc_attr_match misses pair %zu of %s\n", i, json.data);
            miss++;
        }
        if (!pc_attr_bloom_may(bloom, B, kv->key.p, kv->key.n, t, text.len)) {
            fprintf(stderr, "the filter misses pair %zu of %s\n", i, json.data);
            miss++;
        }
    }
    pc_arena_destroy(ar);
    pc_buf_free(&json);
    pc_buf_free(&text);
    return miss;
}

static bool saturated(const unsigned char bloom[B])
{
    for (int i = 0; i < B; i++)
        if (bloom[i] != 0xff) return false;
    return true;
}

/* Every kind of value and the bytes JSON escapes, one pair each. */
static void test_every_kind(void)
{
    static const char nul[] = "a\0b";
    static const unsigned char raw[] = {0x00, 0xff, 0x10, 0x80};
    pc_kv kv[] = {
        {str("s"), v_str("gold", 4)},
        {str(""), v_str("", 0)},
        {str("quote\"back\\slash"), v_str("say \"hi\"\\n", 10)},
        {str("ctl"), v_str("line\nfeed\ttab\x01\x1f", 15)},
        {str("nul"), v_str(nul, 3)},
        {str("ключ"), v_str("café ☕ 𝄞 \xe2\x80\xa8", strlen("café ☕ 𝄞 \xe2\x80\xa8"))},
        {str("i0"), v_int(0)},
        {str("i-"), v_int(-1)},
        {str("imin"), v_int(INT64_MIN)},
        {str("imax"), v_int(INT64_MAX)},
        {str("d0"), v_dbl(0.0)},
        {str("d-0"), v_dbl(-0.0)},
        {str("d.1"), v_dbl(0.1)},
        {str("d1"), v_dbl(1.0)},
        {str("d3e9"), v_dbl(3e9)},
        {str("dbig"), v_dbl(1e300)},
        {str("dtiny"), v_dbl(-1e-300)},
        {str("dfrac"), v_dbl(123456789.123)},
        {str("dnan"), v_dbl(NAN)},
        {str("dinf"), v_dbl(INFINITY)},
        {str("d-inf"), v_dbl(-INFINITY)},
        {str("t"), v_bool(true)},
        {str("f"), v_bool(false)},
        {str("bytes"), {.type = PC_V_BYTES, .s = str_n((const char *)raw, sizeof(raw))}},
        {str("null"), {.type = PC_V_NULL}},
        {str("arr"), {.type = PC_V_ARRAY, .arr = {NULL, 0}}},
        {str("s"), v_str("silver", 6)}, /* a key twice: both pairs */
    };
    pc_attrs a = {kv, sizeof(kv) / sizeof(kv[0])};
    unsigned char bloom[B];
    CHECK_EQ_INT(misses(&a, bloom), 0);
    CHECK(!saturated(bloom));
    /* a pair that is not there, and the text forms that are not stored */
    CHECK(!pc_attr_bloom_may(bloom, B, "s", 1, "bronze", 6) ||
          !pc_attr_bloom_may(bloom, B, "i0", 2, "0.0", 3));
    /* no filter, or one of another size: maybe */
    CHECK(pc_attr_bloom_may(NULL, 0, "s", 1, "bronze", 6));
    CHECK(pc_attr_bloom_may(bloom, B - 1, "s", 1, "bronze", 6));
    unsigned char empty[B] = {0};
    CHECK(!pc_attr_bloom_may(empty, B, "s", 1, "gold", 4));
}

/* Bytes the JSON writer replaces (invalid UTF-8, in a key or a value): the
 * stored pair is unknown, so the filter is full. */
static void test_invalid_utf8(void)
{
    static const char *const bad[] = {"\xff", "ab\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
                                      "\xe2\x82"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char bloom[B];
        pc_kv v[] = {{str("k"), v_str(bad[i], strlen(bad[i]))}};
        pc_attrs a = {v, 1};
        CHECK_EQ_INT(misses(&a, bloom), 0);
        CHECK(saturated(bloom));
        pc_kv k[] = {{str(bad[i]), v_str("v", 1)}};
        pc_attrs ak = {k, 1};
        CHECK_EQ_INT(misses(&ak, bloom), 0);
        CHECK(saturated(bloom));
    }
}


/* Random keys and values from an alphabet of ASCII, escapes, multi-byte
 * characters and stray bytes, and random numbers. */
static void test_random(void)
{
    static const char *const parts[] = {"a", "Z", "0", " ", "\"", "\\", "\n", "\x01", "é",
                                        "𝄞", "\xff", "\xc3", "/", "ж", "\x7f", ".", ""};
    const size_t np = sizeof(parts) / sizeof(parts[0]);
    int miss = 0, full = 0;
    char keys[8][64], vals[8][64];
    for (int round = 0; round < 3000; round++) {
        pc_kv kv[8];
        size_t n = 1 + check_rnd() % 8;
        for (size_t i = 0; i < n; i++) {
            size_t kl = 0, vl = 0;
            for (int j = (int)(check_rnd() % 6); j > 0; j--) {
                const char *p = parts[check_rnd() % np];
                memcpy(keys[i] + kl, p, strlen(p));
                kl += strlen(p);
            }
            for (int j = (int)(check_rnd() % 8); j > 0; j--) {
                const char *p = parts[check_rnd() % np];
                memcpy(vals[i] + vl, p, strlen(p));
                vl += strlen(p);
            }
            kv[i].key = str_n(keys[i], kl);
            switch (check_rnd() % 5) {
            case 0: kv[i].value = v_int((int64_t)check_rnd()); break;
            case 1: {
                uint64_t bits = check_rnd();
                double d;
                memcpy(&d, &bits, sizeof(d));
                kv[i].value = v_dbl(check_rnd() % 2 ? d : (double)(int64_t)(check_rnd() % 100000) / 1000);
                break;
            }
            case 2: kv[i].value = v_bool(check_rnd() % 2); break;
            default: kv[i].value = v_str(vals[i], vl);
            }
        }
        pc_attrs a = {kv, n};
        unsigned char bloom[B];
        miss += misses(&a, bloom);
        full += saturated(bloom);
    }
    CHECK_EQ_INT(miss, 0);
    CHECK(full > 0 && full < 3000); /* both kinds of input were made */
}

/* False positives at 100 distinct pairs per trace (a 10-span trace of ten
 * attributes each): about (1 - e^(-4*100/1024))^4 = 1.1 %. */
static void test_false_positives(void)
{
    unsigned char bloom[B] = {0};
    char k[32], v[32];
    for (int i = 0; i < 100; i++) {
        int kn = snprintf(k, sizeof(k), "attr.%d", i % 10);
        int vn = snprintf(v, sizeof(v), "value-%d", i);
        pc_attr_bloom_add(bloom, k, (size_t)kn, v, (size_t)vn);
    }
    int fp = 0, n = 100000;
    for (int i = 0; i < n; i++) {
        int kn = snprintf(k, sizeof(k), "attr.%d", i % 10);
        int vn = snprintf(v, sizeof(v), "other-%d", i);
        fp += pc_attr_bloom_may(bloom, B, k, (size_t)kn, v, (size_t)vn);
    }
    printf("false positives at 100 pairs: %.2f %%\n", 100.0 * fp / n);
    CHECK(fp < n * 3 / 100);
}

static sqlite3_int64 sql_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 v = -1;
    CHECK_EQ_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -2 : sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define ZB "zeroblob(" STR(PC_ATTR_BLOOM_BYTES) ")"

static void test_sql(void)
{
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(":memory:", &db), SQLITE_OK);
    CHECK_EQ_INT(pc_local_text_register(db), SQLITE_OK);
    /* NULL (a row from before schema 9) or a wrong size: maybe, and OR keeps NULL */
    CHECK_EQ_INT(sql_int(db, "SELECT pc_bloom_may(NULL, 'k', 'v')"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT pc_bloom_may(zeroblob(3), 'k', 'v')"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT pc_bloom_may(" ZB ", 'k', 'v')"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT pc_bloom_or(NULL, " ZB ") IS NULL"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT pc_bloom_or(" ZB ", NULL) IS NULL"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT pc_bloom_or(" ZB ", zeroblob(3)) IS NULL"), 1);
    /* OR keeps the pairs of both */
    unsigned char a[B] = {0}, b[B] = {0};
    pc_attr_bloom_add(a, "k", 1, "one", 3);
    pc_attr_bloom_add(b, "k", 1, "two", 3);
    sqlite3_stmt *st = NULL;
    CHECK_EQ_INT(sqlite3_prepare_v2(db,
                                    "SELECT pc_bloom_may(pc_bloom_or(?1, ?2), 'k', 'one'),"
                                    " pc_bloom_may(pc_bloom_or(?1, ?2), 'k', 'two'),"
                                    " pc_bloom_may(?1, 'k', 'two'), length(pc_bloom_or(?1, ?2))",
                                    -1, &st, NULL),
                 SQLITE_OK);
    sqlite3_bind_blob(st, 1, a, B, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, b, B, SQLITE_STATIC);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(st, 0), 1);
    CHECK_EQ_INT(sqlite3_column_int(st, 1), 1);
    CHECK_EQ_INT(sqlite3_column_int(st, 2), 0);
    CHECK_EQ_INT(sqlite3_column_int(st, 3), B);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A text longer than PC_ATTR_BLOOM_MAX_TEXT is not added (a prompt), and the
 * filter says "maybe" to it; one of exactly the limit is added as any other. */
static void test_long_texts(void)
{
    char text[PC_ATTR_BLOOM_MAX_TEXT + 2];
    memset(text, 'p', sizeof(text));
    pc_kv kv[] = {{str("prompt"), v_str(text, PC_ATTR_BLOOM_MAX_TEXT + 1)}};
    pc_attrs a = {kv, 1};
    unsigned char bloom[B] = {0}, empty[B] = {0};
    pc_attr_bloom_add_attrs(bloom, &a);
    CHECK(memcmp(bloom, empty, B) == 0);
    CHECK(pc_attr_bloom_may(empty, B, "prompt", 6, text, PC_ATTR_BLOOM_MAX_TEXT + 1));
    CHECK(!pc_attr_bloom_may(empty, B, "prompt", 6, text, PC_ATTR_BLOOM_MAX_TEXT));
    kv[0].value = v_str(text, PC_ATTR_BLOOM_MAX_TEXT);
    pc_attr_bloom_add_attrs(bloom, &a);
    CHECK(pc_attr_bloom_may(bloom, B, "prompt", 6, text, PC_ATTR_BLOOM_MAX_TEXT));
    CHECK(!pc_attr_bloom_may(bloom, B, "prompt", 6, text, PC_ATTR_BLOOM_MAX_TEXT - 1));
    /* invalid UTF-8 in a long text still makes every pair "maybe" (the writer
     * replaces its bytes: the stored text's length is not the sent one's) */
    text[10] = (char)0xff;
    kv[0].value = v_str(text, PC_ATTR_BLOOM_MAX_TEXT + 1);
    memset(bloom, 0, B);
    pc_attr_bloom_add_attrs(bloom, &a);
    CHECK(saturated(bloom));
}

/* The bits ClickHouse tests (pc_attr_bloom_bits) are the bits the pair sets:
 * a filter of exactly those bits says "maybe" to the pair, and a filter
 * lacking any one of them says no. */
static void test_bits(void)
{
    char k[32], v[32];
    for (int i = 0; i < 1000; i++) {
        int kn = snprintf(k, sizeof(k), "key.%d", i % 7);
        int vn = snprintf(v, sizeof(v), "value %d", i);
        unsigned char set[B] = {0}, built[B] = {0};
        pc_attr_bloom_add(set, k, (size_t)kn, v, (size_t)vn);
        int bits[PC_ATTR_BLOOM_K];
        pc_attr_bloom_bits(k, (size_t)kn, v, (size_t)vn, bits);
        for (int j = 0; j < PC_ATTR_BLOOM_K; j++) {
            CHECK(bits[j] >= 0 && bits[j] < B * 8);
            built[bits[j] / 8] |= (unsigned char)(1u << (bits[j] % 8));
        }
        CHECK(memcmp(set, built, B) == 0);
        CHECK(pc_attr_bloom_may(built, B, k, (size_t)kn, v, (size_t)vn));
        int drop = bits[i % PC_ATTR_BLOOM_K];
        built[drop / 8] &= (unsigned char)~(1u << (drop % 8));
        CHECK(!pc_attr_bloom_may(built, B, k, (size_t)kn, v, (size_t)vn));
    }
}

int main(void)
{
    RUN(test_every_kind);
    RUN(test_invalid_utf8);
    RUN(test_random);
    RUN(test_false_positives);
    RUN(test_long_texts);
    RUN(test_bits);
    RUN(test_sql);
    return CHECK_DONE();
}

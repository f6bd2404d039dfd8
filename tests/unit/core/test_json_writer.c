/*
 * test_json_writer.c - the JSON writer (src/core/json.c, numfmt.c, span.c's
 * pc_value_write_json) against two oracles: the printf-based writer it
 * replaced (issue 12), kept here as a reference, for byte-identical output;
 * and jansson, an independent JSON parser, which must read back what was
 * written. Random inputs come from a fixed seed, printed, so a failure is
 * reproducible: PC_TEST_SEED=<n> overrides it.
 */
#include "check.h"
#include "json.h"
#include "numfmt.h"
#include "span.h"
#include "timefmt.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define SCALE 4 /* sanitizer builds run a quarter of the random cases */
#else
#define SCALE 1
#endif

static uint64_t rng_state;
static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------- oracles -- */

/* Length of the well-formed UTF-8 sequence at |p|, or 0: decodes the code
 * point and checks its range (Unicode table 3-7 by arithmetic, not by lead
 * byte ranges as json.c does). */
static size_t seq_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80) return 1;
    size_t len = (p[0] & 0xE0) == 0xC0   ? 2
                 : (p[0] & 0xF0) == 0xE0 ? 3
                 : (p[0] & 0xF8) == 0xF0 ? 4
                                         : 0;
    if (!len || len > n) return 0;
    uint32_t cp = p[0] & (0x7F >> len);
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[k] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* The string a reader must see: |p| with every byte that starts no
 * well-formed sequence replaced by U+FFFD. */
static void expected_str(pc_buf *out, const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        size_t k = seq_len(s + i, n - i);
        if (k) pc_buf_append(out, p + i, k);
        else pc_buf_append(out, "\xEF\xBF\xBD", 3);
        i += k ? k : 1;
    }
}

/* The string writer before issue 12, byte by byte. */
static void ref_write_str(pc_buf *out, const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    pc_buf_putc(out, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = seq_len(s + i, n - i);
            if (k) pc_buf_append(out, p + i, k);
            else pc_buf_append(out, "\xEF\xBF\xBD", 3);
            i += k ? k : 1;
            continue;
        }
        switch (c) {
        case '"': pc_buf_puts(out, "\\\""); break;
        case '\\': pc_buf_puts(out, "\\\\"); break;
        case '\n': pc_buf_puts(out, "\\n"); break;
        case '\r': pc_buf_puts(out, "\\r"); break;
        case '\t': pc_buf_puts(out, "\\t"); break;
        case '\b': pc_buf_puts(out, "\\b"); break;
        case '\f': pc_buf_puts(out, "\\f"); break;
        default:
            if (c < 0x20) pc_buf_printf(out, "\\u%04x", c);
            else pc_buf_putc(out, (char)c);
        }
        i++;
    }
    pc_buf_putc(out, '"');
}

/* The double writer before issue 12 (finite values). */
static void ref_write_double(pc_buf *out, double v)
{
    char tmp[40];
    int n = snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v) n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    if (!strpbrk(tmp, ".eE")) {
        tmp[n++] = '.';
        tmp[n++] = '0';
        tmp[n] = '\0';
    }
    pc_buf_append(out, tmp, (size_t)n);
}

static json_t *load(const char *text, size_t n)
{
    json_error_t err;
    json_t *j = json_loadb(text, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j) fprintf(stderr, "jansson: %s at %d in %.200s\n", err.text, err.position, text);
    return j;
}

/* Random bytes of a kind: 0 all byte values, 1 ASCII with controls, 2 valid
 * UTF-8 with some broken sequences, 3 long runs of plain ASCII with a special
 * byte now and then (crosses the writer's 8-byte words and 4 KiB chunks). */
static size_t random_bytes(char *s, size_t cap)
{
    int kind = (int)(rnd() % 4);
    size_t n = kind == 3 ? rnd() % cap : rnd() % (cap < 64 ? cap : 64);
    /* valid 2/3/4-byte, a surrogate, overlongs, past U+10FFFF, truncated, stray */
    static const char *const pieces[] = {
        "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x99\x82", "\xED\xA0\x80", "\xC0\xAF", "\xE0\x80\xAF",
        "\xF4\x90\x80\x80", "\xE2\x82", "\xF0\x9F\x99", "\x80", "\xFF", "\""};
    size_t i = 0;
    while (i < n) {
        uint64_t r = rnd();
        if (kind == 0) s[i++] = (char)(r & 0xFF);
        else if (kind == 1) s[i++] = (char)(r % 0x80);
        else if (kind == 3 && r % 300) s[i++] = (char)(' ' + r % 95);
        else {
            const char *p = pieces[r % 12];
            size_t l = strlen(p);
            if (i + l > n) break;
            memcpy(s + i, p, l);
            i += l;
        }
    }
    return i;
}

/* -------------------------------------------------------------- strings -- */

static void test_str_fixed(void)
{
    pc_buf b = PC_BUF_INIT;
    pc_json_write_str(&b, "a\"b\\c\n\r\t\b\f\x01\x1f\x7f", 13);
    CHECK_EQ_STR(b.data, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\"");
    pc_buf_reset(&b);
    pc_json_write_str(&b, "\xC3\xA9\xFF\xE2\x82x\xED\xA0\x80\xF0\x9F\x99\x82", 13);
    CHECK_EQ_STR(b.data, "\"\xC3\xA9\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx\xEF\xBF\xBD\xEF\xBF\xBD"
                         "\xEF\xBF\xBD\xF0\x9F\x99\x82\"");
    pc_buf_reset(&b);
    pc_json_write_str(&b, "", 0);
    CHECK_EQ_STR(b.data, "\"\"");
    pc_buf_reset(&b);
    pc_json_write_str(&b, "\xF0\x9F\x99", 3); /* truncated at the very end */
    CHECK_EQ_STR(b.data, "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
    pc_buf_free(&b);
    /* Reserving per 4 KiB chunk for the worst case keeps the block within twice
     * what the output needs plus one chunk's worst case. */
    size_t big = 1 << 20;
    char *s = malloc(big);
    for (int fill = 0; fill < 2; fill++) {
        memset(s, fill ? 0x01 : 'a', big);
        pc_json_write_str(&b, s, big);
        CHECK_EQ_INT(b.len, fill ? 6 * big + 2 : big + 2);
        CHECK(b.cap <= 2 * (b.len + 6 * 4096 + 16));
        pc_buf_free(&b);
    }
    free(s);
}

/* Every single byte and every pair, and random strings: same bytes as the
 * reference writer, and jansson reads back the expected string. */
static void test_str_random(void)
{
    enum { CAP = 9000 };
    char *s = malloc(CAP);
    pc_buf got = PC_BUF_INIT, want = PC_BUF_INIT, exp = PC_BUF_INIT;
    int diff = 0, bad = 0;
    for (unsigned a = 0; a < 256; a++)
        for (unsigned c = 0; c < 257; c++) {
            s[0] = (char)a;
            s[1] = (char)c;
            size_t n = c == 256 ? 1 : 2;
            pc_buf_reset(&got);
            pc_buf_reset(&want);
            pc_json_write_str(&got, s, n);
            ref_write_str(&want, s, n);
            diff += got.len != want.len || memcmp(got.data, want.data, got.len) != 0;
        }
    int rounds = 40000 / SCALE;
    for (int r = 0; r < rounds; r++) {
        size_t n = random_bytes(s, CAP);
        pc_buf_reset(&got);
        pc_buf_reset(&want);
        pc_buf_reset(&exp);
        pc_buf_putc(&got, 'x'); /* the writer appends: start mid-buffer */
        pc_json_write_str(&got, s, n);
        pc_buf_putc(&want, 'x');
        ref_write_str(&want, s, n);
        if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0) {
            if (diff++ < 3) fprintf(stderr, "round %d: differs from the reference\n", r);
            continue;
        }
        CHECK_EQ_INT(strlen(got.data), got.len); /* NUL-terminated, no NUL inside */
        expected_str(&exp, s, n);
        json_t *j = load(got.data + 1, got.len - 1);
        if (!j || !json_is_string(j) || json_string_length(j) != exp.len ||
            memcmp(json_string_value(j), exp.data, exp.len) != 0) {
            if (bad++ < 3) fprintf(stderr, "round %d: jansson reads another string\n", r);
        }
        json_decref(j);
    }
    CHECK_EQ_INT(diff, 0);
    CHECK_EQ_INT(bad, 0);
    pc_buf_free(&got);
    pc_buf_free(&want);
    pc_buf_free(&exp);
    free(s);
}

/* --------------------------------------------------------------- numbers -- */

static void test_int(void)
{
    const int64_t edge[] = {0, 1, -1, 9, 10, 99, 100, -100, 12345, INT64_MAX, INT64_MIN,
                            INT64_MIN + 1, 1000000000000000000LL, 999999999999999999LL};
    pc_buf b = PC_BUF_INIT;
    int diff = 0, bad = 0;
    int rounds = 1000000 / SCALE;
    for (int r = 0; r < rounds + 14; r++) {
        int64_t v;
        if (r < 14) v = edge[r];
        else {
            uint64_t x = rnd();
            v = (int64_t)(x >> (rnd() % 64));
            if (x & 1) v = -v;
        }
        char want[32];
        snprintf(want, sizeof(want), "%lld", (long long)v);
        pc_buf_reset(&b);
        pc_json_write_int(&b, v);
        if (strcmp(b.data, want) != 0 && diff++ < 3) fprintf(stderr, "%s != %s\n", b.data, want);
        if (r % 64 == 0) {
            json_t *j = load(b.data, b.len);
            bad += !j || !json_is_integer(j) || json_integer_value(j) != v;
            json_decref(j);
        }
    }
    CHECK_EQ_INT(diff, 0);
    CHECK_EQ_INT(bad, 0);
    pc_buf_free(&b);
}

static double random_double(void)
{
    uint64_t x = rnd();
    double v;
    switch (rnd() % 6) {
    case 0: memcpy(&v, &x, 8); return v; /* any bit pattern: denormals, huge, NaN */
    case 1: return (double)(int64_t)(x % 2000000000000000ull) / 1e6 * (x & 1 ? -1 : 1);
    case 2: return (double)(int64_t)(x % 100000) / pow(10, (double)(rnd() % 9));
    case 3: return (double)(int64_t)(x >> (rnd() % 64)) * (x & 1 ? -1 : 1);
    case 4: return ldexp((double)(x >> 11), (int)(rnd() % 200) - 120);
    default: return (double)(x % 1000000) / 1e6 + (double)(rnd() % 1000); /* near-decimals */
    }
}

static void test_double(void)
{
    const double edge[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.0001, 0.00009999999999999999, 1e-4, 1e-5,
                           999999999.999999, 1e9, 1e15, 1e15 - 1, 1e16, 123456789012345.0,
                           4.9e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.5,
                           1234.5678, 3.0, 100.0, 1e21, 5e-06};
    size_t n_edge = sizeof(edge) / sizeof(edge[0]);
    pc_buf got = PC_BUF_INIT, want = PC_BUF_INIT;
    int diff = 0, bad = 0;
    int rounds = 3000000 / SCALE;
    for (int r = 0; r < rounds; r++) {
        double v = (size_t)r < n_edge ? edge[r] : random_double();
        pc_buf_reset(&got);
        pc_json_write_double(&got, v);
        if (!isfinite(v)) {
            const char *w = isnan(v) ? "\"NaN\"" : v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
            diff += strcmp(got.data, w) != 0;
            continue;
        }
        pc_buf_reset(&want);
        ref_write_double(&want, v);
        if (strcmp(got.data, want.data) != 0 && diff++ < 5)
            fprintf(stderr, "%.17g: %s != %s\n", v, got.data, want.data);
        if (r % 16 == 0) {
            json_t *j = load(got.data, got.len);
            bad += !j || !json_is_real(j) || json_real_value(j) != v ||
                   signbit(json_real_value(j)) != signbit(v);
            json_decref(j);
        }
    }
    pc_buf_reset(&got);
    pc_json_write_double(&got, NAN);
    pc_json_write_double(&got, -INFINITY);
    CHECK_EQ_STR(got.data, "\"NaN\"\"-Infinity\"");
    CHECK_EQ_INT(diff, 0);
    CHECK_EQ_INT(bad, 0);
    pc_buf_free(&got);
    pc_buf_free(&want);
}

/* pc_json_write_ms is pc_json_write_double(pc_time_diff_ms()) for any pair. */
static void test_ms(void)
{
    const int64_t edge[] = {0, 1, 99, 100, 101, 999999, 1000000, 12345678, 999999999999999LL,
                            1000000000000000LL, 1000000000000001LL, (1LL << 53) + 1, INT64_MAX,
                            INT64_MIN, INT64_MAX - 1, 1LL << 62};
    size_t n_edge = sizeof(edge) / sizeof(edge[0]);
    pc_buf got = PC_BUF_INIT, want = PC_BUF_INIT;
    int diff = 0;
    int rounds = 2000000 / SCALE;
    for (int r = 0; r < rounds; r++) {
        int64_t end, start;
        if ((size_t)r < 2 * n_edge) {
            end = (size_t)r < n_edge ? edge[r] : 0;
            start = (size_t)r < n_edge ? 0 : edge[r - n_edge];
        } else {
            uint64_t x = rnd();
            start = 1737972000000000000LL + (int64_t)(rnd() % 1000000000000ull);
            int64_t d = (int64_t)(x >> (rnd() % 64)) * (x & 1 ? -1 : 1);
            if (rnd() % 8 == 0) {
                start = (int64_t)rnd();
                end = (int64_t)rnd();
            } else if (__builtin_add_overflow(start, d, &end)) {
                end = start;
            }
        }
        pc_buf_reset(&got);
        pc_buf_reset(&want);
        pc_json_write_ms(&got, end, start);
        pc_json_write_double(&want, pc_time_diff_ms(end, start));
        if (strcmp(got.data, want.data) != 0 && diff++ < 5)
            fprintf(stderr, "%lld - %lld: %s != %s\n", (long long)end, (long long)start, got.data,
                    want.data);
    }
    CHECK_EQ_INT(diff, 0);
    char o[PC_NUMFMT_MAX];
    CHECK_EQ_INT(pc_fmt_ms(o, 12345678), 9);
    CHECK(memcmp(o, "12.345678", 9) == 0);
    CHECK_EQ_INT(pc_fmt_ms(o, -3000000), 4);
    CHECK(memcmp(o, "-3.0", 4) == 0);
    CHECK_EQ_INT(pc_fmt_ms(o, 5), 0); /* "5e-06" is the double path's */
    pc_buf_free(&got);
    pc_buf_free(&want);
}

/* ----------------------------------------------------------- value trees -- */

static void random_value(pc_arena *a, pc_value *v, int depth, char *scratch)
{
    int t = (int)(rnd() % (depth < 4 ? 8 : 6));
    memset(v, 0, sizeof(*v));
    switch (t) {
    case 0: v->type = PC_V_NULL; break;
    case 1: v->type = PC_V_BOOL; v->b = rnd() & 1; break;
    case 2: v->type = PC_V_INT; v->i = (int64_t)rnd() >> (rnd() % 64); break;
    case 3: {
        v->type = PC_V_DOUBLE;
        do v->d = random_double();
        while (!isfinite(v->d));
        break;
    }
    case 4:
    case 5: {
        v->type = t == 4 ? PC_V_STR : PC_V_BYTES;
        size_t n = random_bytes(scratch, 200);
        char *p = pc_arena_alloc(a, n + 1);
        memcpy(p, scratch, n);
        v->s = (pc_str){p, n};
        break;
    }
    case 6: {
        v->type = PC_V_ARRAY;
        v->arr.n = rnd() % 5;
        v->arr.v = pc_arena_alloc(a, (v->arr.n + 1) * sizeof(pc_value));
        for (size_t k = 0; k < v->arr.n; k++) random_value(a, &v->arr.v[k], depth + 1, scratch);
        break;
    }
    default: {
        v->type = PC_V_MAP;
        v->map.n = rnd() % 5;
        v->map.kv = pc_arena_alloc(a, (v->map.n + 1) * sizeof(pc_kv));
        for (size_t k = 0; k < v->map.n; k++) {
            /* distinct keys (jansson keeps one of duplicates), with odd bytes */
            char *key = pc_arena_alloc(a, 16);
            int kl = snprintf(key, 16, "k%zu\n\"\xC3\xA9", k);
            v->map.kv[k].key = (pc_str){key, (size_t)kl};
            random_value(a, &v->map.kv[k].value, depth + 1, scratch);
        }
    }
    }
}

static bool b64_equal(const char *text, size_t tl, pc_str raw)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pc_buf b = PC_BUF_INIT;
    for (size_t i = 0; i < raw.n; i += 3) {
        unsigned char c[3] = {0, 0, 0};
        size_t k = raw.n - i < 3 ? raw.n - i : 3;
        memcpy(c, raw.p + i, k);
        char q[4] = {tbl[c[0] >> 2], tbl[(c[0] & 3) << 4 | c[1] >> 4],
                     k > 1 ? tbl[(c[1] & 15) << 2 | c[2] >> 6] : '=', k > 2 ? tbl[c[2] & 63] : '='};
        pc_buf_append(&b, q, 4);
    }
    bool ok = b.len == tl && (tl == 0 || memcmp(b.data, text, tl) == 0);
    pc_buf_free(&b);
    return ok;
}

static bool same(const pc_value *v, json_t *j)
{
    pc_buf exp = PC_BUF_INIT;
    bool ok = false;
    switch (v->type) {
    case PC_V_NULL: ok = json_is_null(j); break;
    case PC_V_BOOL: ok = json_is_boolean(j) && json_boolean_value(j) == v->b; break;
    case PC_V_INT: ok = json_is_integer(j) && json_integer_value(j) == v->i; break;
    case PC_V_DOUBLE: ok = json_is_real(j) && json_real_value(j) == v->d; break;
    case PC_V_STR:
        expected_str(&exp, v->s.p, v->s.n);
        ok = json_is_string(j) && json_string_length(j) == exp.len &&
             (exp.len == 0 || memcmp(json_string_value(j), exp.data, exp.len) == 0);
        break;
    case PC_V_BYTES:
        ok = json_is_string(j) && b64_equal(json_string_value(j), json_string_length(j), v->s);
        break;
    case PC_V_ARRAY:
        ok = json_is_array(j) && json_array_size(j) == v->arr.n;
        for (size_t k = 0; ok && k < v->arr.n; k++) ok = same(&v->arr.v[k], json_array_get(j, k));
        break;
    case PC_V_MAP:
        ok = json_is_object(j) && json_object_size(j) == v->map.n;
        for (size_t k = 0; ok && k < v->map.n; k++) {
            pc_buf_reset(&exp);
            expected_str(&exp, v->map.kv[k].key.p, v->map.kv[k].key.n);
            json_t *m = json_object_getn(j, exp.data, exp.len);
            ok = m && same(&v->map.kv[k].value, m);
        }
        break;
    }
    pc_buf_free(&exp);
    return ok;
}

static void test_value_trees(void)
{
    char scratch[256];
    pc_buf b = PC_BUF_INIT;
    int bad = 0;
    int rounds = 20000 / SCALE;
    for (int r = 0; r < rounds; r++) {
        pc_arena *a = pc_arena_create(4096);
        pc_value v;
        random_value(a, &v, 0, scratch);
        pc_buf_reset(&b);
        pc_value_write_json(&b, &v);
        json_t *j = load(b.data, b.len);
        if (!j || !same(&v, j)) {
            if (bad++ < 3) fprintf(stderr, "round %d: tree differs: %.300s\n", r, b.data);
        }
        json_decref(j);
        pc_arena_destroy(a);
    }
    CHECK_EQ_INT(bad, 0);
    pc_buf_free(&b);
}

int main(void)
{
    const char *env = getenv("PC_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : 20261201;
    fprintf(stderr, "seed %llu (PC_TEST_SEED)\n", (unsigned long long)seed);
    rng_state = seed;
    RUN(test_str_fixed);
    RUN(test_str_random);
    RUN(test_int);
    RUN(test_double);
    RUN(test_ms);
    RUN(test_value_trees);
    return CHECK_DONE();
}

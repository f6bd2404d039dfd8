/*
 * json.c - JSON reader into pc_value trees, and the JSON writer (see json.h).
 *
 * Reader: recursive descent bounded by PC_JSON_MAX_DEPTH. Elements of open
 * arrays collect on one scratch stack of values, members of open objects on one
 * of key/value pairs (heap blocks reused across the whole parse); when a
 * container closes its elements are copied once into an exact-size arena
 * array, so nested containers never fragment the arena.
 *
 * Memory: the scratch stacks are reserved in the arena's budget (arena.h) as
 * they grow (by half, not double: a stack of 10 M values is the worst case
 * and doubling costs up to twice that), and arena blocks are taken with
 * pc_arena_try_alloc, so a document that would decode past the budget fails
 * with "over the memory budget" and pc_arena_over(a) set. Cost per element:
 * the scratch slot (24 bytes for a value, 40 for a member) and its arena copy;
 * `[0,0,...]` peaks at about 24 x 2.5 / 2 = 30 bytes per body byte.
 *
 * Writer: runs of plain ASCII are appended in one copy; everything else goes
 * through the UTF-8 check, so invalid sequences become U+FFFD.
 */
#include "json.h"
#include "mem.h"
#include "timefmt.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at |p| (n bytes available), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;
        if (c == 0xF4 && p[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

bool pc_utf8_valid(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    /* Fast path: prompts and completions are long and mostly ASCII. */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull) break;
    }
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

/* ----------------------------------------------------------------- reader */

#define OVER_BUDGET "request is over the memory budget"

typedef struct parser {
    pc_arena *a;
    const char *s;
    size_t n;
    size_t i;
    pc_kv *stack; /* scratch members of open objects */
    size_t sp, scap;
    pc_value *vstack; /* scratch elements of open arrays */
    size_t vsp, vcap;
    pc_json_error *err;
} parser;

/*
 * Every error goes through here: the offset reported is where the parser
 * stands, clamped to the input's length, so no message ever names a byte past
 * the end (a lone trailing backslash used to leave the cursor one beyond it).
 */
static int fail(parser *p, const char *msg)
{
    size_t at = p->i < p->n ? p->i : p->n;
    snprintf(p->err->msg, sizeof(p->err->msg), "%s at byte %zu", msg, at);
    p->err->offset = at;
    return -1;
}

static void skip_ws(parser *p)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

static int hex4(parser *p, unsigned *out)
{
    if (p->n - p->i < 4) return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return fail(p, "invalid \\u escape");
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string; p->i is just past the opening quote. */
static int parse_string(parser *p, pc_str *out)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t start = p->i;
    bool escaped = false;
    while (p->i < p->n) {
        unsigned char c = s[p->i];
        if (c == '"') break;
        if (c == '\\') {
            escaped = true;
            if (p->n - p->i < 2) { /* a backslash as the last byte */
                p->i = p->n;
                break;
            }
            p->i += 2;
            continue;
        }
        if (c < 0x20) return fail(p, "control character in string");
        if (c >= 0x80) {
            size_t k = utf8_seq(s + p->i, p->n - p->i);
            if (!k) return fail(p, "invalid UTF-8 in string");
            p->i += k;
        } else {
            p->i++;
        }
    }
    if (p->i >= p->n) return fail(p, "unterminated string");
    size_t end = p->i;
    p->i++; /* closing quote */
    if (!escaped) {
        out->p = p->s + start;
        out->n = end - start;
        return 0;
    }
    /* Decoding never grows the text: escapes are at least as long as their output. */
    char *o = pc_arena_try_alloc(p->a, end - start + 1);
    if (!o) return fail(p, OVER_BUDGET);
    size_t on = 0, save = p->i;
    p->i = start;
    while (p->i < end) {
        char c = p->s[p->i++];
        if (c != '\\') {
            o[on++] = c;
            continue;
        }
        char e = p->s[p->i++];
        switch (e) {
        case '"': o[on++] = '"'; break;
        case '\\': o[on++] = '\\'; break;
        case '/': o[on++] = '/'; break;
        case 'b': o[on++] = '\b'; break;
        case 'f': o[on++] = '\f'; break;
        case 'n': o[on++] = '\n'; break;
        case 'r': o[on++] = '\r'; break;
        case 't': o[on++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (hex4(p, &cp)) return -1;
            if (cp >= 0xD800 && cp <= 0xDBFF && end - p->i >= 6 && p->s[p->i] == '\\' &&
                p->s[p->i + 1] == 'u') {
                size_t back = p->i;
                unsigned lo;
                p->i += 2;
                if (hex4(p, &lo)) return -1;
                if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else {
                    cp = 0xFFFD;
                    p->i = back;
                }
            } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                cp = 0xFFFD; /* lone surrogate: replaced, never stored raw */
            }
            on += put_utf8(o + on, cp);
            break;
        }
        default: p->i--; return fail(p, "invalid escape in string");
        }
    }
    o[on] = '\0';
    p->i = save;
    out->p = o;
    out->n = on;
    return 0;
}

static int parse_number(parser *p, pc_value *v)
{
    size_t start = p->i;
    bool is_int = true;
    if (p->s[p->i] == '-') p->i++;
    if (p->i + 8 <= p->n && memcmp(p->s + p->i, "Infinity", 8) == 0) {
        p->i += 8;
        v->type = PC_V_DOUBLE;
        v->d = p->s[start] == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "invalid number");
    if (p->s[p->i] == '0' && p->i + 1 < p->n && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9')
        return fail(p, "invalid number (leading zero)");
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        is_int = false;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "invalid number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        is_int = false;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "invalid number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    size_t len = p->i - start;
    char small[64];
    char *tmp = len < sizeof(small) ? small : pc_arena_try_alloc(p->a, len + 1);
    if (!tmp) return fail(p, OVER_BUDGET);
    memcpy(tmp, p->s + start, len);
    tmp[len] = '\0';
    if (is_int) {
        char *end;
        errno = 0;
        long long x = strtoll(tmp, &end, 10);
        if (errno == 0) {
            v->type = PC_V_INT;
            v->i = x;
            return 0;
        }
    }
    v->type = PC_V_DOUBLE;
    v->d = strtod(tmp, NULL);
    return 0;
}

static bool lit(parser *p, const char *word, size_t len)
{
    if (p->n - p->i < len || memcmp(p->s + p->i, word, len) != 0) return false;
    p->i += len;
    return true;
}

/* Grows the scratch block |*v| of |*cap| elements of |size| bytes by half,
 * reserving the growth in the arena's budget: 0, or -1 when refused. */
static int grow_scratch(parser *p, void **v, size_t *cap, size_t size)
{
    size_t ncap = *cap ? *cap + *cap / 2 : 64;
    if (pc_arena_reserve(p->a, (ncap - *cap) * size)) return -1;
    *v = pc_xrealloc(*v, ncap * size);
    *cap = ncap;
    return 0;
}

/* A new member slot on the object stack, or NULL when over the budget. */
static pc_kv *push(parser *p)
{
    if (p->sp == p->scap && grow_scratch(p, (void **)&p->stack, &p->scap, sizeof(pc_kv)))
        return NULL;
    pc_kv *kv = &p->stack[p->sp++];
    kv->key = PC_STR_NULL;
    return kv;
}

/* A new element slot on the array stack, or NULL when over the budget. */
static pc_value *push_value(parser *p)
{
    if (p->vsp == p->vcap &&
        grow_scratch(p, (void **)&p->vstack, &p->vcap, sizeof(pc_value)))
        return NULL;
    return &p->vstack[p->vsp++];
}

static int parse_value(parser *p, pc_value *v, int depth);

static int parse_array(parser *p, pc_value *v, int depth)
{
    size_t base = p->vsp;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
    } else {
        for (;;) {
            pc_value item;
            if (parse_value(p, &item, depth)) return -1;
            pc_value *slot = push_value(p);
            if (!slot) return fail(p, OVER_BUDGET);
            *slot = item;
            skip_ws(p);
            if (p->i >= p->n) return fail(p, "unterminated array");
            char c = p->s[p->i++];
            if (c == ']') break;
            if (c != ',') return p->i--, fail(p, "expected ',' or ']'");
        }
    }
    size_t count = p->vsp - base;
    v->type = PC_V_ARRAY;
    v->arr.n = count;
    v->arr.v = count ? pc_arena_try_alloc(p->a, count * sizeof(pc_value)) : NULL;
    if (count && !v->arr.v) return fail(p, OVER_BUDGET);
    if (count) memcpy(v->arr.v, p->vstack + base, count * sizeof(pc_value));
    p->vsp = base;
    return 0;
}

static int parse_object(parser *p, pc_value *v, int depth)
{
    size_t base = p->sp;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
    } else {
        for (;;) {
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"') return fail(p, "expected object key");
            p->i++;
            pc_str key;
            if (parse_string(p, &key)) return -1;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') return fail(p, "expected ':'");
            p->i++;
            pc_value item;
            if (parse_value(p, &item, depth)) return -1;
            pc_kv *kv = push(p);
            if (!kv) return fail(p, OVER_BUDGET);
            kv->key = key;
            kv->value = item;
            skip_ws(p);
            if (p->i >= p->n) return fail(p, "unterminated object");
            char c = p->s[p->i++];
            if (c == '}') break;
            if (c != ',') return p->i--, fail(p, "expected ',' or '}'");
        }
    }
    size_t count = p->sp - base;
    v->type = PC_V_MAP;
    v->map.n = count;
    v->map.kv = count ? pc_arena_try_alloc(p->a, count * sizeof(pc_kv)) : NULL;
    if (count && !v->map.kv) return fail(p, OVER_BUDGET);
    if (count) memcpy(v->map.kv, p->stack + base, count * sizeof(pc_kv));
    p->sp = base;
    return 0;
}

static int parse_value(parser *p, pc_value *v, int depth)
{
    skip_ws(p);
    if (p->i >= p->n) return fail(p, "unexpected end of input");
    memset(v, 0, sizeof(*v));
    char c = p->s[p->i];
    switch (c) {
    case '{':
    case '[':
        if (depth >= PC_JSON_MAX_DEPTH) return fail(p, "nesting deeper than 64 levels");
        p->i++;
        return c == '{' ? parse_object(p, v, depth + 1) : parse_array(p, v, depth + 1);
    case '"':
        p->i++;
        v->type = PC_V_STR;
        return parse_string(p, &v->s);
    case 't':
        if (!lit(p, "true", 4)) break;
        v->type = PC_V_BOOL;
        v->b = true;
        return 0;
    case 'f':
        if (!lit(p, "false", 5)) break;
        v->type = PC_V_BOOL;
        return 0;
    case 'n':
        if (!lit(p, "null", 4)) break;
        v->type = PC_V_NULL;
        return 0;
    case 'N':
        if (!lit(p, "NaN", 3)) break;
        v->type = PC_V_DOUBLE;
        v->d = NAN;
        return 0;
    case 'I':
        return parse_number(p, v);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
    }
    return fail(p, "unexpected character");
}

int pc_json_parse(pc_arena *a, const char *text, size_t len, pc_value *out, pc_json_error *err)
{
    parser p = {.a = a, .s = text, .n = len, .err = err};
    int rc = parse_value(&p, out, 0);
    if (rc == 0) {
        skip_ws(&p);
        if (p.i != p.n) rc = fail(&p, "trailing characters after JSON value");
    }
    free(p.stack);
    free(p.vstack);
    pc_arena_unreserve(a, p.scap * sizeof(pc_kv) + p.vcap * sizeof(pc_value));
    return rc;
}

const pc_value *pc_json_get(const pc_value *obj, const char *key)
{
    if (!obj || obj->type != PC_V_MAP) return NULL;
    size_t kl = strlen(key);
    for (size_t k = 0; k < obj->map.n; k++)
        if (obj->map.kv[k].key.n == kl && memcmp(obj->map.kv[k].key.p, key, kl) == 0)
            return &obj->map.kv[k].value;
    return NULL;
}

/* ----------------------------------------------------------------- writer */

void pc_json_write_str(pc_buf *out, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)p;
    pc_buf_reserve(out, n + 2);
    pc_buf_putc(out, '"');
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (i > run) pc_buf_append(out, p + run, i - run);
        if (c >= 0x80) {
            size_t k = utf8_seq(s + i, n - i);
            if (k) pc_buf_append(out, p + i, k);
            else pc_buf_append(out, "\xEF\xBF\xBD", 3);
            i += k ? k : 1;
        } else {
            char esc[7] = {'\\', 0};
            size_t el = 2;
            switch (c) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            default:
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                el = 6;
            }
            pc_buf_append(out, esc, el);
            i++;
        }
        run = i;
    }
    if (i > run) pc_buf_append(out, p + run, i - run);
    pc_buf_putc(out, '"');
}

void pc_json_write_cstr(pc_buf *out, const char *s)
{
    pc_json_write_str(out, s, strlen(s));
}

void pc_json_write_int(pc_buf *out, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    pc_buf_append(out, tmp, (size_t)n);
}

void pc_json_write_double(pc_buf *out, double v)
{
    if (isnan(v)) {
        pc_buf_puts(out, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        pc_buf_puts(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
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

void pc_json_write_time(pc_buf *out, int64_t ns)
{
    char tmp[32];
    pc_time_format(ns, tmp);
    pc_buf_putc(out, '"');
    pc_buf_puts(out, tmp);
    pc_buf_putc(out, '"');
}

void pc_json_write_base64(pc_buf *out, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pc_buf_reserve(out, (n + 2) / 3 * 4 + 2);
    pc_buf_putc(out, '"');
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        char q[4] = {tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63], tbl[v & 63]};
        pc_buf_append(out, q, 4);
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        char q[4] = {tbl[v >> 18], tbl[(v >> 12) & 63], i + 1 < n ? tbl[(v >> 6) & 63] : '=', '='};
        pc_buf_append(out, q, 4);
    }
    pc_buf_putc(out, '"');
}

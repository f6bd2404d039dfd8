/*
 * json.c - JSON reader into pc_value trees, and the JSON writer (see json.h).
 *
 * Reader: two passes. The first (count_pass) only looks at the structure: it
 * skips strings and scalars and records, for every array and object in the
 * order they open, how many elements it holds (one uint32_t each, in a heap
 * side array). The second is a recursive descent bounded by PC_JSON_MAX_DEPTH
 * that validates everything and writes each container's elements straight
 * into an exact-size arena array, allocated when the container opens.
 *
 * Why the counts can be trusted: both passes split the text into strings and
 * the rest by the same rule (a string ends at the first '"' not escaped by a
 * backslash), so on the prefix the second pass accepts they see the same
 * containers in the same order and the same commas in each; the second pass
 * stores element k of a container only after its k-th comma, and the first
 * counted at least commas + 1. On invalid text the passes may disagree from
 * the first error on (the first pass closes `[` at `}`), so an element past
 * the count is parsed into a spare slot: it fails there with the parser's own
 * message, exactly as before this design; were it ever to succeed, the parse
 * fails ("miscounted") rather than write past the array.
 *
 * Memory: the side array is reserved in the arena's budget (arena.h) as it
 * grows (by half); it costs 4 bytes per container and is freed on return.
 * Arena arrays are taken with pc_arena_try_alloc, so a document that would
 * decode past the budget fails with "over the memory budget" and
 * pc_arena_over(a) set. Cost per element: its slot in its container's array
 * and nothing else (24 bytes per value, 40 per member): `[0,0,...]` costs 12
 * bytes per text byte, the floor for this tree. (The previous design collected
 * elements on a scratch stack and copied them out: about 30 bytes per byte.)
 *
 * Writer (issue 12: it is most of the gateway's prela_json encoding): a string
 * is scanned 8 bytes at a time while no byte needs attention, then byte by
 * byte through a 256-entry class table; each run of plain bytes is one copy.
 * Space is reserved once per 4 KiB of input for the worst case (6 bytes per
 * input byte), so the loop writes straight into the buffer with no growth
 * checks. Bytes >= 0x80 go through the UTF-8 check, so invalid sequences
 * become U+FFFD. Numbers are formatted by numfmt.c and times by timefmt.c,
 * neither of which calls printf on the common path.
 */
#include "json.h"
#include "mem.h"
#include "numfmt.h"
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

/* The 8-bytes-at-a-time scans below find the first special byte as the lowest
 * flagged one of a word, which is the first in memory only on little endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "json.c: the word-at-a-time string scans assume a little-endian machine"
#endif

typedef struct parser {
    pc_arena *a;
    const char *s;
    size_t n;
    size_t i;
    uint32_t *counts; /* elements of every container, in the order they open */
    size_t n_counts, cap_counts;
    size_t next; /* the container the second pass opens next */
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
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (p->i < p->n) {
        /* Fast path: 8 bytes at a time up to the first byte that is not plain
         * ASCII (a quote, backslash, control character or byte >= 0x80). */
        while (p->n - p->i >= 8) {
            uint64_t w, q, b;
            memcpy(&w, s + p->i, 8);
            q = w ^ (ones * '"');
            b = w ^ (ones * '\\');
            uint64_t hit = (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b) | w) &
                           highs;
            if (hit) { /* the lowest flagged byte is exactly the first special one */
                p->i += (size_t)__builtin_ctzll(hit) / 8;
                break;
            }
            p->i += 8;
        }
        if (p->i >= p->n) break;
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
    size_t digits = p->i;
    uint64_t acc = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
        acc = acc * 10 + (uint64_t)(p->s[p->i++] - '0'); /* wraps past 19 digits: unused then */
    digits = p->i - digits;
    if (digits <= 18 && (p->i >= p->n || (p->s[p->i] != '.' && (p->s[p->i] | 0x20) != 'e'))) {
        /* an integer that surely fits int64: no copy, no strtoll */
        v->type = PC_V_INT;
        v->i = p->s[start] == '-' ? -(int64_t)acc : (int64_t)acc;
        return 0;
    }
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

/* Grows the side array of counts by half, reserving the growth in the
 * arena's budget: 0, or -1 when refused. */
static int grow_counts(parser *p)
{
    size_t ncap = p->cap_counts ? p->cap_counts + p->cap_counts / 2 : 64;
    if (pc_arena_reserve(p->a, (ncap - p->cap_counts) * sizeof(uint32_t))) return -1;
    p->counts = pc_xrealloc(p->counts, ncap * sizeof(uint32_t));
    p->cap_counts = ncap;
    return 0;
}

/* Index of the first '"' or '\\' at or after |i| in |s| (n bytes), or n. */
static size_t find_quote_or_backslash(const unsigned char *s, size_t i, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (; i + 8 <= n; i += 8) {
        uint64_t w, q, b;
        memcpy(&w, s + i, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        /* the lowest flagged byte is exactly the first match (little endian) */
        uint64_t hit = ((q - ones) & ~q & highs) | ((b - ones) & ~b & highs);
        if (hit) return i + (size_t)__builtin_ctzll(hit) / 8;
    }
    while (i < n && s[i] != '"' && s[i] != '\\') i++;
    return i;
}

/* The bytes the first pass stops at; it skips everything else. */
static const unsigned char structural[256] = {
    ['"'] = 1, [','] = 1, ['['] = 1, [']'] = 1, ['{'] = 1, ['}'] = 1,
};

/*
 * The first pass: fills p->counts with the element count of every container
 * in opening order: 0 when the first byte after the opening bracket (and any
 * whitespace) is a closing one, else its commas + 1. It stops early (leaving
 * the rest to the second pass's errors) at a closing bracket with nothing
 * open or an opening one past PC_JSON_MAX_DEPTH; containers still open then
 * get the commas seen + 1, an upper bound. Returns 0, or -1 (error set) when
 * the budget refuses the array.
 */
static int count_pass(parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t n = p->n, i = 0;
    size_t slot[PC_JSON_MAX_DEPTH]; /* the counts entry of each open container */
    uint32_t commas[PC_JSON_MAX_DEPTH];
    int depth = 0;
    for (;;) {
        while (i < n && !structural[s[i]]) i++;
        if (i >= n) break;
        switch (s[i]) {
        case ',':
            if (depth) commas[depth - 1]++;
            i++;
            break;
        case '[': case '{': {
            if (depth == PC_JSON_MAX_DEPTH) goto stop;
            if (p->n_counts == p->cap_counts && grow_counts(p)) {
                p->i = i;
                return fail(p, OVER_BUDGET);
            }
            size_t at = p->n_counts++;
            for (i++; i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r');) i++;
            if (i < n && (s[i] == ']' || s[i] == '}')) {
                p->counts[at] = 0; /* empty */
                i++;
                break;
            }
            slot[depth] = at;
            commas[depth++] = 0;
            break;
        }
        case ']': case '}':
            if (!depth) goto stop;
            depth--;
            p->counts[slot[depth]] = commas[depth] + 1;
            i++;
            break;
        default: /* '"': the same rule as parse_string, a backslash skips one byte */
            for (i++;;) {
                i = find_quote_or_backslash(s, i, n);
                if (i >= n) break;
                if (s[i] == '"') {
                    i++;
                    break;
                }
                i += 2;
            }
        }
    }
stop:
    while (depth) {
        depth--;
        p->counts[slot[depth]] = commas[depth] + 1;
    }
    return 0;
}

/* The element count of the container the second pass opens now. */
static size_t next_count(parser *p)
{
    return p->next < p->n_counts ? p->counts[p->next++] : 0;
}

static int parse_value(parser *p, pc_value *v, int depth);

static int parse_array(parser *p, pc_value *v, int depth)
{
    size_t want = next_count(p), k = 0;
    pc_value *arr = want ? pc_arena_try_alloc(p->a, want * sizeof(pc_value)) : NULL;
    if (want && !arr) return fail(p, OVER_BUDGET);
    v->type = PC_V_ARRAY;
    v->arr.v = arr;
    v->arr.n = 0;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
    } else {
        for (;;) {
            pc_value spare, *slot = k < want ? &arr[k] : &spare;
            if (parse_value(p, slot, depth)) return -1;
            if (slot == &spare) return fail(p, "miscounted array"); /* see "Why" above */
            v->arr.n = ++k;
            skip_ws(p);
            if (p->i >= p->n) return fail(p, "unterminated array");
            char c = p->s[p->i++];
            if (c == ']') break;
            if (c != ',') return p->i--, fail(p, "expected ',' or ']'");
        }
    }
    if (!k) v->arr.v = NULL;
    return 0;
}

static int parse_object(parser *p, pc_value *v, int depth)
{
    size_t want = next_count(p), k = 0;
    pc_kv *kv = want ? pc_arena_try_alloc(p->a, want * sizeof(pc_kv)) : NULL;
    if (want && !kv) return fail(p, OVER_BUDGET);
    v->type = PC_V_MAP;
    v->map.kv = kv;
    v->map.n = 0;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
    } else {
        for (;;) {
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"') return fail(p, "expected object key");
            pc_kv spare, *slot = k < want ? &kv[k] : &spare;
            p->i++;
            if (parse_string(p, &slot->key)) return -1;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') return fail(p, "expected ':'");
            p->i++;
            if (parse_value(p, &slot->value, depth)) return -1;
            if (slot == &spare) return fail(p, "miscounted object"); /* see "Why" above */
            v->map.n = ++k;
            skip_ws(p);
            if (p->i >= p->n) return fail(p, "unterminated object");
            char c = p->s[p->i++];
            if (c == '}') break;
            if (c != ',') return p->i--, fail(p, "expected ',' or '}'");
        }
    }
    if (!k) v->map.kv = NULL;
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
    memset(out, 0, sizeof(*out));
    if (len > UINT32_MAX) return fail(&p, "JSON text larger than 4 GiB");
    int rc = count_pass(&p);
    if (rc == 0) {
        p.i = 0;
        rc = parse_value(&p, out, 0);
    }
    if (rc == 0) {
        skip_ws(&p);
        if (p.i != p.n) rc = fail(&p, "trailing characters after JSON value");
    }
    free(p.counts);
    pc_arena_unreserve(a, p.cap_counts * sizeof(uint32_t));
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

/*
 * What each byte becomes inside a JSON string: 0 copied as is, ESC_UTF8 the
 * lead or stray byte of a multi-byte sequence (checked with utf8_seq), ESC_U
 * a control written as \u00XX, any other value the letter after a backslash.
 */
enum { ESC_UTF8 = 1, ESC_U = 2 };
static const unsigned char esc_class[256] = {
    [0 ... 7] = ESC_U,   ['\b'] = 'b', ['\t'] = 't',        ['\n'] = 'n',
    [11] = ESC_U,        ['\f'] = 'f', ['\r'] = 'r',        [14 ... 0x1F] = ESC_U,
    ['"'] = '"',         ['\\'] = '\\', [0x80 ... 0xFF] = ESC_UTF8,
};

/* True when one of the 8 bytes of |w| is < 0x20, '"', '\\' or >= 0x80. Each
 * term's high bit is exact as a yes/no over the word (a byte that borrows is
 * itself a hit), which is all this test needs. */
static inline bool word_special(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    return ((((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b) | w) & high) != 0;
}

/* Input bytes per reservation: each may become 6 output bytes (\u00XX), so the
 * buffer never holds more than ~24 KiB beyond what the string needs. */
#define STR_CHUNK 4096

void pc_json_write_str(pc_buf *out, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)p;
    pc_buf_reserve(out, n + 2);
    out->data[out->len++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > STR_CHUNK ? i + STR_CHUNK : n;
        /* 6 per input byte, 3 for a sequence running past |end|, the closing quote */
        pc_buf_reserve(out, (end - i) * 6 + 8);
        char *o = out->data + out->len;
        while (i < end) {
            size_t r = i;
            for (; r + 8 <= end; r += 8) {
                uint64_t w;
                memcpy(&w, s + r, 8);
                if (word_special(w)) break;
            }
            while (r < end && !esc_class[s[r]]) r++;
            memcpy(o, s + i, r - i);
            o += r - i;
            i = r;
            if (i >= end) break;
            unsigned char c = s[i], e = esc_class[c];
            if (e == ESC_UTF8) {
                size_t k = utf8_seq(s + i, n - i);
                if (k) {
                    memcpy(o, s + i, k);
                    o += k;
                    i += k;
                } else {
                    memcpy(o, "\xEF\xBF\xBD", 3);
                    o += 3;
                    i++;
                }
            } else if (e == ESC_U) {
                memcpy(o, "\\u00", 4);
                o[4] = hex[c >> 4];
                o[5] = hex[c & 15];
                o += 6;
                i++;
            } else {
                o[0] = '\\';
                o[1] = (char)e;
                o += 2;
                i++;
            }
        }
        out->len = (size_t)(o - out->data);
    }
    out->data[out->len++] = '"';
    out->data[out->len] = '\0';
}

void pc_json_write_cstr(pc_buf *out, const char *s)
{
    pc_json_write_str(out, s, strlen(s));
}

void pc_json_write_int(pc_buf *out, int64_t v)
{
    pc_buf_reserve(out, 20);
    out->len += pc_fmt_i64(out->data + out->len, v);
    out->data[out->len] = '\0';
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
    pc_buf_reserve(out, PC_NUMFMT_MAX);
    out->len += pc_fmt_double(out->data + out->len, v);
    out->data[out->len] = '\0';
}

void pc_json_write_ms(pc_buf *out, int64_t end, int64_t start)
{
    int64_t d;
    size_t k;
    pc_buf_reserve(out, PC_NUMFMT_MAX);
    if (!__builtin_sub_overflow(end, start, &d) && (k = pc_fmt_ms(out->data + out->len, d))) {
        out->len += k;
        out->data[out->len] = '\0';
        return;
    }
    pc_json_write_double(out, pc_time_diff_ms(end, start));
}

void pc_json_write_time(pc_buf *out, int64_t ns)
{
    pc_buf_reserve(out, 29);
    char *o = out->data + out->len;
    o[0] = '"';
    pc_time_format(ns, o + 1); /* 27 characters and a NUL */
    o[28] = '"';
    out->len += 29;
    out->data[out->len] = '\0';
}

void pc_json_write_base64(pc_buf *out, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pc_buf_reserve(out, (n + 2) / 3 * 4 + 2);
    char *o = out->data + out->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 2 < n; i += 3, o += 4) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        o[0] = tbl[v >> 18];
        o[1] = tbl[(v >> 12) & 63];
        o[2] = tbl[(v >> 6) & 63];
        o[3] = tbl[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        o[0] = tbl[v >> 18];
        o[1] = tbl[(v >> 12) & 63];
        o[2] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    *o++ = '"';
    out->len = (size_t)(o - out->data);
    *o = '\0';
}

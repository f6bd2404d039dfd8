/*
 * local_text.c - the embedded store's search text, case folding and FTS5
 * trigram queries (see local_text.h for the contracts).
 *
 * The search text is defined by the stored JSON (parsed with json.h into a
 * scratch arena), so retention and the migration compute it from what the
 * row holds. The writers compute the same text from the decoded span
 * (pc_local_span_text), taking the JSON way only for the values whose round
 * trip through it is not plain (tests/unit/exporters/test_local_text.c
 * checks both ways agree).
 */
#include "local_text.h"

#include "local_bloom.h"
#include "local_zip.h"

#include "arena.h"
#include "attr_bloom.h"
#include "json.h"
#include "mem.h"
#include "span.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- search text -- */

static void put_value(pc_buf *out, const pc_value *v, int depth)
{
    if (depth > PC_JSON_MAX_DEPTH) return;
    switch (v->type) {
    case PC_V_STR:
        pc_buf_append(out, v->s.p, v->s.n);
        pc_buf_putc(out, '\n');
        break;
    case PC_V_BOOL:
        pc_buf_puts(out, v->b ? "true\n" : "false\n");
        break;
    case PC_V_INT:
        pc_json_write_int(out, v->i);
        pc_buf_putc(out, '\n');
        break;
    case PC_V_DOUBLE:
        pc_json_write_double(out, v->d);
        pc_buf_putc(out, '\n');
        break;
    case PC_V_ARRAY:
        for (size_t i = 0; i < v->arr.n; i++)
            put_value(out, &v->arr.v[i], depth + 1);
        break;
    case PC_V_MAP:
        for (size_t i = 0; i < v->map.n; i++)
            put_value(out, &v->map.kv[i].value, depth + 1);
        break;
    default: break;
    }
}

/* Appends the text of the JSON value |p| (|n| bytes; nothing when it does
 * not parse) parsed in |a|; an array of events when |events|: each one's name
 * and attribute values. */
static void put_json(pc_buf *out, pc_arena *a, const char *p, size_t n, bool events)
{
    pc_value v;
    pc_json_error err;
    if (n <= 2 || pc_json_parse(a, p, n, &v, &err) != 0) return; /* "{}", "[]", "" */
    if (!events) {
        put_value(out, &v, 0);
        return;
    }
    if (v.type != PC_V_ARRAY) return;
    for (size_t i = 0; i < v.arr.n; i++) {
        const pc_value *ev = &v.arr.v[i];
        const pc_value *name = pc_json_get(ev, "name");
        const pc_value *at = pc_json_get(ev, "attributes");
        if (name) put_value(out, name, 0);
        if (at) put_value(out, at, 0);
    }
}

void pc_local_search_text(pc_buf *out, const pc_local_text_in *in)
{
    pc_buf_append(out, in->name, in->name_len);
    pc_buf_putc(out, '\n');
    if (in->attrs_len <= 2 && in->events_len <= 2 && in->input_len <= 2 && in->output_len <= 2)
        return;
    pc_arena *a = pc_arena_create(in->attrs_len + in->events_len + in->input_len +
                                  in->output_len + 1024);
    put_json(out, a, in->attrs, in->attrs_len, false);
    put_json(out, a, in->events, in->events_len, true);
    put_json(out, a, in->input, in->input_len, false);
    put_json(out, a, in->output, in->output_len, false);
    pc_arena_destroy(a);
}

/*
 * The search text straight from a decoded span, without writing its JSON and
 * parsing it back: each value appended as its stored JSON parses back (a
 * string as pc_json_write_str writes it and the parser decodes it, a double
 * as pc_fmt_double writes it, NaN and the infinities as the strings the JSON
 * writer makes of them). A part (the attributes, the events) holding a value
 * that round trips less plainly (a string that is not valid UTF-8, bytes,
 * containers nested past DIRECT_DEPTH) is written as JSON and parsed back, so
 * both ways give the same text.
 */
#define DIRECT_DEPTH 32

/* Appends the text of |v| at container depth |depth|; false when |v| needs
 * the JSON way (what was appended is then the caller's to drop). */
static bool put_direct(pc_buf *out, const pc_value *v, int depth)
{
    switch (v->type) {
    case PC_V_STR:
        if (!pc_utf8_valid(v->s.p, v->s.n)) return false;
        pc_buf_append(out, v->s.p, v->s.n);
        pc_buf_putc(out, '\n');
        return true;
    case PC_V_DOUBLE:
        if (isnan(v->d) || isinf(v->d)) {
            pc_buf_puts(out, isnan(v->d) ? "NaN\n" : v->d > 0 ? "Infinity\n" : "-Infinity\n");
            return true;
        }
        put_value(out, v, 0);
        return true;
    case PC_V_BOOL:
    case PC_V_INT: put_value(out, v, 0); return true;
    case PC_V_ARRAY:
        if (depth >= DIRECT_DEPTH) return false;
        for (size_t i = 0; i < v->arr.n; i++)
            if (!put_direct(out, &v->arr.v[i], depth + 1)) return false;
        return true;
    case PC_V_MAP:
        if (depth >= DIRECT_DEPTH) return false;
        for (size_t i = 0; i < v->map.n; i++)
            if (!put_direct(out, &v->map.kv[i].value, depth + 1)) return false;
        return true;
    case PC_V_BYTES: return false; /* stored as base64 text */
    default: return true;          /* null: no text */
    }
}

static bool put_attrs_direct(pc_buf *out, const pc_attrs *at, int depth)
{
    for (size_t i = 0; i < at->n; i++)
        if (!put_direct(out, &at->kv[i].value, depth)) return false;
    return true;
}

void pc_local_span_text(pc_buf *out, const pc_span *s)
{
    pc_buf scratch = PC_BUF_INIT; /* a part's JSON, the rare times it is needed */
    pc_buf_append(out, s->name.p, s->name.n);
    pc_buf_putc(out, '\n');
    pc_arena *a = NULL;
    size_t mark = out->len;
    if (!put_attrs_direct(out, &s->attrs, 1)) {
        out->len = mark;
        pc_attrs_write_json(&scratch, &s->attrs);
        a = pc_arena_create(scratch.len + 1024);
        put_json(out, a, scratch.data, scratch.len, false);
    }
    mark = out->len;
    bool direct = true;
    for (size_t i = 0; i < s->n_events && direct; i++) {
        pc_value name = {.type = PC_V_STR, .s = s->events[i].name};
        direct = put_direct(out, &name, 0) && put_attrs_direct(out, &s->events[i].attrs, 2);
    }
    if (!direct) {
        out->len = mark;
        pc_buf_reset(&scratch);
        pc_events_write_json(&scratch, s->events, s->n_events);
        if (!a) a = pc_arena_create(scratch.len + 1024);
        put_json(out, a, scratch.data, scratch.len, true);
    }
    if (s->input_messages.n > 2 || s->output_messages.n > 2) {
        if (!a) a = pc_arena_create(s->input_messages.n + s->output_messages.n + 1024);
        put_json(out, a, s->input_messages.p, s->input_messages.n, false);
        put_json(out, a, s->output_messages.p, s->output_messages.n, false);
    }
    pc_arena_destroy(a);
    pc_buf_free(&scratch);
    if (out->data) out->data[out->len] = '\0';
}

/* pc_search_text(name, attributes, events[, input_messages, output_messages]) */
static void fn_search_text(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const char *t[5] = {"", "", "", "", ""};
    size_t n[5] = {0};
    for (int i = 0; i < argc && i < 5; i++) {
        t[i] = (const char *)sqlite3_value_text(argv[i]);
        n[i] = t[i] ? (size_t)sqlite3_value_bytes(argv[i]) : 0;
        if (!t[i]) t[i] = "";
    }
    pc_local_text_in in = {t[0], n[0], t[1], n[1], t[2], n[2], t[3], n[3], t[4], n[4]};
    pc_buf out = PC_BUF_INIT;
    pc_local_search_text(&out, &in);
    sqlite3_result_text64(ctx, out.data ? out.data : "", out.len, SQLITE_TRANSIENT, SQLITE_UTF8);
    pc_buf_free(&out);
}

/* ------------------------------------------------------ attribute match -- */

/* False when the key |k| (|kn| bytes) is printable ASCII other than '"' and
 * '\\': the JSON writer copies it as is, so the raw JSON text holds its bytes
 * (a control is escaped, invalid UTF-8 replaced). */
static bool needs_escape(const char *k, size_t kn)
{
    for (size_t i = 0; i < kn; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return true;
    }
    return false;
}

int pc_local_attr_match(const char *attrs, size_t attrs_len, const char *key, size_t key_len,
                        const char *value, size_t value_len)
{
    if (attrs_len <= 2) return 0; /* "{}" */
    /* The key must appear in the text; most spans are ruled out without parsing. */
    if (!needs_escape(key, key_len) && key_len > 0 && !memmem(attrs, attrs_len, key, key_len))
        return 0;
    pc_arena *a = pc_arena_create(attrs_len + 1024);
    pc_value v;
    pc_json_error err;
    int match = 0;
    pc_buf text = PC_BUF_INIT;
    if (pc_json_parse(a, attrs, attrs_len, &v, &err) == 0 && v.type == PC_V_MAP) {
        for (size_t i = 0; i < v.map.n && !match; i++) {
            const pc_kv *kv = &v.map.kv[i];
            if (kv->key.n != key_len || (key_len && memcmp(kv->key.p, key, key_len) != 0))
                continue;
            pc_buf_reset(&text);
            if (!pc_attr_text(&text, &kv->value)) continue;
            match = text.len == value_len &&
                    (value_len == 0 || memcmp(text.data, value, value_len) == 0);
        }
    }
    pc_buf_free(&text);
    pc_arena_destroy(a);
    return match;
}

static void fn_attr_match(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *t[3];
    size_t n[3];
    for (int i = 0; i < 3; i++) {
        t[i] = (const char *)sqlite3_value_text(argv[i]);
        n[i] = t[i] ? (size_t)sqlite3_value_bytes(argv[i]) : 0;
        if (!t[i]) t[i] = "";
    }
    sqlite3_result_int(ctx, pc_local_attr_match(t[0], n[0], t[1], n[1], t[2], n[2]));
}

/* ------------------------------------------------------- the tokenizer -- */

/*
 * pc_trigram, the FTS5 tokenizer of span_text: every 3 consecutive code
 * points (folded by pc_local_fold) of a line ('\n' ends a line: no trigram
 * spans two values), each once per document. A token is the trigram's folded
 * UTF-8 followed by 3 bytes of a hash of it (0x40-0x7F): FTS5's in-memory
 * hash of pending terms mixes short keys poorly (3-byte keys collide into
 * long chains), and those bytes spread them. The token format (folding,
 * key_hash) is part of schema 3: changing it needs a new schema version that
 * rebuilds span_text. Why not the built-in trigram
 * tokenizer: at 1.5 KB of prompt per span it cost about 80 us per span
 * (measured), more than the rest of the write; this one emits each distinct
 * trigram once and lands in short chains.
 */
#define TRI_MAX 12 /* 3 code points, at most 4 bytes each */

/* A trigram as a key: its three folded code points, 21 bits each, and bit 63
 * set (never 0: the empty slot). */
#define CP_BITS 21
#define CP_MASK ((1ull << CP_BITS) - 1)
#define KEY_USED (1ull << 63)

/* The distinct trigrams of one document: open addressing, below half full. */
typedef struct tri_set {
    uint64_t *slot;
    size_t cap, used;
} tri_set;

/* splitmix64's finalizer: every key bit reaches the low bits the set indexes by. */
static uint64_t key_hash(uint64_t k)
{
    k ^= k >> 30;
    k *= 0xBF58476D1CE4E5B9ull;
    k ^= k >> 27;
    k *= 0x94D049BB133111EBull;
    return k ^ (k >> 31);
}

/* True when |k| (hash |h|) was in |set|; else adds it. */
static bool tri_seen(tri_set *set, uint64_t k, uint64_t h)
{
    if (2 * (set->used + 1) > set->cap) { /* grow and rehash */
        size_t cap = set->cap ? 2 * set->cap : 1024;
        uint64_t *slot = pc_xcalloc(cap, sizeof(*slot));
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slot[i]) continue;
            size_t j = (size_t)key_hash(set->slot[i]) & (cap - 1);
            while (slot[j])
                j = (j + 1) & (cap - 1);
            slot[j] = set->slot[i];
        }
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    size_t j = (size_t)h & (set->cap - 1);
    while (set->slot[j]) {
        if (set->slot[j] == k) return true;
        j = (j + 1) & (set->cap - 1);
    }
    set->slot[j] = k;
    set->used++;
    return false;
}

size_t pc_local_utf8_put(uint32_t c, unsigned char *o)
{
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | ((c >> 18) & 0x07));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* The code point at |p| (|n| > 0 bytes), its length in *len; a malformed byte is itself. */
static uint32_t utf8_get(const unsigned char *p, size_t n, size_t *len)
{
    unsigned char b = p[0];
    size_t l = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3
                                 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (l == 1 || l == 0 || l > n) {
        *len = 1;
        return b;
    }
    uint32_t c = b & (0x7F >> l);
    for (size_t i = 1; i < l; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *len = 1;
            return b;
        }
        c = (c << 6) | (p[i] & 0x3F);
    }
    *len = l;
    return c;
}

/* A tokenizer instance: one per FTS5 table of a connection, and a connection
 * runs one statement at a time, so its set needs no lock. */
typedef struct tok_state {
    pc_local_keyset seen; /* the trigrams of the document being tokenized */
} tok_state;

static int tok_create(void *ud, const char **args, int n, Fts5Tokenizer **out)
{
    (void)ud;
    (void)args;
    (void)n;
    tok_state *t = pc_xcalloc(1, sizeof(*t));
    t->seen = (pc_local_keyset)PC_LOCAL_KEYSET_INIT;
    *out = (Fts5Tokenizer *)t;
    return SQLITE_OK;
}

static void tok_delete(Fts5Tokenizer *t)
{
    tok_state *st = (tok_state *)t;
    pc_local_keyset_free(&st->seen);
    free(st);
}

static bool keyset_insert(pc_local_keyset *set, uint64_t key);

typedef int (*token_fn)(void *ctx, int tflags, const char *tok, int n, int start, int end);

/*
 * The scan of pc_trigram and of the trigram keys: one folded code point at a
 * time, the last three of the line kept in |win| (oldest in the high bits)
 * with their start offsets in a ring.
 */
typedef struct key_walk {
    const unsigned char *p;
    size_t n, i;
    uint64_t win;
    size_t at[3];
    int have;
    unsigned r; /* ring slot of the next code point */
} key_walk;

/* The next trigram's key into *key, its first byte's offset into *start;
 * false at the end of the text. */
static bool key_next(key_walk *w, uint64_t *key, size_t *start)
{
    while (w->i < w->n) {
        size_t len = 1, at = w->i;
        uint32_t c = w->p[w->i];
        if (c < 0x80) /* ASCII: the common case, folded inline */
            c = c >= 'A' && c <= 'Z' ? c + 32 : c;
        else
            c = pc_local_fold(utf8_get(w->p + w->i, w->n - w->i, &len));
        w->i += len;
        if (c == '\n') {
            w->have = 0;
            continue;
        }
        w->win = ((w->win << CP_BITS) | c) &
                 (CP_MASK << 2 * CP_BITS | CP_MASK << CP_BITS | CP_MASK);
        w->at[w->r] = at;
        w->r = (w->r + 1) % 3;
        if (++w->have < 3) continue;
        *key = w->win | KEY_USED;
        *start = w->at[w->r]; /* the oldest of the three */
        return true;
    }
    return false;
}

static int tok_tokenize(Fts5Tokenizer *t, void *ctx, int flags, const char *text, int ntext,
                        token_fn emit)
{
    bool dedup = (flags & FTS5_TOKENIZE_DOCUMENT) != 0;
    pc_local_keyset *seen = &((tok_state *)t)->seen;
    key_walk w = {.p = (const unsigned char *)text, .n = ntext > 0 ? (size_t)ntext : 0};
    uint64_t key;
    size_t start;
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK && key_next(&w, &key, &start)) {
        uint64_t h = key_hash(key);
        if (dedup && !keyset_insert(seen, key)) continue;
        /* the token: the trigram's folded UTF-8, oldest code point first, then the hash bytes */
        unsigned char tok[TRI_MAX + 3];
        size_t tl = 0;
        for (int k = 2; k >= 0; k--) {
            uint32_t cp = (uint32_t)(key >> (k * CP_BITS) & CP_MASK);
            if (cp < 0x80)
                tok[tl++] = (unsigned char)cp;
            else
                tl += pc_local_utf8_put(cp, tok + tl);
        }
        tok[tl++] = (unsigned char)(0x40 | (h & 0x3F));
        tok[tl++] = (unsigned char)(0x40 | ((h >> 6) & 0x3F));
        tok[tl++] = (unsigned char)(0x40 | ((h >> 12) & 0x3F));
        rc = emit(ctx, 0, (const char *)tok, (int)tl, (int)start, (int)w.i);
    }
    if (dedup) pc_local_keyset_clear(seen);
    return rc;
}

/* ------------------------------------------------------- trigram keys -- */

/* Trigrams of three ASCII code points (most of any English text) are bits of
 * set->ascii, indexed by the code points' 7 bits each: one access, no hash,
 * no probing, and 256 KB for every such trigram, where a hash set of the few
 * thousand distinct keys of a request's text kept missing the cache (measured
 * by bench/search_keys_bench). The rest go to the hash set. Both are kept
 * across clears (the tokenizer's set lives as long as its FTS5 table's
 * connection), and a clear touches only the keys held. */
#define ASCII_KEY(k) (((k) & ~(KEY_USED | 0x7Full << 2 * CP_BITS | 0x7Full << CP_BITS | 0x7F)) == 0)
#define ASCII_BIT(k) ((size_t)(((k) >> 2 * CP_BITS & 0x7F) << 14 | ((k) >> CP_BITS & 0x7F) << 7 | ((k) & 0x7F)))
#define ASCII_WORDS ((size_t)1 << (21 - 6))

/* Adds |key| to |set| unless it holds it: true when it was added. */
static bool keyset_insert(pc_local_keyset *set, uint64_t key)
{
    if (ASCII_KEY(key)) {
        if (!set->ascii) set->ascii = pc_xcalloc(ASCII_WORDS, sizeof(*set->ascii));
        size_t b = ASCII_BIT(key);
        uint64_t *w = &set->ascii[b >> 6], m = 1ull << (b & 63);
        if (*w & m) return false;
        *w |= m;
    } else {
        tri_set ts = {set->slot, set->cap, set->wide};
        bool seen = tri_seen(&ts, key, key_hash(key));
        set->slot = ts.slot;
        set->cap = ts.cap;
        if (seen) return false;
        set->wide++;
    }
    if (set->n == set->key_cap) {
        set->key_cap = set->key_cap ? 2 * set->key_cap : 1024;
        set->key = pc_xrealloc(set->key, set->key_cap * sizeof(*set->key));
    }
    set->key[set->n++] = key;
    return true;
}

void pc_local_keyset_add_text(pc_local_keyset *set, const char *text, size_t n)
{
    key_walk w = {.p = (const unsigned char *)text, .n = n};
    uint64_t key;
    size_t start;
    while (key_next(&w, &key, &start))
        keyset_insert(set, key);
}

void pc_local_keyset_add_keys(pc_local_keyset *set, const uint64_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        keyset_insert(set, keys[i]);
}

void pc_local_keyset_clear(pc_local_keyset *set)
{
    if (set->ascii) /* the bits of the keys it holds: less than the whole bitmap */
        for (size_t i = 0; i < set->n; i++)
            if (ASCII_KEY(set->key[i])) set->ascii[ASCII_BIT(set->key[i]) >> 6] = 0;
    if (set->wide) memset(set->slot, 0, set->cap * sizeof(*set->slot));
    set->n = set->wide = 0;
}

void pc_local_keyset_free(pc_local_keyset *set)
{
    free(set->ascii);
    free(set->slot);
    free(set->key);
    *set = (pc_local_keyset)PC_LOCAL_KEYSET_INIT;
}

static fts5_tokenizer trigram_tokenizer = {tok_create, tok_delete, tok_tokenize};

/* FTS5's API of |db| (NULL when FTS5 is missing). */
static fts5_api *fts5_of(sqlite3 *db)
{
    fts5_api *api = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return api;
}

int pc_local_text_register(sqlite3 *db)
{
    int rc = sqlite3_create_function_v2(db, "pc_search_text", 3,
                                        SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_search_text,
                                        NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "pc_search_text", 5,
                                        SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_search_text,
                                        NULL, NULL, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_create_function_v2(db, "pc_attr_match", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                    NULL, fn_attr_match, NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = pc_local_zip_register(db);
    if (rc == SQLITE_OK) rc = pc_local_bloom_register(db);
    if (rc != SQLITE_OK) return rc;
    fts5_api *api = fts5_of(db);
    if (!api) return SQLITE_ERROR;
    static int token; /* a non-NULL, stateless tokenizer instance */
    return api->xCreateTokenizer(api, "pc_trigram", &token, &trigram_tokenizer, NULL);
}

/* --------------------------------------------------------- case folding -- */

uint32_t pc_local_fold(uint32_t c)
{
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c >= 0x100 && c <= 0x17F) {
        if ((c <= 0x12F || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) &&
            c % 2 == 0)
            return c + 1;
        if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && c % 2 == 1)
            return c + 1;
        if (c == 0x178) return 0xFF;
        return c;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

/* -------------------------------------------------------- FTS5 queries -- */

static uint32_t utf8_get(const unsigned char *p, size_t n, size_t *len);

/* Bytes of the code point at |q| + |i| as pc_trigram splits it. */
static size_t cp_len(const char *q, size_t n, size_t i)
{
    size_t len;
    utf8_get((const unsigned char *)q + i, n - i, &len);
    return len;
}

int pc_local_fts_query(pc_buf *out, const char *q, size_t n)
{
    pc_buf_reset(out);
    if (memchr(q, '\n', n)) return 0; /* the index has no trigram across a line end */
    /* Start offsets of the code points (at most 4 bytes each, clipped). */
    size_t cps = 0;
    for (size_t i = 0; i < n; i += cp_len(q, n, i))
        cps++;
    if (cps < 3) return 0;
    size_t *off = pc_xmalloc((cps + 1) * sizeof(*off));
    size_t k = 0;
    for (size_t i = 0; i < n; i += cp_len(q, n, i))
        off[k++] = i;
    off[cps] = n;
    size_t grams = cps - 2, want = grams < PC_LOCAL_FTS_TRIGRAMS ? grams : PC_LOCAL_FTS_TRIGRAMS;
    int emitted = 0;
    size_t prev = (size_t)-1;
    for (size_t j = 0; j < want; j++) {
        size_t g = want == 1 ? 0 : j * (grams - 1) / (want - 1); /* first and last included */
        if (g == prev) continue;
        prev = g;
        size_t from = off[g], to = off[g + 3];
        if (emitted) pc_buf_lit(out, " AND ");
        pc_buf_putc(out, '"');
        for (size_t i = from; i < to; i++) {
            if (q[i] == '"') pc_buf_putc(out, '"');
            pc_buf_putc(out, q[i]);
        }
        pc_buf_putc(out, '"');
        emitted++;
    }
    free(off);
    return emitted;
}

int pc_local_query_keys(const char *q, size_t n, uint64_t *keys, int max)
{
    if (max <= 0 || memchr(q, '\n', n)) return 0;
    /* every trigram's key, in order (the query has no line end: the i-th key
     * is the trigram starting at code point i) */
    uint64_t *all = pc_xmalloc((n + 1) * sizeof(*all));
    size_t grams = 0, start;
    key_walk w = {.p = (const unsigned char *)q, .n = n};
    while (key_next(&w, &all[grams], &start))
        grams++;
    size_t want = grams < (size_t)max ? grams : (size_t)max;
    int got = 0;
    for (size_t j = 0; j < want; j++) {
        uint64_t k = all[want == 1 ? 0 : j * (grams - 1) / (want - 1)]; /* first and last */
        bool dup = false;
        for (int i = 0; i < got && !dup; i++)
            dup = keys[i] == k;
        if (!dup) keys[got++] = k;
    }
    free(all);
    return got;
}

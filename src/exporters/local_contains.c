/*
 * local_contains.c - pc_contains and pc_span_match for the embedded store's
 * search (see local_contains.h).
 *
 * Knuth-Morris-Pratt over case-folded UTF-8 (pc_local_fold, local_text.h: the
 * folding of the FTS5 index, so a candidate the index finds is verified
 * under the same rule): both sides are decoded code point by code point,
 * folded and re-encoded, and the bytes matched; UTF-8 being self-synchronizing,
 * a byte match of well-formed text is a code-point match. A stray byte is
 * matched as itself. O(len(text) + len(needle)) whatever the input. The
 * needle's failure table is built once per statement and kept as SQLite
 * auxiliary data of the needle's argument (SQLite may drop it at any time;
 * then the next row builds it again). An ASCII needle skips the decoding:
 * ascii_contains scans the raw bytes ignoring ASCII case, and pc_span_match
 * first runs it over a span's stored bytes when raw_safe says those bytes
 * can rule the needle out.
 */
#include "local_contains.h"

#include "local_text.h"
#include "mem.h"

#include <string.h>

#include <stdbool.h>
#include <stdlib.h>

#define CHECK_EVERY 65536 /* bytes of text between deadline checks */

typedef struct deadline {
    int (*past)(void *ud);
    void *ud;
} deadline;

typedef struct pc_local_needle {
    size_t n;
    unsigned char *p; /* lowercased */
    size_t *fail;     /* KMP failure function */
    bool raw_ok;      /* pc_span_match may rule a span out by its stored bytes */
    bool ascii;       /* every byte of p is ASCII: ascii_contains answers */
} pc_local_needle;
typedef pc_local_needle needle;

/*
 * Decodes the code point at |t| (|n| > 0 bytes left) into *cp and returns its
 * length; a malformed sequence is one byte, returned as 0x110000 + byte (never
 * a real code point, never folded, re-encoded as that byte).
 */
static size_t decode(const unsigned char *t, size_t n, uint32_t *cp)
{
    unsigned char b = t[0];
    size_t len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3
                                 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 1) {
        *cp = b;
        return 1;
    }
    if (len == 0 || len > n) goto stray;
    uint32_t c = b & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((t[i] & 0xC0) != 0x80) goto stray;
        c = (c << 6) | (t[i] & 0x3F);
    }
    *cp = c;
    return len;
stray:
    *cp = 0x110000 + b;
    return 1;
}

/* Writes the folded form of |cp| to |o| (4 bytes of room); returns its length. */
static size_t encode_folded(uint32_t cp, unsigned char *o)
{
    if (cp >= 0x110000) { /* a stray byte: itself */
        o[0] = (unsigned char)(cp - 0x110000);
        return 1;
    }
    return pc_local_utf8_put(pc_local_fold(cp), o);
}

static void needle_free(void *p)
{
    needle *nd = p;
    if (!nd) return;
    free(nd->p);
    free(nd->fail);
    free(nd);
}

/*
 * Whether a span's stored bytes can rule out the folded needle |p| (|n|
 * bytes): when it is printable ASCII without '"', '\\' or '/' and has a byte
 * that no number's text has (outside 0-9 . e E + -, and no part of "-infinity"
 * or "nan", the JSON writer's text of a number out of range). The search text is the
 * span's name and the decoded values of its JSON columns, numbers written
 * again by the JSON writer. Such a needle never crosses a value (no line
 * end), never matches inside a number written again (whose text could differ
 * from the stored one), and its bytes are stored as they are: the writer
 * escapes only '"', '\\' and controls; a stored "\\/" decodes to '/', which
 * the needle lacks; a "\\u" escape could hide any byte, so a column holding
 * one is read the slow way; and folding maps no other code point to ASCII.
 * So if the search text holds the needle, some column's bytes hold it too,
 * ignoring ASCII case.
 */
static bool raw_safe(const unsigned char *p, size_t n)
{
    bool word = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c < 0x20 || c > 0x7E || c == '"' || c == '\\' || c == '/') return false;
        if (!strchr("0123456789.eE+-", c)) word = true;
    }
    char folded[16];
    if (n < sizeof(folded)) {
        memcpy(folded, p, n);
        folded[n] = '\0';
        if (strstr("-infinity", folded) || strstr("nan", folded)) return false;
    }
    return word;
}

static needle *needle_make(const unsigned char *s, size_t n)
{
    needle *nd = pc_xcalloc(1, sizeof(*nd));
    nd->n = n;
    /* folded: at most 4 bytes per input byte (a stray byte stays 1) */
    nd->p = pc_xmalloc(4 * n + 1);
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += decode(s + i, n - i, &cp);
        m += encode_folded(cp, nd->p + m);
    }
    nd->n = n = m;
    nd->fail = pc_xmalloc((n + 1) * sizeof(size_t));
    size_t k = 0;
    nd->fail[0] = 0;
    for (size_t i = 1; i < n; i++) {
        while (k > 0 && nd->p[i] != nd->p[k])
            k = nd->fail[k - 1];
        if (nd->p[i] == nd->p[k]) k++;
        nd->fail[i] = k;
    }
    nd->raw_ok = raw_safe(nd->p, nd->n);
    nd->ascii = true;
    for (size_t i = 0; i < n; i++)
        if (nd->p[i] >= 0x80) nd->ascii = false;
    return nd;
}

/*
 * An ASCII needle (folded: no capital) occurs in a text's folded form
 * exactly where it occurs in the text's bytes ignoring ASCII case: folding
 * maps no other code point to ASCII (pc_local_fold), a multi-byte code point
 * has no ASCII byte, and a stray byte stays itself (>= 0x80). So the text
 * need not be decoded: ascii_contains compares 16 positions a step, the
 * needle's first and last bytes at once (x | 0x20 equals for both cases of
 * a letter, and for a few other pairs: a candidate is then compared in
 * full), about 20x the decoding matcher's speed on prose.
 */
typedef unsigned char v16 __attribute__((vector_size(16)));

/* Whether the |n| bytes at |t| are the lower-case ASCII |p| ignoring case. */
static bool ascii_eq(const unsigned char *t, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = t[i] >= 'A' && t[i] <= 'Z' ? t[i] + 32 : t[i];
        if (c != p[i]) return false;
    }
    return true;
}

/* Whether |nd| (ascii) occurs in |t| (|tn| bytes) ignoring ASCII case, by
 * the KMP automaton (linear whatever the text): 1, 0, or -1 past the
 * deadline |dl|. */
static int kmp_ascii(const deadline *dl, const needle *nd, const unsigned char *t, size_t tn)
{
    size_t k = 0, next_check = CHECK_EVERY;
    for (size_t i = 0; i < tn; i++) {
        if (i >= next_check) {
            if (dl->past(dl->ud)) return -1;
            next_check = i + CHECK_EVERY;
        }
        unsigned char c = t[i] >= 'A' && t[i] <= 'Z' ? t[i] + 32 : t[i];
        while (k > 0 && c != nd->p[k])
            k = nd->fail[k - 1];
        if (c == nd->p[k]) k++;
        if (k == nd->n) return 1;
    }
    return 0;
}

/* Whether |nd| (ascii) occurs in |t| (|tn| bytes) ignoring ASCII case: 1, 0,
 * or -1 past the deadline |dl|. When candidates cost more than a few bytes
 * compared per byte of text (a text built to look like the needle), the
 * rest goes to kmp_ascii, so the work stays linear. */
static int ascii_contains(const deadline *dl, const needle *nd, const unsigned char *t,
                          size_t tn)
{
    size_t n = nd->n;
    if (n == 0) return 1;
    if (tn < n) return 0;
    size_t last = n - 1, end = tn - last; /* positions 0 .. end - 1 */
    v16 lo, first, final;
    for (int j = 0; j < 16; j++) {
        lo[j] = 0x20;
        first[j] = nd->p[0] | 0x20;
        final[j] = nd->p[last] | 0x20;
    }
    size_t i = 0, next_check = CHECK_EVERY, compared = 0;
    for (; i + 16 <= end; i += 16) {
        if (i >= next_check) {
            if (dl->past(dl->ud)) return -1;
            next_check = i + CHECK_EVERY;
        }
        v16 a, b;
        memcpy(&a, t + i, 16);
        memcpy(&b, t + i + last, 16);
        v16 hit = (v16)((a | lo) == first) & (v16)((b | lo) == final);
        uint64_t h[2];
        memcpy(h, &hit, 16);
        if ((h[0] | h[1]) == 0) continue;
        if (compared > 4 * i + 4096) return kmp_ascii(dl, nd, t + i, tn - i);
        for (size_t j = 0; j < 16; j++) {
            if (!hit[j]) continue;
            compared += n;
            if (ascii_eq(t + i + j, nd->p, n)) return 1;
        }
    }
    return kmp_ascii(dl, nd, t + i, tn - i); /* the last positions */
}

/* Whether |nd| occurs in |t| (|tn| bytes): 1, 0, or -1 past the deadline |dl|. */
static int contains(const deadline *dl, const needle *nd, const unsigned char *t, size_t tn)
{
    if (nd->ascii) return ascii_contains(dl, nd, t, tn);
    if (nd->n == 0) return 1;
    size_t k = 0;
    size_t next_check = CHECK_EVERY;
    for (size_t i = 0; i < tn;) {
        if (i >= next_check) {
            if (dl->past(dl->ud)) return -1;
            next_check = i + CHECK_EVERY;
        }
        uint32_t cp;
        unsigned char f[4];
        i += decode(t + i, tn - i, &cp);
        size_t fl = encode_folded(cp, f);
        for (size_t j = 0; j < fl; j++) {
            unsigned char c = f[j];
            while (k > 0 && c != nd->p[k])
                k = nd->fail[k - 1];
            if (c == nd->p[k]) k++;
            if (k == nd->n) return 1;
        }
    }
    return 0;
}

/* The needle of argument |arg|, from SQLite's auxiliary data or built
 * (*|fresh| set: the caller hands it to sqlite3_set_auxdata last). */
static needle *needle_of(sqlite3_context *ctx, sqlite3_value **argv, int arg, bool *fresh)
{
    needle *nd = sqlite3_get_auxdata(ctx, arg);
    *fresh = !nd;
    if (!nd) {
        const unsigned char *s = sqlite3_value_text(argv[arg]);
        nd = needle_make(s ? s : (const unsigned char *)"", (size_t)sqlite3_value_bytes(argv[arg]));
    }
    return nd;
}

/* pc_span_match(needle, name, attributes, events, input_messages, output_messages) */
static void fn_span_match(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const deadline *dl = sqlite3_user_data(ctx);
    bool fresh;
    needle *nd = needle_of(ctx, argv, 0, &fresh);
    const char *t[5] = {"", "", "", "", ""};
    size_t n[5] = {0};
    for (int i = 1; i < argc && i <= 5; i++) {
        const char *v = (const char *)sqlite3_value_text(argv[i]);
        if (v) {
            t[i - 1] = v;
            n[i - 1] = (size_t)sqlite3_value_bytes(argv[i]);
        }
    }
    int r = 0;
    bool maybe = !nd->raw_ok;
    for (int i = 0; i < 5 && !maybe && r >= 0; i++) {
        r = ascii_contains(dl, nd, (const unsigned char *)t[i], n[i]); /* raw_ok: ASCII */
        maybe = r == 1 || (n[i] >= 2 && memmem(t[i], n[i], "\\u", 2));
    }
    if (maybe && r >= 0) {
        pc_local_text_in in = {t[0], n[0], t[1], n[1], t[2], n[2], t[3], n[3], t[4], n[4]};
        pc_buf text = PC_BUF_INIT;
        pc_local_search_text(&text, &in);
        r = contains(dl, nd, (const unsigned char *)(text.data ? text.data : ""), text.len);
        pc_buf_free(&text);
    }
    if (r < 0) sqlite3_result_error(ctx, "query time limit reached", -1);
    else sqlite3_result_int(ctx, r);
    /* last: SQLite may free it at once */
    if (fresh) sqlite3_set_auxdata(ctx, 0, nd, needle_free);
}

static void fn_contains(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const deadline *dl = sqlite3_user_data(ctx);
    bool fresh;
    needle *nd = needle_of(ctx, argv, 1, &fresh);
    const unsigned char *t = sqlite3_value_text(argv[0]);
    int r = t ? contains(dl, nd, t, (size_t)sqlite3_value_bytes(argv[0])) : 0;
    if (r < 0) sqlite3_result_error(ctx, "query time limit reached", -1);
    else sqlite3_result_int(ctx, r);
    /* last: SQLite may free it at once */
    if (fresh) sqlite3_set_auxdata(ctx, 1, nd, needle_free);
}

int pc_local_contains_register(sqlite3 *db, int (*past_deadline)(void *ud), void *ud)
{
    /* one deadline per function: each registration frees its own */
    deadline *dl[2];
    for (int i = 0; i < 2; i++) {
        dl[i] = pc_xmalloc(sizeof(*dl[i]));
        dl[i]->past = past_deadline;
        dl[i]->ud = ud;
    }
    int rc = sqlite3_create_function_v2(db, "pc_contains", 2, SQLITE_UTF8, dl[0], fn_contains,
                                        NULL, NULL, free);
    if (rc == SQLITE_OK)
        return sqlite3_create_function_v2(db, "pc_span_match", 6, SQLITE_UTF8, dl[1],
                                          fn_span_match, NULL, NULL, free);
    free(dl[1]);
    return rc;
}

/* ------------------------------------------------ outside SQLite -- */

static int never_past(void *ud)
{
    (void)ud;
    return 0;
}

pc_local_needle *pc_local_needle_create(const char *s, size_t n)
{
    return needle_make((const unsigned char *)s, n);
}

int pc_local_needle_in(const pc_local_needle *nd, const char *t, size_t tn)
{
    static const deadline none = {never_past, NULL};
    return contains(&none, nd, (const unsigned char *)t, tn) == 1;
}

void pc_local_needle_destroy(pc_local_needle *nd)
{
    needle_free(nd);
}

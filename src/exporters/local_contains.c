/*
 * local_contains.c - pc_contains for the embedded store's search (see
 * local_contains.h).
 *
 * Knuth-Morris-Pratt over case-folded UTF-8 (pc_local_fold, local_text.h: the
 * folding of the FTS5 index, so a candidate the index finds is verified
 * under the same rule): both sides are decoded code point by code point,
 * folded and re-encoded, and the bytes matched; UTF-8 being self-synchronizing,
 * a byte match of well-formed text is a code-point match. A stray byte is
 * matched as itself. O(len(text) + len(needle)) whatever the input. The
 * needle's failure table is built once per statement and kept as SQLite auxiliary data of argument 1 (SQLite may drop it at any
 * time; then the next row builds it again).
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
    return nd;
}

/* Whether |nd| occurs in |t| (|tn| bytes): 1, 0, or -1 past the deadline |dl|. */
static int contains(const deadline *dl, const needle *nd, const unsigned char *t, size_t tn)
{
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

static void fn_contains(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const deadline *dl = sqlite3_user_data(ctx);
    needle *nd = sqlite3_get_auxdata(ctx, 1);
    bool fresh = !nd;
    if (fresh) {
        const unsigned char *s = sqlite3_value_text(argv[1]);
        nd = needle_make(s ? s : (const unsigned char *)"", (size_t)sqlite3_value_bytes(argv[1]));
    }
    const unsigned char *t = sqlite3_value_text(argv[0]);
    int r = t ? contains(dl, nd, t, (size_t)sqlite3_value_bytes(argv[0])) : 0;
    if (r < 0) sqlite3_result_error(ctx, "query time limit reached", -1);
    else sqlite3_result_int(ctx, r);
    /* last: SQLite may free it at once */
    if (fresh) sqlite3_set_auxdata(ctx, 1, nd, needle_free);
}

int pc_local_contains_register(sqlite3 *db, int (*past_deadline)(void *ud), void *ud)
{
    deadline *dl = pc_xmalloc(sizeof(*dl));
    dl->past = past_deadline;
    dl->ud = ud;
    return sqlite3_create_function_v2(db, "pc_contains", 2, SQLITE_UTF8,
                                      dl, fn_contains, NULL, NULL, free);
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

/*
 * local_contains.c - pc_contains for the embedded store's search (see
 * local_contains.h).
 *
 * Knuth-Morris-Pratt over ASCII-lowercased bytes: O(len(text) + len(needle))
 * whatever the input. The needle's failure table is built once per statement
 * and kept as SQLite auxiliary data of argument 1 (SQLite may drop it at any
 * time; then the next row builds it again).
 */
#include "local_contains.h"

#include "mem.h"

#include <stdbool.h>
#include <stdlib.h>

#define CHECK_EVERY 65536 /* bytes of text between deadline checks */

typedef struct deadline {
    int (*past)(void *ud);
    void *ud;
} deadline;

typedef struct needle {
    size_t n;
    unsigned char *p; /* lowercased */
    size_t *fail;     /* KMP failure function */
} needle;

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
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
    nd->p = pc_xmalloc(n + 1);
    nd->fail = pc_xmalloc((n + 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        nd->p[i] = lower(s[i]);
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
    for (size_t i = 0; i < tn; i++) {
        if (i % CHECK_EVERY == CHECK_EVERY - 1 && dl->past(dl->ud)) return -1;
        unsigned char c = lower(t[i]);
        while (k > 0 && c != nd->p[k])
            k = nd->fail[k - 1];
        if (c == nd->p[k]) k++;
        if (k == nd->n) return 1;
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

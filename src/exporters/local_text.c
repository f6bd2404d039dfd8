/*
 * local_text.c - the embedded store's search text, case folding and FTS5
 * trigram queries (see local_text.h for the contracts).
 *
 * The search text is derived from the stored JSON (parsed with json.h into a
 * scratch arena), never from the decoded span, so the writer, retention and
 * the migration all compute it the same way from what the row holds.
 */
#include "local_text.h"

#include "arena.h"
#include "json.h"
#include "mem.h"
#include "span.h"

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

void pc_local_search_text(pc_buf *out, const char *name, size_t name_len, const char *attrs,
                          size_t attrs_len, const char *events, size_t events_len)
{
    pc_buf_append(out, name, name_len);
    pc_buf_putc(out, '\n');
    if (attrs_len <= 2 && events_len <= 2) return; /* "{}" and "[]": nothing to parse */
    pc_arena *a = pc_arena_create(attrs_len + events_len + 1024);
    pc_value v;
    pc_json_error err;
    if (attrs_len > 2 && pc_json_parse(a, attrs, attrs_len, &v, &err) == 0) put_value(out, &v, 0);
    if (events_len > 2 && pc_json_parse(a, events, events_len, &v, &err) == 0 &&
        v.type == PC_V_ARRAY) {
        for (size_t i = 0; i < v.arr.n; i++) {
            const pc_value *ev = &v.arr.v[i];
            const pc_value *n = pc_json_get(ev, "name");
            const pc_value *at = pc_json_get(ev, "attributes");
            if (n) put_value(out, n, 0);
            if (at) put_value(out, at, 0);
        }
    }
    pc_arena_destroy(a);
}

static void fn_search_text(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *t[3];
    size_t n[3];
    for (int i = 0; i < 3; i++) {
        t[i] = (const char *)sqlite3_value_text(argv[i]);
        n[i] = t[i] ? (size_t)sqlite3_value_bytes(argv[i]) : 0;
        if (!t[i]) t[i] = "";
    }
    pc_buf out = PC_BUF_INIT;
    pc_local_search_text(&out, t[0], n[0], t[1], n[1], t[2], n[2]);
    sqlite3_result_text64(ctx, out.data ? out.data : "", out.len, SQLITE_TRANSIENT, SQLITE_UTF8);
    pc_buf_free(&out);
}

int pc_local_text_register(sqlite3 *db)
{
    return sqlite3_create_function_v2(db, "pc_search_text", 3,
                                      SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_search_text,
                                      NULL, NULL, NULL);
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

/* Length of the UTF-8 sequence starting with |b| (1 for a stray byte). */
static size_t seq_len(unsigned char b)
{
    return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

int pc_local_fts_query(pc_buf *out, const char *q, size_t n)
{
    pc_buf_reset(out);
    /* Start offsets of the code points (at most 4 bytes each, clipped). */
    size_t cps = 0;
    for (size_t i = 0; i < n; i += seq_len((unsigned char)q[i]))
        cps++;
    if (cps < 3) return 0;
    size_t *off = pc_xmalloc((cps + 1) * sizeof(*off));
    size_t k = 0;
    for (size_t i = 0; i < n; i += seq_len((unsigned char)q[i]))
        off[k++] = i;
    off[cps] = n;
    size_t grams = cps - 2, want = grams < PC_LOCAL_FTS_TRIGRAMS ? grams : PC_LOCAL_FTS_TRIGRAMS;
    int emitted = 0;
    size_t prev = (size_t)-1;
    for (size_t j = 0; j < want; j++) {
        size_t g = want == 1 ? 0 : j * (grams - 1) / (want - 1); /* first and last included */
        if (g == prev) continue;
        prev = g;
        size_t from = off[g], to = off[g + 3] < n ? off[g + 3] : n;
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

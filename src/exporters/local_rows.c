/*
 * local_rows.c - a batch's span rows encoded for the embedded store's writer
 * (see local_rows.h): in consume()'s thread, before the batch is queued.
 */
#include "local_rows.h"

#include "local_text.h"

#include "arena.h"
#include "budget.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

/* Appends the JSON |p| (|n| bytes) to |rows| as the column |c|: packed with
 * |z| when it gains (NULL |z|: LATER), else as text. |last| is the column's
 * previous value in the batch (its text and the column it became): an equal
 * value shares its bytes. */
static void put_col(pc_local_rows *rows, pc_local_zip_ctx *z, pc_local_col *c, const char *p,
                    size_t n, pc_buf *last, pc_local_col *last_col)
{
    if (n >= PC_LOCAL_ZIP_MIN && n == last->len && memcmp(p, last->data, n) == 0) {
        *c = *last_col;
        return;
    }
    pc_buf *b = &rows->bytes;
    size_t off = b->len;
    int r = pc_local_zip_encode(z, p, n, b);
    if (r == 1) {
        *c = (pc_local_col){off, b->len - off, PC_COL_ZIPPED};
    } else {
        pc_buf_append(b, p, n);
        *c = (pc_local_col){off, n, r == 0 ? PC_COL_TEXT : PC_COL_LATER};
    }
    pc_buf_reset(last);
    if (n >= PC_LOCAL_ZIP_MIN) pc_buf_append(last, p, n);
    *last_col = *c;
}

/* Column |c| of span |s| (local_rows.h's order): its JSON written into
 * |json| (reset), or the span's own messages text. */
static pc_str column(pc_buf *json, const pc_span *s, int c)
{
    pc_buf_reset(json);
    switch (c) {
    case 0: pc_attrs_write_json(json, &s->attrs); break;
    case 1: pc_events_write_json(json, s->events, s->n_events); break;
    case 2: pc_links_write_json(json, s->links, s->n_links); break;
    case 3: pc_attrs_write_json(json, s->resource ? s->resource : &pc_empty_attrs); break;
    case 4: pc_scope_write_json(json, s->scope ? s->scope : &pc_empty_scope); break;
    case 5: return s->input_messages.p ? s->input_messages : PC_STR_LIT("");
    default: return s->output_messages.p ? s->output_messages : PC_STR_LIT("");
    }
    return (pc_str){json->data, json->len};
}

pc_local_rows *pc_local_rows_encode(const pc_batch *b, pc_local_zip *z)
{
    pc_local_rows *rows = pc_xcalloc(1, sizeof(*rows));
    rows->n = b->n;
    rows->row = pc_xcalloc(b->n ? b->n : 1, sizeof(*rows->row));
    pc_buf json = PC_BUF_INIT;
    pc_buf last[PC_LOCAL_COLS] = {PC_BUF_INIT};
    pc_local_col last_col[PC_LOCAL_COLS];
    pc_local_zip_ctx *zc = pc_local_zip_borrow(z); /* one context for the batch */
    for (size_t i = 0; i < b->n; i++) {
        const pc_span *s = &b->spans[i];
        pc_local_row *r = &rows->row[i];
        if (s->carrier) continue; /* its events are written apart (local_events.h) */
        for (int c = 0; c < PC_LOCAL_COLS; c++) {
            pc_str v = column(&json, s, c);
            put_col(rows, zc, &r->col[c], v.p, v.n, &last[c], &last_col[c]);
        }
        r->text_off = rows->bytes.len;
        pc_local_span_text(&rows->bytes, s);
        r->text_len = rows->bytes.len - r->text_off;
    }
    pc_local_zip_give_back(z, zc);
    pc_buf_free(&json);
    for (int c = 0; c < PC_LOCAL_COLS; c++)
        pc_buf_free(&last[c]);
    rows->budget = pc_arena_budget(b->arena);
    rows->charged = rows->bytes.cap + (b->n ? b->n : 1) * sizeof(*rows->row) + sizeof(*rows);
    if (pc_budget_reserve(rows->budget, rows->charged) != 0) {
        rows->charged = 0;
        pc_local_rows_free(rows);
        return NULL;
    }
    return rows;
}

void pc_local_rows_free(pc_local_rows *rows)
{
    if (!rows) return;
    pc_budget_release(rows->budget, rows->charged);
    pc_buf_free(&rows->bytes);
    free(rows->row);
    free(rows);
}

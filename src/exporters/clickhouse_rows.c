/*
 * clickhouse_rows.c - rows of a pending INSERT with their partitions (see
 * clickhouse_rows.h): recording, grouping by partition, building bodies.
 *
 * Why group by partition: the tables are PARTITION BY toYYYYMM(started_at),
 * and ClickHouse 19+ refuses a block touching more than
 * max_partitions_per_insert_block (100) partitions with TOO_MANY_PARTS (252),
 * which no retry fixes. The month is computed here in UTC while the server
 * takes it in its own time zone, so a UTC month may straddle two server
 * months: the exporter's default limit (40) stays under 100 even then.
 */
#include "clickhouse_rows.h"

#include "mem.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int32_t pc_ch_month(int64_t ns)
{
    time_t secs = (time_t)(ns / 1000000000LL);
    if (ns < 0 && ns % 1000000000LL) secs--;
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) return 197001;
    return (int32_t)((tm.tm_year + 1900) * 100 + tm.tm_mon + 1);
}

static void put_str(pc_buf *b, pc_str s)
{
    if (s.n) pc_buf_append(b, s.p, s.n);
    pc_buf_append(b, "", 1);
}

void pc_ch_rows_add(pc_ch_rows *r, size_t off, int32_t month, pc_str project, pc_str trace_id,
                    pc_str span_id)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->v = pc_xrealloc(r->v, r->cap * sizeof(*r->v));
    }
    size_t len = r->text.len - off;
    if (len && r->text.data[off + len - 1] == '\n') len--;
    r->v[r->n++] = (pc_ch_row){.off = off, .len = len, .meta = r->meta.len, .month = month};
    put_str(&r->meta, project);
    put_str(&r->meta, trace_id);
    put_str(&r->meta, span_id);
}

void pc_ch_rows_append(pc_ch_rows *dst, const pc_ch_rows *src)
{
    size_t toff = dst->text.len, moff = dst->meta.len;
    if (src->text.len) pc_buf_append(&dst->text, src->text.data, src->text.len);
    if (src->meta.len) pc_buf_append(&dst->meta, src->meta.data, src->meta.len);
    if (dst->n + src->n > dst->cap) {
        dst->cap = dst->n + src->n;
        dst->v = pc_xrealloc(dst->v, dst->cap * sizeof(*dst->v));
    }
    for (size_t i = 0; i < src->n; i++) {
        pc_ch_row row = src->v[i];
        row.off += toff;
        row.meta += moff;
        dst->v[dst->n++] = row;
    }
}

void pc_ch_rows_move(pc_ch_rows *dst, pc_ch_rows *src)
{
    if (dst->n || dst->text.len || dst->meta.len) {
        pc_ch_rows_append(dst, src);
        pc_ch_rows_reset(src);
        return;
    }
    pc_ch_rows t = *dst;
    *dst = *src;
    *src = t;
    pc_ch_rows_reset(src);
}

void pc_ch_rows_reset(pc_ch_rows *r)
{
    pc_buf_reset(&r->text);
    pc_buf_reset(&r->meta);
    r->n = 0;
}

void pc_ch_rows_free(pc_ch_rows *r)
{
    pc_buf_free(&r->text);
    pc_buf_free(&r->meta);
    free(r->v);
    *r = (pc_ch_rows)PC_CH_ROWS_INIT;
}

size_t pc_ch_rows_bytes(const pc_ch_rows *r)
{
    return r->text.len + r->meta.len + r->n * sizeof(*r->v);
}

const char *pc_ch_row_project(const pc_ch_rows *r, size_t i)
{
    return r->meta.data + r->v[i].meta;
}

const char *pc_ch_row_trace(const pc_ch_rows *r, size_t i)
{
    const char *p = pc_ch_row_project(r, i);
    return p + strlen(p) + 1;
}

const char *pc_ch_row_span(const pc_ch_rows *r, size_t i)
{
    const char *p = pc_ch_row_trace(r, i);
    return p + strlen(p) + 1;
}

size_t pc_ch_rows_unmerge(pc_ch_rows *r, const char *project, const char *trace_id)
{
    static const char tail[] = "\"merge_keys\":1}";
    size_t t = sizeof(tail) - 1, changed = 0;
    for (size_t i = 0; i < r->n; i++) {
        char *line = r->text.data + r->v[i].off;
        size_t len = r->v[i].len;
        if (len < t || memcmp(line + len - t, tail, t) != 0) continue;
        if (strcmp(pc_ch_row_project(r, i), project) != 0 ||
            strcmp(pc_ch_row_trace(r, i), trace_id) != 0)
            continue;
        line[len - 2] = '0';
        changed++;
    }
    return changed;
}

/* qsort has no context argument: the sort runs on (month, index) pairs. */
typedef struct key {
    int32_t month;
    size_t i;
} key;

static int by_month(const void *a, const void *b)
{
    const key *x = a, *y = b;
    if (x->month != y->month) return x->month < y->month ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

size_t pc_ch_rows_partition_groups(const pc_ch_rows *r, int max_parts, size_t *idx, size_t *ends)
{
    if (r->n == 0) return 0;
    if (max_parts < 1) max_parts = 1;
    key *k = pc_xmalloc(r->n * sizeof(*k));
    for (size_t i = 0; i < r->n; i++)
        k[i] = (key){r->v[i].month, i};
    qsort(k, r->n, sizeof(*k), by_month);
    size_t ng = 0;
    int parts = 0;
    for (size_t i = 0; i < r->n; i++) {
        bool new_part = i == 0 || k[i].month != k[i - 1].month;
        if (new_part && parts == max_parts) {
            ends[ng++] = i;
            parts = 0;
        }
        if (new_part) parts++;
        idx[i] = k[i].i;
    }
    ends[ng++] = r->n;
    free(k);
    return ng;
}

void pc_ch_rows_body(const pc_ch_rows *r, const size_t *idx, size_t k, pc_buf *out)
{
    pc_buf_reset(out);
    for (size_t j = 0; j < k; j++) {
        const pc_ch_row *row = &r->v[idx[j]];
        pc_buf_append(out, r->text.data + row->off, row->len);
        pc_buf_append(out, "\n", 1);
    }
}

bool pc_ch_rows_text_body(const pc_ch_rows *r, const size_t *idx, size_t k, const char **p,
                          size_t *n)
{
    for (size_t j = 0; j < k; j++) {
        const pc_ch_row *row = &r->v[idx[j]];
        if (row->off + row->len >= r->text.len || r->text.data[row->off + row->len] != '\n')
            return false;
        if (j && (idx[j] != idx[j - 1] + 1 ||
                  row->off != r->v[idx[j - 1]].off + r->v[idx[j - 1]].len + 1))
            return false;
    }
    const pc_ch_row *first = &r->v[idx[0]], *last = &r->v[idx[k - 1]];
    *p = r->text.data + first->off;
    *n = last->off + last->len + 1 - first->off;
    return true;
}

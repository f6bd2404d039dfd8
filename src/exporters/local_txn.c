/*
 * local_txn.c - one write transaction of the embedded store: spans in, grouped
 * by trace, each trace's row found or created, its spans and their search
 * text written, its summary written once (see local_txn.h).
 *
 * Sits between the local exporter's writer thread (local.c: which spans go in
 * which transaction) and the prepared statements of local_writer.c.
 */
#include "local_txn.h"

#include "attr_bloom.h"
#include "hash.h"
#include "mem.h"
#include "timefmt.h"

#include "local_schema.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bind_str(sqlite3_stmt *st, int i, pc_str s)
{
    sqlite3_bind_text64(st, i, s.p ? s.p : "", s.p ? s.n : 0, SQLITE_STATIC, SQLITE_UTF8);
}

static void bind_cstr(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* A double, NAN (unknown) as NULL. */
static void bind_double(sqlite3_stmt *st, int i, double v)
{
    if (isnan(v))
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_double(st, i, v);
}

/*
 * One trace's (project_id, trace_id) summary of spans of one transaction. The
 * trace row is written once per transaction from it instead of once per span
 * (a trace's spans usually arrive together), with the same result: min/max,
 * sums, the first span's source/service, the first parentless span as root.
 */
typedef struct trace_acc {
    const pc_span *first; /* first span */
    const pc_span *root;  /* first span without a parent, or NULL */
    int64_t created_ns;   /* ingest time of |first| */
    int64_t started, completed, count, in_tokens, out_tokens, types;
    pc_str session, user; /* the smallest non-empty (bytewise); n == 0: none */
    double cost;          /* sum of the known span costs */
    bool has_cost;        /* a span had a known cost */
    bool error;
} trace_acc;

/* One trace of the transaction: its spans (a list through next[]) and the
 * summary of all of them (what a new trace row starts with). */
typedef struct group {
    trace_acc all;
    size_t head, tail; /* indexes into the transaction's spans; next[] links them */
    int64_t tid;       /* the stored trace's, or 0 for a new trace */
    int64_t completed; /* the stored trace's completed_ns */
    int64_t started;   /* the stored trace's started_ns */
    /* the attribute filter of all its spans (duplicates too: a superset is
     * still a filter), stored with the trace row or ORed into it */
    unsigned char bloom[PC_ATTR_BLOOM_BYTES];
} group;

typedef struct item {
    const pc_span *s;
    int64_t created_ns;
    const pc_local_rows *rows; /* the span's encoded row: rows->row[at] */
    size_t at;
} item;

/* Per-transaction state: the spans in arrival order, their groups (in order
 * of first appearance), the group hash table, and scratch buffers. */
typedef struct txn {
    item *items;
    size_t *next; /* next span of the same group, or SIZE_MAX */
    size_t n_items, cap;
    group *groups;
    size_t n_groups;
    size_t *order; /* groups in writing order (see pc_local_txn_end) */
    int64_t block; /* search block whose text |text| gathers (-1: none yet) */
    int64_t upto;  /* the largest spans rowid inserted (0: none) */
    uint32_t *slots; /* open addressing: index + 1 into groups, 0 = empty */
    size_t n_slots;  /* power of two, >= 2 * spans of one write (write_items) */
    int64_t longest; /* the longest trace written so far (trace_bounds) */
    pc_buf text;
    pc_buf packed[PC_LOCAL_COLS]; /* a LATER column packed here (local_rows.h) */
} txn;

/* Binds column |c| (0..6) of the encoded row |r| (of |rows|) as parameter
 * |i| of INS_SPAN: a frame as a BLOB, a text as TEXT; a LATER one is packed
 * now (pc_local_zip_pack: a training sample while there is no dictionary)
 * into t->packed[c]. The bound bytes stay valid until the next call for |c|. */
static void bind_col(sqlite3_stmt *st, int i, pc_local_zip *z, txn *t, const pc_local_rows *rows,
                     const pc_local_row *r, int c)
{
    const pc_local_col *col = &r->col[c];
    const char *p = pc_local_rows_at(rows, col->off);
    if (col->state == PC_COL_LATER && pc_local_zip_pack(z, p, col->len, &t->packed[c]))
        sqlite3_bind_blob64(st, i, t->packed[c].data, t->packed[c].len, SQLITE_STATIC);
    else if (col->state == PC_COL_ZIPPED)
        sqlite3_bind_blob64(st, i, p, col->len, SQLITE_STATIC);
    else
        sqlite3_bind_text64(st, i, p, col->len, SQLITE_STATIC, SQLITE_UTF8);
}

/* The slot hash of (project_id, trace_id): keyed (hash.h), clients choose both. */
static size_t trace_key_hash(const pc_span *s)
{
    return (size_t)pc_hash_seeded(pc_hash(s->project_id.p, s->project_id.n), s->trace_id.p,
                                  s->trace_id.n);
}

static bool str_equal(pc_str a, pc_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Bytewise order of |a| and |b| as SQLite's BINARY collation: < 0, 0, > 0. */
static int str_cmp(pc_str a, pc_str b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    return c ? c : (a.n > b.n) - (a.n < b.n);
}

/* Keeps in |*min| the smallest non-empty of |*min| and |s|. */
static void keep_min(pc_str *min, pc_str s)
{
    if (s.n > 0 && (min->n == 0 || str_cmp(s, *min) < 0)) *min = s;
}

/* True when |a| and |b| belong to the same trace: (project_id, trace_id). */
static bool same_trace(const pc_span *a, const pc_span *b)
{
    return str_equal(a->trace_id, b->trace_id) && str_equal(a->project_id, b->project_id);
}

/* Folds span |s| (ingested at |created_ns|) into the summary |a|. */
static void acc_add(trace_acc *a, const pc_span *s, int64_t created_ns)
{
    if (!a->first) {
        *a = (trace_acc){
            .first = s, .created_ns = created_ns, .started = s->start_ns, .completed = INT64_MIN};
    }
    int64_t end = s->end_ns > 0 ? s->end_ns : s->start_ns;
    if (s->start_ns < a->started) a->started = s->start_ns;
    if (end > a->completed) a->completed = end;
    if (!a->root && s->parent_id.n == 0) a->root = s;
    if (s->status == PC_STATUS_ERROR) a->error = true;
    if (s->input_tokens > 0) a->in_tokens = pc_tokens_add(a->in_tokens, s->input_tokens);
    if (s->output_tokens > 0) a->out_tokens = pc_tokens_add(a->out_tokens, s->output_tokens);
    if ((unsigned)s->span_type < PC_TYPE_COUNT) a->types |= (int64_t)1 << s->span_type;
    keep_min(&a->session, s->session_id);
    keep_min(&a->user, s->user_id);
    if (!isnan(s->cost_usd)) {
        a->cost += s->cost_usd;
        a->has_cost = true;
    }
    a->count++;
}

/* Puts span |i| of |t| into its trace's group. */
static void group_add(txn *t, size_t i)
{
    const pc_span *s = t->items[i].s;
    size_t mask = t->n_slots - 1;
    size_t h = trace_key_hash(s) & mask;
    while (t->slots[h] && !same_trace(t->groups[t->slots[h] - 1].all.first, s))
        h = (h + 1) & mask;
    group *g;
    if (!t->slots[h]) {
        g = &t->groups[t->n_groups++];
        t->slots[h] = (uint32_t)t->n_groups;
        *g = (group){.head = i, .tail = i};
    } else {
        g = &t->groups[t->slots[h] - 1];
        t->next[g->tail] = i;
        g->tail = i;
    }
    t->next[i] = SIZE_MAX;
    acc_add(&g->all, s, t->items[i].created_ns);
    pc_attr_bloom_add_attrs(g->bloom, &s->attrs);
}

/* Binds |a| as INS_TRACE / MERGE_TRACE / SET_TRACE take it (local_writer.c), tid as ?16;
 * the attribute filter ?20 of INS_TRACE and MERGE_TRACE is write_group's. */
static void bind_trace(sqlite3_stmt *st, const trace_acc *a, int64_t tid)
{
    const pc_span *f = a->first, *r = a->root;
    bind_str(st, 1, f->trace_id);
    bind_str(st, 2, f->project_id);
    bind_str(st, 3, r ? r->service_name : f->service_name);
    if (r) {
        bind_str(st, 4, r->span_id);
        bind_str(st, 5, r->name);
    } else {
        bind_cstr(st, 4, "");
        bind_cstr(st, 5, "");
    }
    sqlite3_bind_int(st, 6, r ? 1 : 0);
    bind_cstr(st, 7, a->error ? "error" : "success");
    bind_cstr(st, 8, pc_source_name(f->source));
    sqlite3_bind_int64(st, 9, a->started);
    sqlite3_bind_int64(st, 10, a->completed);
    sqlite3_bind_int64(st, 11, a->created_ns);
    sqlite3_bind_int64(st, 12, a->in_tokens);
    sqlite3_bind_int64(st, 13, a->out_tokens);
    sqlite3_bind_int64(st, 14, a->count);
    sqlite3_bind_int64(st, 15, a->types);
    if (tid) sqlite3_bind_int64(st, 16, tid);
    bind_str(st, 17, a->session);
    bind_str(st, 18, a->user);
    bind_double(st, 19, a->has_cost ? a->cost : NAN);
}

/*
 * Inserts the span of |it| into trace |tid| and appends its search text to
 * t->text. *inserted: false when it was a duplicate. SQLite code.
 */
static int write_span(pc_local_writer *w, txn *t, int64_t tid, const item *it, bool *inserted)
{
    const pc_span *s = it->s;
    int64_t created_ns = it->created_ns;
    const pc_local_row *r = &it->rows->row[it->at];

    sqlite3_stmt *st = w->ins_span;
    sqlite3_bind_int64(st, 1, tid);
    bind_str(st, 2, s->span_id);
    bind_str(st, 3, s->parent_id);
    bind_str(st, 4, s->name);
    sqlite3_bind_int(st, 5, s->kind);
    bind_cstr(st, 6, pc_span_type_name(s->span_type));
    bind_str(st, 7, s->service_name);
    bind_cstr(st, 8, pc_status_name(s->status));
    bind_str(st, 9, s->status_message);
    bind_cstr(st, 10, pc_source_name(s->source));
    bind_str(st, 11, s->trace_state);
    sqlite3_bind_int64(st, 12, s->start_ns);
    sqlite3_bind_int64(st, 13, s->end_ns);
    sqlite3_bind_int64(st, 14, created_ns);
    bind_str(st, 15, s->llm_provider);
    bind_str(st, 16, s->llm_model);
    sqlite3_bind_int64(st, 17, s->input_tokens);
    sqlite3_bind_int64(st, 18, s->output_tokens);
    pc_local_zip *z = w->zip;
    for (int c = 0; c < 5; c++) /* attributes, events, links, resource, scope */
        bind_col(st, 19 + c, z, t, it->rows, r, c);
    bind_str(st, 24, s->llm_request_model);
    sqlite3_bind_int64(st, 25, s->cache_read_tokens);
    sqlite3_bind_int64(st, 26, s->cache_write_tokens);
    sqlite3_bind_int64(st, 27, s->reasoning_tokens);
    bind_double(st, 28, s->cost_usd);
    bind_double(st, 29, s->cost_input_usd);
    bind_double(st, 30, s->cost_output_usd);
    bind_cstr(st, 31, s->cost_source == PC_COST_NONE ? "" : pc_cost_source_name(s->cost_source));
    bind_str(st, 32, s->session_id);
    bind_str(st, 33, s->user_id);
    bind_col(st, 34, z, t, it->rows, r, 5); /* input_messages */
    bind_col(st, 35, z, t, it->rows, r, 6); /* output_messages */
    int rc = pc_local_step(st);
    *inserted = rc == SQLITE_OK && sqlite3_changes(w->db) == 1;
    if (*inserted) {
        t->upto = sqlite3_last_insert_rowid(w->db);
        pc_buf_append(&t->text, pc_local_rows_at(it->rows, r->text_off), r->text_len);
    }
    return rc;
}

/* Stages the search text gathered for block t->block as one document of
 * the index (none when empty; local_index.h) and empties it. */
static int flush_text(pc_local_writer *w, txn *t)
{
    if (t->text.len == 0) return SQLITE_OK;
    pc_local_index_add(w->index, t->block, PC_INDEX_ADD, t->text.data, t->text.len);
    pc_buf_reset(&t->text);
    return SQLITE_OK;
}

/* Sets g->tid to the stored trace's tid, or 0 when it is new. SQLite code. */
static int find_group(pc_local_writer *w, group *g)
{
    const pc_span *f = g->all.first;
    bind_str(w->find_trace, 1, f->trace_id);
    bind_str(w->find_trace, 2, f->project_id);
    int rc = sqlite3_step(w->find_trace);
    g->tid = rc == SQLITE_ROW ? sqlite3_column_int64(w->find_trace, 0) : 0;
    g->completed = rc == SQLITE_ROW ? sqlite3_column_int64(w->find_trace, 1) : 0;
    g->started = rc == SQLITE_ROW ? sqlite3_column_int64(w->find_trace, 2) : 0;
    sqlite3_reset(w->find_trace);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The models one trace's new spans named so far in a transaction: most traces
 * name one or two, so a short list spares repeated INSERT OR IGNOREs. */
#define MODELS_SEEN 8
typedef struct models {
    pc_str v[MODELS_SEEN];
    size_t n;
} models;

/* Records |model| (none when empty) of trace |tid| in trace_models, once per
 * transaction for the first MODELS_SEEN models (INSERT OR IGNORE anyway).
 * SQLite code. */
static int add_model(pc_local_writer *w, models *ms, int64_t tid, pc_str model)
{
    if (model.n == 0) return SQLITE_OK;
    for (size_t i = 0; i < ms->n; i++)
        if (str_equal(ms->v[i], model)) return SQLITE_OK;
    if (ms->n < MODELS_SEEN) ms->v[ms->n++] = model;
    bind_str(w->ins_model, 1, model);
    sqlite3_bind_int64(w->ins_model, 2, tid);
    return pc_local_step(w->ins_model);
}

/* completed - started, 0 when negative, the largest int64 on overflow (the
 * times are the clients'). */
static int64_t duration(int64_t started, int64_t completed)
{
    int64_t d;
    if (__builtin_sub_overflow(completed, started, &d)) return INT64_MAX;
    return d > 0 ? d : 0;
}

/*
 * Writes group |g| (find_group ran): inserts the trace row with the summary
 * of all its spans when new, its spans in arrival order (their search text
 * gathered into the document of the trace's block, written when the block
 * changes or at the end), then merges the summary of the spans
 * really inserted into an existing row, or corrects a new row when some were
 * duplicates. SQLite code.
 */
static int write_group(pc_local_writer *w, txn *t, const group *g)
{
    int64_t tid = g->tid;
    int rc;
    bool fresh = tid == 0;
    /* trace_bounds: at most the row's span once written (a new row: all its
     * spans; a stored one: merged with them, inserted or not) */
    int64_t d = fresh ? duration(g->all.started, g->all.completed)
                      : duration(g->all.started < g->started ? g->all.started : g->started,
                                 g->all.completed > g->completed ? g->all.completed : g->completed);
    if (d > t->longest) t->longest = d;
    if (fresh) {
        bind_trace(w->ins_trace, &g->all, 0);
        sqlite3_bind_blob(w->ins_trace, 20, g->bloom, sizeof(g->bloom), SQLITE_STATIC);
        rc = pc_local_step(w->ins_trace);
        if (rc != SQLITE_OK) return rc;
        tid = sqlite3_last_insert_rowid(w->db);
    }
    /* a stored trace's groups, before its new spans: where each began */
    rc = pc_local_rollup_trace(&w->rollup, g->all.first->project_id, tid, !fresh);
    if (rc != SQLITE_OK) return rc;
    trace_acc done = {0};
    int64_t block = tid >> PC_LOCAL_BLOCK_BITS;
    if (block != t->block) {
        rc = flush_text(w, t);
        if (rc != SQLITE_OK) return rc;
        t->block = block;
    }
    models ms = {.n = 0};
    for (size_t i = g->head; i != SIZE_MAX; i = t->next[i]) {
        bool inserted;
        const pc_span *s = t->items[i].s;
        rc = write_span(w, t, tid, &t->items[i], &inserted);
        if (rc != SQLITE_OK) return rc;
        if (!inserted) continue;
        pc_local_rollup_span(&w->rollup, s);
        acc_add(&done, s, t->items[i].created_ns);
        rc = add_model(w, &ms, tid, s->llm_model);
        if (rc == SQLITE_OK) rc = add_model(w, &ms, tid, s->llm_request_model);
        if (rc != SQLITE_OK) return rc;
    }
    pc_local_rollup_trace_end(&w->rollup);
    if (fresh && done.count == g->all.count) return SQLITE_OK;
    if (done.count == 0) return SQLITE_OK; /* all duplicates of an existing trace */
    sqlite3_stmt *st = fresh ? w->set_trace : w->merge_trace;
    bind_trace(st, &done, tid);
    if (!fresh) sqlite3_bind_blob(st, 20, g->bloom, sizeof(g->bloom), SQLITE_STATIC);
    return pc_local_step(st);
}

typedef struct tid_at {
    int64_t tid;
    size_t g;
} tid_at;

static int by_tid(const void *a, const void *b)
{
    int64_t x = ((const tid_at *)a)->tid, y = ((const tid_at *)b)->tid;
    return x < y ? -1 : x > y;
}

/* Sorts the |n| group indexes |order| by their groups' tids. */
static void sort_by_tid(size_t *order, size_t n, const group *groups)
{
    tid_at *v = pc_xmalloc((n ? n : 1) * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (tid_at){groups[order[i]].tid, order[i]};
    qsort(v, n, sizeof(*v), by_tid);
    for (size_t i = 0; i < n; i++)
        order[i] = v[i].g;
    free(v);
}

struct pc_local_txn {
    pc_local_writer *w;
    txn t;
    int rc; /* the first failure, or SQLITE_OK */
};

pc_local_txn *pc_local_txn_begin(pc_local_writer *w, size_t spans)
{
    pc_local_txn *x = pc_xcalloc(1, sizeof(*x)); /* empty pc_bufs are all-zero */
    x->w = w;
    x->t.longest = w->longest_ns;
    x->t.cap = spans ? spans : 1;
    x->t.items = pc_xmalloc(x->t.cap * sizeof(*x->t.items));
    pc_local_zip_train(w->zip); /* a dictionary trained meanwhile: its own transaction */
    pc_local_rollup_reset(&w->rollup); /* deltas of a transaction that failed before its flush */
    x->rc = pc_local_step(w->begin);
    return x;
}

int pc_local_txn_span(pc_local_txn *x, const pc_span *s, int64_t created_ns,
                      const pc_local_rows *rows, size_t at)
{
    txn *t = &x->t;
    if (s->carrier) { /* events for a span, kept apart (local_events.h) */
        if (x->rc == SQLITE_OK) x->rc = pc_local_events_write(&x->w->events, x->w->db, s, created_ns);
        return x->rc;
    }
    if (t->n_items == t->cap) {
        t->cap *= 2;
        t->items = pc_xrealloc(t->items, t->cap * sizeof(*t->items));
    }
    t->items[t->n_items++] = (item){.s = s, .created_ns = created_ns, .rows = rows, .at = at};
    return x->rc;
}

/*
 * Writes the spans added since the last write (t->items): groups them by
 * trace, finds each stored trace, writes the groups (stored traces by tid,
 * then new ones, whose tids come next in order: span_text receives its blocks
 * in ascending order, one document per block) and empties the list. Sets
 * x->rc on failure.
 */
static void write_items(pc_local_txn *x)
{
    pc_local_writer *w = x->w;
    txn *t = &x->t;
    if (x->rc != SQLITE_OK || t->n_items == 0) return;
    size_t n_slots = 16;
    while (n_slots < 2 * t->n_items)
        n_slots *= 2;
    if (n_slots > t->n_slots) {
        free(t->slots);
        free(t->next);
        free(t->groups);
        free(t->order);
        t->n_slots = n_slots;
        t->slots = pc_xmalloc(n_slots * sizeof(*t->slots));
        t->next = pc_xmalloc(n_slots / 2 * sizeof(*t->next));
        t->groups = pc_xmalloc(n_slots / 2 * sizeof(*t->groups));
        t->order = pc_xmalloc(n_slots / 2 * sizeof(*t->order));
    }
    memset(t->slots, 0, t->n_slots * sizeof(*t->slots));
    t->n_groups = 0;
    for (size_t i = 0; i < t->n_items; i++)
        group_add(t, i);
    for (size_t g = 0; g < t->n_groups && x->rc == SQLITE_OK; g++)
        x->rc = find_group(w, &t->groups[g]);
    size_t n_old = 0;
    for (size_t g = 0; g < t->n_groups; g++)
        if (t->groups[g].tid) t->order[n_old++] = g;
    sort_by_tid(t->order, n_old, t->groups);
    for (size_t g = 0, k = n_old; g < t->n_groups; g++)
        if (!t->groups[g].tid) t->order[k++] = g;
    t->block = -1;
    for (size_t k = 0; k < t->n_groups && x->rc == SQLITE_OK; k++)
        x->rc = write_group(w, t, &t->groups[t->order[k]]);
    if (x->rc == SQLITE_OK) x->rc = flush_text(w, t);
    t->n_items = 0;
}

int pc_local_txn_write(pc_local_txn *x)
{
    write_items(x);
    return x->rc;
}

int pc_local_txn_end(pc_local_txn *x, char *err, size_t errlen)
{
    pc_local_writer *w = x->w;
    txn *t = &x->t;
    write_items(x);
    if (x->rc == SQLITE_OK) x->rc = pc_local_rollup_flush(&w->rollup, pc_time_now_ns());
    if (x->rc == SQLITE_OK && t->longest > w->longest_ns) {
        sqlite3_bind_int64(w->set_longest, 1, t->longest);
        x->rc = pc_local_step(w->set_longest);
    }
    if (x->rc == SQLITE_OK) x->rc = pc_local_step(w->commit);
    if (x->rc == SQLITE_OK && t->longest > w->longest_ns) w->longest_ns = t->longest;
    if (x->rc == SQLITE_OK)
        pc_local_index_commit(w->index, t->upto);
    else
        pc_local_index_abort(w->index);
    if (x->rc != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(w->db)); /* before the rollback resets it */
        pc_local_rollup_forget(&w->rollup); /* it knew spans the rollback takes back */
        if (!sqlite3_get_autocommit(w->db)) pc_local_step(w->rollback);
    }
    pc_local_zip_train(w->zip); /* samples complete: training starts now */
    int rc = x->rc;
    pc_buf_free(&t->text);
    for (int c = 0; c < PC_LOCAL_COLS; c++)
        pc_buf_free(&t->packed[c]);
    free(t->items);
    free(t->next);
    free(t->groups);
    free(t->order);
    free(t->slots);
    free(x);
    return rc;
}

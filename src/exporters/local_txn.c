/*
 * local_txn.c - one write transaction of the embedded store: spans in, their
 * traces' summary rows upserted once at the end (see local_txn.h).
 *
 * Sits between the local exporter's writer thread (local.c: which spans go in
 * which transaction) and the prepared statements of local_store.c.
 */
#include "local_txn.h"

#include "hash.h"
#include "mem.h"

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

static void bind_buf(sqlite3_stmt *st, int i, const pc_buf *b)
{
    sqlite3_bind_text64(st, i, b->data ? b->data : "", b->len, SQLITE_STATIC, SQLITE_UTF8);
}

/*
 * One trace's (project_id, trace_id) summary of the spans one transaction
 * really inserted. The trace row is upserted once per transaction from it
 * instead of once per span (a trace's spans usually arrive together), with the
 * same result: min/max, sums, the first span's source/service, the first
 * parentless span as root.
 */
typedef struct trace_acc {
    const pc_span *first; /* first inserted span */
    const pc_span *root;  /* first inserted span without a parent, or NULL */
    int64_t created_ns;   /* ingest time of |first| */
    int64_t started, completed, count, in_tokens, out_tokens;
    bool error;
} trace_acc;

/* Per-transaction state: JSON scratch buffers and the trace_acc hash table. */
typedef struct txn {
    pc_buf attrs, events, links, resource, scope;
    trace_acc *accs; /* in order of first insert */
    size_t n_accs;
    uint32_t *slots; /* open addressing: index + 1 into accs, 0 = empty */
    size_t n_slots;  /* power of two, >= 2 * spans in the transaction */
} txn;

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

/* True when |a| and |b| belong to the same trace: (project_id, trace_id). */
static bool same_trace(const pc_span *a, const pc_span *b)
{
    return str_equal(a->trace_id, b->trace_id) && str_equal(a->project_id, b->project_id);
}

/* Folds the newly inserted span |s| into its trace's summary. */
static void acc_add(txn *t, const pc_span *s, int64_t created_ns)
{
    size_t mask = t->n_slots - 1;
    size_t i = trace_key_hash(s) & mask;
    while (t->slots[i] && !same_trace(t->accs[t->slots[i] - 1].first, s))
        i = (i + 1) & mask;
    trace_acc *a;
    if (!t->slots[i]) {
        a = &t->accs[t->n_accs++];
        t->slots[i] = (uint32_t)t->n_accs;
        *a = (trace_acc){
            .first = s, .created_ns = created_ns, .started = s->start_ns, .completed = INT64_MIN};
    } else {
        a = &t->accs[t->slots[i] - 1];
    }
    int64_t end = s->end_ns > 0 ? s->end_ns : s->start_ns;
    if (s->start_ns < a->started) a->started = s->start_ns;
    if (end > a->completed) a->completed = end;
    if (!a->root && s->parent_id.n == 0) a->root = s;
    if (s->status == PC_STATUS_ERROR) a->error = true;
    if (s->input_tokens > 0) a->in_tokens = pc_tokens_add(a->in_tokens, s->input_tokens);
    if (s->output_tokens > 0) a->out_tokens = pc_tokens_add(a->out_tokens, s->output_tokens);
    a->count++;
}

/* Inserts |s| (ingested at |created_ns|); a new span is folded into |t|. SQLite code. */
static int write_span(pc_local_writer *w, txn *t, const pc_span *s, int64_t created_ns)
{
    pc_buf_reset(&t->attrs);
    pc_buf_reset(&t->events);
    pc_buf_reset(&t->links);
    pc_buf_reset(&t->resource);
    pc_buf_reset(&t->scope);
    pc_attrs_write_json(&t->attrs, &s->attrs);
    pc_events_write_json(&t->events, s->events, s->n_events);
    pc_links_write_json(&t->links, s->links, s->n_links);
    pc_attrs_write_json(&t->resource, s->resource ? s->resource : &pc_empty_attrs);
    pc_scope_write_json(&t->scope, s->scope ? s->scope : &pc_empty_scope);

    sqlite3_stmt *st = w->ins_span;
    bind_str(st, 1, s->trace_id);
    bind_str(st, 2, s->span_id);
    bind_str(st, 3, s->parent_id);
    bind_str(st, 4, s->project_id);
    bind_str(st, 5, s->name);
    sqlite3_bind_int(st, 6, s->kind);
    bind_cstr(st, 7, pc_span_type_name(s->span_type));
    bind_str(st, 8, s->service_name);
    bind_cstr(st, 9, pc_status_name(s->status));
    bind_str(st, 10, s->status_message);
    bind_cstr(st, 11, pc_source_name(s->source));
    bind_str(st, 12, s->trace_state);
    sqlite3_bind_int64(st, 13, s->start_ns);
    sqlite3_bind_int64(st, 14, s->end_ns);
    sqlite3_bind_int64(st, 15, created_ns);
    bind_str(st, 16, s->llm_provider);
    bind_str(st, 17, s->llm_model);
    sqlite3_bind_int64(st, 18, s->input_tokens);
    sqlite3_bind_int64(st, 19, s->output_tokens);
    bind_buf(st, 20, &t->attrs);
    bind_buf(st, 21, &t->events);
    bind_buf(st, 22, &t->links);
    bind_buf(st, 23, &t->resource);
    bind_buf(st, 24, &t->scope);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return rc;
    if (sqlite3_changes(w->db) == 1) acc_add(t, s, created_ns); /* else a duplicate */
    return SQLITE_OK;
}

/* Upserts the trace row of |a|. SQLite code. */
static int write_trace(pc_local_writer *w, const trace_acc *a)
{
    const pc_span *f = a->first, *r = a->root;
    sqlite3_stmt *st = w->upsert_trace;
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
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int step_once(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
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
    x->t.n_slots = 16;
    while (x->t.n_slots < 2 * spans)
        x->t.n_slots *= 2;
    x->t.slots = pc_xcalloc(x->t.n_slots, sizeof(*x->t.slots));
    x->t.accs = pc_xmalloc((spans ? spans : 1) * sizeof(*x->t.accs));
    x->rc = step_once(w->begin);
    return x;
}

int pc_local_txn_span(pc_local_txn *x, const pc_span *s, int64_t created_ns)
{
    if (x->rc == SQLITE_OK) x->rc = write_span(x->w, &x->t, s, created_ns);
    return x->rc;
}

int pc_local_txn_end(pc_local_txn *x, char *err, size_t errlen)
{
    pc_local_writer *w = x->w;
    txn *t = &x->t;
    for (size_t i = 0; i < t->n_accs && x->rc == SQLITE_OK; i++)
        x->rc = write_trace(w, &t->accs[i]);
    if (x->rc == SQLITE_OK) x->rc = step_once(w->commit);
    if (x->rc != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(w->db)); /* before the rollback resets it */
        if (!sqlite3_get_autocommit(w->db)) step_once(w->rollback);
    }
    int rc = x->rc;
    pc_buf_free(&t->attrs);
    pc_buf_free(&t->events);
    pc_buf_free(&t->links);
    pc_buf_free(&t->resource);
    pc_buf_free(&t->scope);
    free(t->slots);
    free(t->accs);
    free(x);
    return rc;
}

/*
 * local_recent.c - the embedded store's recent search text (local_recent.h):
 * a list of pieces, one per writer transaction, each the blocks' documents
 * of the spans that transaction inserted, in one text buffer.
 *
 * Why: a search takes as candidates the index's blocks and the traces of the
 * spans past the index's upto. Those traces used to be verified one by one
 * from their stored spans (decompressing every JSON column of every span):
 * with ingest running, the spans past upto are a few thousand (up to a
 * gather of the index thread and what queued meanwhile), and verifying
 * their traces was most of a rare word's search time. Matching the same
 * text here costs one scan of a few MiB with no decompression, and names
 * the few blocks that hold the query.
 *
 * Ownership: the list (mu) holds one reference to each piece; a search takes
 * another on the pieces it scans and scans them without the lock; the last
 * reference frees the piece. The staged piece is the writer thread's own.
 */
#include "local_recent.h"

#include "local_contains.h"

#include "buf.h"
#include "mem.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct recent_doc {
    int64_t block;
    size_t off, len; /* in the piece's text */
} recent_doc;

typedef struct piece {
    struct piece *next;
    int64_t lo, hi; /* the spans rowids (lo, hi] */
    int refs;       /* the list's and the searches' (mu) */
    recent_doc *docs;
    size_t n, cap;
    pc_buf text;
} piece;

struct pc_local_recent {
    piece *staged;         /* writer thread only */
    pthread_mutex_t mu;
    piece *head, **tail;   /* mu: oldest first */
    piece *last;           /* mu: the newest piece (when head) */
    size_t bytes;          /* mu: text in the list */
    int64_t end;           /* mu: the last piece's hi, or where the next starts */
    int64_t indexed_prev;  /* mu: the upto the index committed before the last */
    int64_t indexed_last;  /* mu */
};

static void piece_free(piece *p)
{
    if (!p) return;
    free(p->docs);
    pc_buf_free(&p->text);
    free(p);
}

/* Drops the list's reference to its first piece (mu held). */
static void drop_head(pc_local_recent *r)
{
    piece *p = r->head;
    r->head = p->next;
    if (!r->head) {
        r->tail = &r->head;
        r->last = NULL;
    }
    r->bytes -= p->text.len;
    if (--p->refs == 0) piece_free(p);
}

pc_local_recent *pc_local_recent_create(void)
{
    pc_local_recent *r = pc_xcalloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->tail = &r->head;
    return r;
}

void pc_local_recent_destroy(pc_local_recent *r)
{
    if (!r) return;
    while (r->head)
        drop_head(r);
    piece_free(r->staged);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void pc_local_recent_reset(pc_local_recent *r, int64_t upto)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    while (r->head)
        drop_head(r);
    r->end = upto;
    r->indexed_prev = r->indexed_last = upto;
    pthread_mutex_unlock(&r->mu);
}

void pc_local_recent_add(pc_local_recent *r, int64_t block, const char *text, size_t n)
{
    if (!r || n == 0) return;
    piece *p = r->staged;
    if (!p) p = r->staged = pc_xcalloc(1, sizeof(*p));
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->docs = pc_xrealloc(p->docs, p->cap * sizeof(*p->docs));
    }
    p->docs[p->n++] = (recent_doc){.block = block, .off = p->text.len, .len = n};
    pc_buf_append(&p->text, text, n);
}

void pc_local_recent_abort(pc_local_recent *r)
{
    if (!r || !r->staged) return;
    r->staged->n = 0;
    pc_buf_reset(&r->staged->text);
}

void pc_local_recent_commit(pc_local_recent *r, int64_t upto)
{
    if (!r) return;
    piece *p = r->staged;
    pthread_mutex_lock(&r->mu);
    if (upto > 0 && upto < r->end) { /* rowids start again: no piece covers them */
        while (r->head)
            drop_head(r);
        r->end = upto;
    } else if (upto > r->end) {
        if (p && p->n) {
            r->staged = NULL;
            p->lo = r->end;
            p->hi = upto;
            p->refs = 1;
            *r->tail = p;
            r->tail = &p->next;
            r->last = p;
            r->bytes += p->text.len;
            while (r->bytes > PC_LOCAL_RECENT_MAX)
                drop_head(r);
        } else if (r->last && r->last->hi == r->end) {
            r->last->hi = upto; /* spans without text: the last piece covers them */
        }
        r->end = upto;
    }
    pthread_mutex_unlock(&r->mu);
    pc_local_recent_abort(r);
}

void pc_local_recent_indexed(pc_local_recent *r, int64_t upto)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    if (upto > r->indexed_last) {
        r->indexed_prev = r->indexed_last;
        r->indexed_last = upto;
    }
    while (r->head && r->head->hi <= r->indexed_prev)
        drop_head(r);
    pthread_mutex_unlock(&r->mu);
}

/* Adds |b| to the open-addressing set |set| (|mask| + 1 slots, 0 = empty;
 * blocks are stored + 1); true when it was not there. */
static bool set_add(int64_t *set, size_t mask, int64_t b)
{
    uint64_t h = ((uint64_t)b + 1) * 0x9E3779B97F4A7C15ull;
    for (size_t i = (size_t)(h >> 40) & mask;; i = (i + 1) & mask) {
        if (set[i] == b + 1) return false;
        if (set[i] == 0) {
            set[i] = b + 1;
            return true;
        }
    }
}

int64_t pc_local_recent_match(pc_local_recent *r, int64_t upto, const char *q, size_t n,
                              int cap, int64_t *blocks, int *nblocks)
{
    *nblocks = 0;
    if (!r) return upto;
    /* The pieces past upto, first to last, each referenced (so none is freed
     * while scanned; their next pointers up to last stay as they are); none
     * unless the pieces reach back to upto. */
    piece *first = NULL, *last = NULL;
    int64_t floor = upto;
    pthread_mutex_lock(&r->mu);
    if (r->head && r->head->lo <= upto) {
        for (first = r->head; first && first->hi <= upto; first = first->next)
            ;
        for (piece *p = first; p; p = p->next) {
            p->refs++;
            last = p;
        }
        if (first) floor = r->end;
    }
    pthread_mutex_unlock(&r->mu);
    if (!first) return floor;

    size_t slots = 16;
    while (slots < 2 * ((size_t)cap + 1))
        slots *= 2;
    int64_t *set = pc_xcalloc(slots, sizeof(*set));
    pc_local_needle *nd = pc_local_needle_create(q, n);
    int found = 0;
    for (piece *p = first;; p = p->next) {
        for (size_t i = 0; i < p->n && found <= cap; i++) {
            const recent_doc *d = &p->docs[i];
            if (pc_local_needle_in(nd, p->text.data + d->off, d->len) &&
                set_add(set, slots - 1, d->block))
                blocks[found++] = d->block;
        }
        if (p == last) break;
    }
    pc_local_needle_destroy(nd);
    free(set);
    *nblocks = found;

    pthread_mutex_lock(&r->mu);
    for (piece *p = first, *nx;; p = nx) {
        nx = p->next;
        bool end = p == last;
        if (--p->refs == 0) piece_free(p);
        if (end) break;
    }
    pthread_mutex_unlock(&r->mu);
    return floor;
}

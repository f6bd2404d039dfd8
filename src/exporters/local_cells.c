/*
 * local_cells.c - the stats figures of one read, per (bucket, group), in
 * memory (see local_cells.h).
 */
#include "local_cells.h"

#include "hash.h"
#include "histo.h"
#include "mem.h"
#include "span.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int pc_stats_kind(pc_stats_group g)
{
    switch (g) {
    case PC_GROUP_NONE:
    case PC_GROUP_PROJECT: return 0;
    case PC_GROUP_MODEL: return 1;
    case PC_GROUP_SERVICE: return 2;
    case PC_GROUP_SPAN_TYPE: return 3;
    default: return -1;
    }
}

/* ------------------------------------------------------------ key table -- */


static uint64_t key_hash(int64_t k, const char *s, size_t n)
{
    return pc_hash_seeded((uint64_t)k, s, n);
}

static size_t key_slot(const pc_keys *t, int64_t k, const char *s, size_t n)
{
    size_t i = (size_t)key_hash(k, s, n) & (t->nslots - 1);
    for (;;) {
        uint32_t j = t->slots[i];
        if (!j) return i;
        j--;
        if (t->k[j] == k && t->n[j] == n && memcmp(t->s[j], s, n) == 0) return i;
        i = (i + 1) & (t->nslots - 1);
    }
}

static void keys_grow(pc_keys *t)
{
    size_t nslots = t->nslots ? 2 * t->nslots : 64;
    free(t->slots);
    t->slots = pc_xcalloc(nslots, sizeof(*t->slots));
    t->nslots = nslots;
    for (size_t j = 0; j < t->used; j++)
        t->slots[key_slot(t, t->k[j], t->s[j], t->n[j])] = (uint32_t)j + 1;
}

/* The number of key (|k|, |s|, |n| bytes), added when new (*|added| set). */
size_t pc_keys_find(pc_keys *t, int64_t k, const char *s, size_t n, bool *added)
{
    if (2 * (t->used + 1) >= t->nslots) keys_grow(t);
    size_t i = key_slot(t, k, s, n);
    *added = !t->slots[i];
    if (!*added) return t->slots[i] - 1;
    if (t->used == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->k = pc_xrealloc(t->k, t->cap * sizeof(*t->k));
        t->s = pc_xrealloc(t->s, t->cap * sizeof(*t->s));
        t->n = pc_xrealloc(t->n, t->cap * sizeof(*t->n));
    }
    size_t j = t->used++;
    t->k[j] = k;
    t->s[j] = pc_xmalloc(n + 1);
    memcpy(t->s[j], s, n);
    t->s[j][n] = '\0';
    t->n[j] = n;
    t->slots[i] = (uint32_t)j + 1;
    return j;
}

/* Forgets every key, keeping the room. */
void pc_keys_clear(pc_keys *t)
{
    for (size_t j = 0; j < t->used; j++)
        free(t->s[j]);
    t->used = 0;
    if (t->slots) memset(t->slots, 0, t->nslots * sizeof(*t->slots));
}

void pc_keys_free(pc_keys *t)
{
    pc_keys_clear(t);
    free(t->k);
    free(t->s);
    free(t->n);
    free(t->slots);
}

/* ------------------------------------------------------------- the cells -- */



static int by_bucket_group(const void *a, const void *b)
{
    const pc_cell_key *x = a, *y = b;
    if (x->bucket != y->bucket) return x->bucket < y->bucket ? -1 : 1;
    int c = memcmp(x->group, y->group, x->n < y->n ? x->n : y->n);
    if (c) return c;
    return x->n < y->n ? -1 : x->n > y->n;
}


/* Keeps the first a->limit cells in list order, frees the rest. */
static void cells_prune(pc_cells *a)
{
    size_t n = a->keys.used;
    pc_cell_key *order = pc_xmalloc(n * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = (pc_cell_key){a->keys.k[i], a->keys.s[i], a->keys.n[i], i};
    qsort(order, n, sizeof(*order), by_bucket_group);
    pc_keys kept = {0};
    pc_cell *cells = pc_xmalloc(a->limit * sizeof(*cells));
    for (size_t r = 0; r < n; r++) {
        pc_cell *c = &a->cells[order[r].i];
        if (r >= a->limit) {
            free(c->bins);
            continue;
        }
        bool added;
        size_t j = pc_keys_find(&kept, order[r].bucket, order[r].group, order[r].n, &added);
        cells[j] = *c;
    }
    const pc_cell_key *last = &order[a->limit - 1];
    free(a->top_group);
    a->top_group = pc_xmalloc(last->n + 1);
    memcpy(a->top_group, last->group, last->n + 1);
    a->top = (pc_cell_key){last->bucket, a->top_group, last->n, 0};
    a->cut = true;
    free(order);
    pc_keys_free(&a->keys);
    free(a->cells);
    a->keys = kept;
    a->cells = cells;
    a->cap = a->limit;
}

/* The pc_cell of (|bucket|, |g|: |n| bytes), added when new; NULL when it lies
 * past the cut (it cannot be in the answer). */
pc_cell *pc_cells_get(pc_cells *a, int64_t bucket, const char *g, size_t n)
{
    if (a->cut) {
        pc_cell_key k = {bucket, g, n, 0};
        if (by_bucket_group(&k, &a->top) > 0) return NULL;
    }
    bool added;
    size_t i = pc_keys_find(&a->keys, bucket, g, n, &added);
    if (added) {
        if (i >= a->cap) {
            a->cap = a->cap ? 2 * a->cap : 16;
            a->cells = pc_xrealloc(a->cells, a->cap * sizeof(*a->cells));
        }
        a->cells[i] = (pc_cell){.row = {.bucket_ns = bucket}};
        if (a->limit && a->keys.used > 2 * a->limit) {
            cells_prune(a);
            return pc_cells_get(a, bucket, g, n);
        }
    }
    return &a->cells[i];
}

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Appends |e| to |out| (|*w| entries), summed into the last entry when that
 * is of the same bin and the sum fits in 32 bits. */
static void put_bin(uint64_t *out, size_t *w, uint64_t e)
{
    uint64_t count = e & 0xffffffffu;
    if (*w > 0 && out[*w - 1] >> 32 == e >> 32 && (out[*w - 1] & 0xffffffffu) + count <= 0xffffffffu)
        out[*w - 1] += count;
    else
        out[(*w)++] = e;
}

/* Below this many entries added since the last compaction, they are sorted
 * and merged; from it on, summed per bin in a dense table first (linear in
 * the entries and the bins: a 30-day stats read adds 720 hours of stored
 * bins per cell, and sorting them was 72 % of its CPU). */
#define BINS_DENSE 256

/* Sorts |c|'s bins and sums the entries of each bin (a sum past 32 bits
 * takes more than one entry): the entries added since the last compaction,
 * merged with the sorted ones. Leaves room for as many entries again. */
static void compact_bins(pc_cell *c)
{
    size_t s = c->sorted_bins, n = c->n_bins, w = 0, i = 0;
    if (s == n) return;
    const uint64_t *old = c->bins;
    uint64_t *out = pc_xmalloc((n + 1) * sizeof(*out)); /* the sums take no more entries */
    if (n - s < BINS_DENSE) {
        qsort(c->bins + s, n - s, sizeof(*c->bins), by_u64);
        for (size_t j = s; i < s || j < n;)
            put_bin(out, &w, j == n || (i < s && old[i] >> 32 <= old[j] >> 32) ? old[i++] : old[j++]);
    } else {
        uint64_t *sum = pc_xcalloc(PC_HISTO_BINS, sizeof(*sum));
        for (size_t j = s; j < n; j++)
            sum[old[j] >> 32] += old[j] & 0xffffffffu;
        for (uint64_t bin = 0; bin < PC_HISTO_BINS; bin++) {
            while (i < s && old[i] >> 32 == bin)
                put_bin(out, &w, old[i++]);
            for (uint64_t left = sum[bin]; left > 0;) {
                uint64_t take = left < 0xffffffffu ? left : 0xffffffffu;
                put_bin(out, &w, bin << 32 | take);
                left -= take;
            }
        }
        free(sum);
    }
    size_t cap = 64;
    while (cap < 2 * w)
        cap *= 2;
    free(c->bins);
    c->bins = pc_xrealloc(out, cap * sizeof(*out));
    c->cap_bins = cap;
    c->n_bins = c->sorted_bins = w;
}

#define BINS_COMPACT 4096 /* entries of a pc_cell before its bins are summed per bin */

void pc_cell_bin(pc_cell *c, int bin, uint32_t count)
{
    /* compacting leaves room for as many entries as it kept, so the
     * compactions cost in proportion to what was added */
    if (c->n_bins == c->cap_bins && c->cap_bins >= BINS_COMPACT) compact_bins(c);
    if (c->n_bins == c->cap_bins) {
        c->cap_bins = c->cap_bins ? 2 * c->cap_bins : 64;
        c->bins = pc_xrealloc(c->bins, c->cap_bins * sizeof(*c->bins));
    }
    c->bins[c->n_bins++] = (uint64_t)bin << 32 | count;
}

/* The value of the nearest-rank percentile |pct| (1..100) of |c|'s sorted
 * bins holding |n| durations: the bin at 1-based rank ceil(pct * n / 100);
 * -1 when n is 0. */
static int64_t nearest_rank(const pc_cell *c, int64_t n, int pct)
{
    if (n == 0) return -1;
    int64_t rank = (n * pct + 99) / 100, seen = 0;
    if (rank < 1) rank = 1;
    for (size_t i = 0; i < c->n_bins; i++) {
        seen += (int64_t)(c->bins[i] & 0xffffffffu);
        if (seen >= rank) return pc_histo_value((int)(c->bins[i] >> 32));
    }
    return -1;
}

/* Completes every pc_cell (percentiles, cost) and hands them to |cb| in list
 * order, at most |max_rows|. */
void pc_cells_emit(pc_cells *a, int max_rows, pc_stats_cb cb, void *ud)
{
    size_t n = a->keys.used;
    pc_cell_key *order = pc_xmalloc((n ? n : 1) * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = (pc_cell_key){a->keys.k[i], a->keys.s[i], a->keys.n[i], i};
    qsort(order, n, sizeof(*order), by_bucket_group);
    int emitted = 0;
    for (size_t r = 0; r < n && emitted < max_rows; r++) {
        pc_cell *c = &a->cells[order[r].i];
        if (c->row.spans == 0) continue; /* emptied by pc_cells_subtract */
        emitted++;
        int64_t ended = 0;
        for (size_t i = 0; i < c->n_bins; i++)
            ended += (int64_t)(c->bins[i] & 0xffffffffu);
        compact_bins(c);
        c->row.latency_p50_ns = nearest_rank(c, ended, 50);
        c->row.latency_p95_ns = nearest_rank(c, ended, 95);
        c->row.latency_p99_ns = nearest_rank(c, ended, 99);
        if (!c->has_cost) c->row.cost_usd = NAN;
        c->row.group = order[r].group;
        if (cb(ud, &c->row) != 0) break;
    }
    free(order);
}

/* The number of key (|k|, |s|, |n| bytes), or -1 when |t| lacks it. */
static long keys_lookup(const pc_keys *t, int64_t k, const char *s, size_t n)
{
    if (!t->nslots) return -1;
    uint32_t j = t->slots[key_slot(t, k, s, n)];
    return j ? (long)j - 1 : -1;
}

/* Subtracts |neg|'s bins from |c|'s (both compacted); false when one would
 * go below zero. */
static bool subtract_bins(pc_cell *c, pc_cell *neg)
{
    compact_bins(c);
    compact_bins(neg);
    size_t i = 0;
    for (size_t k = 0; k < neg->n_bins; k++) {
        uint64_t bin = neg->bins[k] >> 32, left = neg->bins[k] & 0xffffffffu;
        while (left > 0) { /* a bin may span entries (sums past 32 bits) */
            while (i < c->n_bins && c->bins[i] >> 32 < bin)
                i++;
            if (i == c->n_bins || c->bins[i] >> 32 != bin) return false;
            uint64_t have = c->bins[i] & 0xffffffffu, take = have < left ? have : left;
            c->bins[i] -= take;
            left -= take;
            if (left > 0) i++;
        }
    }
    return true;
}

bool pc_cell_subtract(pc_cell *c, pc_cell *neg)
{
    pc_stats_row *r = &c->row;
    const pc_stats_row *m = &neg->row;
    if (r->spans < m->spans || r->traces < m->traces || r->errors < m->errors ||
        r->unpriced < m->unpriced || c->priced < neg->priced)
        return false;
    r->spans -= m->spans;
    r->traces -= m->traces;
    r->errors -= m->errors;
    r->unpriced -= m->unpriced;
    r->input_tokens -= m->input_tokens;
    r->output_tokens -= m->output_tokens;
    r->cost_usd -= m->cost_usd;
    c->priced -= neg->priced;
    c->has_cost = c->priced > 0;
    if (!c->has_cost) r->cost_usd = 0;
    return subtract_bins(c, neg);
}

void pc_cell_add(pc_cell *c, const pc_cell *more)
{
    pc_stats_row *r = &c->row;
    const pc_stats_row *m = &more->row;
    r->spans += m->spans;
    r->traces += m->traces;
    r->errors += m->errors;
    r->unpriced += m->unpriced;
    r->input_tokens = pc_tokens_add(r->input_tokens, m->input_tokens);
    r->output_tokens = pc_tokens_add(r->output_tokens, m->output_tokens);
    r->cost_usd += m->cost_usd; /* 0 while a cell has no cost (emit makes it NAN) */
    c->has_cost = c->has_cost || more->has_cost;
    c->priced += more->priced;
    for (size_t i = 0; i < more->n_bins; i++)
        pc_cell_bin(c, (int)(more->bins[i] >> 32), (uint32_t)(more->bins[i] & 0xffffffffu));
}

bool pc_cells_subtract(pc_cells *a, pc_cells *neg)
{
    bool emptied = false;
    for (size_t j = 0; j < neg->keys.used; j++) {
        long i = keys_lookup(&a->keys, neg->keys.k[j], neg->keys.s[j], neg->keys.n[j]);
        if (i < 0 || !pc_cell_subtract(&a->cells[i], &neg->cells[j])) return false;
        emptied = emptied || a->cells[i].row.spans == 0;
    }
    return !(emptied && a->cut);
}

void pc_cells_free(pc_cells *a)
{
    for (size_t i = 0; i < a->keys.used; i++)
        free(a->cells[i].bins);
    free(a->cells);
    free(a->top_group);
    pc_keys_free(&a->keys);
}

/* A rollup's bins: (bin delta, count) pairs as varints, bins ascending. */
static void put_varint(pc_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        pc_buf_putc(b, (char)(v | 0x80));
        v >>= 7;
    }
    pc_buf_putc(b, (char)v);
}

static bool get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return true;
    }
    return false;
}

/* |c|'s bins, summed per bin, into |out|. */
void pc_cell_encode_bins(pc_cell *c, pc_buf *out)
{
    compact_bins(c);
    uint64_t last = 0, count = 0;
    int64_t bin = -1;
    for (size_t i = 0; i <= c->n_bins; i++) {
        int64_t b = i < c->n_bins ? (int64_t)(c->bins[i] >> 32) : -2;
        if (b != bin && bin >= 0 && count > 0) { /* a bin emptied by a subtraction: none */
            put_varint(out, (uint64_t)bin - last);
            put_varint(out, count);
            last = (uint64_t)bin;
            count = 0;
        }
        bin = b;
        if (i < c->n_bins) count += c->bins[i] & 0xffffffffu;
    }
}

/* Adds the bins of a stored rollup to |c|; false when the blob is corrupt. */
bool pc_cell_decode_bins(pc_cell *c, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    uint64_t bin = 0, delta, count;
    bool sorted = c->n_bins == 0; /* stored bins ascend, one entry each */
    while (p < end) {
        if (!get_varint(&p, end, &delta) || !get_varint(&p, end, &count)) return false;
        if (delta == 0 && c->n_bins > 0) sorted = false; /* not as encoded: sort them */
        bin += delta;
        if (bin >= PC_HISTO_BINS || count > 0xffffffffu) return false;
        pc_cell_bin(c, (int)bin, (uint32_t)count);
    }
    if (sorted && c->n_bins < BINS_COMPACT) c->sorted_bins = c->n_bins;
    return true;
}


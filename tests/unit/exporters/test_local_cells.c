/*
 * test_local_cells.c - the latency bins of a stats cell (local_cells.h):
 * whatever order and size the entries come in (single spans, stored rollups'
 * sorted runs, counts near 32 bits), the compacted bins, their stored form
 * and the percentiles equal a dense count per bin computed here.
 */
#include "check.h"

#include "exporters/local_cells.h"
#include "histo.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


/* The dense counts of |c|'s compacted bins (its stored form compacts them);
 * false when they are out of bin order. With |stored|, the counts read back
 * from the stored form instead (a rollup's: sums below 2^32 per bin). */
static bool dense(pc_cell *c, uint64_t *out, bool stored)
{
    pc_buf b = PC_BUF_INIT;
    pc_cell_encode_bins(c, &b);
    pc_cell d = {0};
    bool ok = !stored || pc_cell_decode_bins(&d, (const unsigned char *)b.data, b.len);
    const pc_cell *from = stored ? &d : c;
    memset(out, 0, PC_HISTO_BINS * sizeof(*out));
    for (size_t i = 0; i < from->n_bins; i++) {
        if (i > 0 && from->bins[i] >> 32 < from->bins[i - 1] >> 32) ok = false;
        out[from->bins[i] >> 32] += from->bins[i] & 0xffffffffu;
    }
    free(d.bins);
    pc_buf_free(&b);
    return ok;
}

/* Entries of every shape into one cell, compared with the dense truth:
 * single spans in random bins (a few hundred distinct, as real latencies)
 * and stored rollups' sorted runs over many bins, with (|huge|) counts whose
 * sums pass 32 bits. */
static void bins_equal_dense(bool huge)
{
    static uint64_t want[PC_HISTO_BINS], got[PC_HISTO_BINS];
    pc_cell c = {0};
    memset(want, 0, sizeof(want));
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 5000; i++) {
            int bin = (int)(check_rnd() % 600) + 1000;
            pc_cell_bin(&c, bin, 1);
            want[bin]++;
        }
        for (int bin = (int)(check_rnd() % 50); bin < PC_HISTO_BINS; bin += 1 + (int)(check_rnd() % 7)) {
            uint32_t n = huge && check_rnd() % 64 == 0 ? 0xfffffff0u : (uint32_t)(1 + check_rnd() % 1000);
            pc_cell_bin(&c, bin, n);
            want[bin] += n;
        }
    }
    CHECK(dense(&c, got, false));
    int diff = 0;
    for (int i = 0; i < PC_HISTO_BINS; i++)
        diff += got[i] != want[i];
    CHECK_EQ_INT(diff, 0);
    if (!huge) {
        CHECK(dense(&c, got, true));
        diff = 0;
        for (int i = 0; i < PC_HISTO_BINS; i++)
            diff += got[i] != want[i];
        CHECK_EQ_INT(diff, 0);
        /* bounded: summed per bin, the room stays within twice the bins */
        CHECK(c.cap_bins <= 2 * 4096);
        CHECK(c.n_bins <= PC_HISTO_BINS);
    }
    free(c.bins);
}

static void test_bins_equal_dense(void)
{
    bins_equal_dense(false);
    bins_equal_dense(true);
}

/* Percentiles through pc_cells_emit: nearest rank over the bins. */
typedef struct got_row {
    pc_stats_row r;
    int n;
} got_row;

static int keep_row(void *ud, const pc_stats_row *r)
{
    got_row *g = ud;
    g->r = *r;
    g->n++;
    return 0;
}

static void test_percentiles(void)
{
    pc_cells a = {.limit = 10};
    pc_cell *c = pc_cells_get(&a, 0, "", 0);
    CHECK(c != NULL);
    /* 100 spans in bins 1..100 (one each), added newest bin first and in
     * passes big enough to compact several times */
    for (int pass = 0; pass < 100; pass++)
        for (int bin = 100; bin >= 1; bin--)
            pc_cell_bin(c, bin, 1);
    c->row.spans = 10000;
    got_row g = {.n = 0};
    pc_cells_emit(&a, 10, keep_row, &g);
    CHECK_EQ_INT(g.n, 1);
    CHECK_EQ_INT(g.r.latency_p50_ns, pc_histo_value(50));
    CHECK_EQ_INT(g.r.latency_p95_ns, pc_histo_value(95));
    CHECK_EQ_INT(g.r.latency_p99_ns, pc_histo_value(99));
    pc_cells_free(&a);
}

int main(void)
{
    RUN(test_bins_equal_dense);
    RUN(test_percentiles);
    return CHECK_DONE();
}

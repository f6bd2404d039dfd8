/*
 * histo.h - the log-scale bins of a duration, for the latency percentiles of
 * GET /api/v1/stats and /api/v1/models.
 *
 * Where it sits: the stores (local_stats.c, clickhouse_agg.c) find a
 * percentile's bin; the query receiver (query_llm.c) reports the bin's value.
 * Hour rollups (local_stats.c) keep a count per bin, so a percentile read from
 * a rollup and one read from the raw spans are the same number.
 *
 * The bins: a duration d < 128 ns is its own bin (exact). Above, d lies in
 * [2^e, 2^(e+1)) for e >= 7; that range is cut into 64 bins of width
 * 2^(e-6), so a bin spans at most 1/64 of its lower bound, and its value (the
 * midpoint, pc_histo_value) is within 1/128 (0.8%) of every duration in it.
 * Bins are numbered in order of duration, 0 .. PC_HISTO_BINS - 1: the
 * nearest-rank percentile's bin is the nearest-rank percentile of the bins.
 * Negative durations (a span that ends before it starts) count as 0.
 */
#ifndef PC_HISTO_H
#define PC_HISTO_H

#include <stdint.h>

/* Bins of durations 0 .. INT64_MAX. */
#define PC_HISTO_BINS 3712

/* The bin of duration |ns|. */
int pc_histo_bin(int64_t ns);

/* The value reported for bin |bin| (0 <= bin < PC_HISTO_BINS): its midpoint. */
int64_t pc_histo_value(int bin);

/* pc_histo_value(pc_histo_bin(ns)): what the API reports for duration |ns|. */
int64_t pc_histo_round(int64_t ns);

#endif

/*
 * hash.h - the one hash function for tables keyed by client data.
 *
 * Where it sits: every in-memory hash table whose keys a client chooses (trace
 * ids grouped in span.c, trace summaries in the local exporter, ...) hashes
 * with pc_hash. Nothing else may hash client bytes for a table.
 *
 * Why keyed: with a fixed public function (FNV-1a, what these tables used
 * before) a client can compute ids that all land in one bucket and turn one
 * request of n spans into n^2/2 probes (issue 10: 37 s of the single store
 * writer for 100k spans). pc_hash is SipHash-2-4 (Aumasson & Bernstein, 2012)
 * under a 128-bit key drawn from getrandom() once per process, so which ids
 * collide is unknown outside the process and differs between runs.
 *
 * Thread safety: the key is set up once (pthread_once) on first use; all
 * functions may be called from any thread.
 */
#ifndef PC_HASH_H
#define PC_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct pc_hash_key {
    uint64_t k0, k1; /* the key's bytes 0..7 and 8..15, little-endian */
} pc_hash_key;

/* SipHash-2-4 of |n| bytes at |p| under |key|: the reference function, for
 * tests and for callers that need a fixed key. |p| may be NULL when |n| is 0. */
uint64_t pc_siphash24(const pc_hash_key *key, const void *p, size_t n);

/* SipHash-2-4 of |n| bytes at |p| under the process key, with |seed| folded into
 * the key (pass 0, or the hash of another part of a compound key). */
uint64_t pc_hash_seeded(uint64_t seed, const void *p, size_t n);

/* SipHash-2-4 of |n| bytes at |p| under the process key. */
static inline uint64_t pc_hash(const void *p, size_t n)
{
    return pc_hash_seeded(0, p, n);
}

#endif

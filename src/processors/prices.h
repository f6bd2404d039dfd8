/*
 * prices.h - the model price table: its text format, its matching rule, the
 * cost arithmetic, and the set of models that had no price.
 *
 * Position: used by the normalize processor (normalize.h), which prices every
 * LLM and embedding span once, at ingest. The table shipped with the binary is
 * src/processors/prices.tsv, compiled in by CMake (pc_prices_builtin_text); an
 * operator file (normalize option `prices:`) in the same format adds entries
 * or overrides shipped ones, and is re-read on SIGHUP (pc_prices_reload_all).
 *
 * Format: one entry per line; '#' starts a comment line; blank lines are
 * ignored. Fields are separated by spaces or tabs:
 *
 *   provider  pattern  since  input  output  cache_read  cache_write  reasoning  [source...]
 *
 *   provider     '*' (any), or a name compared, ignoring case, with the span's
 *                llm_provider (gen_ai.provider.name / gen_ai.system / ...).
 *   pattern      POSIX extended regex, case-insensitive, anchored at both ends
 *                (the whole model name must match). No spaces, at most 256
 *                bytes, no back-references (\1..\9), repetition counts at
 *                most 255, and no repetitions nested so deep that the
 *                compiled pattern would exceed 2048 nodes ("((a+)+)+..."
 *                doubles per level).
 *   since        the date the price took effect, YYYY-MM-DD (00:00 UTC).
 *   input ...    USD per million tokens, decimal, 0 <= price <= 1,000,000.
 *                cache_read, cache_write: '-' = the input price (no cache
 *                discount); reasoning: '-' = the output price (providers bill
 *                reasoning tokens as output).
 *   source       free text to the end of the line: where the price comes from
 *                and the date it was read (required in the shipped table).
 *
 * An operator entry with the same provider, pattern (byte for byte) and date
 * as a shipped one replaces it; any other operator entry is added and takes
 * part in the matching rule like the shipped ones.
 *
 * Matching: a model name is tried as sent, then (when it has a '/') without
 * everything up to its last '/' ("openai/gpt-4o", "models/gemini-2.0-flash",
 * "meta-llama/Llama-3.3-70B-Instruct"). Among the entries whose provider and
 * pattern match and whose date is <= the span's start time, the winner is,
 * in this order:
 *   1. a provider-qualified entry over a '*' entry;
 *   2. the pattern with more literal characters (more specific: a pattern
 *      "gpt-4o-mini.*" beats "gpt-4o.*");
 *   3. the newer date (a price change is a new line with a later date);
 *   4. the operator file over the shipped table, then the later line.
 * A span with no start time is priced at the newest dates. Model names longer
 * than PC_PRICES_MAX_MODEL bytes are not priced (and counted as unpriced).
 *
 * Cost (GenAI semantics: input_tokens INCLUDES the cache-read and cache-write
 * tokens, output_tokens INCLUDES the reasoning tokens; unknown counts (-1) are 0):
 *   uncached = max(0, input - cache_read - cache_write)
 *   input $  = (uncached * input + cache_read * cache_read_price
 *               + cache_write * cache_write_price) / 1e6
 *   output $ = (max(0, output - reasoning) * output + reasoning * reasoning_price) / 1e6
 *   total $  = input $ + output $
 * in double precision: token counts up to INT64_MAX and prices up to 1e6 give
 * finite results; a result that is not finite is refused (no cost).
 *
 * Threads: a pc_prices is shared by the threads that run normalize; lookups
 * hold a reference to the table in force, reload swaps it (a counted
 * reference: a lookup that started on the old table finishes on it). The
 * lookup cache and the unpriced set are thread-safe and bounded.
 */
#ifndef PC_PRICES_H
#define PC_PRICES_H

#include "span.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_PRICES_MAX_MODEL 256     /* longest model (and provider) name priced */
#define PC_PRICES_MAX_PATTERN 256   /* longest pattern accepted */
#define PC_PRICES_MAX_ENTRIES 10000 /* most entries in one file */
#define PC_PRICES_UNPRICED_MAX 1000 /* distinct unpriced (provider, model) pairs kept */

/* USD per million tokens. */
typedef struct pc_price {
    double input, output, cache_read, cache_write, reasoning;
} pc_price;

/* Token counts as on pc_span (-1 = unknown). */
typedef struct pc_usage {
    int64_t input, output, cache_read, cache_write, reasoning;
} pc_usage;

/* A cost in USD. */
typedef struct pc_cost {
    double total, input, output;
} pc_cost;

/*
 * Applies |p| to |u| (the arithmetic above). Returns false, |c| untouched, when
 * neither the input nor the output count is known, or a result is not finite.
 */
bool pc_price_cost(const pc_price *p, const pc_usage *u, pc_cost *c);

/* The shipped table's text (generated from src/processors/prices.tsv). */
extern const char pc_prices_builtin_text[];

/* One parsed, compiled, immutable table (the shipped entries, plus an
 * operator file's). */
typedef struct pc_price_table pc_price_table;

/*
 * Parses the shipped table and, when |extra| is not NULL, the |extra_len|
 * bytes of an operator file named |extra_name| (in messages). Returns the table
 * (one reference), or NULL with |err| set to "<name> line L column C: <field>:
 * <what>" for the first bad field.
 */
pc_price_table *pc_price_table_parse(const char *extra, size_t extra_len, const char *extra_name,
                                     char *err, size_t errlen);
/* The shipped table alone, parsed once and shared by the whole process (one
 * more reference, which the caller drops). */
pc_price_table *pc_price_table_builtin(void);
/* Entries in |t| (shipped plus operator). */
size_t pc_price_table_size(const pc_price_table *t);
pc_price_table *pc_price_table_ref(pc_price_table *t);
/* Drops one reference; the last frees the table. Accepts NULL. */
void pc_price_table_unref(pc_price_table *t);

/*
 * Finds the price of |model| from |provider| (may be empty) at |at_ns| (Unix
 * ns; <= 0: newest) in |t| by the rule above. Returns true and fills |out|
 * when an entry matched; false when none did. Results are cached per
 * (provider, model) in |t| (bounded; a regex runs only on a cache miss).
 */
bool pc_price_table_lookup(pc_price_table *t, pc_str provider, pc_str model, int64_t at_ns,
                           pc_price *out);

/*
 * A price source that can be reloaded: the shipped table plus the operator
 * file at |path| (NULL or "": the shipped table only). Created by each
 * normalize processor; registered so that pc_prices_reload_all reaches it.
 */
typedef struct pc_prices pc_prices;

/* Loads |path| (may be NULL). Returns NULL with |err| set when the file
 * cannot be read or has a bad entry. */
pc_prices *pc_prices_create(const char *path, char *err, size_t errlen);
/* Unregisters and frees |p|; the current table lives on while referenced.
 * Accepts NULL. */
void pc_prices_destroy(pc_prices *p);
/* The table in force, with one reference the caller drops with
 * pc_price_table_unref. Never NULL. */
pc_price_table *pc_prices_acquire(pc_prices *p);
/*
 * Re-reads |p|'s file. On success swaps the table in (logged with the entry
 * count) and returns 0; on failure keeps the table in force, logs the error
 * (line, column, field) and returns -1. Without a file: 0, nothing done.
 */
int pc_prices_reload(pc_prices *p);
/* Reloads every live pc_prices (SIGHUP). Returns how many failed. */
int pc_prices_reload_all(void);

/*
 * Unpriced models: LLM and embedding spans whose model matched no entry (and
 * which carried no cost of their own), counted per (provider, model). At most
 * PC_PRICES_UNPRICED_MAX pairs are kept, process-wide; spans of further pairs
 * are counted in pc_prices_unpriced_overflow only. Thread-safe.
 */
void pc_prices_unpriced_add(pc_str provider, pc_str model);
/* Calls |fn| for each kept pair, in no set order, under the set's lock (|fn|
 * must not call back into this API). The strings are valid during the call. */
void pc_prices_unpriced_each(void (*fn)(const char *provider, const char *model, int64_t spans,
                                        void *ud),
                             void *ud);
/* Spans of pairs beyond the bound. */
int64_t pc_prices_unpriced_overflow(void);
/* Forgets every pair (tests). */
void pc_prices_unpriced_reset(void);

#endif

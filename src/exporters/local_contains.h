/*
 * local_contains.h - pc_contains(text, needle) and pc_span_match(needle, span
 * columns...), the embedded store's search matchers, as SQLite functions.
 *
 * Where it sits: local_query.c registers them on a read connection before each
 * query; search's SQL calls pc_span_match on each candidate span (local_text.h
 * has the search text it stands for), and pc_contains on attached events. Why not
 * LIKE '%needle%': SQLite's LIKE backtracks, costing value length x pattern
 * length per row (seconds for a 2 MB attribute and a 1,000-byte text), inside
 * one virtual machine instruction where the progress handler cannot stop it.
 * pc_contains is linear and asks the query's deadline as it goes.
 */
#ifndef PC_LOCAL_CONTAINS_H
#define PC_LOCAL_CONTAINS_H

#include <sqlite3.h>
#include <stddef.h>

/*
 * Registers pc_contains(text, needle) on |db|: 1 when |needle| occurs in
 * |text| ignoring case as pc_local_fold (local_text.h) folds it (Unicode
 * letters of the common alphabets, not only ASCII; % _ \ are literal), else 0; NULL text is 0, an empty needle matches. Every
 * 64 KiB of text it calls |past_deadline|(|ud|); non-zero fails the statement.
 * A later registration on |db| replaces this one. Returns an SQLite code.
 */
int pc_local_contains_register(sqlite3 *db, int (*past_deadline)(void *ud), void *ud);

/*
 * It also registers pc_span_match(needle, name, attributes, events,
 * input_messages, output_messages), the columns of one span (JSON ones
 * decompressed): pc_contains(pc_search_text(name, ...), needle), the same
 * answer, but for a needle of printable ASCII with a letter in it, a span
 * none of whose columns holds the needle's bytes (ignoring ASCII case) is
 * answered 0 without building its search text. Same deadline.
 */

/*
 * The same matcher outside SQLite (the clickhouse store verifies its search
 * candidates with it, so both stores find exactly the same texts): a needle
 * built once from |n| bytes of |s|, then pc_local_needle_in(nd, t, tn): 1 when
 * it occurs in the |tn| bytes at |t| under pc_contains' folding, else 0.
 */
typedef struct pc_local_needle pc_local_needle;
pc_local_needle *pc_local_needle_create(const char *s, size_t n);
int pc_local_needle_in(const pc_local_needle *nd, const char *t, size_t tn);
void pc_local_needle_destroy(pc_local_needle *nd);

#endif

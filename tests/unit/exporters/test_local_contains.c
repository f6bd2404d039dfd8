/*
 * test_local_contains.c - the embedded store's search matchers as SQLite
 * functions (local_contains.h): pc_span_match(needle, name, attributes,
 * events, input_messages, output_messages) answers exactly what
 * pc_contains(pc_search_text(...), needle) answers, including the stored
 * bytes that differ from the search text (JSON escapes, numbers written
 * again, keys, Unicode folding), where its shortcut must not decide.
 */
#include "check.h"

#include "exporters/local_contains.h"
#include "exporters/local_text.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static int never(void *ud)
{
    (void)ud;
    return 0;
}

static sqlite3 *open_db(void)
{
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(":memory:", &db), SQLITE_OK);
    CHECK_EQ_INT(pc_local_text_register(db), SQLITE_OK);
    CHECK_EQ_INT(pc_local_contains_register(db, never, NULL), SQLITE_OK);
    return db;
}

/* One span's columns as stored (JSON text). */
typedef struct span_cols {
    const char *name, *attrs, *events, *in, *out;
} span_cols;

/* pc_span_match's answer (|fast| 1) or pc_contains over pc_search_text's (0). */
static int match(sqlite3 *db, const span_cols *c, const char *needle, int fast)
{
    sqlite3_stmt *st = NULL;
    const char *sql = fast ? "SELECT pc_span_match(?6, ?1, ?2, ?3, ?4, ?5)"
                           : "SELECT pc_contains(pc_search_text(?1, ?2, ?3, ?4, ?5), ?6)";
    CHECK_EQ_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    const char *v[6] = {c->name, c->attrs, c->events, c->in, c->out, needle};
    for (int i = 0; i < 6; i++)
        sqlite3_bind_text(st, i + 1, v[i], -1, SQLITE_STATIC);
    int r = -1;
    if (sqlite3_step(st) == SQLITE_ROW) r = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return r;
}

static const span_cols SPANS[] = {
    {"chat gpt-4o", "{\"gen_ai.prompt\":\"Where is my Refund?\",\"n\":3}", "[]", "", ""},
    /* an escape hides ASCII bytes: the stored text lacks "abc" */
    {"s", "{\"k\":\"\\u0041BC and caf\\u00e9\"}", "[]", "", ""},
    /* "\/" is '/' in the search text */
    {"s", "{\"url\":\"https:\\/\\/example.com\\/path\"}", "[]", "", ""},
    /* numbers: 1E2 is 100 and 1.50 is 1.5 in the search text */
    {"s", "{\"a\":1E2,\"b\":1.50,\"c\":true,\"d\":\"Infinity\"}", "[]", "", ""},
    /* keys are stored but not searched */
    {"s", "{\"secretkey\":\"value\"}", "[]", "", ""},
    /* events: names and attribute values; messages */
    {"s", "{}",
     "[{\"name\":\"gen_ai.choice\",\"time\":\"2026-01-01T00:00:00Z\","
     "\"attributes\":{\"text\":\"Line one\\nLine two\"}}]",
     "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"\\u00c9COLE Hello\"}]}]",
     "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"Bye \\\"friend\\\"\"}]}]"},
    /* non-JSON bytes in the name; an escaped backslash before a u */
    {"Na\xc3\xafve NAME", "{\"p\":\"C:\\\\users\\\\x\"}", "[]", "", ""},
};

static const char *const NEEDLES[] = {
    "refund",   "REFUND?",   "where is", "gpt-4O",    "abc",       "abc and", "café",
    "https://", "example",   ".com/pa",  "100",       "1.5",       "1.50",    "true",
    "infinity", "nan",       "secretkey", "value",    "gen_ai.choice", "line one",
    "line one\nline", "line two", "école",  "hello",  "bye \"friend\"", "friend",
    "naïve",    "naive",     "name",     "c:\\users", "users",     "xyz",     "n\":3",
    "3",        "",          "2026-01-01", "role",     "assistant", "1e2",
};

/* Every needle against every span: both functions agree. */
static void test_same_answers(void)
{
    sqlite3 *db = open_db();
    int matched = 0;
    for (size_t s = 0; s < sizeof(SPANS) / sizeof(SPANS[0]); s++)
        for (size_t n = 0; n < sizeof(NEEDLES) / sizeof(NEEDLES[0]); n++) {
            int slow = match(db, &SPANS[s], NEEDLES[n], 0);
            int fast = match(db, &SPANS[s], NEEDLES[n], 1);
            if (slow != fast)
                fprintf(stderr, "span %zu needle \"%s\": pc_contains %d, pc_span_match %d\n", s,
                        NEEDLES[n], slow, fast);
            CHECK_EQ_INT(fast, slow);
            matched += slow == 1;
        }
    CHECK(matched > 20); /* the table is not all misses */
    sqlite3_close(db);
}

/* The cases the shortcut must leave to the search text, by hand. */
static void test_hidden_bytes(void)
{
    sqlite3 *db = open_db();
    CHECK_EQ_INT(match(db, &SPANS[1], "abc", 1), 1);      /* \u0041 */
    CHECK_EQ_INT(match(db, &SPANS[2], "https://", 1), 1); /* \/ */
    CHECK_EQ_INT(match(db, &SPANS[3], "100", 1), 1);      /* 1E2 */
    CHECK_EQ_INT(match(db, &SPANS[3], "1e2", 1), 0);
    CHECK_EQ_INT(match(db, &SPANS[4], "secretkey", 1), 0); /* a key */
    CHECK_EQ_INT(match(db, &SPANS[5], "école", 1), 1);    /* \u00c9 folded */
    CHECK_EQ_INT(match(db, &SPANS[5], "hello", 1), 1);
    CHECK_EQ_INT(match(db, &SPANS[5], "line one\nline", 1), 1); /* a value's own line end */
    CHECK_EQ_INT(match(db, &SPANS[0], "REFUND?", 1), 1);
    CHECK_EQ_INT(match(db, &SPANS[0], "xyz", 1), 0);
    sqlite3_close(db);
}

int main(void)
{
    RUN(test_same_answers);
    RUN(test_hidden_bytes);
    return CHECK_DONE();
}

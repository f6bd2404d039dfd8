/*
 * test_local_contains.c - the embedded store's search matchers as SQLite
 * functions (local_contains.h): pc_span_match(needle, name, attributes,
 * events, input_messages, output_messages) answers exactly what
 * pc_contains(pc_search_text(...), needle) answers, including the stored
 * bytes that differ from the search text (JSON escapes, numbers written
 * again, keys, Unicode folding), where its shortcut must not decide; and
 * pc_local_needle_in answers what a brute force over the folded text does.
 */
#include "check.h"

#include "exporters/local_contains.h"
#include "exporters/local_text.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
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

/* The folded form of |n| bytes at |s| as the search folds it, written here
 * from the contract (each code point folded by pc_local_fold; a malformed
 * byte is itself), into |out| (4 bytes of room per byte); returns its length. */
static size_t fold_ref(const unsigned char *s, size_t n, unsigned char *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        unsigned char b = s[i];
        size_t len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3
                                   : (b & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t c = b;
        bool ok = len > 0 && i + len <= n;
        if (ok && len > 1) {
            c = b & (0x7F >> len);
            for (size_t k = 1; k < len; k++) {
                if ((s[i + k] & 0xC0) != 0x80) ok = false;
                c = (c << 6) | (s[i + k] & 0x3F);
            }
        }
        if (!ok) {
            out[m++] = b;
            i++;
            continue;
        }
        m += pc_local_utf8_put(pc_local_fold(c), out + m);
        i += len;
    }
    return m;
}

/* Whether |q| occurs in |t| under fold_ref, by brute force. */
static int contains_ref(const unsigned char *t, size_t tn, const unsigned char *q, size_t qn)
{
    static unsigned char ft[4 * 4096], fq[4 * 256];
    size_t ftn = fold_ref(t, tn, ft), fqn = fold_ref(q, qn, fq);
    if (fqn == 0) return 1;
    for (size_t i = 0; i + fqn <= ftn; i++)
        if (memcmp(ft + i, fq, fqn) == 0) return 1;
    return 0;
}

/*
 * pc_local_needle_in against the brute force over random texts: ASCII of
 * both cases, code points the folding changes (a capital's bytes never hold
 * ASCII), stray bytes, and needles cut from the text with their case
 * flipped, so the 16-at-a-time path, its last positions and its candidates
 * are all exercised; ASCII needles and others.
 */
static void test_needle_random(void)
{
    static const char *const pieces[] = {"a", "B", "t", "E", " ", "th", "Th", "\xc3\x89",
                                         "\xc3\xa9", "\xd0\x9f", "\xc4\xb0", "\xff", "\n", "x",
                                         "-", "@", "`", "\xe2\x82\xac"};
    enum { NPIECES = sizeof(pieces) / sizeof(pieces[0]) };
    uint64_t x = 12345;
    unsigned char t[4096], q[256];
    int hits = 0, runs = 0;
    for (int round = 0; round < 3000; round++) {
        size_t tn = 0;
        size_t want = 1 + (size_t)(round % 7 == 0 ? 1000 : round % 90);
        while (tn < want && tn + 4 < sizeof(t)) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *p = pieces[(x >> 33) % NPIECES];
            memcpy(t + tn, p, strlen(p));
            tn += strlen(p);
        }
        for (int k = 0; k < 4; k++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t qn = 1 + (x >> 40) % 12, at = (x >> 20) % tn;
            if (at + qn > tn) qn = tn - at;
            memcpy(q, t + at, qn);
            for (size_t i = 0; i < qn; i++) /* flip the case of some ASCII letters */
                if (((x >> (i % 60)) & 1) && ((q[i] | 0x20) >= 'a' && (q[i] | 0x20) <= 'z'))
                    q[i] ^= 0x20;
            if (k == 3) q[qn / 2] = 'z'; /* mostly a miss */
            pc_local_needle *nd = pc_local_needle_create((const char *)q, qn);
            int got = pc_local_needle_in(nd, (const char *)t, tn);
            int ref = contains_ref(t, tn, q, qn);
            if (got != ref)
                fprintf(stderr, "round %d: needle of %zu bytes in %zu: %d, brute force %d\n",
                        round, qn, tn, got, ref);
            CHECK_EQ_INT(got, ref);
            pc_local_needle_destroy(nd);
            hits += ref;
            runs++;
        }
    }
    CHECK(hits > runs / 2);
    CHECK(hits < runs);

    /* a text built to look like the needle: found at its very end, and the
     * work stays linear (the KMP automaton takes over) */
    static unsigned char big[1 << 20];
    memset(big, 'a', sizeof(big));
    static const char needle[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaBaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    pc_local_needle *nd = pc_local_needle_create(needle, strlen(needle));
    CHECK_EQ_INT(pc_local_needle_in(nd, (const char *)big, sizeof(big)), 0);
    memcpy(big + sizeof(big) - strlen(needle), needle, strlen(needle));
    big[sizeof(big) - 32] = 'b';
    CHECK_EQ_INT(pc_local_needle_in(nd, (const char *)big, sizeof(big)), 1);
    big[sizeof(big) - 32] = 'c';
    CHECK_EQ_INT(pc_local_needle_in(nd, (const char *)big, sizeof(big)), 0);
    pc_local_needle_destroy(nd);
}

int main(void)
{
    RUN(test_same_answers);
    RUN(test_hidden_bytes);
    RUN(test_needle_random);
    return CHECK_DONE();
}

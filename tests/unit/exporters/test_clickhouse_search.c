/*
 * test_clickhouse_search.c - the clickhouse exporter's search index
 * (clickhouse_search.c) and the trigram keys under it (local_text.c), no
 * server: a query's keys are among the keys of every text holding it (so an
 * indexed search never misses), pieces and blocks, the rows' lines and
 * partitions, the pieces pc_ch_encode_batch builds from the rows' JSON, and
 * the reads' SQL with hostile text. The engines run the real
 * thing in tests/integration/test_clickhouse.py.
 */
#include "check.h"

#include "exporters/clickhouse_encode.h"
#include "exporters/clickhouse_search.h"
#include "exporters/local_contains.h"
#include "exporters/local_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has(const pc_buf *b, const char *s)
{
    bool ok = b->data && strstr(b->data, s) != NULL;
    if (!ok) fprintf(stderr, "missing \"%s\" in: %s\n", s, b->data ? b->data : "(null)");
    return ok;
}

static bool in_set(const pc_local_keyset *s, uint64_t k)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->key[i] == k) return true;
    return false;
}

/* Every key of |q| is a key of |text|, and the needle finds |q| in it. */
static bool served(const char *text, const char *q)
{
    pc_local_keyset set = PC_LOCAL_KEYSET_INIT;
    pc_local_keyset_add_text(&set, text, strlen(text));
    uint64_t keys[PC_CH_SEARCH_KEYS];
    int n = pc_local_query_keys(q, strlen(q), keys, PC_CH_SEARCH_KEYS);
    bool ok = n > 0;
    for (int i = 0; i < n; i++)
        ok = ok && in_set(&set, keys[i]);
    pc_local_needle *nd = pc_local_needle_create(q, strlen(q));
    ok = ok && pc_local_needle_in(nd, text, strlen(text)) == 1;
    pc_local_needle_destroy(nd);
    pc_local_keyset_free(&set);
    if (!ok) fprintf(stderr, "not served: \"%s\" in \"%s\"\n", q, text);
    return ok;
}

static void test_keys(void)
{
    const char *text = "What is the capital of France? Answer with the \"city\" name.\n"
                       "\xc3\x89T\xc3\x89 \xd0\x9c\xd0\x9e\xd0\xa1\xd0\x9a\xd0\x92\xd0\x90 \\path\\x";
    CHECK(served(text, "capital"));
    CHECK(served(text, "CAPITAL OF fr"));
    CHECK(served(text, "with the \"city\" name"));
    CHECK(served(text, "\xc3\xa9t\xc3\xa9"));             /* été finds ÉTÉ */
    CHECK(served(text, "\xd0\xbc\xd0\xbe\xd1\x81\xd0\xba")); /* моск finds МОСК */
    CHECK(served(text, "\\path\\"));
    CHECK(served(text, "e? Answer with the \"city\" name. And more than eight trigrams") == false);
    /* keys: distinct, at most PC_CH_SEARCH_KEYS, none under 3 code points or across a line */
    uint64_t keys[PC_CH_SEARCH_KEYS];
    CHECK_EQ_INT(pc_local_query_keys("ab", 2, keys, PC_CH_SEARCH_KEYS), 0);
    CHECK_EQ_INT(pc_local_query_keys("\xc3\xa9\xc3\xa9", 4, keys, PC_CH_SEARCH_KEYS), 0);
    CHECK_EQ_INT(pc_local_query_keys("abc\ndef", 7, keys, PC_CH_SEARCH_KEYS), 0);
    CHECK_EQ_INT(pc_local_query_keys("aaaaaaaaaaaa", 12, keys, PC_CH_SEARCH_KEYS), 1);
    CHECK_EQ_INT(pc_local_query_keys("abc", 3, keys, PC_CH_SEARCH_KEYS), 1);
    char longq[2001];
    unsigned x = 1; /* not periodic: 8 samples, 8 distinct trigrams */
    for (int i = 0; i < 2000; i++) {
        x = x * 1103515245u + 12345u;
        longq[i] = (char)('a' + (x >> 16) % 26);
    }
    longq[2000] = '\0';
    CHECK_EQ_INT(pc_local_query_keys(longq, 2000, keys, PC_CH_SEARCH_KEYS), PC_CH_SEARCH_KEYS);
    /* a stray byte is a code point of its own, on both sides */
    CHECK(served("ab\xff" "cd", "b\xff" "c"));
    /* trigrams never span lines: "c\nd" is two lines, "bcd" is not in it */
    pc_local_keyset set = PC_LOCAL_KEYSET_INIT;
    pc_local_keyset_add_text(&set, "abc\ndef", 7);
    CHECK_EQ_INT((int)set.n, 2);
    pc_local_keyset_add_text(&set, "ABC", 3); /* folded: the same key */
    CHECK_EQ_INT((int)set.n, 2);
    uint64_t more[2] = {set.key[0], 12345};
    pc_local_keyset_add_keys(&set, more, 2);
    CHECK_EQ_INT((int)set.n, 3);
    pc_local_keyset_clear(&set);
    CHECK_EQ_INT((int)set.n, 0);
    pc_local_keyset_add_text(&set, "abc", 3);
    CHECK_EQ_INT((int)set.n, 1);
    /* ASCII trigrams (a bitmap) and the others (a hash set) side by side: each
     * kept once, in first-seen order, and a clear forgets both kinds */
    const char *mixed = "cafÃ© cafÃ© zz~ zz~"; /* "caf", "afé", "fé ", ... */
    pc_local_keyset_clear(&set);
    pc_local_keyset_add_text(&set, mixed, strlen(mixed));
    size_t distinct = set.n;
    int wide = 0;
    for (size_t i = 0; i < set.n; i++) {
        uint32_t a = (uint32_t)(set.key[i] >> 42 & 0x1FFFFF), b = (uint32_t)(set.key[i] >> 21 & 0x1FFFFF);
        uint32_t c = (uint32_t)(set.key[i] & 0x1FFFFF);
        wide += a > 0x7F || b > 0x7F || c > 0x7F;
        for (size_t j = 0; j < i; j++)
            CHECK(set.key[j] != set.key[i]);
    }
    CHECK(wide >= 3 && (int)distinct - wide >= 3); /* both kinds were exercised */
    pc_local_keyset_add_text(&set, mixed, strlen(mixed));
    CHECK_EQ_INT((int)set.n, (int)distinct);
    pc_local_keyset_clear(&set);
    CHECK_EQ_INT((int)set.n, 0);
    pc_local_keyset_add_text(&set, mixed, strlen(mixed));
    CHECK_EQ_INT((int)set.n, (int)distinct); /* none of them still counted as seen */
    /* a spread of the whole ASCII range (the bitmap's), each trigram twice, against a
     * plain array of the folded trigrams; twice over, a clear between */
    static bool ref[1 << 21];
    size_t want = 0;
    for (int x = 1; x < 128; x += 3)
        for (int y = 1; y < 128; y += 5)
            for (int z = 1; z < 128; z += 7) {
                if (x == '\n' || y == '\n' || z == '\n') continue;
                int f[3] = {x, y, z};
                for (int k = 0; k < 3; k++)
                    if (f[k] >= 'A' && f[k] <= 'Z') f[k] += 32;
                bool *r = &ref[f[0] << 14 | f[1] << 7 | f[2]];
                want += !*r;
                *r = true;
            }
    for (int round = 0; round < 2; round++) {
        pc_local_keyset_clear(&set);
        for (int x = 1; x < 128; x += 3)
            for (int y = 1; y < 128; y += 5)
                for (int z = 1; z < 128; z += 7) {
                    if (x == '\n' || y == '\n' || z == '\n') continue;
                    char t[3] = {(char)x, (char)y, (char)z};
                    pc_local_keyset_add_text(&set, t, 3);
                    pc_local_keyset_add_text(&set, t, 3);
                }
        CHECK_EQ_INT((int)set.n, (int)want);
    }
    pc_local_keyset_free(&set);
}

/* Adds to |b| a span of trace |tid| in project |p| starting at |start| ns. */
static void span(pc_batch *b, const char *p, const char *tid, const char *sid, const char *name,
                 int64_t start)
{
    pc_span *s = pc_batch_add(b);
    s->project_id = (pc_str){p, strlen(p)};
    s->trace_id = (pc_str){tid, strlen(tid)};
    s->span_id = (pc_str){sid, strlen(sid)};
    s->name = (pc_str){name, strlen(name)};
    s->start_ns = start;
}

/* The number of lines of |r| holding |s|. */
static int lines_with(const pc_ch_rows *r, const char *s)
{
    int n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *line = r->text.data + r->v[i].off;
        char *nl = memchr(line, '\n', r->text.len - r->v[i].off);
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (memmem(line, len, s, strlen(s))) n++;
    }
    return n;
}

static void test_blocks(void)
{
    static char ids[600][16];
    /* 300 traces in one batch: a piece of 256 and one of 44; two batches more of 1 trace */
    pc_batch *b = pc_batch_create(NULL);
    const int64_t jan = 1767225600000000000LL; /* 2026-01-01 */
    for (int i = 0; i < 300; i++) {
        snprintf(ids[i], sizeof(ids[i]), "t%03d", i);
        span(b, "p", ids[i], "s1", i == 7 ? "needle Zebra" : "plain", jan + i);
    }
    pc_ch_search_acc acc = PC_CH_SEARCH_ACC_INIT, piece = PC_CH_SEARCH_ACC_INIT;
    pc_ch_search_add_batch(&piece, b);
    CHECK_EQ_INT((int)piece.npieces, 2);
    CHECK_EQ_INT((int)piece.ntraces, 300);
    pc_ch_search_move(&acc, &piece);
    CHECK_EQ_INT((int)piece.npieces, 0);
    pc_batch_unref(b);
    b = pc_batch_create(NULL);
    const int64_t feb = jan + 31LL * 86400 * 1000000000; /* 2026-02-01 */
    span(b, "x' OR 1=1 --\\\"", "t-evil", "s1", "plain", feb + 86400000000000LL);
    span(b, "x' OR 1=1 --\\\"", "t-evil", "s2", "second span", feb);
    pc_ch_search_add_batch(&piece, b);
    pc_ch_search_move(&acc, &piece);
    pc_batch_unref(b);
    CHECK_EQ_INT((int)acc.npieces, 3);
    CHECK_EQ_INT((int)acc.ntraces, 301);

    pc_ch_rows grams = PC_CH_ROWS_INIT, blocks = PC_CH_ROWS_INIT;
    uint64_t seq = 1000;
    pc_ch_search_rows(&acc, &seq, &grams, &blocks);
    /* the first piece alone reaches 256 traces; the other two make one block. A block's
     * id: its latest trace start, the low 8 bits a sequence number */
    CHECK(seq == 1002);
    unsigned long long b0 = ((unsigned long long)(jan + 255) & ~0xFFull) | (1000 & 0xFF),
                       b1 = ((unsigned long long)feb & ~0xFFull) | (1001 & 0xFF);
    char blk0[48], blk1[48];
    snprintf(blk0, sizeof(blk0), "\"block\":%llu,", b0);
    snprintf(blk1, sizeof(blk1), "\"block\":%llu,", b1);
    CHECK_EQ_INT((int)blocks.n, 301);
    CHECK_EQ_INT(lines_with(&blocks, blk0), 256);
    CHECK_EQ_INT(lines_with(&blocks, blk1), 45);
    CHECK_EQ_INT(lines_with(&blocks, "\"project_id\":\"x' OR 1=1 --\\\\\\\"\""), 1);
    /* the trace's start is its earliest span's; its row lies in that month */
    CHECK_EQ_INT(lines_with(&blocks, "\"trace_id\":\"t-evil\",\"started_ns\":1769904000000000000}"), 1);
    /* keys: "zebra" in block 1000 only, "second" in 1001 only, "plain" in both */
    uint64_t zeb[1], sec[1], pla[1];
    CHECK_EQ_INT(pc_local_query_keys("zeb", 3, zeb, 1), 1);
    CHECK_EQ_INT(pc_local_query_keys("sec", 3, sec, 1), 1);
    CHECK_EQ_INT(pc_local_query_keys("pla", 3, pla, 1), 1);
    char want[96];
    snprintf(want, sizeof(want), "{\"gram\":%llu,\"block\":%llu}", (unsigned long long)zeb[0], b0);
    CHECK_EQ_INT(lines_with(&grams, want), 1);
    snprintf(want, sizeof(want), "{\"gram\":%llu,\"block\":%llu}", (unsigned long long)zeb[0], b1);
    CHECK_EQ_INT(lines_with(&grams, want), 0);
    snprintf(want, sizeof(want), "{\"gram\":%llu,\"block\":%llu}", (unsigned long long)sec[0], b1);
    CHECK_EQ_INT(lines_with(&grams, want), 1);
    snprintf(want, sizeof(want), "{\"gram\":%llu,", (unsigned long long)pla[0]);
    CHECK_EQ_INT(lines_with(&grams, want), 2); /* once per block: the union is distinct */
    /* a block's grams lie in the month of its latest trace (February for block 1001) */
    for (size_t i = 0; i < grams.n; i++)
        if (memmem(grams.text.data + grams.v[i].off, grams.v[i].len, blk1 + 8, strlen(blk1 + 8) - 1))
            CHECK_EQ_INT(grams.v[i].month, 202602);
    pc_ch_rows_free(&grams);
    pc_ch_rows_free(&blocks);
    pc_ch_search_free(&acc);
    pc_ch_search_free(&piece);
}

/* Traces without any search text: pieces and a block with no keys (no grams rows). */
static void test_no_text(void)
{
    pc_batch *b = pc_batch_create(NULL);
    span(b, "p", "t-empty", "s1", "", 1767225600000000000LL);
    pc_ch_search_acc acc = PC_CH_SEARCH_ACC_INIT, piece = PC_CH_SEARCH_ACC_INIT;
    pc_ch_search_add_batch(&piece, b);
    CHECK_EQ_INT((int)piece.npieces, 1);
    CHECK_EQ_INT((int)piece.nkeys, 0);
    pc_ch_search_move(&acc, &piece);
    pc_ch_search_add_batch(&piece, b); /* a second piece without keys, then rows of both */
    pc_ch_search_move(&acc, &piece);
    pc_batch_unref(b);
    pc_ch_rows grams = PC_CH_ROWS_INIT, blocks = PC_CH_ROWS_INIT;
    uint64_t seq = 1;
    pc_ch_search_rows(&acc, &seq, &grams, &blocks);
    CHECK_EQ_INT((int)grams.n, 0);
    CHECK_EQ_INT((int)blocks.n, 2);
    pc_ch_rows_free(&grams);
    pc_ch_rows_free(&blocks);
    pc_ch_search_free(&acc);
    pc_ch_search_free(&piece);
}

/* pc_ch_encode_batch builds the same pieces from the rows' JSON as
 * pc_ch_search_add_batch does from its own, carriers included, and writes
 * one span row per span and one trace row per trace with a span. */
static void test_encode(void)
{
    static pc_kv kv[2];
    static pc_event ev[1];
    kv[0] = (pc_kv){{"gen_ai.prompt", 13}, {.type = PC_V_STR, .s = {"Quokka island", 13}}};
    kv[1] = (pc_kv){{"retries", 7}, {.type = PC_V_INT, .i = 31337}};
    ev[0] = (pc_event){.name = {"exception", 9}, .time_ns = 5, .attrs = {kv, 1}};
    pc_batch *b = pc_batch_create(NULL);
    const int64_t jan = 1767225600000000000LL;
    span(b, "p", "t1", "s1", "plain one", jan);
    span(b, "p", "t2", "s1", "other trace", jan + 1);
    b->spans[1].attrs = (pc_attrs){kv, 2};
    span(b, "p", "t1", "s2", "second of t1", jan + 2);
    b->spans[2].events = ev;
    b->spans[2].n_events = 1;
    span(b, "p", "t3", "s9", "", jan + 3); /* a carrier alone: no span or trace row */
    b->spans[3].carrier = true;
    b->spans[3].events = ev;
    b->spans[3].n_events = 1;
    pc_ch_search_acc want = PC_CH_SEARCH_ACC_INIT, got = PC_CH_SEARCH_ACC_INIT;
    pc_ch_search_add_batch(&want, b);
    pc_ch_rows spans = PC_CH_ROWS_INIT, traces = PC_CH_ROWS_INIT, events = PC_CH_ROWS_INIT;
    pc_ch_encode_batch(b, PC_CH_LEGACY, &spans, &traces, &events, &got);
    CHECK_EQ_INT((int)spans.n, 3);
    CHECK_EQ_INT((int)traces.n, 2);
    CHECK_EQ_INT((int)events.n, 1);
    CHECK_EQ_INT((int)got.ntraces, 3);
    CHECK_EQ_INT((int)got.npieces, (int)want.npieces);
    CHECK_EQ_INT((int)got.nkeys, (int)want.nkeys);
    CHECK(got.nkeys > 0 && memcmp(got.keys, want.keys, got.nkeys * sizeof(*got.keys)) == 0);
    uint64_t k[1];
    CHECK_EQ_INT(pc_local_query_keys("okk", 3, k, 1), 1); /* an attribute value's */
    bool found = false;
    for (size_t i = 0; i < got.nkeys; i++)
        found = found || got.keys[i] == k[0];
    CHECK(found);
    /* the rows hold it (escaped JSON): an attribute of one span, an event's of another */
    CHECK_EQ_INT(lines_with(&spans, "Quokka island"), 2);
    pc_ch_rows_free(&spans);
    pc_ch_rows_free(&traces);
    pc_ch_rows_free(&events);
    pc_ch_search_free(&want);
    pc_ch_search_free(&got);
    pc_batch_unref(b);
}

static void test_sql(void)
{
    pc_buf b = PC_BUF_INIT;
    pc_ch_ddl_search(&b, PC_CH_LEGACY, "db", 0);
    CHECK(has(&b, "CREATE TABLE IF NOT EXISTS `db`.`search_grams` (gram UInt64, block UInt64)"));
    CHECK(has(&b, "PARTITION BY toYYYYMM(toDateTime(least(greatest(intDiv(block, 1000000000), 0),"
                  " 4294967295))) ORDER BY (gram, block)"));
    CHECK(!strstr(b.data, "TTL"));
    pc_buf_reset(&b);
    pc_ch_ddl_search(&b, PC_CH_MODERN, "db", 1);
    CHECK(has(&b, "`db`.`search_blocks`") && has(&b, "ORDER BY (block, project_id, trace_id)"));
    CHECK(has(&b, "TTL toDateTime(least(greatest(intDiv(started_ns, 1000000000), 0), 4294967295))"
                  " + INTERVAL 90 DAY"));
    pc_buf_reset(&b);
    uint64_t keys[2] = {1, 18446744073709551615ull};
    pc_ch_sql_search_candidates(&b, "db", keys, 2, 65);
    CHECK(has(&b, "groupUniqArray(block) FROM `db`.search_blocks WHERE block IN (SELECT block"
                  " FROM `db`.search_grams WHERE gram IN (1, 18446744073709551615) GROUP BY block"
                  " HAVING uniqExact(gram) = 2 ORDER BY block DESC LIMIT 65) GROUP BY project_id,"
                  " trace_id ORDER BY s DESC"));
    pc_buf_reset(&b);
    const char *projects[2] = {"p1", "x') OR 1=1 --"}, *tids[2] = {"t1", "t'2"};
    pc_ch_sql_verify(&b, "db", projects, tids, 2, NULL, 0);
    /* spans by trace id alone (the caller keeps its pairs), events by pair */
    CHECK(has(&b, "FROM `db`.spans PREWHERE trace_id IN ('t1', 't\\'2') UNION ALL SELECT"));
    CHECK(has(&b, "FROM `db`.span_events WHERE (trace_id, project_id) IN (('t1', 'p1'),"));
    CHECK(!strstr(b.data, "positionCaseInsensitive"));
    pc_buf_reset(&b);
    pc_ch_sql_verify(&b, "db", projects, tids, 1, "a'b", 3);
    CHECK(has(&b, "PREWHERE trace_id IN ('t1') WHERE 1 AND (positionCaseInsensitive(name,"
                  " 'a\\'b') > 0 OR"));
    CHECK(has(&b, "positionCaseInsensitive(output_messages, 'a\\'b') > 0) UNION ALL"));
    CHECK(has(&b, "concat('[', event, ']')") && has(&b, "FROM `db`.span_events WHERE"));
    CHECK(has(&b, "AND (positionCaseInsensitive(event, 'a\\'b') > 0) FORMAT"));
    pc_buf_reset(&b);
    const char *sids[2] = {"s1", "s'2"};
    pc_ch_sql_spans_exist(&b, "db", projects, tids, sids, 2);
    CHECK(has(&b, "FROM `db`.spans WHERE (trace_id, project_id, span_id) IN (('t1', 'p1', 's1'),"
                  " ('t\\'2', 'x\\') OR 1=1 --', 's\\'2')) FORMAT"));
    /* the prefilter's run: printable ASCII without '"' or '\\', the longest, 3+ bytes */
    size_t at;
    const char *q = "with the \"city\" name";
    CHECK_EQ_INT((int)pc_ch_search_ascii_run(q, strlen(q), &at), 9);
    CHECK_EQ_INT((int)at, 0);
    q = "ab\"cd\\\xc3\xa9xyz1";
    CHECK_EQ_INT((int)pc_ch_search_ascii_run(q, strlen(q), &at), 4);
    CHECK_EQ_INT((int)at, (int)strlen(q) - 4);
    CHECK_EQ_INT((int)pc_ch_search_ascii_run("ab\"cd", 5, &at), 0);
    CHECK_EQ_INT((int)pc_ch_search_ascii_run("\xd0\x9c\xd0\x9e\xd0\xa1", 6, &at), 0);
    pc_buf_free(&b);
}

int main(void)
{
    RUN(test_keys);
    RUN(test_blocks);
    RUN(test_no_text);
    RUN(test_encode);
    RUN(test_sql);
    return CHECK_DONE();
}

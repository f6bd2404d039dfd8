/*
 * test_clickhouse.c - the pure side of the `clickhouse` exporter
 * (clickhouse_sql.c), no server: string-literal escaping with hostile input,
 * both dialects' DDL against the seed README's columns and types, the
 * JSONEachRow row of a span (every field, weird strings, NaN attributes,
 * parsed back with the project's JSON reader), partial trace rows, the store
 * query builders quoting every user value, the TabSeparated reader, and the
 * exporter's option validation (messages name the key) and what compression
 * `auto` means before the server is asked (none to a loopback host). The schema
 * migration's plan is test_clickhouse_migrate.c, issue 13's reads
 * test_clickhouse_agg.c. The engines themselves are exercised by
 * tests/integration/test_clickhouse.py.
 */
#include "check.h"
#include "options.h"

#include "config.h"
#include "exporters/clickhouse.h"
#include "exporters/clickhouse_conf.h"
#include "exporters/clickhouse_migrate.h"
#include "exporters/clickhouse_query.h"
#include "exporters/clickhouse_sql.h"
#include "exporters/clickhouse_tsv.h"
#include "exporters/clickhouse_zip.h"
#include "json.h"
#include "span.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1737972000123456789LL /* 2025-01-27T10:00:00.123456789Z */

static char *quoted(const char *s, size_t n)
{
    pc_buf b = PC_BUF_INIT;
    pc_ch_quote(&b, s, n);
    return pc_buf_steal(&b, NULL);
}

static void test_quote(void)
{
    char *q = quoted("plain", 5);
    CHECK_EQ_STR(q, "'plain'");
    free(q);
    q = quoted("O'Reilly \\ '; DROP TABLE spans; --", 34);
    CHECK_EQ_STR(q, "'O\\'Reilly \\\\ \\'; DROP TABLE spans; --'");
    free(q);
    q = quoted("\\'", 2); /* an escaped quote in the input stays two literal bytes */
    CHECK_EQ_STR(q, "'\\\\\\''");
    free(q);
    q = quoted("a\0b\n\t\x1b\x7f", 7);
    CHECK_EQ_STR(q, "'a\\x00b\\x0A\\x09\\x1B\\x7F'");
    free(q);
    q = quoted("\xc3\xbc", 2); /* UTF-8 bytes: \xHH, still the same bytes to ClickHouse */
    CHECK_EQ_STR(q, "'\\xC3\\xBC'");
    free(q);
    /* Every byte value: the literal is printable ASCII and its only unescaped
     * quote characters are the two delimiters. */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    q = quoted(all, 256);
    size_t n = strlen(q);
    CHECK(q[0] == '\'' && q[n - 1] == '\'');
    for (size_t i = 1; i + 1 < n; i++) {
        CHECK(q[i] >= 0x20 && q[i] < 0x7f);
        if (q[i] == '\\') {
            i++; /* the escaped byte */
            continue;
        }
        CHECK(q[i] != '\'');
    }
    free(q);
}

/* pc_ch_quoted_len is what pc_ch_quote appends; pc_ch_names_fit cuts a list
 * into chunks by those bytes, at least one row each. */
static void test_names_fit(void)
{
    const char *samples[] = {"", "plain", "O'Reilly \\", "\xc3\xa9t\xc3\xa9", "a\nb\x7f", NULL};
    for (int i = 0; samples[i]; i++) {
        pc_buf b = PC_BUF_INIT;
        pc_ch_quote_cstr(&b, samples[i]);
        CHECK_EQ_INT((int)pc_ch_quoted_len(samples[i]), (int)b.len);
        pc_buf_free(&b);
    }
    CHECK_EQ_INT((int)pc_ch_quoted_len(NULL), 2);
    static char ids[1000][257];
    const char *v[1000];
    for (int i = 0; i < 1000; i++) {
        for (int j = 0; j < 256; j++)
            ids[i][j] = j % 2 ? '\xa9' : '\xc3'; /* 1,026 bytes quoted */
        ids[i][256] = 0;
        v[i] = ids[i];
    }
    const char *const *two[] = {v, v};
    size_t per = PC_CH_NAMES_BYTES / (2 * (1026 + 4)); /* rows of one chunk */
    CHECK_EQ_INT((int)pc_ch_names_fit(two, 2, 1000), (int)per);
    CHECK_EQ_INT((int)pc_ch_names_fit(two, 2, 3), 3);
    CHECK_EQ_INT((int)pc_ch_names_fit(two, 2, 0), 0);
    size_t total = 0, chunks = 0;
    for (size_t from = 0, n; from < 1000; from += n, chunks++) {
        n = pc_ch_names_fit(two, 2, 1000 - from);
        CHECK(n >= 1);
        total += n;
    }
    CHECK_EQ_INT((int)total, 1000);
    CHECK_EQ_INT((int)chunks, (int)((1000 + per - 1) / per));
    /* a row past the budget on its own is still a chunk */
    static char huge[PC_CH_NAMES_BYTES];
    memset(huge, 'h', sizeof(huge) - 1);
    const char *h[] = {huge, "x"};
    const char *const *one[] = {h};
    CHECK_EQ_INT((int)pc_ch_names_fit(one, 1, 2), 1);
}

static void test_database_names(void)
{
    CHECK(pc_ch_valid_database("prela"));
    CHECK(pc_ch_valid_database("prela_t0123abc"));
    CHECK(!pc_ch_valid_database(""));
    CHECK(!pc_ch_valid_database("a`b"));
    CHECK(!pc_ch_valid_database("a.b"));
    CHECK(!pc_ch_valid_database("x; DROP"));
    CHECK(pc_ch_dialect_of("18.16.1") == PC_CH_LEGACY);
    CHECK(pc_ch_dialect_of("19.17.4.11") == PC_CH_LEGACY);
    CHECK(pc_ch_dialect_of("20.3.1") == PC_CH_MODERN);
    CHECK(pc_ch_dialect_of("26.9.2.1") == PC_CH_MODERN);
}

static bool has(const pc_buf *b, const char *s)
{
    bool ok = b->data && strstr(b->data, s) != NULL;
    if (!ok) fprintf(stderr, "missing \"%s\" in: %s\n", s, b->data ? b->data : "(null)");
    return ok;
}

static void test_ddl(void)
{
    pc_buf b = PC_BUF_INIT;
    pc_ch_ddl_spans(&b, PC_CH_MODERN, "prela", "spans");
    CHECK(has(&b, "CREATE TABLE IF NOT EXISTS `prela`.`spans` ("));
    CHECK(has(&b, "span_id String, trace_id String, parent_span_id String, name String,"
                  " span_type String, service_name String, started_at DateTime64(6),"
                  " ended_at DateTime64(6), duration_ms Float64, status String,"
                  " attributes String CODEC(ZSTD(1)), events String CODEC(ZSTD(1)),"
                  " created_at DateTime64(6) DEFAULT now64(6)"));
    CHECK(has(&b, "ENGINE = ReplacingMergeTree(first_write_rank)"));
    /* The project is part of the dedup key (the ReplacingMergeTree's ORDER BY). */
    CHECK(has(&b, "PARTITION BY toYYYYMM(started_at)"
                  " ORDER BY (trace_id, project_id, span_id)"
                  " TTL started_at + INTERVAL 90 DAY SETTINGS index_granularity = 256,"
                  " min_compress_block_size = 4096"));
    /* zstd on the large JSON columns (modern only) */
    CHECK(has(&b, "attributes String CODEC(ZSTD(1)), events String CODEC(ZSTD(1)),"));
    CHECK(has(&b, "resource String CODEC(ZSTD(1))"));
    const char *extra[] = {"project_id String", "kind Int32", "status_message String",
                           "source String", "trace_state String", "start_ns Int64",
                           "end_ns Int64", "created_ns Int64", "llm_provider String",
                           "llm_model String", "input_tokens Int64", "output_tokens Int64",
                           "links String", "resource String", "scope String"};
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
        CHECK(has(&b, extra[i]));
    pc_buf_reset(&b);
    pc_ch_ddl_spans(&b, PC_CH_LEGACY, "prela", "spans_v2");
    CHECK(has(&b, "CREATE TABLE IF NOT EXISTS `prela`.`spans_v2` ("));
    CHECK(has(&b, "ORDER BY (trace_id, project_id, span_id) SETTINGS index_granularity = 256"));
    CHECK(!strstr(b.data, "CODEC")); /* 18.16 has no column codecs */
    CHECK(!strstr(b.data, "min_compress_block_size")); /* nor table block sizes */
    CHECK(has(&b, "started_at DateTime, ended_at DateTime,"));
    CHECK(has(&b, "created_at DateTime DEFAULT now(),"));
    CHECK(!strstr(b.data, "DateTime64") && !strstr(b.data, "TTL"));
    pc_buf_reset(&b);
    pc_ch_ddl_traces(&b, PC_CH_MODERN, "prela", "traces");
    CHECK(has(&b, "trace_id String, service_name String, started_at DateTime64(6),"
                  " completed_at DateTime64(6), duration_ms Float64, status String,"
                  " root_span_id String, span_count UInt32, metadata String,"
                  " created_at DateTime64(6) DEFAULT now64(6)"));
    CHECK(has(&b, "ENGINE = MergeTree() PARTITION BY toYYYYMM(started_at)"
                  " ORDER BY (project_id, started_ns, trace_id)"
                  " TTL started_at + INTERVAL 90 DAY"));
    CHECK(has(&b, "root_span_name String, has_root UInt8"));
    CHECK(has(&b, "output_tokens Int64, span_types String,"));
    pc_buf_reset(&b);
    pc_ch_ddl_traces(&b, PC_CH_LEGACY, "prela", "traces");
    CHECK(has(&b, "started_at DateTime, completed_at DateTime,"));
    CHECK(!strstr(b.data, "TTL"));
    /* schema 4: the new columns in both dialects; messages zstd and skip
     * indexes on the modern one only */
    for (int d = 0; d < 2; d++) {
        pc_ch_dialect dia = d ? PC_CH_LEGACY : PC_CH_MODERN;
        pc_buf_reset(&b);
        pc_ch_ddl_spans(&b, dia, "prela", "spans");
        CHECK(has(&b, "first_write_rank UInt64, llm_request_model String, cache_read_tokens Int64"
                      " DEFAULT -1, cache_write_tokens Int64 DEFAULT -1, reasoning_tokens Int64"
                      " DEFAULT -1, cost_"));
        /* legacy: a cost is stored as its bits, read through an alias (pc_ch_column) */
        CHECK(has(&b, dia == PC_CH_MODERN
                          ? "cost_usd Nullable(Float64), cost_input_usd Nullable(Float64),"
                            " cost_output_usd Nullable(Float64), cost_source String,"
                          : "cost_usd_bits Nullable(UInt64), cost_usd Nullable(Float64) ALIAS"
                            " reinterpretAsFloat64(reinterpretAsString(cost_usd_bits)),"
                            " cost_input_usd_bits Nullable(UInt64), cost_input_usd"
                            " Nullable(Float64) ALIAS reinterpretAsFloat64(reinterpretAsString("
                            "cost_input_usd_bits)), cost_output_usd_bits Nullable(UInt64),"));
        CHECK(has(&b, "cost_source String, session_id String, user_id String, input_messages"
                      " String"));
        CHECK(has(&b, dia == PC_CH_MODERN ? "output_messages String CODEC(ZSTD(1)), INDEX"
                                            " idx_start_ns start_ns TYPE minmax GRANULARITY 4)"
                                          : "output_messages String) ENGINE"));
        pc_buf_reset(&b);
        pc_ch_ddl_traces(&b, dia, "prela", "traces");
        CHECK(has(&b, "span_types String, session_id String, user_id String, cost_usd"
                      " Nullable(Float64), models Array(String)"));
        CHECK((strstr(b.data, "INDEX idx_session session_id TYPE bloom_filter GRANULARITY 4,"
                              " INDEX idx_user user_id TYPE bloom_filter GRANULARITY 4, INDEX"
                              " idx_models models TYPE bloom_filter GRANULARITY 4)") != NULL) ==
              (dia == PC_CH_MODERN));
    }
    /* the insert lists name every column once: schema 3's, then schema 4's */
    CHECK(strstr(pc_ch_span_columns(PC_CH_MODERN), "first_write_rank, llm_request_model,") != NULL);
    CHECK(strstr(pc_ch_span_columns(PC_CH_MODERN), "reasoning_tokens, cost_usd, cost_input_usd,"));
    CHECK(strstr(pc_ch_span_columns(PC_CH_LEGACY), "reasoning_tokens, cost_usd_bits,"
                                                   " cost_input_usd_bits, cost_output_usd_bits,"));
    pc_buf_reset(&b);
    pc_ch_insert_spans(&b, PC_CH_LEGACY, "db");
    CHECK(has(&b, "INSERT INTO `db`.spans (span_id, ") && has(&b, "cost_usd_bits") &&
          has(&b, "output_messages) FORMAT JSONEachRow"));
    CHECK(strstr(pc_ch_trace_columns(), "span_types, session_id, user_id, cost_usd, models") !=
          NULL);
    pc_buf_reset(&b);
    pc_ch_ddl_schema_version(&b, "prela");
    CHECK(has(&b, "CREATE TABLE IF NOT EXISTS `prela`.schema_version (version UInt32,"));
    CHECK(has(&b, "ENGINE = MergeTree() ORDER BY version"));
    pc_buf_free(&b);
}

static pc_str S(const char *s)
{
    return (pc_str){s, strlen(s)};
}

static void test_span_row(void)
{
    pc_arena *a = pc_arena_create(4096);
    pc_batch *batch = pc_batch_create(a);
    pc_span *s = pc_batch_add(batch);
    s->trace_id = S("t'1\\");
    s->span_id = S("s\"1");
    s->parent_id = S("p\n1");
    s->trace_state = S("k=v");
    s->name = (pc_str){"n\0ul\x01\xff", 6}; /* NUL, control byte, invalid UTF-8 */
    s->kind = 3;
    s->start_ns = T0;
    s->end_ns = T0 + 1500000;
    s->status = PC_STATUS_ERROR;
    s->status_message = S("boom 'x'");
    s->project_id = S("proj");
    s->source = PC_SOURCE_OTLP;
    s->span_type = PC_TYPE_LLM;
    s->service_name = S("svc");
    s->llm_provider = S("openai");
    s->llm_model = S("gpt-4o");
    s->input_tokens = 12;
    s->output_tokens = -1;
    pc_kv *kv = pc_arena_calloc(a, 2 * sizeof(pc_kv));
    kv[0] = (pc_kv){S("nan"), {.type = PC_V_DOUBLE, .d = NAN}};
    kv[1] = (pc_kv){S("q'\\"), {.type = PC_V_STR, .s = S("v\t")}};
    s->attrs = (pc_attrs){kv, 2};

    pc_buf row = PC_BUF_INIT, scratch = PC_BUF_INIT;
    pc_ch_span_row(&row, PC_CH_MODERN, s, T0 + 7000, &scratch);
    CHECK(row.len > 0 && row.data[row.len - 1] == '\n');
    pc_value v;
    pc_json_error err;
    pc_arena *pa = pc_arena_create(4096);
    CHECK(pc_json_parse(pa, row.data, row.len - 1, &v, &err) == 0);
    CHECK_EQ_PSTR(pc_json_get(&v, "trace_id")->s, "t'1\\");
    CHECK_EQ_PSTR(pc_json_get(&v, "span_id")->s, "s\"1");
    CHECK_EQ_PSTR(pc_json_get(&v, "parent_span_id")->s, "p\n1");
    CHECK_EQ_INT(pc_json_get(&v, "name")->s.n, 8); /* \xff became U+FFFD (3 bytes) */
    CHECK(memcmp(pc_json_get(&v, "name")->s.p, "n\0ul\x01", 5) == 0);
    CHECK_EQ_INT(pc_json_get(&v, "kind")->i, 3);
    CHECK_EQ_PSTR(pc_json_get(&v, "span_type")->s, "llm");
    CHECK_EQ_PSTR(pc_json_get(&v, "status")->s, "error");
    CHECK_EQ_PSTR(pc_json_get(&v, "status_message")->s, "boom 'x'");
    CHECK_EQ_PSTR(pc_json_get(&v, "source")->s, "otlp");
    CHECK_EQ_PSTR(pc_json_get(&v, "project_id")->s, "proj");
    CHECK_EQ_PSTR(pc_json_get(&v, "trace_state")->s, "k=v");
    CHECK_EQ_PSTR(pc_json_get(&v, "llm_provider")->s, "openai");
    CHECK_EQ_PSTR(pc_json_get(&v, "llm_model")->s, "gpt-4o");
    CHECK_EQ_INT(pc_json_get(&v, "input_tokens")->i, 12);
    CHECK_EQ_INT(pc_json_get(&v, "output_tokens")->i, -1);
    CHECK_EQ_INT(pc_json_get(&v, "start_ns")->i, T0);
    CHECK_EQ_INT(pc_json_get(&v, "end_ns")->i, T0 + 1500000);
    CHECK_EQ_INT(pc_json_get(&v, "created_ns")->i, T0 + 7000);
    CHECK(pc_json_get(&v, "first_write_rank") != NULL);
    CHECK(fabs(pc_json_get(&v, "duration_ms")->d - 1.5) < 1e-9);
    /* DateTime64(6) as Unix seconds with microseconds: no time zone involved. */
    CHECK(has(&row, "\"started_at\":1737972000.123456,"));
    CHECK(has(&row, "\"ended_at\":1737972000.124956,"));
    CHECK(has(&row, "\"created_at\":1737972000.123463,"));
    /* JSON columns are strings holding span.h's encodings. */
    const pc_value *attrs = pc_json_get(&v, "attributes");
    CHECK(attrs && attrs->type == PC_V_STR);
    pc_value av;
    CHECK(pc_json_parse(pa, attrs->s.p, attrs->s.n, &av, &err) == 0);
    CHECK_EQ_PSTR(pc_json_get(&av, "nan")->s, "NaN");
    CHECK_EQ_PSTR(pc_json_get(&av, "q'\\")->s, "v\t");
    CHECK_EQ_PSTR(pc_json_get(&v, "events")->s, "[]");
    CHECK_EQ_PSTR(pc_json_get(&v, "links")->s, "[]");
    CHECK_EQ_PSTR(pc_json_get(&v, "resource")->s, "{}");
    CHECK(pc_json_get(&v, "scope")->s.n > 2);

    /* schema 4's fields: unknown cost is null, unknown token details -1 */
    CHECK(pc_json_get(&v, "cost_usd")->type == PC_V_NULL);
    CHECK_EQ_INT(pc_json_get(&v, "cache_read_tokens")->i, -1);
    CHECK_EQ_PSTR(pc_json_get(&v, "cost_source")->s, "");
    CHECK_EQ_PSTR(pc_json_get(&v, "input_messages")->s, "");
    s->llm_request_model = S("gpt-4o\"'");
    s->cache_read_tokens = 3;
    s->cache_write_tokens = INT64_MAX;
    s->reasoning_tokens = 0;
    s->cost_usd = 0.000123;
    s->cost_input_usd = 1e-300;
    s->cost_output_usd = INFINITY; /* not a cost: null */
    s->cost_source = PC_COST_TABLE;
    s->session_id = S("sess '\\ \xe2\x80\xae");
    s->user_id = S("u\x01");
    s->input_messages = S("[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi \\\"x\\\"\"}]}]");
    pc_buf_reset(&row);
    pc_ch_span_row(&row, PC_CH_MODERN, s, T0 + 7000, &scratch);
    CHECK(pc_json_parse(pa, row.data, row.len - 1, &v, &err) == 0);
    CHECK_EQ_PSTR(pc_json_get(&v, "llm_request_model")->s, "gpt-4o\"'");
    CHECK_EQ_INT(pc_json_get(&v, "cache_read_tokens")->i, 3);
    CHECK_EQ_INT(pc_json_get(&v, "cache_write_tokens")->i, INT64_MAX);
    CHECK_EQ_INT(pc_json_get(&v, "reasoning_tokens")->i, 0);
    CHECK(pc_json_get(&v, "cost_usd")->d == 0.000123);
    CHECK(pc_json_get(&v, "cost_input_usd")->d == 1e-300);
    CHECK(pc_json_get(&v, "cost_output_usd")->type == PC_V_NULL);
    CHECK_EQ_PSTR(pc_json_get(&v, "cost_source")->s, "table");
    CHECK_EQ_PSTR(pc_json_get(&v, "session_id")->s, "sess '\\ \xe2\x80\xae");
    CHECK_EQ_PSTR(pc_json_get(&v, "user_id")->s, "u\x01");
    CHECK_EQ_PSTR(pc_json_get(&v, "input_messages")->s,
                  "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi \\\"x\\\"\"}]}]");
    CHECK_EQ_PSTR(pc_json_get(&v, "output_messages")->s, "");

    pc_buf_reset(&row);
    pc_ch_span_row(&row, PC_CH_LEGACY, s, T0 + 7000, &scratch);
    CHECK(has(&row, "\"started_at\":1737972000,"));
    /* legacy: the costs' IEEE 754 bits, exact as integers (0.000123, 1e-300, none) */
    CHECK(has(&row, "\"cost_usd_bits\":4548669923058963014,"
                    "\"cost_input_usd_bits\":118622047889322841,\"cost_output_usd_bits\":null,"));
    CHECK(!strstr(row.data, "\"cost_usd\":"));
    CHECK(has(&row, "\"created_at\":1737972000,"));

    pc_buf_free(&row);
    pc_buf_free(&scratch);
    pc_arena_destroy(pa);
    pc_batch_unref(batch);
}

static void test_trace_part(void)
{
    pc_batch *b = pc_batch_create(NULL);
    const char *ids[] = {"c1", "r", "c2"};
    const char *parents[] = {"r", "", "r"};
    int64_t starts[] = {T0 + 2, T0 + 5, T0 + 1};
    for (int i = 0; i < 3; i++) {
        pc_span *s = pc_batch_add(b);
        s->trace_id = S("tr");
        s->span_id = S(ids[i]);
        s->parent_id = S(parents[i]);
        s->name = S(ids[i]);
        s->service_name = S(i == 1 ? "root-svc" : "child-svc");
        s->project_id = S("p");
        s->start_ns = starts[i];
        s->end_ns = i == 2 ? 0 : starts[i] + 100;
        s->status = i == 0 ? PC_STATUS_ERROR : PC_STATUS_SUCCESS;
        s->input_tokens = i == 0 ? 5 : -1;
        s->output_tokens = -1;
    }
    pc_kv tier = {S("tier"), {.type = PC_V_STR, .s = S("gold")}};
    b->spans[2].attrs = (pc_attrs){&tier, 1};
    pc_ch_trace_part p;
    pc_ch_part_init(&p, &b->spans[0], 50);
    pc_ch_part_add(&p, &b->spans[1], 50);
    pc_ch_part_add(&p, &b->spans[2], 40);
    CHECK_EQ_INT(p.span_count, 3);
    CHECK_EQ_INT(p.started_ns, T0 + 1);
    CHECK_EQ_INT(p.completed_ns, T0 + 105);
    CHECK_EQ_INT(p.created_ns, 40);
    CHECK(p.error);
    CHECK(p.root == &b->spans[1]);
    CHECK(p.first == &b->spans[2]); /* earliest ingest */
    CHECK_EQ_INT(p.input_tokens, 5);
    pc_buf row = PC_BUF_INIT;
    pc_ch_trace_row(&row, PC_CH_LEGACY, &p);
    CHECK(has(&row, "\"service_name\":\"root-svc\""));
    CHECK(has(&row, "\"root_span_id\":\"r\""));
    CHECK(has(&row, "\"span_count\":3"));
    CHECK(has(&row, "\"status\":\"error\""));
    CHECK(has(&row, "\"has_root\":1"));
    CHECK(has(&row, "\"metadata\":\"{}\""));
    CHECK(has(&row, "\"span_types\":\",custom,\""));
    /* no session, user, cost or model in the insert */
    CHECK(has(&row, "\"session_id\":\"\",\"user_id\":\"\",\"cost_usd\":null,\"models\":[],"));
    /* schema 7: the keys that merge it (no cost: null); schema 8: each span's id
     * hash, in the order the spans were folded in */
    char hashes[128];
    snprintf(hashes, sizeof(hashes),
             "\"cost_sum\":null,\"span_hashes\":[%u,%u,%u],\"attr_bloom\":[",
             (unsigned)pc_ch_span_hash(b->spans[0].span_id),
             (unsigned)pc_ch_span_hash(b->spans[1].span_id),
             (unsigned)pc_ch_span_hash(b->spans[2].span_id));
    CHECK(has(&row, hashes));
    CHECK_EQ_INT(p.n_hashes, 3);
    /* schema 9: the spans' attribute filter as 16 words, bit i in word i / 64 */
    CHECK(has(&row, "],\"merge_keys\":1}\n"));
    const char *w = strstr(row.data, "\"attr_bloom\":[");
    unsigned char bloom[PC_ATTR_BLOOM_BYTES] = {0};
    int words = 0;
    for (w = w ? w + 14 : ""; *w && *w != ']'; words++) {
        char *end;
        unsigned long long word = strtoull(w, &end, 10);
        for (int k = 0; k < 8 && words < PC_CH_BLOOM_WORDS; k++)
            bloom[words * 8 + k] = (unsigned char)(word >> (8 * k));
        w = *end == ',' ? end + 1 : end;
    }
    CHECK_EQ_INT(words, PC_CH_BLOOM_WORDS);
    CHECK(memcmp(bloom, p.bloom, sizeof(bloom)) == 0);
    CHECK(pc_attr_bloom_may(bloom, sizeof(bloom), "tier", 4, "gold", 4));
    CHECK(!pc_attr_bloom_may(bloom, sizeof(bloom), "tier", 4, "lead", 4));
    /* a stand-in for a refused row: its trace, project and start, merge_keys 0 */
    pc_buf standin = PC_BUF_INIT;
    pc_ch_trace_rows_standin(&standin, PC_CH_LEGACY, "p\"1", "t'1", 1700000000123456789LL);
    CHECK_EQ_STR(standin.data, "{\"trace_id\":\"t'1\",\"project_id\":\"p\\\"1\",\"started_at\":"
                               "1700000000,\"started_ns\":1700000000123456789,\"merge_keys\":0}\n");
    pc_buf_reset(&standin);
    pc_ch_trace_rows_standin(&standin, PC_CH_MODERN, "p", "t", 1700000000123456789LL);
    CHECK(has(&standin, "\"started_at\":1700000000.123456,"));
    pc_buf_free(&standin);
    /* the hash is stored: pinned (a change needs a schema version); ClickHouse's
     * toUInt32(sipHash64('00f067aa0ba902b7')) (9391434164595321566 mod 2^32) */
    CHECK_EQ_INT(pc_ch_span_hash(S("00f067aa0ba902b7")), 1613490910u);
    CHECK(pc_ch_span_hash(S("00f067aa0ba902b7")) != pc_ch_span_hash(S("00f067aa0ba902b8")));
    pc_ch_part_free(&p);
    pc_buf_free(&row);
    /* span_types: every type of the insert's spans, each between commas */
    b->spans[0].span_type = PC_TYPE_LLM;
    b->spans[2].span_type = PC_TYPE_TOOL;
    pc_ch_part_init(&p, &b->spans[0], 50);
    pc_ch_part_add(&p, &b->spans[1], 50);
    pc_ch_part_add(&p, &b->spans[2], 40);
    pc_ch_trace_row(&row, PC_CH_MODERN, &p);
    CHECK(has(&row, "\"span_types\":\",custom,llm,tool,\","));
    pc_ch_part_free(&p);
    pc_buf_free(&row);
    /* schema 4: the least non-empty session and user (bytewise: "a" < "a\x01" <
     * "b" < "\xc3..."), known costs summed with negatives as 0, distinct models
     * of both model fields */
    const char *sessions[] = {"b", "", "a\x01"}, *users[] = {"\xc3\xbc", "", "a"};
    const char *models[] = {"m'1", "m2", ""}, *req[] = {"m2", "", "m\"3"};
    double costs[] = {0.25, -5, NAN};
    for (int i = 0; i < 3; i++) {
        b->spans[i].session_id = S(sessions[i]);
        b->spans[i].user_id = S(users[i]);
        b->spans[i].llm_model = S(models[i]);
        b->spans[i].llm_request_model = S(req[i]);
        b->spans[i].cost_usd = costs[i];
    }
    pc_ch_part_init(&p, &b->spans[0], 50);
    pc_ch_part_add(&p, &b->spans[1], 50);
    pc_ch_part_add(&p, &b->spans[2], 40);
    pc_ch_trace_row(&row, PC_CH_MODERN, &p);
    CHECK(has(&row, "\"session_id\":\"a\\u0001\",\"user_id\":\"a\",\"cost_usd\":0.25,"
                    "\"models\":[\"m'1\",\"m2\",\"m\\\"3\"],"));
    /* schema 7: the cost as the spans hold it, negatives too */
    CHECK(has(&row, "\"cost_sum\":-4.75,\"span_hashes\":["));
    CHECK_EQ_INT(p.n_models, 3);
    pc_ch_part_free(&p);
    pc_buf_free(&row);
    /* only unknown costs: null, not 0 */
    b->spans[0].cost_usd = NAN;
    b->spans[1].cost_usd = NAN;
    pc_ch_part_init(&p, &b->spans[0], 50);
    pc_ch_part_add(&p, &b->spans[1], 50);
    pc_ch_part_add(&p, &b->spans[2], 40);
    pc_ch_trace_row(&row, PC_CH_LEGACY, &p);
    CHECK(has(&row, "\"cost_usd\":null"));
    pc_ch_part_free(&p);
    pc_buf_free(&row);
    char set[128];
    CHECK_EQ_INT(pc_ch_span_types_text(set, 0), 1);
    CHECK(strcmp(set, ",") == 0);
    CHECK_EQ_INT(pc_ch_span_types_text(set, ~0u), 43);
    CHECK(strcmp(set, ",custom,agent,llm,tool,retrieval,embedding,") == 0);
    pc_batch_unref(b);
}

static void test_query_builders(void)
{
    const char *evil = "x' OR 1=1 --\\";
    const char *esc = "'x\\' OR 1=1 --\\\\'";
    pc_buf b = PC_BUF_INIT;
    pc_ch_sql_get_spans(&b, "db", "p1", evil, NULL, 100, 0);
    CHECK(has(&b, "FROM `db`.spans WHERE trace_id = 'x\\' OR 1=1 --\\\\' AND project_id = 'p1'"));
    CHECK(has(&b, "LIMIT 1 BY project_id, trace_id, span_id"));
    CHECK(has(&b, "ORDER BY start_ns, span_id LIMIT 0, 100 FORMAT TabSeparated"));
    pc_buf_reset(&b);
    pc_ch_sql_get_spans(&b, "db", evil, "t", NULL, 100, 0); /* the project is quoted too */
    CHECK(has(&b, "WHERE trace_id = 't' AND project_id = 'x\\' OR 1=1 --\\\\'"));
    pc_buf_reset(&b);
    pc_ch_sql_get_trace(&b, "db", NULL, evil, NULL);
    CHECK(has(&b, esc));
    CHECK(!strstr(b.data, "project_id = ")); /* any project: one row per project */
    CHECK(has(&b, "GROUP BY project_id, trace_id ORDER BY project_id FORMAT TabSeparated"));
    CHECK(!strstr(b.data, "`db`.traces")); /* a trace by id reads spans by primary key only */
    pc_buf_reset(&b);
    pc_ch_sql_get_trace(&b, "db", "p'", "t", NULL);
    CHECK(has(&b, "WHERE trace_id = 't' AND project_id = 'p\\''"));
    CHECK(!strstr(b.data, "_part"));
    pc_buf_reset(&b);
    /* a lookup by parts: find them on the key, name them, check them still active */
    pc_ch_sql_trace_parts(&b, "db", "p'", evil);
    CHECK(has(&b, "SELECT DISTINCT _part FROM `db`.spans WHERE trace_id = 'x\\' OR 1=1 --\\\\'"
                  " AND project_id = 'p\\'' ORDER BY _part LIMIT 33 FORMAT TabSeparated"));
    pc_buf_reset(&b);
    pc_ch_sql_trace_parts(&b, "db", NULL, "t");
    CHECK(!strstr(b.data, "project_id"));
    pc_buf_reset(&b);
    pc_ch_sql_trace_span_counts(&b, "db", "p'", evil);
    CHECK(has(&b, "SELECT project_id, uniqExact(span_id), arrayStringConcat(groupUniqArray(_part),"
                  " ',') FROM `db`.spans WHERE trace_id = 'x\\' OR 1=1 --\\\\'"
                  " AND project_id = 'p\\'' GROUP BY project_id ORDER BY project_id"));
    pc_buf_reset(&b);
    /* a lookup naming parts reads each row's part with it (clickhouse_query.h) */
    pc_ch_sql_get_spans(&b, "db", "p", "t", "'202611_1_1_0'", 10, 0);
    CHECK(has(&b, ", l_part FROM (SELECT ") && has(&b, ", _part AS l_part FROM `db`.spans"));
    pc_buf_reset(&b);
    pc_ch_sql_get_spans(&b, "db", "p", "t", NULL, 10, 0);
    CHECK(!strstr(b.data, "_part"));
    pc_buf_reset(&b);
    pc_ch_sql_get_trace(&b, "db", "p", "t", "'202611_1_1_0'");
    CHECK(has(&b, ", arrayStringConcat(groupUniqArray(l_part), ',') FROM (SELECT "));
    pc_buf_reset(&b);
    pc_ch_sql_get_trace(&b, "db", "p", "t", "'202611_1_1_0', '202612_2_9_1'");
    CHECK(has(&b, "WHERE trace_id = 't' AND project_id = 'p'"
                  " AND _part IN ('202611_1_1_0', '202612_2_9_1')"));
    pc_buf_reset(&b);
    pc_ch_sql_get_spans(&b, "db", "p", "t", "'202611_1_1_0'", 10, 0);
    CHECK(has(&b, "AND project_id = 'p' AND _part IN ('202611_1_1_0')"));
    pc_buf_reset(&b);
    pc_ch_sql_parts_active(&b, "d'b", "'202611_1_1_0'");
    CHECK(has(&b, "FROM system.parts WHERE database = 'd\\'b' AND table = 'spans' AND active"
                  " AND name IN ('202611_1_1_0') FORMAT TabSeparated"));
    pc_buf_reset(&b);
    /* summaries of named traces: read by trace id, the pairs kept after the GROUP BY */
    const char *sp[2] = {"p1", evil}, *st[2] = {"t1", "t'2"};
    pc_ch_sql_summaries_of(&b, "db", sp, st, 2);
    CHECK(has(&b, "FROM `db`.spans PREWHERE trace_id IN ('t1', 't\\'2') ORDER BY"));
    CHECK(has(&b, "GROUP BY project_id, trace_id HAVING (project_id, trace_id) IN (('p1', 't1'),"
                  " ('x\\' OR 1=1 --\\\\', 't\\'2')) ORDER BY t_started DESC"));
    pc_buf_reset(&b);
    pc_trace_filter f = {.project_id = evil, .service_name = "s'", .status = "error'",
                         .span_type = "llm'", .start_ns = 5, .end_ns = 9, .limit = 7, .offset = 3};
    pc_ch_sql_list_candidates(&b, "db", &f, 4, 9, PC_CH_WINDOW_SLACK);
    CHECK(has(&b, "SELECT project_id, trace_id FROM `db`.traces WHERE 1 AND"
                  " project_id = "));
    CHECK(has(&b, "project_id DESC LIMIT 0, 18 FORMAT TabSeparated"));
    pc_buf_reset(&b);
    /* schema 8: the candidates' rows in trace_rows, raw, by trace id (merged in
     * the collector: test_clickhouse_summary.c), the filters' flags computed per
     * row, one project's kept by a WHERE, bounded */
    pc_ch_sql_list_rows(&b, "db", &f, st, 2, 10001);
    CHECK(has(&b, "SELECT trace_id, project_id, service_name, root_span_id, root_span_name,"
                  " status, source, started_ns, completed_ns, created_ns, span_count,"
                  " input_tokens, output_tokens, session_id, user_id, cost_sum, merge_keys,"
                  " has_root, root_created_ns, root_start_ns, first_start_ns, first_span_id,"
                  " span_hashes, position(span_types, ',llm\\',') > 0, 1 FROM `db`.trace_rows"
                  " PREWHERE trace_id IN ('t1', 't\\'2') WHERE project_id ="
                  " 'x\\' OR 1=1 --\\\\' LIMIT 10001 FORMAT TabSeparated"));
    CHECK(!strstr(b.data, "GROUP BY") && !strstr(b.data, "`db`.traces"));
    pc_buf_reset(&b);
    pc_trace_filter any = {.limit = 2, .model = "m'"};
    pc_ch_sql_list_rows(&b, "db", &any, st, 2, 7);
    CHECK(has(&b, "span_hashes, 1, has(models, 'm\\'') FROM `db`.trace_rows PREWHERE trace_id"
                  " IN ('t1', 't\\'2') LIMIT 7 FORMAT"));
    pc_buf_reset(&b);
    /* after an empty window: the newest start below it, one column, the project's */
    pc_ch_sql_list_newest(&b, "db", evil, 5, 9);
    CHECK(has(&b, "SELECT max(started_ns), count() FROM `db`.traces WHERE project_id ="
                  " 'x\\' OR 1=1 --\\\\' AND started_ns >= 5 AND started_ns < 9 FORMAT"));
    pc_buf_reset(&b);
    pc_ch_sql_list_newest(&b, "db", NULL, INT64_MIN, -3);
    CHECK(has(&b, "FROM `db`.traces WHERE started_ns < -3 FORMAT TabSeparated"));
    pc_buf_reset(&b);
    /* the page names the candidates read first: their spans by trace id, then the project */
    pc_ch_sql_list_window(&b, PC_CH_LEGACY, "db", &f, 4, 9, PC_CH_WINDOW_SLACK, sp, st, 2);
    CHECK(has(&b, "FROM `db`.spans PREWHERE trace_id IN ('t1', 't\\'2') WHERE project_id ="
                  " 'x\\' OR 1=1 --\\\\' ORDER BY project_id, trace_id"));
    CHECK(!strstr(b.data, "`db`.traces") && !strstr(b.data, "(project_id, trace_id) IN"));
    CHECK(has(&b, "GROUP BY project_id, trace_id HAVING 1 AND t_started >= 4 AND"));
    pc_buf_reset(&b);
    /* too many to name: a subquery selects them again */
    pc_ch_sql_list_window(&b, PC_CH_LEGACY, "db", &f, 4, 9, PC_CH_WINDOW_SLACK, NULL, NULL, 0);
    /* candidates: the window's traces rows (from an hour below its edge), those
     * that have a row between the edge and the top, merged per trace */
    CHECK(has(&b, "FROM `db`.spans PREWHERE trace_id IN (SELECT trace_id FROM `db`.traces"
                  " WHERE 1 AND project_id = 'x\\' OR 1=1 --\\\\' AND started_ns >= -3599999999996"
                  " AND trace_id IN (SELECT trace_id FROM `db`.traces"
                  " WHERE project_id = 'x\\' OR 1=1 --\\\\' AND started_ns >= 4 AND"
                  " started_ns <= 9) GROUP BY project_id, trace_id HAVING 1 AND"
                  " min(started_ns) >= 4 AND min(started_ns) >= 5 AND min(started_ns) <= 9"));
    CHECK(has(&b, " = 's\\''"));
    CHECK(has(&b, "if(max(status = 'error') = 1, 'error', 'success') = 'error\\''"));
    CHECK(has(&b, "max(position(span_types, ',llm\\',') > 0) = 1"));
    CHECK(has(&b, "ORDER BY min(started_ns) DESC, trace_id DESC, project_id DESC LIMIT 0, 18)"
                  " WHERE project_id = 'x\\' OR 1=1 --\\\\' ORDER BY project_id, trace_id"));
    CHECK(!strstr(b.data, "FROM `db`.spans WHERE span_type")); /* no scan of the spans */
    CHECK(!strstr(b.data, "HAVING (project_id, trace_id) IN") &&
          !strstr(b.data, "AND (project_id, trace_id) IN (SELECT project_id, trace_id FROM `db`.traces"
                          " WHERE 1")); /* one project: its condition, no pairs */
    /* the page: exact summaries of the candidates, every condition checked again */
    CHECK(has(&b, "GROUP BY project_id, trace_id HAVING 1 AND t_started >= 4 AND t_started >= 5"
                  " AND t_started <= 9 AND if(countIf(parent_span_id = ''"));
    CHECK(has(&b, "AND if(countIf(status = 'error') > 0, 'error', 'success') = 'error\\''"));
    CHECK(has(&b, "AND countIf(span_type = 'llm\\'') > 0 ORDER BY t_started DESC, trace_id DESC,"
                  " project_id DESC LIMIT 3, 7 FORMAT TabSeparated"));
    pc_buf_reset(&b);
    f.offset = 101; /* a deep offset skips candidates */
    pc_ch_sql_list_window(&b, PC_CH_LEGACY, "db", &f, 4, 9, PC_CH_WINDOW_SLACK, NULL, NULL, 0);
    CHECK(has(&b, "project_id DESC LIMIT 101, 15)"));
    CHECK(has(&b, "project_id DESC LIMIT 0, 7 FORMAT TabSeparated"));
    pc_buf_reset(&b);
    /* no filter reads a trace's later rows (the range, attr. of a number, which
     * the rows' attribute filters do not serve): the window's rows end at its
     * top, no IN over the key range */
    pc_trace_filter r = {.project_id = "p", .attr_key = "k", .attr_value = "-7.5e3",
                         .end_ns = 9, .limit = 7};
    pc_ch_sql_list_candidates(&b, "db", &r, 4, 9, PC_CH_WINDOW_SLACK);
    CHECK(has(&b, "FROM `db`.traces WHERE 1 AND project_id = 'p' AND started_ns >= -3599999999996"
                  " AND started_ns <= 3600000000009 GROUP BY project_id, trace_id HAVING 1 AND"
                  " min(started_ns) >= 4 AND min(started_ns) <= 9 ORDER BY"));
    CHECK(!strstr(b.data, "IN (SELECT") && !strstr(b.data, "attr_bloom"));
    pc_buf_reset(&b);
    /* a string: some row of the trace (a later one too) may hold the pair by
     * its filter, or has none */
    r.attr_value = "v";
    pc_ch_sql_list_candidates(&b, "db", &r, 4, 9, PC_CH_WINDOW_SLACK);
    CHECK(has(&b, "AND trace_id IN (SELECT trace_id FROM `db`.traces WHERE project_id = 'p' AND"
                  " started_ns >= 4 AND started_ns <= 9) GROUP BY"));
    CHECK(has(&b, " AND max((length(attr_bloom) != 16 OR (bitAnd(attr_bloom["));
    /* one test per word holding the pair's bits, its mask those bits */
    int bits[PC_ATTR_BLOOM_K];
    pc_attr_bloom_bits("k", 1, "v", 1, bits);
    unsigned char one[PC_ATTR_BLOOM_BYTES] = {0};
    for (int i = 0; i < PC_ATTR_BLOOM_K; i++)
        one[bits[i] / 8] |= (unsigned char)(1u << (bits[i] % 8));
    int tests = 0;
    for (int wd = 0; wd < PC_CH_BLOOM_WORDS; wd++) {
        unsigned long long m = 0;
        for (int k = 0; k < 8; k++)
            m |= (unsigned long long)one[wd * 8 + k] << (8 * k);
        if (!m) continue;
        char term[96];
        snprintf(term, sizeof(term), "bitAnd(attr_bloom[%d], %llu) = %llu", wd + 1, m, m);
        CHECK(has(&b, term));
        tests++;
    }
    int found = 0;
    for (const char *at = b.data; (at = strstr(at, "bitAnd(")) != NULL; at++)
        found++;
    CHECK_EQ_INT(found, tests);
    CHECK(has(&b, "))) = 1 ORDER BY"));
    pc_buf_reset(&b);
    /* the values the filters do not serve: a quoted or structured JSON text,
     * null, any JSON number; every other text is served */
    const char *raw[] = {"\"v\"", "[1]", "{}", "null", "0", "-1", "1.5", "2E+3", "7"};
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        r.attr_value = raw[i];
        CHECK(!pc_ch_attr_bloom_serves(&r));
    }
    const char *served[] = {"", "v", "true", "01", "1.", "-", "1e", "nul", "gpt-4o", "1 "};
    for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
        r.attr_value = served[i];
        CHECK(pc_ch_attr_bloom_serves(&r));
    }
    /* a text longer than the filters hold (attr_bloom.h) is not served */
    char longer[PC_ATTR_BLOOM_MAX_TEXT + 2];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    r.attr_value = longer;
    CHECK(!pc_ch_attr_bloom_serves(&r));
    longer[PC_ATTR_BLOOM_MAX_TEXT] = '\0';
    CHECK(pc_ch_attr_bloom_serves(&r));
    r.user_id = "u"; /* a merged filter reads them: the IN keeps the window's traces */
    pc_ch_sql_list_candidates(&b, "db", &r, 4, 9, PC_CH_WINDOW_SLACK);
    CHECK(has(&b, "AND started_ns >= -3599999999996 AND trace_id IN (SELECT trace_id FROM"
                  " `db`.traces WHERE project_id = 'p' AND started_ns >= 4 AND started_ns <= 9)"
                  " AND trace_id IN (SELECT trace_id FROM `db`.traces WHERE project_id = 'p' AND"
                  " started_ns >= 4 AND user_id = 'u') GROUP BY"));
    CHECK(!strstr(b.data, "(project_id, trace_id) IN")); /* by trace id: no tuples */
    pc_buf_reset(&b);
    /* no edge, no top, a cursor: no window conditions, the cursor on both levels */
    pc_trace_key k = {.started_ns = 77, .trace_id = "t'", .project_id = "p"};
    pc_trace_filter g = {.after = &k, .limit = 2};
    pc_ch_sql_list_window(&b, PC_CH_LEGACY, "db", &g, INT64_MIN, INT64_MAX, PC_CH_WINDOW_SLACK,
                          NULL, NULL, 0);
    CHECK(!strstr(b.data, "started_ns >=") && !strstr(b.data, "started_ns <="));
    CHECK(!strstr(b.data, "project_id = "));
    CHECK(has(&b, "HAVING 1 AND (min(started_ns) < 77 OR (min(started_ns) = 77 AND (trace_id <"
                  " 't\\'' OR (trace_id = 't\\'' AND project_id < 'p'))))"));
    CHECK(has(&b, "HAVING 1 AND (t_started < 77 OR (t_started = 77 AND (trace_id <"));
    CHECK(has(&b, "LIMIT 0, 10)"));
    /* every project: the candidates' pairs */
    CHECK(has(&b, "FROM `db`.spans WHERE (project_id, trace_id) IN (SELECT project_id, trace_id"
                  " FROM `db`.traces WHERE 1 GROUP BY"));
    CHECK(!strstr(b.data, "PREWHERE"));
    pc_buf_reset(&b);
    /* every project, named: by trace id, the pairs kept after the GROUP BY */
    pc_ch_sql_list_window(&b, PC_CH_LEGACY, "db", &g, INT64_MIN, INT64_MAX, PC_CH_WINDOW_SLACK,
                          sp, st, 2);
    CHECK(has(&b, "FROM `db`.spans PREWHERE trace_id IN ('t1', 't\\'2') ORDER BY project_id"));
    CHECK(has(&b, "GROUP BY project_id, trace_id HAVING 1 AND (project_id, trace_id) IN (('p1',"
                  " 't1'), ('x\\' OR 1=1 --\\\\', 't\\'2')) AND (t_started < 77"));
    CHECK(!strstr(b.data, "`db`.traces") && !strstr(b.data, " WHERE "));
    pc_buf_reset(&b);
    pc_ch_sql_search(&b, "db", "p'", "%_\\'\x01" "Ab", 11, 0);
    /* ASCII case folded here, the value's first PC_CH_SEARCH_PREFIX bytes there */
    CHECK(has(&b, "position(lower(substring(name, 1, 65536)), '%_\\\\\\'\\x01ab') > 0 OR"));
    /* the JSON columns: the text as a JSON string holds it (\\ and \u0001), then quoted */
    CHECK(has(&b, "position(lower(substring(attributes, 1, 65536)), '%_\\\\\\\\\\'\\\\u0001ab') > 0 OR"
                  " position(lower(substring(events, 1, 65536)),"));
    CHECK(has(&b, " OR position(lower(substring(output_messages, 1, 65536)), "));
    CHECK(has(&b, "FROM `db`.spans WHERE project_id = 'p\\'' AND (position(lower("));
    CHECK(!strstr(b.data, "positionCaseInsensitive"));
    CHECK(has(&b, "FROM `db`.traces WHERE project_id = 'p\\'' AND ((project_id, trace_id) IN"));
    /* ... or an attached event holding it (clickhouse_events.h), same project */
    CHECK(has(&b, ")) OR (project_id, trace_id) IN (SELECT project_id, trace_id FROM"
                  " `db`.span_events WHERE project_id = 'p\\'' AND position(lower(substring("
                  "event, 1, 65536)), '%_\\\\\\\\\\'\\\\u0001ab') > 0 AND (project_id,"
                  " trace_id, span_id) IN (SELECT project_id, trace_id, span_id FROM `db`.spans"));
    CHECK(has(&b, "project_id DESC LIMIT 11)"));
    pc_buf_reset(&b);
    pc_ch_sql_search(&b, "db", NULL, "x", 5, 1234); /* any project: still grouped per project */
    CHECK(!strstr(b.data, "project_id = "));
    CHECK(has(&b, "FROM `db`.spans PREWHERE created_ns < 1234 WHERE (")); /* spans before the index */
    CHECK(has(&b, "GROUP BY project_id, trace_id ORDER BY t_started DESC"));
    pc_buf_reset(&b);
    pc_ch_sql_search(&b, "db", NULL, "\xc3\x9c", 5, 0); /* UTF-8 bytes pass unfolded */
    CHECK(has(&b, "'\\xC3\\x9C') > 0"));
    pc_buf_free(&b);
}

/* A search block's worst case (rows x 5 x prefix x (pattern + 16)) stays within budget. */
static void test_search_block_rows(void)
{
    CHECK_EQ_INT(pc_ch_search_block_rows(0), 102);
    CHECK_EQ_INT(pc_ch_search_block_rows(3), 86);
    CHECK_EQ_INT(pc_ch_search_block_rows(1000), 1);
    CHECK_EQ_INT(pc_ch_search_block_rows(1000000), 1); /* never 0 */
    for (size_t p = 0; p <= 1000; p++) {
        long long rows = pc_ch_search_block_rows(p);
        CHECK(rows >= 1 && rows <= 8192);
        CHECK(p > 1600 || rows * 5 * PC_CH_SEARCH_PREFIX * ((long long)p + 16) <= (1LL << 29));
        CHECK(p == 0 || rows <= pc_ch_search_block_rows(p - 1));
    }
}

static void test_tsv(void)
{
    char text[] = "a\\tb\tc\\\\d\\'\t\\n\n1\t2\n";
    char *cur = text, *end = text + strlen(text), *cols[4];
    CHECK_EQ_INT(pc_ch_tsv_row(&cur, end, cols, 4), 3);
    CHECK_EQ_STR(cols[0], "a\tb");
    CHECK_EQ_STR(cols[1], "c\\d'");
    CHECK_EQ_STR(cols[2], "\n");
    CHECK_EQ_INT(pc_ch_tsv_row(&cur, end, cols, 4), 2);
    CHECK_EQ_STR(cols[1], "2");
    CHECK_EQ_INT(pc_ch_tsv_row(&cur, end, cols, 4), 0);
}

/* Applies |n| key/value settings to the exporter's options; returns validate's result. */
static int configure(const char *const *kv, size_t n, char *err, size_t errlen)
{
    const pc_component_ops *ops = &pc_clickhouse_exporter_ops;
    int rc;
    void *cfg = pc_test_options(ops, "exporters.clickhouse", NULL, NULL, kv, n, err, errlen, &rc);
    if (rc == 0) rc = ops->validate(cfg, err, errlen);
    pc_test_options_free(ops, cfg);
    return rc;
}

static void test_validate(void)
{
    char err[256];
    CHECK(configure(NULL, 0, err, sizeof(err)) == 0);
    const char *good[] = {"port", "8443", "secure", "auto", "dialect", "legacy",
                          "compression", "none"};
    CHECK(configure(good, 4, err, sizeof(err)) == 0);
    const char *db[] = {"database", "x`; DROP"};
    CHECK(configure(db, 1, err, sizeof(err)) < 0 && strstr(err, "database"));
    const char *dia[] = {"dialect", "ancient"};
    CHECK(configure(dia, 1, err, sizeof(err)) < 0 && strstr(err, "dialect"));
    const char *comp[] = {"compression", "brotli"};
    CHECK(configure(comp, 1, err, sizeof(err)) < 0 && strstr(err, "compression") &&
          strstr(err, "auto, zstd, gzip or none"));
    const char *zstd[] = {"compression", "zstd", "compression_level", "19"};
    CHECK(configure(zstd, 2, err, sizeof(err)) == 0);
    const char *gzip9[] = {"compression", "gzip", "compression_level", "9"};
    CHECK(configure(gzip9, 2, err, sizeof(err)) == 0);
    const char *gzip10[] = {"compression", "gzip", "compression_level", "10"};
    CHECK(configure(gzip10, 2, err, sizeof(err)) < 0 && strstr(err, "compression_level"));
    const char *auto10[] = {"compression", "auto", "compression_level", "12"};
    CHECK(configure(auto10, 2, err, sizeof(err)) < 0 && strstr(err, "compression_level"));
    const char *none1[] = {"compression", "none", "compression_level", "1"};
    CHECK(configure(none1, 2, err, sizeof(err)) < 0 && strstr(err, "compression_level"));
    const char *zstd20[] = {"compression", "zstd", "compression_level", "20"};
    CHECK(configure(zstd20, 2, err, sizeof(err)) < 0 && strstr(err, "compression_level"));
    const char *sec[] = {"secure", "maybe"};
    CHECK(configure(sec, 1, err, sizeof(err)) < 0 && strstr(err, "secure"));
    const char *tls_auto[] = {"port", "9443", "tls.insecure_skip_verify", "true"};
    CHECK(configure(tls_auto, 2, err, sizeof(err)) == 0);
    const char *plain_ca[] = {"secure", "false", "tls.ca_file", "/etc/hostname"};
    CHECK(configure(plain_ca, 2, err, sizeof(err)) < 0 && strstr(err, "tls.ca_file") &&
          strstr(err, "secure is false"));
    const char *plain_skip[] = {"secure", "false", "tls.insecure_skip_verify", "true"};
    CHECK(configure(plain_skip, 2, err, sizeof(err)) < 0 &&
          strstr(err, "tls.insecure_skip_verify"));
    const char *no_ca[] = {"tls.ca_file", "/nonexistent/ca.pem"};
    CHECK(configure(no_ca, 1, err, sizeof(err)) < 0 && strstr(err, "tls.ca_file") &&
          strstr(err, "/nonexistent/ca.pem"));
    const char *wait[] = {"batch.max_wait", "20s", "timeout", "10s"};
    CHECK(configure(wait, 2, err, sizeof(err)) < 0 && strstr(err, "batch.max_wait"));
    /* rollup_settle: longer than timeout (marks precede their spans by up to it), or 0 */
    const char *settle[] = {"rollup_settle", "10s", "timeout", "10s"};
    CHECK(configure(settle, 2, err, sizeof(err)) < 0 && strstr(err, "rollup_settle"));
    const char *settle_ok[] = {"rollup_settle", "11s", "timeout", "10s"};
    CHECK(configure(settle_ok, 2, err, sizeof(err)) == 0);
    const char *settle_off[] = {"rollup_settle", "0s"};
    CHECK(configure(settle_off, 1, err, sizeof(err)) == 0);
    const char *settle_bad[] = {"rollup_settle", "-1s"};
    CHECK(configure(settle_bad, 1, err, sizeof(err)) < 0 && strstr(err, "rollup_settle"));
    const char *qt[] = {"query_timeout", "5s"};
    CHECK(configure(qt, 1, err, sizeof(err)) == 0);
    const char *qt_low[] = {"query_timeout", "500ms"};
    CHECK(configure(qt_low, 1, err, sizeof(err)) < 0 && strstr(err, "query_timeout"));
    const char *parts[] = {"batch.max_partitions", "100"}; /* the server's own limit */
    CHECK(configure(parts, 1, err, sizeof(err)) < 0 && strstr(err, "batch.max_partitions"));
    const char *parts_ok[] = {"batch.max_partitions", "99", "dead_letter.max_files", "2"};
    CHECK(configure(parts_ok, 2, err, sizeof(err)) == 0);
    const char *dl[] = {"dead_letter.directory", ""};
    CHECK(configure(dl, 1, err, sizeof(err)) < 0 && strstr(err, "dead_letter.directory"));
    const char *dlk[] = {"dead_letter.brokers", "127.0.0.1:9092"};
    CHECK(configure(dlk, 1, err, sizeof(err)) == 0);
    const char *dlk_proto[] = {"dead_letter.brokers", "127.0.0.1:9092",
                               "dead_letter.security.protocol", "CARRIER_PIGEON"};
    CHECK(configure(dlk_proto, 2, err, sizeof(err)) < 0 &&
          strstr(err, "dead_letter.security.protocol"));
    const char *dlk_topic[] = {"dead_letter.brokers", "127.0.0.1:9092", "dead_letter.topic", ""};
    CHECK(configure(dlk_topic, 2, err, sizeof(err)) < 0 && strstr(err, "dead_letter.topic"));
}

/* compression auto: none when the host names the loopback by its text, else
 * zstd (which start confirms with the server); a named codec is that codec. */
static void test_auto_codec(void)
{
    const char *loop[] = {"localhost", "LocalHost", "localhost.", "127.0.0.1", "127.1.2.3",
                          "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"};
    for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++) {
        CHECK(pc_ch_host_is_loopback(loop[i]));
        pc_ch_cfg c = {.host = (char *)loop[i], .compression = "auto"};
        CHECK_EQ_INT(pc_ch_auto_codec(&c), PC_CH_CODEC_NONE);
        c.compression = "gzip";
        CHECK_EQ_INT(pc_ch_auto_codec(&c), PC_CH_CODEC_GZIP);
    }
    const char *far[] = {"clickhouse", "192.0.2.2", "128.0.0.1", "10.127.0.1", "::2",
                         "[::1", "localhost.example", "localhost..", "", "[]", "::ffff:10.0.0.1"};
    for (size_t i = 0; i < sizeof(far) / sizeof(far[0]); i++) {
        CHECK(!pc_ch_host_is_loopback(far[i]));
        pc_ch_cfg c = {.host = (char *)far[i], .compression = "AUTO"};
        CHECK_EQ_INT(pc_ch_auto_codec(&c), PC_CH_CODEC_ZSTD);
        c.compression = "none";
        CHECK_EQ_INT(pc_ch_auto_codec(&c), PC_CH_CODEC_NONE);
    }
    CHECK(!pc_ch_host_is_loopback(NULL));
}

int main(void)
{
    RUN(test_quote);
    RUN(test_names_fit);
    RUN(test_database_names);
    RUN(test_ddl);
    RUN(test_span_row);
    RUN(test_trace_part);
    RUN(test_query_builders);
    RUN(test_search_block_rows);
    RUN(test_tsv);
    RUN(test_validate);
    RUN(test_auto_codec);
    return CHECK_DONE();
}

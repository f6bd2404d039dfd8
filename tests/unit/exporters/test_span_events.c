/*
 * test_span_events.c - the merge of attached events into a span row on read
 * (span_events.h), the part both stores share: event JSON and content key,
 * time order with the span's own events first among equal times, messages
 * computed only for a side the span has none of, an attached event that does
 * not parse left out, and the bound (count and bytes) with its flag.
 */
#include "check.h"

#include "exporters/span_events.h"

#include <stdlib.h>
#include <string.h>

static pc_span_row row(const char *events, const char *in, const char *out)
{
    pc_span_row r;
    memset(&r, 0, sizeof(r));
    r.attributes = "{\"gen_ai.system\":\"openai\"}";
    r.events = events;
    r.input_messages = in;
    r.output_messages = out;
    return r;
}

static void test_json_and_key(void)
{
    pc_kv kv = {PC_STR_LIT("body"), {.type = PC_V_STR, .s = PC_STR_LIT("hi \"x\"")}};
    pc_event ev = {PC_STR_LIT("gen_ai.user.message"), 1700000000000000001LL, {&kv, 1}, 0};
    pc_buf b = PC_BUF_INIT;
    pc_span_event_json(&b, &ev);
    CHECK_EQ_STR(b.data, "{\"name\":\"gen_ai.user.message\",\"timestamp\":"
                         "\"2023-11-14T22:13:20.000000Z\",\"time_unix_nano\":1700000000000000001,"
                         "\"attributes\":{\"body\":\"hi \\\"x\\\"\"}}");
    CHECK_EQ_INT(strlen(b.data), b.len);
    int64_t k = pc_span_event_key(b.data, b.len);
    CHECK_EQ_INT(k, pc_span_event_key(b.data, b.len));
    CHECK(k != pc_span_event_key(b.data, b.len - 1));
    pc_buf_free(&b);
}

static void test_merge(void)
{
    const char *own = "[{\"name\":\"own\",\"time_unix_nano\":20,\"attributes\":{}}]";
    const char *ev[] = {
        "{\"name\":\"gen_ai.user.message\",\"time_unix_nano\":10,"
        "\"attributes\":{\"body\":{\"content\":\"hello\"}}}",
        "{\"name\":\"gen_ai.choice\",\"time_unix_nano\":20,"
        "\"attributes\":{\"body\":{\"message\":{\"content\":\"hi!\"},\"finish_reason\":\"stop\"}}}",
        "not json",
    };
    size_t len[] = {strlen(ev[0]), strlen(ev[1]), strlen(ev[2])};
    pc_span_events m = PC_SPAN_EVENTS_INIT;
    pc_span_row r = row(own, "", "");
    pc_span_events_merge(&m, &r, ev, len, 3, false);
    /* time order; on equal times the span's own first; "not json" left out */
    const char *a = strstr(r.events, "gen_ai.user.message"), *b = strstr(r.events, "\"own\""),
               *c = strstr(r.events, "gen_ai.choice");
    CHECK(a && b && c && a < b && b < c);
    CHECK(!strstr(r.events, "not json"));
    CHECK_EQ_STR(r.input_messages,
                 "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hello\"}]}]");
    CHECK_EQ_STR(r.output_messages, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\","
                                    "\"content\":\"hi!\"}],\"finish_reason\":\"stop\"}]");
    CHECK(!r.events_cut);

    /* the span's own messages stay; a missing side is filled */
    r = row(own, "[{\"role\":\"user\",\"parts\":[]}]", "");
    pc_span_events_merge(&m, &r, ev, len, 2, false);
    CHECK_EQ_STR(r.input_messages, "[{\"role\":\"user\",\"parts\":[]}]");
    CHECK(strstr(r.output_messages, "hi!") != NULL);

    /* nothing attached: the row is left as it is */
    r = row(own, "", "");
    pc_span_events_merge(&m, &r, ev, len, 0, false);
    CHECK(r.events == own);
    pc_span_events_free(&m);
}

static void test_bound(void)
{
    enum { N = PC_SPAN_EVENTS_MAX + 5 };
    char **ev = malloc(N * sizeof(*ev));
    size_t *len = malloc(N * sizeof(*len));
    for (int i = 0; i < N; i++) {
        ev[i] = malloc(96);
        len[i] = (size_t)snprintf(ev[i], 96,
                                  "{\"name\":\"gen_ai.choice\",\"time_unix_nano\":%d,"
                                  "\"attributes\":{}}", i);
    }
    pc_span_events m = PC_SPAN_EVENTS_INIT;
    pc_span_row r = row("[]", "", "");
    pc_span_events_merge(&m, &r, (const char *const *)ev, len, N, false);
    CHECK(r.events_cut);
    int n = 0;
    for (const char *p = r.events; (p = strstr(p, "gen_ai.choice")); p++)
        n++;
    CHECK_EQ_INT(n, PC_SPAN_EVENTS_MAX); /* the oldest */
    CHECK(strstr(r.events, "\"time_unix_nano\":0,") && !strstr(r.events, "\"time_unix_nano\":1024,"));
    /* the caller's cut is reported even under the bound */
    r = row("[]", "", "");
    pc_span_events_merge(&m, &r, (const char *const *)ev, len, 3, true);
    CHECK(r.events_cut);
    /* bytes: one event larger than the byte bound is not merged */
    size_t big = PC_SPAN_EVENTS_MAX_BYTES + 1;
    char *huge = malloc(big + 64);
    int k = snprintf(huge, 64, "{\"name\":\"gen_ai.choice\",\"attributes\":{\"body\":\"");
    memset(huge + k, 'a', big);
    strcpy(huge + k + big, "\"}}");
    const char *one[] = {huge};
    size_t one_len[] = {strlen(huge)};
    r = row("[]", "", "");
    pc_span_events_merge(&m, &r, one, one_len, 1, false);
    CHECK(r.events_cut && strcmp(r.events, "[]") == 0);
    free(huge);
    pc_span_events_free(&m);
    for (int i = 0; i < N; i++)
        free(ev[i]);
    free(ev);
    free(len);
}

int main(void)
{
    RUN(test_json_and_key);
    RUN(test_merge);
    RUN(test_bound);
    return CHECK_DONE();
}

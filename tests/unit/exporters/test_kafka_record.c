/*
 * test_kafka_record.c - the record the kafka exporter produces from and spools:
 * which messages a batch becomes, their order and keys, the drop of messages
 * over max_message_bytes, and reading back (including every truncation and
 * damaged header of a record, which must be refused, never misread).
 */
#include "check.h"

#include "arena.h"
#include "buf.h"
#include "formats/kafka_message.h"
#include "formats/prela_json.h"
#include "exporters/kafka_record.h"
#include "log.h"
#include "span.h"

#include <stdlib.h>
#include <string.h>

static pc_str S(pc_batch *b, const char *s)
{
    return (pc_str){pc_arena_strndup(b->arena, s, strlen(s)), strlen(s)};
}

static pc_span *add_span(pc_batch *b, const char *trace, const char *span, size_t pad)
{
    pc_span *s = pc_batch_add(b);
    s->trace_id = S(b, trace);
    s->span_id = S(b, span);
    s->name = S(b, "chat");
    s->start_ns = 1737972000000000000LL;
    s->end_ns = s->start_ns + 1000;
    s->project_id = S(b, "p");
    s->attrs.kv = pc_arena_calloc(b->arena, sizeof(pc_kv));
    s->attrs.n = 1;
    s->attrs.kv[0].key = S(b, "text");
    s->attrs.kv[0].value.type = PC_V_STR;
    char *p = pc_arena_alloc(b->arena, pad + 1);
    memset(p, 'x', pad);
    s->attrs.kv[0].value.s = (pc_str){p, pad};
    return s;
}

/* Two traces: A with three spans (one of them |big_pad| bytes large), B with one. */
static pc_batch *batch(size_t big_pad)
{
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = 1737972000000000000LL;
    add_span(b, "trace-a", "a1", 10);
    add_span(b, "trace-b", "b1", 10);
    add_span(b, "trace-a", "a2", big_pad);
    add_span(b, "trace-a", "a3", 10);
    return b;
}

static size_t read_all(const pc_buf *rec, pc_kafka_msg *out, size_t cap)
{
    size_t pos = 0, n = 0;
    pc_kafka_msg m;
    int r;
    while ((r = pc_kafka_record_next(rec->data, rec->len, &pos, &m)) > 0 && n < cap) out[n++] = m;
    CHECK_EQ_INT(r, 0);
    return n;
}

static void test_prela_json(void)
{
    pc_batch *b = batch(10);
    pc_buf rec = {0};
    pc_kafka_drops d = {0};
    CHECK_EQ_INT(pc_kafka_record_encode(&rec, b, PC_KAFKA_PRELA_JSON, 1000000, "t", &d), 6);
    CHECK_EQ_INT(d.messages, 0);
    CHECK_EQ_INT((unsigned char)rec.data[0], PC_KAFKA_RECORD_VERSION);
    pc_kafka_msg m[8];
    CHECK_EQ_INT(read_all(&rec, m, 8), 6);
    /* trace a: three span messages then its summary; then trace b */
    const int topics[] = {PC_KAFKA_T_SPANS, PC_KAFKA_T_SPANS,  PC_KAFKA_T_SPANS,
                          PC_KAFKA_T_TRACES, PC_KAFKA_T_SPANS, PC_KAFKA_T_TRACES};
    const char *keys[] = {"trace-a", "trace-a", "trace-a", "trace-a", "trace-b", "trace-b"};
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(m[i].topic, topics[i]);
        CHECK_EQ_PSTR(m[i].key, keys[i]);
        CHECK_EQ_INT(m[i].spans, topics[i] == PC_KAFKA_T_SPANS ? 1 : 0);
    }
    pc_buf want = {0};
    pc_prela_json_encode_span(&want, &b->spans[2], pc_span_received(b, &b->spans[2]));
    CHECK(m[1].len == want.len && memcmp(m[1].value, want.data, want.len) == 0);
    pc_buf_free(&want);
    pc_buf_free(&rec);
    pc_batch_unref(b);
}

static void test_oversize_dropped(void)
{
    pc_batch *b = batch(5000);
    pc_buf rec = {0};
    pc_kafka_drops d = {0};
    /* prela_json: span a2 is dropped, the summary lists the other two */
    CHECK_EQ_INT(pc_kafka_record_encode(&rec, b, PC_KAFKA_PRELA_JSON, 2048, "t", &d), 5);
    CHECK_EQ_INT(d.messages, 1);
    CHECK_EQ_INT(d.spans, 1);
    pc_kafka_msg m[8];
    CHECK_EQ_INT(read_all(&rec, m, 8), 5);
    CHECK(memmem(m[2].value, m[2].len, "\"span_count\":2", 14) != NULL);
    /* ... and rejected on the batch, for the receiver to tell the client */
    CHECK_EQ_INT(pc_batch_rejected(b), 1);
    CHECK(pc_batch_is_rejected(b, 2));
    CHECK(!pc_batch_is_rejected(b, 0) && !pc_batch_is_rejected(b, 1) &&
          !pc_batch_is_rejected(b, 3));
    CHECK(strstr(pc_batch_reject_reason(b), "over max_message_bytes (2048)") != NULL);
    /* otlp_proto: trace a's request is halved until the big span stands alone */
    pc_buf_reset(&rec);
    d = (pc_kafka_drops){0};
    size_t n = pc_kafka_record_encode(&rec, b, PC_KAFKA_OTLP_PROTO, 2048, "t", &d);
    CHECK_EQ_INT(d.messages, 1);
    CHECK_EQ_INT(d.spans, 1);
    CHECK_EQ_INT(read_all(&rec, m, 8), n);
    uint32_t spans = 0;
    for (size_t i = 0; i < n; i++) {
        spans += m[i].spans;
        CHECK(m[i].len + m[i].key.n + PC_KAFKA_MSG_OVERHEAD <= 2048);
    }
    CHECK_EQ_INT(spans, 3);
    CHECK_EQ_INT(pc_batch_rejected(b), 1); /* the same span, counted once */
    CHECK(pc_batch_is_rejected(b, 2));
    pc_buf_free(&rec);
    pc_batch_unref(b);
}

/* Messages the brokers refused map back to the spans they carried. */
static void test_reject_refused(void)
{
    pc_batch *b = batch(10);
    /* prela_json: a1 a2 a3 summary(a) b1 summary(b); a2 refused */
    const unsigned char prela[6] = {0, 1, 0, 0, 0, 0};
    pc_kafka_record_reject(b, PC_KAFKA_PRELA_JSON, 1000000, prela, 6, "refused");
    CHECK_EQ_INT(pc_batch_rejected(b), 1);
    CHECK(pc_batch_is_rejected(b, 2) && !pc_batch_is_rejected(b, 0));
    /* b's summary refused: its trace is incomplete downstream, so b1 is rejected */
    const unsigned char summary[6] = {0, 0, 0, 0, 0, 1};
    pc_kafka_record_reject(b, PC_KAFKA_PRELA_JSON, 1000000, summary, 6, "refused");
    CHECK_EQ_INT(pc_batch_rejected(b), 2);
    CHECK(pc_batch_is_rejected(b, 1));
    CHECK(!strcmp(pc_batch_reject_reason(b), "refused"));
    pc_batch_unref(b);
    /* otlp_json: one request per trace; trace a's refused: its three spans */
    b = batch(10);
    const unsigned char otlp[2] = {1, 0};
    pc_kafka_record_reject(b, PC_KAFKA_OTLP_JSON, 1000000, otlp, 2, "refused");
    CHECK_EQ_INT(pc_batch_rejected(b), 3);
    CHECK(pc_batch_is_rejected(b, 0) && pc_batch_is_rejected(b, 2) && pc_batch_is_rejected(b, 3));
    CHECK(!pc_batch_is_rejected(b, 1));
    pc_batch_unref(b);
    /* the ordinals skip what encoding left out: a2 (5000 bytes) is not a message at 2048 */
    b = batch(5000);
    pc_buf rec = {0};
    pc_kafka_drops d = {0};
    CHECK_EQ_INT(pc_kafka_record_encode(&rec, b, PC_KAFKA_PRELA_JSON, 2048, "t", &d), 5);
    const unsigned char after[5] = {0, 1, 0, 0, 0}; /* a1 a3 summary(a) b1 summary(b) */
    pc_kafka_record_reject(b, PC_KAFKA_PRELA_JSON, 2048, after, 5, "refused");
    CHECK_EQ_INT(pc_batch_rejected(b), 2); /* a2 by the encode, a3 by the brokers */
    CHECK(pc_batch_is_rejected(b, 2) && pc_batch_is_rejected(b, 3));
    pc_buf_free(&rec);
    pc_batch_unref(b);
}

/* A metrics/logs request over the limit is rejected whole; one within is not. */
static void test_raw_oversize(void)
{
    pc_batch *b = pc_batch_create(NULL);
    b->signal = PC_SIGNAL_METRICS;
    b->items = 7;
    char *big = pc_arena_alloc(b->arena, 4096);
    memset(big, 'm', 4096);
    b->raw = (pc_str){big, 4096};
    pc_buf rec = {0};
    pc_kafka_drops d = {0};
    CHECK_EQ_INT(pc_kafka_record_encode(&rec, b, PC_KAFKA_PRELA_JSON, 2048, "kx", &d), 0);
    CHECK_EQ_INT(d.messages, 1);
    CHECK_EQ_INT(pc_batch_rejected(b), 7);
    CHECK(pc_batch_is_rejected(b, 0));
    CHECK(strstr(pc_batch_reject_reason(b), "exporter kx") != NULL);
    pc_buf_free(&rec);
    pc_batch_unref(b);
    b = pc_batch_create(NULL);
    b->signal = PC_SIGNAL_LOGS;
    b->raw = S(b, "small");
    d = (pc_kafka_drops){0};
    CHECK_EQ_INT(pc_kafka_record_encode(&rec, b, PC_KAFKA_PRELA_JSON, 2048, "kx", &d), 1);
    CHECK_EQ_INT(pc_batch_rejected(b), 0);
    CHECK(pc_batch_reject_reason(b) == NULL);
    pc_buf_free(&rec);
    pc_batch_unref(b);
}

static void test_raw_signal(void)
{
    pc_batch *b = pc_batch_create(NULL);
    b->signal = PC_SIGNAL_LOGS;
    b->raw = S(b, "raw-bytes");
    pc_buf rec = {0};
    pc_kafka_drops d = {0};
    CHECK_EQ_INT(pc_kafka_record_encode(&rec, b, PC_KAFKA_PRELA_JSON, 1000000, "t", &d), 1);
    pc_kafka_msg m[2];
    CHECK_EQ_INT(read_all(&rec, m, 2), 1);
    CHECK_EQ_INT(m[0].topic, PC_KAFKA_T_LOGS);
    CHECK_EQ_INT(m[0].key.n, 0);
    CHECK(m[0].len == 9 && memcmp(m[0].value, "raw-bytes", 9) == 0);
    pc_buf_free(&rec);
    pc_batch_unref(b);
}

/* Every prefix of a record is either read as whole messages or refused; a bad
 * version or topic is refused. */
static void test_damaged(void)
{
    pc_batch *b = batch(10);
    pc_buf rec = {0};
    pc_kafka_drops d = {0};
    pc_kafka_record_encode(&rec, b, PC_KAFKA_OTLP_JSON, 1000000, "t", &d);
    pc_kafka_msg m;
    for (size_t len = 0; len < rec.len; len++) {
        char *copy = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        memcpy(copy, rec.data, len);
        size_t pos = 0;
        int r;
        size_t msgs = 0;
        while ((r = pc_kafka_record_next(copy, len, &pos, &m)) > 0) msgs++;
        CHECK(r == -1 || (r == 0 && pos == len));
        free(copy);
    }
    size_t pos = 0;
    rec.data[0] = 2; /* a version this build does not know */
    CHECK_EQ_INT(pc_kafka_record_next(rec.data, rec.len, &pos, &m), -1);
    rec.data[0] = PC_KAFKA_RECORD_VERSION;
    rec.data[1] = PC_KAFKA_T_COUNT; /* an unknown topic */
    pos = 0;
    CHECK_EQ_INT(pc_kafka_record_next(rec.data, rec.len, &pos, &m), -1);
    pc_buf_free(&rec);
    pc_batch_unref(b);
}

int main(void)
{
    pc_log_set_level(PC_LOG_ERROR);
    RUN(test_prela_json);
    RUN(test_oversize_dropped);
    RUN(test_raw_signal);
    RUN(test_raw_oversize);
    RUN(test_reject_refused);
    RUN(test_damaged);
    return CHECK_DONE();
}

/*
 * test_otlp_events.c - GenAI log records -> carriers (otlp_events.h), and a
 * carrier's way through the Kafka encodings (kafka_record.h, kafka_message.h).
 *
 * Logs requests are built with the generated protobuf-c structs and packed,
 * as a client sends them; the conversion reads the packed bytes. Checked:
 * which records are attached (GenAI name in event_name or event.name, both
 * ids of the right length) and which are left alone; the event's name, time
 * (observed time when time is 0) and typed attributes with the body first;
 * runs of one span sharing a carrier; the bounds (attributes, depth, 10^5
 * records of one span); then a carrier encoded in each Kafka encoding and
 * decoded back is a carrier with the same events, while a client's span
 * attribute "prela.carrier" never makes a span a carrier.
 */
#include "check.h"
#include "otlp_build.h"

#include "exporters/kafka_record.h"
#include "formats/kafka_message.h"
#include "formats/otlp_events.h"

#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest LogsRequest;
typedef Opentelemetry__Proto__Logs__V1__ResourceLogs ResourceLogs;
typedef Opentelemetry__Proto__Logs__V1__ScopeLogs ScopeLogs;
typedef Opentelemetry__Proto__Logs__V1__LogRecord LogRecord;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;

#define TID "0af7651916cd43dd8448eb211c80319c"
#define SID "b7ad6b7169203331"
#define SID2 "00f067aa0ba902b7"

static LogRecord *record(const char *event_name, const char *tid, const char *sid)
{
    LogRecord *r = ob_msg(&opentelemetry__proto__logs__v1__log_record__descriptor);
    if (event_name) r->event_name = (char *)event_name;
    if (tid) r->trace_id = id(tid);
    if (sid) r->span_id = id(sid);
    return r;
}

/* A packed request of one resource (project attribute |project| unless NULL)
 * and one scope holding the |n| records. */
static uint8_t *request(const char *project, LogRecord **recs, size_t n, size_t *len)
{
    Resource *res = ob_msg(&opentelemetry__proto__resource__v1__resource__descriptor);
    if (project) {
        res->n_attributes = 1;
        res->attributes = ob_ptrs(1, kv("prela.project_id", v_str(project)));
    }
    ScopeLogs *sl = ob_msg(&opentelemetry__proto__logs__v1__scope_logs__descriptor);
    sl->n_log_records = n;
    sl->log_records = recs;
    ResourceLogs *rl = ob_msg(&opentelemetry__proto__logs__v1__resource_logs__descriptor);
    rl->resource = res;
    rl->n_scope_logs = 1;
    rl->scope_logs = ob_ptrs(1, sl);
    LogsRequest *req =
        ob_msg(&opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor);
    req->n_resource_logs = 1;
    req->resource_logs = ob_ptrs(1, rl);
    return pack(req, len);
}

static pc_batch *convert(const uint8_t *buf, size_t len, const char *forced, int64_t *attached,
                         int64_t *skipped)
{
    pc_batch *b = pc_batch_create(NULL);
    b->received_ns = 42;
    *attached = pc_otlp_events_carriers(b, (pc_str){(const char *)buf, len}, forced, "dflt", NULL,
                                        skipped);
    return b;
}

static void test_conversion(void)
{
    OB = pc_arena_create(1 << 16);
    LogRecord *user = record("gen_ai.user.message", TID, SID);
    user->time_unix_nano = 1700000000000000001ull;
    user->observed_time_unix_nano = 5;
    user->body = v_kvlist(2, (KeyValue *[]){kv("content", v_str("What is the capital?")),
                                            kv("parts", v_array(2, (AnyValue *[]){
                                                v_int(7), v_kvlist(1, (KeyValue *[]){
                                                    kv("x", v_bool(1))})}))});
    user->n_attributes = 5;
    user->attributes = ob_ptrs(5, kv("gen_ai.system", v_str("openai")), kv("n", v_int(-3)),
                               kv("d", v_double(0.5)), kv("ok", v_bool(0)),
                               kv("raw", v_bytes("\x00\x01", 2)));
    user->dropped_attributes_count = 2;
    /* named by the attribute, time 0: the observed time */
    LogRecord *choice = record(NULL, TID, SID);
    choice->observed_time_unix_nano = 1700000000000000009ull;
    choice->n_attributes = 1;
    choice->attributes = ob_ptrs(1, kv("event.name", v_str("gen_ai.choice")));
    choice->body = v_str("Paris");
    LogRecord *other = record("app.started", TID, SID);          /* not GenAI */
    LogRecord *no_span = record("gen_ai.user.message", TID, NULL); /* no span id */
    LogRecord *zero = record("gen_ai.user.message", "00000000000000000000000000000000", SID);
    LogRecord *prefix = record("gen_ai.", TID, SID); /* the prefix alone is no event name */
    LogRecord *second = record("gen_ai.system.message", TID, SID2); /* another span */
    LogRecord *back = record("gen_ai.tool.message", TID, SID);      /* back to the first */
    LogRecord *recs[] = {user, choice, other, no_span, zero, prefix, second, back};
    size_t len;
    uint8_t *buf = request("proj-a", recs, 8, &len);
    int64_t attached, skipped;
    pc_batch *b = convert(buf, len, NULL, &attached, &skipped);
    CHECK_EQ_INT(attached, 4);
    CHECK_EQ_INT(skipped, 0);
    CHECK_EQ_INT(b->n, 3); /* runs: (SID: user, choice), (SID2), (SID: back) */
    pc_span *c = &b->spans[0];
    CHECK(c->carrier);
    CHECK_EQ_PSTR(c->trace_id, TID);
    CHECK_EQ_PSTR(c->span_id, SID);
    CHECK_EQ_PSTR(c->project_id, "proj-a");
    CHECK_EQ_INT(c->received_ns, 42);
    CHECK_EQ_INT(c->n_events, 2);
    pc_event *e = &c->events[0];
    CHECK_EQ_PSTR(e->name, "gen_ai.user.message");
    CHECK_EQ_INT(e->time_ns, 1700000000000000001LL);
    CHECK_EQ_INT(e->dropped_attributes_count, 2);
    CHECK_EQ_INT(e->attrs.n, 6);
    CHECK_EQ_PSTR(e->attrs.kv[0].key, "body"); /* first: messages.h reads it */
    const pc_value *body = pc_attrs_get(&e->attrs, "body");
    CHECK(body && body->type == PC_V_MAP && body->map.n == 2);
    if (body && body->type == PC_V_MAP && body->map.n == 2) {
        CHECK_EQ_PSTR(body->map.kv[0].value.s, "What is the capital?");
        const pc_value *parts = &body->map.kv[1].value;
        CHECK(parts->type == PC_V_ARRAY && parts->arr.n == 2);
        CHECK(parts->arr.v[0].type == PC_V_INT && parts->arr.v[0].i == 7);
        CHECK(parts->arr.v[1].type == PC_V_MAP && parts->arr.v[1].map.kv[0].value.type == PC_V_BOOL);
    }
    const pc_value *v = pc_attrs_get(&e->attrs, "n");
    CHECK(v && v->type == PC_V_INT && v->i == -3);
    v = pc_attrs_get(&e->attrs, "d");
    CHECK(v && v->type == PC_V_DOUBLE && v->d == 0.5);
    v = pc_attrs_get(&e->attrs, "ok");
    CHECK(v && v->type == PC_V_BOOL && !v->b);
    v = pc_attrs_get(&e->attrs, "raw");
    CHECK(v && v->type == PC_V_BYTES && v->s.n == 2 && v->s.p[1] == 1);
    v = pc_attrs_get(&e->attrs, "gen_ai.system");
    CHECK(v && v->type == PC_V_STR && pc_str_eq(v->s, "openai"));
    e = &c->events[1];
    CHECK_EQ_PSTR(e->name, "gen_ai.choice");
    CHECK_EQ_INT(e->time_ns, 1700000000000000009LL);
    v = pc_attrs_get(&e->attrs, "body");
    CHECK(v && v->type == PC_V_STR && pc_str_eq(v->s, "Paris"));
    CHECK(pc_attrs_get(&e->attrs, "event.name") != NULL); /* attributes as sent */
    CHECK_EQ_PSTR(b->spans[1].span_id, SID2);
    CHECK_EQ_INT(b->spans[1].n_events, 1);
    CHECK_EQ_PSTR(b->spans[2].span_id, SID);
    CHECK_EQ_PSTR(b->spans[2].events[0].name, "gen_ai.tool.message");
    /* a carrier has nothing a span has but its ids, project and events */
    CHECK_EQ_INT(c->name.n + c->parent_id.n + c->attrs.n + c->n_links, 0);
    pc_batch_unref(b);

    /* The project: a forced one (the header) wins; without any, the default. */
    b = convert(buf, len, "forced", &attached, &skipped);
    CHECK_EQ_PSTR(b->spans[0].project_id, "forced");
    pc_batch_unref(b);
    buf = request(NULL, recs, 8, &len);
    b = convert(buf, len, NULL, &attached, &skipped);
    CHECK_EQ_PSTR(b->spans[0].project_id, "dflt");
    pc_batch_unref(b);

    /* No GenAI record: nothing. */
    buf = request(NULL, (LogRecord *[]){other, no_span}, 2, &len);
    b = convert(buf, len, NULL, &attached, &skipped);
    CHECK_EQ_INT(attached, 0);
    CHECK_EQ_INT(b->n, 0);
    pc_batch_unref(b);

    /* Not a logs request: -1, nothing added. */
    b = convert((const uint8_t *)"\xff\xff\xff", 3, NULL, &attached, &skipped);
    CHECK_EQ_INT(attached, -1);
    CHECK_EQ_INT(b->n, 0);
    pc_batch_unref(b);
    pc_arena_destroy(OB);
}

/* Records over the limits are skipped; 10^5 records of one span cost
 * 10^5 / max_events carriers. */
static void test_bounds(void)
{
    OB = pc_arena_create(1 << 20);
    LogRecord *many = record("gen_ai.user.message", TID, SID);
    many->n_attributes = 1100; /* over max_attributes_per_span (1024) */
    many->attributes = ob_alloc(1100 * sizeof(KeyValue *));
    for (size_t i = 0; i < 1100; i++) {
        char *k = ob_alloc(16);
        snprintf(k, 16, "k%zu", i);
        many->attributes[i] = kv(k, v_int((int64_t)i));
    }
    AnyValue *deep = v_str("bottom");
    for (int i = 0; i < 40; i++) /* over max_attribute_depth (32) */
        deep = v_array(1, ob_ptrs(1, deep)); /* one array each: a loop reuses a literal */
    LogRecord *deeprec = record("gen_ai.user.message", TID, SID);
    deeprec->body = deep;
    LogRecord *fine = record("gen_ai.user.message", TID, SID);
    fine->body = v_str("ok");
    size_t len;
    uint8_t *buf = request(NULL, (LogRecord *[]){many, deeprec, fine}, 3, &len);
    int64_t attached, skipped;
    pc_batch *b = convert(buf, len, NULL, &attached, &skipped);
    CHECK_EQ_INT(attached, 1);
    CHECK_EQ_INT(skipped, 2);
    CHECK_EQ_INT(b->n, 1);
    pc_batch_unref(b);

    /* 10^5 records of one span: ceil(10^5 / 1024) = 98 carriers, none over
     * max_events_per_span, every record attached. */
    enum { N = 100000 };
    LogRecord **recs = ob_alloc(N * sizeof(*recs));
    for (size_t i = 0; i < N; i++) {
        recs[i] = record("gen_ai.choice", TID, SID);
        recs[i]->time_unix_nano = i + 1;
    }
    buf = request(NULL, recs, N, &len);
    b = convert(buf, len, NULL, &attached, &skipped);
    CHECK_EQ_INT(attached, N);
    CHECK_EQ_INT(b->n, (N + 1023) / 1024);
    size_t total = 0;
    for (size_t i = 0; i < b->n; i++) {
        CHECK(b->spans[i].n_events <= 1024);
        total += b->spans[i].n_events;
    }
    CHECK_EQ_INT(total, N);
    /* what it cost stays in proportion to the request's bytes */
    CHECK(pc_arena_used(b->arena) < PC_OTLP_EVENTS_FACTOR * len + (1u << 20));
    pc_batch_unref(b);
    pc_arena_destroy(OB);
}

/* A carrier through each Kafka encoding comes back a carrier with its events;
 * a span whose client sent "prela.carrier" comes back a span with it. */
static void test_kafka_round_trip(void)
{
    OB = pc_arena_create(1 << 16);
    LogRecord *user = record("gen_ai.user.message", TID, SID);
    user->time_unix_nano = 1700000000000000001ull;
    user->body = v_kvlist(1, (KeyValue *[]){kv("content", v_str("Bonjour"))});
    user->n_attributes = 1;
    user->attributes = ob_ptrs(1, kv("n", v_int(9)));
    size_t len;
    uint8_t *buf = request("proj-k", (LogRecord *[]){user}, 1, &len);
    int64_t attached, skipped;
    pc_batch *b = convert(buf, len, NULL, &attached, &skipped);
    CHECK_EQ_INT(b->n, 1);
    /* a client span carrying the reserved key as its own attribute */
    pc_span *s = pc_batch_add(b);
    s->trace_id = PC_STR_LIT(TID);
    s->span_id = PC_STR_LIT(SID2);
    s->name = PC_STR_LIT("chat");
    s->project_id = PC_STR_LIT("proj-k");
    s->source = PC_SOURCE_OTLP;
    s->start_ns = 1700000000000000000LL;
    pc_kv *kvs = pc_arena_alloc(b->arena, sizeof(pc_kv));
    kvs[0] = (pc_kv){PC_STR_LIT("prela.carrier"), {.type = PC_V_STR, .s = PC_STR_LIT("events")}};
    s->attrs = (pc_attrs){kvs, 1};

    static const pc_kafka_encoding encs[] = {PC_KAFKA_PRELA_JSON, PC_KAFKA_OTLP_PROTO,
                                             PC_KAFKA_OTLP_JSON};
    for (size_t k = 0; k < 3; k++) {
        pc_buf rec = PC_BUF_INIT;
        pc_kafka_drops drops = {0};
        size_t msgs = pc_kafka_record_encode(&rec, b, encs[k], 1 << 20, "test", &drops);
        CHECK(msgs >= 1);
        pc_batch *out = pc_batch_create(NULL);
        size_t pos = 0, summaries = 0;
        pc_kafka_msg m;
        while (pc_kafka_record_next(rec.data, rec.len, &pos, &m) > 0) {
            pc_kafka_decode_result dr;
            pc_kafka_decoded d = pc_kafka_decode(out, encs[k], m.value, m.len, 7, &dr);
            CHECK(d != PC_KAFKA_POISON);
            if (d == PC_KAFKA_SUMMARY) {
                summaries++;
                /* prela_json: the summary counts the span, never the carrier */
                CHECK(strstr(m.value, "\"span_count\":1") != NULL);
            }
        }
        CHECK_EQ_INT(summaries, encs[k] == PC_KAFKA_PRELA_JSON ? 1 : 0);
        CHECK_EQ_INT(out->n, 2);
        const pc_span *carrier = NULL, *span = NULL;
        for (size_t i = 0; i < out->n; i++)
            *(out->spans[i].carrier ? &carrier : &span) = &out->spans[i];
        CHECK(carrier && span);
        if (carrier && span) {
            CHECK_EQ_PSTR(carrier->trace_id, TID);
            CHECK_EQ_PSTR(carrier->span_id, SID);
            CHECK_EQ_PSTR(carrier->project_id, "proj-k");
            CHECK_EQ_INT(carrier->attrs.n, 0); /* the marker is gone */
            CHECK_EQ_INT(carrier->n_events, 1);
            CHECK_EQ_PSTR(carrier->events[0].name, "gen_ai.user.message");
            CHECK_EQ_INT(carrier->events[0].time_ns, 1700000000000000001LL);
            const pc_value *body = pc_attrs_get(&carrier->events[0].attrs, "body");
            CHECK(body && body->type == PC_V_MAP && body->map.n == 1);
            const pc_value *n = pc_attrs_get(&carrier->events[0].attrs, "n");
            CHECK(n && n->type == PC_V_INT && n->i == 9);
            CHECK_EQ_PSTR(span->name, "chat");
            const pc_value *own = pc_attrs_get(&span->attrs, "prela.carrier");
            CHECK(own && own->type == PC_V_STR && pc_str_eq(own->s, "events"));
        }
        pc_batch_unref(out);
        pc_buf_free(&rec);
    }
    pc_batch_unref(b);
    pc_arena_destroy(OB);
}

int main(void)
{
    RUN(test_conversion);
    RUN(test_bounds);
    RUN(test_kafka_round_trip);
    return CHECK_DONE();
}

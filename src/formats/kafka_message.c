/*
 * kafka_message.c - the encodings of trace messages on Kafka: names, detection
 * and one decode entry point that hands each message to its format's reader
 * (see kafka_message.h).
 */
#include "formats/kafka_message.h"

#include "formats/otlp_json.h"
#include "formats/otlp_prela.h"
#include "formats/otlp_proto.h"
#include "formats/prela_json.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const encodings[] = {"prela_json", "otlp_proto", "otlp_json", "auto", NULL};

int pc_kafka_encoding_parse(const char *s)
{
    for (int i = 0; s && encodings[i]; i++)
        if (!strcasecmp(s, encodings[i])) return i;
    return -1;
}

/* ---------------------------------------------------------------- OTLP -- */

static pc_kafka_decoded decode_otlp(pc_batch *b, bool json, const void *buf, size_t len,
                                    int64_t msg_time_ns, pc_kafka_decode_result *res)
{
    size_t before = b->n;
    pc_otlp_result r;
    int rc;
    if (json) {
        const char *text = pc_arena_strndup(b->arena, buf, len);
        rc = pc_otlp_json_decode(b, text, len, NULL, "", NULL, &r);
    } else {
        rc = pc_otlp_proto_decode(b, buf, len, NULL, "", NULL, &r);
    }
    snprintf(res->error, sizeof(res->error), "%s", r.error);
    if (rc < 0 || b->n == before) {
        b->n = before;
        if (rc == 0)
            snprintf(res->error, sizeof(res->error), "no spans%s%.480s", r.error[0] ? ": " : "",
                     r.error);
        return PC_KAFKA_POISON;
    }
    res->rejected = r.rejected;
    for (size_t i = before; i < b->n; i++) {
        pc_span *s = &b->spans[i];
        pc_otlp_prela_restore(s);
        s->received_ns = msg_time_ns;
    }
    res->spans = b->n - before;
    return PC_KAFKA_SPANS;
}

/* JSON whitespace. */
static bool json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

pc_kafka_encoding pc_kafka_encoding_detect(const void *buf, size_t len)
{
    const char *p = buf, *end = p + len;
    if (p == end || *p != '{') return PC_KAFKA_OTLP_PROTO;
    for (p++; p < end && json_ws(*p);) p++;
    static const char *const keys[] = {"\"resourceSpans\"", "\"resource_spans\""};
    for (int i = 0; i < 2; i++) {
        size_t k = strlen(keys[i]);
        if ((size_t)(end - p) >= k && memcmp(p, keys[i], k) == 0) return PC_KAFKA_OTLP_JSON;
    }
    return PC_KAFKA_PRELA_JSON;
}

pc_kafka_decoded pc_kafka_decode(pc_batch *b, pc_kafka_encoding encoding, const void *buf,
                                 size_t len, int64_t msg_time_ns, pc_kafka_decode_result *res)
{
    memset(res, 0, sizeof(*res));
    if (!buf) buf = "";
    if (encoding == PC_KAFKA_AUTO) encoding = pc_kafka_encoding_detect(buf, len);
    switch (encoding) {
    case PC_KAFKA_OTLP_PROTO: return decode_otlp(b, false, buf, len, msg_time_ns, res);
    case PC_KAFKA_OTLP_JSON: return decode_otlp(b, true, buf, len, msg_time_ns, res);
    default: break;
    }
    int rc = pc_prela_json_decode_message(b, buf, len, msg_time_ns, res->error, sizeof(res->error));
    if (rc < 0) return PC_KAFKA_POISON;
    if (rc == 1) return PC_KAFKA_SUMMARY;
    res->spans = 1;
    return PC_KAFKA_SPANS;
}

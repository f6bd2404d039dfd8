/*
 * kafka_record.c - a batch as its Kafka messages, in the record format the
 * spool stores (see kafka_record.h).
 *
 * Sits between the kafka exporter's consume() and the formats (src/formats/): it decides
 * which messages a batch becomes, encodes each straight into the record
 * (header first, value after, value length patched), and leaves out what
 * could never be produced.
 */
#include "kafka_record.h"

#include "formats/kafka_message.h"
#include "formats/otlp_json.h"
#include "formats/otlp_proto.h"
#include "formats/prela_json.h"
#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_HDR 13u /* topic u8 | spans u32 | key_len u32 | value_len u32 */

static void put32(char *p, uint32_t v)
{
    p[0] = (char)v;
    p[1] = (char)(v >> 8);
    p[2] = (char)(v >> 16);
    p[3] = (char)(v >> 24);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct enc {
    pc_buf *rec;
    pc_batch *b; /* rejections are marked here */
    size_t max_bytes;
    const char *id;
    pc_kafka_drops *drops;
    size_t messages;
    size_t start; /* offset of the open message's header */
    /* pc_kafka_record_reject: a second pass that only tells which spans each
     * message carries; messages are not kept */
    const unsigned char *refused; /* NULL: a normal encode */
    size_t n_refused;
    const char *why;
} enc;

/* Starts a message: writes its header with value_len 0, then the key. */
static void open_msg(enc *e, int topic, uint32_t spans, pc_str key)
{
    if (!e->rec->len) pc_buf_putc(e->rec, (char)PC_KAFKA_RECORD_VERSION);
    e->start = e->rec->len;
    char h[MSG_HDR];
    h[0] = (char)topic;
    put32(h + 1, spans);
    put32(h + 5, (uint32_t)key.n);
    put32(h + 9, 0);
    pc_buf_append(e->rec, h, sizeof(h));
    if (key.n) pc_buf_append(e->rec, key.p, key.n);
}

static size_t value_len(const enc *e, pc_str key)
{
    return e->rec->len - e->start - MSG_HDR - key.n;
}

static bool too_big(const enc *e, pc_str key)
{
    return value_len(e, key) + key.n + PC_KAFKA_MSG_OVERHEAD > e->max_bytes;
}

/* Takes the open message back out of the record. */
static void cancel_msg(enc *e)
{
    e->rec->len = e->start;
}

/* Ends the open message: keeps it (true), or drops it when too large and
 * rejects its |n| spans on the batch (span.h, "Rejections"), or the whole
 * batch when |spans| is NULL and the message carries a metrics/logs request. */
static bool close_msg(enc *e, int topic, const pc_span *const *spans, size_t n, pc_str key)
{
    size_t vlen = value_len(e, key);
    if (e->refused) { /* the second pass: reject what the message at this ordinal carried */
        bool big = too_big(e, key);
        cancel_msg(e);
        if (big) return false; /* left out (and rejected) by the first pass already */
        size_t k = e->messages++;
        if (k < e->n_refused && e->refused[k]) {
            if (topic == PC_KAFKA_T_METRICS || topic == PC_KAFKA_T_LOGS)
                pc_batch_reject(e->b, PC_BATCH_ALL, e->why);
            for (size_t i = 0; spans && i < n; i++)
                pc_batch_reject(e->b, (size_t)(spans[i] - e->b->spans), e->why);
        }
        return true;
    }
    if (too_big(e, key)) {
        cancel_msg(e);
        e->drops->messages++;
        if (topic != PC_KAFKA_T_TRACES) e->drops->spans += n; /* a summary: counted by its spans */
        static const char *const names[] = {"traces", "spans", "metrics", "logs"};
        char why[200];
        snprintf(why, sizeof(why),
                 "exporter %s: a %zu-byte %s message, over max_message_bytes (%zu)", e->id,
                 vlen + key.n + PC_KAFKA_MSG_OVERHEAD, names[topic], e->max_bytes);
        if (topic == PC_KAFKA_T_METRICS || topic == PC_KAFKA_T_LOGS)
            pc_batch_reject(e->b, PC_BATCH_ALL, why);
        for (size_t i = 0; spans && i < n; i++)
            pc_batch_reject(e->b, (size_t)(spans[i] - e->b->spans), why);
        pc_log(PC_LOG_WARN, e->id,
               "rejected a %zu-byte %s message (trace \"%.*s\", %zu spans): over "
               "max_message_bytes %zu; the sender is told",
               vlen + key.n, names[topic], (int)(key.n < 128 ? key.n : 128), key.p ? key.p : "", n,
               e->max_bytes);
        return false;
    }
    put32(e->rec->data + e->start + 9, (uint32_t)vlen);
    e->messages++;
    return true;
}

/* prela_json: one message per span, then the summary of the spans kept. */
static void encode_prela(enc *e, const pc_trace_group *tr, const pc_batch *b)
{
    const pc_span **kept = pc_xmalloc(tr->n * sizeof(*kept));
    size_t n_kept = 0;
    for (size_t i = 0; i < tr->n; i++) {
        open_msg(e, PC_KAFKA_T_SPANS, 1, tr->trace_id);
        pc_prela_json_encode_span(e->rec, tr->spans[i], pc_span_received(b, tr->spans[i]));
        if (close_msg(e, PC_KAFKA_T_SPANS, &tr->spans[i], 1, tr->trace_id) &&
            !tr->spans[i]->carrier) /* a carrier is in no summary (span.h) */
            kept[n_kept++] = tr->spans[i];
    }
    if (n_kept) {
        open_msg(e, PC_KAFKA_T_TRACES, 0, tr->trace_id);
        pc_prela_json_encode_trace(e->rec, kept, n_kept, b->received_ns);
        /* a summary that cannot be delivered leaves its trace incomplete downstream:
         * the spans it summarises are rejected with it */
        close_msg(e, PC_KAFKA_T_TRACES, kept, n_kept, tr->trace_id);
    }
    free(kept);
}

/* otlp_*: one request for the |n| spans, halved until each fits. */
static void encode_otlp(enc *e, pc_kafka_encoding encoding, const pc_span *const *spans, size_t n,
                        pc_str trace_id)
{
    open_msg(e, PC_KAFKA_T_SPANS, (uint32_t)n, trace_id);
    if (encoding == PC_KAFKA_OTLP_PROTO)
        pc_otlp_proto_encode(e->rec, spans, n);
    else
        pc_otlp_json_encode(e->rec, spans, n);
    if (n > 1 && too_big(e, trace_id)) {
        cancel_msg(e);
        size_t half = n / 2;
        encode_otlp(e, encoding, spans, half, trace_id);
        encode_otlp(e, encoding, spans + half, n - half, trace_id);
        return;
    }
    close_msg(e, PC_KAFKA_T_SPANS, spans, n, trace_id);
}

static size_t encode(enc *e, pc_kafka_encoding encoding);

size_t pc_kafka_record_encode(pc_buf *rec, pc_batch *b, pc_kafka_encoding encoding, size_t max_bytes,
                              const char *id, pc_kafka_drops *drops)
{
    enc e = {.rec = rec, .b = b, .max_bytes = max_bytes, .id = id, .drops = drops};
    return encode(&e, encoding);
}

void pc_kafka_record_reject(pc_batch *b, pc_kafka_encoding encoding, size_t max_bytes,
                            const unsigned char *refused, size_t n, const char *why)
{
    pc_buf scratch = {0};
    pc_kafka_drops drops = {0};
    enc e = {.rec = &scratch,
             .b = b,
             .max_bytes = max_bytes,
             .id = "",
             .drops = &drops,
             .refused = refused,
             .n_refused = n,
             .why = why};
    encode(&e, encoding);
    pc_buf_free(&scratch);
}

/* The body of pc_kafka_record_encode, for both passes. */
static size_t encode(enc *e, pc_kafka_encoding encoding)
{
    pc_buf *rec = e->rec;
    const pc_batch *b = e->b;
    if (b->signal != PC_SIGNAL_TRACES) {
        int t = b->signal == PC_SIGNAL_METRICS ? PC_KAFKA_T_METRICS : PC_KAFKA_T_LOGS;
        open_msg(e, t, 0, PC_STR_NULL);
        pc_buf_append(rec, b->raw.p, b->raw.n);
        close_msg(e, t, NULL, 0, PC_STR_NULL);
        return e->messages;
    }
    pc_trace_group *tr;
    size_t nt = pc_batch_group_traces(b, &tr);
    for (size_t i = 0; i < nt; i++)
        if (encoding == PC_KAFKA_PRELA_JSON)
            encode_prela(e, &tr[i], b);
        else
            encode_otlp(e, encoding, (const pc_span *const *)tr[i].spans, tr[i].n, tr[i].trace_id);
    free(tr);
    return e->messages;
}

int pc_kafka_record_next(const void *rec, size_t n, size_t *pos, pc_kafka_msg *m)
{
    const unsigned char *p = rec;
    if (n == 0 || p[0] != PC_KAFKA_RECORD_VERSION) return -1;
    if (*pos == 0) *pos = 1;
    if (*pos == n) return 0;
    if (*pos > n || n - *pos < MSG_HDR) return -1;
    const unsigned char *h = p + *pos;
    uint32_t klen = get32(h + 5), vlen = get32(h + 9);
    if (h[0] >= PC_KAFKA_T_COUNT || (uint64_t)klen + vlen > n - *pos - MSG_HDR) return -1;
    m->topic = h[0];
    m->spans = get32(h + 1);
    m->key.p = klen ? (const char *)h + MSG_HDR : NULL;
    m->key.n = klen;
    m->value = (const char *)h + MSG_HDR + klen;
    m->len = vlen;
    *pos += MSG_HDR + (size_t)klen + vlen;
    return 1;
}

/*
 * protobuf.c - the protobuf wire check every OTLP request passes, and
 * protobuf-c unpacking for the signals that are not decoded into spans.
 *
 * Data flow: body bytes -> pc_pb_check -> either the trace wire reader
 * (otlp_proto_decode.c, ExportTraceServiceRequest into pc_span) or pc_pb_unpack
 * (otlp_signal.c: metrics and logs, checked and passed on as protobuf).
 *
 * Why a wire check first:
 *   - protobuf-c recurses once per nested message with no limit, so a few
 *     hundred KB of nested AnyValues would overflow the stack; the walk bounds
 *     nesting (MAX_NESTING) and names the byte offset of malformed input.
 *   - it rejects exactly what protobuf-c rejects (truncation, wrong wire types
 *     for known fields, groups), so the trace reader, which runs after it,
 *     answers the same requests 400 that protobuf-c would.
 * pc_pb_unpack then lets protobuf-c unpack with an allocator that carves from
 * the arena (free is a no-op), charged to the memory budget as it goes, within
 * a budget proportional to the body: tiny messages on the wire (an empty
 * KeyValue is 2 bytes) become ~100 bytes of structs, and a 20 MiB body of them
 * must not cost gigabytes. Strings are not checked for UTF-8 there.
 */
#include "formats/protobuf.h"

#include "json.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <string.h>

/* Nested messages allowed: the request envelope takes 6 levels down to an
 * attribute value, and each level of array/kvlist nesting takes 2 more. The
 * reference protobuf runtimes use 100. */
#define MAX_NESTING 100

/* Bytes of protobuf-c structures allowed per body byte (plus a fixed slack). */
#define UNPACK_BUDGET_FACTOR 32
#define UNPACK_BUDGET_SLACK (1u << 20)

/* ---------------------------------------------------------------- wire check */

typedef struct wire {
    const uint8_t *base;
    const char *why; /* static reason on failure */
    size_t at;       /* byte offset of the failure */
} wire;

static int wire_fail(wire *w, const uint8_t *at, const char *why)
{
    w->why = why;
    w->at = (size_t)(at - w->base);
    return -1;
}

/* True when protobuf-c accepts field |f| with wire type |wt|: its own, or
 * length-delimited for a repeated numeric field (packed). */
static bool wire_type_fits(const ProtobufCFieldDescriptor *f, unsigned wt)
{
    unsigned want;
    switch (f->type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        want = 5;
        break;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        want = 1;
        break;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return wt == 2;
    default:
        want = 0;
        break; /* varints: ints, bool, enum */
    }
    return wt == want || (wt == 2 && f->label == PROTOBUF_C_LABEL_REPEATED);
}

/* The field numbered |num| of |desc|, or NULL. protobuf-c lists fields by
 * number, and OTLP numbers them densely, so the index is usually the answer. */
static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessageDescriptor *desc,
                                                unsigned num)
{
    if (num - 1 < desc->n_fields && desc->fields[num - 1].id == num) return &desc->fields[num - 1];
    return protobuf_c_message_descriptor_get_field(desc, num);
}

/* Walks one message of type |desc| in |n| bytes at |p|, |depth| levels deep. */
static int wire_check(wire *w, const uint8_t *p, size_t n, const ProtobufCMessageDescriptor *desc,
                      int depth)
{
    size_t i = 0;
    while (i < n) {
        const uint8_t *field_at = p + i;
        uint64_t key, len;
        if (pc_pb_tag(p, n, &i, &key)) return wire_fail(w, field_at, "invalid field tag");
        unsigned wt = key & 7;
        const ProtobufCFieldDescriptor *f =
            (key >> 3) ? field_of(desc, (unsigned)(key >> 3)) : NULL;
        if (f && !wire_type_fits(f, wt))
            return wire_fail(w, field_at, "wrong wire type for a known field");
        switch (wt) {
        case 0:
            if (pc_pb_varint(p, n, &i, &len)) return wire_fail(w, field_at, "truncated varint");
            break;
        case 1:
        case 5: {
            size_t size = wt == 1 ? 8 : 4;
            if (n - i < size) return wire_fail(w, field_at, "truncated fixed-size field");
            i += size;
            break;
        }
        case 2:
            if (pc_pb_length(p, n, &i, &len) || len > n - i)
                return wire_fail(w, field_at, "truncated length-delimited field");
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth >= MAX_NESTING)
                    return wire_fail(w, field_at, "messages nested too deeply");
                if (wire_check(w, p + i, (size_t)len, f->descriptor, depth + 1)) return -1;
            }
            i += (size_t)len;
            break;
        default:
            return wire_fail(w, field_at, "unsupported wire type (groups)");
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- allocator */

typedef struct budget {
    pc_arena *a;
    size_t left;
    bool over;
} budget;

static void *budget_alloc(void *data, size_t size)
{
    budget *bu = data;
    if (size > bu->left) {
        bu->over = true;
        return NULL; /* protobuf-c then fails the unpack */
    }
    bu->left -= size;
    return pc_arena_try_alloc(bu->a, size); /* NULL when the memory budget refuses */
}

static void budget_free(void *data, void *p)
{
    (void)data; /* the arena frees everything at once */
    (void)p;
}

int pc_pb_check(pc_otlp_dec *d, const ProtobufCMessageDescriptor *desc, const void *buf,
                       size_t len)
{
    wire w = {.base = buf};
    if (wire_check(&w, buf, len, desc, 1))
        return pc_otlp_fail(d, NULL, "invalid protobuf at byte %zu: %s", w.at, w.why);
    return 0;
}

ProtobufCMessage *pc_pb_unpack(pc_otlp_dec *d, const ProtobufCMessageDescriptor *desc,
                                 const void *buf, size_t len)
{
    if (pc_pb_check(d, desc, buf, len)) return NULL;
    budget bu = {d->a, UNPACK_BUDGET_FACTOR * len + UNPACK_BUDGET_SLACK, false};
    ProtobufCAllocator alloc = {budget_alloc, budget_free, &bu};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &alloc, len, buf);
    if (!m && pc_arena_over(d->a))
        pc_otlp_fail(d, NULL, "request is over the memory budget");
    else if (!m && bu.over)
        pc_otlp_fail(d, NULL, "request has too many small messages to decode");
    else if (!m)
        pc_otlp_fail(d, NULL, "invalid protobuf %s", desc->short_name);
    return m;
}

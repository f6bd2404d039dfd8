/*
 * protobuf.h - reading protobuf for the OTLP formats: the wire primitives
 * (varints, tags, length prefixes, inline because the readers call them for
 * every field), the wire check every OTLP protobuf request passes, and
 * protobuf-c unpacking into the arena within a budget.
 *
 * Data flow: request bytes -> pc_pb_check (well-formed as protobuf-c requires,
 * nesting bounded) -> the trace reader (otlp_proto_decode.c) or pc_pb_unpack
 * (otlp_signal.c). Errors go through the decoder state of otlp.h, so they name
 * the field and the byte offset.
 */
#ifndef PC_PROTOBUF_H
#define PC_PROTOBUF_H

#include "formats/otlp.h"

#include <stddef.h>
#include <stdint.h>

struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;

/*
 * Checks |len| bytes at |buf| as a protobuf message of type |desc|: well-formed
 * as protobuf-c requires (tags, lengths, wire types of known fields, no
 * groups) and nested at most 100 deep. Returns 0, or -1 after pc_otlp_fail
 * ("invalid protobuf at byte 12: ...").
 */
int pc_pb_check(pc_otlp_dec *d, const struct ProtobufCMessageDescriptor *desc, const void *buf,
                size_t len);

/*
 * Checks |len| bytes at |buf| as a protobuf message of type |desc| (as
 * pc_pb_check) and unpacks it into d's arena within a budget
 * proportional to |len|. Returns the message, which lives as long as the arena,
 * or NULL after pc_otlp_fail ("invalid protobuf at byte 12: ..."). Strings are
 * not checked for UTF-8 (otlp_signal.c checks them on the wire).
 */
struct ProtobufCMessage *pc_pb_unpack(pc_otlp_dec *d, const struct ProtobufCMessageDescriptor *desc,
                                      const void *buf, size_t len);

/* Reads the protobuf varint at p[*i] (n bytes in all) into |out| and advances *i.
 * Returns 0, or -1 when it is truncated or longer than 10 bytes. Inline: the
 * wire pre-scans call it for every field. */
static inline int pc_pb_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t c = p[(*i)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Reads a field tag at p[*i] into |key| (field number << 3 | wire type) as
 * protobuf-c does: at most 5 bytes, and a one-byte tag must not name field 0
 * (a longer one may: protobuf-c takes it for an unknown field). 0 or -1. */
static inline int pc_pb_tag(const uint8_t *p, size_t n, size_t *i, uint64_t *key)
{
    if (*i < n && p[*i] < 0x80) { /* the usual case */
        *key = p[(*i)++];
        return *key >= 8 ? 0 : -1;
    }
    size_t at = *i;
    return pc_pb_varint(p, n, i, key) || *i - at > 5 ? -1 : 0;
}

/* Reads a length prefix at p[*i] as protobuf-c does: at most 5 bytes, and the
 * value is their low 32 bits. 0 or -1. */
static inline int pc_pb_length(const uint8_t *p, size_t n, size_t *i, uint64_t *len)
{
    if (*i < n && p[*i] < 0x80) {
        *len = p[(*i)++];
        return 0;
    }
    size_t at = *i;
    if (pc_pb_varint(p, n, i, len) || *i - at > 5) return -1;
    *len = (uint32_t)*len;
    return 0;
}

#endif

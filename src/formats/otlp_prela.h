/*
 * otlp_prela.h - how spans of the Prela model travel in OTLP: the contract the
 * Kafka encodings otlp_proto (the default) and otlp_json follow, the view
 * their writers share (otlp_proto_encode.c, otlp_json.c), and the restore
 * their readers' callers apply (kafka_message.c).
 *
 * topics.spans: one ExportTraceServiceRequest per trace id per batch (split
 * into several requests, each a subset of the trace's spans, when one would
 * exceed max_message_bytes), as the OpenTelemetry Collector's Kafka receiver
 * reads them (encodings otlp_proto and otlp_json). otlp_json follows the
 * OTLP/JSON mapping: lowerCamelCase names, ids as lowercase hex, 64-bit
 * integers and times as decimal strings, enums as integers, bytes as base64,
 * empty fields omitted. Nothing goes to topics.traces.
 *
 * Grouping: spans sharing a resource (same resource pointer and project id,
 * and the same service name when the resource has no service.name) form one
 * ResourceSpans; within it, spans sharing a scope form one ScopeSpans; both
 * in order of first appearance. The resource carries its attributes plus
 * `prela.project_id` (the span's project id, replacing any such attribute)
 * and `service.name` (the span's service name, when the resource has none),
 * so a re-decoded span gets the same project and service.
 *
 * Ids: an id of 32 (trace) / 16 (span) lowercase hex digits, not all zero, is
 * written as its 16 / 8 bytes. Any other id (Prela UUIDs, "test-123") is written
 * as derived bytes (a UUID's 16 bytes for trace ids, else a 128/64-bit FNV-1a
 * hash) and the original string is added as the span attribute
 * `prela.trace_id` / `prela.span_id` / `prela.parent_span_id`, which a Prela
 * decoder restores. Link ids use the same mapping without the attribute.
 * Prela spans also get `prela.span_type` (the normalized type; normalize reads
 * it back) and their status as Status.code (success → OK, error → ERROR,
 * pending → UNSET).
 *
 * Carriers (span.h: events for a span, not a span) get `prela.carrier` =
 * "events"; the decoder's caller makes the span a carrier again. The OTLP and
 * Prela receivers never do (they do not restore), so no client can send one.
 *
 * Reserved attributes: those five keys are the format's, never a client's. A
 * span attribute of the span's own whose key is one of them or begins with
 * PC_OTLP_PRELA_ESCAPE ("prela.client.") is written with that prefix added,
 * and the decoder removes one prefix again. So every attribute round-trips
 * exactly, and an OTLP client that sends `prela.trace_id` (or `prela.span_type`)
 * cannot choose the ids (or the source) the storage side assigns.
 */
#ifndef PC_OTLP_PRELA_H
#define PC_OTLP_PRELA_H

#include "arena.h"
#include "span.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_OTLP_PRELA_ESCAPE "prela.client."

/* True when a span attribute |key| is written escaped (see "Reserved attributes"). */
bool pc_otlp_prela_escaped(pc_str key);

/* The spans of one scope within one resource group. */
typedef struct pc_otlp_view_scope {
    size_t res; /* index into pc_otlp_view.res */
    const pc_scope *scope;
    const pc_span **spans;
    size_t n;
} pc_otlp_view_scope;

/* A resource group: spans with the same resource, project id and service name. */
typedef struct pc_otlp_view_res {
    const pc_span *first;
    pc_attrs attrs; /* the resource attributes to write (see "Grouping") */
} pc_otlp_view_res;

/* The request a writer writes: resource groups, then scope groups in order. */
typedef struct pc_otlp_view {
    pc_arena *a; /* the caller's scratch arena: everything below lives in it */
    pc_otlp_view_res *res;
    size_t n_res;
    pc_otlp_view_scope *sc;
    size_t n_sc;
} pc_otlp_view;

/* A span's ids as OTLP bytes and the attributes the format adds to it. */
typedef struct pc_otlp_span_ext {
    uint8_t tid[16], sid[8], pid[8];
    size_t pid_n; /* 0 for a root */
    pc_kv extra[5];
    size_t n_extra;
    int status_code;
} pc_otlp_span_ext;

/* Builds the resource/scope grouping of the |n| spans in |v->a| (set by the
 * caller). The spans must outlive the view. */
void pc_otlp_view_build(pc_otlp_view *v, const pc_span *const *spans, size_t n);

/* Fills |o| for |s|: its ids as bytes, the reserved attributes it needs, and
 * the Status.code to write. |o|'s strings point into |s|. */
void pc_otlp_span_ext_fill(const pc_span *s, pc_otlp_span_ext *o);

/*
 * Writes the non-empty |id| as |want| (16 or 8) OTLP id bytes (see "Ids").
 * Returns true when the lowercase hex of the bytes is |id| itself (nothing
 * to preserve).
 */
bool pc_otlp_id_bytes(pc_str id, uint8_t *out, size_t want);

/*
 * Undoes the conventions on one span a reader decoded: the reserved
 * attributes set the ids, the type and the source (prela.span_type makes it a
 * Prela span: span_type_text, status_text from Status.code, status_code 0),
 * and are removed; a key with the escape prefix loses one prefix. A span it
 * changed loses its wire bytes (span.h), so an encoder writes it anew.
 */
void pc_otlp_prela_restore(pc_span *s);

/* A time in ns as OTLP's fixed64: negative times (never valid) as 0. */
static inline uint64_t pc_otlp_unix_ns(int64_t ns)
{
    return ns > 0 ? (uint64_t)ns : 0;
}

#endif

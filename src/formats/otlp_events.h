/*
 * otlp_events.h - OTLP log records of the GenAI dialect become span events:
 * the record -> carrier conversion (otlp_events.c).
 *
 * Data flow: the OTLP receiver checks a logs request (otlp_signal.h), which
 * leaves it as protobuf in the logs batch's raw; when a traces pipeline takes
 * this receiver it calls pc_otlp_events_carriers, which reads that protobuf
 * again and adds one carrier (span.h, pc_span.carrier) per run of records of
 * the same span to a batch of its own, sent down the traces pipeline. The
 * stores keep a carrier's events apart and merge them into the span on read
 * (span_events.h).
 *
 * Which records: those with a trace_id of 16 bytes and a span_id of 8 bytes
 * (neither all zero) and an event name that starts with "gen_ai." (the
 * GenAI dialect: gen_ai.system.message, gen_ai.user.message,
 * gen_ai.assistant.message, gen_ai.tool.message, gen_ai.choice,
 * gen_ai.client.inference.operation.details, ...). The event name is the
 * record's event_name field, else its string attribute "event.name". Every
 * other record is left alone (it still goes to a logs pipeline, if any).
 *
 * The event: name = the event name; time = time_unix_nano, else
 * observed_time_unix_nano when that is 0; attributes = the record's
 * attributes with their types, preceded by the body (when set) under the key
 * "body" as a typed value (maps and arrays kept), which is where messages.h
 * reads an event's content. dropped_attributes_count is kept. Strings are
 * protobuf-c's, which end at a NUL byte: a string value holding U+0000 (valid
 * UTF-8, so the logs check lets it through) is attached cut at it, never
 * with a NUL inside (span.h's invariant); the logs request itself goes on
 * unchanged.
 *
 * Bounds: a record over |limits| (more than max_attributes attributes, the
 * body included, or a value nested deeper than max_depth) is not attached
 * and counted in *skipped. The carriers of one request cost at most
 * PC_OTLP_EVENTS_FACTOR times its bytes plus 1 MiB of decoded structures;
 * records past that are skipped too. Everything lives in |out|'s arena,
 * which the caller charges to the memory budget.
 */
#ifndef PC_OTLP_EVENTS_H
#define PC_OTLP_EVENTS_H

#include "span.h"

#include <stdint.h>

#define PC_OTLP_EVENTS_FACTOR 64

/* True when |name| is an event name of the GenAI dialect ("gen_ai." prefix). */
bool pc_otlp_events_genai(pc_str name);

/*
 * Appends to |out| (a traces batch holding no spans, or carriers only) the
 * carriers of the GenAI records of the ExportLogsServiceRequest protobuf
 * |raw| (already checked by pc_otlp_signal_decode). |project| (a forced
 * project, or NULL) and |default_project| pick each carrier's project as for
 * spans (a prela.project_id resource attribute otherwise). |limits| NULL: the
 * defaults. Returns the number of records attached (>= 0), or -1 when |raw|
 * does not unpack or the arena's budget refused memory (pc_arena_over(out->
 * arena) tells which). |*skipped| gets the GenAI records left out for the
 * bounds above.
 */
int64_t pc_otlp_events_carriers(pc_batch *out, pc_str raw, const char *project,
                                const char *default_project, const pc_span_limits *limits,
                                int64_t *skipped);

#endif

/*
 * span_events.h - events attached to a span from outside it (carriers: OTLP
 * GenAI log records, otlp_events.h), as the stores keep them and merge them
 * on read. Shared by the embedded store (local_events.c) and, when it keeps
 * them, the ClickHouse store.
 *
 * Data flow: a store's writer receives a carrier (span.h) and keeps each of
 * its events as one row keyed by (project, trace id, span id, content key),
 * the event written as span.h's JSON object {"name","timestamp",
 * "time_unix_nano","attributes"} (pc_span_event_json) and the content key its
 * pc_span_event_key, so a redelivered carrier adds nothing. A read of a
 * trace's spans looks the rows of each span up (oldest first, at most
 * PC_SPAN_EVENTS_MAX + 1) and calls pc_span_events_merge, which returns the
 * span with them: events merged in time order (the span's own first on equal
 * times), and input_messages / output_messages computed by messages.h from
 * the merged span for a side the stored span had none of. A carrier whose
 * span never arrives shows nowhere (search finds nothing: a trace must exist).
 *
 * Bound (per span, on read): at most PC_SPAN_EVENTS_MAX attached events and
 * PC_SPAN_EVENTS_MAX_BYTES bytes of their JSON are merged; the oldest win,
 * and the span row says it was cut (pc_span_row.events_cut, served as
 * "events_truncated": true).
 */
#ifndef PC_SPAN_EVENTS_H
#define PC_SPAN_EVENTS_H

#include "buf.h"
#include "span.h"
#include "store.h"

#define PC_SPAN_EVENTS_MAX 1024
#define PC_SPAN_EVENTS_MAX_BYTES ((size_t)16 << 20)

/* Writes |ev| as span.h's JSON object of one event into |out| (appends). */
void pc_span_event_json(pc_buf *out, const pc_event *ev);

/* The content key of an event's JSON text: 64-bit FNV-1a, as a signed
 * integer (SQLite's and ClickHouse's Int64). Equal text, equal key. */
int64_t pc_span_event_key(const char *json, size_t n);

/* The merge of one span row; owns the texts the row points to after a merge. */
typedef struct pc_span_events {
    pc_buf events, input, output;
} pc_span_events;

#define PC_SPAN_EVENTS_INIT {PC_BUF_INIT, PC_BUF_INIT, PC_BUF_INIT}

/*
 * Merges the |n| attached events |ev[i]| (|len[i]| bytes of JSON object each,
 * oldest first) into |row| (see above). |cut|: the caller left events out
 * already (it read more than PC_SPAN_EVENTS_MAX). Sets row->events, and
 * row->input_messages / output_messages when they were empty and the merged
 * span yields some, to texts in |m|, valid until pc_span_events_free(m) or
 * the next merge into |m|; sets row->events_cut when events were left out.
 * An attached event that does not parse is left out. n == 0 changes nothing.
 */
void pc_span_events_merge(pc_span_events *m, pc_span_row *row, const char *const *ev,
                          const size_t *len, size_t n, bool cut);

void pc_span_events_free(pc_span_events *m);

#endif

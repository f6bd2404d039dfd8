/*
 * span.h - the one span model every component speaks, and the batch that carries it.
 *
 * Data flow: a receiver decodes a request into a pc_batch (raw fields below), the
 * normalize processor fills the derived fields, exporters store or encode it.
 *
 * Memory: every string, array and span of a batch lives in the batch's arena
 * (arena.h); nothing inside a batch is freed on its own. Strings are pc_str
 * (pointer + length) and are NOT NUL-terminated in general: the JSON decoder
 * points straight into the request body where it can. Ids are opaque strings,
 * preserved exactly as received (OTLP ids as lowercase hex).
 *
 * Invariant: no string of a span holds a NUL byte (bytes values may). Every
 * decoder refuses such a span (pc_span_find_nul), so encoders write strings
 * whole without scanning them.
 *
 * Ownership: a batch is reference-counted. pc_batch_create returns one reference;
 * passing a batch to a consumer (component.h) hands over one reference; whoever
 * keeps using a batch after passing it takes an extra reference first.
 * Processors may change a batch in place; after the exporter fan-out it is
 * read-only.
 */
#ifndef PC_SPAN_H
#define PC_SPAN_H

#include "arena.h"
#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct pc_str {
    const char *p;
    size_t n;
} pc_str;

#define PC_STR_LIT(lit) ((pc_str){(lit), sizeof(lit) - 1})
#define PC_STR_NULL ((pc_str){NULL, 0})

/* The longest session or user id a span carries (pc_span.session_id). */
#define PC_SPAN_GROUP_ID_MAX 256

/* Typed values: OTLP AnyValue and JSON values share this representation. */
typedef enum pc_value_type {
    PC_V_NULL = 0, /* JSON null, OTLP empty AnyValue */
    PC_V_STR,
    PC_V_BOOL,
    PC_V_INT,
    PC_V_DOUBLE,
    PC_V_BYTES, /* raw bytes in s; written to JSON as base64 */
    PC_V_ARRAY,
    PC_V_MAP, /* ordered key/value list (JSON object, OTLP kvlist) */
} pc_value_type;

typedef struct pc_value pc_value;
typedef struct pc_kv pc_kv;

struct pc_value {
    pc_value_type type;
    union {
        pc_str s;
        bool b;
        int64_t i;
        double d;
        struct {
            pc_value *v;
            size_t n;
        } arr;
        struct {
            pc_kv *kv;
            size_t n;
        } map;
    };
};

struct pc_kv {
    pc_str key;
    pc_value value;
};

typedef struct pc_attrs {
    pc_kv *kv;
    size_t n;
} pc_attrs;

typedef struct pc_event {
    pc_str name;
    int64_t time_ns;
    pc_attrs attrs;
    uint32_t dropped_attributes_count; /* OTLP: dropped by the sender or the decoder */
} pc_event;

typedef struct pc_link {
    pc_str trace_id;
    pc_str span_id;
    pc_str trace_state;
    pc_attrs attrs;
    uint32_t dropped_attributes_count; /* OTLP: dropped by the sender or the decoder */
} pc_link;

typedef struct pc_scope {
    pc_str name;
    pc_str version;
    pc_attrs attrs;
    uint32_t dropped_attributes_count; /* OTLP: dropped by the sender or the decoder */
} pc_scope;

typedef enum pc_span_type {
    PC_TYPE_CUSTOM = 0,
    PC_TYPE_AGENT,
    PC_TYPE_LLM,
    PC_TYPE_TOOL,
    PC_TYPE_RETRIEVAL,
    PC_TYPE_EMBEDDING,
    PC_TYPE_COUNT
} pc_span_type;

typedef enum pc_status {
    PC_STATUS_PENDING = 0,
    PC_STATUS_SUCCESS,
    PC_STATUS_ERROR,
} pc_status;

typedef enum pc_source {
    PC_SOURCE_PRELA = 0,
    PC_SOURCE_OTLP,
} pc_source;

/* Where a span's cost comes from (pc_span.cost_source). */
typedef enum pc_cost_source {
    PC_COST_NONE = 0, /* no cost: the cost fields are NAN */
    PC_COST_SENT,     /* the client sent it (gen_ai.usage.cost, llm.cost.total, ...) */
    PC_COST_TABLE,    /* computed from the price table and the token counts */
} pc_cost_source;

/* OTLP Status.code values, which Prela statuses are also mapped onto. */
enum { PC_OTLP_STATUS_UNSET = 0, PC_OTLP_STATUS_OK = 1, PC_OTLP_STATUS_ERROR = 2 };

typedef struct pc_span {
    /* --- raw fields, set by receivers --- */
    pc_str trace_id;
    pc_str span_id;
    pc_str parent_id;  /* empty for a root */
    pc_str trace_state;
    pc_str name;
    int kind;          /* OTLP SpanKind 0..5 (0 unspecified, 1 internal, 2 server, 3 client, ...) */
    int64_t start_ns;  /* Unix ns */
    int64_t end_ns;    /* Unix ns; 0 = not ended */
    int status_code;   /* PC_OTLP_STATUS_* (OTLP) */
    pc_str status_text;    /* Prela: status as sent ("SUCCESS", "error", ...); empty for OTLP */
    pc_str status_message;
    pc_str span_type_text; /* Prela: span_type as sent ("LLM", "tool", ...); empty for OTLP */
    pc_str service_hint;   /* Prela: envelope service_name; used when no service.name */
    pc_str project_id;     /* tenant; the receiver fills it (header, resource or default) */
    pc_source source;
    int64_t received_ns;   /* when a collector first accepted it (the Kafka receiver keeps
                            * the gateway's); 0 = the batch's received_ns, see pc_span_received */
    uint32_t flags;
    /*
     * A carrier is not a span: it only brings events (OTLP GenAI log records,
     * otlp_events.h) to the span (project_id, trace_id, span_id), which may
     * arrive before it, after it or never. Only trace_id, span_id, project_id,
     * received_ns and events are set; normalize leaves it alone and the stores
     * keep its events apart and merge them into the span when it is read
     * (span_events.h). The OTLP receiver makes batches of carriers only; the
     * Kafka encodings carry the flag (prela_json "carrier", OTLP attribute
     * prela.carrier), so a storage collector's batches mix both.
     */
    bool carrier;
    pc_attrs attrs;
    /* OTLP dropped_attributes_count: attributes the sender dropped plus those the
     * decoder dropped (an empty key, which OTLP forbids). 0 for Prela spans. */
    uint32_t dropped_attributes_count;
    /* OTLP protobuf: the Span message bytes the span was read from (in the
     * batch's arena); empty for every other source. pc_otlp_proto_encode copies
     * them instead of writing the span anew (otlp_proto.h), so a processor
     * that changes a field the OTLP encoding carries must clear it. */
    pc_str wire;
    const pc_attrs *resource; /* shared by the spans of one resource; never NULL after decode */
    const pc_scope *scope;    /* shared by the spans of one scope; never NULL after decode */
    pc_event *events;
    size_t n_events;
    pc_link *links;
    size_t n_links;

    /* --- derived fields, set by the normalize processor --- */
    pc_span_type span_type;
    pc_status status;
    pc_str service_name;
    pc_str llm_provider;
    pc_str llm_model;          /* the response model when sent, else the request model */
    pc_str llm_request_model;  /* the model asked for; empty when not sent */
    int64_t input_tokens;  /* -1 = not an LLM span or unknown; else 0..INT64_MAX */
    int64_t output_tokens; /* -1 = unknown */
    /* Token details (-1 = not sent). As in the GenAI conventions, input_tokens
     * includes the cache tokens and output_tokens the reasoning tokens. */
    int64_t cache_read_tokens;
    int64_t cache_write_tokens;
    int64_t reasoning_tokens;
    /*
     * Cost in USD of an LLM or embedding span, computed once by normalize
     * (prices.h has the table, the matching rule and the arithmetic). NAN =
     * unknown: not an LLM/embedding span, no price for the model and no cost
     * sent, or no token count. cost_usd = cost_input_usd + cost_output_usd when
     * all three are known; a client-sent total may come without its split
     * (the split is then NAN). cost_source says where the figures come from.
     */
    double cost_usd;
    double cost_input_usd;  /* uncached input + cache read + cache write */
    double cost_output_usd; /* output, reasoning included */
    pc_cost_source cost_source;
    /* Conversation / session / thread, and the end user; empty when none.
     * At most PC_SPAN_GROUP_ID_MAX bytes: normalize promotes no longer id. */
    pc_str session_id;
    pc_str user_id;
    /*
     * Prompt and completion of an LLM span (of any span that carries them:
     * agents and chains too), normalized from every dialect by the normalize
     * processor (messages.h: sources, precedence, bounds) into one shape, the
     * GenAI semantic conventions' (1.37+): JSON array text (in the batch's
     * arena), empty when the span carries none:
     *   [{"role": "system"|"user"|"assistant"|"tool"|..., "name"?: "...",
     *     "parts": [{"type": "text", "content": "..."},
     *               {"type": "tool_call", "id": "...", "name": "...", "arguments": any},
     *               {"type": "tool_call_response", "id": "...", "response": any}, ...],
     *     "finish_reason"?: "..."}]   (finish_reason on output messages)
     * System instructions come first in input_messages, role "system".
     * "arguments" and "response" are as the client sent them (OpenAI sends
     * arguments as a JSON string, the conventions as an object). The
     * attributes and events they were read from stay on the span as sent.
     */
    pc_str input_messages;
    pc_str output_messages;
} pc_span;

/*
 * Token arithmetic saturates: a count a client sends that does not fit int64
 * becomes INT64_MAX (normalize), and a sum of counts (trace summaries, in C
 * and in the stores' SQL) stops at INT64_MAX instead of wrapping or failing.
 * A saturated number is still a number ("a lot"), never a negative or an
 * error, and it never stops a batch from being stored. Adds |b| to |a|, both
 * >= 0, saturating.
 */
static inline int64_t pc_tokens_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* The OTLP signals. Traces are decoded into spans; metrics and logs are carried
 * as their protobuf ExportMetricsServiceRequest / ExportLogsServiceRequest. */
typedef enum pc_signal { PC_SIGNAL_TRACES = 0, PC_SIGNAL_METRICS, PC_SIGNAL_LOGS } pc_signal;
#define PC_SIGNALS 3
/* Bit of a signal in a signal mask. */
#define PC_SIG_BIT(s) (1u << (s))

/* "traces", "metrics", "logs". */
const char *pc_signal_name(pc_signal s);

typedef struct pc_batch {
    pc_arena *arena;
    pc_signal signal; /* PC_SIGNAL_TRACES unless a receiver set another */
    /* traces */
    pc_span *spans;
    size_t n;
    size_t cap;
    /* metrics and logs: the request in protobuf (in the arena or its body), and
     * how many data points / log records it holds */
    pc_str raw;
    int64_t items;
    int64_t received_ns; /* when the receiver accepted the request */
    int refs;            /* atomic; see pc_batch_ref */
    struct pc_rejects *rejects; /* atomic; NULL until an exporter rejects (pc_batch_reject) */
} pc_batch;

/* When |s| was first accepted: its own received_ns, else its batch's. */
static inline int64_t pc_span_received(const pc_batch *b, const pc_span *s)
{
    return s->received_ns ? s->received_ns : b->received_ns;
}

/* Creates an empty batch owning |arena| (a new one when NULL). One reference. */
pc_batch *pc_batch_create(pc_arena *arena);
/* Appends a zero-filled span (tokens -1, costs NAN, empty attrs/resource/scope) and returns it. */
pc_span *pc_batch_add(pc_batch *b);
/*
 * Makes room for at least |n| spans in |b| (no-op when it has that already), so
 * the spans added up to then are not moved again. A receiver that gathers many
 * small requests or messages into one batch reserves for the whole batch:
 * a decoder that grows the array to just what one message needs would
 * otherwise copy every span gathered so far once per message. The room is
 * arena memory (never freed on its own); pages not yet written cost no RSS.
 */
void pc_batch_reserve(pc_batch *b, size_t n);
/* Removes the span added last (a decoder abandoning a span it could not finish;
 * nothing may have been added after it). */
void pc_batch_pop(pc_batch *b);
/* Takes one more reference. Returns |b|. */
pc_batch *pc_batch_ref(pc_batch *b);
/* Drops one reference; the last one frees the batch and its arena. Accepts NULL. */
void pc_batch_unref(pc_batch *b);

/*
 * Rejections: the channel back from exporters to the receiver for data that
 * can never be delivered (a span too large for the exporter's destination),
 * so the client is told instead of answered 200 while the data is gone.
 *
 * An exporter calls pc_batch_reject while it holds its reference, before its
 * consume returns; fan-out runs several exporters on one batch at once, so it
 * is safe from any number of threads. A rejection is not a failure: consume
 * still answers PC_OK for what it delivered. The receiver keeps a reference
 * across consume and reads the rejections after it returned: OTLP answers
 * partial_success (rejected_spans, error_message naming the spans and the
 * reason), the Prela receiver lists them as rejected with an error each;
 * metrics and logs, carried whole, are refused as a permanent error (400).
 * Rejection is sticky: a span rejected by one exporter is reported even when
 * another stored it.
 */
#define PC_BATCH_ALL ((size_t)-1) /* pc_batch_reject: the whole batch (metrics, logs) */

/*
 * Marks span |i| of |b| (or every span and item with PC_BATCH_ALL) rejected
 * for reason |why| (copied; the first reason of the batch is kept, e.g.
 * "exporter kafka: a 5242980-byte message, over max_message_bytes (1000000)").
 * |i| past the spans is ignored. Thread-safe.
 */
void pc_batch_reject(pc_batch *b, size_t i, const char *why);
/* How many spans of |b| were rejected; for metrics/logs batches rejected
 * whole, b->items. 0 when none. Call after consume returned. */
size_t pc_batch_rejected(const pc_batch *b);
/* True when span |i| of |b| was rejected (or the whole batch was). */
bool pc_batch_is_rejected(const pc_batch *b, size_t i);
/* The first rejection's reason, or NULL when nothing was rejected. Borrowed
 * from |b|: valid while the caller holds its reference. */
const char *pc_batch_reject_reason(const pc_batch *b);

/* The spans of one trace within a batch, in batch order. */
typedef struct pc_trace_group {
    pc_str trace_id;
    const pc_span **spans;
    size_t n;
} pc_trace_group;

/*
 * Groups the spans of |b| by trace id, traces in order of first appearance.
 * Returns the number of traces and sets |*out| to a heap block holding the
 * groups and their span pointer arrays; the caller frees it with free(). The
 * pointers borrow from |b|.
 */
size_t pc_batch_group_traces(const pc_batch *b, pc_trace_group **out);

/* Returns the value of the attribute whose key is the |n| bytes at |key| (the
 * first match), or NULL. */
const pc_value *pc_attrs_getn(const pc_attrs *a, const char *key, size_t n);
/* Same for the C string |key|. Inline, so the length of a literal key (every
 * lookup normalize makes) is folded at compile time. */
static inline const pc_value *pc_attrs_get(const pc_attrs *a, const char *key)
{
    return pc_attrs_getn(a, key, strlen(key));
}
/* True when |s| equals the C string |c|. */
bool pc_str_eq(pc_str s, const char *c);
/* Returns an arena copy of |s| with a terminating NUL. */
char *pc_str_dup(pc_arena *a, pc_str s);

/* Names of the enums, as stored and served ("llm", "error", "otlp"). */
const char *pc_span_type_name(pc_span_type t);
const char *pc_status_name(pc_status s);
const char *pc_source_name(pc_source s);
/* "none", "sent", "table". */
const char *pc_cost_source_name(pc_cost_source s);
/* Parses a span type name, any case; returns -1 when it is none of them. */
int pc_span_type_parse(pc_str s);

/*
 * JSON encodings of the model, used both for storage and by the query API so the
 * two never disagree. Attributes become an object keeping value types (ints stay
 * ints, doubles keep a fraction, bytes become base64, maps and arrays nest);
 * events [{"name","timestamp","attributes"}]; links [{"trace_id","span_id",
 * "trace_state","attributes"}]; a scope {"name","version","attributes"}.
 */
void pc_value_write_json(pc_buf *out, const pc_value *v);
void pc_attrs_write_json(pc_buf *out, const pc_attrs *a);
void pc_events_write_json(pc_buf *out, const pc_event *ev, size_t n);
void pc_links_write_json(pc_buf *out, const pc_link *l, size_t n);
void pc_scope_write_json(pc_buf *out, const pc_scope *s);

/*
 * Finds a NUL byte in any string of |s| (ids, name, trace state, status, type
 * and service hints, attribute keys and values at any depth, events, links,
 * resource, scope). Returns false when there is none; else true with the
 * field's path ("trace_id", "attributes.k", "events[2].name", ...) in |where|.
 * Why receivers refuse such spans: the OTLP protobuf encoding (protobuf-c
 * strings end at the first NUL) and C-string consumers downstream would cut
 * the string short, so the storage side would get a different id or value
 * than the one acknowledged. JSON can only carry it as the escape \u0000.
 */
bool pc_span_find_nul(const pc_span *s, char *where, size_t n);

/*
 * Caps on what one request and one span may hold, so the work a request costs
 * is bounded by settings rather than by the client. A receiver keeps one in
 * its configuration (PC_SPAN_LIMIT_OPTIONS adds the keys to its option table)
 * and checks every decoded span with pc_span_over_limits: a span over a cap is
 * refused with the field named (OTLP: partial success; Prela batch: listed in
 * "errors"), a request of more than max_spans spans is refused whole (400).
 */
typedef struct pc_span_limits {
    int64_t max_spans;      /* spans in one request */
    int64_t max_attributes; /* attributes of a span, and of each event, link, resource, scope */
    int64_t max_events;     /* events of a span */
    int64_t max_links;      /* links of a span */
    int64_t max_depth;      /* arrays/maps nested in one attribute value (a scalar is 0) */
} pc_span_limits;

/* The defaults, the values PC_SPAN_LIMIT_OPTIONS starts from. */
extern const pc_span_limits pc_span_limits_default;

/* Option table rows for a pc_span_limits member |field| of config struct |T|. */
#define PC_SPAN_LIMIT_OPTIONS(T, field)                                                            \
    {"max_spans_per_request", PC_OPT_INT, "100000", offsetof(T, field.max_spans), 1, 100000000,    \
     "most spans in one request; a request with more is refused (400)"},                           \
    {"max_attributes_per_span", PC_OPT_INT, "1024", offsetof(T, field.max_attributes), 1,          \
     1000000, "most attributes on a span (and on each event, link, resource, scope); a span "     \
              "with more is refused, naming the field"},                                           \
    {"max_events_per_span", PC_OPT_INT, "1024", offsetof(T, field.max_events), 0, 1000000,         \
     "most events on a span; a span with more is refused"},                                        \
    {"max_links_per_span", PC_OPT_INT, "1024", offsetof(T, field.max_links), 0, 1000000,           \
     "most links on a span; a span with more is refused"},                                         \
    {"max_attribute_depth", PC_OPT_INT, "32", offsetof(T, field.max_depth), 0, 60,                \
     "most arrays/maps nested in one attribute value; a span with deeper values is refused"}

/*
 * Checks one attribute set, named |path| in messages, against max_attributes
 * and max_depth of |l| (NULL: the defaults). Returns false when within; else
 * true with the message in |msg|. Receivers call it once for a resource or a
 * scope shared by many spans.
 */
bool pc_attrs_over_limits(const pc_attrs *a, const pc_span_limits *l, const char *path, char *msg,
                          size_t n);

/*
 * Checks |s| against |l| (NULL: pc_span_limits_default): its attributes,
 * events, links and their attributes; not its resource and scope (see
 * pc_attrs_over_limits), and max_spans is the caller's to check. Returns false when the span is within every cap; else
 * true with "<field>: <what>" in |msg| (|n| bytes), e.g. "attributes: 2000
 * attributes, more than max_attributes_per_span (1024)" or
 * "events[2].attributes.k: nested 40 levels deep, more than
 * max_attribute_depth (32)".
 */
bool pc_span_over_limits(const pc_span *s, const pc_span_limits *l, char *msg, size_t n);

/* An empty attribute set and scope, for spans that have none. */
extern const pc_attrs pc_empty_attrs;
extern const pc_scope pc_empty_scope;

#endif

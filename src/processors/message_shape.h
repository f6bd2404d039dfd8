/*
 * message_shape.h - internal to the message normalizer (messages.c): the
 * bounded writer of the message array and the converters from the shapes a
 * message or part comes in (the conventions' {role, parts}, OpenAI's,
 * Anthropic's, LangChain's) to the one shape of messages.h.
 *
 * Contract of the writer: pc_msg_open starts a message (false, writing
 * nothing, once a bound was reached: PC_MESSAGES_MAX messages or the byte
 * cap); parts are added while it is open (at most PC_MESSAGE_PARTS_MAX, the
 * rest left out); pc_msg_close ends it and cuts it back out whole when the
 * side crossed its byte cap, so the array is valid JSON whatever the input.
 * Values read (pc_msg_as_struct parses JSON strings) live in the context's
 * scratch arena, freed by the caller of the whole extraction.
 */
#ifndef PC_MESSAGE_SHAPE_H
#define PC_MESSAGE_SHAPE_H

#include "json.h"
#include "messages.h"

#include <string.h>

/* The writer of one side (input or output). */
typedef struct pc_msgw {
    pc_buf *b;
    size_t cap;       /* most bytes the side's JSON may take */
    size_t n_msgs;    /* messages written and kept */
    size_t n_parts;   /* parts of the open message */
    size_t msg_start; /* rollback point of the open message */
    bool full;        /* a bound was reached: nothing more is written */
    bool output;      /* the output side: finish_reason is written */
} pc_msgw;

struct ix_entry;

/* What one extraction shares: the span, what it carries, the scratch memory. */
typedef struct pc_msgctx {
    const pc_span *s;
    unsigned mask;
    pc_arena *scratch;   /* parses, the indexed table; created on first use */
    pc_buf tmp;          /* a non-string value's JSON text, for a text part */
    struct ix_entry *ix; /* indexed keys, sorted (collect_indexed) */
    size_t n_ix;
    bool ix_done;
    bool saw_tool_call; /* the Prela response content held tool_use blocks */
} pc_msgctx;

#define PC_MSG_ROLE_IN PC_STR_LIT("user")
#define PC_MSG_ROLE_OUT PC_STR_LIT("assistant")

static inline bool pc_msg_has_prefix(pc_str s, size_t at, const char *lit, size_t n)
{
    return s.n >= at + n && memcmp(s.p + at, lit, n) == 0;
}

static inline bool pc_msg_eq(pc_str s, const char *lit, size_t n)
{
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

#define MSG_EQ(s, lit) pc_msg_eq((s), lit, sizeof(lit) - 1)
#define MSG_PREFIX(s, at, lit) pc_msg_has_prefix((s), (at), lit, sizeof(lit) - 1)

/* The string of |v|, empty when |v| is NULL or not a string. */
static inline pc_str pc_msg_str(const pc_value *v)
{
    return v && v->type == PC_V_STR ? v->s : PC_STR_NULL;
}

/* Member |key| of map |m| (NULL when absent or |m| is not a map). */
static inline const pc_value *pc_msg_get(const pc_value *m, const char *key)
{
    return pc_json_get(m, key);
}

static inline const pc_value *pc_msg_attr(const pc_attrs *a, const char *key)
{
    return pc_attrs_get(a, key);
}

/* The scratch arena, created on first use. */
pc_arena *pc_msg_scratch(pc_msgctx *c);
/* A string holding a JSON array or object, parsed (in scratch); any other
 * value, and a string that does not parse, is returned as is. */
const pc_value *pc_msg_as_struct(pc_msgctx *c, const pc_value *v);

/* --- the writer */
bool pc_msg_open(pc_msgw *w, pc_str role, pc_str name);
/* |finish| is written on the output side only, when not empty. */
void pc_msg_close(pc_msgw *w, pc_str finish);
/* Opens a part whose type is the JSON text |type_json| (the caller adds
 * fields and the closing brace); false when the message has its fill. */
bool pc_msg_part_open(pc_msgw *w, const char *type_json);
/* Writes ,<key_json><v as a JSON string> unless |v| is empty. */
void pc_msg_field_str(pc_msgw *w, const char *key_json, pc_str v);

/* --- parts of the open message */
/* A text part: a string (none when empty), or the JSON text of another value. */
void pc_msg_text_part(pc_msgctx *c, pc_msgw *w, const pc_value *v);
void pc_msg_tool_call_part(pc_msgw *w, pc_str id, pc_str name, const pc_value *args);
/* Tool calls in OpenAI's, the flat or Anthropic's shape (an array, one, or a JSON string). */
void pc_msg_tool_calls_from(pc_msgctx *c, pc_msgw *w, const pc_value *v);
/* A message's content: a string, a list of parts or blocks, another value;
 * with |tool|, one tool_call_response (id |tool_id|) holding it. */
void pc_msg_content_parts(pc_msgctx *c, pc_msgw *w, const pc_value *v, bool tool, pc_str tool_id);

/* --- whole messages */
/* "human" -> "user", "ai" -> "assistant", other roles as they are. */
pc_str pc_msg_canonical_role(pc_str r);
/* One message from a map in any shape; |role|, |finish| are the defaults. */
void pc_msg_from_map_calls(pc_msgctx *c, pc_msgw *w, const pc_value *m, pc_str role, pc_str finish,
                           const pc_value *calls_beside);
/* The same, with |calls_beside| the tool calls to use when |m| has none (a
 * gen_ai.choice body as Traceloop sends it: "tool_calls" beside "message"). */
static inline void pc_msg_from_map(pc_msgctx *c, pc_msgw *w, const pc_value *m, pc_str role,
                                   pc_str finish)
{
    pc_msg_from_map_calls(c, w, m, role, finish, NULL);
}
/* One message of one text part. */
void pc_msg_text(pc_msgctx *c, pc_msgw *w, pc_str role, const pc_value *v, pc_str finish);
/* Messages from an array (a nested array read |nest| < 1 level down), a map,
 * a JSON string of either, or plain text (one text message); nothing for an
 * empty string. */
void pc_msg_list(pc_msgctx *c, pc_msgw *w, const pc_value *v, pc_str role, int nest);
/* One "system" message of the parts in |v| (array, JSON string, or text). */
void pc_msg_system(pc_msgctx *c, pc_msgw *w, const pc_value *v);
/* An event's content: its "body" attribute (parsed when a JSON string), else
 * its attributes as a map (in |view|). */
const pc_value *pc_msg_event_body(pc_msgctx *c, const pc_event *ev, pc_value *view);

#endif

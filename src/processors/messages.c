/*
 * messages.c - prompts and completions of every LLM dialect into one message
 * shape (see messages.h for the shape, the sources and their precedence).
 *
 * Position: normalize.c calls pc_messages_extract once per span. Reads the
 * span, writes two JSON arrays into the batch's arena; everything else it
 * allocates (JSON parses, the indexed-key table, the output buffer) lives in
 * a scratch arena and a pc_buf freed before it returns.
 *
 * Layout, in reading order: the scan that decides in one pass whether a span
 * has anything to read; the bounded message writer; the converters from the
 * dialects' message and part shapes; the sources, one function each; the
 * driver that tries them in precedence order for each side.
 *
 * Why a writer with rollback: the bounds (messages, parts, bytes) are checked
 * as messages are written, and a message that crosses the byte bound is cut
 * back out whole, so the array is valid JSON whatever the input was.
 */
#include "messages.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ scan */

/* What a span carries (bits of ctx.mask). */
enum {
    S_SEMCONV = 1u << 0,  /* gen_ai.input.messages, output.messages, system_instructions */
    S_TL_IDX = 1u << 1,   /* gen_ai.prompt.N..., gen_ai.completion.N... */
    S_OI_IDX = 1u << 2,   /* llm.input_messages.N..., llm.output_messages.N... */
    S_LC_IDX = 1u << 3,   /* llm.prompt.N, llm.response.N (Prela LangChain) */
    S_VALUE = 1u << 4,    /* input.value, output.value */
    S_ENTITY = 1u << 5,   /* traceloop.entity.input / output */
    E_DETAILS = 1u << 6,  /* event gen_ai.client.inference.operation.details */
    E_MSG = 1u << 7,      /* events gen_ai.{system,user,assistant,tool}.message */
    E_CHOICE = 1u << 8,   /* event gen_ai.choice */
    E_CONTENT = 1u << 9,  /* events gen_ai.content.prompt / completion */
    E_PRELA = 1u << 10,   /* events llm.request, llm.response, llm.tool_calls, ... */
};

static bool has_prefix(pc_str s, size_t at, const char *lit, size_t n)
{
    return s.n >= at + n && memcmp(s.p + at, lit, n) == 0;
}

static bool eq(pc_str s, const char *lit, size_t n)
{
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

#define EQ(s, lit) eq((s), lit, sizeof(lit) - 1)
#define PREFIX(s, at, lit) has_prefix((s), (at), lit, sizeof(lit) - 1)

/* One pass over the attribute keys: the S_* bits. A switch on one byte
 * rejects most keys without a comparison. */
static unsigned scan_attrs(const pc_attrs *a)
{
    unsigned m = 0;
    for (size_t i = 0; i < a->n; i++) {
        pc_str k = a->kv[i].key;
        if (k.n < 11) continue; /* "input.value" is the shortest key read */
        switch (k.p[0]) {
        case 'g':
            if (!PREFIX(k, 0, "gen_ai.")) break;
            switch (k.p[7]) {
            case 'i': m |= EQ(k, "gen_ai.input.messages") ? S_SEMCONV : 0; break;
            case 'o': m |= EQ(k, "gen_ai.output.messages") ? S_SEMCONV : 0; break;
            case 's': m |= EQ(k, "gen_ai.system_instructions") ? S_SEMCONV : 0; break;
            case 'p': m |= PREFIX(k, 7, "prompt.") ? S_TL_IDX : 0; break;
            case 'c': m |= PREFIX(k, 7, "completion.") ? S_TL_IDX : 0; break;
            }
            break;
        case 'l':
            if (!PREFIX(k, 0, "llm.")) break;
            switch (k.p[4]) {
            case 'i': m |= PREFIX(k, 4, "input_messages.") ? S_OI_IDX : 0; break;
            case 'o': m |= PREFIX(k, 4, "output_messages.") ? S_OI_IDX : 0; break;
            case 'p': m |= PREFIX(k, 4, "prompt.") ? S_LC_IDX : 0; break;
            case 'r': m |= PREFIX(k, 4, "response.") ? S_LC_IDX : 0; break;
            }
            break;
        case 'i': m |= EQ(k, "input.value") ? S_VALUE : 0; break;
        case 'o': m |= EQ(k, "output.value") ? S_VALUE : 0; break;
        case 't': m |= PREFIX(k, 0, "traceloop.entity.") ? S_ENTITY : 0; break;
        }
    }
    return m;
}

/* The E_* bit of an event name, 0 for the others. */
static unsigned event_bit(pc_str n)
{
    if (PREFIX(n, 0, "gen_ai.")) {
        if (EQ(n, "gen_ai.client.inference.operation.details")) return E_DETAILS;
        if (EQ(n, "gen_ai.choice")) return E_CHOICE;
        if (EQ(n, "gen_ai.system.message") || EQ(n, "gen_ai.user.message") ||
            EQ(n, "gen_ai.assistant.message") || EQ(n, "gen_ai.tool.message"))
            return E_MSG;
        if (EQ(n, "gen_ai.content.prompt") || EQ(n, "gen_ai.content.completion")) return E_CONTENT;
        return 0;
    }
    if (PREFIX(n, 0, "llm.") &&
        (EQ(n, "llm.request") || EQ(n, "llm.response") || EQ(n, "llm.tool_calls") ||
         EQ(n, "llm.tool_use") || EQ(n, "llm.thinking")))
        return E_PRELA;
    return 0;
}

/* ---------------------------------------------------------------- writer */

typedef struct mw {
    pc_buf *b;
    size_t cap;       /* most bytes the side's JSON may take */
    size_t n_msgs;    /* messages written and kept */
    size_t n_parts;   /* parts of the open message */
    size_t msg_start; /* rollback point of the open message */
    bool full;        /* a bound was reached: nothing more is written */
    bool output;      /* the output side: finish_reason is written */
} mw;

static bool msg_open(mw *w, pc_str role, pc_str name)
{
    if (w->full) return false;
    if (w->n_msgs >= PC_MESSAGES_MAX) {
        w->full = true;
        return false;
    }
    w->msg_start = w->b->len;
    if (w->n_msgs) pc_buf_putc(w->b, ',');
    pc_buf_lit(w->b, "{\"role\":");
    pc_json_write_str(w->b, role.p, role.n);
    if (name.n) {
        pc_buf_lit(w->b, ",\"name\":");
        pc_json_write_str(w->b, name.p, name.n);
    }
    pc_buf_lit(w->b, ",\"parts\":[");
    w->n_parts = 0;
    return true;
}

/* Closes the open message; cuts it back out when it crossed the byte bound. */
static void msg_close(mw *w, pc_str finish)
{
    pc_buf_putc(w->b, ']');
    if (w->output && finish.n) {
        pc_buf_lit(w->b, ",\"finish_reason\":");
        pc_json_write_str(w->b, finish.p, finish.n);
    }
    pc_buf_putc(w->b, '}');
    if (w->b->len > w->cap) {
        w->b->len = w->msg_start;
        w->b->data[w->b->len] = '\0';
        w->full = true;
        return;
    }
    w->n_msgs++;
}

/* Starts a part (its separator and "{"): false when the message has its fill. */
static bool part_begin(mw *w)
{
    if (w->n_parts >= PC_MESSAGE_PARTS_MAX) return false;
    if (w->n_parts) pc_buf_putc(w->b, ',');
    w->n_parts++;
    return true;
}

static bool part_open(mw *w, const char *type_json)
{
    if (!part_begin(w)) return false;
    pc_buf_lit(w->b, "{\"type\":");
    pc_buf_puts(w->b, type_json);
    return true;
}

/* ,"key":"value" (skipped when |v| is empty) */
static void field_str(mw *w, const char *key_json, pc_str v)
{
    if (!v.n) return;
    pc_buf_puts(w->b, key_json);
    pc_json_write_str(w->b, v.p, v.n);
}

/* ,"key":<v as JSON> (skipped when |v| is NULL) */
static void field_any(mw *w, const char *key_json, const pc_value *v)
{
    if (!v) return;
    pc_buf_puts(w->b, key_json);
    pc_value_write_json(w->b, v);
}

/* ------------------------------------------------------------- context */

typedef struct ix_entry ix_entry;

typedef struct ctx {
    const pc_span *s;
    unsigned mask;
    pc_arena *scratch; /* parses, the indexed table; created on first use */
    pc_buf tmp;        /* a non-string value's JSON text, for a text part */
    ix_entry *ix;      /* indexed keys, sorted (collect_indexed) */
    size_t n_ix;
    bool ix_done;
    bool saw_tool_call; /* the Prela response content held tool_use blocks */
} ctx;

static pc_arena *scratch(ctx *c)
{
    if (!c->scratch) c->scratch = pc_arena_create(4096);
    return c->scratch;
}

static pc_str str_of(const pc_value *v)
{
    return v && v->type == PC_V_STR ? v->s : PC_STR_NULL;
}

static const pc_value *get(const pc_value *m, const char *key)
{
    return pc_json_get(m, key);
}

static const pc_value *attr(const pc_attrs *a, const char *key)
{
    return pc_attrs_get(a, key);
}

/* True when |s| starts (after blanks) with '{' or '['. */
static bool looks_json(pc_str s)
{
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') continue;
        return ch == '{' || ch == '[';
    }
    return false;
}

/* A string holding a JSON array or object, parsed; anything else (and a
 * string that does not parse) is returned as is. */
static const pc_value *as_struct(ctx *c, const pc_value *v)
{
    if (!v || v->type != PC_V_STR || !looks_json(v->s)) return v;
    pc_value *out = pc_arena_alloc(scratch(c), sizeof(*out));
    pc_json_error e;
    if (pc_json_parse(scratch(c), v->s.p, v->s.n, out, &e) != 0) return v;
    return out;
}

/* A map view of an attribute set (the values are borrowed). */
static pc_value attrs_value(const pc_attrs *a)
{
    pc_value v;
    v.type = PC_V_MAP;
    v.map.kv = a->kv;
    v.map.n = a->n;
    return v;
}

/* --------------------------------------------------------------- parts */

/* A text part: the string, or the JSON text of any other value. */
static void text_part(ctx *c, mw *w, const pc_value *v)
{
    if (!v || v->type == PC_V_NULL) return;
    if (v->type == PC_V_STR) {
        if (!v->s.n) return; /* empty content: no part */
        if (!part_open(w, "\"text\"")) return;
        field_str(w, ",\"content\":", v->s);
    } else {
        if (!part_open(w, "\"text\"")) return;
        pc_buf_reset(&c->tmp);
        pc_value_write_json(&c->tmp, v);
        pc_buf_lit(w->b, ",\"content\":");
        pc_json_write_str(w->b, c->tmp.data, c->tmp.len);
    }
    pc_buf_putc(w->b, '}');
}

static void tool_call_part(mw *w, pc_str id, pc_str name, const pc_value *args)
{
    if (!part_open(w, "\"tool_call\"")) return;
    field_str(w, ",\"id\":", id);
    field_str(w, ",\"name\":", name);
    field_any(w, ",\"arguments\":", args);
    pc_buf_putc(w->b, '}');
}

static void tool_response_part(mw *w, pc_str id, const pc_value *response)
{
    if (!part_open(w, "\"tool_call_response\"")) return;
    field_str(w, ",\"id\":", id);
    static const pc_value null_value = {.type = PC_V_NULL};
    field_any(w, ",\"response\":", response ? response : &null_value);
    pc_buf_putc(w->b, '}');
}

/* One tool call in any of the shapes: OpenAI {id, function: {name,
 * arguments}}, flat {id, name, arguments}, Anthropic {id, name, input}. */
static void tool_call_from(ctx *c, mw *w, const pc_value *t)
{
    t = as_struct(c, t);
    if (!t || t->type != PC_V_MAP) {
        text_part(c, w, t);
        return;
    }
    const pc_value *fn = as_struct(c, get(t, "function"));
    const pc_value *src = fn && fn->type == PC_V_MAP ? fn : t;
    const pc_value *args = get(src, "arguments");
    if (!args) args = get(src, "input");
    tool_call_part(w, str_of(get(t, "id")), str_of(get(src, "name")), args);
}

static void tool_calls_from(ctx *c, mw *w, const pc_value *v)
{
    v = as_struct(c, v);
    if (!v) return;
    if (v->type != PC_V_ARRAY) {
        tool_call_from(c, w, v);
        return;
    }
    for (size_t i = 0; i < v->arr.n; i++) tool_call_from(c, w, &v->arr.v[i]);
}

/* One content block or part: the conventions' parts, OpenAI content parts,
 * Anthropic blocks; an unknown typed map is copied as sent. */
static void block_part(ctx *c, mw *w, const pc_value *p)
{
    if (!p || p->type != PC_V_MAP) {
        text_part(c, w, p);
        return;
    }
    pc_str type = str_of(get(p, "type"));
    if (!type.n) {
        text_part(c, w, p);
    } else if (EQ(type, "text") || EQ(type, "input_text") || EQ(type, "output_text")) {
        const pc_value *t = get(p, "content");
        text_part(c, w, t ? t : get(p, "text"));
    } else if (EQ(type, "tool_call") || EQ(type, "tool_use") || EQ(type, "function_call")) {
        const pc_value *args = get(p, "arguments");
        if (!args) args = get(p, "input");
        pc_str id = str_of(get(p, "id"));
        if (!id.n) id = str_of(get(p, "call_id"));
        tool_call_part(w, id, str_of(get(p, "name")), args);
        c->saw_tool_call = true;
    } else if (EQ(type, "tool_call_response") || EQ(type, "tool_result")) {
        const pc_value *r = get(p, "response");
        if (!r) r = get(p, "result");
        if (!r) r = get(p, "content");
        pc_str id = str_of(get(p, "id"));
        if (!id.n) id = str_of(get(p, "tool_use_id"));
        tool_response_part(w, id, r);
    } else if (EQ(type, "thinking") || EQ(type, "reasoning")) {
        const pc_value *t = get(p, "content");
        if (!t) t = get(p, "thinking");
        if (t && t->type == PC_V_STR && t->s.n && part_open(w, "\"reasoning\"")) {
            field_str(w, ",\"content\":", t->s);
            pc_buf_putc(w->b, '}');
        }
    } else if (EQ(type, "image_url")) {
        const pc_value *u = get(p, "image_url");
        pc_str url = u && u->type == PC_V_MAP ? str_of(get(u, "url")) : str_of(u);
        if (part_open(w, "\"uri\",\"modality\":\"image\"")) {
            field_str(w, ",\"uri\":", url);
            pc_buf_putc(w->b, '}');
        }
    } else if (part_begin(w)) {
        pc_value_write_json(w->b, p);
    }
}

/* The parts of a message's content: a string, a list of parts or blocks, or
 * any other value (its JSON text). For a tool message, one tool_call_response. */
static void content_parts(ctx *c, mw *w, const pc_value *v, bool tool, pc_str tool_id)
{
    if (!v || v->type == PC_V_NULL) return;
    if (tool) {
        tool_response_part(w, tool_id, v);
        return;
    }
    if (v->type == PC_V_ARRAY) {
        for (size_t i = 0; i < v->arr.n; i++) block_part(c, w, &v->arr.v[i]);
        return;
    }
    text_part(c, w, v);
}

/* ------------------------------------------------------------ messages */

static pc_str canonical_role(pc_str r)
{
    if (EQ(r, "human")) return PC_STR_LIT("user");
    if (EQ(r, "ai")) return PC_STR_LIT("assistant");
    return r;
}

/* LangChain's message "type" as a role; empty for anything else. */
static pc_str langchain_role(pc_str t)
{
    if (EQ(t, "human")) return PC_STR_LIT("user");
    if (EQ(t, "ai") || EQ(t, "AIMessageChunk")) return PC_STR_LIT("assistant");
    if (EQ(t, "system")) return PC_STR_LIT("system");
    if (EQ(t, "tool") || EQ(t, "function")) return PC_STR_LIT("tool");
    return PC_STR_NULL;
}

/*
 * One message from a map in any dialect's shape (messages.h). |role| is the
 * default role, |finish| the default finish reason (output side).
 */
static void message_from_map(ctx *c, mw *w, const pc_value *m, pc_str role, pc_str finish)
{
    const pc_value *kw = get(m, "kwargs"); /* LangChain serialized message */
    if (kw && kw->type == PC_V_MAP && get(m, "lc")) m = kw;
    pc_str r = str_of(get(m, "role"));
    if (!r.n) r = langchain_role(str_of(get(m, "type")));
    role = r.n ? canonical_role(r) : role;
    if (!msg_open(w, role, str_of(get(m, "name")))) return;
    const pc_value *parts = as_struct(c, get(m, "parts"));
    if (parts && parts->type == PC_V_ARRAY)
        for (size_t i = 0; i < parts->arr.n; i++) block_part(c, w, &parts->arr.v[i]);
    bool tool = EQ(role, "tool");
    pc_str tool_id = str_of(get(m, "tool_call_id"));
    if (!tool_id.n && tool) tool_id = str_of(get(m, "id"));
    content_parts(c, w, get(m, "content"), tool, tool_id);
    const pc_value *calls = get(m, "tool_calls");
    if (calls) tool_calls_from(c, w, calls);
    const pc_value *fc = as_struct(c, get(m, "function_call"));
    if (fc && fc->type == PC_V_MAP)
        tool_call_part(w, PC_STR_NULL, str_of(get(fc, "name")), get(fc, "arguments"));
    pc_str f = str_of(get(m, "finish_reason"));
    if (!f.n) f = str_of(get(m, "stop_reason"));
    msg_close(w, f.n ? f : finish);
}

/* One message holding one text part (|v|'s string or JSON text). */
static void text_message(ctx *c, mw *w, pc_str role, const pc_value *v, pc_str finish)
{
    if (!msg_open(w, role, PC_STR_NULL)) return;
    text_part(c, w, v);
    msg_close(w, finish);
}

/*
 * Messages from a value: an array of messages (maps; a nested array, as
 * LangChain's [[...]], is read one level down; a string item is a text
 * message), one message map, or a JSON string holding either. A string that
 * is not such JSON is one text message holding it.
 */
static void messages_from_value(ctx *c, mw *w, const pc_value *v, pc_str role, int nest)
{
    if (!v || v->type == PC_V_NULL || (v->type == PC_V_STR && !v->s.n)) return;
    const pc_value *sv = as_struct(c, v);
    if (sv->type == PC_V_ARRAY) {
        for (size_t i = 0; i < sv->arr.n && !w->full; i++) {
            const pc_value *it = &sv->arr.v[i];
            if (it->type == PC_V_MAP)
                message_from_map(c, w, it, role, PC_STR_NULL);
            else if (it->type == PC_V_ARRAY && nest < 1)
                messages_from_value(c, w, it, role, nest + 1);
            else
                text_message(c, w, role, it, PC_STR_NULL);
        }
    } else if (sv->type == PC_V_MAP) {
        message_from_map(c, w, sv, role, PC_STR_NULL);
    } else {
        text_message(c, w, role, v, PC_STR_NULL);
    }
}

/* The system instructions: one "system" message of parts (an array of parts,
 * a JSON string of one, or plain text). */
static void system_message(ctx *c, mw *w, const pc_value *v)
{
    if (!v || v->type == PC_V_NULL) return;
    if (!msg_open(w, PC_STR_LIT("system"), PC_STR_NULL)) return;
    const pc_value *sv = as_struct(c, v);
    if (sv->type == PC_V_ARRAY)
        for (size_t i = 0; i < sv->arr.n; i++) block_part(c, w, &sv->arr.v[i]);
    else if (sv->type == PC_V_MAP)
        block_part(c, w, sv);
    else
        text_part(c, w, v);
    msg_close(w, PC_STR_NULL);
}

/* An event's content: its "body" attribute (map or JSON string; another
 * value as is), else its attributes as a map (in |view|). */
static const pc_value *event_body(ctx *c, const pc_event *ev, pc_value *view)
{
    const pc_value *b = attr(&ev->attrs, "body");
    if (b) return as_struct(c, b);
    *view = attrs_value(&ev->attrs);
    return view;
}

/* ------------------------------------------------------------- sources */

#define ROLE_IN PC_STR_LIT("user")
#define ROLE_OUT PC_STR_LIT("assistant")

static const pc_event *find_event(const pc_span *s, const char *name, size_t n)
{
    for (size_t i = 0; i < s->n_events; i++)
        if (eq(s->events[i].name, name, n)) return &s->events[i];
    return NULL;
}

/* 1. semconv 1.37+ */
static void src_semconv(ctx *c, mw *w)
{
    const pc_span *s = c->s;
    if (!w->output) {
        const pc_value *si = attr(&s->attrs, "gen_ai.system_instructions");
        const pc_value *im = attr(&s->attrs, "gen_ai.input.messages");
        if (!si && !im && (c->mask & E_DETAILS)) {
            const pc_event *ev = find_event(s, "gen_ai.client.inference.operation.details", 41);
            si = attr(&ev->attrs, "gen_ai.system_instructions");
            im = attr(&ev->attrs, "gen_ai.input.messages");
        }
        system_message(c, w, si);
        messages_from_value(c, w, im, ROLE_IN, 0);
    } else {
        const pc_value *om = attr(&s->attrs, "gen_ai.output.messages");
        if (!om && (c->mask & E_DETAILS)) {
            const pc_event *ev = find_event(s, "gen_ai.client.inference.operation.details", 41);
            om = attr(&ev->attrs, "gen_ai.output.messages");
        }
        messages_from_value(c, w, om, ROLE_OUT, 0);
    }
}

/* 2. semconv 1.28-1.36 per-message events */
static void src_events(ctx *c, mw *w)
{
    const pc_span *s = c->s;
    for (size_t i = 0; i < s->n_events && !w->full; i++) {
        const pc_event *ev = &s->events[i];
        pc_value view;
        if (w->output) {
            if (!EQ(ev->name, "gen_ai.choice")) continue;
            const pc_value *b = event_body(c, ev, &view);
            if (b->type != PC_V_MAP) {
                text_message(c, w, ROLE_OUT, b, PC_STR_NULL);
                continue;
            }
            pc_str finish = str_of(get(b, "finish_reason"));
            const pc_value *m = as_struct(c, get(b, "message"));
            if (m && m->type == PC_V_MAP)
                message_from_map(c, w, m, ROLE_OUT, finish);
            else
                message_from_map(c, w, b, ROLE_OUT, finish);
            continue;
        }
        pc_str role;
        if (EQ(ev->name, "gen_ai.system.message")) role = PC_STR_LIT("system");
        else if (EQ(ev->name, "gen_ai.user.message")) role = PC_STR_LIT("user");
        else if (EQ(ev->name, "gen_ai.assistant.message")) role = PC_STR_LIT("assistant");
        else if (EQ(ev->name, "gen_ai.tool.message")) role = PC_STR_LIT("tool");
        else continue;
        const pc_value *b = event_body(c, ev, &view);
        if (b->type == PC_V_MAP)
            message_from_map(c, w, b, role, PC_STR_NULL);
        else
            text_message(c, w, role, b, PC_STR_NULL);
    }
}

/* 3. semconv 1.26 content events */
static void src_content_events(ctx *c, mw *w)
{
    const pc_span *s = c->s;
    for (size_t i = 0; i < s->n_events && !w->full; i++) {
        const pc_event *ev = &s->events[i];
        if (!w->output && EQ(ev->name, "gen_ai.content.prompt"))
            messages_from_value(c, w, attr(&ev->attrs, "gen_ai.prompt"), ROLE_IN, 0);
        else if (w->output && EQ(ev->name, "gen_ai.content.completion"))
            messages_from_value(c, w, attr(&ev->attrs, "gen_ai.completion"), ROLE_OUT, 0);
    }
}

/* ---- 4, 5, 6b: indexed keys (collected once, sorted once) */

enum { F_TL_IN, F_TL_OUT, F_OI_IN, F_OI_OUT, F_LC_IN, F_LC_OUT };
enum { SUB_NONE, SUB_CONTENTS, SUB_TOOL_CALLS };

struct ix_entry {
    uint8_t family, sub;
    uint32_t idx, sub_idx;
    uint32_t order; /* attribute position: the first of duplicate keys wins */
    pc_str rest;    /* the key after "N." (after "M." for sub entries) */
    const pc_value *value;
};

/* Parses 1-9 decimal digits at |*p| up to |end| into |*out|; advances |*p|. */
static bool parse_index(const char **p, const char *end, uint32_t *out)
{
    const char *q = *p;
    uint32_t v = 0;
    size_t n = 0;
    while (q < end && *q >= '0' && *q <= '9' && n < 10) {
        v = v * 10 + (uint32_t)(*q - '0');
        q++;
        n++;
    }
    if (n == 0 || n > 9) return false;
    *p = q;
    *out = v;
    return true;
}

/* Reads "<sub>.M.rest" at the start of |r| into |e| when |r| starts with
 * |sub_prefix|; else leaves |e| a scalar entry. False for a bad sub index. */
static bool parse_sub(ix_entry *e, pc_str r, const char *sub_prefix, size_t pn, uint8_t kind)
{
    if (!has_prefix(r, 0, sub_prefix, pn)) return true;
    const char *p = r.p + pn, *end = r.p + r.n;
    if (!parse_index(&p, end, &e->sub_idx) || p >= end || *p != '.') return false;
    e->sub = kind;
    e->rest = (pc_str){p + 1, (size_t)(end - p - 1)};
    return true;
}

static int ix_cmp(const void *a, const void *b)
{
    const ix_entry *x = a, *y = b;
    if (x->family != y->family) return x->family < y->family ? -1 : 1;
    if (x->idx != y->idx) return x->idx < y->idx ? -1 : 1;
    if (x->sub != y->sub) return x->sub < y->sub ? -1 : 1;
    if (x->sub_idx != y->sub_idx) return x->sub_idx < y->sub_idx ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static const struct {
    const char *prefix;
    size_t n;
    uint8_t family;
    unsigned bit;
} families[] = {
    {"gen_ai.prompt.", 14, F_TL_IN, S_TL_IDX},
    {"gen_ai.completion.", 18, F_TL_OUT, S_TL_IDX},
    {"llm.input_messages.", 19, F_OI_IN, S_OI_IDX},
    {"llm.output_messages.", 20, F_OI_OUT, S_OI_IDX},
    {"llm.prompt.", 11, F_LC_IN, S_LC_IDX},
    {"llm.response.", 13, F_LC_OUT, S_LC_IDX},
};

/* One pass over the attributes into c->ix, then one sort. */
static void collect_indexed(ctx *c)
{
    c->ix_done = true;
    const pc_attrs *a = &c->s->attrs;
    c->ix = pc_arena_alloc(scratch(c), (a->n ? a->n : 1) * sizeof(ix_entry));
    for (size_t i = 0; i < a->n; i++) {
        pc_str k = a->kv[i].key;
        if (k.n < 12 || (k.p[0] != 'g' && k.p[0] != 'l')) continue;
        for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
            if (!(c->mask & families[f].bit) || !has_prefix(k, 0, families[f].prefix, families[f].n))
                continue;
            ix_entry e = {.family = families[f].family, .order = (uint32_t)i,
                          .value = &a->kv[i].value};
            const char *p = k.p + families[f].n, *end = k.p + k.n;
            if (!parse_index(&p, end, &e.idx)) break;
            if (e.family >= F_LC_IN) { /* llm.prompt.N: the key ends at the index */
                if (p != end) break;
            } else {
                if (p >= end || *p != '.') break;
                e.rest = (pc_str){p + 1, (size_t)(end - p - 1)};
                bool ok = e.family <= F_TL_OUT
                              ? parse_sub(&e, e.rest, "tool_calls.", 11, SUB_TOOL_CALLS)
                              : parse_sub(&e, e.rest, "message.tool_calls.", 19, SUB_TOOL_CALLS) &&
                                    parse_sub(&e, e.rest, "message.contents.", 17, SUB_CONTENTS);
                if (!ok) break;
            }
            c->ix[c->n_ix++] = e;
            break;
        }
    }
    qsort(c->ix, c->n_ix, sizeof(ix_entry), ix_cmp);
}

/* The value of the entry among |e|[0..n) whose rest is |key| (first wins). */
static const pc_value *ix_get(const ix_entry *e, size_t n, uint8_t sub, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < n; i++)
        if (e[i].sub == sub && eq(e[i].rest, key, kl)) return e[i].value;
    return NULL;
}

/* The run of entries from |e|[i] sharing its sub kind and sub index. */
static size_t sub_run(const ix_entry *e, size_t n, size_t i)
{
    size_t j = i;
    while (j < n && e[j].sub == e[i].sub && e[j].sub_idx == e[i].sub_idx) j++;
    return j;
}

/* Traceloop content: plain text, or a JSON list of typed parts. */
static void tl_content(ctx *c, mw *w, const pc_value *v)
{
    const pc_value *sv = as_struct(c, v);
    if (sv && sv->type == PC_V_ARRAY && sv->arr.n && sv->arr.v[0].type == PC_V_MAP &&
        get(&sv->arr.v[0], "type"))
        content_parts(c, w, sv, false, PC_STR_NULL);
    else
        text_part(c, w, v);
}

/* One message from the entries |e|[0..n) of one index. */
static void ix_message(ctx *c, mw *w, uint8_t family, const ix_entry *e, size_t n)
{
    bool out = family == F_TL_OUT || family == F_OI_OUT || family == F_LC_OUT;
    pc_str role_default = out ? ROLE_OUT : ROLE_IN;
    if (family >= F_LC_IN) {
        text_message(c, w, role_default, e[0].value, PC_STR_NULL);
        return;
    }
    bool oi = family == F_OI_IN || family == F_OI_OUT;
    const char *pre = oi ? "message." : "";
    char key[64];
#define SCALAR(name) (snprintf(key, sizeof(key), "%s%s", pre, name), ix_get(e, n, SUB_NONE, key))
    pc_str role = str_of(SCALAR("role"));
    role = role.n ? canonical_role(role) : role_default;
    if (!msg_open(w, role, str_of(SCALAR("name")))) return;
    const pc_value *content = SCALAR("content");
    pc_str tool_id = str_of(SCALAR("tool_call_id"));
    if (EQ(role, "tool"))
        content_parts(c, w, content, true, tool_id);
    else if (content)
        tl_content(c, w, content);
    for (size_t i = 0; i < n;) {
        size_t j = sub_run(e, n, i);
        if (e[i].sub == SUB_CONTENTS) {
            pc_str type = str_of(ix_get(e + i, j - i, SUB_CONTENTS, "message_content.type"));
            const pc_value *text = ix_get(e + i, j - i, SUB_CONTENTS, "message_content.text");
            pc_str url = str_of(ix_get(e + i, j - i, SUB_CONTENTS, "message_content.image.image.url"));
            if (url.n && (!type.n || EQ(type, "image"))) {
                if (part_open(w, "\"uri\",\"modality\":\"image\"")) {
                    field_str(w, ",\"uri\":", url);
                    pc_buf_putc(w->b, '}');
                }
            } else {
                text_part(c, w, text);
            }
        } else if (e[i].sub == SUB_TOOL_CALLS) {
            const char *id = oi ? "tool_call.id" : "id";
            const char *name = oi ? "tool_call.function.name" : "name";
            const char *args = oi ? "tool_call.function.arguments" : "arguments";
            tool_call_part(w, str_of(ix_get(e + i, j - i, SUB_TOOL_CALLS, id)),
                           str_of(ix_get(e + i, j - i, SUB_TOOL_CALLS, name)),
                           ix_get(e + i, j - i, SUB_TOOL_CALLS, args));
        }
        i = j;
    }
    const pc_value *fname = SCALAR(oi ? "function_call_name" : "function_call.name");
    if (fname)
        tool_call_part(w, PC_STR_NULL, str_of(fname),
                       SCALAR(oi ? "function_call_arguments_json" : "function_call.arguments"));
    pc_str finish = str_of(SCALAR("finish_reason"));
    if (!finish.n && family == F_OI_OUT) finish = str_of(attr(&c->s->attrs, "llm.finish_reason"));
    msg_close(w, finish);
#undef SCALAR
}

static void src_indexed(ctx *c, mw *w, uint8_t fam_in)
{
    if (!c->ix_done) collect_indexed(c);
    uint8_t fam = (uint8_t)(fam_in + (w->output ? 1 : 0));
    size_t i = 0;
    while (i < c->n_ix && c->ix[i].family != fam) i++;
    while (i < c->n_ix && c->ix[i].family == fam && !w->full) {
        size_t j = i;
        while (j < c->n_ix && c->ix[j].family == fam && c->ix[j].idx == c->ix[i].idx) j++;
        ix_message(c, w, fam, c->ix + i, j - i);
        i = j;
    }
}

static void src_traceloop_idx(ctx *c, mw *w) { src_indexed(c, w, F_TL_IN); }
static void src_openinference_idx(ctx *c, mw *w) { src_indexed(c, w, F_OI_IN); }

/* 6. the Prela SDK's events, then its LangChain llm.prompt.N / llm.response.N */
static void src_prela(ctx *c, mw *w)
{
    const pc_span *s = c->s;
    if (c->mask & E_PRELA) {
        const pc_event *req = find_event(s, "llm.request", 11);
        if (!w->output && req) {
            system_message(c, w, attr(&req->attrs, "system"));
            messages_from_value(c, w, attr(&req->attrs, "messages"), ROLE_IN, 0);
            const pc_value *prompt = attr(&req->attrs, "prompt");
            if (prompt) text_message(c, w, ROLE_IN, prompt, PC_STR_NULL);
        }
        const pc_event *resp = find_event(s, "llm.response", 12);
        const pc_event *think = find_event(s, "llm.thinking", 12);
        const pc_event *calls = find_event(s, "llm.tool_calls", 14);
        if (!calls) calls = find_event(s, "llm.tool_use", 12);
        if (w->output && (resp || think || calls)) {
            pc_str finish = str_of(attr(&s->attrs, "llm.finish_reason"));
            if (!finish.n) finish = str_of(attr(&s->attrs, "llm.stop_reason"));
            if (msg_open(w, ROLE_OUT, PC_STR_NULL)) {
                const pc_value *th = think ? as_struct(c, attr(&think->attrs, "thinking")) : NULL;
                for (size_t i = 0; th && th->type == PC_V_ARRAY && i < th->arr.n; i++)
                    if (th->arr.v[i].type == PC_V_STR && th->arr.v[i].s.n &&
                        part_open(w, "\"reasoning\"")) {
                        field_str(w, ",\"content\":", th->arr.v[i].s);
                        pc_buf_putc(w->b, '}');
                    }
                c->saw_tool_call = false;
                if (resp) {
                    const pc_value *v = attr(&resp->attrs, "content");
                    if (!v) v = attr(&resp->attrs, "text");
                    content_parts(c, w, as_struct(c, v), false, PC_STR_NULL);
                }
                if (calls && !c->saw_tool_call)
                    tool_calls_from(c, w, attr(&calls->attrs, "tool_calls"));
                msg_close(w, finish);
            }
        }
    }
    if (!w->n_msgs && (c->mask & S_LC_IDX)) src_indexed(c, w, F_LC_IN);
}

/* A chat request or response body (or any text) as messages; 7 and 8. */
static void value_messages(ctx *c, mw *w, const pc_value *v)
{
    if (!v) return;
    const pc_value *sv = as_struct(c, v);
    if (sv->type == PC_V_MAP) {
        if (!w->output) {
            const pc_value *inner = get(sv, "inputs"); /* Traceloop LangChain entity input */
            if (inner && inner->type == PC_V_MAP && get(inner, "messages")) sv = inner;
            const pc_value *msgs = get(sv, "messages");
            if (msgs) {
                system_message(c, w, get(sv, "system"));
                messages_from_value(c, w, msgs, ROLE_IN, 0);
                return;
            }
            const pc_value *prompt = get(sv, "prompt");
            if (prompt) {
                messages_from_value(c, w, prompt, ROLE_IN, 0);
                return;
            }
        } else {
            const pc_value *choices = get(sv, "choices");
            if (choices && choices->type == PC_V_ARRAY) {
                for (size_t i = 0; i < choices->arr.n && !w->full; i++) {
                    const pc_value *ch = &choices->arr.v[i];
                    pc_str finish = str_of(get(ch, "finish_reason"));
                    const pc_value *m = get(ch, "message");
                    if (m && m->type == PC_V_MAP)
                        message_from_map(c, w, m, ROLE_OUT, finish);
                    else
                        text_message(c, w, ROLE_OUT, get(ch, "text"), finish);
                }
                return;
            }
            const pc_value *content = get(sv, "content");
            if (content && content->type == PC_V_ARRAY) { /* Anthropic Messages response */
                message_from_map(c, w, sv, ROLE_OUT, PC_STR_NULL);
                return;
            }
        }
    }
    text_message(c, w, w->output ? ROLE_OUT : ROLE_IN, v, PC_STR_NULL);
}

static void src_value(ctx *c, mw *w)
{
    value_messages(c, w, attr(&c->s->attrs, w->output ? "output.value" : "input.value"));
}

static void src_entity(ctx *c, mw *w)
{
    value_messages(c, w,
                   attr(&c->s->attrs,
                        w->output ? "traceloop.entity.output" : "traceloop.entity.input"));
}

/* -------------------------------------------------------------- driver */

/* The sources in precedence order (messages.h), with the bits that say a
 * span may hold them. */
static const struct {
    void (*fn)(ctx *, mw *);
    unsigned bits;
} sources[] = {
    {src_semconv, S_SEMCONV | E_DETAILS},
    {src_events, E_MSG | E_CHOICE},
    {src_content_events, E_CONTENT},
    {src_traceloop_idx, S_TL_IDX},
    {src_openinference_idx, S_OI_IDX},
    {src_prela, E_PRELA | S_LC_IDX},
    {src_value, S_VALUE},
    {src_entity, S_ENTITY},
};

static size_t value_bytes(const pc_value *v)
{
    size_t n = 16;
    switch (v->type) {
    case PC_V_STR:
    case PC_V_BYTES: n += v->s.n; break;
    case PC_V_ARRAY:
        for (size_t i = 0; i < v->arr.n; i++) n += value_bytes(&v->arr.v[i]);
        break;
    case PC_V_MAP:
        for (size_t i = 0; i < v->map.n; i++)
            n += v->map.kv[i].key.n + value_bytes(&v->map.kv[i].value);
        break;
    default: break;
    }
    return n;
}

static size_t attrs_bytes(const pc_attrs *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++) n += a->kv[i].key.n + value_bytes(&a->kv[i].value);
    return n;
}

/* Writes one side into |buf| and returns its arena copy (empty: no message). */
static pc_str write_side(ctx *c, pc_buf *buf, size_t cap, bool output, pc_arena *arena)
{
    pc_buf_reset(buf);
    pc_buf_putc(buf, '[');
    mw w = {.b = buf, .cap = cap, .output = output};
    for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
        if (!(c->mask & sources[i].bits)) continue;
        sources[i].fn(c, &w);
        if (w.n_msgs || w.full) break;
    }
    if (!w.n_msgs) return PC_STR_NULL;
    pc_buf_putc(buf, ']');
    return (pc_str){pc_arena_strndup(arena, buf->data, buf->len), buf->len};
}

void pc_messages_extract(pc_span *s, pc_arena *arena)
{
    s->input_messages = s->output_messages = PC_STR_NULL;
    unsigned mask = scan_attrs(&s->attrs);
    for (size_t i = 0; i < s->n_events; i++) mask |= event_bit(s->events[i].name);
    if (!mask) return;
    ctx c = {.s = s, .mask = mask, .tmp = PC_BUF_INIT};
    size_t in_bytes = attrs_bytes(&s->attrs);
    for (size_t i = 0; i < s->n_events; i++) in_bytes += attrs_bytes(&s->events[i].attrs);
    size_t cap = in_bytes * 8 + 4096;
    pc_buf buf = PC_BUF_INIT;
    s->input_messages = write_side(&c, &buf, cap, false, arena);
    s->output_messages = write_side(&c, &buf, cap, true, arena);
    pc_buf_free(&buf);
    pc_buf_free(&c.tmp);
    pc_arena_destroy(c.scratch);
}

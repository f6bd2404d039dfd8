/*
 * message_shape.c - the bounded writer of the message array and the
 * converters from every shape a message or part comes in to the one shape of
 * messages.h (message_shape.h states the contracts).
 *
 * Position: internal to the message normalizer; messages.c finds the values
 * on a span and hands them here. Writes into the side's pc_buf; parses JSON
 * strings into the extraction's scratch arena.
 *
 * Why a writer with rollback: the bounds (messages, parts, bytes) are checked
 * as messages are written, and a message that crosses the byte bound is cut
 * back out whole, so the array is valid JSON whatever the input was.
 */
#include "message_shape.h"

/* ---------------------------------------------------------------- writer */

bool pc_msg_open(pc_msgw *w, pc_str role, pc_str name)
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
void pc_msg_close(pc_msgw *w, pc_str finish)
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
static bool part_begin(pc_msgw *w)
{
    if (w->n_parts >= PC_MESSAGE_PARTS_MAX) return false;
    if (w->n_parts) pc_buf_putc(w->b, ',');
    w->n_parts++;
    return true;
}

bool pc_msg_part_open(pc_msgw *w, const char *type_json)
{
    if (!part_begin(w)) return false;
    pc_buf_lit(w->b, "{\"type\":");
    pc_buf_puts(w->b, type_json);
    return true;
}

/* ,"key":"value" (skipped when |v| is empty) */
void pc_msg_field_str(pc_msgw *w, const char *key_json, pc_str v)
{
    if (!v.n) return;
    pc_buf_puts(w->b, key_json);
    pc_json_write_str(w->b, v.p, v.n);
}

/* ,"key":<v as JSON> (skipped when |v| is NULL) */
static void field_any(pc_msgw *w, const char *key_json, const pc_value *v)
{
    if (!v) return;
    pc_buf_puts(w->b, key_json);
    pc_value_write_json(w->b, v);
}

/* ---------------------------------------------------------------- values */

pc_arena *pc_msg_scratch(pc_msgctx *c)
{
    if (!c->scratch) c->scratch = pc_arena_create(4096);
    return c->scratch;
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
const pc_value *pc_msg_as_struct(pc_msgctx *c, const pc_value *v)
{
    if (!v || v->type != PC_V_STR || !looks_json(v->s)) return v;
    pc_value *out = pc_arena_alloc(pc_msg_scratch(c), sizeof(*out));
    pc_json_error e;
    if (pc_json_parse(pc_msg_scratch(c), v->s.p, v->s.n, out, &e) != 0) return v;
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
void pc_msg_text_part(pc_msgctx *c, pc_msgw *w, const pc_value *v)
{
    if (!v || v->type == PC_V_NULL) return;
    if (v->type == PC_V_STR) {
        if (!v->s.n) return; /* empty content: no part */
        if (!pc_msg_part_open(w, "\"text\"")) return;
        pc_msg_field_str(w, ",\"content\":", v->s);
    } else {
        if (!pc_msg_part_open(w, "\"text\"")) return;
        pc_buf_reset(&c->tmp);
        pc_value_write_json(&c->tmp, v);
        pc_buf_lit(w->b, ",\"content\":");
        pc_json_write_str(w->b, c->tmp.data, c->tmp.len);
    }
    pc_buf_putc(w->b, '}');
}

void pc_msg_tool_call_part(pc_msgw *w, pc_str id, pc_str name, const pc_value *args)
{
    if (!pc_msg_part_open(w, "\"tool_call\"")) return;
    pc_msg_field_str(w, ",\"id\":", id);
    pc_msg_field_str(w, ",\"name\":", name);
    field_any(w, ",\"arguments\":", args);
    pc_buf_putc(w->b, '}');
}

static void tool_response_part(pc_msgw *w, pc_str id, const pc_value *response)
{
    if (!pc_msg_part_open(w, "\"tool_call_response\"")) return;
    pc_msg_field_str(w, ",\"id\":", id);
    static const pc_value null_value = {.type = PC_V_NULL};
    field_any(w, ",\"response\":", response ? response : &null_value);
    pc_buf_putc(w->b, '}');
}

/* One tool call in any of the shapes: OpenAI {id, function: {name,
 * arguments}}, flat {id, name, arguments}, Anthropic {id, name, input}. */
static void tool_call_from(pc_msgctx *c, pc_msgw *w, const pc_value *t)
{
    t = pc_msg_as_struct(c, t);
    if (!t || t->type != PC_V_MAP) {
        pc_msg_text_part(c, w, t);
        return;
    }
    const pc_value *fn = pc_msg_as_struct(c, pc_msg_get(t, "function"));
    const pc_value *src = fn && fn->type == PC_V_MAP ? fn : t;
    const pc_value *args = pc_msg_get(src, "arguments");
    if (!args) args = pc_msg_get(src, "input");
    pc_msg_tool_call_part(w, pc_msg_str(pc_msg_get(t, "id")), pc_msg_str(pc_msg_get(src, "name")),
                          args);
}

void pc_msg_tool_calls_from(pc_msgctx *c, pc_msgw *w, const pc_value *v)
{
    v = pc_msg_as_struct(c, v);
    if (!v) return;
    if (v->type != PC_V_ARRAY) {
        tool_call_from(c, w, v);
        return;
    }
    for (size_t i = 0; i < v->arr.n; i++)
        tool_call_from(c, w, &v->arr.v[i]);
}

/* One content block or part: the conventions' parts, OpenAI content parts,
 * Anthropic blocks; an unknown typed map is copied as sent. */
static void block_part(pc_msgctx *c, pc_msgw *w, const pc_value *p)
{
    if (!p || p->type != PC_V_MAP) {
        pc_msg_text_part(c, w, p);
        return;
    }
    pc_str type = pc_msg_str(pc_msg_get(p, "type"));
    if (!type.n) {
        pc_msg_text_part(c, w, p);
    } else if (MSG_EQ(type, "text") || MSG_EQ(type, "input_text") || MSG_EQ(type, "output_text")) {
        const pc_value *t = pc_msg_get(p, "content");
        pc_msg_text_part(c, w, t ? t : pc_msg_get(p, "text"));
    } else if (MSG_EQ(type, "tool_call") || MSG_EQ(type, "tool_use") ||
               MSG_EQ(type, "function_call")) {
        const pc_value *args = pc_msg_get(p, "arguments");
        if (!args) args = pc_msg_get(p, "input");
        pc_str id = pc_msg_str(pc_msg_get(p, "id"));
        if (!id.n) id = pc_msg_str(pc_msg_get(p, "call_id"));
        pc_msg_tool_call_part(w, id, pc_msg_str(pc_msg_get(p, "name")), args);
        c->saw_tool_call = true;
    } else if (MSG_EQ(type, "tool_call_response") || MSG_EQ(type, "tool_result")) {
        const pc_value *r = pc_msg_get(p, "response");
        if (!r) r = pc_msg_get(p, "result");
        if (!r) r = pc_msg_get(p, "content");
        pc_str id = pc_msg_str(pc_msg_get(p, "id"));
        if (!id.n) id = pc_msg_str(pc_msg_get(p, "tool_use_id"));
        tool_response_part(w, id, r);
    } else if (MSG_EQ(type, "thinking") || MSG_EQ(type, "reasoning")) {
        const pc_value *t = pc_msg_get(p, "content");
        if (!t) t = pc_msg_get(p, "thinking");
        if (t && t->type == PC_V_STR && t->s.n && pc_msg_part_open(w, "\"reasoning\"")) {
            pc_msg_field_str(w, ",\"content\":", t->s);
            pc_buf_putc(w->b, '}');
        }
    } else if (MSG_EQ(type, "image_url")) {
        const pc_value *u = pc_msg_get(p, "image_url");
        pc_str url = u && u->type == PC_V_MAP ? pc_msg_str(pc_msg_get(u, "url")) : pc_msg_str(u);
        if (pc_msg_part_open(w, "\"uri\",\"modality\":\"image\"")) {
            pc_msg_field_str(w, ",\"uri\":", url);
            pc_buf_putc(w->b, '}');
        }
    } else if (part_begin(w)) {
        pc_value_write_json(w->b, p);
    }
}

/* The parts of a message's content: a string, a list of parts or blocks, or
 * any other value (its JSON text). For a tool message, one tool_call_response. */
void pc_msg_content_parts(pc_msgctx *c, pc_msgw *w, const pc_value *v, bool tool, pc_str tool_id)
{
    if (!v || v->type == PC_V_NULL) return;
    if (tool) {
        tool_response_part(w, tool_id, v);
        return;
    }
    if (v->type == PC_V_ARRAY) {
        for (size_t i = 0; i < v->arr.n; i++)
            block_part(c, w, &v->arr.v[i]);
        return;
    }
    pc_msg_text_part(c, w, v);
}

/* ------------------------------------------------------------ messages */

pc_str pc_msg_canonical_role(pc_str r)
{
    if (MSG_EQ(r, "human")) return PC_STR_LIT("user");
    if (MSG_EQ(r, "ai")) return PC_STR_LIT("assistant");
    return r;
}

/* LangChain's message "type" as a role; empty for anything else. */
static pc_str langchain_role(pc_str t)
{
    if (MSG_EQ(t, "human")) return PC_STR_LIT("user");
    if (MSG_EQ(t, "ai") || MSG_EQ(t, "AIMessageChunk")) return PC_STR_LIT("assistant");
    if (MSG_EQ(t, "system")) return PC_STR_LIT("system");
    if (MSG_EQ(t, "tool") || MSG_EQ(t, "function")) return PC_STR_LIT("tool");
    return PC_STR_NULL;
}

/*
 * One message from a map in any dialect's shape (messages.h). |role| is the
 * default role, |finish| the default finish reason (output side).
 */
void pc_msg_from_map_calls(pc_msgctx *c, pc_msgw *w, const pc_value *m, pc_str role, pc_str finish,
                           const pc_value *calls_beside)
{
    const pc_value *kw = pc_msg_get(m, "kwargs"); /* LangChain serialized message */
    if (kw && kw->type == PC_V_MAP && pc_msg_get(m, "lc")) m = kw;
    pc_str r = pc_msg_str(pc_msg_get(m, "role"));
    if (!r.n) r = langchain_role(pc_msg_str(pc_msg_get(m, "type")));
    role = r.n ? pc_msg_canonical_role(r) : role;
    if (!pc_msg_open(w, role, pc_msg_str(pc_msg_get(m, "name")))) return;
    const pc_value *parts = pc_msg_as_struct(c, pc_msg_get(m, "parts"));
    if (parts && parts->type == PC_V_ARRAY)
        for (size_t i = 0; i < parts->arr.n; i++)
            block_part(c, w, &parts->arr.v[i]);
    bool tool = MSG_EQ(role, "tool");
    pc_str tool_id = pc_msg_str(pc_msg_get(m, "tool_call_id"));
    if (!tool_id.n && tool) tool_id = pc_msg_str(pc_msg_get(m, "id"));
    pc_msg_content_parts(c, w, pc_msg_get(m, "content"), tool, tool_id);
    const pc_value *calls = pc_msg_get(m, "tool_calls");
    if (!calls) calls = calls_beside;
    if (calls) pc_msg_tool_calls_from(c, w, calls);
    const pc_value *fc = pc_msg_as_struct(c, pc_msg_get(m, "function_call"));
    if (fc && fc->type == PC_V_MAP)
        pc_msg_tool_call_part(w, PC_STR_NULL, pc_msg_str(pc_msg_get(fc, "name")),
                              pc_msg_get(fc, "arguments"));
    pc_str f = pc_msg_str(pc_msg_get(m, "finish_reason"));
    if (!f.n) f = pc_msg_str(pc_msg_get(m, "stop_reason"));
    pc_msg_close(w, f.n ? f : finish);
}

/* One message holding one text part (|v|'s string or JSON text). */
void pc_msg_text(pc_msgctx *c, pc_msgw *w, pc_str role, const pc_value *v, pc_str finish)
{
    if (!pc_msg_open(w, role, PC_STR_NULL)) return;
    pc_msg_text_part(c, w, v);
    pc_msg_close(w, finish);
}

/*
 * Messages from a value: an array of messages (maps; a nested array, as
 * LangChain's [[...]], is read one level down; a string item is a text
 * message), one message map, or a JSON string holding either. A string that
 * is not such JSON is one text message holding it.
 */
void pc_msg_list(pc_msgctx *c, pc_msgw *w, const pc_value *v, pc_str role, int nest)
{
    if (!v || v->type == PC_V_NULL || (v->type == PC_V_STR && !v->s.n)) return;
    const pc_value *sv = pc_msg_as_struct(c, v);
    if (sv->type == PC_V_ARRAY) {
        for (size_t i = 0; i < sv->arr.n && !w->full; i++) {
            const pc_value *it = &sv->arr.v[i];
            if (it->type == PC_V_MAP)
                pc_msg_from_map(c, w, it, role, PC_STR_NULL);
            else if (it->type == PC_V_ARRAY && nest < 1)
                pc_msg_list(c, w, it, role, nest + 1);
            else
                pc_msg_text(c, w, role, it, PC_STR_NULL);
        }
    } else if (sv->type == PC_V_MAP) {
        pc_msg_from_map(c, w, sv, role, PC_STR_NULL);
    } else {
        pc_msg_text(c, w, role, v, PC_STR_NULL);
    }
}

/* The system instructions: one "system" message of parts (an array of parts,
 * a JSON string of one, or plain text). */
void pc_msg_system(pc_msgctx *c, pc_msgw *w, const pc_value *v)
{
    if (!v || v->type == PC_V_NULL) return;
    if (!pc_msg_open(w, PC_STR_LIT("system"), PC_STR_NULL)) return;
    const pc_value *sv = pc_msg_as_struct(c, v);
    if (sv->type == PC_V_ARRAY)
        for (size_t i = 0; i < sv->arr.n; i++)
            block_part(c, w, &sv->arr.v[i]);
    else if (sv->type == PC_V_MAP)
        block_part(c, w, sv);
    else
        pc_msg_text_part(c, w, v);
    pc_msg_close(w, PC_STR_NULL);
}

/* An event's content: its "body" attribute (map or JSON string; another
 * value as is), else its attributes as a map (in |view|). */
const pc_value *pc_msg_event_body(pc_msgctx *c, const pc_event *ev, pc_value *view)
{
    const pc_value *b = pc_msg_attr(&ev->attrs, "body");
    if (b) return pc_msg_as_struct(c, b);
    *view = attrs_value(&ev->attrs);
    return view;
}

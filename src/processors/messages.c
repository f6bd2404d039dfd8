/*
 * messages.c - prompts and completions of every LLM dialect into one message
 * shape (see messages.h for the shape, the sources and their precedence).
 *
 * Position: normalize.c calls pc_messages_extract once per span. This file
 * knows WHERE each dialect puts its messages (attribute keys, event names,
 * indexed keys); message_shape.c knows the SHAPES a message or part comes in
 * and writes the output. Reads the span, writes two JSON arrays into the
 * batch's arena; everything else it allocates (JSON parses, the indexed-key
 * table, the output buffer) lives in a scratch arena and a pc_buf freed
 * before it returns.
 *
 * Layout, in reading order: the scan that decides in one pass whether a span
 * has anything to read; the sources, one function each; the driver that
 * tries them in precedence order for each side.
 */
#include "messages.h"
#include "message_shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ scan */

/* What a span carries (bits of pc_msgctx.mask). */
enum {
    S_SEMCONV = 1u << 0, /* gen_ai.input.messages, output.messages, system_instructions */
    S_TL_IDX = 1u << 1,  /* gen_ai.prompt.N..., gen_ai.completion.N... */
    S_OI_IDX = 1u << 2,  /* llm.input_messages.N..., llm.output_messages.N... */
    S_LC_IDX = 1u << 3,  /* llm.prompt.N, llm.response.N (Prela LangChain) */
    S_VALUE = 1u << 4,   /* input.value, output.value */
    S_ENTITY = 1u << 5,  /* traceloop.entity.input / output */
    E_DETAILS = 1u << 6, /* event gen_ai.client.inference.operation.details */
    E_MSG = 1u << 7,     /* events gen_ai.{system,user,assistant,tool}.message */
    E_CHOICE = 1u << 8,  /* event gen_ai.choice */
    E_CONTENT = 1u << 9, /* events gen_ai.content.prompt / completion */
    E_PRELA = 1u << 10,  /* events llm.request, llm.response, llm.tool_calls, ... */
};

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
            if (!MSG_PREFIX(k, 0, "gen_ai.")) break;
            switch (k.p[7]) {
            case 'i':
                m |= MSG_EQ(k, "gen_ai.input.messages") ? S_SEMCONV : 0;
                break;
            case 'o':
                m |= MSG_EQ(k, "gen_ai.output.messages") ? S_SEMCONV : 0;
                break;
            case 's':
                m |= MSG_EQ(k, "gen_ai.system_instructions") ? S_SEMCONV : 0;
                break;
            case 'p':
                m |= MSG_PREFIX(k, 7, "prompt.") ? S_TL_IDX : 0;
                break;
            case 'c':
                m |= MSG_PREFIX(k, 7, "completion.") ? S_TL_IDX : 0;
                break;
            }
            break;
        case 'l':
            if (!MSG_PREFIX(k, 0, "llm.")) break;
            switch (k.p[4]) {
            case 'i':
                m |= MSG_PREFIX(k, 4, "input_messages.") ? S_OI_IDX : 0;
                break;
            case 'o':
                m |= MSG_PREFIX(k, 4, "output_messages.") ? S_OI_IDX : 0;
                break;
            case 'p':
                m |= MSG_PREFIX(k, 4, "prompt.") ? S_LC_IDX : 0;
                break;
            case 'r':
                m |= MSG_PREFIX(k, 4, "response.") ? S_LC_IDX : 0;
                break;
            }
            break;
        case 'i':
            m |= MSG_EQ(k, "input.value") ? S_VALUE : 0;
            break;
        case 'o':
            m |= MSG_EQ(k, "output.value") ? S_VALUE : 0;
            break;
        case 't':
            m |= MSG_PREFIX(k, 0, "traceloop.entity.") ? S_ENTITY : 0;
            break;
        }
    }
    return m;
}

/* The E_* bit of an event name, 0 for the others. */
static unsigned event_bit(pc_str n)
{
    if (MSG_PREFIX(n, 0, "gen_ai.")) {
        if (MSG_EQ(n, "gen_ai.client.inference.operation.details")) return E_DETAILS;
        if (MSG_EQ(n, "gen_ai.choice")) return E_CHOICE;
        if (MSG_EQ(n, "gen_ai.system.message") || MSG_EQ(n, "gen_ai.user.message") ||
            MSG_EQ(n, "gen_ai.assistant.message") || MSG_EQ(n, "gen_ai.tool.message"))
            return E_MSG;
        if (MSG_EQ(n, "gen_ai.content.prompt") || MSG_EQ(n, "gen_ai.content.completion"))
            return E_CONTENT;
        return 0;
    }
    if (MSG_PREFIX(n, 0, "llm.") &&
        (MSG_EQ(n, "llm.request") || MSG_EQ(n, "llm.response") || MSG_EQ(n, "llm.tool_calls") ||
         MSG_EQ(n, "llm.tool_use") || MSG_EQ(n, "llm.thinking")))
        return E_PRELA;
    return 0;
}

/* ------------------------------------------------------------- sources */

static const pc_event *find_event(const pc_span *s, const char *name, size_t n)
{
    for (size_t i = 0; i < s->n_events; i++)
        if (pc_msg_eq(s->events[i].name, name, n)) return &s->events[i];
    return NULL;
}

/* 1. semconv 1.37+ */
static void src_semconv(pc_msgctx *c, pc_msgw *w)
{
    const pc_span *s = c->s;
    if (!w->output) {
        const pc_value *si = pc_msg_attr(&s->attrs, "gen_ai.system_instructions");
        const pc_value *im = pc_msg_attr(&s->attrs, "gen_ai.input.messages");
        if (!si && !im && (c->mask & E_DETAILS)) {
            const pc_event *ev = find_event(s, "gen_ai.client.inference.operation.details", 41);
            si = pc_msg_attr(&ev->attrs, "gen_ai.system_instructions");
            im = pc_msg_attr(&ev->attrs, "gen_ai.input.messages");
        }
        pc_msg_system(c, w, si);
        pc_msg_list(c, w, im, PC_MSG_ROLE_IN, 0);
    } else {
        const pc_value *om = pc_msg_attr(&s->attrs, "gen_ai.output.messages");
        if (!om && (c->mask & E_DETAILS)) {
            const pc_event *ev = find_event(s, "gen_ai.client.inference.operation.details", 41);
            om = pc_msg_attr(&ev->attrs, "gen_ai.output.messages");
        }
        pc_msg_list(c, w, om, PC_MSG_ROLE_OUT, 0);
    }
}

/* 2. semconv 1.28-1.36 per-message events */
static void src_events(pc_msgctx *c, pc_msgw *w)
{
    const pc_span *s = c->s;
    for (size_t i = 0; i < s->n_events && !w->full; i++) {
        const pc_event *ev = &s->events[i];
        pc_value view;
        if (w->output) {
            if (!MSG_EQ(ev->name, "gen_ai.choice")) continue;
            const pc_value *b = pc_msg_event_body(c, ev, &view);
            if (b->type != PC_V_MAP) {
                pc_msg_text(c, w, PC_MSG_ROLE_OUT, b, PC_STR_NULL);
                continue;
            }
            pc_str finish = pc_msg_str(pc_msg_get(b, "finish_reason"));
            const pc_value *m = pc_msg_as_struct(c, pc_msg_get(b, "message"));
            if (m && m->type == PC_V_MAP)
                pc_msg_from_map_calls(c, w, m, PC_MSG_ROLE_OUT, finish,
                                      pc_msg_get(b, "tool_calls"));
            else
                pc_msg_from_map(c, w, b, PC_MSG_ROLE_OUT, finish);
            continue;
        }
        pc_str role;
        if (MSG_EQ(ev->name, "gen_ai.system.message"))
            role = PC_STR_LIT("system");
        else if (MSG_EQ(ev->name, "gen_ai.user.message"))
            role = PC_STR_LIT("user");
        else if (MSG_EQ(ev->name, "gen_ai.assistant.message"))
            role = PC_STR_LIT("assistant");
        else if (MSG_EQ(ev->name, "gen_ai.tool.message"))
            role = PC_STR_LIT("tool");
        else
            continue;
        const pc_value *b = pc_msg_event_body(c, ev, &view);
        if (b->type == PC_V_MAP)
            pc_msg_from_map(c, w, b, role, PC_STR_NULL);
        else
            pc_msg_text(c, w, role, b, PC_STR_NULL);
    }
}

/* 3. semconv 1.26 content events */
static void src_content_events(pc_msgctx *c, pc_msgw *w)
{
    const pc_span *s = c->s;
    for (size_t i = 0; i < s->n_events && !w->full; i++) {
        const pc_event *ev = &s->events[i];
        if (!w->output && MSG_EQ(ev->name, "gen_ai.content.prompt"))
            pc_msg_list(c, w, pc_msg_attr(&ev->attrs, "gen_ai.prompt"), PC_MSG_ROLE_IN, 0);
        else if (w->output && MSG_EQ(ev->name, "gen_ai.content.completion"))
            pc_msg_list(c, w, pc_msg_attr(&ev->attrs, "gen_ai.completion"), PC_MSG_ROLE_OUT, 0);
    }
}

/* ---- 4, 5, 6b: indexed keys (collected once, sorted once) */

enum { F_TL_IN, F_TL_OUT, F_OI_IN, F_OI_OUT, F_LC_IN, F_LC_OUT };
enum { SUB_NONE, SUB_CONTENTS, SUB_TOOL_CALLS };

typedef struct ix_entry ix_entry;

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
    if (!pc_msg_has_prefix(r, 0, sub_prefix, pn)) return true;
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
static void collect_indexed(pc_msgctx *c)
{
    c->ix_done = true;
    const pc_attrs *a = &c->s->attrs;
    c->ix = pc_arena_alloc(pc_msg_scratch(c), (a->n ? a->n : 1) * sizeof(ix_entry));
    for (size_t i = 0; i < a->n; i++) {
        pc_str k = a->kv[i].key;
        if (k.n < 12 || (k.p[0] != 'g' && k.p[0] != 'l')) continue;
        for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
            if (!(c->mask & families[f].bit) ||
                !pc_msg_has_prefix(k, 0, families[f].prefix, families[f].n))
                continue;
            ix_entry e = {
                .family = families[f].family, .order = (uint32_t)i, .value = &a->kv[i].value};
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
        if (e[i].sub == sub && pc_msg_eq(e[i].rest, key, kl)) return e[i].value;
    return NULL;
}

/* The run of entries from |e|[i] sharing its sub kind and sub index. */
static size_t sub_run(const ix_entry *e, size_t n, size_t i)
{
    size_t j = i;
    while (j < n && e[j].sub == e[i].sub && e[j].sub_idx == e[i].sub_idx)
        j++;
    return j;
}

/* Traceloop content: plain text, or a JSON list of typed parts. */
static void tl_content(pc_msgctx *c, pc_msgw *w, const pc_value *v)
{
    const pc_value *sv = pc_msg_as_struct(c, v);
    if (sv && sv->type == PC_V_ARRAY && sv->arr.n && sv->arr.v[0].type == PC_V_MAP &&
        pc_msg_get(&sv->arr.v[0], "type"))
        pc_msg_content_parts(c, w, sv, false, PC_STR_NULL);
    else
        pc_msg_text_part(c, w, v);
}

/* One message from the entries |e|[0..n) of one index. */
static void ix_message(pc_msgctx *c, pc_msgw *w, uint8_t family, const ix_entry *e, size_t n)
{
    bool out = family == F_TL_OUT || family == F_OI_OUT || family == F_LC_OUT;
    pc_str role_default = out ? PC_MSG_ROLE_OUT : PC_MSG_ROLE_IN;
    if (family >= F_LC_IN) {
        pc_msg_text(c, w, role_default, e[0].value, PC_STR_NULL);
        return;
    }
    bool oi = family == F_OI_IN || family == F_OI_OUT;
    const char *pre = oi ? "message." : "";
    char key[64];
#define SCALAR(name) (snprintf(key, sizeof(key), "%s%s", pre, name), ix_get(e, n, SUB_NONE, key))
    pc_str role = pc_msg_str(SCALAR("role"));
    role = role.n ? pc_msg_canonical_role(role) : role_default;
    if (!pc_msg_open(w, role, pc_msg_str(SCALAR("name")))) return;
    const pc_value *content = SCALAR("content");
    pc_str tool_id = pc_msg_str(SCALAR("tool_call_id"));
    if (MSG_EQ(role, "tool"))
        pc_msg_content_parts(c, w, content, true, tool_id);
    else if (content)
        tl_content(c, w, content);
    for (size_t i = 0; i < n;) {
        size_t j = sub_run(e, n, i);
        if (e[i].sub == SUB_CONTENTS) {
            pc_str type = pc_msg_str(ix_get(e + i, j - i, SUB_CONTENTS, "message_content.type"));
            const pc_value *text = ix_get(e + i, j - i, SUB_CONTENTS, "message_content.text");
            pc_str url =
                pc_msg_str(ix_get(e + i, j - i, SUB_CONTENTS, "message_content.image.image.url"));
            if (url.n && (!type.n || MSG_EQ(type, "image"))) {
                if (pc_msg_part_open(w, "\"uri\",\"modality\":\"image\"")) {
                    pc_msg_field_str(w, ",\"uri\":", url);
                    pc_buf_putc(w->b, '}');
                }
            } else {
                pc_msg_text_part(c, w, text);
            }
        } else if (e[i].sub == SUB_TOOL_CALLS) {
            const char *id = oi ? "tool_call.id" : "id";
            const char *name = oi ? "tool_call.function.name" : "name";
            const char *args = oi ? "tool_call.function.arguments" : "arguments";
            pc_msg_tool_call_part(w, pc_msg_str(ix_get(e + i, j - i, SUB_TOOL_CALLS, id)),
                                  pc_msg_str(ix_get(e + i, j - i, SUB_TOOL_CALLS, name)),
                                  ix_get(e + i, j - i, SUB_TOOL_CALLS, args));
        }
        i = j;
    }
    const pc_value *fname = SCALAR(oi ? "function_call_name" : "function_call.name");
    if (fname)
        pc_msg_tool_call_part(
            w, PC_STR_NULL, pc_msg_str(fname),
            SCALAR(oi ? "function_call_arguments_json" : "function_call.arguments"));
    pc_str finish = pc_msg_str(SCALAR("finish_reason"));
    if (!finish.n && family == F_OI_OUT)
        finish = pc_msg_str(pc_msg_attr(&c->s->attrs, "llm.finish_reason"));
    pc_msg_close(w, finish);
#undef SCALAR
}

static void src_indexed(pc_msgctx *c, pc_msgw *w, uint8_t fam_in)
{
    if (!c->ix_done) collect_indexed(c);
    uint8_t fam = (uint8_t)(fam_in + (w->output ? 1 : 0));
    size_t i = 0;
    while (i < c->n_ix && c->ix[i].family != fam)
        i++;
    while (i < c->n_ix && c->ix[i].family == fam && !w->full) {
        size_t j = i;
        while (j < c->n_ix && c->ix[j].family == fam && c->ix[j].idx == c->ix[i].idx)
            j++;
        ix_message(c, w, fam, c->ix + i, j - i);
        i = j;
    }
}

static void src_traceloop_idx(pc_msgctx *c, pc_msgw *w)
{
    src_indexed(c, w, F_TL_IN);
}
static void src_openinference_idx(pc_msgctx *c, pc_msgw *w)
{
    src_indexed(c, w, F_OI_IN);
}

/* 6. the Prela SDK's events, then its LangChain llm.prompt.N / llm.response.N */
static void src_prela(pc_msgctx *c, pc_msgw *w)
{
    const pc_span *s = c->s;
    if (c->mask & E_PRELA) {
        const pc_event *req = find_event(s, "llm.request", 11);
        if (!w->output && req) {
            pc_msg_system(c, w, pc_msg_attr(&req->attrs, "system"));
            pc_msg_list(c, w, pc_msg_attr(&req->attrs, "messages"), PC_MSG_ROLE_IN, 0);
            const pc_value *prompt = pc_msg_attr(&req->attrs, "prompt");
            if (prompt) pc_msg_text(c, w, PC_MSG_ROLE_IN, prompt, PC_STR_NULL);
        }
        const pc_event *resp = find_event(s, "llm.response", 12);
        const pc_event *think = find_event(s, "llm.thinking", 12);
        const pc_event *calls = find_event(s, "llm.tool_calls", 14);
        if (!calls) calls = find_event(s, "llm.tool_use", 12);
        if (w->output && (resp || think || calls)) {
            pc_str finish = pc_msg_str(pc_msg_attr(&s->attrs, "llm.finish_reason"));
            if (!finish.n) finish = pc_msg_str(pc_msg_attr(&s->attrs, "llm.stop_reason"));
            if (pc_msg_open(w, PC_MSG_ROLE_OUT, PC_STR_NULL)) {
                const pc_value *th =
                    think ? pc_msg_as_struct(c, pc_msg_attr(&think->attrs, "thinking")) : NULL;
                for (size_t i = 0; th && th->type == PC_V_ARRAY && i < th->arr.n; i++)
                    if (th->arr.v[i].type == PC_V_STR && th->arr.v[i].s.n &&
                        pc_msg_part_open(w, "\"reasoning\"")) {
                        pc_msg_field_str(w, ",\"content\":", th->arr.v[i].s);
                        pc_buf_putc(w->b, '}');
                    }
                c->saw_tool_call = false;
                if (resp) {
                    const pc_value *v = pc_msg_attr(&resp->attrs, "content");
                    if (!v) v = pc_msg_attr(&resp->attrs, "text");
                    pc_msg_content_parts(c, w, pc_msg_as_struct(c, v), false, PC_STR_NULL);
                }
                if (calls && !c->saw_tool_call)
                    pc_msg_tool_calls_from(c, w, pc_msg_attr(&calls->attrs, "tool_calls"));
                pc_msg_close(w, finish);
            }
        }
    }
    if (!w->n_msgs && (c->mask & S_LC_IDX)) src_indexed(c, w, F_LC_IN);
}

/* A chat request or response body (or any text) as messages; 7 and 8. */
static void value_messages(pc_msgctx *c, pc_msgw *w, const pc_value *v)
{
    if (!v) return;
    const pc_value *sv = pc_msg_as_struct(c, v);
    if (sv->type == PC_V_MAP) {
        if (!w->output) {
            const pc_value *inner = pc_msg_get(sv, "inputs"); /* Traceloop LangChain entity input */
            if (inner && inner->type == PC_V_MAP && pc_msg_get(inner, "messages")) sv = inner;
            const pc_value *msgs = pc_msg_get(sv, "messages");
            if (msgs) {
                pc_msg_system(c, w, pc_msg_get(sv, "system"));
                pc_msg_list(c, w, msgs, PC_MSG_ROLE_IN, 0);
                return;
            }
            const pc_value *prompt = pc_msg_get(sv, "prompt");
            if (prompt) {
                pc_msg_list(c, w, prompt, PC_MSG_ROLE_IN, 0);
                return;
            }
        } else {
            const pc_value *choices = pc_msg_get(sv, "choices");
            if (choices && choices->type == PC_V_ARRAY) {
                for (size_t i = 0; i < choices->arr.n && !w->full; i++) {
                    const pc_value *ch = &choices->arr.v[i];
                    pc_str finish = pc_msg_str(pc_msg_get(ch, "finish_reason"));
                    const pc_value *m = pc_msg_get(ch, "message");
                    if (m && m->type == PC_V_MAP)
                        pc_msg_from_map(c, w, m, PC_MSG_ROLE_OUT, finish);
                    else
                        pc_msg_text(c, w, PC_MSG_ROLE_OUT, pc_msg_get(ch, "text"), finish);
                }
                return;
            }
            const pc_value *content = pc_msg_get(sv, "content");
            if (content && content->type == PC_V_ARRAY) { /* Anthropic Messages response */
                pc_msg_from_map(c, w, sv, PC_MSG_ROLE_OUT, PC_STR_NULL);
                return;
            }
        }
    }
    pc_msg_text(c, w, w->output ? PC_MSG_ROLE_OUT : PC_MSG_ROLE_IN, v, PC_STR_NULL);
}

static void src_value(pc_msgctx *c, pc_msgw *w)
{
    value_messages(c, w, pc_msg_attr(&c->s->attrs, w->output ? "output.value" : "input.value"));
}

static void src_entity(pc_msgctx *c, pc_msgw *w)
{
    value_messages(c, w,
                   pc_msg_attr(&c->s->attrs,
                               w->output ? "traceloop.entity.output" : "traceloop.entity.input"));
}

/* -------------------------------------------------------------- driver */

/* The sources in precedence order (messages.h), with the bits that say a
 * span may hold them. */
static const struct {
    void (*fn)(pc_msgctx *, pc_msgw *);
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
    case PC_V_BYTES:
        n += v->s.n;
        break;
    case PC_V_ARRAY:
        for (size_t i = 0; i < v->arr.n; i++)
            n += value_bytes(&v->arr.v[i]);
        break;
    case PC_V_MAP:
        for (size_t i = 0; i < v->map.n; i++)
            n += v->map.kv[i].key.n + value_bytes(&v->map.kv[i].value);
        break;
    default:
        break;
    }
    return n;
}

static size_t attrs_bytes(const pc_attrs *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++)
        n += a->kv[i].key.n + value_bytes(&a->kv[i].value);
    return n;
}

/* Writes one side into |buf| and returns its arena copy (empty: no message). */
static pc_str write_side(pc_msgctx *c, pc_buf *buf, size_t cap, bool output, pc_arena *arena)
{
    pc_buf_reset(buf);
    pc_buf_putc(buf, '[');
    pc_msgw w = {.b = buf, .cap = cap, .output = output};
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
    for (size_t i = 0; i < s->n_events; i++)
        mask |= event_bit(s->events[i].name);
    if (!mask) return;
    pc_msgctx c = {.s = s, .mask = mask, .tmp = PC_BUF_INIT};
    size_t in_bytes = attrs_bytes(&s->attrs);
    for (size_t i = 0; i < s->n_events; i++)
        in_bytes += attrs_bytes(&s->events[i].attrs);
    size_t cap = in_bytes * 8 + 4096;
    pc_buf buf = PC_BUF_INIT;
    s->input_messages = write_side(&c, &buf, cap, false, arena);
    s->output_messages = write_side(&c, &buf, cap, true, arena);
    pc_buf_free(&buf);
    pc_buf_free(&c.tmp);
    pc_arena_destroy(c.scratch);
}

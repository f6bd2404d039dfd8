/*
 * test_local_events.c - attached events in the embedded store (local_events.h,
 * span_events.h): carriers written through the real `local` exporter, read
 * back through its store ops.
 *
 * A carrier before its span, after it, for a span that never comes, and
 * redelivered; the merge (time order, the span's own events kept, messages
 * computed when the span had none, kept when it had some); search finding a
 * trace by a word of an attached prompt, not finding one whose span never
 * came; projects kept apart; the per-span bound and its flag; retention.
 */
#include "check.h"
#include "exporters/local_harness.h"

#include "exporters/local_schema.h"
#include "exporters/span_events.h"

#include <math.h>

#define TR "4bf92f3577b34da6a3ce929d0e0e4736"
#define SP "00f067aa0ba902b7"

/* A carrier of |project| for (TR, |span|) with one event |name| at |t| whose
 * body is a chat message {role, content: |text|}. */
static pc_span *carrier(pc_batch *b, const char *project, const char *span, const char *name,
                        int64_t t, const char *text)
{
    pc_span *s = pc_batch_add(b);
    s->carrier = true;
    s->source = PC_SOURCE_OTLP;
    s->trace_id = S(b, TR);
    s->span_id = S(b, span);
    s->project_id = S(b, project);
    s->events = pc_arena_calloc(b->arena, sizeof(pc_event));
    s->n_events = 1;
    pc_kv *body = pc_arena_alloc(b->arena, 2 * sizeof(pc_kv));
    body[0] = kv_str(b, "role", strstr(name, "choice") ? "assistant" : "user");
    body[1] = kv_str(b, "content", text);
    pc_kv *attrs = pc_arena_alloc(b->arena, 2 * sizeof(pc_kv));
    attrs[0] = (pc_kv){S(b, "body"), {.type = PC_V_MAP, .map = {body, 2}}};
    attrs[1] = (pc_kv){S(b, "n"), {.type = PC_V_INT, .i = 5}};
    if (strstr(name, "choice")) { /* gen_ai.choice: {index, finish_reason, message} */
        pc_kv *choice = pc_arena_alloc(b->arena, 2 * sizeof(pc_kv));
        choice[0] = (pc_kv){S(b, "message"), {.type = PC_V_MAP, .map = {body, 2}}};
        choice[1] = kv_str(b, "finish_reason", "stop");
        attrs[0].value.map.kv = choice;
        attrs[0].value.map.n = 2;
    }
    s->events[0] = (pc_event){S(b, name), t, {attrs, 2}, 0};
    return s;
}

static pc_span *chat_span(pc_batch *b, const char *project)
{
    pc_span *s = add_span(b, (span_spec){.trace = TR, .span = SP, .name = "chat gpt-4o",
                                         .project = project, .type = PC_TYPE_LLM,
                                         .status = PC_STATUS_SUCCESS, .start = T0,
                                         .end = T0 + 10 * NS, .in_tok = -1, .out_tok = -1});
    s->source = PC_SOURCE_OTLP;
    /* one event of its own, between the two attached ones */
    s->events = pc_arena_calloc(b->arena, sizeof(pc_event));
    s->events[0] = (pc_event){S(b, "own.event"), T0 + 5 * NS, pc_empty_attrs, 0};
    s->n_events = 1;
    return s;
}

/* What get_spans answered for one span. */
typedef struct got {
    int n;
    char events[8192], input[1024], output[1024];
    bool cut;
} got;

static int collect(void *ud, const pc_span_row *r)
{
    got *g = ud;
    g->n++;
    snprintf(g->events, sizeof(g->events), "%s", r->events);
    snprintf(g->input, sizeof(g->input), "%s", r->input_messages);
    snprintf(g->output, sizeof(g->output), "%s", r->output_messages);
    g->cut = r->events_cut;
    return 0;
}

static got spans_of(store_h *h, const char *project)
{
    got g = {0};
    CHECK_EQ_INT(h->st->ops->get_spans(h->st->ctx, project, TR, 10, 0, collect, &g), 0);
    return g;
}

/* Position of |needle| in |hay|, or -1. */
static long at(const char *hay, const char *needle)
{
    const char *p = strstr(hay, needle);
    return p ? p - hay : -1;
}

static void test_before_after_never_redelivered(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    int64_t now = pc_time_now_ns();

    /* Before: the prompt arrives, its span does not exist yet: nothing shows,
     * and search finds no trace. */
    pc_batch *b = new_batch(now);
    carrier(b, "p1", SP, "gen_ai.user.message", T0 + 1 * NS, "Quelle est la capitale?");
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(spans_of(&h, "p1").n, 0);
    CHECK_EQ_INT(search_count(&h, NULL, "capitale"), 0);

    /* The span comes: the prompt is merged in, and messages are computed. */
    b = new_batch(now);
    chat_span(b, "p1");
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    got g = spans_of(&h, "p1");
    CHECK_EQ_INT(g.n, 1);
    CHECK(at(g.events, "gen_ai.user.message") >= 0 && at(g.events, "own.event") >= 0);
    CHECK(at(g.events, "gen_ai.user.message") < at(g.events, "own.event")); /* time order */
    CHECK(at(g.events, "\"n\":5") >= 0); /* typed: an int stays an int */
    CHECK_EQ_STR(g.input,
                 "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":"
                 "\"Quelle est la capitale?\"}]}]");
    CHECK_EQ_STR(g.output, "");
    CHECK(!g.cut);
    CHECK_EQ_INT(search_count(&h, NULL, "CAPITALE"), 1);
    CHECK_EQ_INT(search_count(&h, "p1", "la capitale?"), 1);
    CHECK_EQ_INT(search_count(&h, "p2", "capitale"), 0); /* another project sees nothing */

    /* After: the completion arrives later, at a later time. */
    b = new_batch(now);
    carrier(b, "p1", SP, "gen_ai.choice", T0 + 9 * NS, "Paris.");
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    g = spans_of(&h, "p1");
    CHECK(at(g.events, "own.event") < at(g.events, "gen_ai.choice"));
    CHECK_EQ_STR(g.output, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
                           "\"Paris.\"}],\"finish_reason\":\"stop\"}]");
    CHECK_EQ_INT(search_count(&h, NULL, "paris"), 1);

    /* Redelivered (a retried request, a replayed Kafka batch): nothing added. */
    char path[256];
    snprintf(path, sizeof(path), "%s/data/store/prela.db", h.dir);
    int64_t rows = db_int(path, "SELECT count(*) FROM span_events");
    CHECK_EQ_INT(rows, 2);
    b = new_batch(now);
    carrier(b, "p1", SP, "gen_ai.user.message", T0 + 1 * NS, "Quelle est la capitale?");
    carrier(b, "p1", SP, "gen_ai.choice", T0 + 9 * NS, "Paris.");
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM span_events"), 2);
    got again = spans_of(&h, "p1");
    CHECK_EQ_STR(again.events, g.events);

    /* Never: a carrier of a span that never comes shows nowhere. */
    b = new_batch(now);
    carrier(b, "p1", "1111111111111111", "gen_ai.user.message", T0, "orphaned prompt");
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(spans_of(&h, "p1").n, 1);
    CHECK(at(spans_of(&h, "p1").events, "orphaned") < 0);
    /* and search does not find the trace by its words */
    CHECK_EQ_INT(search_count(&h, NULL, "orphaned prompt"), 0);

    /* The same ids in another project: its own span, its own events. */
    b = new_batch(now);
    chat_span(b, "p2");
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    g = spans_of(&h, "p2");
    CHECK_EQ_INT(g.n, 1);
    CHECK(at(g.events, "gen_ai.") < 0);
    CHECK_EQ_STR(g.input, "");
    close_store(&h, true);
}

/* Messages the span carries itself win over those of attached events. */
static void test_span_messages_win(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = new_batch(pc_time_now_ns());
    pc_span *s = chat_span(b, "p1");
    s->input_messages = S(b, "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"own\"}]}]");
    carrier(b, "p1", SP, "gen_ai.user.message", T0, "attached");
    /* a batch of the Kafka receiver mixes carriers and spans */
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    got g = spans_of(&h, "p1");
    CHECK(at(g.input, "\"own\"") > 0 && at(g.input, "attached") < 0);
    CHECK(at(g.events, "attached") > 0);
    close_store(&h, true);
}

/* More than PC_SPAN_EVENTS_MAX attached events: the oldest are merged, and
 * the row says the list was cut. */
static void test_bound(void)
{
    store_h h;
    open_store(&h, NULL, NULL);
    pc_batch *b = new_batch(pc_time_now_ns());
    chat_span(b, "p1");
    char text[32];
    for (int i = 0; i < PC_SPAN_EVENTS_MAX + 10; i++) {
        snprintf(text, sizeof(text), "message %d", i);
        carrier(b, "p1", SP, "gen_ai.user.message", T0 + i, text);
    }
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    got *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(h.st->ops->get_spans(h.st->ctx, "p1", TR, 10, 0, collect, g), 0);
    CHECK(g->cut);
    close_store(&h, true);
    free(g);
}

/* Retention deletes attached events written before the cutoff, and their
 * search text. */
static void test_retention(void)
{
    store_h h;
    open_store(&h, NULL, "1d");
    int64_t now = pc_time_now_ns();
    pc_batch *b = new_batch(now - 2 * 86400 * NS);
    carrier(b, "p1", SP, "gen_ai.user.message", T0, "ancient words");
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    b = new_batch(now);
    chat_span(b, "p1");
    carrier(b, "p1", SP, "gen_ai.choice", T0 + 1, "fresh words");
    CHECK_EQ_INT(consume(&h, b), PC_OK);
    CHECK_EQ_INT(search_count(&h, NULL, "ancient"), 1);
    pc_local_purge(h.ctx, now);
    char path[256];
    snprintf(path, sizeof(path), "%s/data/store/prela.db", h.dir);
    CHECK_EQ_INT(db_int(path, "SELECT count(*) FROM span_events"), 1);
    CHECK_EQ_INT(search_count(&h, NULL, "ancient"), 0);
    CHECK_EQ_INT(search_count(&h, NULL, "fresh words"), 1);
    close_store(&h, true);
}

int main(void)
{
    RUN(test_before_after_never_redelivered);
    RUN(test_span_messages_win);
    RUN(test_bound);
    RUN(test_retention);
    return CHECK_DONE();
}

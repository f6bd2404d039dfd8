/*
 * span_events.c - attached events: their JSON, their content key, and the
 * merge into a span row on read (the contract is in span_events.h).
 *
 * The merge parses the row's attributes and events and the attached events
 * into one scratch arena, sorts the events by time (a stable merge sort: the
 * span's own events come first among equal times, then the attached ones in
 * the order read), writes them back with span.h's writer, and runs
 * messages.h over the merged span for a side the row has none of, so the
 * prompt of a log record shows where a span attribute would have put it.
 */
#include "span_events.h"

#include "json.h"
#include "processors/messages.h"

#include <stdlib.h>
#include <string.h>

void pc_span_event_json(pc_buf *out, const pc_event *ev)
{
    size_t at = out->len;
    pc_events_write_json(out, ev, 1); /* "[{...}]" */
    memmove(out->data + at, out->data + at + 1, out->len - at - 2);
    out->len -= 2;
    out->data[out->len] = '\0';
}

int64_t pc_span_event_key(const char *json, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)json[i];
        h *= 1099511628211ull;
    }
    return (int64_t)h;
}

/* One event of span.h's JSON into |ev|; false when it is not one. */
static bool event_in(const pc_value *o, pc_event *ev)
{
    if (o->type != PC_V_MAP) return false;
    memset(ev, 0, sizeof(*ev));
    ev->attrs = pc_empty_attrs;
    for (size_t i = 0; i < o->map.n; i++) {
        const pc_kv *kv = &o->map.kv[i];
        if (pc_str_eq(kv->key, "name") && kv->value.type == PC_V_STR)
            ev->name = kv->value.s;
        else if (pc_str_eq(kv->key, "time_unix_nano") && kv->value.type == PC_V_INT)
            ev->time_ns = kv->value.i;
        else if (pc_str_eq(kv->key, "attributes") && kv->value.type == PC_V_MAP)
            ev->attrs = (pc_attrs){kv->value.map.kv, kv->value.map.n};
    }
    return true;
}

/* Stable merge sort of |n| events by time, |tmp| of n elements. */
static void sort_events(pc_event *e, pc_event *tmp, size_t n)
{
    if (n < 2) return;
    size_t h = n / 2;
    sort_events(e, tmp, h);
    sort_events(e + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = e[j].time_ns < e[i].time_ns ? e[j++] : e[i++];
    while (i < h)
        tmp[k++] = e[i++];
    while (j < n)
        tmp[k++] = e[j++];
    memcpy(e, tmp, n * sizeof(*e));
}

void pc_span_events_merge(pc_span_events *m, pc_span_row *row, const char *const *ev,
                          const size_t *len, size_t n, bool cut)
{
    if (n == 0) return;
    pc_arena *a = pc_arena_create(16384);
    pc_json_error err;
    pc_value own = {0}, attrs = {0};
    const char *et = row->events ? row->events : "[]";
    if (pc_json_parse(a, et, strlen(et), &own, &err) || own.type != PC_V_ARRAY) {
        pc_arena_destroy(a); /* never lose the span's own events: no merge */
        return;
    }
    const char *at = row->attributes ? row->attributes : "{}";
    if (pc_json_parse(a, at, strlen(at), &attrs, &err) || attrs.type != PC_V_MAP)
        attrs = (pc_value){.type = PC_V_MAP};

    size_t cap = own.arr.n + n, k = 0, bytes = 0;
    pc_event *all = pc_arena_alloc(a, cap * sizeof(*all));
    for (size_t i = 0; i < own.arr.n; i++)
        if (event_in(&own.arr.v[i], &all[k])) k++;
    for (size_t i = 0; i < n; i++) {
        if (i >= PC_SPAN_EVENTS_MAX || bytes + len[i] > PC_SPAN_EVENTS_MAX_BYTES) {
            cut = true;
            break;
        }
        bytes += len[i];
        pc_value v;
        if (pc_json_parse(a, ev[i], len[i], &v, &err) == 0 && event_in(&v, &all[k])) k++;
    }
    sort_events(all, pc_arena_alloc(a, cap * sizeof(*all)), k);

    pc_buf_reset(&m->events);
    pc_events_write_json(&m->events, all, k);
    row->events = m->events.data;
    if (cut) row->events_cut = true;

    bool need_in = !row->input_messages || !*row->input_messages;
    bool need_out = !row->output_messages || !*row->output_messages;
    if (need_in || need_out) {
        pc_span s;
        memset(&s, 0, sizeof(s));
        s.attrs = (pc_attrs){attrs.map.kv, attrs.map.n};
        s.resource = &pc_empty_attrs;
        s.scope = &pc_empty_scope;
        s.events = all;
        s.n_events = k;
        pc_messages_extract(&s, a);
        if (need_in && s.input_messages.n) {
            pc_buf_reset(&m->input);
            pc_buf_append(&m->input, s.input_messages.p, s.input_messages.n);
            row->input_messages = m->input.data;
        }
        if (need_out && s.output_messages.n) {
            pc_buf_reset(&m->output);
            pc_buf_append(&m->output, s.output_messages.p, s.output_messages.n);
            row->output_messages = m->output.data;
        }
    }
    pc_arena_destroy(a);
}

void pc_span_events_free(pc_span_events *m)
{
    pc_buf_free(&m->events);
    pc_buf_free(&m->input);
    pc_buf_free(&m->output);
}

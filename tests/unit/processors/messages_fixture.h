/*
 * messages_fixture.h - what the message normalizer's tests share
 * (test_messages.c, test_messages_hostile.c): spans written as JSON, and the
 * check that parses an answer back with jansson (an independent parser that
 * refuses invalid UTF-8) and compares it with the expected document.
 *
 * Test data: a span is written as {"attributes": {...}, "events": [{"name",
 * "attributes"}]}; structured values stay structured (as OTLP kvlist/array
 * values and Prela JSON arrive), and a key written "$key" is sent as the JSON
 * text of its value in a string attribute "key" (how Python instrumentations
 * send gen_ai.input.messages, input.value, ...). In span_of and the expected
 * documents '' quotes stand for "" (span_parse(doc, false) reads plain JSON).
 * Header-only: each test file is one executable.
 */
#ifndef PC_TEST_MESSAGES_FIXTURE_H
#define PC_TEST_MESSAGES_FIXTURE_H

#include "check.h"
#include "json.h"
#include "processors/messages.h"

#include <jansson.h>
#include <stdlib.h>

static pc_arena *A; /* every test span and answer lives here */

/* "$key": the value's JSON text as a string attribute "key". */
static inline void stringify(pc_attrs *a)
{
    for (size_t i = 0; i < a->n; i++) {
        pc_kv *kv = &a->kv[i];
        if (!kv->key.n || kv->key.p[0] != '$') continue;
        pc_buf b = PC_BUF_INIT;
        pc_value_write_json(&b, &kv->value);
        kv->value.type = PC_V_STR;
        kv->value.s = (pc_str){pc_arena_strndup(A, b.data, b.len), b.len};
        kv->key = (pc_str){kv->key.p + 1, kv->key.n - 1};
        pc_buf_free(&b);
    }
}

static inline pc_attrs attrs_of(const pc_value *v)
{
    pc_attrs a = {NULL, 0};
    if (v && v->type == PC_V_MAP) {
        a.kv = v->map.kv;
        a.n = v->map.n;
    }
    stringify(&a);
    return a;
}

/* A span from the test notation above ('' quotes become "" when |swap|). */
static inline pc_span span_parse(const char *doc, bool swap)
{
    pc_span s;
    memset(&s, 0, sizeof(s));
    s.resource = &pc_empty_attrs;
    s.scope = &pc_empty_scope;
    size_t n = strlen(doc);
    char *t = pc_arena_strndup(A, doc, n);
    for (size_t i = 0; swap && i < n; i++)
        if (t[i] == '\'') t[i] = '"';
    pc_value v;
    pc_json_error e;
    if (pc_json_parse(A, t, n, &v, &e) != 0) {
        fprintf(stderr, "bad test span: %s\n%s\n", e.msg, t);
        CHECK(0);
        return s;
    }
    s.attrs = attrs_of(pc_json_get(&v, "attributes"));
    const pc_value *ev = pc_json_get(&v, "events");
    if (ev && ev->type == PC_V_ARRAY) {
        s.events = pc_arena_calloc(A, (ev->arr.n + 1) * sizeof(pc_event));
        for (size_t i = 0; i < ev->arr.n; i++) {
            const pc_value *name = pc_json_get(&ev->arr.v[i], "name");
            if (name && name->type == PC_V_STR) s.events[i].name = name->s;
            s.events[i].attrs = attrs_of(pc_json_get(&ev->arr.v[i], "attributes"));
        }
        s.n_events = ev->arr.n;
    }
    return s;
}

static inline pc_span span_of(const char *doc)
{
    return span_parse(doc, true);
}

/* Checks that |got| parses (jansson, strict UTF-8) and equals |want| (test
 * notation, '' for ""; NULL: |got| must be empty). */
#define CHECK_MSGS(got, want) check_msgs(__FILE__, __LINE__, #got, (got), (want))
static inline void check_msgs(const char *file, int line, const char *what, pc_str got,
                              const char *want)
{
    check_count++;
    if (!want) {
        if (got.n) {
            check_failures++;
            fprintf(stderr, "%s:%d: %s: want empty, got %.*s\n", file, line, what, (int)got.n,
                    got.p);
        }
        return;
    }
    char *w = strdup(want);
    for (char *p = w; *p; p++)
        if (*p == '\'') *p = '"';
    json_error_t je;
    json_t *jw = json_loads(w, 0, &je);
    json_t *jg = got.n ? json_loadb(got.p, got.n, 0, &je) : NULL;
    if (!jw) fprintf(stderr, "%s:%d: bad expected JSON: %s\n", file, line, je.text);
    if (!jg || !jw || !json_equal(jg, jw)) {
        check_failures++;
        fprintf(stderr, "%s:%d: %s:\n  got  %.*s\n  want %s\n", file, line, what, (int)got.n,
                got.p ? got.p : "", w);
    }
    json_decref(jw);
    json_decref(jg);
    free(w);
}

static inline pc_span extract(const char *doc)
{
    pc_span s = span_of(doc);
    pc_messages_extract(&s, A);
    return s;
}

/* |s| parsed by jansson (checked: it must parse). */
static inline json_t *parsed(pc_str s)
{
    json_error_t je;
    json_t *j = s.n ? json_loadb(s.p, s.n, 0, &je) : NULL;
    CHECK(j != NULL);
    return j;
}

#endif

/*
 * json_write.c - micro benchmark of the JSON writer (src/core/json.c, span.c).
 *
 * Writes five workloads again and again into one reused pc_buf and prints MB/s
 * of JSON produced and nanoseconds per call: prompt-like text (ASCII prose with
 * newlines, quotes and some UTF-8, 768-byte strings as in the reference
 * workload), integers of every magnitude, durations in milliseconds (doubles
 * with up to 6 decimals, as prela_json's duration_ms), timestamps, and the
 * reference workload's 100-span Prela batch parsed into a pc_value tree and
 * written back with pc_value_write_json; and the Kafka exporter's prela_json
 * messages of that workload (decoded from OTLP and normalized: one message per
 * span and one per trace of 10). Times are CPU seconds of the process.
 * A program that prints numbers, not a test: run it before and after a change
 * to the writer, on an idle machine.
 *
 *   build/json_write [seconds per workload, default 1] [only workload 1..6]
 */
#include "formats/prela_json.h"
#include "json.h"
#include "span.h"
#include "workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_ITEMS = 4096 };

typedef struct work {
    const char *name;
    int kind; /* 0 strings, 1 ints, 2 doubles, 3 times, 4 tree, 5 prela_json */
    char **str;
    size_t *len;
    int64_t *i;
    double *d;
    pc_value *tree;
    pc_batch *batch;
} work;

static void write_all(pc_buf *b, const work *w)
{
    switch (w->kind) {
    case 0:
        for (int k = 0; k < N_ITEMS; k++) pc_json_write_str(b, w->str[k], w->len[k]);
        break;
    case 1:
        for (int k = 0; k < N_ITEMS; k++) pc_json_write_int(b, w->i[k]);
        break;
    case 2:
        for (int k = 0; k < N_ITEMS; k++) pc_json_write_double(b, w->d[k]);
        break;
    case 3:
        for (int k = 0; k < N_ITEMS; k++) pc_json_write_time(b, w->i[k]);
        break;
    case 4: pc_value_write_json(b, w->tree); break;
    default:
        for (size_t k = 0; k < w->batch->n; k++) pc_prela_json_encode_span(b, &w->batch->spans[k], 1);
        for (size_t k = 0; k + LG_SPANS_PER_TRACE <= w->batch->n; k += LG_SPANS_PER_TRACE) {
            const pc_span *t[LG_SPANS_PER_TRACE];
            for (int j = 0; j < LG_SPANS_PER_TRACE; j++) t[j] = &w->batch->spans[k + (size_t)j];
            pc_prela_json_encode_trace(b, t, LG_SPANS_PER_TRACE, 1);
        }
    }
}

static void run(const work *w, double secs)
{
    pc_buf b = PC_BUF_INIT;
    size_t iters = 0, bytes = 0;
    double t0 = lg_cpu_seconds(), t;
    do {
        pc_buf_reset(&b);
        write_all(&b, w);
        bytes += b.len;
        iters++;
        t = lg_cpu_seconds();
    } while (t - t0 < secs);
    double calls = (double)iters * (w->kind >= 4 ? 1 : N_ITEMS);
    printf("%-30s %8.1f MB/s  %9.1f ns per call\n", w->name, (double)bytes / (t - t0) / 1e6,
           (t - t0) * 1e9 / calls);
    pc_buf_free(&b);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A prompt-like string: words, punctuation, a newline now and then, a quoted
 * phrase, and one accented word or emoji in about every sixth string. */
static char *prompt(size_t n)
{
    static const char *words[] = {"the", "model", "should", "answer", "briefly", "context",
                                  "user", "asked", "about", "weather", "in", "Paris", "today"};
    char *s = malloc(n + 16);
    size_t i = 0;
    while (i < n) {
        uint64_t r = next();
        const char *wd = words[r % 13];
        if (r % 97 == 0) wd = "caf\xC3\xA9";
        if (r % 211 == 0) wd = "\xF0\x9F\x99\x82";
        if (r % 61 == 0) wd = "\"quoted\"";
        size_t l = strlen(wd);
        memcpy(s + i, wd, l);
        i += l;
        s[i++] = r % 23 == 0 ? '\n' : ' ';
    }
    s[n] = '\0';
    return s;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    int only = argc > 2 ? atoi(argv[2]) : 0;
    static char *str[N_ITEMS];
    static size_t len[N_ITEMS];
    static int64_t ints[N_ITEMS], times[N_ITEMS];
    static double dbl[N_ITEMS];
    for (int k = 0; k < N_ITEMS; k++) {
        len[k] = 512 + next() % 257;
        str[k] = prompt(len[k]);
        uint64_t r = next();
        ints[k] = (int64_t)(r >> (r % 64)) * (r & 1 ? -1 : 1);
        dbl[k] = (double)(int64_t)(next() % 100000000000ull) / 1e6; /* up to ~28 hours */
        times[k] = 1737972000000000000LL + (int64_t)(next() % 100000000000000000ull);
    }
    lg_workload wl;
    if (lg_workload_build(&wl, LG_BODY_PRELA, 100, 1)) return 1;
    pc_arena *a = pc_arena_create(wl.len * 16 + 4096);
    pc_value tree;
    pc_json_error e;
    if (pc_json_parse(a, (const char *)wl.data, wl.len, &tree, &e)) {
        fprintf(stderr, "workload: %s\n", e.msg);
        return 1;
    }
    pc_batch *batch = lg_reference_batch(1);
    if (!batch) return 1;
    work ws[] = {
        {"strings, prompt text", 0, str, len, NULL, NULL, NULL, NULL},
        {"ints, all magnitudes", 1, NULL, NULL, ints, NULL, NULL, NULL},
        {"doubles, ms with 6 decimals", 2, NULL, NULL, NULL, dbl, NULL, NULL},
        {"times", 3, NULL, NULL, times, NULL, NULL, NULL},
        {"prela batch tree, 100 spans", 4, NULL, NULL, NULL, NULL, &tree, NULL},
        {"prela_json, 100 spans+10 traces", 5, NULL, NULL, NULL, NULL, NULL, batch},
    };
    for (int k = 0; k < 6; k++)
        if (!only || only == k + 1) run(&ws[k], secs);
    pc_arena_destroy(a);
    pc_batch_unref(batch);
    lg_workload_free(&wl);
    for (int k = 0; k < N_ITEMS; k++) free(str[k]);
    return 0;
}

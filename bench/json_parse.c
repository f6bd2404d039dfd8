/*
 * json_parse.c - micro benchmark of the JSON reader (src/core/json.c).
 *
 * Parses three documents again and again and prints MB/s and the arena bytes
 * the tree costs per input byte: the reference workload's 100-span Prela batch
 * (bench/workload.c, ~0.1 MB of mostly string text), a 1 MB attribute-heavy
 * document of many small objects, and the `[0,0,...]` bomb of issue 10 (4 MiB).
 * Times are CPU seconds of the process (less noisy than wall time on a shared
 * machine). A program that prints numbers, not a test: run it before and after a change
 * to the reader, on an idle machine.
 *
 *   build/json_parse [seconds per document, default 1] [only document 1..3]
 *
 * With 0 seconds each document is parsed once, for instruction counts that do
 * not depend on the machine's load:
 *   valgrind --tool=callgrind --toggle-collect=pc_json_parse build/json_parse 0 1
 */
#include "json.h"
#include "workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int only; /* 0 = every document */
static int doc_no;

static void run(const char *name, const char *text, size_t len, double secs)
{
    if (only && ++doc_no != only) return;
    if (!only) doc_no++;
    size_t iters = 0, used = 0;
    double t0 = now(), t;
    do {
        pc_arena *a = pc_arena_create(len + 4096);
        pc_value v;
        pc_json_error e;
        if (pc_json_parse(a, text, len, &v, &e)) {
            fprintf(stderr, "%s: %s\n", name, e.msg);
            exit(1);
        }
        used = pc_arena_used(a);
        pc_arena_destroy(a);
        iters++;
        t = now();
    } while (t - t0 < secs);
    printf("%-28s %9zu bytes  %8.1f MB/s  %6.2f arena bytes per input byte\n", name, len,
           (double)len * (double)iters / (t - t0) / 1e6, (double)used / (double)len);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    only = argc > 2 ? atoi(argv[2]) : 0;
    lg_workload w;
    if (lg_workload_build(&w, LG_BODY_PRELA, 100, 1)) return 1;
    run("prela batch, 100 spans", (const char *)w.data, w.len, secs);
    lg_workload_free(&w);

    size_t cap = 1 << 20, n = 0;
    char *doc = malloc(cap + 256);
    n += (size_t)sprintf(doc, "{\"attributes\":[");
    for (int i = 0; n < cap - 200; i++)
        n += (size_t)sprintf(doc + n, "%s{\"key\":\"k.%d\",\"value\":{\"intValue\":%d,\"ok\":true}}",
                             i ? "," : "", i, i * 7);
    n += (size_t)sprintf(doc + n, "]}");
    run("small objects, 1 MB", doc, n, secs);
    free(doc);

    size_t k = (4 << 20) / 2 - 2, bomb = 0; /* k + 1 zeros */
    char *z = malloc(2 * k + 3);
    z[bomb++] = '[';
    for (size_t i = 0; i < k; i++, bomb += 2) memcpy(z + bomb, "0,", 2);
    memcpy(z + bomb, "0]", 2);
    bomb += 2;
    run("[0,0,...] bomb, 4 MiB", z, bomb, secs);
    free(z);
    return 0;
}

/*
 * spool_bench.c - how fast the disk spool (src/core/spool.c) takes records:
 * appends per second and MB/s of payload, for 1 and 8 appending threads,
 * 1 KB and 64 KB records, fsync ALWAYS vs BATCH (group commit). Wall-clock
 * time, since what bounds an append is the disk's fdatasync. Each case runs in
 * a fresh spool directory under DIR that is removed afterwards. A program
 * that prints numbers, not a test.
 *
 *   spool_bench [SECONDS [DIR]]   (default 2 seconds per case, DIR /tmp)
 */
#include "spool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct run {
    pc_spool *sp;
    size_t size;
    double until;
    long appends, errors;
} run;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *appender(void *arg)
{
    run *r = arg;
    char *rec = malloc(r->size);
    memset(rec, 'x', r->size);
    while (now() < r->until) {
        if (pc_spool_append(r->sp, rec, r->size) == 0)
            r->appends++;
        else
            r->errors++;
    }
    free(rec);
    return NULL;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    const char *base = argc > 2 ? argv[2] : "/tmp";
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/spool-bench-XXXXXX", base);
    if (!mkdtemp(tmpl)) {
        perror(tmpl);
        return 1;
    }
    printf("%-7s %7s %7s %12s %9s %12s %7s\n", "fsync", "threads", "record", "appends/s", "MB/s",
           "fdatasyncs/s", "errors");
    static const size_t sizes[] = {1024, 64 << 10};
    static const int threads[] = {1, 8};
    int n = 0;
    for (int m = 0; m < 2; m++)
        for (int s = 0; s < 2; s++)
            for (int t = 0; t < 2; t++) {
                char dir[600], err[256];
                snprintf(dir, sizeof dir, "%s/case%d", tmpl, n++);
                pc_spool_config c = {dir, (uint64_t)8 << 30,
                                     m ? PC_SPOOL_FSYNC_BATCH : PC_SPOOL_FSYNC_ALWAYS, 0};
                pc_spool *sp = pc_spool_create(&c, err, sizeof err);
                if (!sp) {
                    fprintf(stderr, "%s\n", err);
                    return 1;
                }
                run r[8];
                pthread_t th[8];
                double t0 = now();
                for (int i = 0; i < threads[t]; i++) {
                    r[i] = (run){sp, sizes[s], t0 + seconds, 0, 0};
                    pthread_create(&th[i], NULL, appender, &r[i]);
                }
                long appends = 0, errors = 0;
                for (int i = 0; i < threads[t]; i++) {
                    pthread_join(th[i], NULL);
                    appends += r[i].appends;
                    errors += r[i].errors;
                }
                double el = now() - t0;
                pc_spool_stats st;
                pc_spool_get_stats(sp, &st);
                printf("%-7s %7d %6zuK %12.0f %9.1f %12.0f %7ld\n", m ? "batch" : "always",
                       threads[t], sizes[s] >> 10, appends / el,
                       appends * (double)sizes[s] / el / 1e6, st.fsyncs / el, errors);
                fflush(stdout);
                pc_spool_destroy(sp);
                char cmd[700];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
                if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
            }
    rmdir(tmpl);
    return 0;
}

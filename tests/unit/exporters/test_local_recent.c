/*
 * test_local_recent.c - the embedded store's recent search text
 * (local_recent.c): which pieces a search matches, the rowid past which it
 * reads spans directly, what the index's commits drop, and searches racing
 * the writer and the index thread.
 */
#include "check.h"
#include "exporters/local_recent.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { CAP = 100 };

/* pc_local_recent_match of the C string |q|; the blocks sorted into |out|. */
static int64_t match(pc_local_recent *r, int64_t upto, const char *q, int cap, int64_t *out,
                     int *n)
{
    int64_t floor = pc_local_recent_match(r, upto, q, strlen(q), cap, out, n);
    for (int i = 1; i < *n; i++) /* insertion sort: a handful */
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            int64_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return floor;
}

static void add(pc_local_recent *r, int64_t block, const char *text)
{
    pc_local_recent_add(r, block, text, strlen(text));
}

static void test_pieces(void)
{
    int64_t b[CAP + 1];
    int n;
    pc_local_recent *r = pc_local_recent_create();
    pc_local_recent_reset(r, 10);
    add(r, 1, "the Zebra crossed");
    add(r, 2, "nothing here");
    pc_local_recent_commit(r, 20); /* (10, 20] */
    add(r, 3, "ZEBRAS again");
    add(r, 1, "zebra once more");
    pc_local_recent_commit(r, 30); /* (20, 30] */

    /* from the index's upto: every piece past it, each block once */
    CHECK_EQ_INT(match(r, 10, "zebra", CAP, b, &n), 30);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(b[0], 1);
    CHECK_EQ_INT(b[1], 3);
    CHECK_EQ_INT(match(r, 20, "zebra", CAP, b, &n), 30);
    CHECK_EQ_INT(n, 2); /* block 1 again, from the second piece */
    CHECK_EQ_INT(match(r, 10, "nothing", CAP, b, &n), 30);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(b[0], 2);
    CHECK_EQ_INT(match(r, 20, "nothing", CAP, b, &n), 30);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(match(r, 10, "absent", CAP, b, &n), 30);
    CHECK_EQ_INT(n, 0);
    /* past every piece: nothing to match, spans past upto read directly */
    CHECK_EQ_INT(match(r, 30, "zebra", CAP, b, &n), 30);
    CHECK_EQ_INT(n, 0);
    /* an upto before the first piece: the pieces do not cover it */
    CHECK_EQ_INT(match(r, 9, "zebra", CAP, b, &n), 9);
    CHECK_EQ_INT(n, 0);
    /* at most cap + 1 blocks */
    CHECK_EQ_INT(match(r, 10, "e", 0, b, &n), 30);
    CHECK_EQ_INT(n, 1);

    /* a rolled-back transaction and one without spans keep nothing */
    add(r, 9, "zebra rolled back");
    pc_local_recent_abort(r);
    add(r, 8, "zebra of retention");
    pc_local_recent_commit(r, 0);
    CHECK_EQ_INT(match(r, 10, "zebra", CAP, b, &n), 30);
    CHECK_EQ_INT(n, 2);

    /* spans without text: the last piece covers them */
    pc_local_recent_commit(r, 35);
    CHECK_EQ_INT(match(r, 10, "zebra", CAP, b, &n), 35);
    CHECK_EQ_INT(n, 2);
    add(r, 4, "a late zebra");
    pc_local_recent_commit(r, 40); /* (35, 40] */

    /* the index commits: what is at or below the upto before the last goes */
    pc_local_recent_indexed(r, 20);
    CHECK_EQ_INT(match(r, 10, "zebra", CAP, b, &n), 40);
    CHECK_EQ_INT(n, 3);
    pc_local_recent_indexed(r, 30); /* drops (10, 20]: at or below 20 */
    CHECK_EQ_INT(match(r, 10, "zebra", CAP, b, &n), 10);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(match(r, 20, "zebra", CAP, b, &n), 40);
    CHECK_EQ_INT(n, 3);
    pc_local_recent_indexed(r, 40); /* keeps (20, 35]: above 30 */
    CHECK_EQ_INT(match(r, 20, "zebra", CAP, b, &n), 40);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(match(r, 35, "zebra", CAP, b, &n), 40);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(b[0], 4);
    add(r, 5, "zebra five");
    pc_local_recent_commit(r, 45);  /* (40, 45] */
    pc_local_recent_indexed(r, 45); /* drops (20, 35] and (35, 40] */
    CHECK_EQ_INT(match(r, 35, "zebra", CAP, b, &n), 35);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(match(r, 40, "zebra", CAP, b, &n), 45);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(b[0], 5);

    /* rowids that start again (every span deleted): no piece covers them */
    add(r, 5, "zebra reborn");
    pc_local_recent_commit(r, 3);
    CHECK_EQ_INT(match(r, 40, "zebra", CAP, b, &n), 40);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(match(r, 45, "zebra", CAP, b, &n), 45);
    CHECK_EQ_INT(n, 0);
    add(r, 6, "zebra after the restart of rowids");
    pc_local_recent_commit(r, 7); /* (3, 7] */
    CHECK_EQ_INT(match(r, 3, "zebra", CAP, b, &n), 7);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(b[0], 6);

    /* a start: everything dropped, the next piece from the index's upto */
    pc_local_recent_reset(r, 100);
    CHECK_EQ_INT(match(r, 3, "zebra", CAP, b, &n), 3);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(match(r, 100, "zebra", CAP, b, &n), 100);
    pc_local_recent_destroy(r);
    pc_local_recent_destroy(NULL);
    CHECK_EQ_INT(pc_local_recent_match(NULL, 5, "x", 1, CAP, b, &n), 5);
    CHECK_EQ_INT(n, 0);
}

/* Case and script as search folds them (pc_contains). */
static void test_folding(void)
{
    int64_t b[CAP + 1];
    int n;
    pc_local_recent *r = pc_local_recent_create();
    pc_local_recent_reset(r, 0);
    add(r, 1, "ПРИВЕТ мир");
    add(r, 2, "Ärger im Büro");
    add(r, 3, "line one\nline two");
    pc_local_recent_commit(r, 3);
    CHECK_EQ_INT(match(r, 0, "привет", CAP, b, &n), 3);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(b[0], 1);
    CHECK_EQ_INT(match(r, 0, "äRGER", CAP, b, &n), 3);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(b[0], 2);
    CHECK_EQ_INT(match(r, 0, "LINE TWO", CAP, b, &n), 3);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(b[0], 3);
    pc_local_recent_destroy(r);
}

/* More text than PC_LOCAL_RECENT_MAX: the oldest pieces go, and a search
 * from before them reads the spans directly. */
static void test_bytes_bound(void)
{
    int64_t b[CAP + 1];
    int n;
    size_t big = PC_LOCAL_RECENT_MAX / 3 - 1;
    char *text = malloc(big + 1);
    memset(text, 'x', big);
    text[big] = '\0';
    pc_local_recent *r = pc_local_recent_create();
    pc_local_recent_reset(r, 0);
    for (int i = 1; i <= 4; i++) {
        memcpy(text, "needle", 6);
        pc_local_recent_add(r, i, text, big);
        pc_local_recent_commit(r, i);
    }
    /* three fit: (0, 1] went */
    CHECK_EQ_INT(match(r, 0, "needle", CAP, b, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(match(r, 1, "needle", CAP, b, &n), 4);
    CHECK_EQ_INT(n, 3);
    /* one piece past the bound alone is not kept */
    char *huge = malloc(PC_LOCAL_RECENT_MAX + 1);
    memset(huge, 'y', PC_LOCAL_RECENT_MAX + 1);
    pc_local_recent_add(r, 9, huge, PC_LOCAL_RECENT_MAX + 1);
    pc_local_recent_commit(r, 5);
    CHECK_EQ_INT(match(r, 4, "yyy", CAP, b, &n), 4);
    CHECK_EQ_INT(n, 0);
    free(huge);
    free(text);
    pc_local_recent_destroy(r);
}

/*
 * Searches racing the writer and the index thread. Piece i covers rowid i
 * alone and holds block i's "marker": a search from the index's upto u that
 * gets a floor f > u must find exactly the blocks u+1 .. f (contiguous
 * pieces, none lost, none freed under it: ASan runs this too).
 */
enum { RACE_PIECES = 20000, SEARCHERS = 2 };
static pc_local_recent *race_r;
static atomic_llong race_indexed; /* the upto the "index" last committed */
static atomic_bool race_done;
static atomic_int race_started;  /* searchers running: the writer waits for all */
static atomic_long race_covered; /* searches that got pieces past their upto */

static void *searcher(void *arg)
{
    long *bad = arg;
    int64_t *b = malloc((RACE_PIECES + 1) * sizeof(*b));
    long covered = 0;
    atomic_fetch_add(&race_started, 1);
    while (!atomic_load(&race_done)) {
        int64_t u = atomic_load(&race_indexed);
        int n;
        int64_t f = pc_local_recent_match(race_r, u, "MARKER", 6, RACE_PIECES, b, &n);
        if (f < u) (*bad)++;
        if (f == u) continue;
        covered++;
        atomic_fetch_add(&race_covered, 1);
        if (n != f - u) (*bad)++;
        for (int i = 0; i < n; i++)
            if (b[i] <= u || b[i] > f) (*bad)++;
    }
    free(b);
    bad[1] = covered;
    return NULL;
}

static void test_race(void)
{
    race_r = pc_local_recent_create();
    pc_local_recent_reset(race_r, 0);
    atomic_store(&race_indexed, 0);
    atomic_store(&race_done, false);
    atomic_store(&race_started, 0);
    atomic_store(&race_covered, 0);
    pthread_t t[SEARCHERS];
    long bad[SEARCHERS][2] = {{0}};
    for (int i = 0; i < SEARCHERS; i++)
        pthread_create(&t[i], NULL, searcher, bad[i]);
    while (atomic_load(&race_started) < SEARCHERS) /* on a busy machine they start late */
        sched_yield();
    for (int i = 1; i <= RACE_PIECES; i++) {
        char text[48];
        snprintf(text, sizeof(text), "span %d marker", i);
        add(race_r, i, text);
        pc_local_recent_commit(race_r, i);
        if (i % 50 == 0) { /* the index writes what is 40 behind */
            pc_local_recent_indexed(race_r, i - 40);
            atomic_store(&race_indexed, i - 40);
        }
    }
    /* on a busy machine the writer can finish before a searcher ran again:
     * the last pieces stay past the upto, so give them up to 5 s to search */
    for (int w = 0; w < 5000 && atomic_load(&race_covered) == 0; w++)
        usleep(1000);
    atomic_store(&race_done, true);
    long covered = 0;
    for (int i = 0; i < SEARCHERS; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(bad[i][0], 0);
        covered += bad[i][1];
    }
    CHECK(covered > 0);
    pc_local_recent_destroy(race_r);
}

int main(void)
{
    RUN(test_pieces);
    RUN(test_folding);
    RUN(test_bytes_bound);
    RUN(test_race);
    return CHECK_DONE();
}

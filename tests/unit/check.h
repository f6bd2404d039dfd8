/*
 * check.h - the unit tests' assertion harness.
 *
 * Each test file defines test functions and runs them from main() with RUN();
 * a failed CHECK prints file:line and the values, counts the failure and goes on;
 * CHECK_DONE() returns the exit status (0 only when nothing failed).
 */
#ifndef PC_CHECK_H
#define PC_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        check_count++;                                                                       \
        if (!(cond)) {                                                                       \
            check_failures++;                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                                    \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                   \
    do {                                                                                     \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                \
        check_count++;                                                                       \
        if (va_ != vb_) {                                                                    \
            check_failures++;                                                                \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, \
                    #b, va_, vb_);                                                           \
        }                                                                                    \
    } while (0)

/* Compares two C strings (NULL-safe). */
#define CHECK_EQ_STR(a, b)                                                                   \
    do {                                                                                     \
        const char *sa_ = (a), *sb_ = (b);                                                   \
        check_count++;                                                                       \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                         \
            check_failures++;                                                                \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
                    #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                     \
        }                                                                                    \
    } while (0)

/* Compares a pc_str with a C string. */
#define CHECK_EQ_PSTR(ps, c)                                                                 \
    do {                                                                                     \
        pc_str ps_ = (ps);                                                                   \
        const char *c_ = (c);                                                                \
        check_count++;                                                                       \
        if (ps_.n != strlen(c_) || (ps_.n && memcmp(ps_.p, c_, ps_.n) != 0)) {               \
            check_failures++;                                                                \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%.*s\" != \"%s\"\n", __FILE__,        \
                    __LINE__, #ps, #c, (int)ps_.n, ps_.p ? ps_.p : "", c_);                   \
        }                                                                                    \
    } while (0)

#define RUN(fn)                                                                              \
    do {                                                                                     \
        fprintf(stderr, "-- %s\n", #fn);                                                     \
        fn();                                                                                \
    } while (0)

/* A deterministic generator for tests' random inputs (xorshift64*): the
 * same sequence on every run, so a failure can be run again. */
static uint64_t check_rnd_state = 0x9e3779b97f4a7c15ULL;
static inline uint64_t check_rnd(void)
{
    check_rnd_state ^= check_rnd_state >> 12;
    check_rnd_state ^= check_rnd_state << 25;
    check_rnd_state ^= check_rnd_state >> 27;
    return check_rnd_state * 0x2545f4914f6cdd1dULL;
}

#define CHECK_DONE()                                                                         \
    (fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures),                 \
     check_failures ? 1 : 0)

#endif

/*
 * sync.h - what every thread owner of the collector uses to wait and to step
 * aside: condition variables on the monotonic clock, waits until a
 * pc_time_mono_ns instant, a thread's lower CPU priority, and its name.
 *
 * Data flow: none of its own; the group commits, flushers, checkpointers,
 * spoolers and connection threads (src/exporters, src/receivers, src/core)
 * wait and lower their priority through it.
 */
#ifndef PC_SYNC_H
#define PC_SYNC_H

#include <pthread.h>
#include <stdint.h>

/* Initializes |cv| to time its waits on CLOCK_MONOTONIC (the clock of
 * pc_time_mono_ns), so a wall-clock step never cuts a wait short or long. */
void pc_cond_init_mono(pthread_cond_t *cv);

/* pthread_cond_timedwait on |cv| (made by pc_cond_init_mono) until the
 * pc_time_mono_ns instant |until_ns|; returns its result (0, ETIMEDOUT). */
int pc_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ns);

/* Lowers the calling thread's CPU priority by |by| nice steps (the result
 * capped at 19; Linux keeps a nice value per thread). Returns 0, or the errno
 * of the failure (the caller logs it and goes on). */
int pc_thread_lower_priority(int by);

/* Names the calling thread |name| (its first 15 bytes: Linux's limit), which
 * top -H, ps -L, perf and gdb show: every thread the collector starts names
 * its role. A failure is ignored (the name is only for people). */
void pc_thread_name(const char *name);

#endif

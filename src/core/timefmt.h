/*
 * timefmt.h - timestamps: parsing what clients send, formatting what we serve.
 *
 * Time inside the collector is int64 nanoseconds since the Unix epoch (UTC).
 * The parser is lenient on purpose (see prela-wire-format.md §0.2): it accepts
 * "2025-01-27T10:00:00Z", "...+05:30", "...-0800", the Prela SDK's
 * "...+00:00Z", 0..9 fraction digits, a space instead of 'T', and a naive time
 * (no zone), which is UTC.
 */
#ifndef PC_TIMEFMT_H
#define PC_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Parses |n| bytes of |s|. Returns 0 and sets |*ns|, or -1 when it is not a timestamp. */
int pc_time_parse(const char *s, size_t n, int64_t *ns);
/* Writes "YYYY-MM-DDTHH:MM:SS.ffffffZ" (microseconds) and a NUL into |out|. */
void pc_time_format(int64_t ns, char out[32]);
/* Current wall-clock time in ns. */
int64_t pc_time_now_ns(void);
/* Monotonic clock in ns, for deadlines and measurements. */
int64_t pc_time_mono_ns(void);

#endif

/*
 * timefmt.h - timestamps: parsing what clients send, formatting what we serve.
 *
 * Time inside the collector is int64 nanoseconds since the Unix epoch (UTC).
 * The parser is lenient on purpose (see prela-wire-format.md §0.2): it accepts
 * "2025-01-27T10:00:00Z", "...+05:30", "...-0800", the Prela SDK's
 * "...+00:00Z", 0..9 fraction digits, a space instead of 'T', and a naive time
 * (no zone), which is UTC.
 *
 * Range: a span or event time the collector accepts lies in PC_TIME_MIN_NS ..
 * PC_TIME_MAX_NS, 1970-01-01T00:00:00Z .. 2262-04-11T23:47:16.854775807Z.
 * Receivers check every time a client sends with pc_time_in_range or the
 * checked conversions below, and answer "<field>: out of range" otherwise.
 *
 * Why not before 1970: whatever a gateway acknowledges must be decodable and
 * storable on the storage side. OTLP carries times as unsigned nanoseconds
 * since the epoch (fixed64), so the otlp_proto / otlp_json Kafka encodings (and
 * any OTLP consumer downstream) cannot represent an earlier time, and
 * ClickHouse's DateTime columns start at 1970 too. The upper bound is where
 * int64 nanoseconds end; OTLP's fixed64 goes further, and the OTLP receiver
 * refuses those times the same way. Within the range, end - start of two
 * times never overflows; pc_time_diff_ns saturates anyway, because decoded
 * spans of any origin reach the exporters.
 */
#ifndef PC_TIMEFMT_H
#define PC_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parses |n| bytes of |s|. Returns 0 and sets |*ns|, or -1 when it is not a
 * timestamp or not representable in int64 ns. The result may lie outside the
 * collector's range (before 1970): callers that take span times check it.
 */
int pc_time_parse(const char *s, size_t n, int64_t *ns);
#define PC_TIME_MIN_NS INT64_C(0)
#define PC_TIME_MAX_NS INT64_MAX
/* For messages: "<field>: out of range (" PC_TIME_RANGE_TEXT ")". */
#define PC_TIME_RANGE_TEXT "1970-01-01T00:00:00Z .. 2262-04-11T23:47:16Z"

/* True when |ns| lies in PC_TIME_MIN_NS..PC_TIME_MAX_NS. */
static inline int pc_time_in_range(int64_t ns)
{
    return ns >= PC_TIME_MIN_NS;
}

/*
 * Checked conversions into the collector's time range. Each returns 0 and sets
 * |*ns|, or -1 (leaving |*ns|) when the result would fall outside it or the
 * input is not a finite number. Never undefined behaviour, whatever the input.
 */
int pc_time_from_secs(int64_t secs, int64_t *ns);
int pc_time_from_secs_f(double secs, int64_t *ns);
/* |start| plus |ms| milliseconds (an int or a double). */
int pc_time_add_ms(int64_t start, int64_t ms, int64_t *ns);
int pc_time_add_ms_f(int64_t start, double ms, int64_t *ns);

/* end - start in ns, saturated to the int64 range (negative when end < start). */
int64_t pc_time_diff_ns(int64_t end, int64_t start);
/* end - start in milliseconds, computed without overflow for any two int64. */
double pc_time_diff_ms(int64_t end, int64_t start);

/* Writes "YYYY-MM-DDTHH:MM:SS.ffffffZ" (microseconds, the year clamped to
 * 0..9999) and a NUL into |out|: 28 bytes, no more. */
void pc_time_format(int64_t ns, char out[32]);
/* Current wall-clock time in ns. */
int64_t pc_time_now_ns(void);
/* Monotonic clock in ns, for deadlines and measurements. */
int64_t pc_time_mono_ns(void);
/* The calling thread's CPU time in ns (user and system). */
int64_t pc_time_thread_cpu_ns(void);

#endif

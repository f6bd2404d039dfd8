/*
 * numfmt.h - numbers to decimal text without printf, for the encoders' hot path.
 *
 * Where it sits: below json.c's writer (pc_json_write_int, _double, _ms) and
 * timefmt.c's printer; every JSON number the exporters write goes through here.
 * Issue 12's profile of the gateway's prela_json encoding showed vfprintf,
 * printf_fp and itoa at ~6.5%, so the common cases are formatted by hand.
 *
 * Contract: each function writes into a caller's array (no allocation, no NUL
 * unless stated) and returns the number of bytes written. The double formatter
 * is byte-identical to the printf path it replaces (see numfmt.c for why the
 * fast path is exact, and tests/unit/core/test_json_writer.c for the proof run
 * against snprintf on millions of doubles).
 */
#ifndef PC_NUMFMT_H
#define PC_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

/* Longest output of any function below (a %.17g double, sign, exponent, ".0"). */
#define PC_NUMFMT_MAX 32

/* Decimal digits of |v| (20 at most). */
size_t pc_fmt_u64(char *out, uint64_t v);
/* Decimal of |v| with a '-' when negative, INT64_MIN included (20 at most). */
size_t pc_fmt_i64(char *out, int64_t v);

/*
 * A finite double as JSON's writer has always written it: "%.15g", or "%.17g"
 * when the 15 digits do not read back as |v|, then ".0" when the text has no
 * '.', 'e' or 'E' (so readers keep it a double). |v| must be finite.
 */
size_t pc_fmt_double(char *out, double v);

/*
 * |ns| nanoseconds as milliseconds, identical to pc_fmt_double((double)ns / 1e6)
 * (which is what pc_time_diff_ms gives for a difference that does not overflow),
 * but exact integer work: "12.345678", "3.0", "-0.5". Returns 0 (writing
 * nothing) when |ns| is outside the range where the two provably agree
 * (|ns| < 100 other than 0, or |ns| >= 10^15); the caller then takes the double path.
 */
size_t pc_fmt_ms(char *out, int64_t ns);

#endif

/*
 * json.h - the JSON reader and writer used on the data path.
 *
 * Reader: parses text into pc_value trees (span.h) allocated in an arena. Objects
 * keep their key order; integers without fraction or exponent that fit int64
 * become PC_V_INT, other numbers PC_V_DOUBLE. It accepts what Python's json.dumps
 * emits: bare NaN, Infinity and -Infinity. An unpaired surrogate escape
 * (\ud800 alone, which json.dumps can emit) becomes U+FFFD. It rejects, with a
 * message and byte offset: invalid UTF-8 (also inside strings), nesting deeper
 * than PC_JSON_MAX_DEPTH (no recursion beyond that, so no stack overflow),
 * trailing garbage. Strings without escapes point into |text|, so |text| must
 * live as long as the tree (put it in the same arena).
 *
 * Writer: appends JSON to a pc_buf. Strings are escaped and any invalid UTF-8 is
 * replaced with U+FFFD, so nothing malformed is ever written. Non-finite doubles
 * are written as the strings "NaN", "Infinity", "-Infinity" (the proto3 JSON
 * convention); finite doubles always carry a fraction or exponent so readers
 * keep them doubles.
 */
#ifndef PC_JSON_H
#define PC_JSON_H

#include "arena.h"
#include "buf.h"
#include "span.h"

#define PC_JSON_MAX_DEPTH 64

typedef struct pc_json_error {
    char msg[160]; /* already ends with "at byte N" */
    size_t offset;
} pc_json_error;

/* Parses |len| bytes of |text|. Returns 0 and fills |out|, or -1 and fills |err|;
 * when the arena's budget refused memory, pc_arena_over(a) is set too. */
int pc_json_parse(pc_arena *a, const char *text, size_t len, pc_value *out, pc_json_error *err);

/* Returns the member |key| of object |obj|, or NULL (also when |obj| is not an object). */
const pc_value *pc_json_get(const pc_value *obj, const char *key);

void pc_json_write_str(pc_buf *out, const char *p, size_t n);
void pc_json_write_cstr(pc_buf *out, const char *s);
void pc_json_write_int(pc_buf *out, int64_t v);
void pc_json_write_double(pc_buf *out, double v);
/*
 * Writes end - start in milliseconds, byte-identical to
 * pc_json_write_double(out, pc_time_diff_ms(end, start)) for every pair of
 * int64 (tests/unit/core/test_json_writer.c), in integer arithmetic whenever
 * that is provably the same text (see numfmt.h, pc_fmt_ms).
 */
void pc_json_write_ms(pc_buf *out, int64_t end, int64_t start);
/* Writes |ns| as an ISO-8601 UTC string ("2025-01-27T10:00:00.123456Z"). */
void pc_json_write_time(pc_buf *out, int64_t ns);
/* Writes |n| bytes as a base64 JSON string. */
void pc_json_write_base64(pc_buf *out, const unsigned char *p, size_t n);

/* True when |n| bytes at |p| are valid UTF-8. */
bool pc_utf8_valid(const char *p, size_t n);

#endif

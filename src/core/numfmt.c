/*
 * numfmt.c - numbers to decimal text without printf (see numfmt.h).
 *
 * Integers: two digits per step from a 200-byte table, written backwards into
 * a scratch array and copied once. INT64_MIN is negated in uint64_t.
 *
 * Doubles: the reference is "%.15g", "%.17g" when that does not read back,
 * then ".0" when there is no '.', 'e' or 'E'. The fast path handles every
 * double that is the nearest double to a decimal D = m / 10^6 with an integer
 * 100 <= m < 10^15, plus integers below 10^15, and writes D's digits directly.
 * Why that is byte-identical to the reference:
 *  - D has at most 15 significant digits (m < 10^15). DBL_DIG is 15: a decimal
 *    of at most 15 significant digits, rounded to the nearest double and then
 *    printed correctly rounded to 15 significant digits (glibc's printf is
 *    exact), gives D back. So "%.15g" yields D's digits, and strtod of them is
 *    the nearest double to D, which is v: the "%.17g" retry never happens.
 *  - 10^-4 <= |D| < 10^9, so D's decimal exponent X is in -4..8 and "%g"
 *    uses fixed notation (it switches to e-notation only for X < -4 or X >= P).
 *    Fixed notation with trailing zeros removed is the integer part, then a
 *    '.' and the fraction without trailing zeros, or no '.' at all when the
 *    fraction is zero (then the writer appends ".0"). Integers 10^9 <= |v| <
 *    10^15 have X in 9..14 < 15: also fixed, no '.', so digits and ".0".
 *  - The candidate m = round(|v| * 10^6) is only a guess; it is accepted when
 *    (double)m / 1e6 == |v|. m < 2^53 is exact and IEEE division is correctly
 *    rounded, so equality means v is the nearest double to D. Doubles below
 *    10^9 are closer together than 10^-6, so at most one m passes. A wrong
 *    guess only costs the slow path.
 * Zero is written by sign ("0.0", "-0.0", as "%.15g" gives "0" and "-0").
 * tests/unit/core/test_json_writer.c checks all of this against snprintf on
 * millions of random doubles of every kind.
 */
#include "numfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
                               "25262728293031323334353637383940414243444546474849"
                               "50515253545556575859606162636465666768697071727374"
                               "75767778798081828384858687888990919293949596979899";

size_t pc_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    char *p = tmp + sizeof(tmp);
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100);
        v /= 100;
        p -= 2;
        memcpy(p, pairs + 2 * d, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof(tmp) - p);
    memcpy(out, p, n);
    return n;
}

size_t pc_fmt_i64(char *out, int64_t v)
{
    if (v >= 0) return pc_fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + pc_fmt_u64(out + 1, 0 - (uint64_t)v); /* no overflow for INT64_MIN */
}

/* m / 10^6 in fixed notation: integer part, '.', fraction without trailing
 * zeros or "0" when it is zero. */
static size_t fixed6(char *out, uint64_t m, int neg)
{
    size_t n = 0;
    if (neg) out[n++] = '-';
    n += pc_fmt_u64(out + n, m / 1000000);
    out[n++] = '.';
    unsigned f = (unsigned)(m % 1000000);
    if (!f) {
        out[n++] = '0';
        return n;
    }
    char d[6];
    for (int k = 5; k >= 0; k--, f /= 10) d[k] = (char)('0' + f % 10);
    size_t len = 6;
    while (d[len - 1] == '0') len--;
    memcpy(out + n, d, len);
    return n + len;
}

/* The reference path, exactly as the writer did it before issue 12. */
static size_t slow_double(char *out, double v)
{
    char tmp[40];
    int n = snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v) n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    if (!strpbrk(tmp, ".eE")) {
        tmp[n++] = '.';
        tmp[n++] = '0';
    }
    memcpy(out, tmp, (size_t)n);
    return (size_t)n;
}

size_t pc_fmt_double(char *out, double v)
{
    if (v == 0) {
        if (signbit(v)) {
            memcpy(out, "-0.0", 4);
            return 4;
        }
        memcpy(out, "0.0", 3);
        return 3;
    }
    double a = fabs(v);
    int neg = v < 0;
    if (a >= 1e-4 && a < 1e9) {
        uint64_t m = (uint64_t)(a * 1e6 + 0.5);
        if (m >= 100 && (double)m / 1e6 == a) return fixed6(out, m, neg);
    } else if (a >= 1e9 && a < 1e15 && a == (double)(uint64_t)a) {
        size_t n = 0;
        if (neg) out[n++] = '-';
        n += pc_fmt_u64(out + n, (uint64_t)a);
        memcpy(out + n, ".0", 2);
        return n + 2;
    }
    return slow_double(out, v);
}

size_t pc_fmt_ms(char *out, int64_t ns)
{
    if (ns == 0) {
        memcpy(out, "0.0", 3);
        return 3;
    }
    uint64_t u = ns < 0 ? 0 - (uint64_t)ns : (uint64_t)ns;
    if (u < 100 || u >= UINT64_C(1000000000000000)) return 0;
    return fixed6(out, u, ns < 0);
}

/*
 * timefmt.c - lenient ISO-8601 parsing and fixed-format printing (see timefmt.h).
 *
 * Grammar accepted (after optional surrounding spaces):
 *   YYYY-MM-DD[(T|t| )HH:MM[:SS[(.|,)f{1,9}]]][Z|z|(+|-)HH[:]MM|(+|-)HH][Z]
 * A trailing 'Z' after an explicit offset is the Prela SDK's "+00:00Z" and is
 * ignored. A date alone is midnight UTC. Calendar fields are range-checked.
 */
#include "timefmt.h"

#include <math.h>
#include <string.h>
#include <time.h>

static int digits(const char *s, size_t n, size_t *i, int count, int *out)
{
    int v = 0;
    for (int k = 0; k < count; k++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9') return -1;
        v = v * 10 + (s[*i] - '0');
        (*i)++;
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

int pc_time_parse(const char *s, size_t n, int64_t *ns)
{
    size_t i = 0;
    while (n > 0 && s[n - 1] == ' ') n--;
    while (i < n && s[i] == ' ') i++;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    int64_t frac = 0;
    if (digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || digits(s, n, &i, 2, &mo) ||
        i >= n || s[i++] != '-' || digits(s, n, &i, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return -1;
    if (i < n && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        i++;
        if (digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || digits(s, n, &i, 2, &mi))
            return -1;
        if (i < n && s[i] == ':') {
            i++;
            if (digits(s, n, &i, 2, &sec)) return -1;
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                i++;
                int nd = 0;
                while (i < n && s[i] >= '0' && s[i] <= '9') {
                    if (nd < 9) {
                        frac = frac * 10 + (s[i] - '0');
                        nd++;
                    }
                    i++;
                }
                if (nd == 0) return -1;
                for (; nd < 9; nd++) frac *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 60) return -1;
    }
    int64_t offset_s = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
        if (digits(s, n, &i, 2, &oh)) return -1;
        if (i < n && s[i] == ':') i++;
        if (i < n && s[i] >= '0' && s[i] <= '9' && digits(s, n, &i, 2, &om)) return -1;
        if (oh > 23 || om > 59) return -1;
        offset_s = sign * (oh * 3600 + om * 60);
        if (i < n && (s[i] == 'Z' || s[i] == 'z')) i++; /* the SDK's "+00:00Z" */
    }
    if (i != n) return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    int64_t r;
    if (__builtin_mul_overflow(secs, INT64_C(1000000000), &r) ||
        __builtin_add_overflow(r, frac, &r))
        return -1;
    *ns = r;
    return 0;
}

/* --------------------------------------------------- checked arithmetic -- */

#define NS_PER_S INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)

int pc_time_from_secs(int64_t secs, int64_t *ns)
{
    int64_t r;
    if (__builtin_mul_overflow(secs, NS_PER_S, &r) || !pc_time_in_range(r)) return -1;
    *ns = r;
    return 0;
}

/*
 * Doubles are compared in double before any cast: the bound 2^63 is exact in
 * double, so (int64_t) is only ever applied to a value in range (a cast of a
 * larger or non-finite value would be undefined behaviour).
 */
static int from_double_ns(double v, int64_t *out)
{
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return -1; /* NaN too */
    *out = (int64_t)v;
    return 0;
}

/* Whole seconds and the fraction apart, so 1737972000.25 is exact to the ns. */
int pc_time_from_secs_f(double secs, int64_t *ns)
{
    if (!(secs >= 0 && secs < 9223372037.0)) return -1; /* NaN fails too */
    double whole = floor(secs);
    int64_t r;
    if (__builtin_mul_overflow((int64_t)whole, NS_PER_S, &r) ||
        __builtin_add_overflow(r, (int64_t)llround((secs - whole) * 1e9), &r) ||
        !pc_time_in_range(r))
        return -1;
    *ns = r;
    return 0;
}

int pc_time_add_ms(int64_t start, int64_t ms, int64_t *ns)
{
    int64_t d, r;
    if (__builtin_mul_overflow(ms, NS_PER_MS, &d) || __builtin_add_overflow(start, d, &r) ||
        !pc_time_in_range(r))
        return -1;
    *ns = r;
    return 0;
}

int pc_time_add_ms_f(int64_t start, double ms, int64_t *ns)
{
    int64_t d, r;
    if (from_double_ns(ms * 1e6, &d) || __builtin_add_overflow(start, d, &r) ||
        !pc_time_in_range(r))
        return -1;
    *ns = r;
    return 0;
}

int64_t pc_time_diff_ns(int64_t end, int64_t start)
{
    int64_t r;
    if (!__builtin_sub_overflow(end, start, &r)) return r;
    return end > start ? INT64_MAX : INT64_MIN;
}

double pc_time_diff_ms(int64_t end, int64_t start)
{
    int64_t r;
    if (!__builtin_sub_overflow(end, start, &r)) return (double)r / 1e6;
    /* |end - start| >= 2^63: whole milliseconds first, then the rest. */
    return (double)(end / NS_PER_MS - start / NS_PER_MS) +
           (double)(end % NS_PER_MS - start % NS_PER_MS) / 1e6;
}

/* --------------------------------------------------------------- printing -- */

/*
 * Civil date of day |z| counted from 1970-01-01 (proleptic Gregorian): the
 * inverse of days_from_civil, in 400-year eras of 146097 days, with the year
 * starting on March 1 so the leap day is the last day of its year.
 */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* 0..146096 */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* 0..365 */
    int64_t mp = (5 * doy + 2) / 153;                                    /* 0..11 from March */
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* |v| as exactly |w| digits, the most significant first. */
static void put_digits(char *o, unsigned v, int w)
{
    for (int k = w - 1; k >= 0; k--, v /= 10) o[k] = (char)('0' + v % 10);
}

/*
 * No gmtime_r and no snprintf (issue 12: a time is formatted per span and per
 * event on the encoders' hot path). The year is clamped to 0..9999 so the text
 * keeps its width; int64 ns reach only 1677..2262, so the clamp is a guard.
 */
void pc_time_format(int64_t ns, char out[32])
{
    int64_t secs = ns / NS_PER_S, rem = ns % NS_PER_S;
    if (rem < 0) {
        rem += NS_PER_S;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t year;
    int mon, mday;
    civil_from_days(days, &year, &mon, &mday);
    if (year < 0) year = 0;
    if (year > 9999) year = 9999;
    char *o = out;
    put_digits(o, (unsigned)year, 4);
    o[4] = '-';
    put_digits(o + 5, (unsigned)mon, 2);
    o[7] = '-';
    put_digits(o + 8, (unsigned)mday, 2);
    o[10] = 'T';
    put_digits(o + 11, (unsigned)(sod / 3600), 2);
    o[13] = ':';
    put_digits(o + 14, (unsigned)(sod / 60 % 60), 2);
    o[16] = ':';
    put_digits(o + 17, (unsigned)(sod % 60), 2);
    o[19] = '.';
    put_digits(o + 20, (unsigned)(rem / 1000), 6);
    o[26] = 'Z';
    o[27] = '\0';
}

int64_t pc_time_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t pc_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t pc_time_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

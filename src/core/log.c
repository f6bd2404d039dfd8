/*
 * log.c - stderr logging (see log.h). The level is process-wide, set once at
 * startup from service.telemetry.logs.level.
 *
 * Messages often quote what a client sent (a path, a header, a field), so
 * every control byte of the message is written as \xNN: no client string can
 * end a line early and forge another log line, or move the terminal cursor.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static pc_log_level min_level = PC_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void pc_log_set_level(pc_log_level level)
{
    min_level = level;
}

int pc_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0) return i;
    if (strcasecmp(s, "warning") == 0) return PC_LOG_WARN;
    return -1;
}

void pc_log(pc_log_level level, const char *component, const char *fmt, ...)
{
    if (level < min_level) return;
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), names[level],
                     component ? component : "collector");
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || m < 0) return;
    if ((size_t)n > sizeof(line) - 6) n = (int)sizeof(line) - 6;
    if ((size_t)m >= sizeof(msg)) m = sizeof(msg) - 1;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < m && (size_t)n < sizeof(line) - 5; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c >= 0x20 && c != 0x7f) {
            line[n++] = (char)c;
            continue;
        }
        line[n++] = '\\';
        line[n++] = 'x';
        line[n++] = hex[c >> 4];
        line[n++] = hex[c & 15];
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

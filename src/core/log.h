/*
 * log.h - logging to stderr, one line per event: time, level, component, message.
 *
 * Log once, where the failure happens, naming the component; callers propagate
 * the error code. Thread-safe (each line is one write()).
 */
#ifndef PC_LOG_H
#define PC_LOG_H

typedef enum pc_log_level { PC_LOG_DEBUG = 0, PC_LOG_INFO, PC_LOG_WARN, PC_LOG_ERROR } pc_log_level;

void pc_log(pc_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pc_log_set_level(pc_log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int pc_log_level_parse(const char *s);

#endif

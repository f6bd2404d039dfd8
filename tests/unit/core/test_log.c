/*
 * test_log.c - logging (src/core/log.c): one line per event, and client text
 * that holds control bytes cannot end the line or forge another one.
 */
#include "check.h"
#include "log.h"

#include <stdlib.h>
#include <unistd.h>

/* Runs pc_log with stderr sent to a file and returns what was written. */
static char *capture(const char *client_text)
{
    char path[] = "/tmp/pc_test_log_XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    pc_log(PC_LOG_WARN, "prela", "bad header '%s' from client", client_text);
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char out[4096];
    ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return out;
}

static void test_control_bytes_are_escaped(void)
{
    char *out = capture("x\n2026-01-01T00:00:00.000Z error collector: forged\r\x1b[2J\x7f");
    /* Exactly one line, ending in the one newline pc_log adds. */
    CHECK(strchr(out, '\n') == out + strlen(out) - 1);
    CHECK(strchr(out, '\r') == NULL);
    CHECK(strchr(out, 0x1b) == NULL);
    CHECK(strstr(out, "x\\x0a2026-01-01") != NULL);
    CHECK(strstr(out, "forged\\x0d\\x1b[2J\\x7f'") != NULL);
    CHECK(strstr(out, " warn  prela: bad header 'x") != NULL);
    /* UTF-8 text passes unchanged. */
    out = capture("caf\xc3\xa9");
    CHECK(strstr(out, "'caf\xc3\xa9'") != NULL);
    /* A very long message is cut, still one line. */
    char big[5000];
    memset(big, '\n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    out = capture(big);
    CHECK(strchr(out, '\n') == out + strlen(out) - 1);
}

int main(void)
{
    RUN(test_control_bytes_are_escaped);
    return CHECK_DONE();
}

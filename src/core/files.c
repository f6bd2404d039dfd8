/*
 * files.c - file-system helpers (see files.h).
 */
#include "files.h"

#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int pc_mkdirs(const char *dir, mode_t mode, char *err, size_t errlen)
{
    char *p = pc_xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
            rc = -1;
            break;
        }
        *s = c;
        if (c == '\0') break;
    }
    struct stat sb;
    if (rc == 0 && (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))) {
        snprintf(err, errlen, "%s is not a directory", dir);
        rc = -1;
    }
    free(p);
    return rc;
}

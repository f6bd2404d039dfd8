/*
 * files.h - small file-system helpers shared by the components that keep files
 * under the data directory (the embedded store, the disk spool).
 */
#ifndef PC_FILES_H
#define PC_FILES_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Creates |dir| and any missing parents with |mode| (mkdir -p). Returns 0 when
 * |dir| is a directory afterwards, or -1 with a message naming the path that
 * failed in |err|.
 */
int pc_mkdirs(const char *dir, mode_t mode, char *err, size_t errlen);

#endif

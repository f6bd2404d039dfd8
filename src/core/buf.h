/*
 * buf.h - growable byte buffer, the output side of every encoder.
 *
 * Response bodies, JSON text, SQL and protobuf output are appended to a pc_buf.
 * The buffer owns its heap block; pc_buf_free releases it. data is always
 * NUL-terminated (not counted in len) so text can be used as a C string.
 */
#ifndef PC_BUF_H
#define PC_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_buf {
    char *data;
    size_t len;
    size_t cap;
} pc_buf;

#define PC_BUF_INIT {NULL, 0, 0}

void pc_buf_reserve(pc_buf *b, size_t extra);
void pc_buf_append(pc_buf *b, const void *p, size_t n);
void pc_buf_puts(pc_buf *b, const char *s);
/* Appends one byte; inline because JSON encoding calls it per punctuation mark. */
static inline void pc_buf_putc(pc_buf *b, char c)
{
    if (b->len + 2 > b->cap) pc_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}
/* Appends a string literal without strlen (the encoders' punctuation and keys). */
#define pc_buf_lit(b, lit) pc_buf_append((b), "" lit, sizeof(lit) - 1)
void pc_buf_printf(pc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pc_buf_vprintf(pc_buf *b, const char *fmt, va_list ap);
/* Empties the buffer, keeping its block. */
void pc_buf_reset(pc_buf *b);
/* Releases the block; the buffer is empty and reusable afterwards. */
void pc_buf_free(pc_buf *b);
/* Hands the block to the caller (who frees it) and empties the buffer. */
char *pc_buf_steal(pc_buf *b, size_t *len);

#endif

/*
 * buf.c - growable byte buffer (see buf.h).
 */
#include "buf.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pc_buf_reserve(pc_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = pc_xrealloc(b->data, cap);
    b->cap = cap;
    b->data[b->len] = '\0'; /* a fresh buffer is "" already, so pc_buf_steal gives a string */
}

void pc_buf_append(pc_buf *b, const void *p, size_t n)
{
    pc_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void pc_buf_puts(pc_buf *b, const char *s)
{
    pc_buf_append(b, s, strlen(s));
}

void pc_buf_vprintf(pc_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    pc_buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    if (n >= 0 && (size_t)n >= b->cap - b->len) {
        pc_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    if (n > 0) b->len += (size_t)n;
}

void pc_buf_printf(pc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pc_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void pc_buf_reset(pc_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void pc_buf_free(pc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *pc_buf_steal(pc_buf *b, size_t *len)
{
    if (!b->data) pc_buf_reserve(b, 0);
    char *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

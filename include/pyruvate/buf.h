/* struct buf: a growable byte buffer on malloc, usable without the GIL.
 * Whoever embeds a buf frees it with buf_free(). */
#ifndef PYRUVATE_BUF_H
#define PYRUVATE_BUF_H

#include <stddef.h>

struct buf {
    char *data;
    size_t len; /* bytes in use, from data[0] */
    size_t cap; /* bytes allocated */
};

/* Makes room for at least `extra` more bytes after len.
 * Returns 0, or -1 with errno = ENOMEM (the buffer is unchanged). */
int buf_reserve(struct buf *b, size_t extra);

/* Appends n bytes. Returns 0 or -1 (ENOMEM). */
int buf_append(struct buf *b, const void *bytes, size_t n);

/* Appends a NUL-terminated string without its terminator. */
int buf_append_str(struct buf *b, const char *s);

/* Drops the first n bytes, moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);

/* Gives memory back when at most a quarter of the capacity is in use,
 * keeping room for `room` more bytes. If realloc fails, b stays as it is. */
void buf_shrink(struct buf *b, size_t room);

/* Releases the memory; the buf is empty and reusable afterwards. */
void buf_free(struct buf *b);

#endif

/* Growable byte buffer used for request input and response headers. */
#include "pyruvate/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { BUF_MIN_CAPACITY = 4096 };

int buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len) {
        errno = ENOMEM;
        return -1;
    }
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : BUF_MIN_CAPACITY;
    while (cap < want)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (data == NULL) {
        errno = ENOMEM;
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *bytes, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void buf_shrink(struct buf *b, size_t room)
{
    if (b->data == NULL || room > SIZE_MAX / 2 - b->len)
        return;
    size_t want = b->len + room;
    if (want < BUF_MIN_CAPACITY)
        want = BUF_MIN_CAPACITY;
    if (b->cap / 4 < want)
        return;
    char *data = realloc(b->data, want);
    if (data == NULL)
        return;
    b->data = data;
    b->cap = want;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

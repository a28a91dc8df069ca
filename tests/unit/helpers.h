/* Test helpers: guard-page buffers, feeding a request in pieces, sockets. */
#ifndef PYRUVATE_TEST_HELPERS_H
#define PYRUVATE_TEST_HELPERS_H

#include <stddef.h>

#include "pyruvate/request.h"

/* len writable bytes whose last one sits right before a PROT_NONE page, so
 * that reading past the end faults instead of passing unnoticed. */
struct guard_buf {
    char *data;
    size_t len;
    void *_map;
    size_t _map_len;
};

/* Maps a guarded buffer of len bytes (fails the test if it cannot). */
void guard_buf_init(struct guard_buf *g, size_t len);

/* Like guard_buf_init, filled with a copy of bytes. */
void guard_buf_init_copy(struct guard_buf *g, const void *bytes, size_t len);

/* Unmaps the buffer; safe on a zeroed or already freed guard_buf. */
void guard_buf_free(struct guard_buf *g);

enum feed_mode {
    FEED_IN_PLACE, /* one buffer holds the whole input and len grows over it */
    FEED_MOVING,   /* every feed gets a fresh buffer that ends at a guard page */
};

/* Feeds input[0..len) to r as it would arrive: `first` bytes, then `step`
 * bytes at a time (0: all the rest at once). Stops at the first COMPLETE or
 * ERROR. Afterwards g holds the bytes that r's spans refer to (including any
 * in-place chunk compaction); the caller frees it. */
enum request_state feed_request(struct request *r, struct guard_buf *g, const char *input,
                                size_t len, size_t first, size_t step, enum feed_mode mode);

/* A connected AF_UNIX stream pair, both ends nonblocking and close-on-exec. */
void make_socketpair(int fds[2]);

/* Clears O_NONBLOCK so a test thread can use plain blocking reads. */
void set_blocking(int fd);

#endif

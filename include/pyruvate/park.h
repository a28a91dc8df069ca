/* struct park_set: a poll() thread holding connections whose response is
 * parked because the client stopped reading. A worker whose write would
 * block for long hands the connection (with the rest of its response in
 * c->parked) here and goes back to the pool; when the socket is writable
 * again, or its deadline (c->deadline_ms) passed, the connection goes back
 * to the pool and a worker resumes the response. No Python here: what
 * c->parked holds is the workers' business. */
#ifndef PYRUVATE_PARK_H
#define PYRUVATE_PARK_H

#include <stddef.h>

#include "pyruvate/common.h"
#include "pyruvate/conn.h"

struct park_set;

struct park_callbacks {
    /* The socket is writable, failed, or its deadline passed: hand c back
     * to the workers. Returns 0 when it took c, -1 when it cannot now (a
     * full queue, a stopping pool); then it is asked again a little later. */
    int (*ready)(struct conn *c, void *ctx);
    void *ctx;
};

/* Starts the thread. At most max_conns connections holding at most
 * max_bytes (as counted by park_add's caller) are parked at a time. NULL on
 * failure, with a message in err. */
struct park_set *park_start(const struct park_callbacks *callbacks, unsigned max_conns,
                            size_t max_bytes, char err[PYR_ERR_LEN]);

/* Takes ownership of c, which holds `bytes` of response memory. Returns 0,
 * or -1 when the set is full or stopping (the caller keeps c). */
int park_add(struct park_set *set, struct conn *c, size_t bytes);

/* Connections parked now, including those being handed back. */
unsigned park_count(struct park_set *set);

/* Stops the thread and gives every connection still held to drop(c, ctx);
 * then frees the set. Call once nothing can park any more. */
void park_stop(struct park_set *set, void (*drop)(struct conn *c, void *ctx), void *ctx);

#endif

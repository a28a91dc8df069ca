/* struct idle_set: a second poll() thread that holds keep-alive connections
 * which have been quiet for a while. poll() costs time in proportion to the
 * descriptors it watches, so thousands of idle clients in the acceptor's set
 * would slow every request; here they cost nothing until one speaks. */
#ifndef PYRUVATE_IDLE_H
#define PYRUVATE_IDLE_H

#include "pyruvate/common.h"
#include "pyruvate/conn.h"

struct idle_set;

struct idle_callbacks {
    /* A connection became readable (or hung up): back to the acceptor. */
    void (*wake)(struct conn *c, void *ctx);
    /* A connection's keep-alive deadline passed (or it was evicted): close it. */
    void (*expire)(struct conn *c, void *ctx);
    /* Evictions asked for by idle_evict were done; may be NULL. */
    void (*evicted)(void *ctx);
    void *ctx;
};

/* Starts the thread. NULL on failure, with a message in err. */
struct idle_set *idle_start(const struct idle_callbacks *callbacks, char err[PYR_ERR_LEN]);

/* Takes ownership of an idle connection (c->deadline_ms still applies).
 * Returns 0, or -1 when the set is stopping (the caller keeps c). */
int idle_add(struct idle_set *set, struct conn *c);

/* Asks the idle thread to close the connection that has been idle
 * longest, to make room for a new one; it calls expire() and then
 * evicted(). Returns 0 when one will be closed, -1 when the set holds no
 * connection that is not already due for eviction. Call from one thread
 * only (the acceptor). */
int idle_evict(struct idle_set *set);

/* For the drain at shutdown: from now on each connection is closed once it
 * has been quiet for grace_ms (those quiet longer at once), unless its
 * keep-alive deadline comes first; one that has sent bytes by then goes to
 * wake() instead, to be answered. */
void idle_drain(struct idle_set *set, int grace_ms);

/* Stops the thread; every connection still held goes to expire(). */
void idle_stop(struct idle_set *set);

#endif

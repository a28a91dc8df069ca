/* struct handoff: keep-alive connections a worker just answered, shared by
 * every worker and the acceptor, so that a client's next request is served
 * by whichever worker is free first, with no trip through the acceptor.
 *
 * Ownership: handoff_put takes a connection; whoever takes it out
 * (handoff_take_ready, handoff_take_stale, handoff_take_all, handoff_close)
 * owns it. Nobody reads or writes a connection while it is in the set.
 * No Python here. */
#ifndef PYRUVATE_HANDOFF_H
#define PYRUVATE_HANDOFF_H

#include <stdint.h>

struct conn;

/* A connection waits in the set at most about this long: then the acceptor
 * takes it back, so its deadlines apply again and a worker that runs a slow
 * request never keeps it waiting longer. */
enum { HANDOFF_MAX_MS = 2 };

/* When no worker has looked at the set for this long (the last one that
 * did runs an application, which may be slow) while another worker is
 * idle, the acceptor takes back the connections whose client sent: the
 * idle worker answers them, instead of HANDOFF_MAX_MS later. Taking back
 * every connection at once whenever the watching worker leaves the set
 * did the same for slow applications, but sent a third of all requests
 * through the acceptor at 100 busy keep-alive connections (#13: p99 2.8 ms
 * against bjoern's 1.4 ms). */
enum { HANDOFF_UNWATCHED_MS = 1 };

/* How many connections the set holds; a worker gives the rest back to the
 * acceptor at once. */
enum { HANDOFF_CAPACITY = 128 };

struct handoff;

/* NULL when out of memory. */
struct handoff *handoff_create(void);

/* Frees the set; it must be empty (handoff_close took what it held). */
void handoff_destroy(struct handoff *h);

/* Whoever takes back what nobody looks at (the acceptor) is woken through
 * wake(ctx) when a connection would otherwise wait past HANDOFF_MAX_MS.
 * Call before any handoff_put. */
void handoff_set_waker(struct handoff *h, void (*wake)(void *ctx), void *ctx);

/* Adds c (answered, nothing of its next request buffered). Returns 0, or
 * -1 when the set is full or closed: then the caller still owns c. */
int handoff_put(struct handoff *h, struct conn *c, int64_t now_ms);

/* Takes out a connection whose client sent something (or hung up), looking
 * without waiting; NULL when none did. */
struct conn *handoff_take_ready(struct handoff *h);

enum handoff_wait {
    HANDOFF_TIMED_OUT,         /* nothing came (or the set is empty) */
    HANDOFF_LOOK_AGAIN,        /* a client sent, but another thread took it */
    HANDOFF_WATCHED_ELSEWHERE, /* another thread waits on the set already */
    HANDOFF_WOKEN,             /* handoff_wake_watcher: look at the pool's queue first */
};

/* Waits up to timeout_ms (without holding the set, and only one thread at
 * a time) until a client of a connection in the set sends, or
 * handoff_wake_watcher; takes out a connection whose client sent, unless
 * woken. NULL otherwise, with *outcome saying why. */
struct conn *handoff_wait_ready(struct handoff *h, int timeout_ms, enum handoff_wait *outcome);

/* A request was queued for the pool that no idle worker will take: the
 * thread waiting in handoff_wait_ready (if any) stops waiting, takes no
 * connection, and says HANDOFF_WOKEN, so that it serves the queued request
 * before any later one from the set. */
void handoff_wake_watcher(struct handoff *h);

/* Called before a thread stops looking at the set for a while (a worker
 * about to run an application): from now on nobody looks at the set, and
 * the acceptor is woken unless it looks at the set anyway in time (before
 * the oldest connection waited HANDOFF_MAX_MS, or the set went unwatched
 * for HANDOFF_UNWATCHED_MS). */
void handoff_cover(struct handoff *h, int64_t now_ms);

/* The acceptor, before it sleeps: takes out the connections that waited
 * HANDOFF_MAX_MS or more and, while a worker is idle (idle_worker) and
 * nobody looked at the set for HANDOFF_UNWATCHED_MS, those whose client
 * sent (all linked through c->next). Sets *sleep_ms to how long it may
 * sleep before it must look again (`longest` when nothing waits),
 * remembering when it will look. */
struct conn *handoff_take_stale(struct handoff *h, int64_t now_ms, int idle_worker, int longest,
                                int *sleep_ms);

/* Takes out every connection (linked through c->next). */
struct conn *handoff_take_all(struct handoff *h);

/* Takes out every connection and refuses handoff_put from now on (the
 * drain, and the acceptor's end). */
struct conn *handoff_close(struct handoff *h);

/* Connections in the set now (a snapshot). */
unsigned handoff_count(struct handoff *h);

#endif

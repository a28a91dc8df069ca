/* struct pool: a bounded queue of work items served by N pthreads that run
 * a C callback. No Python here; the callbacks bring it in. */
#ifndef PYRUVATE_POOL_H
#define PYRUVATE_POOL_H

#include "pyruvate/common.h"

struct pool;

struct pool_callbacks {
    /* Runs first on each new thread (index 1..N). Returns the thread's own
     * state, passed to handle and thread_stop; NULL fails pool_create. */
    void *(*thread_start)(void *ctx, unsigned index);
    /* Optional, both or neither: a woken thread calls acquire before it
     * takes an item and release after handle (or at once when the queue
     * turned out empty meanwhile). For a lock every item needs (the GIL):
     * a thread waiting for it then holds no item, and the thread that has
     * it can drain the queue with pool_try_take, so no item waits in the
     * hands of a thread that cannot run it. */
    void (*acquire)(void *thread_state);
    void (*release)(void *thread_state);
    /* Runs one item; the callback owns the item from here on. */
    void (*handle)(void *thread_state, void *item);
    /* Runs last on each thread, after its final item. */
    void (*thread_stop)(void *thread_state);
    /* Optional: called (without the pool's mutex, from pool_submit) when an
     * item was queued that no idle thread will take while a thread watches
     * (pool_watching): that thread should stop watching and take it. */
    void (*wake_watching)(void *ctx);
    /* Optional: a woken thread waits while another computes in a request
     * (room.h) before it takes the callbacks' lock. It outlives the pool. */
    struct room *room;
    void *ctx;
};

/* Starts `threads` threads named "<name>-1".."<name>-N" and returns once all
 * ran thread_start. NULL on failure, with a message in err. */
struct pool *pool_create(const char *name, unsigned threads, unsigned capacity,
                         const struct pool_callbacks *callbacks, char err[PYR_ERR_LEN]);

/* Queues an item for a worker; takes ownership of it on success.
 * Returns 0, or -1 with errno EAGAIN (queue full) or ECANCELED (stopping):
 * then the caller still owns the item. */
int pool_submit(struct pool *pool, void *item);

/* Takes a queued item without waiting, for a thread that is free and wants
 * to go on; NULL when the queue is empty. The caller owns the item. */
void *pool_try_take(struct pool *pool);

/* True when the queue is empty and another thread sits idle: then a thread
 * may spend a moment on something else without delaying any item. */
int pool_has_spare_thread(struct pool *pool);

/* A thread in handle() that waits a moment for other work (a worker on
 * its handoff set) counts delta (+1 before, -1 after) as able to take an
 * item soon: pool_submit does not refuse an item for it. */
void pool_watching(struct pool *pool, int delta);

/* Called from handle() on pool thread `index` (thread_start's): finishing
 * 1 when it is done with its item and looks for the next, 0 once it has
 * the next (the pool sets 0 itself when handle returns). Meanwhile it
 * counts as able to take an item soon: its client may already have sent
 * its next request, and pool_submit must not refuse one for it.
 * Lock-free; idempotent. */
void pool_finishing(struct pool *pool, unsigned index, int finishing);

/* Items waiting for a worker. */
unsigned pool_queued(struct pool *pool);

/* Items queued or in a thread's hands now: 0 when every thread is idle. */
unsigned pool_busy(struct pool *pool);

/* The threads answering an item now and those waiting for one. A thread
 * woken for an item but not yet running counts as waiting until it is
 * scheduled, then as answering (also while it takes the callbacks' lock);
 * the item counts as queued until the thread takes it, except for
 * pool_submit's limit and pool_queued, which leave it out. */
void pool_threads(struct pool *pool, unsigned *busy, unsigned *idle);

/* Asks the threads to finish the queued items and exit. */
void pool_stop(struct pool *pool);

/* Waits up to timeout_ms (negative: forever) for all threads to exit.
 * Returns 0 when all did, -1 when some still run. */
int pool_join(struct pool *pool, int timeout_ms);

/* Frees a joined pool. Items still queued go to drop(item, ctx). */
void pool_destroy(struct pool *pool, void (*drop)(void *item, void *ctx), void *ctx);

#endif

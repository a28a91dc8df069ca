/* A worker: one pool thread's Python side (struct worker is in
 * worker_state.h). Each worker owns one PyThreadState for its whole life, so
 * threading.local() values (and with them Zope's per-thread ZODB
 * connections) survive between requests. */
#ifndef PYRUVATE_WORKER_H
#define PYRUVATE_WORKER_H

#include "pyruvate/worker_state.h"

/* Pool callbacks (ctx is the struct server). */
void *worker_thread_start(void *ctx, unsigned index);
void worker_acquire(void *worker); /* takes the GIL */
void worker_release(void *worker); /* lets go of it */
void worker_handle(void *worker, void *conn);
void worker_thread_stop(void *worker);

#endif

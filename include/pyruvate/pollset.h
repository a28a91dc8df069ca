/* struct pollset: the growable poll() array of one poll thread (the
 * acceptor, the idle set, the park set): descriptors and, slot by slot,
 * the connection each belongs to (NULL for a wake-up fd or a listener).
 *
 * struct poll_thread: what the idle and park sets share around their own
 * decisions: the thread, its wake-up eventfd (slot 0 of its pollset), and
 * the list of connections other threads handed it since its last round. */
#ifndef PYRUVATE_POLLSET_H
#define PYRUVATE_POLLSET_H

#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "pyruvate/conn.h"

struct pollset_slot {
    struct conn *conn;
    size_t bytes; /* what the owner noted for the slot (the park set: memory held) */
};

/* Owned by one thread; zero-initialised is empty. */
struct pollset {
    struct pollfd *fds;
    struct pollset_slot *slots;
    unsigned nfds, capacity;
};

/* Adds fd, watched for events, with its connection. Returns the slot, or
 * -1 when out of memory (the set is unchanged). */
int pollset_add(struct pollset *set, int fd, short events, struct conn *c);

/* Removes slot i by moving the last slot into it (so walk the set
 * backwards while taking). Returns the connection that was in slot i. */
struct conn *pollset_take(struct pollset *set, unsigned i);

/* Frees the arrays; the set is empty afterwards. */
void pollset_free(struct pollset *set);

struct poll_thread {
    pthread_t thread;
    int wake_fd;
    /* Guards incoming and stopping, and whatever the owner counts in its
     * admit callback (poll_thread_add). */
    pthread_mutex_t mutex;
    struct conn *incoming; /* under mutex; linked by c->next */
    int stopping;          /* under mutex */
    struct pollset polls;  /* the thread's own; slot 0 is wake_fd */
};

/* Starts main(arg) on its own thread, with *pt (zero-initialised) ready
 * for it. Returns 0, or -1 with nothing left to free. */
int poll_thread_start(struct poll_thread *pt, void *(*main)(void *), void *arg);

/* Hands c to the thread; it finds it in its next round's incoming list.
 * admit (may be NULL) runs under the mutex first and may refuse c with -1.
 * Returns 0 (the thread owns c), or -1 when stopping or refused (the
 * caller keeps c). Thread-safe. */
int poll_thread_add(struct poll_thread *pt, struct conn *c, int (*admit)(struct conn *c, void *ctx),
                    void *ctx);

/* On the thread: puts c back on the incoming list, for the next round. */
void poll_thread_requeue(struct poll_thread *pt, struct conn *c);

/* On the thread, one round: waits up to wait_ms (negative: not at all) for
 * the pollset, takes the wake-ups, and moves the connections handed over
 * since the last round to *incoming and the stop request to *stopping.
 * Returns poll()'s count (0 after a signal), or -1 when poll() failed and
 * nothing was taken: go round again. */
int poll_thread_wait(struct poll_thread *pt, int64_t wait_ms, struct conn **incoming,
                     int *stopping);

/* Takes the first connection off a list linked by c->next; NULL at its end. */
struct conn *poll_thread_pop(struct conn **list);

/* Stops and joins the thread (its main returns once it sees stopping),
 * gives every connection still in the pollset or the incoming list to
 * drop(c, ctx), and frees what poll_thread_start made. */
void poll_thread_stop(struct poll_thread *pt, void (*drop)(struct conn *c, void *ctx), void *ctx);

#endif

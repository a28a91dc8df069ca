/* The park set: connections whose client stopped reading, watched for
 * POLLOUT by their own poll() thread, so that no worker waits for them. */
#include "pyruvate/park.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "pyruvate/pollset.h"

/* How soon a connection the workers could not take is offered again, and
 * how often deadlines are checked. */
enum { PARK_RETRY_MS = 20, PARK_SWEEP_MS = 250 };

struct park_set {
    struct park_callbacks callbacks;
    unsigned max_conns;
    size_t max_bytes;
    unsigned count; /* under pt.mutex: parked, incoming or in the set */
    size_t bytes;   /* under pt.mutex: what park_add's callers said they hold */

    /* pt.polls is the park thread's; slot 0 is the wake-up fd. A slot's
     * bytes are its connection's park_bytes, kept here because the
     * connection belongs to a worker again once handed back. */
    struct poll_thread pt;
};

static void *park_main(void *arg);

struct park_set *park_start(const struct park_callbacks *callbacks, unsigned max_conns,
                            size_t max_bytes, char err[PYR_ERR_LEN])
{
    struct park_set *set = calloc(1, sizeof(*set));
    if (set == NULL)
        goto fail;
    set->callbacks = *callbacks;
    set->max_conns = max_conns;
    set->max_bytes = max_bytes;
    if (poll_thread_start(&set->pt, park_main, set) < 0)
        goto fail;
    return set;
fail:
    snprintf(err, PYR_ERR_LEN, "cannot start the parked response thread");
    free(set);
    return NULL;
}

/* Under pt.mutex: is there room for c and the bytes it holds? */
static int admit(struct conn *c, void *arg)
{
    struct park_set *set = arg;
    if (set->count >= set->max_conns || c->park_bytes > set->max_bytes - set->bytes)
        return -1;
    set->count++;
    set->bytes += c->park_bytes;
    return 0;
}

int park_add(struct park_set *set, struct conn *c, size_t bytes)
{
    size_t before = c->park_bytes;
    c->park_bytes = bytes;
    if (poll_thread_add(&set->pt, c, admit, set) < 0) {
        c->park_bytes = before; /* the caller keeps c as it was */
        return -1;
    }
    return 0;
}

unsigned park_count(struct park_set *set)
{
    pthread_mutex_lock(&set->pt.mutex);
    unsigned count = set->count;
    pthread_mutex_unlock(&set->pt.mutex);
    return count;
}

/* Forgets a connection that has left the set. */
static void release(struct park_set *set, size_t bytes)
{
    pthread_mutex_lock(&set->pt.mutex);
    set->count--;
    set->bytes -= bytes;
    pthread_mutex_unlock(&set->pt.mutex);
}

void park_stop(struct park_set *set, void (*drop)(struct conn *c, void *ctx), void *ctx)
{
    poll_thread_stop(&set->pt, drop, ctx);
    free(set);
}

static int append(struct park_set *set, struct conn *c)
{
    int slot = pollset_add(&set->pt.polls, c->fd, POLLOUT, c);
    if (slot < 0)
        return -1;
    set->pt.polls.slots[slot].bytes = c->park_bytes;
    return 0;
}

/* Offers slot i to the workers; on success the slot is taken out (the last
 * one moves into it). A refusal leaves it in place, unwatched until the
 * next retry. Returns 1 when it was taken. */
static int hand_back(struct park_set *set, unsigned i)
{
    struct pollset *polls = &set->pt.polls;
    struct conn *c = polls->slots[i].conn;
    size_t bytes = polls->slots[i].bytes;
    if (set->callbacks.ready(c, set->callbacks.ctx) < 0) {
        polls->fds[i].events = 0;
        return 0;
    }
    pollset_take(polls, i);
    release(set, bytes);
    return 1;
}

/* Takes in the connections handed over since the last round. One that
 * cannot be watched (no memory) goes back to the workers, or else waits
 * for a later round. Returns 1 when one waits. */
static int take_incoming(struct park_set *set, struct conn *incoming)
{
    int retrying = 0;
    for (struct conn *c; (c = poll_thread_pop(&incoming)) != NULL;) {
        if (append(set, c) == 0)
            continue;
        size_t bytes = c->park_bytes;
        if (set->callbacks.ready(c, set->callbacks.ctx) == 0) {
            release(set, bytes);
            continue;
        }
        poll_thread_requeue(&set->pt, c);
        retrying = 1;
    }
    return retrying;
}

static void *park_main(void *arg)
{
    struct park_set *set = arg;
    struct pollset *polls = &set->pt.polls;
    int64_t next_sweep = monotonic_ms() + PARK_SWEEP_MS;
    int retrying = 0;
    for (;;) {
        /* A refused slot is not watched (its POLLOUT would spin): it is
         * offered again after PARK_RETRY_MS. */
        struct conn *incoming;
        int stopping;
        int n = poll_thread_wait(&set->pt, retrying ? PARK_RETRY_MS : next_sweep - monotonic_ms(),
                                 &incoming, &stopping);
        if (n < 0)
            continue;
        if (take_incoming(set, incoming))
            retrying = 1;
        if (stopping)
            return NULL;
        int64_t now = monotonic_ms();
        int sweep = now >= next_sweep;
        if (sweep)
            next_sweep = now + PARK_SWEEP_MS;
        int still_retrying = 0;
        /* Backwards, so the slot moved into i has been looked at already. */
        for (unsigned i = polls->nfds; i-- > 1;) {
            struct pollfd *p = &polls->fds[i];
            int due = (n > 0 && (p->revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL))) ||
                      (retrying && p->events == 0) ||
                      (sweep && now >= polls->slots[i].conn->deadline_ms);
            if (!due)
                continue;
            if (!hand_back(set, i))
                still_retrying = 1;
        }
        retrying = still_retrying;
    }
}

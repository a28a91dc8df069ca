/* The idle set: quiet keep-alive connections, watched by their own poll()
 * thread and handed back to the acceptor when they speak. */
#include "pyruvate/idle.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "pyruvate/pollset.h"
#include "pyruvate/wakeup.h"

/* How often deadlines are checked; idle connections need no precision. */
enum { IDLE_SWEEP_MS = 500 };
/* While draining, closing on time shortens the shutdown. */
enum { DRAIN_SWEEP_MS = 100 };

struct idle_set {
    struct idle_callbacks callbacks;
    struct poll_thread pt;
    int64_t drain_start_ms; /* under pt.mutex: idle_drain's call; 0 when not draining */
    int drain_grace_ms;     /* under pt.mutex */

    atomic_uint held;          /* connections in incoming or in the set */
    atomic_uint evict_pending; /* evictions asked for and not yet done */
};

static void *idle_main(void *arg);

struct idle_set *idle_start(const struct idle_callbacks *callbacks, char err[PYR_ERR_LEN])
{
    struct idle_set *set = calloc(1, sizeof(*set));
    if (set == NULL)
        goto fail;
    set->callbacks = *callbacks;
    if (poll_thread_start(&set->pt, idle_main, set) < 0)
        goto fail;
    return set;
fail:
    snprintf(err, PYR_ERR_LEN, "cannot start the idle connection thread");
    free(set);
    return NULL;
}

/* Under pt.mutex: every connection handed over counts as held. */
static int admit(struct conn *c, void *set)
{
    (void)c;
    atomic_fetch_add(&((struct idle_set *)set)->held, 1);
    return 0;
}

int idle_add(struct idle_set *set, struct conn *c)
{
    return poll_thread_add(&set->pt, c, admit, set);
}

int idle_evict(struct idle_set *set)
{
    /* One caller (the acceptor), so this check and the add cannot race. */
    if (atomic_load(&set->held) <= atomic_load(&set->evict_pending))
        return -1;
    atomic_fetch_add(&set->evict_pending, 1);
    wakeup_signal(set->pt.wake_fd);
    return 0;
}

void idle_drain(struct idle_set *set, int grace_ms)
{
    pthread_mutex_lock(&set->pt.mutex);
    set->drain_start_ms = monotonic_ms();
    set->drain_grace_ms = grace_ms;
    pthread_mutex_unlock(&set->pt.mutex);
    wakeup_signal(set->pt.wake_fd);
}

static void expire(struct conn *c, void *set)
{
    struct idle_set *idle = set;
    idle->callbacks.expire(c, idle->callbacks.ctx);
}

void idle_stop(struct idle_set *set)
{
    poll_thread_stop(&set->pt, expire, set);
    free(set);
}

/* Removes slot i by moving the last one into it. */
static struct conn *take_slot(struct idle_set *set, unsigned i)
{
    atomic_fetch_sub(&set->held, 1);
    return pollset_take(&set->pt.polls, i);
}

/* Closes the count connections that have been idle longest. */
static void evict_oldest(struct idle_set *set, unsigned count)
{
    unsigned evicted = 0;
    struct pollset *polls = &set->pt.polls;
    while (evicted < count && polls->nfds > 1) {
        unsigned oldest = 1;
        for (unsigned i = 2; i < polls->nfds; i++)
            if (polls->slots[i].conn->idle_since_ms < polls->slots[oldest].conn->idle_since_ms)
                oldest = i;
        struct conn *c = take_slot(set, oldest);
        if (conn_has_unread_input(c)) {
            /* Spoke after this round's poll(): not idle. */
            set->callbacks.wake(c, set->callbacks.ctx);
            continue;
        }
        set->callbacks.expire(c, set->callbacks.ctx);
        evicted++;
    }
    if (evicted > 0 && set->callbacks.evicted)
        set->callbacks.evicted(set->callbacks.ctx);
}

/* When c is to be closed: its keep-alive deadline, and while draining at
 * the latest drain_grace_ms after it went quiet (but not before the drain
 * began). */
static int64_t closing_time(const struct conn *c, int64_t drain_start_ms, int drain_grace_ms)
{
    if (drain_start_ms == 0)
        return c->deadline_ms;
    int64_t drained = c->idle_since_ms + drain_grace_ms;
    if (drained < drain_start_ms)
        drained = drain_start_ms;
    return drained < c->deadline_ms ? drained : c->deadline_ms;
}

/* Closes the connections whose time has come; one that spoke meanwhile
 * goes back to the acceptor instead, so that its request is answered. */
static void sweep(struct idle_set *set, int64_t now, int64_t drain_start_ms, int drain_grace_ms)
{
    struct pollset *polls = &set->pt.polls;
    for (unsigned i = polls->nfds; i-- > 1;) {
        const struct conn *c = polls->slots[i].conn;
        if (now < closing_time(c, drain_start_ms, drain_grace_ms))
            continue;
        struct conn *due = take_slot(set, i);
        if (drain_start_ms && conn_has_unread_input(due))
            set->callbacks.wake(due, set->callbacks.ctx);
        else
            set->callbacks.expire(due, set->callbacks.ctx);
    }
}

static void *idle_main(void *arg)
{
    struct idle_set *set = arg;
    struct pollset *polls = &set->pt.polls;
    int64_t next_sweep = monotonic_ms() + IDLE_SWEEP_MS;
    int swept_draining = 0;
    for (;;) {
        struct conn *incoming;
        int stopping;
        int n = poll_thread_wait(&set->pt, next_sweep - monotonic_ms(), &incoming, &stopping);
        if (n < 0)
            continue;
        pthread_mutex_lock(&set->pt.mutex);
        int64_t drain_start_ms = set->drain_start_ms;
        int drain_grace_ms = set->drain_grace_ms;
        pthread_mutex_unlock(&set->pt.mutex);
        for (struct conn *c; (c = poll_thread_pop(&incoming)) != NULL;) {
            if (pollset_add(polls, c->fd, POLLIN, c) < 0) {
                atomic_fetch_sub(&set->held, 1);
                set->callbacks.expire(c, set->callbacks.ctx);
            }
        }
        if (stopping)
            return NULL;
        /* Backwards, so the slot moved into i has been looked at already. */
        for (unsigned i = polls->nfds; n > 0 && i-- > 1;)
            if (polls->fds[i].revents)
                set->callbacks.wake(take_slot(set, i), set->callbacks.ctx);
        /* After the wake-ups: a connection that just spoke is not idle. */
        unsigned evictions = atomic_load(&set->evict_pending);
        if (evictions > 0) {
            evict_oldest(set, evictions);
            atomic_fetch_sub(&set->evict_pending, evictions);
        }
        int64_t now = monotonic_ms();
        /* The first round of a drain sweeps at once. */
        if (now >= next_sweep || (drain_start_ms && !swept_draining)) {
            sweep(set, now, drain_start_ms, drain_grace_ms);
            swept_draining = drain_start_ms != 0;
            next_sweep = now + (drain_start_ms ? DRAIN_SWEEP_MS : IDLE_SWEEP_MS);
        }
    }
}

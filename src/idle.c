/* The idle set: quiet keep-alive connections, watched by their own poll()
 * thread and handed back to the acceptor when they speak. */
#include "pyruvate/idle.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pyruvate/pollset.h"
#include "pyruvate/wakeup.h"

/* How often deadlines are checked; idle connections need no precision. */
enum { IDLE_SWEEP_MS = 500 };
/* While draining, closing on time shortens the shutdown. */
enum { DRAIN_SWEEP_MS = 100 };

struct idle_set {
    struct idle_callbacks callbacks;
    pthread_t thread;
    int wake_fd;

    pthread_mutex_t mutex;
    struct conn *incoming;  /* under mutex */
    int stopping;           /* under mutex */
    int64_t drain_start_ms; /* under mutex: idle_drain's call; 0 when not draining */
    int drain_grace_ms;     /* under mutex */

    atomic_uint held;          /* connections in incoming or in the set */
    atomic_uint evict_pending; /* evictions asked for and not yet done */

    struct pollset polls; /* idle thread only; slot 0 is wake_fd */
};

static void *idle_main(void *arg);

struct idle_set *idle_start(const struct idle_callbacks *callbacks, char err[PYR_ERR_LEN])
{
    struct idle_set *set = calloc(1, sizeof(*set));
    if (set == NULL)
        goto fail;
    set->callbacks = *callbacks;
    set->wake_fd = wakeup_open();
    if (set->wake_fd < 0 || pollset_add(&set->polls, set->wake_fd, POLLIN, NULL) < 0)
        goto fail;
    pthread_mutex_init(&set->mutex, NULL);
    if (pthread_create(&set->thread, NULL, idle_main, set) != 0) {
        pthread_mutex_destroy(&set->mutex);
        goto fail;
    }
    return set;
fail:
    snprintf(err, PYR_ERR_LEN, "cannot start the idle connection thread");
    if (set) {
        if (set->wake_fd >= 0)
            close(set->wake_fd);
        pollset_free(&set->polls);
        free(set);
    }
    return NULL;
}

int idle_add(struct idle_set *set, struct conn *c)
{
    pthread_mutex_lock(&set->mutex);
    if (set->stopping) {
        pthread_mutex_unlock(&set->mutex);
        return -1;
    }
    int was_empty = set->incoming == NULL;
    atomic_fetch_add(&set->held, 1);
    c->next = set->incoming;
    set->incoming = c;
    pthread_mutex_unlock(&set->mutex);
    if (was_empty) {
        wakeup_signal(set->wake_fd);
    }
    return 0;
}

int idle_evict(struct idle_set *set)
{
    /* One caller (the acceptor), so this check and the add cannot race. */
    if (atomic_load(&set->held) <= atomic_load(&set->evict_pending))
        return -1;
    atomic_fetch_add(&set->evict_pending, 1);
    wakeup_signal(set->wake_fd);
    return 0;
}

void idle_drain(struct idle_set *set, int grace_ms)
{
    pthread_mutex_lock(&set->mutex);
    set->drain_start_ms = monotonic_ms();
    set->drain_grace_ms = grace_ms;
    pthread_mutex_unlock(&set->mutex);
    wakeup_signal(set->wake_fd);
}

void idle_stop(struct idle_set *set)
{
    pthread_mutex_lock(&set->mutex);
    set->stopping = 1;
    pthread_mutex_unlock(&set->mutex);
    wakeup_signal(set->wake_fd);
    pthread_join(set->thread, NULL);
    for (unsigned i = 1; i < set->polls.nfds; i++)
        set->callbacks.expire(set->polls.slots[i].conn, set->callbacks.ctx);
    for (struct conn *c = set->incoming, *next; c; c = next) {
        next = c->next;
        c->next = NULL;
        set->callbacks.expire(c, set->callbacks.ctx);
    }
    pthread_mutex_destroy(&set->mutex);
    close(set->wake_fd);
    pollset_free(&set->polls);
    free(set);
}

static int append(struct idle_set *set, struct conn *c)
{
    return pollset_add(&set->polls, c->fd, POLLIN, c) < 0 ? -1 : 0;
}

/* Removes slot i by moving the last one into it. */
static struct conn *take_slot(struct idle_set *set, unsigned i)
{
    atomic_fetch_sub(&set->held, 1);
    return pollset_take(&set->polls, i);
}

/* Closes the count connections that have been idle longest. */
static void evict_oldest(struct idle_set *set, unsigned count)
{
    unsigned evicted = 0;
    while (evicted < count && set->polls.nfds > 1) {
        unsigned oldest = 1;
        for (unsigned i = 2; i < set->polls.nfds; i++)
            if (set->polls.slots[i].conn->idle_since_ms <
                set->polls.slots[oldest].conn->idle_since_ms)
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
    for (unsigned i = set->polls.nfds; i-- > 1;) {
        const struct conn *c = set->polls.slots[i].conn;
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
    int64_t next_sweep = monotonic_ms() + IDLE_SWEEP_MS;
    int swept_draining = 0;
    for (;;) {
        int64_t wait = next_sweep - monotonic_ms();
        int n = poll(set->polls.fds, set->polls.nfds, wait < 0 ? 0 : (int)wait);
        if (n < 0 && errno != EINTR)
            continue;
        if (set->polls.fds[0].revents) {
            wakeup_drain(set->wake_fd);
        }
        pthread_mutex_lock(&set->mutex);
        struct conn *incoming = set->incoming;
        set->incoming = NULL;
        int stopping = set->stopping;
        int64_t drain_start_ms = set->drain_start_ms;
        int drain_grace_ms = set->drain_grace_ms;
        pthread_mutex_unlock(&set->mutex);
        for (struct conn *c = incoming, *next; c; c = next) {
            next = c->next;
            c->next = NULL;
            if (append(set, c) < 0) {
                atomic_fetch_sub(&set->held, 1);
                set->callbacks.expire(c, set->callbacks.ctx);
            }
        }
        if (stopping)
            return NULL;
        /* Backwards, so the slot moved into i has been looked at already. */
        for (unsigned i = set->polls.nfds; n > 0 && i-- > 1;)
            if (set->polls.fds[i].revents)
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

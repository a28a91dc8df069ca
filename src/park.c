/* The park set: connections whose client stopped reading, watched for
 * POLLOUT by their own poll() thread, so that no worker waits for them. */
#include "pyruvate/park.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pyruvate/pollset.h"
#include "pyruvate/wakeup.h"

/* How soon a connection the workers could not take is offered again, and
 * how often deadlines are checked. */
enum { PARK_RETRY_MS = 20, PARK_SWEEP_MS = 250 };

struct park_set {
    struct park_callbacks callbacks;
    pthread_t thread;
    int wake_fd;
    unsigned max_conns;
    size_t max_bytes;

    pthread_mutex_t mutex;
    struct conn *incoming; /* under mutex */
    unsigned count;        /* under mutex: parked, incoming or in the set */
    size_t bytes;          /* under mutex: what park_add's callers said they hold */
    int stopping;          /* under mutex */

    /* park thread only; slot 0 is wake_fd. A slot's bytes are its
     * connection's park_bytes, kept here because the connection belongs to
     * a worker again once handed back. */
    struct pollset polls;
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
    set->wake_fd = wakeup_open();
    if (set->wake_fd < 0 || pollset_add(&set->polls, set->wake_fd, POLLIN, NULL) < 0)
        goto fail;
    pthread_mutex_init(&set->mutex, NULL);
    if (pthread_create(&set->thread, NULL, park_main, set) != 0) {
        pthread_mutex_destroy(&set->mutex);
        goto fail;
    }
    return set;
fail:
    snprintf(err, PYR_ERR_LEN, "cannot start the parked response thread");
    if (set) {
        if (set->wake_fd >= 0)
            close(set->wake_fd);
        pollset_free(&set->polls);
        free(set);
    }
    return NULL;
}

static void wake(struct park_set *set)
{
    wakeup_signal(set->wake_fd);
}

int park_add(struct park_set *set, struct conn *c, size_t bytes)
{
    pthread_mutex_lock(&set->mutex);
    if (set->stopping || set->count >= set->max_conns || bytes > set->max_bytes - set->bytes) {
        pthread_mutex_unlock(&set->mutex);
        return -1;
    }
    set->count++;
    set->bytes += bytes;
    c->park_bytes = bytes;
    int was_empty = set->incoming == NULL;
    c->next = set->incoming;
    set->incoming = c;
    pthread_mutex_unlock(&set->mutex);
    if (was_empty)
        wake(set);
    return 0;
}

unsigned park_count(struct park_set *set)
{
    pthread_mutex_lock(&set->mutex);
    unsigned count = set->count;
    pthread_mutex_unlock(&set->mutex);
    return count;
}

/* Forgets c, which has left the set. */
static void release(struct park_set *set, size_t bytes)
{
    pthread_mutex_lock(&set->mutex);
    set->count--;
    set->bytes -= bytes;
    pthread_mutex_unlock(&set->mutex);
}

void park_stop(struct park_set *set, void (*drop)(struct conn *c, void *ctx), void *ctx)
{
    pthread_mutex_lock(&set->mutex);
    set->stopping = 1;
    pthread_mutex_unlock(&set->mutex);
    wake(set);
    pthread_join(set->thread, NULL);
    for (unsigned i = 1; i < set->polls.nfds; i++)
        drop(set->polls.slots[i].conn, ctx);
    for (struct conn *c = set->incoming, *next; c; c = next) {
        next = c->next;
        c->next = NULL;
        drop(c, ctx);
    }
    pthread_mutex_destroy(&set->mutex);
    close(set->wake_fd);
    pollset_free(&set->polls);
    free(set);
}

static int append(struct park_set *set, struct conn *c)
{
    int slot = pollset_add(&set->polls, c->fd, POLLOUT, c);
    if (slot < 0)
        return -1;
    set->polls.slots[slot].bytes = c->park_bytes;
    return 0;
}

/* Offers slot i to the workers; on success the slot is taken out (the last
 * one moves into it). A refusal leaves it in place, unwatched until the
 * next retry. Returns 1 when it was taken. */
static int hand_back(struct park_set *set, unsigned i)
{
    struct conn *c = set->polls.slots[i].conn;
    size_t bytes = set->polls.slots[i].bytes;
    if (set->callbacks.ready(c, set->callbacks.ctx) < 0) {
        set->polls.fds[i].events = 0;
        return 0;
    }
    pollset_take(&set->polls, i);
    release(set, bytes);
    return 1;
}

static void *park_main(void *arg)
{
    struct park_set *set = arg;
    int64_t next_sweep = monotonic_ms() + PARK_SWEEP_MS;
    int retrying = 0;
    for (;;) {
        /* A refused slot is not watched (its POLLOUT would spin): it is
         * offered again after PARK_RETRY_MS. */
        int64_t wait = retrying ? PARK_RETRY_MS : next_sweep - monotonic_ms();
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
        pthread_mutex_unlock(&set->mutex);
        for (struct conn *c = incoming, *next; c; c = next) {
            next = c->next;
            c->next = NULL;
            if (append(set, c) < 0) {
                /* No memory to watch it: back to the workers, or later. */
                size_t bytes = c->park_bytes;
                if (set->callbacks.ready(c, set->callbacks.ctx) == 0) {
                    release(set, bytes);
                    continue;
                }
                pthread_mutex_lock(&set->mutex);
                c->next = set->incoming;
                set->incoming = c;
                pthread_mutex_unlock(&set->mutex);
                retrying = 1;
            }
        }
        if (stopping)
            return NULL;
        int64_t now = monotonic_ms();
        int sweep = now >= next_sweep;
        if (sweep)
            next_sweep = now + PARK_SWEEP_MS;
        int still_retrying = 0;
        /* Backwards, so the slot moved into i has been looked at already. */
        for (unsigned i = set->polls.nfds; i-- > 1;) {
            struct pollfd *p = &set->polls.fds[i];
            int due = (n > 0 && (p->revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL))) ||
                      (retrying && p->events == 0) ||
                      (sweep && now >= set->polls.slots[i].conn->deadline_ms);
            if (!due)
                continue;
            if (!hand_back(set, i))
                still_retrying = 1;
        }
        retrying = still_retrying;
    }
}

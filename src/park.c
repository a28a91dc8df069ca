/* The park set: connections whose client stopped reading, watched for
 * POLLOUT by their own poll() thread, so that no worker waits for them. */
#include "pyruvate/park.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

    /* park thread only; slot 0 is wake_fd */
    struct pollfd *fds;
    struct conn **conns;
    size_t *held; /* bytes per slot */
    unsigned nfds, capacity;
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
    set->capacity = 64;
    set->fds = malloc(set->capacity * sizeof(*set->fds));
    set->conns = malloc(set->capacity * sizeof(*set->conns));
    set->held = malloc(set->capacity * sizeof(*set->held));
    set->wake_fd = wakeup_open();
    if (set->fds == NULL || set->conns == NULL || set->held == NULL || set->wake_fd < 0)
        goto fail;
    set->fds[0] = (struct pollfd){.fd = set->wake_fd, .events = POLLIN};
    set->conns[0] = NULL;
    set->held[0] = 0;
    set->nfds = 1;
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
        free(set->fds);
        free(set->conns);
        free(set->held);
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
    for (unsigned i = 1; i < set->nfds; i++)
        drop(set->conns[i], ctx);
    for (struct conn *c = set->incoming, *next; c; c = next) {
        next = c->next;
        c->next = NULL;
        drop(c, ctx);
    }
    pthread_mutex_destroy(&set->mutex);
    close(set->wake_fd);
    free(set->fds);
    free(set->conns);
    free(set->held);
    free(set);
}

static int append(struct park_set *set, struct conn *c)
{
    if (set->nfds == set->capacity) {
        unsigned capacity = set->capacity * 2;
        struct pollfd *fds = realloc(set->fds, capacity * sizeof(*fds));
        if (fds == NULL)
            return -1;
        set->fds = fds;
        struct conn **conns = realloc(set->conns, capacity * sizeof(*conns));
        if (conns == NULL)
            return -1;
        set->conns = conns;
        size_t *held = realloc(set->held, capacity * sizeof(*held));
        if (held == NULL)
            return -1;
        set->held = held;
        set->capacity = capacity;
    }
    set->fds[set->nfds] = (struct pollfd){.fd = c->fd, .events = POLLOUT};
    set->conns[set->nfds] = c;
    set->held[set->nfds] = c->park_bytes;
    set->nfds++;
    return 0;
}

/* Offers slot i to the workers; on success the slot is taken out (the last
 * one moves into it). A refusal leaves it in place, unwatched until the
 * next retry. Returns 1 when it was taken. */
static int hand_back(struct park_set *set, unsigned i)
{
    struct conn *c = set->conns[i];
    size_t bytes = set->held[i];
    if (set->callbacks.ready(c, set->callbacks.ctx) < 0) {
        set->fds[i].events = 0;
        return 0;
    }
    set->nfds--;
    set->fds[i] = set->fds[set->nfds];
    set->conns[i] = set->conns[set->nfds];
    set->held[i] = set->held[set->nfds];
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
        int n = poll(set->fds, set->nfds, wait < 0 ? 0 : (int)wait);
        if (n < 0 && errno != EINTR)
            continue;
        if (set->fds[0].revents) {
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
        for (unsigned i = set->nfds; i-- > 1;) {
            struct pollfd *p = &set->fds[i];
            int due = (n > 0 && (p->revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL))) ||
                      (retrying && p->events == 0) || (sweep && now >= set->conns[i]->deadline_ms);
            if (!due)
                continue;
            if (!hand_back(set, i))
                still_retrying = 1;
        }
        retrying = still_retrying;
    }
}

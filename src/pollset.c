/* The growable poll() array shared by the poll threads, and the thread
 * skeleton the idle and park sets share. */
#include "pyruvate/pollset.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "pyruvate/wakeup.h"

int pollset_add(struct pollset *set, int fd, short events, struct conn *c)
{
    if (set->nfds == set->capacity) {
        unsigned capacity = set->capacity ? set->capacity * 2 : 64;
        struct pollfd *fds = realloc(set->fds, capacity * sizeof(*fds));
        if (fds == NULL)
            return -1;
        set->fds = fds;
        struct pollset_slot *slots = realloc(set->slots, capacity * sizeof(*slots));
        if (slots == NULL)
            return -1;
        set->slots = slots;
        set->capacity = capacity;
    }
    unsigned i = set->nfds++;
    set->fds[i] = (struct pollfd){.fd = fd, .events = events};
    set->slots[i] = (struct pollset_slot){.conn = c};
    return (int)i;
}

struct conn *pollset_take(struct pollset *set, unsigned i)
{
    struct conn *c = set->slots[i].conn;
    set->nfds--;
    set->fds[i] = set->fds[set->nfds];
    set->slots[i] = set->slots[set->nfds];
    return c;
}

void pollset_free(struct pollset *set)
{
    free(set->fds);
    free(set->slots);
    *set = (struct pollset){0};
}

/* ---- the poll thread -------------------------------------------------- */

int poll_thread_start(struct poll_thread *pt, void *(*main)(void *), void *arg)
{
    pt->wake_fd = wakeup_open();
    if (pt->wake_fd < 0 || pollset_add(&pt->polls, pt->wake_fd, POLLIN, NULL) < 0)
        goto fail;
    pthread_mutex_init(&pt->mutex, NULL);
    if (pthread_create(&pt->thread, NULL, main, arg) != 0) {
        pthread_mutex_destroy(&pt->mutex);
        goto fail;
    }
    return 0;
fail:
    if (pt->wake_fd >= 0)
        close(pt->wake_fd);
    pt->wake_fd = -1;
    pollset_free(&pt->polls);
    return -1;
}

int poll_thread_add(struct poll_thread *pt, struct conn *c, int (*admit)(struct conn *c, void *ctx),
                    void *ctx)
{
    pthread_mutex_lock(&pt->mutex);
    if (pt->stopping || (admit && admit(c, ctx) < 0)) {
        pthread_mutex_unlock(&pt->mutex);
        return -1;
    }
    int was_empty = pt->incoming == NULL;
    c->next = pt->incoming;
    pt->incoming = c;
    pthread_mutex_unlock(&pt->mutex);
    /* The thread takes the whole list per wake-up, so one is enough. */
    if (was_empty)
        wakeup_signal(pt->wake_fd);
    return 0;
}

void poll_thread_requeue(struct poll_thread *pt, struct conn *c)
{
    pthread_mutex_lock(&pt->mutex);
    c->next = pt->incoming;
    pt->incoming = c;
    pthread_mutex_unlock(&pt->mutex);
}

int poll_thread_wait(struct poll_thread *pt, int64_t wait_ms, struct conn **incoming, int *stopping)
{
    int n = poll(pt->polls.fds, pt->polls.nfds,
                 wait_ms < 0 ? 0 : (wait_ms > INT_MAX ? INT_MAX : (int)wait_ms));
    if (n < 0 && errno != EINTR)
        return -1;
    if (pt->polls.fds[0].revents)
        wakeup_drain(pt->wake_fd);
    pthread_mutex_lock(&pt->mutex);
    *incoming = pt->incoming;
    pt->incoming = NULL;
    *stopping = pt->stopping;
    pthread_mutex_unlock(&pt->mutex);
    return n < 0 ? 0 : n;
}

struct conn *poll_thread_pop(struct conn **list)
{
    struct conn *c = *list;
    if (c) {
        *list = c->next;
        c->next = NULL;
    }
    return c;
}

void poll_thread_stop(struct poll_thread *pt, void (*drop)(struct conn *c, void *ctx), void *ctx)
{
    pthread_mutex_lock(&pt->mutex);
    pt->stopping = 1;
    pthread_mutex_unlock(&pt->mutex);
    wakeup_signal(pt->wake_fd);
    pthread_join(pt->thread, NULL);
    for (unsigned i = 1; i < pt->polls.nfds; i++)
        drop(pt->polls.slots[i].conn, ctx);
    for (struct conn *c; (c = poll_thread_pop(&pt->incoming)) != NULL;)
        drop(c, ctx);
    pthread_mutex_destroy(&pt->mutex);
    close(pt->wake_fd);
    pollset_free(&pt->polls);
}

/* The handoff set (handoff.h): a short array in put order (oldest first)
 * under one mutex. poll() with a zero timeout runs under the mutex; the
 * only wait (handoff_wait_ready) polls a copy of the descriptors without it.
 *
 * Lock order: the mutex is a leaf lock; wake() runs without it. */
#include "pyruvate/handoff.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pyruvate/conn.h"
#include "pyruvate/wakeup.h"

struct handoff {
    pthread_mutex_t mutex;
    int wake_fd; /* the watching thread polls it too: handoff_wake_watcher */
    void (*wake)(void *ctx);
    void *ctx;

    /* under mutex */
    struct conn *conns[HANDOFF_CAPACITY];
    int64_t since_ms[HANDOFF_CAPACITY]; /* when each was put; never decreasing */
    /* poll() said its client sent: taken before the set is polled again,
     * so one poll() serves as many requests as it found */
    unsigned char ready[HANDOFF_CAPACITY];
    unsigned count;
    int closed;
    int watching;     /* a thread waits in handoff_wait_ready */
    int wake_pending; /* wake_fd was signalled and not drained yet */
    /* Since when no worker looks at the set (handoff_cover: one left it to
     * run an application); 0 while one does. */
    int64_t unwatched_since_ms;
    int64_t acceptor_looks_at_ms; /* when the acceptor takes back stale ones next */
};

struct handoff *handoff_create(void)
{
    struct handoff *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->wake_fd = wakeup_open();
    if (h->wake_fd < 0) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mutex, NULL);
    h->acceptor_looks_at_ms = INT64_MAX;
    return h;
}

void handoff_destroy(struct handoff *h)
{
    if (h == NULL)
        return;
    pthread_mutex_destroy(&h->mutex);
    close(h->wake_fd);
    free(h);
}

void handoff_set_waker(struct handoff *h, void (*wake)(void *ctx), void *ctx)
{
    h->wake = wake;
    h->ctx = ctx;
}

int handoff_put(struct handoff *h, struct conn *c, int64_t now_ms)
{
    pthread_mutex_lock(&h->mutex);
    int taken = !h->closed && h->count < HANDOFF_CAPACITY;
    if (taken) {
        h->conns[h->count] = c;
        h->ready[h->count] = 0;
        h->since_ms[h->count++] = now_ms;
    }
    pthread_mutex_unlock(&h->mutex);
    return taken ? 0 : -1;
}

/* With the mutex held: takes out entries [first, first + n), linked
 * through c->next. */
static struct conn *remove_range(struct handoff *h, unsigned first, unsigned n)
{
    struct conn *list = NULL;
    for (unsigned i = first; i < first + n; i++) {
        h->conns[i]->next = list;
        list = h->conns[i];
    }
    unsigned rest = h->count - first - n;
    memmove(h->conns + first, h->conns + first + n, rest * sizeof(h->conns[0]));
    memmove(h->since_ms + first, h->since_ms + first + n, rest * sizeof(h->since_ms[0]));
    memmove(h->ready + first, h->ready + first + n, rest * sizeof(h->ready[0]));
    h->count -= n;
    if (h->count == 0)
        h->unwatched_since_ms = 0; /* nothing left to look at */
    return list;
}

/* With the mutex held: takes out the first entry marked ready, if any. */
static struct conn *take_first_ready(struct handoff *h)
{
    for (unsigned i = 0; i < h->count; i++) {
        if (h->ready[i]) {
            struct conn *c = remove_range(h, i, 1);
            c->next = NULL;
            return c;
        }
    }
    return NULL;
}

/* With the mutex held: marks the entries poll() found ready in fds[]
 * (taken from `polled`, the set's entries when it was polled; some may
 * have left it since). */
static void mark_ready(struct handoff *h, struct conn *const *polled, const struct pollfd *fds,
                       unsigned n)
{
    for (unsigned i = 0, j = 0; i < n; i++) {
        if (!fds[i].revents)
            continue;
        /* The set keeps its order: look on from the last match. */
        while (j < h->count && h->conns[j] != polled[i])
            j++;
        if (j == h->count)
            j = 0; /* gone: start over for the next one */
        else
            h->ready[j] = 1;
    }
}

/* With the mutex held: polls the whole set without waiting and marks the
 * entries whose client sent something. */
static void poll_set_now(struct handoff *h)
{
    struct pollfd fds[HANDOFF_CAPACITY];
    unsigned n = h->count;
    for (unsigned i = 0; i < n; i++)
        fds[i] = (struct pollfd){.fd = h->conns[i]->fd, .events = POLLIN};
    if (poll(fds, n, 0) > 0)
        mark_ready(h, h->conns, fds, n);
}

struct conn *handoff_take_ready(struct handoff *h)
{
    pthread_mutex_lock(&h->mutex);
    h->unwatched_since_ms = 0;
    struct conn *c = take_first_ready(h);
    if (c == NULL && h->count > 0) {
        poll_set_now(h);
        c = take_first_ready(h);
    }
    pthread_mutex_unlock(&h->mutex);
    return c;
}

struct conn *handoff_wait_ready(struct handoff *h, int timeout_ms, enum handoff_wait *outcome)
{
    struct pollfd fds[HANDOFF_CAPACITY + 1];
    struct conn *watched[HANDOFF_CAPACITY];
    pthread_mutex_lock(&h->mutex);
    struct conn *c = take_first_ready(h);
    unsigned n = h->count;
    if (c != NULL || n == 0 || h->watching) {
        *outcome = c ? HANDOFF_LOOK_AGAIN : n == 0 ? HANDOFF_TIMED_OUT : HANDOFF_WATCHED_ELSEWHERE;
        pthread_mutex_unlock(&h->mutex);
        return c;
    }
    h->watching = 1;
    h->unwatched_since_ms = 0;
    for (unsigned i = 0; i < n; i++) {
        watched[i] = h->conns[i];
        fds[i] = (struct pollfd){.fd = h->conns[i]->fd, .events = POLLIN};
    }
    fds[n] = (struct pollfd){.fd = h->wake_fd, .events = POLLIN};
    pthread_mutex_unlock(&h->mutex);
    int polled = poll(fds, n + 1, timeout_ms);
    int woken = polled > 0 && fds[n].revents;
    if (woken)
        wakeup_drain(h->wake_fd);
    *outcome = woken ? HANDOFF_WOKEN : polled > 0 ? HANDOFF_LOOK_AGAIN : HANDOFF_TIMED_OUT;
    pthread_mutex_lock(&h->mutex);
    h->watching = 0;
    if (woken)
        h->wake_pending = 0;
    /* Another thread may have taken a ready one meanwhile (the copy in
     * watched[] says which were polled). Woken, this thread serves the
     * queued request first: the ready ones stay marked for whoever looks
     * next. */
    if (polled > 0) {
        mark_ready(h, watched, fds, n);
        if (!woken)
            c = take_first_ready(h);
    }
    pthread_mutex_unlock(&h->mutex);
    return c;
}

void handoff_wake_watcher(struct handoff *h)
{
    pthread_mutex_lock(&h->mutex);
    int wake = h->watching && !h->wake_pending;
    if (wake)
        h->wake_pending = 1;
    pthread_mutex_unlock(&h->mutex);
    if (wake)
        wakeup_signal(h->wake_fd);
}

/* With the mutex held: when the acceptor must look at the set next. */
static int64_t acceptor_due_ms(const struct handoff *h)
{
    int64_t due = h->since_ms[0] + HANDOFF_MAX_MS;
    if (h->unwatched_since_ms && h->unwatched_since_ms + HANDOFF_UNWATCHED_MS < due)
        due = h->unwatched_since_ms + HANDOFF_UNWATCHED_MS;
    return due;
}

void handoff_cover(struct handoff *h, int64_t now_ms)
{
    pthread_mutex_lock(&h->mutex);
    if (h->count > 0 && !h->watching)
        h->unwatched_since_ms = now_ms;
    int late = h->count > 0 && h->acceptor_looks_at_ms > acceptor_due_ms(h);
    if (late)
        h->acceptor_looks_at_ms = now_ms; /* one wake-up is enough */
    pthread_mutex_unlock(&h->mutex);
    if (late && h->wake)
        h->wake(h->ctx);
}

/* With the mutex held: takes out the entries marked ready, linked through
 * c->next in front of list. */
static struct conn *take_all_ready(struct handoff *h, struct conn *list)
{
    for (struct conn *c; (c = take_first_ready(h)) != NULL; list = c)
        c->next = list;
    return list;
}

struct conn *handoff_take_stale(struct handoff *h, int64_t now_ms, int idle_worker, int longest,
                                int *sleep_ms)
{
    pthread_mutex_lock(&h->mutex);
    unsigned stale = 0;
    while (stale < h->count && now_ms - h->since_ms[stale] >= HANDOFF_MAX_MS)
        stale++;
    struct conn *list = remove_range(h, 0, stale);
    /* Nobody looked at the set for a while (the last worker that did runs
     * an application): the connections whose client sent go back too, so
     * that the idle worker answers them now. */
    if (h->count > 0 && !h->watching && h->unwatched_since_ms &&
        now_ms - h->unwatched_since_ms >= HANDOFF_UNWATCHED_MS) {
        if (idle_worker) {
            poll_set_now(h);
            list = take_all_ready(h, list);
        }
        /* With no worker idle, nobody could answer them sooner: the stale
         * rule is enough, and the acceptor must not spin on a deadline it
         * does not act on (a worker that goes idle empties the set or
         * watches it first). */
        h->unwatched_since_ms = idle_worker && h->count > 0 ? now_ms : 0;
    }
    int64_t sleep = longest;
    if (h->count > 0 && acceptor_due_ms(h) - now_ms < sleep)
        sleep = acceptor_due_ms(h) - now_ms;
    if (sleep < 0)
        sleep = 0;
    *sleep_ms = (int)sleep;
    h->acceptor_looks_at_ms = now_ms + sleep;
    pthread_mutex_unlock(&h->mutex);
    return list;
}

struct conn *handoff_take_all(struct handoff *h)
{
    pthread_mutex_lock(&h->mutex);
    struct conn *list = remove_range(h, 0, h->count);
    pthread_mutex_unlock(&h->mutex);
    return list;
}

struct conn *handoff_close(struct handoff *h)
{
    pthread_mutex_lock(&h->mutex);
    h->closed = 1;
    struct conn *list = remove_range(h, 0, h->count);
    pthread_mutex_unlock(&h->mutex);
    return list;
}

unsigned handoff_count(struct handoff *h)
{
    pthread_mutex_lock(&h->mutex);
    unsigned n = h->count;
    pthread_mutex_unlock(&h->mutex);
    return n;
}

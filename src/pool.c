/* The worker pool: a ring of work items under one mutex, N threads waiting
 * on one condition variable. Modelled on libuv's threadpool.
 *
 * Lock order: pool->mutex is a leaf lock; callbacks run without it. */
#include "pyruvate/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "pyruvate/room.h"

struct pool_thread {
    struct pool *pool;
    pthread_t thread;
    unsigned index;
    int started;               /* pthread_create succeeded */
    int exited;                /* under pool->mutex */
    int finishing;             /* counted in pool->finishing (pool_finishing) */
    struct room_sample others; /* wait_for_room's, under pool->mutex */
};

struct pool {
    pthread_mutex_t mutex;
    pthread_cond_t work_ready;   /* signalled when an item is queued or on stop */
    pthread_cond_t state_change; /* signalled when a thread starts or exits */
    pthread_cond_t room_look;    /* never signalled: wait_for_room's timed wait */
    struct pool_callbacks callbacks;
    char name[12];

    /* under mutex */
    void **ring;        /* ring_size slots: capacity waiting plus one per thread */
    unsigned ring_size; /* the ring's length */
    unsigned capacity;  /* items that may wait with no idle thread to take them */
    unsigned head, count;
    unsigned idle_threads;
    unsigned claiming; /* woken for an item, taking the callbacks' lock first */
    unsigned watching; /* in handle(), waiting a moment for other work */
    /* in handle(), done with an item and looking for the next: written
     * without the mutex by pool_finishing, read by pool_submit */
    atomic_uint finishing;
    unsigned running_threads;
    unsigned start_failures;
    int stopping;

    unsigned thread_count;
    struct pool_thread *threads;
};

static void *pool_thread_main(void *arg);

/* state_change runs on the monotonic clock: pool_join waits on it with a
 * deadline that a wall-clock step must not move. */
static void init_locks(struct pool *pool)
{
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->work_ready, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->state_change, &monotonic);
    pthread_cond_init(&pool->room_look, &monotonic);
    pthread_condattr_destroy(&monotonic);
}

/* Starts the threads until one cannot be created (err says which).
 * Returns how many were created. */
static unsigned start_threads(struct pool *pool, char err[PYR_ERR_LEN])
{
    unsigned created = 0;
    for (; created < pool->thread_count; created++) {
        struct pool_thread *t = &pool->threads[created];
        t->pool = pool;
        t->index = created + 1;
        int rc = pthread_create(&t->thread, NULL, pool_thread_main, t);
        if (rc != 0) {
            snprintf(err, PYR_ERR_LEN, "cannot start worker thread %u (error %d)", created + 1, rc);
            break;
        }
        t->started = 1;
    }
    return created;
}

/* Waits until every created thread has run thread_start, so that start-up
 * failures are reported by pool_create and not by the first request.
 * Returns how many thread_start calls failed. */
static unsigned wait_until_started(struct pool *pool, unsigned created)
{
    pthread_mutex_lock(&pool->mutex);
    while (pool->running_threads + pool->start_failures < created)
        pthread_cond_wait(&pool->state_change, &pool->mutex);
    unsigned failures = pool->start_failures;
    pthread_mutex_unlock(&pool->mutex);
    return failures;
}

struct pool *pool_create(const char *name, unsigned threads, unsigned capacity,
                         const struct pool_callbacks *callbacks, char err[PYR_ERR_LEN])
{
    struct pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        goto fail_alloc;
    pool->capacity = capacity ? capacity : 1;
    pool->ring_size = pool->capacity + threads;
    pool->ring = calloc(pool->ring_size, sizeof(void *));
    pool->threads = calloc(threads, sizeof(*pool->threads));
    if (pool->ring == NULL || pool->threads == NULL)
        goto fail_alloc;
    pool->callbacks = *callbacks;
    pool->thread_count = threads;
    for (unsigned i = 0; callbacks->room && i < threads; i++)
        if (room_sample_init(callbacks->room, &pool->threads[i].others) < 0)
            goto fail_alloc;
    snprintf(pool->name, sizeof(pool->name), "%s", name);
    init_locks(pool);

    unsigned created = start_threads(pool, err);
    unsigned failures = wait_until_started(pool, created);
    if (created == threads && failures == 0)
        return pool;

    if (failures)
        snprintf(err, PYR_ERR_LEN, "%u worker thread(s) failed to start", failures);
    pool_stop(pool);
    pool_join(pool, -1);
    pool_destroy(pool, NULL, NULL);
    return NULL;

fail_alloc:
    snprintf(err, PYR_ERR_LEN, "out of memory creating the worker pool");
    if (pool) {
        for (unsigned i = 0; pool->threads && i < threads; i++)
            room_sample_free(&pool->threads[i].others);
        free(pool->ring);
        free(pool->threads);
        free(pool);
    }
    return NULL;
}

int pool_submit(struct pool *pool, void *item)
{
    pthread_mutex_lock(&pool->mutex);
    /* An item an idle thread is about to take (signalled, not yet
     * scheduled, or woken and waiting for the callbacks' lock) is not
     * waiting: a burst at an idle pool must not be refused just because
     * the woken thread runs later than the caller. */
    unsigned finishing = atomic_load_explicit(&pool->finishing, memory_order_relaxed);
    /* A thread waiting on other work (watching) is done with its item, so
     * finishing too: it takes one more item, not two. And never more than
     * one per thread: the ring holds capacity items plus one per thread. */
    unsigned taken_soon = pool->idle_threads + pool->claiming +
                          (pool->watching > finishing ? pool->watching : finishing);
    if (taken_soon > pool->thread_count)
        taken_soon = pool->thread_count;
    if (pool->stopping || pool->count >= pool->capacity + taken_soon) {
        int stopping = pool->stopping;
        pthread_mutex_unlock(&pool->mutex);
        errno = stopping ? ECANCELED : EAGAIN;
        return -1;
    }
    pool->ring[(pool->head + pool->count) % pool->ring_size] = item;
    pool->count++;
    /* Busy threads look at the queue before they sleep again, so only an
     * idle one needs waking; and a watching one, when the idle ones are
     * too few for what is queued (its wait would hold this item up). */
    int wake_idle = pool->idle_threads > 0;
    int wake_watching = pool->watching > 0 && pool->count > pool->idle_threads;
    pthread_mutex_unlock(&pool->mutex);
    /* Signalled after the unlock: a thread woken under it would find the
     * mutex still held and sleep once more on it (two more futex calls and
     * a context switch per request, measured). The item is in the ring
     * already, so a thread that wakes for any reason takes it. */
    if (wake_idle)
        pthread_cond_signal(&pool->work_ready);
    if (wake_watching && pool->callbacks.wake_watching)
        pool->callbacks.wake_watching(pool->callbacks.ctx);
    return 0;
}

void *pool_try_take(struct pool *pool)
{
    void *item = NULL;
    pthread_mutex_lock(&pool->mutex);
    if (pool->count > 0) {
        item = pool->ring[pool->head];
        pool->head = (pool->head + 1) % pool->ring_size;
        pool->count--;
    }
    pthread_mutex_unlock(&pool->mutex);
    return item;
}

int pool_has_spare_thread(struct pool *pool)
{
    pthread_mutex_lock(&pool->mutex);
    int spare = pool->count == 0 && pool->idle_threads > 0;
    pthread_mutex_unlock(&pool->mutex);
    return spare;
}

/* Only thread `index` writes its own flag (the pool does too, once handle
 * has returned on that thread): no lock needed for it. */
static void set_finishing(struct pool *pool, struct pool_thread *t, int finishing)
{
    if (t->finishing == finishing)
        return;
    t->finishing = finishing;
    if (finishing)
        atomic_fetch_add_explicit(&pool->finishing, 1, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&pool->finishing, 1, memory_order_relaxed);
}

void pool_finishing(struct pool *pool, unsigned index, int finishing)
{
    if (index >= 1 && index <= pool->thread_count)
        set_finishing(pool, &pool->threads[index - 1], finishing);
}

void pool_watching(struct pool *pool, int delta)
{
    pthread_mutex_lock(&pool->mutex);
    pool->watching = (unsigned)((int)pool->watching + delta);
    pthread_mutex_unlock(&pool->mutex);
}

unsigned pool_queued(struct pool *pool)
{
    pthread_mutex_lock(&pool->mutex);
    unsigned taken_soon = pool->idle_threads + pool->claiming;
    unsigned count = pool->count > taken_soon ? pool->count - taken_soon : 0;
    pthread_mutex_unlock(&pool->mutex);
    return count;
}

unsigned pool_busy(struct pool *pool)
{
    pthread_mutex_lock(&pool->mutex);
    unsigned busy = pool->count + (pool->running_threads - pool->idle_threads);
    pthread_mutex_unlock(&pool->mutex);
    return busy;
}

void pool_threads(struct pool *pool, unsigned *busy, unsigned *idle)
{
    pthread_mutex_lock(&pool->mutex);
    *busy = pool->running_threads - pool->idle_threads;
    *idle = pool->idle_threads;
    pthread_mutex_unlock(&pool->mutex);
}

void pool_stop(struct pool *pool)
{
    pthread_mutex_lock(&pool->mutex);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->mutex);
}

int pool_join(struct pool *pool, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&pool->mutex);
    int all_exited;
    for (;;) {
        all_exited = 1;
        for (unsigned i = 0; i < pool->thread_count; i++)
            if (pool->threads[i].started && !pool->threads[i].exited)
                all_exited = 0;
        if (all_exited)
            break;
        if (timeout_ms < 0) {
            pthread_cond_wait(&pool->state_change, &pool->mutex);
        } else if (pthread_cond_timedwait(&pool->state_change, &pool->mutex, &deadline) ==
                   ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&pool->mutex);
    if (!all_exited)
        return -1;
    for (unsigned i = 0; i < pool->thread_count; i++) {
        if (pool->threads[i].started) {
            pthread_join(pool->threads[i].thread, NULL);
            pool->threads[i].started = 0;
        }
    }
    return 0;
}

void pool_destroy(struct pool *pool, void (*drop)(void *item, void *ctx), void *ctx)
{
    if (pool == NULL)
        return;
    for (unsigned i = 0; i < pool->count; i++) {
        void *item = pool->ring[(pool->head + i) % pool->ring_size];
        if (drop)
            drop(item, ctx);
    }
    pthread_cond_destroy(&pool->work_ready);
    pthread_cond_destroy(&pool->state_change);
    pthread_cond_destroy(&pool->room_look);
    for (unsigned i = 0; i < pool->thread_count; i++)
        room_sample_free(&pool->threads[i].others);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->ring);
    free(pool->threads);
    free(pool);
}

/* The calling thread's voluntary context switches so far, or -1. */
static long voluntary_switches(void)
{
    struct rusage usage;
    return getrusage(RUSAGE_THREAD, &usage) == 0 ? usage.ru_nvcsw : -1;
}

/* Without pool->mutex: takes the callbacks' lock (the GIL) if it is free,
 * and returns 1 with it held; else waits for it, lets go of it again and
 * returns 0. Whether this thread had to sleep for it tells the two kinds
 * of computing apart: a thread that computes holding the GIL makes it
 * sleep (until the switch interval makes it let go); one that computes
 * in C code without it (compression, image scaling) leaves it free, and
 * then starting a request beside it costs nothing and uses a core. */
static int acquire_if_free(struct pool *pool, void *state)
{
    /* Twice, ROOM_PROBE_GAP_US apart: a thread computing with the GIL
     * also leaves it free now and then, for a read or a lock. */
    for (int probe = 0;; probe++) {
        long before = voluntary_switches();
        pool->callbacks.acquire(state);
        if (before < 0 || voluntary_switches() != before) {
            pool->callbacks.release(state);
            return 0;
        }
        if (probe == 1)
            return 1;
        pool->callbacks.release(state);
        struct timespec gap = {.tv_sec = 0, .tv_nsec = (long)ROOM_PROBE_GAP_US * 1000};
        nanosleep(&gap, NULL);
    }
}

/* What wait_for_room found. */
enum room_outcome {
    ROOM_FREE,           /* take the item (the callbacks' lock not taken yet) */
    ROOM_FREE_LOCK_HELD, /* take the item: acquire_if_free took the lock */
    ROOM_QUEUE_EMPTIED,  /* another thread took the item meanwhile */
};

/* With pool->mutex held and an item queued: while another thread
 * computes in a run holding the callbacks' lock, waits; that thread takes
 * the item when done (room.h). */
static enum room_outcome wait_for_room(struct pool *pool, struct pool_thread *self, void *state)
{
    struct room *room = pool->callbacks.room;
    if (room == NULL || !room_others_inside(room, self->index))
        return ROOM_FREE;
    enum room_outcome outcome = ROOM_FREE;
    pool->claiming++; /* still about to take it, for pool_submit's limit */
    room_sample(room, self->index, &self->others);
    /* Looks again after ROOM_LOOK_US, then less and less often: a 30 ms
     * page would otherwise cost a hundred wake-ups per waiting thread. */
    int64_t look_us = ROOM_LOOK_US;
    while (pool->count > 0 && !pool->stopping) {
        int64_t until_us = monotonic_us() + look_us;
        look_us = look_us * 2 < ROOM_LOOK_MAX_US ? look_us * 2 : ROOM_LOOK_MAX_US;
        struct timespec until = {.tv_sec = until_us / 1000000,
                                 .tv_nsec = (long)(until_us % 1000000) * 1000};
        pthread_cond_timedwait(&pool->room_look, &pool->mutex, &until);
        if (pool->count == 0 || !room_others_compute(room, self->index, &self->others))
            break;
        if (pool->callbacks.acquire) {
            pthread_mutex_unlock(&pool->mutex);
            int held = acquire_if_free(pool, state);
            pthread_mutex_lock(&pool->mutex);
            if (held) {
                outcome = ROOM_FREE_LOCK_HELD;
                break;
            }
        }
        room_sample(room, self->index, &self->others);
    }
    pool->claiming--;
    if (pool->count > 0) /* also when stopping: the queue is drained */
        return outcome;
    if (outcome == ROOM_FREE_LOCK_HELD) {
        pthread_mutex_unlock(&pool->mutex);
        pool->callbacks.release(state);
        pthread_mutex_lock(&pool->mutex);
    }
    return ROOM_QUEUE_EMPTIED;
}

/* With pool->mutex held and an item queued: takes the callbacks' lock
 * first, without the mutex. Returns 1 (mutex held again, lock released)
 * when another thread emptied the queue meanwhile, else 0 with both held. */
static int acquire_or_give_up(struct pool *pool, void *state)
{
    if (pool->callbacks.acquire == NULL)
        return 0;
    pool->claiming++;
    pthread_mutex_unlock(&pool->mutex);
    pool->callbacks.acquire(state);
    pthread_mutex_lock(&pool->mutex);
    pool->claiming--;
    if (pool->count > 0)
        return 0;
    pthread_mutex_unlock(&pool->mutex);
    pool->callbacks.release(state);
    pthread_mutex_lock(&pool->mutex);
    return 1;
}

static void *pool_thread_main(void *arg)
{
    struct pool_thread *self = arg;
    struct pool *pool = self->pool;
    char thread_name[16];
    snprintf(thread_name, sizeof(thread_name), "%s-%u", pool->name, self->index);
    pthread_setname_np(pthread_self(), thread_name);

    if (pool->callbacks.room)
        room_thread_start(pool->callbacks.room, self->index);
    void *state = pool->callbacks.thread_start(pool->callbacks.ctx, self->index);
    pthread_mutex_lock(&pool->mutex);
    if (state == NULL) {
        pool->start_failures++;
        self->exited = 1;
        pthread_cond_broadcast(&pool->state_change);
        pthread_mutex_unlock(&pool->mutex);
        return NULL;
    }
    pool->running_threads++;
    pthread_cond_broadcast(&pool->state_change);

    for (;;) {
        while (pool->count == 0 && !pool->stopping) {
            pool->idle_threads++;
            pthread_cond_wait(&pool->work_ready, &pool->mutex);
            pool->idle_threads--;
        }
        /* Stopping still drains the queue: those clients sent a whole
         * request and deserve their answer. */
        if (pool->count == 0)
            break;
        enum room_outcome room = wait_for_room(pool, self, state);
        if (room == ROOM_QUEUE_EMPTIED || (room == ROOM_FREE && acquire_or_give_up(pool, state)))
            continue;
        void *item = pool->ring[pool->head];
        pool->head = (pool->head + 1) % pool->ring_size;
        pool->count--;
        pthread_mutex_unlock(&pool->mutex);
        pool->callbacks.handle(state, item);
        if (pool->callbacks.release)
            pool->callbacks.release(state);
        pthread_mutex_lock(&pool->mutex);
        /* Counted as finishing until here, and as idle or claiming from
         * here on, under the same lock: pool_submit never sees it as busy
         * on its way back. */
        set_finishing(pool, self, 0);
    }
    pool->running_threads--;
    pthread_mutex_unlock(&pool->mutex);

    pool->callbacks.thread_stop(state);

    pthread_mutex_lock(&pool->mutex);
    self->exited = 1;
    pthread_cond_broadcast(&pool->state_change);
    pthread_mutex_unlock(&pool->mutex);
    return NULL;
}

/* Tests for src/pool.c: the bounded work queue and its threads. Handlers
 * block on a gate (mutex + condvar) so that queue states are reached
 * deterministically; every wait is bounded by WAIT_MS. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pyruvate/pool.h"
#include "pyruvate/room.h"
#include "suites.h"

enum { MAX_THREADS = 8, MAX_ITEMS = 256, WAIT_MS = 3000 };

struct worker_state {
    struct probe *probe;
    unsigned index;
};

/* What the callbacks saw. */
struct probe {
    pthread_mutex_t mutex;
    pthread_cond_t changed;
    int gate_open;       /* under mutex; handlers wait while it is 0 */
    unsigned waiting;    /* under mutex; handlers blocked at the gate */
    unsigned fail_index; /* thread_start fails for this index; 0: none */
    atomic_uint start_calls[MAX_THREADS + 1];
    atomic_uint stop_calls[MAX_THREADS + 1];
    atomic_uint handled;
    atomic_uint handled_at_last_stop;
    atomic_uint dropped;
    atomic_uint bad_thread_names;
    atomic_uint marks[MAX_ITEMS]; /* how often each item was handled */
    struct pool *pool;            /* for finish_before_gate */
    int finish_before_gate;       /* handlers call pool_finishing before the gate */
    struct worker_state states[MAX_THREADS + 1];
};

static struct probe probe;

/* A plain value, so that failed assertions print readable expressions. */
static unsigned count_of(atomic_uint *counter)
{
    return atomic_load(counter);
}

static void *on_thread_start(void *ctx, unsigned index)
{
    struct probe *p = ctx;
    char name[16], expected[16];
    pthread_getname_np(pthread_self(), name, sizeof(name));
    snprintf(expected, sizeof(expected), "unit-%u", index);
    if (strcmp(name, expected) != 0)
        atomic_fetch_add(&p->bad_thread_names, 1);
    if (index == 0 || index > MAX_THREADS)
        return NULL;
    atomic_fetch_add(&p->start_calls[index], 1);
    if (index == p->fail_index)
        return NULL;
    p->states[index] = (struct worker_state){p, index};
    return &p->states[index];
}

static void on_handle(void *thread_state, void *item)
{
    struct worker_state *w = thread_state;
    struct probe *p = w->probe;
    if (p->finish_before_gate)
        pool_finishing(p->pool, w->index, 1); /* as a worker whose response is out */
    pthread_mutex_lock(&p->mutex);
    p->waiting++;
    pthread_cond_broadcast(&p->changed);
    while (!p->gate_open)
        pthread_cond_wait(&p->changed, &p->mutex);
    p->waiting--;
    pthread_mutex_unlock(&p->mutex);
    atomic_fetch_add((atomic_uint *)item, 1);
    atomic_fetch_add(&p->handled, 1);
}

static void on_thread_stop(void *thread_state)
{
    struct worker_state *w = thread_state;
    atomic_fetch_add(&w->probe->stop_calls[w->index], 1);
    atomic_store(&w->probe->handled_at_last_stop, atomic_load(&w->probe->handled));
}

static void on_drop(void *item, void *ctx)
{
    struct probe *p = ctx;
    atomic_fetch_add((atomic_uint *)item, 1);
    atomic_fetch_add(&p->dropped, 1);
}

static atomic_uint watcher_wakes;

static void on_wake_watching(void *ctx)
{
    PYR_UNUSED(ctx);
    atomic_fetch_add(&watcher_wakes, 1);
}

static const struct pool_callbacks callbacks = {
    .thread_start = on_thread_start,
    .handle = on_handle,
    .thread_stop = on_thread_stop,
    .wake_watching = on_wake_watching,
    .ctx = &probe,
};

static void setup_probe(void)
{
    memset(&probe, 0, sizeof(probe));
    pthread_mutex_init(&probe.mutex, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&probe.changed, &attr);
    pthread_condattr_destroy(&attr);
    probe.gate_open = 1;
}

static void teardown_probe(void)
{
    pthread_cond_destroy(&probe.changed);
    pthread_mutex_destroy(&probe.mutex);
}

static void set_gate(int open)
{
    pthread_mutex_lock(&probe.mutex);
    probe.gate_open = open;
    pthread_cond_broadcast(&probe.changed);
    pthread_mutex_unlock(&probe.mutex);
}

/* Waits until `count` handlers sit at the closed gate; fails after WAIT_MS. */
static void wait_for_waiting(unsigned count)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&probe.mutex);
    int rc = 0;
    while (probe.waiting < count && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&probe.changed, &probe.mutex, &deadline);
    unsigned waiting = probe.waiting;
    pthread_mutex_unlock(&probe.mutex);
    ck_assert_msg(waiting >= count, "%u handlers blocked, expected %u", waiting, count);
}

static struct pool *create_pool(unsigned threads, unsigned capacity)
{
    char err[PYR_ERR_LEN] = "";
    struct pool *pool = pool_create("unit", threads, capacity, &callbacks, err);
    ck_assert_msg(pool != NULL, "pool_create: %s", err);
    return pool;
}

static void stop_and_destroy(struct pool *pool)
{
    set_gate(1);
    pool_stop(pool);
    ck_assert_int_eq(pool_join(pool, WAIT_MS), 0);
    pool_destroy(pool, on_drop, &probe);
}

/* A lock every item needs (the GIL in the server), for acquire/release. */
static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint acquire_calls;

static void on_acquire(void *thread_state)
{
    PYR_UNUSED(thread_state);
    atomic_fetch_add(&acquire_calls, 1);
    pthread_mutex_lock(&big_lock);
}

static void on_release(void *thread_state)
{
    PYR_UNUSED(thread_state);
    pthread_mutex_unlock(&big_lock);
}

START_TEST(test_thread_waiting_to_acquire_holds_no_item)
{
    struct pool_callbacks with_lock = callbacks;
    with_lock.acquire = on_acquire;
    with_lock.release = on_release;
    char err[PYR_ERR_LEN] = "";
    struct pool *pool = pool_create("unit", 3, 8, &with_lock, err);
    ck_assert_msg(pool != NULL, "pool_create: %s", err);
    atomic_store(&acquire_calls, 0);
    pthread_mutex_lock(&big_lock); /* this thread is the one running */
    for (unsigned i = 0; i < 3; i++)
        ck_assert_int_eq(pool_submit(pool, &probe.marks[i]), 0);
    for (int i = 0; i < WAIT_MS && atomic_load(&acquire_calls) == 0; i++) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&pause, NULL);
    }
    ck_assert_uint_ge(count_of(&acquire_calls), 1);
    /* The woken thread waits for the lock without an item, so the holder
     * takes all three: none is stuck behind a thread that cannot run. */
    for (unsigned i = 0; i < 3; i++)
        ck_assert_ptr_eq(pool_try_take(pool), &probe.marks[i]);
    ck_assert_ptr_null(pool_try_take(pool));
    pthread_mutex_unlock(&big_lock);
    /* The woken thread finds the queue empty and lets go of the lock. */
    ck_assert_int_eq(pool_submit(pool, &probe.marks[3]), 0);
    stop_and_destroy(pool);
    ck_assert_uint_eq(count_of(&probe.handled), 1);
    ck_assert_uint_eq(count_of(&probe.marks[3]), 1);
    ck_assert_int_eq(pthread_mutex_trylock(&big_lock), 0);
    pthread_mutex_unlock(&big_lock);
}
END_TEST

START_TEST(test_every_item_handled_once)
{
    enum { THREADS = 4, ITEMS = 200 };
    struct pool *pool = create_pool(THREADS, MAX_ITEMS);
    for (unsigned i = 0; i < ITEMS; i++)
        ck_assert_int_eq(pool_submit(pool, &probe.marks[i]), 0);
    stop_and_destroy(pool);
    ck_assert_uint_eq(count_of(&probe.handled), ITEMS);
    ck_assert_uint_eq(count_of(&probe.dropped), 0);
    for (unsigned i = 0; i < ITEMS; i++)
        ck_assert_uint_eq(count_of(&probe.marks[i]), 1);
}
END_TEST

START_TEST(test_thread_start_and_stop_once_per_thread)
{
    enum { THREADS = 5 };
    struct pool *pool = create_pool(THREADS, 4);
    /* pool_create returns once every thread ran thread_start. */
    for (unsigned i = 1; i <= THREADS; i++)
        ck_assert_uint_eq(count_of(&probe.start_calls[i]), 1);
    ck_assert_uint_eq(count_of(&probe.start_calls[0]), 0);
    ck_assert_uint_eq(count_of(&probe.start_calls[THREADS + 1]), 0);
    ck_assert_uint_eq(count_of(&probe.bad_thread_names), 0);
    stop_and_destroy(pool);
    for (unsigned i = 1; i <= THREADS; i++)
        ck_assert_uint_eq(count_of(&probe.stop_calls[i]), 1);
}
END_TEST

START_TEST(test_stop_drains_queued_items)
{
    struct pool *pool = create_pool(1, 8);
    set_gate(0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[0]), 0);
    wait_for_waiting(1);
    for (unsigned i = 1; i < 5; i++)
        ck_assert_int_eq(pool_submit(pool, &probe.marks[i]), 0);
    ck_assert_uint_eq(pool_queued(pool), 4);
    pool_stop(pool);
    set_gate(1);
    ck_assert_int_eq(pool_join(pool, WAIT_MS), 0);
    /* Every queued item ran, and thread_stop came after the last one. */
    ck_assert_uint_eq(count_of(&probe.handled), 5);
    ck_assert_uint_eq(count_of(&probe.handled_at_last_stop), 5);
    ck_assert_uint_eq(pool_queued(pool), 0);
    pool_destroy(pool, on_drop, &probe);
    ck_assert_uint_eq(count_of(&probe.dropped), 0);
}
END_TEST

START_TEST(test_join_times_out_while_a_handler_blocks)
{
    struct pool *pool = create_pool(2, 4);
    set_gate(0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[0]), 0);
    wait_for_waiting(1);
    pool_stop(pool);
    /* A behavioural bound, not a timing assertion: the handler cannot finish. */
    ck_assert_int_eq(pool_join(pool, 50), -1);
    ck_assert_int_eq(pool_join(pool, 0), -1);
    set_gate(1);
    ck_assert_int_eq(pool_join(pool, WAIT_MS), 0);
    ck_assert_uint_eq(count_of(&probe.marks[0]), 1);
    pool_destroy(pool, on_drop, &probe);
}
END_TEST

/* Waits (bounded) until the pool reports `busy` items queued or in hand. */
static unsigned wait_for_busy(struct pool *pool, unsigned busy)
{
    for (int i = 0; i < WAIT_MS && pool_busy(pool) != busy; i++) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&pause, NULL);
    }
    return pool_busy(pool);
}

START_TEST(test_busy_counts_queued_and_running_items)
{
    struct pool *pool = create_pool(2, 4);
    ck_assert_uint_eq(wait_for_busy(pool, 0), 0);
    set_gate(0);
    for (unsigned i = 0; i < 3; i++)
        ck_assert_int_eq(pool_submit(pool, &probe.marks[i]), 0);
    wait_for_waiting(2);
    ck_assert_uint_eq(pool_busy(pool), 3); /* two in hand, one queued */
    set_gate(1);
    ck_assert_uint_eq(wait_for_busy(pool, 0), 0);
    stop_and_destroy(pool);
    ck_assert_uint_eq(count_of(&probe.handled), 3);
}
END_TEST

START_TEST(test_destroy_drops_leftover_items)
{
    /* Without threads nothing is taken off the queue, so items are left over. */
    struct pool *pool = create_pool(0, 4);
    for (unsigned i = 0; i < 3; i++)
        ck_assert_int_eq(pool_submit(pool, &probe.marks[i]), 0);
    pool_stop(pool);
    ck_assert_int_eq(pool_join(pool, 0), 0);
    pool_destroy(pool, on_drop, &probe);
    ck_assert_uint_eq(count_of(&probe.dropped), 3);
    for (unsigned i = 0; i < 3; i++)
        ck_assert_uint_eq(count_of(&probe.marks[i]), 1);
    ck_assert_uint_eq(count_of(&probe.handled), 0);
}
END_TEST

START_TEST(test_submit_full_queue_eagain)
{
    struct pool *pool = create_pool(1, 2);
    set_gate(0);
    /* The only worker holds item 0, so the queue itself holds the next two. */
    ck_assert_int_eq(pool_submit(pool, &probe.marks[0]), 0);
    wait_for_waiting(1);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[1]), 0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[2]), 0);
    errno = 0;
    ck_assert_int_eq(pool_submit(pool, &probe.marks[3]), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_uint_eq(pool_queued(pool), 2);

    /* Released, the worker runs the three accepted items. */
    stop_and_destroy(pool);
    ck_assert_uint_eq(count_of(&probe.handled), 3);
    ck_assert_uint_eq(count_of(&probe.marks[3]), 0); /* still the caller's */
}
END_TEST

/* A handler that waits a moment for other work (a worker watching its
 * keep-alive connections) takes queued items when it is done: one more
 * item fits for it. */
START_TEST(test_a_watching_thread_makes_room_for_one_more_item)
{
    struct pool *pool = create_pool(1, 1);
    set_gate(0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[0]), 0);
    wait_for_waiting(1); /* the only worker holds item 0 */
    ck_assert_int_eq(pool_submit(pool, &probe.marks[1]), 0);
    errno = 0;
    ck_assert_int_eq(pool_submit(pool, &probe.marks[2]), -1); /* queue full */
    ck_assert_int_eq(errno, EAGAIN);
    pool_watching(pool, 1); /* as a worker waiting on its handoff set */
    ck_assert_int_eq(pool_submit(pool, &probe.marks[2]), 0);
    errno = 0;
    ck_assert_int_eq(pool_submit(pool, &probe.marks[3]), -1);
    ck_assert_int_eq(errno, EAGAIN);
    pool_watching(pool, -1);

    stop_and_destroy(pool);
    ck_assert_uint_eq(count_of(&probe.handled), 3);
    ck_assert_uint_eq(count_of(&probe.marks[3]), 0);
}
END_TEST

/* One thread, a queue of one: the thread's handler is done with item 0
 * (as a worker whose response is out) and held at the gate. */
static struct pool *one_thread_done_with_item_0(void)
{
    struct pool *pool = create_pool(1, 1);
    probe.pool = pool;
    probe.finish_before_gate = 1;
    set_gate(0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[0]), 0);
    wait_for_waiting(1);
    return pool;
}

/* Items 1 and 2 are accepted (the thread's next and the one waiting);
 * item 3 is one too many. */
static void assert_two_more_fit(struct pool *pool)
{
    ck_assert_int_eq(pool_submit(pool, &probe.marks[1]), 0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[2]), 0);
    errno = 0;
    ck_assert_int_eq(pool_submit(pool, &probe.marks[3]), -1);
    ck_assert_int_eq(errno, EAGAIN);
}

/* A thread whose item is done (a worker whose response is out, on its way
 * back) counts as free: its client may send again before it is idle. */
START_TEST(test_a_thread_done_with_its_item_makes_room_for_one_more)
{
    struct pool *pool = one_thread_done_with_item_0();
    assert_two_more_fit(pool);
    stop_and_destroy(pool);
    ck_assert_uint_eq(count_of(&probe.handled), 3);
}
END_TEST

/* A worker waiting on its handoff set is both done with its item and
 * watching: it takes one more item, not two. Counted twice, the queue took
 * more items than its ring holds, and a later one overwrote an earlier
 * one, which a worker then took twice (a use after free of the connection
 * in the server, found by an outside attack with max_queue_size=8). */
START_TEST(test_a_thread_both_finishing_and_watching_makes_room_for_one_item)
{
    struct pool *pool = one_thread_done_with_item_0();
    pool_watching(pool, 1); /* and waiting on its handoff set */
    assert_two_more_fit(pool);
    pool_watching(pool, -1);
    stop_and_destroy(pool);
    for (int i = 0; i <= 2; i++)
        ck_assert_uint_eq(count_of(&probe.marks[i]), 1);
    ck_assert_uint_eq(count_of(&probe.marks[3]), 0);
}
END_TEST

/* An item that no idle thread takes must not wait for the end of a
 * watching thread's wait: the watcher is woken to take it. An item an idle
 * thread takes leaves the watcher alone. */
START_TEST(test_an_item_no_idle_thread_takes_wakes_the_watching_thread)
{
    struct pool *pool = create_pool(2, 1);
    set_gate(0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[0]), 0);
    wait_for_waiting(1); /* one worker holds item 0, the other is idle */
    pool_watching(pool, 1);
    atomic_store(&watcher_wakes, 0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[1]), 0); /* the idle one's */
    ck_assert_uint_eq(atomic_load(&watcher_wakes), 0);
    wait_for_waiting(2); /* both hold an item now */
    ck_assert_int_eq(pool_submit(pool, &probe.marks[2]), 0);
    ck_assert_uint_eq(atomic_load(&watcher_wakes), 1);
    pool_watching(pool, -1);
    stop_and_destroy(pool);
    ck_assert_uint_eq(count_of(&probe.handled), 3);
}
END_TEST

START_TEST(test_burst_at_an_idle_pool_is_not_refused)
{
    struct pool *pool = create_pool(1, 1);
    set_gate(0);
    /* Back to back, before the woken worker may have run: item 0 is the
     * idle worker's, item 1 the one waiting, item 2 one too many. */
    ck_assert_int_eq(pool_submit(pool, &probe.marks[0]), 0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[1]), 0);
    errno = 0;
    ck_assert_int_eq(pool_submit(pool, &probe.marks[2]), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_uint_eq(pool_queued(pool), 1);

    stop_and_destroy(pool);
    ck_assert_uint_eq(count_of(&probe.handled), 2);
    ck_assert_uint_eq(count_of(&probe.marks[2]), 0);
}
END_TEST

START_TEST(test_try_take_returns_queued_items_in_order)
{
    struct pool *pool = create_pool(1, 4);
    ck_assert_ptr_null(pool_try_take(pool));
    set_gate(0);
    /* The worker holds item 0; items 1 and 2 wait in the queue. */
    ck_assert_int_eq(pool_submit(pool, &probe.marks[0]), 0);
    wait_for_waiting(1);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[1]), 0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[2]), 0);
    ck_assert_ptr_eq(pool_try_take(pool), &probe.marks[1]);
    ck_assert_uint_eq(pool_queued(pool), 1);
    ck_assert_ptr_eq(pool_try_take(pool), &probe.marks[2]);
    ck_assert_ptr_null(pool_try_take(pool));
    stop_and_destroy(pool);
    /* Taken items belong to the taker: the pool never ran them. */
    ck_assert_uint_eq(count_of(&probe.handled), 1);
    ck_assert_uint_eq(count_of(&probe.marks[1]), 0);
}
END_TEST

START_TEST(test_submit_after_stop_ecanceled)
{
    struct pool *pool = create_pool(2, 4);
    pool_stop(pool);
    errno = 0;
    ck_assert_int_eq(pool_submit(pool, &probe.marks[0]), -1);
    ck_assert_int_eq(errno, ECANCELED);
    ck_assert_int_eq(pool_join(pool, WAIT_MS), 0);
    pool_destroy(pool, on_drop, &probe);
    ck_assert_uint_eq(count_of(&probe.marks[0]), 0);
    ck_assert_uint_eq(count_of(&probe.dropped), 0);
}
END_TEST

START_TEST(test_create_fails_when_a_thread_fails_to_start)
{
    enum { THREADS = 4 };
    probe.fail_index = 3;
    char err[PYR_ERR_LEN] = "";
    struct pool *pool = pool_create("unit", THREADS, 4, &callbacks, err);
    ck_assert_ptr_null(pool);
    ck_assert_msg(strstr(err, "failed to start") != NULL, "message '%s'", err);
    /* The threads that did start were stopped cleanly; the failed one was not. */
    for (unsigned i = 1; i <= THREADS; i++) {
        ck_assert_uint_eq(count_of(&probe.start_calls[i]), 1);
        ck_assert_uint_eq(count_of(&probe.stop_calls[i]), i == probe.fail_index ? 0 : 1);
    }
}
END_TEST

/* A room (room.h) whose threads' CPU times the test sets: a thread in
 * `computing` gains CPU time a thousand times faster than the wall clock,
 * the others none. */
static atomic_int computing[MAX_THREADS + 1];
static struct room *test_room;
static atomic_uint handled_by[MAX_ITEMS];
static int lock_released_at_gate; /* as C code that let go of the GIL */
/* A run that keeps the others out longer than any test waits: only the
 * CPU times decide. */
static const int64_t LONG_ALONE_US = (int64_t)600 * 1000000;

static int64_t fake_cpu(void *ctx, unsigned index)
{
    PYR_UNUSED(ctx);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    return index <= MAX_THREADS && atomic_load(&computing[index]) ? ns * 1000 : 1000;
}

/* As a worker: the item is a request (in the room), then the thread takes
 * what was queued meanwhile, unless room_should_leave. */
static void on_room_handle(void *thread_state, void *item)
{
    struct worker_state *w = thread_state;
    while (item) {
        room_run_started(test_room, w->index);
        atomic_store(&handled_by[(atomic_uint *)item - probe.marks], w->index);
        if (lock_released_at_gate)
            on_release(thread_state);
        on_handle(thread_state, item);
        if (lock_released_at_gate)
            on_acquire(thread_state);
        room_run_done(test_room, w->index);
        item = room_should_leave(test_room, w->index) ? NULL : pool_try_take(probe.pool);
    }
}

/* A room where a run keeps the others out for at most alone_us. */
static struct pool *create_room_pool(unsigned threads, int with_lock, int64_t alone_us)
{
    lock_released_at_gate = 0;
    for (unsigned i = 0; i <= MAX_THREADS; i++)
        atomic_store(&computing[i], 0);
    for (unsigned i = 0; i < MAX_ITEMS; i++)
        atomic_store(&handled_by[i], 0);
    test_room = room_create(threads, alone_us, fake_cpu, NULL);
    ck_assert_ptr_nonnull(test_room);
    struct pool_callbacks with_room = callbacks;
    with_room.handle = on_room_handle;
    with_room.room = test_room;
    if (with_lock) {
        with_room.acquire = on_acquire;
        with_room.release = on_release;
    }
    char err[PYR_ERR_LEN] = "";
    probe.pool = pool_create("unit", threads, 8, &with_room, err);
    ck_assert_msg(probe.pool != NULL, "pool_create: %s", err);
    return probe.pool;
}

static void stop_room_pool(struct pool *pool)
{
    stop_and_destroy(pool);
    room_destroy(test_room);
    test_room = NULL;
}

/* Item 0 goes to a thread that holds it at the closed gate, computing or
 * not; then item 1 is queued for the other thread. Returns the first
 * thread's index. */
static unsigned hold_item_0_then_queue_item_1(struct pool *pool, int computes)
{
    set_gate(0);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[0]), 0);
    wait_for_waiting(1);
    unsigned busy = atomic_load(&handled_by[0]);
    atomic_store(&computing[busy], computes);
    ck_assert_int_eq(pool_submit(pool, &probe.marks[1]), 0);
    return busy;
}

START_TEST(test_a_woken_thread_waits_while_the_busy_one_computes)
{
    struct pool *pool = create_room_pool(2, 0, LONG_ALONE_US);
    unsigned busy = hold_item_0_then_queue_item_1(pool, 1);
    /* The other thread is woken for item 1 and waits for room: item 1
     * stays queued while item 0 computes. */
    nanosleep(&(struct timespec){.tv_nsec = 30 * 1000000L}, NULL);
    ck_assert_uint_eq(count_of(&probe.marks[1]), 0);
    ck_assert_uint_eq(atomic_load(&handled_by[1]), 0);
    pthread_mutex_lock(&probe.mutex);
    unsigned at_gate = probe.waiting;
    pthread_mutex_unlock(&probe.mutex);
    ck_assert_uint_eq(at_gate, 1);
    atomic_store(&computing[busy], 0);
    set_gate(1);
    for (int i = 0; i < WAIT_MS && count_of(&probe.marks[1]) == 0; i++)
        nanosleep(&(struct timespec){.tv_nsec = 1000000L}, NULL);
    ck_assert_uint_eq(count_of(&probe.marks[1]), 1);
    stop_room_pool(pool);
}
END_TEST

START_TEST(test_a_woken_thread_does_not_wait_for_one_waiting_outside_the_gil)
{
    struct pool *pool = create_room_pool(2, 0, LONG_ALONE_US);
    /* Item 0's thread uses no CPU (it sleeps or waits on I/O): item 1
     * starts beside it (the room's wait would outlast the test). */
    unsigned busy = hold_item_0_then_queue_item_1(pool, 0);
    wait_for_waiting(2);
    ck_assert_uint_ne(atomic_load(&handled_by[1]), busy);
    stop_room_pool(pool);
}
END_TEST

START_TEST(test_a_woken_thread_starts_beside_one_computing_without_the_lock)
{
    /* The busy thread computes (its CPU time grows) in C code that let go
     * of the callbacks' lock (the GIL): the woken thread finds the lock
     * free, twice, and starts item 1 beside it. */
    struct pool *pool = create_room_pool(2, 1, LONG_ALONE_US);
    lock_released_at_gate = 1;
    unsigned busy = hold_item_0_then_queue_item_1(pool, 1);
    wait_for_waiting(2);
    atomic_store(&computing[busy], 0);
    stop_room_pool(pool);
}
END_TEST

START_TEST(test_a_woken_thread_starts_once_the_busy_run_has_lasted_alone_us)
{
    /* However long the busy thread computes with one connection (here
     * until the gate opens: a long request or a client's pipeline of
     * them), item 1 starts beside it once that run has lasted alone_us
     * (20 ms). */
    struct pool *pool = create_room_pool(2, 0, 20 * 1000);
    unsigned busy = hold_item_0_then_queue_item_1(pool, 1);
    wait_for_waiting(2);
    ck_assert_uint_ne(atomic_load(&handled_by[1]), busy);
    atomic_store(&computing[busy], 0);
    stop_room_pool(pool);
}
END_TEST

Suite *make_pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, setup_probe, teardown_probe);
    tcase_add_test(core, test_every_item_handled_once);
    tcase_add_test(core, test_thread_start_and_stop_once_per_thread);
    tcase_add_test(core, test_stop_drains_queued_items);
    tcase_add_test(core, test_join_times_out_while_a_handler_blocks);
    tcase_add_test(core, test_busy_counts_queued_and_running_items);
    tcase_add_test(core, test_destroy_drops_leftover_items);
    tcase_add_test(core, test_try_take_returns_queued_items_in_order);
    tcase_add_test(core, test_thread_waiting_to_acquire_holds_no_item);
    tcase_add_test(core, test_a_woken_thread_waits_while_the_busy_one_computes);
    tcase_add_test(core, test_a_woken_thread_does_not_wait_for_one_waiting_outside_the_gil);
    tcase_add_test(core, test_a_woken_thread_starts_beside_one_computing_without_the_lock);
    tcase_add_test(core, test_a_woken_thread_starts_once_the_busy_run_has_lasted_alone_us);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_checked_fixture(limits, setup_probe, teardown_probe);
    tcase_add_test(limits, test_submit_full_queue_eagain);
    tcase_add_test(limits, test_burst_at_an_idle_pool_is_not_refused);
    tcase_add_test(limits, test_a_watching_thread_makes_room_for_one_more_item);
    tcase_add_test(limits, test_an_item_no_idle_thread_takes_wakes_the_watching_thread);
    tcase_add_test(limits, test_a_thread_done_with_its_item_makes_room_for_one_more);
    tcase_add_test(limits, test_a_thread_both_finishing_and_watching_makes_room_for_one_item);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_checked_fixture(errors, setup_probe, teardown_probe);
    tcase_add_test(errors, test_submit_after_stop_ecanceled);
    tcase_add_test(errors, test_create_fails_when_a_thread_fails_to_start);
    suite_add_tcase(s, errors);
    return s;
}

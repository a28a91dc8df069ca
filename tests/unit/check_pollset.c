/* Tests for src/pollset.c: slots grow, and taking one moves the last in;
 * the poll thread skeleton hands connections over, refuses them when its
 * owner or a stop says so, and gives back every one it holds at the end. */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "pyruvate/common.h"

#include "pyruvate/conn.h"
#include "pyruvate/pollset.h"
#include "suites.h"

START_TEST(test_add_grows_and_take_moves_the_last)
{
    static struct conn conns[200];
    struct pollset set = {0};
    ck_assert_int_eq(pollset_add(&set, 100, POLLIN, NULL), 0);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(pollset_add(&set, i, POLLOUT, &conns[i]), i + 1);
    ck_assert_uint_eq(set.nfds, 201);
    ck_assert_uint_ge(set.capacity, 201);
    ck_assert_int_eq(set.fds[0].fd, 100);
    ck_assert_int_eq(set.fds[5].events, POLLOUT);
    ck_assert_uint_eq(set.slots[5].bytes, 0);
    ck_assert_ptr_eq(pollset_take(&set, 5), &conns[4]);
    ck_assert_uint_eq(set.nfds, 200);
    ck_assert_ptr_eq(set.slots[5].conn, &conns[199]); /* the last moved in */
    ck_assert_int_eq(set.fds[5].fd, 199);
    ck_assert_ptr_eq(pollset_take(&set, 199), &conns[198]); /* the last itself */
    ck_assert_uint_eq(set.nfds, 199);
    pollset_free(&set);
    ck_assert_ptr_null(set.fds);
    ck_assert_uint_eq(set.nfds, 0);
}
END_TEST

/* A poll thread like the idle set's: whatever it is handed it watches
 * (the descriptors are -1, which poll() skips) and counts. */
struct watcher {
    struct poll_thread pt;
    pthread_mutex_t mutex;
    pthread_cond_t changed;
    unsigned taken;  /* under mutex: connections moved into the pollset */
    unsigned rounds; /* under mutex: rounds that saw a wake-up */
    int refuse;      /* under pt.mutex: admit says no */
    unsigned dropped;
};

static void *watch_main(void *arg)
{
    struct watcher *w = arg;
    for (;;) {
        struct conn *incoming;
        int stopping;
        int n = poll_thread_wait(&w->pt, 10000, &incoming, &stopping);
        ck_assert_int_ge(n, 0);
        unsigned taken = 0;
        for (struct conn *c; (c = poll_thread_pop(&incoming)) != NULL; taken++) {
            ck_assert_ptr_null(c->next);
            ck_assert_int_gt(pollset_add(&w->pt.polls, c->fd, POLLIN, c), 0);
        }
        pthread_mutex_lock(&w->mutex);
        w->taken += taken;
        w->rounds += n > 0;
        pthread_cond_broadcast(&w->changed);
        pthread_mutex_unlock(&w->mutex);
        if (stopping)
            return NULL;
    }
}

static int admit_unless_refusing(struct conn *c, void *ctx)
{
    (void)c;
    return ((struct watcher *)ctx)->refuse ? -1 : 0;
}

static void count_drop(struct conn *c, void *ctx)
{
    ck_assert_int_eq(c->fd, -1);
    ((struct watcher *)ctx)->dropped++;
}

/* Waits (bounded) until the watcher has taken `count` connections. */
static void wait_taken(struct watcher *w, unsigned count)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&w->mutex);
    while (w->taken < count && pthread_cond_timedwait(&w->changed, &w->mutex, &deadline) == 0)
        ;
    unsigned taken = w->taken;
    pthread_mutex_unlock(&w->mutex);
    ck_assert_uint_eq(taken, count);
}

START_TEST(test_poll_thread_hands_over_and_drops_the_rest)
{
    static struct conn conns[5];
    static struct watcher w;
    w = (struct watcher){0};
    pthread_mutex_init(&w.mutex, NULL);
    pthread_cond_init(&w.changed, NULL);
    for (int i = 0; i < 5; i++)
        conns[i] = (struct conn){.fd = -1};
    ck_assert_int_eq(poll_thread_start(&w.pt, watch_main, &w), 0);

    /* Handed over: the thread wakes up and finds them in its next round. */
    ck_assert_int_eq(poll_thread_add(&w.pt, &conns[0], admit_unless_refusing, &w), 0);
    ck_assert_int_eq(poll_thread_add(&w.pt, &conns[1], NULL, NULL), 0);
    wait_taken(&w, 2);
    ck_assert_uint_ge(w.rounds, 1);
    ck_assert_uint_eq(w.pt.polls.nfds, 3); /* the wake-up fd and the two */

    /* The owner refuses: the caller keeps c, the thread never sees it. */
    pthread_mutex_lock(&w.pt.mutex);
    w.refuse = 1;
    pthread_mutex_unlock(&w.pt.mutex);
    ck_assert_int_eq(poll_thread_add(&w.pt, &conns[2], admit_unless_refusing, &w), -1);
    ck_assert_ptr_null(conns[2].next);

    /* Stopping: one still on the incoming list and the two watched ones go
     * to drop (the thread may or may not have taken the last one in). */
    pthread_mutex_lock(&w.pt.mutex);
    w.refuse = 0;
    pthread_mutex_unlock(&w.pt.mutex);
    ck_assert_int_eq(poll_thread_add(&w.pt, &conns[3], admit_unless_refusing, &w), 0);
    poll_thread_stop(&w.pt, count_drop, &w);
    ck_assert_uint_eq(w.dropped, 3);
    ck_assert_ptr_null(w.pt.polls.fds);
    pthread_cond_destroy(&w.changed);
    pthread_mutex_destroy(&w.mutex);
}
END_TEST

static void *return_at_once(void *arg)
{
    return arg;
}

START_TEST(test_poll_thread_requeue_and_add_after_stop)
{
    static struct conn conns[3];
    struct poll_thread pt = {0};
    for (int i = 0; i < 3; i++)
        conns[i] = (struct conn){.fd = -1};
    ck_assert_int_eq(poll_thread_start(&pt, return_at_once, NULL), 0);
    pthread_join(pt.thread, NULL); /* no thread reads the list: it keeps what comes */

    ck_assert_int_eq(poll_thread_add(&pt, &conns[0], NULL, NULL), 0);
    poll_thread_requeue(&pt, &conns[1]);
    struct conn *incoming;
    int stopping = -1;
    /* The add signalled the wake-up fd: one ready without waiting. */
    ck_assert_int_eq(poll_thread_wait(&pt, 0, &incoming, &stopping), 1);
    ck_assert_int_eq(stopping, 0);
    /* Newest first, as pushed. */
    ck_assert_ptr_eq(poll_thread_pop(&incoming), &conns[1]);
    ck_assert_ptr_eq(poll_thread_pop(&incoming), &conns[0]);
    ck_assert_ptr_null(poll_thread_pop(&incoming));
    /* The wake-up was taken: the next round finds nothing. */
    ck_assert_int_eq(poll_thread_wait(&pt, 0, &incoming, &stopping), 0);
    ck_assert_ptr_null(incoming);

    pthread_mutex_lock(&pt.mutex);
    pt.stopping = 1;
    pthread_mutex_unlock(&pt.mutex);
    ck_assert_int_eq(poll_thread_add(&pt, &conns[2], NULL, NULL), -1);
    ck_assert_int_eq(poll_thread_wait(&pt, 0, &incoming, &stopping), 0);
    ck_assert_int_eq(stopping, 1);
    /* Clean up as poll_thread_stop would, its thread being gone. */
    pthread_mutex_destroy(&pt.mutex);
    close(pt.wake_fd);
    pollset_free(&pt.polls);
}
END_TEST

Suite *make_pollset_suite(void)
{
    Suite *s = suite_create("pollset");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_add_grows_and_take_moves_the_last);
    tcase_add_test(core, test_poll_thread_hands_over_and_drops_the_rest);
    tcase_add_test(core, test_poll_thread_requeue_and_add_after_stop);
    suite_add_tcase(s, core);
    return s;
}

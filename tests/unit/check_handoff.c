/* Tests for src/handoff.c: answered connections wait in the set until a
 * client sends, a wait times out, or the acceptor takes back the stale
 * ones; the acceptor is woken only when it would look too late. */
#include <check.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pyruvate/conn.h"
#include "pyruvate/handoff.h"
#include "suites.h"

/* Only c->fd and c->next matter to the set. */
struct pair {
    struct conn conn;
    int client;
};

static void open_pair(struct pair *p)
{
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    memset(&p->conn, 0, sizeof(p->conn));
    p->conn.fd = fds[0];
    p->client = fds[1];
}

static void close_pair(struct pair *p)
{
    close(p->conn.fd);
    close(p->client);
}

static unsigned list_length(struct conn *list)
{
    unsigned n = 0;
    for (; list != NULL; list = list->next)
        n++;
    return n;
}

/* A set holding two connections put at 1000 ms, quiet first. */
static struct handoff *set_of_quiet_and_talking(struct pair *quiet, struct pair *talking)
{
    struct handoff *h = handoff_create();
    open_pair(quiet);
    open_pair(talking);
    ck_assert_int_eq(handoff_put(h, &quiet->conn, 1000), 0);
    ck_assert_int_eq(handoff_put(h, &talking->conn, 1000), 0);
    return h;
}

static int wakes;

static void count_wake(void *ctx)
{
    (void)ctx;
    wakes++;
}

START_TEST(test_take_ready_takes_only_a_connection_whose_client_sent)
{
    struct pair quiet, talking;
    struct handoff *h = set_of_quiet_and_talking(&quiet, &talking);
    ck_assert_ptr_null(handoff_take_ready(h));
    ck_assert_int_eq(write(talking.client, "G", 1), 1);
    ck_assert_ptr_eq(handoff_take_ready(h), &talking.conn);
    ck_assert_ptr_null(talking.conn.next);
    ck_assert_uint_eq(handoff_count(h), 1);
    ck_assert_uint_eq(list_length(handoff_close(h)), 1);
    handoff_destroy(h);
    close_pair(&quiet);
    close_pair(&talking);
}
END_TEST

START_TEST(test_wait_ready_times_out_or_takes_the_one_that_sent)
{
    struct handoff *h = handoff_create();
    struct pair p;
    open_pair(&p);
    enum handoff_wait outcome = HANDOFF_LOOK_AGAIN;
    ck_assert_ptr_null(handoff_wait_ready(h, 1, &outcome));
    ck_assert_int_eq(outcome, HANDOFF_TIMED_OUT); /* empty */
    ck_assert_int_eq(handoff_put(h, &p.conn, 1000), 0);
    ck_assert_ptr_null(handoff_wait_ready(h, 1, &outcome));
    ck_assert_int_eq(outcome, HANDOFF_TIMED_OUT);
    ck_assert_int_eq(write(p.client, "G", 1), 1);
    ck_assert_ptr_eq(handoff_wait_ready(h, 1000, &outcome), &p.conn);
    ck_assert_uint_eq(handoff_count(h), 0);
    handoff_destroy(h);
    close_pair(&p);
}
END_TEST

struct waiter {
    struct handoff *h;
    enum handoff_wait outcome;
    struct conn *taken;
};

static void *wait_on_the_set(void *arg)
{
    struct waiter *w = arg;
    w->taken = handoff_wait_ready(w->h, 10000, &w->outcome);
    return NULL;
}

START_TEST(test_wake_watcher_ends_the_wait_without_taking_a_connection)
{
    struct pair quiet, talking;
    struct handoff *h = set_of_quiet_and_talking(&quiet, &talking);
    handoff_wake_watcher(h); /* nobody watches: nothing to end */
    enum handoff_wait outcome;
    ck_assert_ptr_null(handoff_wait_ready(h, 1, &outcome));
    ck_assert_int_eq(outcome, HANDOFF_TIMED_OUT);
    struct waiter w = {.h = h};
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, wait_on_the_set, &w), 0);
    /* Until the thread watches, a look of our own says so. */
    for (int i = 0; i < 5000; i++) {
        handoff_wait_ready(h, 0, &outcome);
        if (outcome == HANDOFF_WATCHED_ELSEWHERE)
            break;
        usleep(1000);
    }
    ck_assert_int_eq(outcome, HANDOFF_WATCHED_ELSEWHERE);
    handoff_wake_watcher(h);
    pthread_join(thread, NULL);
    ck_assert_int_eq(w.outcome, HANDOFF_WOKEN);
    ck_assert_ptr_null(w.taken);
    /* The client that sends now is the next look's. */
    ck_assert_int_eq(write(talking.client, "G", 1), 1);
    ck_assert_ptr_eq(handoff_wait_ready(h, 1000, &outcome), &talking.conn);
    ck_assert_ptr_eq(handoff_take_all(h), &quiet.conn);
    handoff_destroy(h);
    close_pair(&quiet);
    close_pair(&talking);
}
END_TEST

START_TEST(test_take_stale_takes_what_waited_long_enough_and_says_when_next)
{
    struct handoff *h = handoff_create();
    struct pair old, young;
    open_pair(&old);
    open_pair(&young);
    int sleep_ms = -1;
    ck_assert_ptr_null(handoff_take_stale(h, 1000, 0, 250, &sleep_ms));
    ck_assert_int_eq(sleep_ms, 250); /* empty: as long as the caller likes */
    ck_assert_int_eq(handoff_put(h, &old.conn, 1000), 0);
    ck_assert_int_eq(handoff_put(h, &young.conn, 1001), 0);
    ck_assert_ptr_null(handoff_take_stale(h, 1001, 0, 250, &sleep_ms));
    ck_assert_int_eq(sleep_ms, HANDOFF_MAX_MS - 1);
    struct conn *stale = handoff_take_stale(h, 1000 + HANDOFF_MAX_MS, 0, 250, &sleep_ms);
    ck_assert_ptr_eq(stale, &old.conn);
    ck_assert_ptr_null(stale->next);
    ck_assert_int_eq(sleep_ms, 1);
    ck_assert_ptr_eq(handoff_take_all(h), &young.conn);
    handoff_destroy(h);
    close_pair(&old);
    close_pair(&young);
}
END_TEST

START_TEST(test_cover_wakes_the_acceptor_once_and_only_when_it_would_look_late)
{
    struct handoff *h = handoff_create();
    wakes = 0;
    handoff_set_waker(h, count_wake, NULL);
    struct pair p;
    open_pair(&p);
    handoff_cover(h, 1000);
    ck_assert_int_eq(wakes, 0); /* nothing waits */
    int sleep_ms;
    handoff_take_stale(h, 1000, 0, 250, &sleep_ms); /* the acceptor sleeps 250 ms */
    ck_assert_int_eq(handoff_put(h, &p.conn, 1000), 0);
    handoff_cover(h, 1000);
    handoff_cover(h, 1000);
    ck_assert_int_eq(wakes, 1);
    handoff_take_stale(h, 1001, 0, 250, &sleep_ms); /* now it looks in time */
    handoff_cover(h, 1001);
    ck_assert_int_eq(wakes, 1);
    handoff_take_all(h);
    handoff_destroy(h);
    close_pair(&p);
}
END_TEST

START_TEST(test_unwatched_set_gives_back_what_a_client_sent_while_a_worker_is_idle)
{
    struct handoff *h = handoff_create();
    wakes = 0;
    handoff_set_waker(h, count_wake, NULL);
    struct pair quiet, talking;
    open_pair(&quiet);
    open_pair(&talking);
    ck_assert_int_eq(handoff_put(h, &quiet.conn, 1000), 0);
    ck_assert_int_eq(handoff_put(h, &talking.conn, 1000), 0);
    int sleep_ms;
    ck_assert_ptr_null(handoff_take_stale(h, 1000, 1, 250, &sleep_ms));
    ck_assert_int_eq(sleep_ms, HANDOFF_MAX_MS); /* watched: only the stale rule */
    /* The last worker leaves the set to run an application: the acceptor
     * must look sooner than it planned. */
    handoff_cover(h, 1000);
    ck_assert_int_eq(wakes, 1);
    ck_assert_int_eq(write(talking.client, "G", 1), 1);
    ck_assert_ptr_null(handoff_take_stale(h, 1000, 1, 250, &sleep_ms));
    ck_assert_int_eq(sleep_ms, HANDOFF_UNWATCHED_MS);
    /* No worker idle: nobody could answer it sooner. */
    ck_assert_ptr_null(handoff_take_stale(h, 1000 + HANDOFF_UNWATCHED_MS, 0, 250, &sleep_ms));
    handoff_cover(h, 1000); /* the next application call (same millisecond) */
    struct conn *back = handoff_take_stale(h, 1000 + HANDOFF_UNWATCHED_MS, 1, 250, &sleep_ms);
    ck_assert_ptr_eq(back, &talking.conn);
    ck_assert_ptr_null(back->next);
    ck_assert_uint_eq(handoff_count(h), 1); /* the quiet one waits on */
    ck_assert_ptr_eq(handoff_take_all(h), &quiet.conn);
    handoff_destroy(h);
    close_pair(&quiet);
    close_pair(&talking);
}
END_TEST

START_TEST(test_with_no_worker_idle_the_acceptor_sleeps_until_the_stale_rule)
{
    /* It cannot act on the unwatched rule then: it must not spin on it. */
    struct handoff *h = handoff_create();
    struct pair p;
    open_pair(&p);
    ck_assert_int_eq(handoff_put(h, &p.conn, 1000), 0);
    handoff_cover(h, 1000);
    ck_assert_int_eq(write(p.client, "G", 1), 1);
    int sleep_ms = -1;
    ck_assert_ptr_null(handoff_take_stale(h, 1000 + HANDOFF_UNWATCHED_MS, 0, 250, &sleep_ms));
    ck_assert_int_eq(sleep_ms, HANDOFF_MAX_MS - HANDOFF_UNWATCHED_MS);
    ck_assert_ptr_null(handoff_take_stale(h, 1000 + HANDOFF_UNWATCHED_MS, 0, 250, &sleep_ms));
    ck_assert_int_eq(sleep_ms, HANDOFF_MAX_MS - HANDOFF_UNWATCHED_MS);
    ck_assert_ptr_eq(handoff_take_all(h), &p.conn);
    handoff_destroy(h);
    close_pair(&p);
}
END_TEST

START_TEST(test_set_a_worker_looked_at_since_is_left_to_the_workers)
{
    struct pair quiet, talking;
    struct handoff *h = set_of_quiet_and_talking(&quiet, &talking);
    handoff_cover(h, 1000);
    ck_assert_ptr_null(handoff_take_ready(h)); /* a worker looks: nothing yet */
    ck_assert_int_eq(write(talking.client, "G", 1), 1);
    int sleep_ms;
    ck_assert_ptr_null(handoff_take_stale(h, 1000 + HANDOFF_UNWATCHED_MS, 1, 250, &sleep_ms));
    ck_assert_ptr_eq(handoff_take_ready(h), &talking.conn);
    ck_assert_ptr_eq(handoff_take_all(h), &quiet.conn);
    handoff_destroy(h);
    close_pair(&quiet);
    close_pair(&talking);
}
END_TEST

START_TEST(test_put_is_refused_when_full_or_closed)
{
    struct handoff *h = handoff_create();
    struct conn conns[HANDOFF_CAPACITY + 1];
    memset(conns, 0, sizeof(conns));
    for (unsigned i = 0; i < HANDOFF_CAPACITY; i++)
        ck_assert_int_eq(handoff_put(h, &conns[i], 1000), 0);
    ck_assert_int_eq(handoff_put(h, &conns[HANDOFF_CAPACITY], 1000), -1);
    ck_assert_uint_eq(list_length(handoff_close(h)), HANDOFF_CAPACITY);
    ck_assert_int_eq(handoff_put(h, &conns[0], 1000), -1);
    ck_assert_uint_eq(handoff_count(h), 0);
    handoff_destroy(h);
}
END_TEST

Suite *make_handoff_suite(void)
{
    Suite *s = suite_create("handoff");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_take_ready_takes_only_a_connection_whose_client_sent);
    tcase_add_test(tc, test_wait_ready_times_out_or_takes_the_one_that_sent);
    tcase_add_test(tc, test_wake_watcher_ends_the_wait_without_taking_a_connection);
    tcase_add_test(tc, test_take_stale_takes_what_waited_long_enough_and_says_when_next);
    tcase_add_test(tc, test_cover_wakes_the_acceptor_once_and_only_when_it_would_look_late);
    tcase_add_test(tc, test_unwatched_set_gives_back_what_a_client_sent_while_a_worker_is_idle);
    tcase_add_test(tc, test_with_no_worker_idle_the_acceptor_sleeps_until_the_stale_rule);
    tcase_add_test(tc, test_set_a_worker_looked_at_since_is_left_to_the_workers);
    tcase_add_test(tc, test_put_is_refused_when_full_or_closed);
    suite_add_tcase(s, tc);
    return s;
}

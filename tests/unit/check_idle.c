/* Tests for src/idle.c: quiet connections are held, handed back when their
 * client speaks, closed when their deadline passes, and released on stop. */
#include <check.h>
#include <pthread.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "pyruvate/idle.h"
#include "suites.h"

enum { WAIT_MS = 3000 };

static const struct request_limits limits = {
    .max_target_length = 256, .max_header_bytes = 1024, .max_headers = 8, .max_body_size = 1024};

struct record {
    pthread_mutex_t mutex;
    pthread_cond_t changed;
    struct conn *woken[4], *expired[4];
    unsigned woken_count, expired_count;
};

static struct record record;

static void on_wake(struct conn *c, void *ctx)
{
    struct record *r = ctx;
    pthread_mutex_lock(&r->mutex);
    r->woken[r->woken_count++ % 4] = c;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->mutex);
}

static void on_expire(struct conn *c, void *ctx)
{
    struct record *r = ctx;
    pthread_mutex_lock(&r->mutex);
    r->expired[r->expired_count++ % 4] = c;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->mutex);
}

static void setup(void)
{
    memset(&record, 0, sizeof(record));
    pthread_mutex_init(&record.mutex, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&record.changed, &attr);
    pthread_condattr_destroy(&attr);
}

static void teardown(void)
{
    pthread_cond_destroy(&record.changed);
    pthread_mutex_destroy(&record.mutex);
}

/* Waits until *counter reaches want; fails after WAIT_MS. */
static void wait_count(unsigned *counter, unsigned want)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&record.mutex);
    while (*counter < want &&
           pthread_cond_timedwait(&record.changed, &record.mutex, &deadline) == 0)
        ;
    unsigned got = *counter;
    pthread_mutex_unlock(&record.mutex);
    ck_assert_uint_ge(got, want);
}

static struct conn *new_conn(int *client, int64_t deadline_ms)
{
    int fds[2];
    make_socketpair(fds);
    struct sockaddr_un peer = {.sun_family = AF_UNIX};
    struct conn *c = conn_create(fds[0], NULL, (struct sockaddr *)&peer, sizeof(peer), &limits);
    ck_assert_ptr_nonnull(c);
    c->deadline_ms = deadline_ms;
    *client = fds[1];
    return c;
}

static const struct idle_callbacks callbacks = {
    .wake = on_wake, .expire = on_expire, .ctx = &record};

START_TEST(test_readable_connection_is_handed_back)
{
    char err[PYR_ERR_LEN];
    struct idle_set *set = idle_start(&callbacks, err);
    ck_assert_ptr_nonnull(set);
    int quiet_client, client;
    struct conn *quiet = new_conn(&quiet_client, monotonic_ms() + 60000);
    struct conn *c = new_conn(&client, monotonic_ms() + 60000);
    ck_assert_int_eq(idle_add(set, quiet), 0);
    ck_assert_int_eq(idle_add(set, c), 0);
    ck_assert_int_eq(write(client, "G", 1), 1);
    wait_count(&record.woken_count, 1);
    ck_assert_ptr_eq(record.woken[0], c);
    conn_free(c);
    /* The quiet one is still held, and released on stop. */
    idle_stop(set);
    ck_assert_uint_eq(record.expired_count, 1);
    ck_assert_ptr_eq(record.expired[0], quiet);
    conn_free(quiet);
    close(client);
    close(quiet_client);
}
END_TEST

START_TEST(test_deadline_closes_connection)
{
    char err[PYR_ERR_LEN];
    struct idle_set *set = idle_start(&callbacks, err);
    ck_assert_ptr_nonnull(set);
    int client;
    struct conn *c = new_conn(&client, monotonic_ms() - 1); /* already due */
    ck_assert_int_eq(idle_add(set, c), 0);
    wait_count(&record.expired_count, 1);
    ck_assert_ptr_eq(record.expired[0], c);
    ck_assert_uint_eq(record.woken_count, 0);
    conn_free(c);
    idle_stop(set);
    close(client);
}
END_TEST

START_TEST(test_hangup_is_handed_back)
{
    char err[PYR_ERR_LEN];
    struct idle_set *set = idle_start(&callbacks, err);
    ck_assert_ptr_nonnull(set);
    int client;
    struct conn *c = new_conn(&client, monotonic_ms() + 60000);
    ck_assert_int_eq(idle_add(set, c), 0);
    close(client); /* the acceptor reads the EOF and closes */
    wait_count(&record.woken_count, 1);
    ck_assert_ptr_eq(record.woken[0], c);
    conn_free(c);
    idle_stop(set);
}
END_TEST

START_TEST(test_many_connections_grow_the_set)
{
    enum { COUNT = 150 }; /* more than the set's first allocation */
    char err[PYR_ERR_LEN];
    struct idle_set *set = idle_start(&callbacks, err);
    ck_assert_ptr_nonnull(set);
    int clients[COUNT];
    struct conn *conns[COUNT];
    for (int i = 0; i < COUNT; i++) {
        conns[i] = new_conn(&clients[i], monotonic_ms() + 60000);
        ck_assert_int_eq(idle_add(set, conns[i]), 0);
    }
    ck_assert_int_eq(write(clients[COUNT - 1], "G", 1), 1);
    wait_count(&record.woken_count, 1);
    ck_assert_ptr_eq(record.woken[0], conns[COUNT - 1]);
    idle_stop(set);
    ck_assert_uint_eq(record.expired_count, COUNT - 1);
    for (int i = 0; i < COUNT; i++) {
        conn_free(conns[i]);
        close(clients[i]);
    }
}
END_TEST

static unsigned evicted_rounds;

static void on_evicted(void *ctx)
{
    struct record *r = ctx;
    pthread_mutex_lock(&r->mutex);
    evicted_rounds++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->mutex);
}

START_TEST(test_evict_closes_the_longest_idle_first)
{
    struct idle_callbacks with_eviction = callbacks;
    with_eviction.evicted = on_evicted;
    evicted_rounds = 0;
    char err[PYR_ERR_LEN];
    struct idle_set *set = idle_start(&with_eviction, err);
    ck_assert_ptr_nonnull(set);
    ck_assert_int_eq(idle_evict(set), -1); /* nothing held */
    int clients[3];
    struct conn *conns[3];
    int64_t idle_since[3] = {300, 100, 200};
    for (int i = 0; i < 3; i++) {
        conns[i] = new_conn(&clients[i], monotonic_ms() + 60000);
        conns[i]->idle_since_ms = idle_since[i];
        ck_assert_int_eq(idle_add(set, conns[i]), 0);
    }
    ck_assert_int_eq(idle_evict(set), 0);
    wait_count(&record.expired_count, 1);
    ck_assert_ptr_eq(record.expired[0], conns[1]);
    wait_count(&evicted_rounds, 1);
    ck_assert_int_eq(idle_evict(set), 0);
    wait_count(&record.expired_count, 2);
    ck_assert_ptr_eq(record.expired[1], conns[2]);
    idle_stop(set);
    for (int i = 0; i < 3; i++) {
        conn_free(conns[i]);
        close(clients[i]);
    }
}
END_TEST

START_TEST(test_drain_closes_only_connections_quiet_for_the_grace)
{
    char err[PYR_ERR_LEN];
    struct idle_set *set = idle_start(&callbacks, err);
    ck_assert_ptr_nonnull(set);
    int old_client, recent_client;
    struct conn *old = new_conn(&old_client, monotonic_ms() + 600000);
    struct conn *recent = new_conn(&recent_client, monotonic_ms() + 600000);
    old->idle_since_ms = monotonic_ms() - 120000;
    recent->idle_since_ms = monotonic_ms();
    ck_assert_int_eq(idle_add(set, old), 0);
    ck_assert_int_eq(idle_add(set, recent), 0);
    idle_drain(set, 60000);
    wait_count(&record.expired_count, 1);
    ck_assert_ptr_eq(record.expired[0], old);
    /* The recent one keeps its grace, for a request on its way. */
    ck_assert_uint_eq(record.woken_count, 0);
    ck_assert_uint_eq(record.expired_count, 1);
    idle_stop(set);
    ck_assert_ptr_eq(record.expired[1], recent);
    conn_free(old);
    conn_free(recent);
    close(old_client);
    close(recent_client);
}
END_TEST

Suite *make_idle_suite(void)
{
    Suite *s = suite_create("idle");
    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_readable_connection_is_handed_back);
    tcase_add_test(core, test_deadline_closes_connection);
    tcase_add_test(core, test_hangup_is_handed_back);
    tcase_add_test(core, test_many_connections_grow_the_set);
    tcase_add_test(core, test_evict_closes_the_longest_idle_first);
    tcase_add_test(core, test_drain_closes_only_connections_quiet_for_the_grace);
    suite_add_tcase(s, core);
    return s;
}

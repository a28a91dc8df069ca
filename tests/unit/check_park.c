/* Tests for src/park.c: a parked connection goes back when its socket is
 * writable again or its deadline passed, a refused hand-back is retried,
 * the caps hold, and stop hands over what is left. */
#include <check.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "pyruvate/park.h"
#include "suites.h"

/* Bounds for waiting on the park thread, not timings: generous for a loaded machine. */
enum { WAIT_MS = 10000 };

static const struct request_limits limits = {
    .max_target_length = 256, .max_header_bytes = 1024, .max_headers = 8, .max_body_size = 1024};

struct record {
    pthread_mutex_t mutex;
    pthread_cond_t changed;
    struct conn *ready[4], *dropped[4];
    unsigned ready_count, dropped_count;
    unsigned refuse; /* hand-backs to refuse first */
    unsigned refused;
};

static struct record record;

static int on_ready(struct conn *c, void *ctx)
{
    struct record *r = ctx;
    pthread_mutex_lock(&r->mutex);
    int rc = 0;
    if (r->refuse > 0) {
        r->refuse--;
        r->refused++;
        rc = -1;
    } else {
        r->ready[r->ready_count++ % 4] = c;
    }
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->mutex);
    return rc;
}

static void on_drop(struct conn *c, void *ctx)
{
    struct record *r = ctx;
    r->dropped[r->dropped_count++ % 4] = c;
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

static void wait_ready(unsigned want)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&record.mutex);
    while (record.ready_count < want &&
           pthread_cond_timedwait(&record.changed, &record.mutex, &deadline) == 0)
        ;
    unsigned got = record.ready_count;
    pthread_mutex_unlock(&record.mutex);
    ck_assert_uint_ge(got, want);
}

/* The park thread forgets a connection just after handing it back, so its
 * count may lag the hand-back callback for a moment. */
static void wait_count(struct park_set *set, unsigned want)
{
    int64_t deadline = monotonic_ms() + WAIT_MS;
    while (park_count(set) != want && monotonic_ms() < deadline) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&pause, NULL);
    }
    ck_assert_uint_eq(park_count(set), want);
}

/* A connection whose socket is full: nothing more can be written to it. */
static struct conn *full_conn(int *client, int64_t deadline_ms)
{
    int fds[2];
    make_socketpair(fds);
    char block[4096];
    memset(block, 'x', sizeof(block));
    while (write(fds[0], block, sizeof(block)) > 0)
        ;
    struct sockaddr_un peer = {.sun_family = AF_UNIX};
    struct conn *c = conn_create(fds[0], NULL, (struct sockaddr *)&peer, sizeof(peer), &limits);
    ck_assert_ptr_nonnull(c);
    c->deadline_ms = deadline_ms;
    *client = fds[1];
    return c;
}

/* Reads everything the peer wrote, so its socket is writable again. */
static void drain(int client)
{
    char block[65536];
    while (read(client, block, sizeof(block)) > 0)
        ;
}

static const struct park_callbacks callbacks = {.ready = on_ready, .ctx = &record};

START_TEST(test_writable_again_is_handed_back)
{
    char err[PYR_ERR_LEN];
    struct park_set *set = park_start(&callbacks, 8, 1 << 20, err);
    ck_assert_ptr_nonnull(set);
    int stalled_client, client;
    struct conn *stalled = full_conn(&stalled_client, monotonic_ms() + 60000);
    struct conn *c = full_conn(&client, monotonic_ms() + 60000);
    ck_assert_int_eq(park_add(set, stalled, 100), 0);
    ck_assert_int_eq(park_add(set, c, 100), 0);
    ck_assert_uint_eq(park_count(set), 2);
    drain(client);
    wait_ready(1);
    ck_assert_ptr_eq(record.ready[0], c);
    wait_count(set, 1);
    conn_free(c);
    park_stop(set, on_drop, &record);
    ck_assert_uint_eq(record.dropped_count, 1);
    ck_assert_ptr_eq(record.dropped[0], stalled);
    conn_free(stalled);
    close(client);
    close(stalled_client);
}
END_TEST

START_TEST(test_deadline_hands_back)
{
    char err[PYR_ERR_LEN];
    struct park_set *set = park_start(&callbacks, 8, 1 << 20, err);
    ck_assert_ptr_nonnull(set);
    int client;
    struct conn *c = full_conn(&client, monotonic_ms() - 1); /* already due */
    ck_assert_int_eq(park_add(set, c, 0), 0);
    wait_ready(1);
    ck_assert_ptr_eq(record.ready[0], c);
    park_stop(set, on_drop, &record);
    ck_assert_uint_eq(record.dropped_count, 0);
    conn_free(c);
    close(client);
}
END_TEST

START_TEST(test_refused_hand_back_is_retried)
{
    char err[PYR_ERR_LEN];
    struct park_set *set = park_start(&callbacks, 8, 1 << 20, err);
    ck_assert_ptr_nonnull(set);
    record.refuse = 2;
    int client;
    struct conn *c = full_conn(&client, monotonic_ms() + 60000);
    ck_assert_int_eq(park_add(set, c, 0), 0);
    drain(client);
    wait_ready(1);
    ck_assert_uint_eq(record.refused, 2);
    ck_assert_ptr_eq(record.ready[0], c);
    wait_count(set, 0);
    park_stop(set, on_drop, &record);
    conn_free(c);
    close(client);
}
END_TEST

START_TEST(test_caps_refuse_more)
{
    char err[PYR_ERR_LEN];
    struct park_set *set = park_start(&callbacks, 2, 1000, err);
    ck_assert_ptr_nonnull(set);
    int clients[3];
    struct conn *conns[3];
    for (int i = 0; i < 3; i++)
        conns[i] = full_conn(&clients[i], monotonic_ms() + 60000);
    ck_assert_int_eq(park_add(set, conns[0], 600), 0);
    ck_assert_int_eq(park_add(set, conns[1], 600), -1); /* bytes */
    ck_assert_int_eq(park_add(set, conns[1], 400), 0);
    ck_assert_int_eq(park_add(set, conns[2], 0), -1); /* count */
    park_stop(set, on_drop, &record);
    ck_assert_uint_eq(record.dropped_count, 2);
    for (int i = 0; i < 3; i++) {
        conn_free(conns[i]);
        close(clients[i]);
    }
}
END_TEST

Suite *make_park_suite(void)
{
    Suite *s = suite_create("park");
    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_writable_again_is_handed_back);
    tcase_add_test(core, test_deadline_hands_back);
    tcase_add_test(core, test_refused_hand_back_is_retried);
    tcase_add_test(core, test_caps_refuse_more);
    suite_add_tcase(s, core);
    return s;
}

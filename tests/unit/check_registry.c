/* Tests for src/registry.c: stop requests reach every listed server (a byte
 * on its wake descriptor, the shortest timeout kept), and none after it is
 * removed; visit sees exactly the published servers. */
#include <check.h>
#include <poll.h>
#include <unistd.h>

#include "pyruvate/registry.h"
#include "suites.h"

static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

START_TEST(test_nothing_listed_asks_nobody)
{
    ck_assert_uint_eq(registry_request_stop(REGISTRY_OWN_TIMEOUT), 0);
}
END_TEST

START_TEST(test_stop_request_wakes_and_keeps_shortest_timeout)
{
    int pipe_fds[2];
    ck_assert_int_eq(pipe(pipe_fds), 0);
    struct registry_entry e;
    int timeout_ms = 0;
    registry_add(&e, pipe_fds[1]);
    ck_assert_int_eq(registry_stop_requested(&e, &timeout_ms), 0);

    ck_assert_uint_eq(registry_request_stop(REGISTRY_OWN_TIMEOUT), 1);
    ck_assert(readable(pipe_fds[0]));
    ck_assert_int_eq(registry_stop_requested(&e, &timeout_ms), 1);
    ck_assert_int_eq(timeout_ms, REGISTRY_OWN_TIMEOUT);

    registry_request_stop(5000);
    registry_request_stop(200);
    registry_request_stop(3000);                 /* longer: no effect */
    registry_request_stop(REGISTRY_OWN_TIMEOUT); /* none given: no effect */
    ck_assert_int_eq(registry_stop_requested(&e, &timeout_ms), 1);
    ck_assert_int_eq(timeout_ms, 200);

    registry_remove(&e);
    ck_assert_uint_eq(registry_request_stop(0), 0);
    ck_assert_int_eq(timeout_ms, 200);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}
END_TEST

START_TEST(test_add_starts_without_a_request)
{
    struct registry_entry e;
    int timeout_ms;
    registry_add(&e, -1); /* no wake descriptor: flag only */
    ck_assert_uint_eq(registry_request_stop(100), 1);
    registry_remove(&e);
    registry_add(&e, -1); /* served again: the old request is gone */
    ck_assert_int_eq(registry_stop_requested(&e, &timeout_ms), 0);
    registry_remove(&e);
}
END_TEST

static void count_visit(void *server, void *ctx)
{
    *(int *)ctx += *(int *)server;
}

START_TEST(test_visit_sees_the_published_servers)
{
    struct registry_entry a, b, c, starting;
    int one = 1, ten = 10, hundred = 100, sum = 0;
    registry_add(&a, -1);
    registry_add(&b, -1);
    registry_add(&c, -1);
    registry_add(&starting, -1); /* listed, not yet published */
    registry_publish(&a, &one);
    registry_publish(&b, &ten);
    registry_publish(&c, &hundred);
    registry_remove(&b);
    ck_assert_uint_eq(registry_visit(count_visit, &sum), 2);
    ck_assert_int_eq(sum, 101);
    registry_publish(&c, NULL); /* withdrawn while it stops */
    sum = 0;
    ck_assert_uint_eq(registry_visit(count_visit, &sum), 1);
    ck_assert_int_eq(sum, 1);
    ck_assert_uint_eq(registry_request_stop(REGISTRY_OWN_TIMEOUT), 3); /* still asked */
    registry_remove(&starting);
    registry_remove(&a);
    registry_remove(&a); /* not listed: no effect */
    registry_remove(&c);
    sum = 0;
    ck_assert_uint_eq(registry_visit(count_visit, &sum), 0);
    ck_assert_int_eq(sum, 0);
}
END_TEST

Suite *make_registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_nothing_listed_asks_nobody);
    tcase_add_test(core, test_stop_request_wakes_and_keeps_shortest_timeout);
    tcase_add_test(core, test_add_starts_without_a_request);
    tcase_add_test(core, test_visit_sees_the_published_servers);
    suite_add_tcase(s, core);
    return s;
}

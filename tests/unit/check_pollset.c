/* Tests for src/pollset.c: slots grow, and taking one moves the last in. */
#include <check.h>
#include <poll.h>

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

Suite *make_pollset_suite(void)
{
    Suite *s = suite_create("pollset");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_add_grows_and_take_moves_the_last);
    suite_add_tcase(s, core);
    return s;
}

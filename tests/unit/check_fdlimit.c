/* Tests for src/fdlimit.c: max_connections fits under the open file limit. */
#include <check.h>
#include <sys/resource.h>

#include "pyruvate/fdlimit.h"
#include "suites.h"

START_TEST(test_connections_fit_under_the_limit)
{
    struct fd_budget budget = {.soft = 128, .hard = 128, .in_use = 10};
    unsigned fitted = fdlimit_max_connections(50000, &budget);
    ck_assert_uint_eq(budget.reserve, 16);
    ck_assert_uint_eq(fitted, 128 - 10 - 16);
}
END_TEST

START_TEST(test_a_small_request_is_kept)
{
    struct fd_budget budget = {.soft = 1048576, .hard = 1048576, .in_use = 10};
    ck_assert_uint_eq(fdlimit_max_connections(50000, &budget), 50000);
    ck_assert_uint_eq(budget.reserve, 1024); /* an eighth, capped */
}
END_TEST

START_TEST(test_at_least_one_connection)
{
    struct fd_budget budget = {.soft = 20, .hard = 20, .in_use = 19};
    ck_assert_uint_eq(fdlimit_max_connections(50000, &budget), 1);
}
END_TEST

START_TEST(test_raise_reaches_the_hard_limit)
{
    struct rlimit before;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &before), 0);
    struct fd_budget budget;
    ck_assert_int_eq(fdlimit_raise(&budget), 0);
    ck_assert_uint_eq(budget.soft_before, before.rlim_cur);
    ck_assert_uint_ge(budget.soft, budget.soft_before);
    ck_assert_uint_ge(budget.in_use, 3); /* stdin, stdout, stderr at least */
    struct rlimit after;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &after), 0);
    ck_assert_uint_eq(after.rlim_cur, budget.soft);
    setrlimit(RLIMIT_NOFILE, &before);
}
END_TEST

Suite *make_fdlimit_suite(void)
{
    Suite *s = suite_create("fdlimit");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_connections_fit_under_the_limit);
    tcase_add_test(core, test_a_small_request_is_kept);
    tcase_add_test(core, test_at_least_one_connection);
    tcase_add_test(core, test_raise_reaches_the_hard_limit);
    suite_add_tcase(s, core);
    return s;
}

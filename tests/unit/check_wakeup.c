/* Tests for src/wakeup.c: signal makes the eventfd readable, drain quiet. */
#include <check.h>
#include <poll.h>
#include <unistd.h>

#include "pyruvate/wakeup.h"
#include "suites.h"

static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

START_TEST(test_signal_then_drain)
{
    int fd = wakeup_open();
    ck_assert_int_ge(fd, 0);
    ck_assert(!readable(fd));
    wakeup_signal(fd);
    wakeup_signal(fd); /* wake-ups add up to one */
    ck_assert(readable(fd));
    wakeup_drain(fd);
    ck_assert(!readable(fd));
    wakeup_drain(fd); /* nothing pending: does not block */
    close(fd);
}
END_TEST

Suite *make_wakeup_suite(void)
{
    Suite *s = suite_create("wakeup");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_signal_then_drain);
    suite_add_tcase(s, core);
    return s;
}

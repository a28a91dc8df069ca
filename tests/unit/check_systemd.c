/* Tests for src/systemd.c: which sockets are ours, and READY=1. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pyruvate/systemd.h"
#include "suites.h"

static void set_listen_env(const char *pid, const char *fds)
{
    if (pid)
        setenv("LISTEN_PID", pid, 1);
    else
        unsetenv("LISTEN_PID");
    if (fds)
        setenv("LISTEN_FDS", fds, 1);
    else
        unsetenv("LISTEN_FDS");
}

START_TEST(test_listen_count)
{
    char own[24];
    snprintf(own, sizeof(own), "%ld", (long)getpid());
    set_listen_env(own, "2");
    ck_assert_int_eq(systemd_listen_count(), 2);
    /* Meant for another process (the variables were inherited). */
    set_listen_env("1", "2");
    ck_assert_int_eq(systemd_listen_count(), 0);
    set_listen_env(own, "two");
    ck_assert_int_eq(systemd_listen_count(), 0);
    set_listen_env(own, "-1");
    ck_assert_int_eq(systemd_listen_count(), 0);
    set_listen_env(NULL, NULL);
    ck_assert_int_eq(systemd_listen_count(), 0);
}
END_TEST

START_TEST(test_notify)
{
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(systemd_notify("READY=1"), 0);

    char dir[] = "/tmp/pyruvate-notify-XXXXXX", path[96];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/notify", dir);
    int receiver = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", path);
    ck_assert_int_eq(bind(receiver, (struct sockaddr *)&address, sizeof(address)), 0);
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(systemd_notify("READY=1"), 1);
    char got[32] = "";
    ck_assert_int_eq(recv(receiver, got, sizeof(got) - 1, 0), 7);
    ck_assert_str_eq(got, "READY=1");
    close(receiver);
    unlink(path);

    /* Nobody listens there any more. */
    ck_assert_int_eq(systemd_notify("READY=1"), -1);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    ck_assert_int_eq(systemd_notify("READY=1"), -1);
    ck_assert_int_eq(errno, EINVAL);
    unsetenv("NOTIFY_SOCKET");
    rmdir(dir);
}
END_TEST

Suite *make_systemd_suite(void)
{
    Suite *s = suite_create("systemd");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_listen_count);
    tcase_add_test(core, test_notify);
    suite_add_tcase(s, core);
    return s;
}

/* Tests for src/listen.c: address parsing and opening listening sockets. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "pyruvate/listen.h"
#include "suites.h"

struct address_case {
    const char *address;
    const char *host; /* NULL: the address must be rejected */
    const char *port;
};

static const struct address_case address_cases[] = {
    {"127.0.0.1:8080", "127.0.0.1", "8080"},
    {"[::1]:80", "::1", "80"},
    {"[fe80::1%eth0]:443", "fe80::1%eth0", "443"},
    {"localhost:0", "localhost", "0"},
    {"example.com:65535", "example.com", "65535"},
    {"0.0.0.0:1", "0.0.0.0", "1"},
    {"127.0.0.1", NULL, NULL},       /* no port */
    {"127.0.0.1:", NULL, NULL},      /* empty port */
    {"127.0.0.1:65536", NULL, NULL}, /* port out of range */
    {"127.0.0.1:99999", NULL, NULL},
    {"127.0.0.1:123456", NULL, NULL}, /* more than five digits */
    {"127.0.0.1:8a", NULL, NULL},     /* non-digit port */
    {"127.0.0.1:-1", NULL, NULL},
    {"127.0.0.1: 80", NULL, NULL},
    {":80", NULL, NULL}, /* empty host */
    {"[]:80", NULL, NULL},
    {"::1:80", NULL, NULL}, /* v6 without brackets is ambiguous */
    {"a:b:80", NULL, NULL},
    {"[::1]80", NULL, NULL},
    {"[::1]", NULL, NULL},
    {"[::1", NULL, NULL},
    {"", NULL, NULL},
};

START_TEST(test_parse_address)
{
    const struct address_case *c = &address_cases[_i];
    char host[256] = "untouched", port[16] = "untouched", err[PYR_ERR_LEN] = "";
    int rc = listen_parse_address(c->address, host, sizeof(host), port, sizeof(port), err);
    if (c->host == NULL) {
        ck_assert_msg(rc == -1, "'%s' was accepted as host '%s' port '%s'", c->address, host, port);
        ck_assert_msg(strstr(err, c->address) != NULL, "message '%s'", err);
        return;
    }
    ck_assert_msg(rc == 0, "'%s' rejected: %s", c->address, err);
    ck_assert_str_eq(host, c->host);
    ck_assert_str_eq(port, c->port);
}
END_TEST

START_TEST(test_parse_address_small_buffers)
{
    char host[4], port[16], err[PYR_ERR_LEN];
    ck_assert_int_eq(listen_parse_address("abcd:80", host, sizeof(host), port, sizeof(port), err),
                     -1);
    ck_assert_int_eq(listen_parse_address("abc:80", host, sizeof(host), port, sizeof(port), err),
                     0);
    ck_assert_str_eq(host, "abc");
}
END_TEST

static void assert_listening_socket(const struct listener *l, int family)
{
    ck_assert_int_ge(l->fd, 0);
    ck_assert_int_eq(l->family, family);
    ck_assert(fcntl(l->fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(l->fd, F_GETFD) & FD_CLOEXEC);
    int listening = 0;
    socklen_t size = sizeof(listening);
    ck_assert_int_eq(getsockopt(l->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size), 0);
    ck_assert_int_eq(listening, 1);

    /* server_port is the port the kernel picked for ":0". */
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    ck_assert_int_eq(getsockname(l->fd, (struct sockaddr *)&bound, &bound_len), 0);
    unsigned port = family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    ck_assert_uint_ne(port, 0);
    ck_assert_uint_eq(strtoul(l->server_port, NULL, 10), port);
}

START_TEST(test_open_ipv4_ephemeral)
{
    struct listener l;
    char err[PYR_ERR_LEN] = "";
    ck_assert_msg(listen_open(&l, "127.0.0.1:0", 16, err) == 0, "%s", err);
    assert_listening_socket(&l, AF_INET);
    ck_assert_str_eq(l.server_name, "127.0.0.1");
    listen_close(&l);
    ck_assert_int_eq(l.fd, -1);
    listen_close(&l); /* twice is harmless */
}
END_TEST

START_TEST(test_open_ipv6_ephemeral)
{
    struct listener l;
    char err[PYR_ERR_LEN] = "";
    if (listen_open(&l, "[::1]:0", 16, err) < 0) {
        /* Hosts without IPv6 cannot run this test. */
        ck_assert_msg(errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL, "%s", err);
        return;
    }
    assert_listening_socket(&l, AF_INET6);
    ck_assert_str_eq(l.server_name, "::1");
    int v6only = 0;
    socklen_t size = sizeof(v6only);
    ck_assert_int_eq(getsockopt(l.fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &size), 0);
    ck_assert_int_eq(v6only, 1);
    listen_close(&l);
}
END_TEST

START_TEST(test_open_port_in_use)
{
    struct listener first, second;
    char err[PYR_ERR_LEN] = "", address[64];
    ck_assert_msg(listen_open(&first, "127.0.0.1:0", 16, err) == 0, "%s", err);
    snprintf(address, sizeof(address), "127.0.0.1:%s", first.server_port);
    errno = 0;
    ck_assert_int_eq(listen_open(&second, address, 16, err), -1);
    ck_assert_int_eq(errno, EADDRINUSE);
    ck_assert_int_eq(second.fd, -1);
    ck_assert_msg(strstr(err, address) != NULL, "message '%s' does not name %s", err, address);
    listen_close(&first);
}
END_TEST

START_TEST(test_open_bad_address)
{
    struct listener l;
    char err[PYR_ERR_LEN] = "";
    errno = 0;
    ck_assert_int_eq(listen_open(&l, "127.0.0.1", 16, err), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(l.fd, -1);
    ck_assert_ptr_nonnull(strstr(err, "127.0.0.1"));
}
END_TEST

/* A fresh socket path in a new private directory. */
static void temp_socket_path(char *path, size_t size, char *dir, size_t dir_size)
{
    snprintf(dir, dir_size, "/tmp/pyruvate-unit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, size, "%s/s.sock", dir);
}

/* The race between bind() and setting the mode cannot be timed from
 * outside, so this file's own bind() stands in for libc's (the linker
 * prefers the executable's definition) and, when asked, plays the attacker
 * right after the real bind: the new socket file is moved away and a
 * symlink to a victim file put in its place. */
static const char *swap_path, *swap_victim, *swap_moved;
static mode_t mode_at_bind;

int bind(int fd, __CONST_SOCKADDR_ARG address, socklen_t len)
{
    int rc = (int)syscall(SYS_bind, fd, address.__sockaddr__, len);
    if (rc == 0 && swap_path) {
        struct stat info;
        ck_assert_int_eq(lstat(swap_path, &info), 0);
        mode_at_bind = info.st_mode & 07777;
        if (swap_victim) {
            ck_assert_int_eq(rename(swap_path, swap_moved), 0);
            ck_assert_int_eq(symlink(swap_victim, swap_path), 0);
        }
    }
    return rc;
}

START_TEST(test_unix_socket_mode_is_set_before_the_file_exists)
{
    char dir[64], path[96], err[PYR_ERR_LEN];
    temp_socket_path(path, sizeof(path), dir, sizeof(dir));
    mode_t old_umask = umask(022);
    swap_path = path;
    struct listener l;
    ck_assert_int_eq(listen_open_unix(&l, path, 0660, 16, err), 0);
    swap_path = NULL;
    umask(old_umask);
    /* Never more open than asked, from the start; then exactly as asked. */
    ck_assert_uint_eq(mode_at_bind, 0640);
    struct stat info;
    ck_assert_int_eq(lstat(path, &info), 0);
    ck_assert_uint_eq(info.st_mode & 07777, 0660);
    listen_close(&l);
    rmdir(dir);
}
END_TEST

START_TEST(test_unix_socket_mode_does_not_follow_a_symlink)
{
    char dir[64], path[96], victim[128], moved[128], err[PYR_ERR_LEN];
    temp_socket_path(path, sizeof(path), dir, sizeof(dir));
    snprintf(victim, sizeof(victim), "%s/victim", dir);
    snprintf(moved, sizeof(moved), "%s/moved.sock", dir);
    int victim_fd = open(victim, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(victim_fd, 0);
    ck_assert_int_eq(fchmod(victim_fd, 0600), 0);
    close(victim_fd);
    swap_path = path;
    swap_victim = victim;
    swap_moved = moved;
    struct listener l;
    int rc = listen_open_unix(&l, path, 0666, 16, err);
    swap_path = swap_victim = swap_moved = NULL;
    struct stat info;
    ck_assert_int_eq(stat(victim, &info), 0);
    ck_assert_uint_eq(info.st_mode & 07777, 0600); /* the victim is untouched */
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(lstat(victim, &info), 0); /* and still there */
    unlink(path);
    unlink(moved);
    unlink(victim);
    rmdir(dir);
}
END_TEST

START_TEST(test_unix_socket_mode_stale_file_and_removal)
{
    char dir[64], path[96], err[PYR_ERR_LEN];
    temp_socket_path(path, sizeof(path), dir, sizeof(dir));
    /* A socket file left by a dead server: nobody accepts on it. */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", path);
    ck_assert_int_eq(bind(stale, (struct sockaddr *)&address, sizeof(address)), 0);
    close(stale);

    struct listener l;
    ck_assert_int_eq(listen_open_unix(&l, path, 0600, 16, err), 0);
    ck_assert_int_eq(l.family, AF_UNIX);
    ck_assert_str_eq(l.server_name, path);
    ck_assert_str_eq(l.server_port, "");
    struct stat info;
    ck_assert_int_eq(stat(path, &info), 0);
    ck_assert_int_eq(info.st_mode & 0777, 0600);

    /* A second server on the same live path is refused. */
    struct listener second;
    errno = 0;
    ck_assert_int_eq(listen_open_unix(&second, path, 0, 16, err), -1);
    ck_assert_int_eq(errno, EADDRINUSE);
    ck_assert_ptr_nonnull(strstr(err, path));

    listen_close(&l);
    ck_assert_int_eq(stat(path, &info), -1); /* removed on close */
    rmdir(dir);
}
END_TEST

START_TEST(test_unix_socket_errors)
{
    char err[PYR_ERR_LEN], long_path[200];
    struct listener l;
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    ck_assert_int_eq(listen_open_unix(&l, long_path, 0, 16, err), -1);
    ck_assert_int_eq(errno, ENAMETOOLONG);
    ck_assert_int_eq(listen_open_unix(&l, "/nonexistent-dir/x.sock", 0, 16, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent-dir/x.sock"));
    ck_assert_int_eq(l.fd, -1);
}
END_TEST

START_TEST(test_adopt_listening_sockets)
{
    char err[PYR_ERR_LEN], dir[64], path[96];
    struct listener opened, adopted;
    ck_assert_int_eq(listen_open(&opened, "[::1]:0", 16, err), 0);
    ck_assert_int_eq(listen_adopt(&adopted, dup(opened.fd), err), 0);
    ck_assert_int_eq(adopted.family, AF_INET6);
    ck_assert_str_eq(adopted.server_name, "::1");
    ck_assert_str_eq(adopted.server_port, opened.server_port);
    ck_assert_int_ne(fcntl(adopted.fd, F_GETFL) & O_NONBLOCK, 0);
    listen_close(&adopted);
    listen_close(&opened);

    temp_socket_path(path, sizeof(path), dir, sizeof(dir));
    ck_assert_int_eq(listen_open_unix(&opened, path, 0, 16, err), 0);
    ck_assert_int_eq(listen_adopt(&adopted, dup(opened.fd), err), 0);
    ck_assert_int_eq(adopted.family, AF_UNIX);
    ck_assert_str_eq(adopted.server_name, path);
    listen_close(&adopted);
    listen_close(&opened);
    rmdir(dir);
}
END_TEST

START_TEST(test_adopt_refuses_other_descriptors)
{
    char err[PYR_ERR_LEN];
    struct listener l;
    int unbound = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(listen_adopt(&l, unbound, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a listening socket"));
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(listen_adopt(&l, fds[0], err), -1);
    /* Refused descriptors are not ours: still open, flags untouched. */
    ck_assert_int_eq(fcntl(unbound, F_GETFD), 0);
    ck_assert_int_eq(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
    int datagram = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_eq(listen_check(datagram, err), -1);
    ck_assert_int_eq(fcntl(datagram, F_GETFD), 0);
    close(datagram);
    close(unbound);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

Suite *make_listen_suite(void)
{
    Suite *s = suite_create("listen");
    TCase *core = tcase_create("core");
    tcase_add_loop_test(core, test_parse_address, 0, ARRAY_SIZE(address_cases));
    tcase_add_test(core, test_open_ipv4_ephemeral);
    tcase_add_test(core, test_open_ipv6_ephemeral);
    tcase_add_test(core, test_unix_socket_mode_stale_file_and_removal);
    tcase_add_test(core, test_unix_socket_mode_is_set_before_the_file_exists);
    tcase_add_test(core, test_unix_socket_mode_does_not_follow_a_symlink);
    tcase_add_test(core, test_adopt_listening_sockets);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_parse_address_small_buffers);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_open_port_in_use);
    tcase_add_test(errors, test_open_bad_address);
    tcase_add_test(errors, test_unix_socket_errors);
    tcase_add_test(errors, test_adopt_refuses_other_descriptors);
    suite_add_tcase(s, errors);
    return s;
}

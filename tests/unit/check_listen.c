/* Tests for src/listen.c: address parsing and opening listening sockets. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

Suite *make_listen_suite(void)
{
    Suite *s = suite_create("listen");
    TCase *core = tcase_create("core");
    tcase_add_loop_test(core, test_parse_address, 0, ARRAY_SIZE(address_cases));
    tcase_add_test(core, test_open_ipv4_ephemeral);
    tcase_add_test(core, test_open_ipv6_ephemeral);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_parse_address_small_buffers);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_open_port_in_use);
    tcase_add_test(errors, test_open_bad_address);
    suite_add_tcase(s, errors);
    return s;
}

/* Tests for src/proxy.c: trusted proxy lists and forwarded header values. */
#include <arpa/inet.h>
#include <check.h>
#include <string.h>
#include <sys/un.h>

#include "pyruvate/proxy.h"
#include "suites.h"

static struct sockaddr_storage ipv4(const char *text)
{
    struct sockaddr_storage s;
    memset(&s, 0, sizeof(s));
    struct sockaddr_in *in = (struct sockaddr_in *)&s;
    in->sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, text, &in->sin_addr), 1);
    return s;
}

static struct sockaddr_storage ipv6(const char *text)
{
    struct sockaddr_storage s;
    memset(&s, 0, sizeof(s));
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s;
    in6->sin6_family = AF_INET6;
    ck_assert_int_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    return s;
}

START_TEST(test_trust_list)
{
    struct proxy_trust trust;
    char err[PYR_ERR_LEN];
    ck_assert_int_eq(proxy_trust_parse(" 127.0.0.1, ::1 ,10.0.0.2", &trust, err), 0);
    ck_assert_int_eq(trust.count, 3);
    struct sockaddr_storage a = ipv4("127.0.0.1"), b = ipv6("::1"), c = ipv4("10.0.0.2"),
                            d = ipv4("10.0.0.3"), mapped = ipv6("::ffff:127.0.0.1");
    ck_assert(proxy_is_trusted(&trust, &a));
    ck_assert(proxy_is_trusted(&trust, &b));
    ck_assert(proxy_is_trusted(&trust, &c));
    ck_assert(!proxy_is_trusted(&trust, &d));
    /* An IPv4 client on a dual-stack socket arrives v4-mapped. */
    ck_assert(proxy_is_trusted(&trust, &mapped));
    struct sockaddr_storage unix_peer = {.ss_family = AF_UNIX};
    ck_assert(!proxy_is_trusted(&trust, &unix_peer));
}
END_TEST

START_TEST(test_trust_any_and_unix)
{
    struct proxy_trust trust;
    char err[PYR_ERR_LEN];
    struct sockaddr_storage unix_peer = {.ss_family = AF_UNIX}, a = ipv4("192.0.2.1");
    ck_assert_int_eq(proxy_trust_parse("unix", &trust, err), 0);
    ck_assert(proxy_is_trusted(&trust, &unix_peer));
    ck_assert(!proxy_is_trusted(&trust, &a));
    ck_assert_int_eq(proxy_trust_parse("*", &trust, err), 0);
    ck_assert(proxy_is_trusted(&trust, &a));
    struct proxy_trust off = {0};
    ck_assert(!proxy_is_trusted(&off, &a));
}
END_TEST

START_TEST(test_trust_errors)
{
    struct proxy_trust trust;
    char err[PYR_ERR_LEN];
    ck_assert_int_eq(proxy_trust_parse("127.0.0.1, proxy.example", &trust, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "proxy.example"));
    ck_assert_int_eq(proxy_trust_parse("300.1.1.1", &trust, err), -1);
}
END_TEST

struct element_case {
    const char *value;
    const char *last;
};

static const struct element_case element_cases[] = {
    {"1.2.3.4", "1.2.3.4"},
    {"1.2.3.4, 5.6.7.8", "5.6.7.8"},
    {"1.2.3.4,5.6.7.8 ", "5.6.7.8"},
    {"a, ", ""},
    {"", ""},
};

START_TEST(test_last_element)
{
    const struct element_case *c = &element_cases[_i];
    size_t start, len;
    proxy_last_element(c->value, strlen(c->value), &start, &len);
    ck_assert_uint_eq(len, strlen(c->last));
    ck_assert(memcmp(c->value + start, c->last, len) == 0);
}
END_TEST

struct port_case {
    const char *value;
    const char *address;
};

static const struct port_case port_cases[] = {
    {"10.0.0.1", "10.0.0.1"},
    {"10.0.0.1:555", "10.0.0.1"},
    {"[2001:db8::1]:4711", "2001:db8::1"},
    {"[2001:db8::1]", "2001:db8::1"},
    {"2001:db8::1", "2001:db8::1"},
};

START_TEST(test_strip_port)
{
    const struct port_case *c = &port_cases[_i];
    size_t start = 0, len = strlen(c->value);
    proxy_strip_port(c->value, &start, &len);
    ck_assert_uint_eq(len, strlen(c->address));
    ck_assert(memcmp(c->value + start, c->address, len) == 0);
}
END_TEST

START_TEST(test_forwarded_params)
{
    /* RFC 7239 §4: the last element is the one our proxy appended. */
    const char *value = "for=1.1.1.1;proto=http, for=\"[2001:db8::1]:80\";Proto=https;"
                        "host=\"a;b.example\"";
    size_t start, len;
    ck_assert_int_eq(proxy_forwarded_param(value, strlen(value), "for", &start, &len), 1);
    ck_assert_uint_eq(len, strlen("[2001:db8::1]:80"));
    ck_assert(memcmp(value + start, "[2001:db8::1]:80", len) == 0);
    ck_assert_int_eq(proxy_forwarded_param(value, strlen(value), "proto", &start, &len), 1);
    ck_assert(len == 5 && memcmp(value + start, "https", 5) == 0);
    ck_assert_int_eq(proxy_forwarded_param(value, strlen(value), "host", &start, &len), 1);
    ck_assert(len == 11 && memcmp(value + start, "a;b.example", 11) == 0);
    ck_assert_int_eq(proxy_forwarded_param(value, strlen(value), "by", &start, &len), 0);
    ck_assert_int_eq(proxy_forwarded_param("for", 3, "for", &start, &len), 0);
}
END_TEST

Suite *make_proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_trust_list);
    tcase_add_test(core, test_trust_any_and_unix);
    tcase_add_loop_test(core, test_last_element, 0,
                        sizeof(element_cases) / sizeof(element_cases[0]));
    tcase_add_loop_test(core, test_strip_port, 0, sizeof(port_cases) / sizeof(port_cases[0]));
    tcase_add_test(core, test_forwarded_params);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_trust_errors);
    suite_add_tcase(s, errors);
    return s;
}

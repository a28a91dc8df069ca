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
    ck_assert(proxy_is_trusted(&trust, (struct sockaddr *)&a));
    ck_assert(proxy_is_trusted(&trust, (struct sockaddr *)&b));
    ck_assert(proxy_is_trusted(&trust, (struct sockaddr *)&c));
    ck_assert(!proxy_is_trusted(&trust, (struct sockaddr *)&d));
    /* An IPv4 client on a dual-stack socket arrives v4-mapped. */
    ck_assert(proxy_is_trusted(&trust, (struct sockaddr *)&mapped));
    struct sockaddr_storage unix_peer = {.ss_family = AF_UNIX};
    ck_assert(!proxy_is_trusted(&trust, (struct sockaddr *)&unix_peer));
}
END_TEST

START_TEST(test_trust_any_and_unix)
{
    struct proxy_trust trust;
    char err[PYR_ERR_LEN];
    struct sockaddr_storage unix_peer = {.ss_family = AF_UNIX}, a = ipv4("192.0.2.1");
    ck_assert_int_eq(proxy_trust_parse("unix", &trust, err), 0);
    ck_assert(proxy_is_trusted(&trust, (struct sockaddr *)&unix_peer));
    ck_assert(!proxy_is_trusted(&trust, (struct sockaddr *)&a));
    ck_assert_int_eq(proxy_trust_parse("*", &trust, err), 0);
    ck_assert(proxy_is_trusted(&trust, (struct sockaddr *)&a));
    struct proxy_trust off = {0};
    ck_assert(!proxy_is_trusted(&off, (struct sockaddr *)&a));
}
END_TEST

START_TEST(test_trust_networks)
{
    struct proxy_trust trust;
    char err[PYR_ERR_LEN];
    ck_assert_int_eq(
        proxy_trust_parse("10.0.0.0/8, 192.168.1.1/31, fd00::/8, 172.16.0.0/0x", &trust, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "172.16.0.0/0x"));
    ck_assert_int_eq(proxy_trust_parse("10.0.0.0/8, 192.168.1.1/31, fd00::/8", &trust, err), 0);
    struct sockaddr_storage in[] = {ipv4("10.255.0.1"), ipv4("192.168.1.0"), ipv6("fd12::1"),
                                    ipv6("::ffff:10.1.2.3")};
    struct sockaddr_storage out[] = {ipv4("11.0.0.1"), ipv4("192.168.1.2"), ipv6("fe80::1"),
                                     ipv6("::a01:203")};
    for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
        ck_assert(proxy_is_trusted(&trust, (struct sockaddr *)&in[i]));
        ck_assert(!proxy_is_trusted(&trust, (struct sockaddr *)&out[i]));
    }
    ck_assert_int_eq(proxy_trust_parse("0.0.0.0/0", &trust, err), 0);
    ck_assert(proxy_is_trusted(&trust, (struct sockaddr *)&out[0]));
    ck_assert(!proxy_is_trusted(
        &trust, (struct sockaddr *)&out[2])); /* an IPv4 network holds no IPv6 peer */
    ck_assert_int_eq(proxy_trust_parse("10.0.0.0/33", &trust, err), -1);
    ck_assert_int_eq(proxy_trust_parse("::/129", &trust, err), -1);
    ck_assert_int_eq(proxy_trust_parse("10.0.0.0/", &trust, err), -1);
    ck_assert_int_eq(proxy_trust_parse("::1/128", &trust, err), 0);
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

/* A request holding the given header lines, for proxy_resolve. */
struct fake_request {
    char base[2048];
    struct request_header headers[16];
    struct request request;
};

static void fake_request(struct fake_request *f, const char *const lines[][2], unsigned n)
{
    memset(f, 0, sizeof(*f));
    size_t used = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t name_len = strlen(lines[i][0]), value_len = strlen(lines[i][1]);
        ck_assert(used + name_len + value_len < sizeof(f->base));
        memcpy(f->base + used, lines[i][0], name_len);
        f->headers[i].name = (struct span){used, name_len};
        used += name_len;
        memcpy(f->base + used, lines[i][1], value_len);
        f->headers[i].value = (struct span){used, value_len};
        used += value_len;
    }
    f->request.headers = f->headers;
    f->request.header_count = n;
}

struct resolve_case {
    const char *headers; /* trusted_proxy_headers */
    unsigned hops;       /* trusted_proxy_count */
    const char *lines[4][2];
    const char *address; /* expected REMOTE_ADDR, "" for none */
    const char *host;    /* expected HTTP_HOST, "" for none */
    enum proxy_scheme scheme;
};

static const struct resolve_case resolve_cases[] = {
    /* the rightmost entry, from every line combined (HAProxy adds a line) */
    {"x-forwarded-for",
     1,
     {{"X-Forwarded-For", "6.6.6.6"}, {"x-forwarded-for", "198.51.100.2"}},
     "198.51.100.2",
     "",
     PROXY_SCHEME_NONE},
    {"x-forwarded-for",
     1,
     {{"X-Forwarded-For", "6.6.6.6, 198.51.100.2:4711"}},
     "198.51.100.2",
     "",
     PROXY_SCHEME_NONE},
    /* two proxies: the second entry from the right, across lines */
    {"x-forwarded-for",
     2,
     {{"X-Forwarded-For", "6.6.6.6, 203.0.113.9"}, {"X-Forwarded-For", "10.0.0.2"}},
     "203.0.113.9",
     "",
     PROXY_SCHEME_NONE},
    /* fewer entries than proxies: nothing is used */
    {"x-forwarded-for", 2, {{"X-Forwarded-For", "203.0.113.9"}}, "", "", PROXY_SCHEME_NONE},
    /* empty entries do not count */
    {"x-forwarded-for",
     2,
     {{"X-Forwarded-For", "203.0.113.9,, 10.0.0.2 ,"}},
     "203.0.113.9",
     "",
     PROXY_SCHEME_NONE},
    /* not an address: not used, and nothing further left is tried */
    {"x-forwarded-for",
     1,
     {{"X-Forwarded-For", "1.2.3.4, 127.0.0.1 - admin"}},
     "",
     "",
     PROXY_SCHEME_NONE},
    {"x-forwarded-for",
     1,
     {{"X-Forwarded-For", "[2001:DB8::1]:80"}},
     "2001:db8::1",
     "",
     PROXY_SCHEME_NONE},
    /* headers that are not trusted are not read */
    {"x-forwarded-for",
     1,
     {{"Forwarded", "for=10.0.0.1;proto=https;host=evil.example"},
      {"X-Forwarded-Proto", "https"},
      {"X-Forwarded-Host", "evil.example"}},
     "",
     "",
     PROXY_SCHEME_NONE},
    {"forwarded",
     1,
     {{"Forwarded", "for=10.0.0.1;proto=https;host=evil.example"},
      {"Forwarded", "for=\"[2001:db8::17]:4711\";proto=http;host=\"a.example:8080\""}},
     "2001:db8::17",
     "a.example:8080",
     PROXY_SCHEME_HTTP},
    {"forwarded", 1, {{"Forwarded", "for=\"127.0.0.1 - admin\""}}, "", "", PROXY_SCHEME_NONE},
    {"forwarded", 1, {{"Forwarded", "for=unknown;proto=https"}}, "", "", PROXY_SCHEME_HTTPS},
    {"forwarded", 1, {{"Forwarded", "for=_hidden;host=\"bad host\""}}, "", "", PROXY_SCHEME_NONE},
    /* commas inside quotes do not split; an unterminated quote spoils all */
    {"forwarded",
     1,
     {{"Forwarded", "for=192.0.2.1;host=\"a,b\""}},
     "192.0.2.1",
     "a,b",
     PROXY_SCHEME_NONE},
    {"forwarded", 1, {{"Forwarded", "for=\"6.6.6.6, for=192.0.2.1"}}, "", "", PROXY_SCHEME_NONE},
    /* a parameter given twice is not used */
    {"forwarded",
     1,
     {{"Forwarded", "for=6.6.6.6;for=192.0.2.1;proto=https"}},
     "",
     "",
     PROXY_SCHEME_HTTPS},
    /* Forwarded wins; X-Forwarded-* fills what it lacks */
    {"forwarded x-forwarded-for,x-forwarded-proto x-forwarded-host",
     1,
     {{"Forwarded", "for=192.0.2.1"},
      {"X-Forwarded-For", "192.0.2.2"},
      {"X-Forwarded-Proto", "HTTPS"},
      {"X-Forwarded-Host", "shop.example"}},
     "192.0.2.1",
     "shop.example",
     PROXY_SCHEME_HTTPS},
    {"x-forwarded-proto x-forwarded-host",
     1,
     {{"X-Forwarded-Proto", "javascript"}, {"X-Forwarded-Host", "evil.example/path"}},
     "",
     "",
     PROXY_SCHEME_NONE},
    {"x-forwarded-proto x-forwarded-host",
     2,
     {{"X-Forwarded-Proto", "https, http"}, {"X-Forwarded-Host", "[::1]:8443, inner"}},
     "",
     "[::1]:8443",
     PROXY_SCHEME_HTTPS},
};

START_TEST(test_resolve)
{
    const struct resolve_case *c = &resolve_cases[_i];
    struct proxy_trust trust;
    char err[PYR_ERR_LEN];
    ck_assert_int_eq(proxy_trust_parse("*", &trust, err), 0);
    ck_assert_int_eq(proxy_headers_parse(c->headers, &trust.headers, err), 0);
    trust.hops = c->hops;
    unsigned n = 0;
    while (n < 4 && c->lines[n][0])
        n++;
    struct fake_request f;
    fake_request(&f, c->lines, n);
    struct proxy_forwarded out;
    proxy_resolve(&trust, &f.request, f.base, &out);
    ck_assert_str_eq(out.address, c->address);
    ck_assert_uint_eq(out.host.len, strlen(c->host));
    ck_assert(memcmp(f.base + out.host.offset, c->host, out.host.len) == 0);
    ck_assert_int_eq(out.scheme, c->scheme);
}
END_TEST

START_TEST(test_headers_parse_and_drop)
{
    struct proxy_trust trust;
    char err[PYR_ERR_LEN];
    ck_assert_int_eq(proxy_trust_parse("127.0.0.1", &trust, err), 0);
    ck_assert_uint_eq(trust.headers, PROXY_DEFAULT_HEADERS);
    ck_assert_uint_eq(trust.hops, 1);
    ck_assert_int_eq(proxy_headers_parse(" X-Forwarded-For,x-real-ip  ", &trust.headers, err), 0);
    ck_assert(!proxy_header_dropped(&trust, 1, "x-forwarded-for", 15));
    ck_assert(!proxy_header_dropped(&trust, 1, "X-Real-IP", 9));
    ck_assert(proxy_header_dropped(&trust, 1, "X-Forwarded", 11));
    ck_assert(!proxy_header_dropped(&trust, 1, "X-Forwardedness", 15));
    ck_assert(!proxy_header_dropped(&trust, 1, "Host", 4));
    ck_assert(proxy_header_dropped(&trust, 0, "x-forwarded-for", 15));
    ck_assert(proxy_header_dropped(&trust, 1, "Forwarded", 9));
    ck_assert(proxy_header_dropped(&trust, 1, "X-Forwarded-Prefix", 18));
    ck_assert(proxy_header_dropped(&trust, 1, "X-Forwarded-Anything", 20));
    ck_assert(proxy_header_dropped(&trust, 1, "True-Client-IP", 14));
    ck_assert_int_eq(proxy_headers_parse("", &trust.headers, err), 0);
    ck_assert(proxy_header_dropped(&trust, 1, "x-forwarded-for", 15));
    struct proxy_trust off = {0};
    ck_assert(!proxy_header_dropped(&off, 0, "x-forwarded-for", 15));
}
END_TEST

START_TEST(test_headers_parse_errors)
{
    unsigned headers;
    char err[PYR_ERR_LEN];
    ck_assert_int_eq(proxy_headers_parse("x-forwarded-for host", &headers, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "'host'"));
    ck_assert_ptr_nonnull(strstr(err, "x-forwarded-proto"));
    ck_assert_int_eq(proxy_headers_parse("x-forwarded-whatever", &headers, err), -1);
}
END_TEST

struct address_case {
    const char *value;
    const char *address; /* NULL: invalid */
    const char *port;
};

static const struct address_case address_cases[] = {
    {"10.0.0.1", "10.0.0.1", ""},
    {"10.0.0.1:555", "10.0.0.1", "555"},
    {"[2001:db8::1]:4711", "2001:db8::1", "4711"},
    {"[2001:db8::1]", "2001:db8::1", ""},
    {"2001:DB8:0::1", "2001:db8::1", ""},
    {"[2001:db8::1]:_port", "2001:db8::1", ""},
    {"10.0.0.1:65535", "10.0.0.1", "65535"},
    {"127.0.0.1 - admin", NULL, NULL},
    {"unknown", NULL, NULL},
    {"_hidden", NULL, NULL},
    {"010.0.0.1", NULL, NULL},
    {"10.0.0.1:99999", NULL, NULL},
    {"10.0.0.1:123456", NULL, NULL},
    {"10.0.0.1:", NULL, NULL},
    {"[2001:db8::1", NULL, NULL},
    {"[2001:db8::1]x", NULL, NULL},
    {"[10.0.0.1]", NULL, NULL},
    {"fe80::1%eth0", NULL, NULL},
    {"", NULL, NULL},
    {"example.org", NULL, NULL},
};

START_TEST(test_parse_address)
{
    const struct address_case *c = &address_cases[_i];
    char out[INET6_ADDRSTRLEN] = "untouched", port[PROXY_PORT_LEN] = "none";
    ck_assert_int_eq(proxy_parse_address(c->value, strlen(c->value), out, port),
                     c->address != NULL);
    ck_assert_str_eq(out, c->address ? c->address : "untouched");
    ck_assert_str_eq(port, c->port ? c->port : "none");
}
END_TEST

struct host_case {
    const char *value;
    int valid;
};

static const struct host_case host_cases[] = {
    {"www.example.org", 1},
    {"www.example.org:8080", 1},
    {"[2001:db8::1]:443", 1},
    {"[2001:db8::1]", 1},
    {"192.0.2.1", 1},
    {"xn--bcher-kva.example", 1},
    {"a%2Db.example", 1},
    {"", 0},
    {":80", 0},
    {"evil.example/path", 0},
    {"bad host", 0},
    {"a.example:80:80", 0},
    {"a.example:http", 0},
    {"a\"b", 0},
    {"[2001:db8::1]:x", 0},
    {"[v1.x]", 0},
    {"a%zz.example", 0},
    {"a@b.example", 0},
};

START_TEST(test_valid_host)
{
    const struct host_case *c = &host_cases[_i];
    ck_assert_int_eq(proxy_valid_host(c->value, strlen(c->value)), c->valid);
}
END_TEST

Suite *make_proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_trust_list);
    tcase_add_test(core, test_trust_any_and_unix);
    tcase_add_test(core, test_trust_networks);
    tcase_add_test(core, test_headers_parse_and_drop);
    tcase_add_loop_test(core, test_resolve, 0, ARRAY_SIZE(resolve_cases));
    tcase_add_loop_test(core, test_parse_address, 0, ARRAY_SIZE(address_cases));
    tcase_add_loop_test(core, test_valid_host, 0, ARRAY_SIZE(host_cases));
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_trust_errors);
    tcase_add_test(errors, test_headers_parse_errors);
    suite_add_tcase(s, errors);
    return s;
}

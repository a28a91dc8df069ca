/* Tests for src/conn.c over a socketpair: reading, parsing, pipelined
 * requests across conn_reset_for_next_request, and canned error output. */
#include <arpa/inet.h>
#include <check.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"
#include "pyruvate/conn.h"
#include "pyruvate/http_status.h"
#include "suites.h"

static const struct request_limits limits = {
    .max_target_length = 1024,
    .max_header_bytes = 4096,
    .max_headers = 16,
    .max_body_size = 1 << 20,
};

static struct conn *conn;
static int client = -1; /* the other end of conn->fd */
static int conn_fd = -1;

static void setup_conn(void)
{
    int fds[2];
    make_socketpair(fds);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(8080)};
    inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
    conn = conn_create(fds[0], NULL, (struct sockaddr *)&peer, sizeof(peer), &limits);
    ck_assert_ptr_nonnull(conn);
    conn_fd = fds[0];
    client = fds[1];
}

static void teardown_conn(void)
{
    conn_free(conn);
    conn = NULL;
    if (client >= 0)
        close(client);
    client = -1;
}

static void send_text(const char *text)
{
    size_t len = strlen(text);
    ck_assert_int_eq(write(client, text, len), (ssize_t)len);
}

static int target_is(const char *expected)
{
    struct span t = conn->request->target;
    return t.len == strlen(expected) && memcmp(conn->in.data + t.offset, expected, t.len) == 0;
}

static int body_is(const char *expected)
{
    struct span b = conn->request->body;
    return b.len == strlen(expected) && memcmp(conn->in.data + b.offset, expected, b.len) == 0;
}

START_TEST(test_read_and_parse)
{
    static const char request[] = "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n";
    send_text(request);
    ck_assert_int_eq(conn_read(conn), (ssize_t)sizeof(request) - 1);
    ck_assert_int_eq(conn_parse(conn), REQUEST_COMPLETE);
    ck_assert(target_is("/hello"));
    ck_assert_uint_eq(conn->request->consumed, sizeof(request) - 1);
}
END_TEST

START_TEST(test_read_eagain_then_eof)
{
    errno = 0;
    ck_assert_int_eq(conn_read(conn), -1);
    ck_assert_int_eq(errno, EAGAIN);
    send_text("GET");
    ck_assert_int_eq(conn_read(conn), 3);
    ck_assert_int_eq(conn_parse(conn), REQUEST_INCOMPLETE);
    shutdown(client, SHUT_WR);
    ck_assert_int_eq(conn_read(conn), 0);
    ck_assert_uint_eq(conn->in.len, 3); /* what came before EOF stays */
}
END_TEST

START_TEST(test_unread_input_is_bytes_not_eof)
{
    ck_assert_int_eq(conn_has_unread_input(conn), 0);
    send_text("G");
    ck_assert_int_eq(conn_has_unread_input(conn), 1);
    ck_assert_int_eq(conn_has_unread_input(conn), 1); /* peeked, not taken */
    ck_assert_int_eq(conn_read(conn), 1);
    shutdown(client, SHUT_WR);
    ck_assert_int_eq(conn_has_unread_input(conn), 0); /* gone: may be closed */
}
END_TEST

#define GET_1 "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
#define POST_2                                                          \
    "POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" \
    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
#define GET_3 "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"

START_TEST(test_pipelined_requests)
{
    /* One read brings two whole requests and the start of a third. */
    send_text(GET_1 POST_2 "GET /3 HT");
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_parse(conn), REQUEST_COMPLETE);
    ck_assert(target_is("/1"));

    conn->continue_sent = 1;
    conn->request_start_ms = 42;
    ck_assert_int_eq(conn_reset_for_next_request(conn), REQUEST_COMPLETE);
    ck_assert_int_eq(conn->continue_sent, 0);
    ck_assert_int_eq(conn->request_start_ms, 0);
    ck_assert(target_is("/2"));
    ck_assert(body_is("abcde"));
    ck_assert_int_eq(conn->request->chunked, 1);

    ck_assert_int_eq(conn_reset_for_next_request(conn), REQUEST_INCOMPLETE);
    ck_assert_uint_eq(conn->in.len, strlen("GET /3 HT"));
    ck_assert_mem_eq(conn->in.data, "GET /3 HT", conn->in.len);

    send_text("TP/1.1\r\nHost: a\r\n\r\n");
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_parse(conn), REQUEST_COMPLETE);
    ck_assert(target_is("/3"));
    ck_assert_uint_eq(conn->request->consumed, strlen(GET_3));

    /* Nothing left: an idle connection gives its buffer back. */
    ck_assert_int_eq(conn_reset_for_next_request(conn), REQUEST_INCOMPLETE);
    ck_assert_uint_eq(conn->in.len, 0);
    conn_release_if_idle(conn);
    ck_assert_ptr_null(conn->in.data);
    ck_assert_uint_eq(conn->in.cap, 0);
    ck_assert_ptr_null(conn->request);

    /* ...and reads again afterwards. */
    send_text(GET_1);
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_parse(conn), REQUEST_COMPLETE);
    ck_assert(target_is("/1"));
}
END_TEST

START_TEST(test_body_larger_than_one_read)
{
    enum { BODY = 200000 };
    char head[128];
    int head_len = snprintf(head, sizeof(head),
                            "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", BODY);
    char *body = malloc(BODY);
    ck_assert_ptr_nonnull(body);
    for (int i = 0; i < BODY; i++)
        body[i] = (char)('a' + i % 26);
    send_text(head);

    /* Write what the socket takes, read what arrived, parse; repeat. */
    size_t sent = 0;
    enum request_state state = REQUEST_INCOMPLETE;
    while (state == REQUEST_INCOMPLETE) {
        if (sent < BODY) {
            ssize_t n = write(client, body + sent, BODY - sent);
            ck_assert(n > 0 || errno == EAGAIN);
            if (n > 0)
                sent += (size_t)n;
        }
        while (conn_read(conn) > 0)
            ;
        ck_assert_int_eq(errno, EAGAIN);
        state = conn_parse(conn);
    }
    ck_assert_int_eq(state, REQUEST_COMPLETE);
    ck_assert_uint_eq(conn->request->body.len, BODY);
    ck_assert_mem_eq(conn->in.data + conn->request->body.offset, body, BODY);
    ck_assert_uint_eq(conn->request->consumed, (size_t)head_len + BODY);
    free(body);
}
END_TEST

START_TEST(test_access_line)
{
    char line[512];
    /* Before any request line: "-" stands for it. */
    conn_access_line(conn, NULL, 408, 0, line, sizeof(line));
    ck_assert_msg(strstr(line, "127.0.0.1 - - [") == line, "%s", line);
    ck_assert_ptr_nonnull(strstr(line, "] \"-\" 408 - "));

    /* A quote in the target would end the field: it is escaped. */
    send_text("GET /a\"b HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_parse(conn), REQUEST_COMPLETE);
    conn->request_start_ms = monotonic_ms();
    conn_access_line(conn, "10.0.0.9", 200, 13, line, sizeof(line));
    ck_assert_msg(strstr(line, "10.0.0.9 - - [") == line, "%s", line);
    ck_assert_msg(strstr(line, "\"GET /a\\x22b HTTP/1.1\" 200 13 ") != NULL, "%s", line);
}
END_TEST

START_TEST(test_access_line_escapes_bytes_that_are_not_text)
{
    char line[512];
    send_text("GET /admin/delete?id=1&\xff\\\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_parse(conn), REQUEST_COMPLETE);
    /* A client address from a proxy header is escaped too. */
    conn_access_line(conn, "10.0.0.9\"\x01", 200, 13, line, sizeof(line));
    ck_assert_msg(strstr(line, "10.0.0.9\\x22\\x01 - - [") == line, "%s", line);
    ck_assert_msg(strstr(line, "\"GET /admin/delete?id=1&\\xff\\x5c\\xc3\\xa9 HTTP/1.1\" 200 ") !=
                      NULL,
                  "%s", line);
}
END_TEST

START_TEST(test_parse_error_is_reported)
{
    send_text("GET / HTTP/1.1\r\nX: y\r\n\r\n"); /* no Host */
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_parse(conn), REQUEST_ERROR);
    ck_assert_int_eq(conn->request->error_status, 400);
    ck_assert_int_eq(conn_parse(conn), REQUEST_ERROR);
}
END_TEST

START_TEST(test_send_error_writes_response_and_half_closes)
{
    char expected[512], later[512], got[1024];
    time_t before = time(NULL);
    conn_send_error(conn, 413);
    /* The Date line is the only part that depends on the clock. */
    size_t expected_len = http_status_error_response(413, before, expected, sizeof(expected));
    size_t later_len = http_status_error_response(413, time(NULL), later, sizeof(later));
    ck_assert_uint_gt(expected_len, 0);
    set_blocking(client);
    size_t got_len = 0;
    ssize_t n;
    /* Reading to EOF proves the half-close; the socket must not be closed. */
    while ((n = read(client, got + got_len, sizeof(got) - got_len)) > 0)
        got_len += (size_t)n;
    ck_assert_int_eq(n, 0);
    ck_assert_uint_eq(got_len, expected_len);
    ck_assert(memcmp(got, expected, expected_len) == 0 ||
              (later_len == got_len && memcmp(got, later, later_len) == 0));
    ck_assert_int_ne(fcntl(conn_fd, F_GETFD), -1);
}
END_TEST

START_TEST(test_reject_frees_input_answers_and_lingers)
{
    send_text("GET / HTTP/1.1\r\nX: y\r\n\r\n"); /* no Host */
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_parse(conn), REQUEST_ERROR);
    conn_reject(conn, conn->request->error_status, 0);
    ck_assert_int_eq(conn->lingering, 1);
    ck_assert_ptr_null(conn->in.data); /* draining needs no buffer */
    char got[1024];
    set_blocking(client);
    ssize_t n = read(client, got, sizeof(got) - 1);
    ck_assert_int_gt(n, 12);
    got[n] = '\0';
    ck_assert_msg(strncmp(got, "HTTP/1.1 400 ", 13) == 0, "%s", got);
}
END_TEST

/* conn_next: the one decision of a connection's next step. Each row
 * buffers input, steps through the moments listed and expects the steps. */
struct next_case {
    const char *name;
    const char *input;
    enum conn_moment moments[3];
    enum conn_next steps[3];
    unsigned count;
};

#define GET_A "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"

static const struct next_case next_cases[] = {
    {"whole request", GET_A, {CONN_AFTER_READ}, {CONN_DISPATCH}, 1},
    {"part of a request", "GET /a HT", {CONN_AFTER_READ}, {CONN_READ}, 1},
    {"bad request", "GET / HTTP/1.1\r\nX: y\r\n\r\n", {CONN_AFTER_READ}, {CONN_REJECT}, 1},
    {"keep-alive, nothing more",
     GET_A,
     {CONN_AFTER_READ, CONN_AFTER_RESPONSE},
     {CONN_DISPATCH, CONN_READ},
     2},
    {"pipelined",
     GET_A GET_A,
     {CONN_AFTER_READ, CONN_AFTER_RESPONSE, CONN_AFTER_RESPONSE},
     {CONN_DISPATCH, CONN_DISPATCH, CONN_READ},
     3},
    {"pipelined bad request",
     GET_A "BAD\r\n\r\n",
     {CONN_AFTER_READ, CONN_AFTER_RESPONSE},
     {CONN_DISPATCH, CONN_REJECT},
     2},
    {"pipelined part",
     GET_A "GET /b",
     {CONN_AFTER_READ, CONN_AFTER_RESPONSE},
     {CONN_DISPATCH, CONN_READ},
     2},
    {"last response, nothing unread",
     GET_A,
     {CONN_AFTER_READ, CONN_AFTER_LAST_RESPONSE},
     {CONN_DISPATCH, CONN_CLOSE},
     2},
    {"last response, client sent more",
     GET_A GET_A,
     {CONN_AFTER_READ, CONN_AFTER_LAST_RESPONSE},
     {CONN_DISPATCH, CONN_LINGER},
     2},
};

START_TEST(test_next_step)
{
    const struct next_case *c = &next_cases[_i];
    send_text(c->input);
    ck_assert_int_gt(conn_read(conn), 0);
    for (unsigned i = 0; i < c->count; i++) {
        enum conn_next step = conn_next(conn, c->moments[i]);
        ck_assert_msg(step == c->steps[i], "%s: step %u is %d, want %d", c->name, i, step,
                      c->steps[i]);
    }
    if (c->steps[c->count - 1] == CONN_REJECT)
        ck_assert_int_eq(conn->request->error_status, 400);
}
END_TEST

/* What a connection holds between requests: nothing but struct conn once
 * it waits again, and the parser state of the next request only after its
 * first byte. */
START_TEST(test_idle_connection_holds_no_buffer_or_request)
{
    /* bjoern holds about 280 bytes per idle connection: so should we. */
    ck_assert_uint_le(sizeof(struct conn), 176);
    ck_assert_ptr_null(conn->request); /* accepted, nothing read */
    ck_assert_ptr_null(conn->in.data);
    ck_assert_int_eq(conn_read(conn), -1); /* nothing sent yet */
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_ptr_null(conn->request);

    send_text(GET_1);
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_ptr_nonnull(conn->request);
    ck_assert_uint_eq(conn->in.cap, strlen(GET_1)); /* no more than was read */
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_READ), CONN_DISPATCH);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_RESPONSE), CONN_READ);
    conn_release_if_idle(conn);
    ck_assert_ptr_null(conn->request);
    ck_assert_ptr_null(conn->in.data);
    ck_assert_uint_eq(conn->in.cap, 0);

    /* Idle again: a request split over two reads, then two pipelined
     * ones, parse as on a fresh connection. */
    send_text("GET /3 HT");
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_READ), CONN_READ);
    conn_release_if_idle(conn); /* a partial request is kept */
    ck_assert_ptr_nonnull(conn->request);
    send_text("TP/1.1\r\nHost: a\r\n\r\n" GET_1 POST_2);
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_READ), CONN_DISPATCH);
    ck_assert(target_is("/3"));
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_RESPONSE), CONN_DISPATCH);
    ck_assert(target_is("/1"));
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_RESPONSE), CONN_DISPATCH);
    ck_assert(target_is("/2"));
    ck_assert(body_is("abcde"));
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_RESPONSE), CONN_READ);

    /* A worker reading the next request at once reuses both. */
    struct request *kept = conn->request;
    send_text(GET_3);
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_ptr_eq(conn->request, kept);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_READ), CONN_DISPATCH);
    ck_assert(target_is("/3"));
    ck_assert_uint_eq(conn->request->header_count, 1);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_RESPONSE), CONN_READ);
    conn_release_if_idle(conn);
    ck_assert_ptr_null(conn->request);
    ck_assert_ptr_null(conn->in.data);
}
END_TEST

START_TEST(test_linger_half_closes_and_frees_input)
{
    send_text(GET_A GET_A);
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_READ), CONN_DISPATCH);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_LAST_RESPONSE), CONN_LINGER);
    conn_linger(conn);
    ck_assert_int_eq(conn->lingering, 1);
    ck_assert_ptr_null(conn->in.data);
    ck_assert_ptr_null(conn->request); /* draining needs no parser either */
    char byte;
    set_blocking(client);
    ck_assert_int_eq(read(client, &byte, 1), 0); /* EOF: the write side is shut */
}
END_TEST

START_TEST(test_send_error_to_departed_client)
{
    close(client);
    client = -1;
    /* MSG_NOSIGNAL: no SIGPIPE, and nothing to report. */
    conn_send_error(conn, 400);
}
END_TEST

START_TEST(test_limit_from_conn_limits)
{
    static const struct request_limits tiny = {
        .max_target_length = 8, .max_header_bytes = 64, .max_headers = 4, .max_body_size = 4};
    int fds[2];
    make_socketpair(fds);
    struct sockaddr_un peer = {.sun_family = AF_UNIX};
    struct conn *c = conn_create(fds[0], NULL, (struct sockaddr *)&peer, sizeof(peer), &tiny);
    ck_assert_ptr_nonnull(c);
    static const char request[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
    ck_assert_int_eq(write(fds[1], request, sizeof(request) - 1), (ssize_t)sizeof(request) - 1);
    ck_assert_int_gt(conn_read(c), 0);
    ck_assert_int_eq(conn_parse(c), REQUEST_ERROR);
    ck_assert_int_eq(c->request->error_status, 413);
    conn_free(c);
    close(fds[1]);
}
END_TEST

START_TEST(test_peer_strings)
{
    char host[64], port[16];
    conn_peer_strings(conn, host, sizeof(host), port, sizeof(port));
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_str_eq(port, "8080");

    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    inet_pton(AF_INET6, "::1", &v6.sin6_addr);
    struct sockaddr_un local = {.sun_family = AF_UNIX, .sun_path = "/tmp/sock"};
    int fds[2];
    make_socketpair(fds);
    struct conn *c6 = conn_create(fds[0], NULL, (struct sockaddr *)&v6, sizeof(v6), &limits);
    struct conn *cu = conn_create(fds[1], NULL, (struct sockaddr *)&local, sizeof(local), &limits);
    ck_assert_ptr_nonnull(c6);
    ck_assert_ptr_nonnull(cu);
    conn_peer_strings(c6, host, sizeof(host), port, sizeof(port));
    ck_assert_str_eq(host, "::1");
    ck_assert_str_eq(port, "443");
    conn_peer_strings(cu, host, sizeof(host), port, sizeof(port));
    ck_assert_str_eq(host, "");
    ck_assert_str_eq(port, "");
    conn_free(c6);
    conn_free(cu);
}
END_TEST

START_TEST(test_free_closes_socket)
{
    conn_free(conn);
    conn = NULL;
    errno = 0;
    ck_assert_int_eq(fcntl(conn_fd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    char byte;
    set_blocking(client);
    ck_assert_int_eq(read(client, &byte, 1), 0);
    conn_free(NULL); /* harmless */
}
END_TEST

/* A client that sends an empty line after its request (a stray CRLF,
 * which RFC 9112 §2.2 lets a server ignore) is idle once answered, not
 * busy reading a request that never comes. */
START_TEST(test_stray_crlf_after_a_request_leaves_the_connection_idle)
{
    send_text(GET_1 "\r\n");
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_READ), CONN_DISPATCH);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_RESPONSE), CONN_READ);
    ck_assert_uint_eq(conn->in.len, 0);
    conn_release_if_idle(conn);
    ck_assert_ptr_null(conn->request);
    /* Empty lines in front of a pipelined request are dropped too. */
    send_text(GET_1 "\r\n\r\n" POST_2);
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_READ), CONN_DISPATCH);
    ck_assert(target_is("/1"));
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_RESPONSE), CONN_DISPATCH);
    ck_assert(target_is("/2"));
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_RESPONSE), CONN_READ);
    /* An empty line in a read of its own: still waiting, nothing kept. */
    send_text("\r\n");
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_READ), CONN_READ);
    ck_assert_uint_eq(conn->in.len, 0);
    send_text("\r");
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_READ), CONN_READ);
    send_text("\n" GET_1);
    ck_assert_int_gt(conn_read(conn), 0);
    ck_assert_int_eq(conn_next(conn, CONN_AFTER_READ), CONN_DISPATCH);
    ck_assert(target_is("/1"));
}
END_TEST

Suite *make_conn_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, setup_conn, teardown_conn);
    tcase_add_test(core, test_read_and_parse);
    tcase_add_test(core, test_access_line);
    tcase_add_test(core, test_access_line_escapes_bytes_that_are_not_text);
    tcase_add_test(core, test_read_eagain_then_eof);
    tcase_add_test(core, test_unread_input_is_bytes_not_eof);
    tcase_add_test(core, test_pipelined_requests);
    tcase_add_test(core, test_idle_connection_holds_no_buffer_or_request);
    tcase_add_test(core, test_stray_crlf_after_a_request_leaves_the_connection_idle);
    tcase_add_test(core, test_peer_strings);
    tcase_add_test(core, test_free_closes_socket);
    tcase_add_loop_test(core, test_next_step, 0, ARRAY_SIZE(next_cases));
    tcase_add_test(core, test_linger_half_closes_and_frees_input);
    suite_add_tcase(s, core);

    TCase *limits_case = tcase_create("limits");
    tcase_add_checked_fixture(limits_case, setup_conn, teardown_conn);
    tcase_add_test(limits_case, test_body_larger_than_one_read);
    tcase_add_test(limits_case, test_limit_from_conn_limits);
    suite_add_tcase(s, limits_case);

    TCase *errors = tcase_create("errors");
    tcase_add_checked_fixture(errors, setup_conn, teardown_conn);
    tcase_add_test(errors, test_parse_error_is_reported);
    tcase_add_test(errors, test_send_error_writes_response_and_half_closes);
    tcase_add_test(errors, test_send_error_to_departed_client);
    tcase_add_test(errors, test_reject_frees_input_answers_and_lingers);
    suite_add_tcase(s, errors);
    return s;
}

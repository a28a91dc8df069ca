/* Tests for src/acceptor.c: the poll() thread's decisions for a connection
 * (dispatch a complete request, answer a bad one itself, time out a slow
 * one, take a kept-alive connection back) over a Unix socket, with a pool
 * whose worker is a C callback. Every wait is bounded by WAIT_S. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "pyruvate/acceptor.h"
#include "pyruvate/common.h"
#include "pyruvate/conn.h"
#include "pyruvate/pool.h"
#include "suites.h"

enum { WAIT_S = 5 };

static const char OK_RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/* What the worker callback saw: the targets it answered, in order. */
static struct {
    pthread_mutex_t mutex;
    char targets[256];
    unsigned handled;
} seen = {.mutex = PTHREAD_MUTEX_INITIALIZER};

static char dir[64], path[96];
static struct listener listener;
static struct request_limits limits;
static struct acceptor_config config;
static struct pool *pool;
static struct acceptor *acceptor;
static struct conn_return conn_return; /* how on_handle gives connections back */

static void *on_thread_start(void *ctx, unsigned index)
{
    PYR_UNUSED(index);
    return ctx;
}

static void on_thread_stop(void *state)
{
    PYR_UNUSED(state);
}

/* A worker's part, without Python: note the request, answer it, then take
 * any pipelined request or give the connection back, as worker.c does. */
static void on_handle(void *state, void *item)
{
    PYR_UNUSED(state);
    struct conn *c = item;
    for (;;) {
        pthread_mutex_lock(&seen.mutex);
        size_t n = strlen(seen.targets);
        snprintf(seen.targets + n, sizeof(seen.targets) - n, "%.*s;", (int)c->request->target.len,
                 c->in.data + c->request->target.offset);
        seen.handled++;
        pthread_mutex_unlock(&seen.mutex);
        ssize_t ignored = send(c->fd, OK_RESPONSE, sizeof(OK_RESPONSE) - 1, MSG_NOSIGNAL);
        (void)ignored;
        c->requests_served++;
        if (conn_next(c, CONN_AFTER_RESPONSE) != CONN_DISPATCH)
            break;
    }
    conn_return_give_back(&conn_return, c);
}

static void start(int request_timeout_ms)
{
    char err[PYR_ERR_LEN];
    seen.targets[0] = '\0'; /* the tests may run in one process (CK_FORK=no) */
    seen.handled = 0;
    snprintf(dir, sizeof(dir), "/tmp/pyr-acceptor-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s", dir);
    ck_assert_msg(listen_open_unix(&listener, path, 0, 16, err) == 0, "%s", err);
    limits = (struct request_limits){.max_target_length = 32,
                                     .max_header_bytes = 1024,
                                     .max_headers = 16,
                                     .max_body_size = 1024};
    struct pool_callbacks callbacks = {.thread_start = on_thread_start,
                                       .handle = on_handle,
                                       .thread_stop = on_thread_stop,
                                       .ctx = &seen};
    pool = pool_create("unit", 2, 16, &callbacks, err);
    ck_assert_msg(pool != NULL, "%s", err);
    config = (struct acceptor_config){.listeners = &listener,
                                      .listener_count = 1,
                                      .pool = pool,
                                      .limits = &limits,
                                      .request_timeout_ms = request_timeout_ms,
                                      .header_timeout_ms = 10000,
                                      .keepalive_timeout_ms = 10000,
                                      .linger_timeout_ms = 200,
                                      .max_connections = 16};
    acceptor = acceptor_start(&config, &conn_return, err);
    ck_assert_msg(acceptor != NULL, "%s", err);
}

static void setup(void)
{
    start(10000);
}

static void setup_short_request_timeout(void)
{
    start(200);
}

static int acceptor_stopped; /* by the test itself */

static void teardown(void)
{
    if (!acceptor_stopped)
        acceptor_stop(acceptor);
    acceptor_stopped = 0;
    pool_stop(pool);
    ck_assert_int_eq(pool_join(pool, WAIT_S * 1000), 0);
    pool_destroy(pool, NULL, NULL);
    acceptor_destroy(acceptor);
    listen_close(&listener);
    rmdir(dir);
}

static int client(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", path);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    struct timeval timeout = {.tv_sec = WAIT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    return fd;
}

static void send_all(int fd, const char *text)
{
    size_t len = strlen(text);
    ck_assert_int_eq(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads until `want` bytes arrived, or EOF, or the bounded wait ended. */
static size_t read_some(int fd, char *out, size_t size, size_t want)
{
    size_t got = 0;
    while (got < want && got < size - 1) {
        ssize_t n = read(fd, out + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    out[got] = '\0';
    return got;
}

static unsigned handled(void)
{
    pthread_mutex_lock(&seen.mutex);
    unsigned n = seen.handled;
    pthread_mutex_unlock(&seen.mutex);
    return n;
}

START_TEST(test_complete_request_goes_to_the_pool)
{
    int fd = client();
    send_all(fd, "GET /one HTTP/1.1\r\nHost: a\r\n\r\n");
    char got[256];
    read_some(fd, got, sizeof(got), sizeof(OK_RESPONSE) - 1);
    ck_assert_str_eq(got, OK_RESPONSE);
    /* Given back for keep-alive: the next request on it is read again. */
    send_all(fd, "GET /two HTTP/1.1\r\nHost: a\r\n\r\n");
    read_some(fd, got, sizeof(got), sizeof(OK_RESPONSE) - 1);
    ck_assert_str_eq(got, OK_RESPONSE);
    ck_assert_str_eq(seen.targets, "/one;/two;");
    close(fd);
}
END_TEST

START_TEST(test_request_in_pieces_is_dispatched_once_whole)
{
    int fd = client();
    send_all(fd, "GET /piece");
    send_all(fd, "s HTTP/1.1\r\nHo");
    send_all(fd, "st: a\r\n\r\n");
    char got[256];
    read_some(fd, got, sizeof(got), sizeof(OK_RESPONSE) - 1);
    ck_assert_str_eq(got, OK_RESPONSE);
    ck_assert_str_eq(seen.targets, "/pieces;");
    close(fd);
}
END_TEST

START_TEST(test_pipelined_requests_answered_in_order)
{
    int fd = client();
    send_all(fd, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    char got[256];
    read_some(fd, got, sizeof(got), 2 * (sizeof(OK_RESPONSE) - 1));
    ck_assert_uint_eq(strlen(got), 2 * (sizeof(OK_RESPONSE) - 1));
    ck_assert_str_eq(seen.targets, "/a;/b;");
    close(fd);
}
END_TEST

struct reject_case {
    const char *request;
    const char *status_line;
};

static const struct reject_case reject_cases[] = {
    {"GET / HTTP/1.1\r\nX: y\r\n\r\n", "HTTP/1.1 400 "}, /* no Host */
    {"GET /0123456789012345678901234567890123 HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 414 "},
    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP/1.1 505 "},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", "HTTP/1.1 413 "},
};

START_TEST(test_bad_request_answered_by_the_acceptor)
{
    const struct reject_case *c = &reject_cases[_i];
    int fd = client();
    send_all(fd, c->request);
    char got[1024];
    read_some(fd, got, sizeof(got), sizeof(got));
    ck_assert_msg(strncmp(got, c->status_line, strlen(c->status_line)) == 0, "%s", got);
    ck_assert_uint_eq(handled(), 0);
    close(fd);
    /* The acceptor still serves others. */
    fd = client();
    send_all(fd, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    read_some(fd, got, sizeof(got), sizeof(OK_RESPONSE) - 1);
    ck_assert_str_eq(got, OK_RESPONSE);
    close(fd);
}
END_TEST

START_TEST(test_slow_request_gets_408)
{
    int fd = client();
    send_all(fd, "GET / HTTP/1.1\r\nHost: a\r\n");
    char got[1024];
    read_some(fd, got, sizeof(got), sizeof(got));
    ck_assert_msg(strncmp(got, "HTTP/1.1 408 ", 13) == 0, "%s", got);
    ck_assert_uint_eq(handled(), 0);
    close(fd);
}
END_TEST

/* Polls until `want` connections are open (accepted or not closed yet),
 * within WAIT_S. */
static unsigned wait_open(unsigned want)
{
    for (int i = 0; i < WAIT_S * 100 && acceptor_open_connections(acceptor) != want; i++)
        usleep(10000);
    return acceptor_open_connections(acceptor);
}

START_TEST(test_drain_reads_requests_to_their_end_and_closes_idle_connections)
{
    char got[256];
    int idle = client();
    send_all(idle, "GET /before HTTP/1.1\r\nHost: a\r\n\r\n");
    read_some(idle, got, sizeof(got), sizeof(OK_RESPONSE) - 1);
    ck_assert_str_eq(got, OK_RESPONSE);
    int partial = client();
    send_all(partial, "GET /late HTTP/1.1\r\nHo");
    ck_assert_uint_eq(wait_open(2), 2); /* both accepted: the drain lets the listener go */

    acceptor_drain(acceptor, 1);
    /* The idle connection is closed without a byte... */
    ck_assert_uint_eq(read_some(idle, got, sizeof(got), 1), 0);
    /* ...and the request being read is read to its end and answered. */
    send_all(partial, "st: a\r\n\r\n");
    read_some(partial, got, sizeof(got), sizeof(OK_RESPONSE) - 1);
    ck_assert_str_eq(got, OK_RESPONSE);
    ck_assert_str_eq(seen.targets, "/before;/late;");
    ck_assert_uint_eq(wait_open(0), 0);
    close(idle);
    close(partial);
}
END_TEST

START_TEST(test_stop_answers_a_request_still_incomplete_with_503)
{
    int fd = client();
    send_all(fd, "GET /never HTTP/1.1\r\nHo");
    ck_assert_uint_eq(wait_open(1), 1);
    acceptor_drain(acceptor, 1);
    acceptor_stop(acceptor);
    acceptor_stopped = 1;
    char got[1024];
    read_some(fd, got, sizeof(got), sizeof(got));
    ck_assert_msg(strncmp(got, "HTTP/1.1 503 ", 13) == 0, "%s", got);
    ck_assert_uint_eq(handled(), 0);
    close(fd);
}
END_TEST

Suite *make_acceptor_suite(void)
{
    Suite *s = suite_create("acceptor");
    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_set_timeout(core, 3 * WAIT_S);
    tcase_add_test(core, test_complete_request_goes_to_the_pool);
    tcase_add_test(core, test_request_in_pieces_is_dispatched_once_whole);
    tcase_add_test(core, test_pipelined_requests_answered_in_order);
    tcase_add_test(core, test_drain_reads_requests_to_their_end_and_closes_idle_connections);
    tcase_add_test(core, test_stop_answers_a_request_still_incomplete_with_503);
    suite_add_tcase(s, core);

    TCase *errors = tcase_create("errors");
    tcase_add_checked_fixture(errors, setup, teardown);
    tcase_set_timeout(errors, 3 * WAIT_S);
    tcase_add_loop_test(errors, test_bad_request_answered_by_the_acceptor, 0,
                        ARRAY_SIZE(reject_cases));
    suite_add_tcase(s, errors);

    TCase *limits_case = tcase_create("limits");
    tcase_add_checked_fixture(limits_case, setup_short_request_timeout, teardown);
    tcase_set_timeout(limits_case, 3 * WAIT_S);
    tcase_add_test(limits_case, test_slow_request_gets_408);
    suite_add_tcase(s, limits_case);
    return s;
}

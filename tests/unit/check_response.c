/* Tests for src/response.c: status and header validation, the Date value,
 * chunk framing, and the blocking write loops over a socketpair. */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "pyruvate/common.h"
#include "pyruvate/response.h"
#include "suites.h"

#define INPUT(s) s, sizeof(s) - 1

struct status_case {
    const char *status;
    size_t len;
    int code; /* -1: malformed */
};

static const struct status_case status_cases[] = {
    {INPUT("200 OK"), 200},
    {INPUT("404 Not Found"), 404},
    {INPUT("200 "), 200}, /* the reason may be empty */
    {INPUT("100 Continue"), 100},
    {INPUT("599 Last"), 599},
    {INPUT("200 OK\twith tab"), 200},
    {INPUT("200 caf\xc3\xa9"), 200}, /* obs-text is allowed in a reason */
    {INPUT("20 OK"), -1},
    {INPUT("200OK"), -1},
    {INPUT("200"), -1},
    {INPUT(""), -1},
    {INPUT("abc OK"), -1},
    {INPUT("2x0 OK"), -1},
    {INPUT(" 200 OK"), -1},
    {INPUT("2000 OK"), -1},
    {INPUT("099 x"), -1},
    {INPUT("000 x"), -1},
    {INPUT("200 OK\r\nX: y"), -1}, /* header injection */
    {INPUT("200 OK\n"), -1},
    {INPUT("200 O\0K"), -1},
    {INPUT("200 O\x7fK"), -1},
};

START_TEST(test_parse_status)
{
    const struct status_case *c = &status_cases[_i];
    ck_assert_msg(response_parse_status(c->status, c->len) == c->code, "'%.*s': %d, want %d",
                  (int)c->len, c->status, response_parse_status(c->status, c->len), c->code);
}
END_TEST

/* Was a bug: response_parse_status accepts 600..999. RFC 9110 §15: "Values outside
 * the range 100..599 are invalid"; clients treat them as 5xx. */
static const struct status_case status_bug_cases[] = {
    {INPUT("600 Custom"), -1},
    {INPUT("999 Custom"), -1},
};

START_TEST(test_known_bug_parse_status_range)
{
    const struct status_case *c = &status_bug_cases[_i];
    ck_assert_msg(response_parse_status(c->status, c->len) == c->code, "'%.*s': %d, want %d",
                  (int)c->len, c->status, response_parse_status(c->status, c->len), c->code);
}
END_TEST

struct field_case {
    const char *text;
    size_t len;
    int valid;
};

static const struct field_case name_cases[] = {
    {INPUT("Content-Type"), 1},
    {INPUT("X-Custom_1"), 1},
    {INPUT("!#$%&'*+-.^_`|~"), 1},
    {INPUT("a"), 1},
    {INPUT(""), 0},
    {INPUT("X Y"), 0},
    {INPUT("X:Y"), 0},
    {INPUT("X-Y:"), 0},
    {INPUT("X\r"), 0},
    {INPUT("X\nY"), 0},
    {INPUT("X\0Y"), 0},
    {INPUT("X\tY"), 0},
    {INPUT("caf\xc3\xa9"), 0},
    {INPUT("X\"Y"), 0},
    {INPUT("(x)"), 0},
    {INPUT("X/Y"), 0},
    {INPUT("X@Y"), 0},
    {INPUT("X\x7f"), 0},
};

static const struct field_case value_cases[] = {
    {INPUT(""), 1},
    {INPUT("text/plain; charset=utf-8"), 1},
    {INPUT("a\tb"), 1},
    {INPUT(" spaced "), 1},
    {INPUT("caf\xc3\xa9"), 1},
    {INPUT("a\rb"), 0},
    {INPUT("a\nb"), 0},
    {INPUT("a\r\nX-Injected: 1"), 0},
    {INPUT("a\0b"), 0},
    {INPUT("a\x01"), 0},
    {INPUT("a\x1f"), 0},
    {INPUT("a\x7f"), 0},
};

START_TEST(test_valid_header_name)
{
    const struct field_case *c = &name_cases[_i];
    ck_assert_msg(!!response_valid_header_name(c->text, c->len) == c->valid, "name '%.*s'",
                  (int)c->len, c->text);
}
END_TEST

START_TEST(test_valid_header_value)
{
    const struct field_case *c = &value_cases[_i];
    ck_assert_msg(!!response_valid_header_value(c->text, c->len) == c->valid, "value '%.*s'",
                  (int)c->len, c->text);
}
END_TEST

struct date_case {
    time_t t;
    const char *text;
};

static const struct date_case date_cases[] = {
    {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
    {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
    {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
    {1709251199, "Thu, 29 Feb 2024 23:59:59 GMT"},
    {2147483647, "Tue, 19 Jan 2038 03:14:07 GMT"},
    {(time_t)4102444799LL, "Thu, 31 Dec 2099 23:59:59 GMT"},
};

START_TEST(test_http_date)
{
    const struct date_case *c = &date_cases[_i];
    char out[RESPONSE_DATE_LEN + 1];
    memset(out, '#', sizeof(out));
    response_http_date(c->t, out);
    ck_assert_str_eq(out, c->text);
    ck_assert_uint_eq(strlen(out), RESPONSE_DATE_LEN);
}
END_TEST

struct chunk_case {
    size_t len;
    const char *header;
};

static const struct chunk_case chunk_cases[] = {
    {0, "0\r\n"},
    {1, "1\r\n"},
    {15, "f\r\n"},
    {16, "10\r\n"},
    {4096, "1000\r\n"},
    {0xdeadbeef, "deadbeef\r\n"},
    {SIZE_MAX, "ffffffffffffffff\r\n"},
};

START_TEST(test_chunk_header)
{
    const struct chunk_case *c = &chunk_cases[_i];
    char out[24];
    size_t n = response_chunk_header(c->len, out);
    ck_assert_uint_eq(n, strlen(c->header));
    ck_assert_str_eq(out, c->header);
}
END_TEST

/* Writing: a reader thread drains the other end of the socketpair and checks
 * every byte against the pattern. */

static unsigned char pattern_byte(size_t i)
{
    return (unsigned char)(i * 7 + (i >> 12));
}

struct reader {
    int fd;
    size_t offset; /* pattern position of the first byte */
    size_t got;
    size_t first_mismatch; /* SIZE_MAX: none */
};

static void *read_and_verify(void *arg)
{
    struct reader *r = arg;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(r->fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            size_t at = r->got + (size_t)i;
            if (r->first_mismatch == SIZE_MAX &&
                (unsigned char)chunk[i] != pattern_byte(r->offset + at))
                r->first_mismatch = at;
        }
        r->got += (size_t)n;
    }
    return NULL;
}

static void start_reader(pthread_t *thread, struct reader *r, int fd, size_t offset)
{
    *r = (struct reader){fd, offset, 0, SIZE_MAX};
    set_blocking(fd);
    ck_assert_int_eq(pthread_create(thread, NULL, read_and_verify, r), 0);
}

START_TEST(test_write_all_large_payload)
{
    enum { PAYLOAD = 4 << 20 };
    /* Sizes cycle through empty, tiny and page-sized pieces; there are far
     * more iovecs than IOV_MAX, and sendmsg stops mid-iovec all the time. */
    static const size_t sizes[] = {0, 1, 13, 512, 1400, 4096, 3, 2900, 0, 65};
    unsigned char *payload = malloc(PAYLOAD);
    size_t cycle = 0;
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
        cycle += sizes[i];
    size_t max_iov = (PAYLOAD / cycle + 1) * ARRAY_SIZE(sizes);
    struct iovec *iov = calloc(max_iov, sizeof(*iov));
    ck_assert_ptr_nonnull(payload);
    ck_assert_ptr_nonnull(iov);
    for (size_t i = 0; i < PAYLOAD; i++)
        payload[i] = pattern_byte(i);
    int iovcnt = 0;
    for (size_t at = 0; at < PAYLOAD; iovcnt++) {
        size_t n = sizes[(size_t)iovcnt % ARRAY_SIZE(sizes)];
        if (n > PAYLOAD - at)
            n = PAYLOAD - at;
        iov[iovcnt] = (struct iovec){payload + at, n};
        at += n;
    }
    ck_assert_int_gt(iovcnt, 2 * IOV_MAX);

    int fds[2];
    make_socketpair(fds);
    int small = 4096;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    pthread_t thread;
    struct reader reader;
    start_reader(&thread, &reader, fds[1], 0);

    ck_assert_int_eq(response_write_all(fds[0], iov, iovcnt, 5000), 0);
    close(fds[0]); /* EOF tells the reader nothing more comes */
    pthread_join(thread, NULL);
    ck_assert_uint_eq(reader.got, PAYLOAD);
    ck_assert_msg(reader.first_mismatch == SIZE_MAX, "byte %zu differs", reader.first_mismatch);
    close(fds[1]);
    free(iov);
    free(payload);
}
END_TEST

START_TEST(test_write_all_nothing_to_write)
{
    int fds[2];
    make_socketpair(fds);
    struct iovec empty[3] = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    ck_assert_int_eq(response_write_all(fds[0], empty, 0, 50), 0);
    ck_assert_int_eq(response_write_all(fds[0], empty, 3, 50), 0);
    char byte;
    ck_assert_int_eq(read(fds[1], &byte, 1), -1);
    ck_assert_int_eq(errno, EAGAIN);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

START_TEST(test_write_all_times_out_when_nobody_reads)
{
    enum { PAYLOAD = 1 << 20 }; /* well over what the socket buffers hold */
    char *payload = calloc(1, PAYLOAD);
    ck_assert_ptr_nonnull(payload);
    int fds[2];
    make_socketpair(fds);
    struct iovec iov = {payload, PAYLOAD};
    errno = 0;
    ck_assert_int_eq(response_write_all(fds[0], &iov, 1, 50), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    /* iov now describes what is left. */
    ck_assert_uint_gt(iov.iov_len, 0);
    ck_assert_uint_lt(iov.iov_len, PAYLOAD);
    close(fds[0]);
    close(fds[1]);
    free(payload);
}
END_TEST

START_TEST(test_write_all_epipe_after_peer_closed)
{
    int fds[2];
    make_socketpair(fds);
    close(fds[1]);
    char data[] = "HTTP/1.1 200 OK\r\n\r\n";
    struct iovec iov = {data, sizeof(data) - 1};
    errno = 0;
    /* MSG_NOSIGNAL: an error, not a SIGPIPE that would kill the process. */
    ck_assert_int_eq(response_write_all(fds[0], &iov, 1, 50), -1);
    ck_assert_int_eq(errno, EPIPE);
    close(fds[0]);
}
END_TEST

static int make_pattern_file(size_t size)
{
    int fd = memfd_create("check_response", MFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    unsigned char *data = malloc(size);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < size; i++)
        data[i] = pattern_byte(i);
    ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
    free(data);
    return fd;
}

START_TEST(test_sendfile_range)
{
    enum { FILE_SIZE = 1 << 20, START = 1000, COUNT = 600000 };
    int file = make_pattern_file(FILE_SIZE);
    int fds[2];
    make_socketpair(fds);
    pthread_t thread;
    struct reader reader;
    start_reader(&thread, &reader, fds[1], START);
    off_t offset = START;
    ck_assert_int_eq(response_sendfile(fds[0], file, &offset, COUNT, 5000), 0);
    ck_assert_int_eq(offset, START + COUNT);
    close(fds[0]);
    pthread_join(thread, NULL);
    ck_assert_uint_eq(reader.got, COUNT);
    ck_assert_msg(reader.first_mismatch == SIZE_MAX, "byte %zu differs", reader.first_mismatch);
    close(fds[1]);
    close(file);
}
END_TEST

START_TEST(test_sendfile_file_ends_early)
{
    int file = make_pattern_file(1000);
    int fds[2];
    make_socketpair(fds);
    off_t offset = 0;
    errno = 0;
    ck_assert_int_eq(response_sendfile(fds[0], file, &offset, 2000, 50), -1);
    ck_assert_int_eq(errno, ENODATA);
    ck_assert_int_eq(offset, 1000);
    close(fds[0]);
    close(fds[1]);
    close(file);
}
END_TEST

/* Reads exactly n bytes from fd (blocking) into out. */
static void read_exactly(int fd, char *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, out + got, n - got);
        ck_assert_int_gt(r, 0);
        got += (size_t)r;
    }
}

START_TEST(test_out_order_framing_file_after)
{
    /* framing, the file range, then the trailer: a chunk around a file. */
    int file = make_pattern_file(100);
    int fds[2];
    make_socketpair(fds);
    struct response_out out = {
        .framing = "a\r\n", .framing_len = 3, .file_fd = file, .file_offset = 10, .file_len = 10};
    memcpy(out.after, "\r\n", 2);
    out.after_len = 2;
    ck_assert_int_eq(response_out_send(fds[0], &out, 5000, 0), 0);
    ck_assert(!response_out_pending(&out));
    char got[15];
    read_exactly(fds[1], got, sizeof(got));
    ck_assert_mem_eq(got, "a\r\n", 3);
    for (size_t i = 0; i < 10; i++)
        ck_assert_uint_eq((unsigned char)got[3 + i], pattern_byte(10 + i));
    ck_assert_mem_eq(got + 13, "\r\n", 2);
    close(fds[0]);
    close(fds[1]);
    close(file);
}
END_TEST

START_TEST(test_out_full_socket_keeps_the_rest)
{
    /* Nobody reads: response_out_try stops at a full socket and out then
     * describes exactly what did not go out. */
    enum { SIZE = 4 << 20 };
    char *data = malloc(SIZE);
    ck_assert_ptr_nonnull(data);
    memset(data, 'x', SIZE);
    int fds[2];
    make_socketpair(fds);
    struct response_out out = {
        .framing = "HEAD", .framing_len = 4, .data = data, .data_len = SIZE, .file_fd = -1};
    memcpy(out.after, "\r\n", 2);
    out.after_len = 2;
    ck_assert_int_eq(response_out_try(fds[0], &out), 1);
    ck_assert_uint_eq(out.framing_len, 0);
    ck_assert_uint_gt(out.data_len, 0);
    ck_assert_ptr_eq(out.data + out.data_len, data + SIZE);
    ck_assert_uint_eq(out.after_len, 2);
    errno = 0;
    ck_assert_int_eq(response_out_send(fds[0], &out, 10, monotonic_ms() + 30), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    close(fds[0]);
    close(fds[1]);
    free(data);
}
END_TEST

START_TEST(test_out_file_shorter_than_announced)
{
    int file = make_pattern_file(100);
    int fds[2];
    make_socketpair(fds);
    struct response_out out = {.file_fd = file, .file_offset = 50, .file_len = 80};
    errno = 0;
    ck_assert_int_eq(response_out_try(fds[0], &out), -1);
    ck_assert_int_eq(errno, ENODATA);
    ck_assert_uint_eq(out.file_len, 30);
    close(fds[0]);
    close(fds[1]);
    close(file);
}
END_TEST

Suite *make_response_suite(void)
{
    Suite *s = suite_create("response");
    TCase *core = tcase_create("core");
    tcase_add_loop_test(core, test_parse_status, 0, ARRAY_SIZE(status_cases));
    tcase_add_loop_test(core, test_valid_header_name, 0, ARRAY_SIZE(name_cases));
    tcase_add_loop_test(core, test_valid_header_value, 0, ARRAY_SIZE(value_cases));
    tcase_add_loop_test(core, test_http_date, 0, ARRAY_SIZE(date_cases));
    tcase_add_loop_test(core, test_chunk_header, 0, ARRAY_SIZE(chunk_cases));
    tcase_add_test(core, test_write_all_nothing_to_write);
    tcase_add_test(core, test_sendfile_range);
    tcase_add_test(core, test_out_order_framing_file_after);
    tcase_add_test(core, test_out_full_socket_keeps_the_rest);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_write_all_large_payload);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_write_all_times_out_when_nobody_reads);
    tcase_add_test(errors, test_write_all_epipe_after_peer_closed);
    tcase_add_test(errors, test_sendfile_file_ends_early);
    tcase_add_test(errors, test_out_file_shorter_than_announced);
    suite_add_tcase(s, errors);

    {
        TCase *bugs = tcase_create("regressions");
        tcase_add_loop_test(bugs, test_known_bug_parse_status_range, 0,
                            ARRAY_SIZE(status_bug_cases));
        suite_add_tcase(s, bugs);
    }
    return s;
}

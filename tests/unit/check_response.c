/* Tests for src/response.c: status and header validation, the Date value,
 * the head and the body's framing for every case, and sending a
 * response_out over a socketpair. */
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

/* Fills out with the piece of the pattern that starts at *at: framing and
 * trailer from memory, the body from memory or (every other piece) from the
 * pattern file, sizes cycling through empty, tiny and page-sized ones so the
 * socket stops mid-part all the time. */
static void next_piece(struct response_out *out, const unsigned char *payload, int file, size_t *at,
                       size_t total, size_t index)
{
    static const size_t framing_sizes[] = {0, 1, 13, 512, 1400, 6};
    static const size_t body_sizes[] = {4096, 3, 2900, 0, 65, 70000, 1};
    static const size_t after_sizes[] = {0, 2, 8, 1, 5};
    size_t sizes[3] = {framing_sizes[index % ARRAY_SIZE(framing_sizes)],
                       body_sizes[index % ARRAY_SIZE(body_sizes)],
                       after_sizes[index % ARRAY_SIZE(after_sizes)]};
    for (size_t i = 0; i < 3; i++) {
        if (sizes[i] > total - *at)
            sizes[i] = total - *at;
        *at += sizes[i];
    }
    size_t start = *at - sizes[0] - sizes[1] - sizes[2];
    *out = (struct response_out){
        .framing = (const char *)payload + start, .framing_len = sizes[0], .file_fd = -1};
    if (index % 2) {
        out->file_fd = file;
        out->file_offset = (off_t)(start + sizes[0]);
        out->file_len = sizes[1];
    } else {
        out->data = (const char *)payload + start + sizes[0];
        out->data_len = sizes[1];
    }
    memcpy(out->after, payload + start + sizes[0] + sizes[1], sizes[2]);
    out->after_len = sizes[2];
}

START_TEST(test_out_send_large_payload_in_pieces)
{
    enum { PAYLOAD = 4 << 20 };
    unsigned char *payload = malloc(PAYLOAD);
    ck_assert_ptr_nonnull(payload);
    for (size_t i = 0; i < PAYLOAD; i++)
        payload[i] = pattern_byte(i);
    int file = make_pattern_file(PAYLOAD);

    int fds[2];
    make_socketpair(fds);
    int small = 4096;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    pthread_t thread;
    struct reader reader;
    start_reader(&thread, &reader, fds[1], 0);

    size_t pieces = 0;
    for (size_t at = 0; at < PAYLOAD; pieces++) {
        struct response_out out;
        next_piece(&out, payload, file, &at, PAYLOAD, pieces);
        ck_assert_int_eq(response_out_send(fds[0], &out, 5000, 0), 0);
        ck_assert(!response_out_pending(&out));
    }
    ck_assert_uint_gt(pieces, 100);
    close(fds[0]); /* EOF tells the reader nothing more comes */
    pthread_join(thread, NULL);
    ck_assert_uint_eq(reader.got, PAYLOAD);
    ck_assert_msg(reader.first_mismatch == SIZE_MAX, "byte %zu differs", reader.first_mismatch);
    close(fds[1]);
    close(file);
    free(payload);
}
END_TEST

START_TEST(test_out_nothing_to_send)
{
    int fds[2];
    make_socketpair(fds);
    struct response_out empty = {.file_fd = -1};
    ck_assert(!response_out_pending(&empty));
    ck_assert_int_eq(response_out_try(fds[0], &empty), 0);
    ck_assert_int_eq(response_out_send(fds[0], &empty, 50, 0), 0);
    /* Empty parts next to a file range that is empty too: nothing either. */
    struct response_out blank = {.framing = "", .data = "", .file_fd = 0, .file_offset = 5};
    ck_assert_int_eq(response_out_send(fds[0], &blank, 50, monotonic_ms() + 50), 0);
    char byte;
    ck_assert_int_eq(read(fds[1], &byte, 1), -1);
    ck_assert_int_eq(errno, EAGAIN);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

START_TEST(test_out_send_times_out_when_nobody_reads)
{
    enum { PAYLOAD = 1 << 20 }; /* well over what the socket buffers hold */
    char *payload = calloc(1, PAYLOAD);
    ck_assert_ptr_nonnull(payload);
    int fds[2];
    make_socketpair(fds);
    struct response_out out = {.data = payload, .data_len = PAYLOAD, .file_fd = -1};
    errno = 0;
    /* No deadline: the wait for a full socket to drain is the limit. */
    ck_assert_int_eq(response_out_send(fds[0], &out, 50, 0), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    /* out now describes what is left. */
    ck_assert_uint_gt(out.data_len, 0);
    ck_assert_uint_lt(out.data_len, PAYLOAD);
    ck_assert_ptr_eq(out.data + out.data_len, payload + PAYLOAD);
    close(fds[0]);
    close(fds[1]);
    free(payload);
}
END_TEST

START_TEST(test_out_send_epipe_after_peer_closed)
{
    int fds[2];
    make_socketpair(fds);
    close(fds[1]);
    struct response_out out = {
        .framing = "HTTP/1.1 200 OK\r\n\r\n", .framing_len = 19, .file_fd = -1};
    errno = 0;
    /* MSG_NOSIGNAL: an error, not a SIGPIPE that would kill the process. */
    ck_assert_int_eq(response_out_send(fds[0], &out, 50, 0), -1);
    ck_assert_int_eq(errno, EPIPE);
    close(fds[0]);
}
END_TEST

START_TEST(test_out_send_file_range)
{
    enum { FILE_SIZE = 1 << 20, START = 1000, COUNT = 600000 };
    int file = make_pattern_file(FILE_SIZE);
    int fds[2];
    make_socketpair(fds);
    pthread_t thread;
    struct reader reader;
    start_reader(&thread, &reader, fds[1], START);
    struct response_out out = {.file_fd = file, .file_offset = START, .file_len = COUNT};
    ck_assert_int_eq(response_out_send(fds[0], &out, 5000, 0), 0);
    ck_assert_int_eq(out.file_offset, START + COUNT);
    ck_assert_uint_eq(out.file_len, 0);
    close(fds[0]);
    pthread_join(thread, NULL);
    ck_assert_uint_eq(reader.got, COUNT);
    ck_assert_msg(reader.first_mismatch == SIZE_MAX, "byte %zu differs", reader.first_mismatch);
    close(fds[1]);
    close(file);
}
END_TEST

START_TEST(test_out_send_file_ends_early)
{
    int file = make_pattern_file(1000);
    int fds[2];
    make_socketpair(fds);
    struct response_out out = {.file_fd = file, .file_offset = 0, .file_len = 2000};
    errno = 0;
    ck_assert_int_eq(response_out_send(fds[0], &out, 50, 0), -1);
    ck_assert_int_eq(errno, ENODATA);
    ck_assert_int_eq(out.file_offset, 1000);
    ck_assert_uint_eq(out.file_len, 1000);
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

/* ---- head and framing ------------------------------------------------- */

#define DATE     "Sun, 06 Nov 1994 08:49:37 GMT"
#define HEAD_END "Date: " DATE "\r\nServer: pyruvate\r\n"

struct framing_case {
    const char *name;
    const char *status;
    int head_request;
    const char *headers[4][2]; /* the app's, NULL-terminated */
    struct response_context ctx;
    const char *body[3]; /* the app's chunks, NULL-terminated */
    long long known;     /* the whole body's length when the result tells it */
    const char *wire;    /* everything the response puts on the wire */
    int must_close;
};

#define HTTP11                                                               \
    {                                                                        \
        .http_minor = 1, .keep_alive = 1, .chunked_allowed = 1, .date = DATE \
    }
#define HTTP10                                                               \
    {                                                                        \
        .http_minor = 0, .keep_alive = 1, .chunked_allowed = 1, .date = DATE \
    }

static const struct framing_case framing_cases[] = {
    {"app length",
     "200 OK",
     0,
     {{"Content-Length", "5"}},
     HTTP11,
     {"hello"},
     -1,
     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" HEAD_END "\r\nhello",
     0},
    {"known length",
     "200 OK",
     0,
     {{NULL}},
     HTTP11,
     {"hel", "lo"},
     5,
     "HTTP/1.1 200 OK\r\n" HEAD_END "Content-Length: 5\r\n\r\nhello",
     0},
    {"empty known body",
     "200 OK",
     0,
     {{NULL}},
     HTTP11,
     {NULL},
     0,
     "HTTP/1.1 200 OK\r\n" HEAD_END "Content-Length: 0\r\n\r\n",
     0},
    {"chunked",
     "200 OK",
     0,
     {{NULL}},
     HTTP11,
     {"hello", "ab"},
     -1,
     "HTTP/1.1 200 OK\r\n" HEAD_END "Transfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n2\r\nab\r\n0\r\n\r\n",
     0},
    {"chunked disabled: close-delimited",
     "200 OK",
     0,
     {{NULL}},
     {.http_minor = 1, .keep_alive = 1, .date = DATE},
     {"hello"},
     -1,
     "HTTP/1.1 200 OK\r\n" HEAD_END "Connection: close\r\n\r\nhello",
     1},
    {"HTTP/1.0 without length: close-delimited",
     "200 OK",
     0,
     {{NULL}},
     HTTP10,
     {"hello"},
     -1,
     "HTTP/1.1 200 OK\r\n" HEAD_END "Connection: close\r\n\r\nhello",
     1},
    {"HTTP/1.0 keep-alive",
     "200 OK",
     0,
     {{NULL}},
     HTTP10,
     {"hello"},
     5,
     "HTTP/1.1 200 OK\r\n" HEAD_END "Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
     0},
    {"HEAD gets GET's known length",
     "200 OK",
     1,
     {{NULL}},
     HTTP11,
     {"hello"},
     5,
     "HTTP/1.1 200 OK\r\n" HEAD_END "Content-Length: 5\r\n\r\n",
     0},
    {"HEAD of an empty result adds no length",
     "200 OK",
     1,
     {{NULL}},
     HTTP11,
     {NULL},
     0,
     "HTTP/1.1 200 OK\r\n" HEAD_END "\r\n",
     0},
    {"HEAD keeps the app's length",
     "200 OK",
     1,
     {{"Content-Length", "9"}},
     HTTP11,
     {"hello"},
     -1,
     "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n" HEAD_END "\r\n",
     0},
    {"204 drops length and body",
     "204 No Content",
     0,
     {{"Content-Length", "3"}},
     HTTP11,
     {"abc"},
     -1,
     "HTTP/1.1 204 No Content\r\n" HEAD_END "\r\n",
     0},
    {"304 keeps length, drops body",
     "304 Not Modified",
     0,
     {{"Content-Length", "10"}},
     HTTP11,
     {"abc"},
     -1,
     "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n" HEAD_END "\r\n",
     0},
    {"1xx ends the connection",
     "103 Early Hints",
     0,
     {{"Content-Length", "3"}},
     HTTP11,
     {"abc"},
     -1,
     "HTTP/1.1 103 Early Hints\r\n" HEAD_END "Connection: close\r\n\r\n",
     1},
    {"body cut to Content-Length",
     "200 OK",
     0,
     {{"Content-Length", "3"}},
     HTTP11,
     {"hello", "x"},
     -1,
     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n" HEAD_END "\r\nhel",
     0},
    {"short body closes",
     "200 OK",
     0,
     {{"Content-Length", "10"}},
     HTTP11,
     {"hello"},
     -1,
     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n" HEAD_END "\r\nhello",
     1},
    {"app asks to close",
     "200 OK",
     0,
     {{"Connection", "keep-alive, Close"}},
     HTTP11,
     {"hi"},
     2,
     "HTTP/1.1 200 OK\r\n" HEAD_END "Content-Length: 2\r\nConnection: close\r\n\r\nhi",
     1},
    {"app framing fields dropped",
     "200 OK",
     0,
     {{"Transfer-Encoding", "chunked"}, {"Keep-Alive", "timeout=5"}, {"X-A", "b"}},
     HTTP11,
     {"hi"},
     2,
     "HTTP/1.1 200 OK\r\nX-A: b\r\n" HEAD_END "Content-Length: 2\r\n\r\nhi",
     0},
    {"app Date and Server kept",
     "200 OK",
     0,
     {{"date", "today"}, {"SERVER", "mine"}},
     HTTP11,
     {"hi"},
     2,
     "HTTP/1.1 200 OK\r\ndate: today\r\nSERVER: mine\r\nContent-Length: 2\r\n\r\nhi",
     0},
    {"last request on the connection",
     "200 OK",
     0,
     {{NULL}},
     {.http_minor = 1,
      .keep_alive = 1,
      .chunked_allowed = 1,
      .last_on_connection = 1,
      .date = DATE},
     {"hi"},
     2,
     "HTTP/1.1 200 OK\r\n" HEAD_END "Content-Length: 2\r\nConnection: close\r\n\r\nhi",
     1},
    {"client asks to close",
     "200 OK",
     0,
     {{NULL}},
     {.http_minor = 1, .chunked_allowed = 1, .date = DATE},
     {"hi"},
     2,
     "HTTP/1.1 200 OK\r\n" HEAD_END "Content-Length: 2\r\nConnection: close\r\n\r\nhi",
     1},
};

static void append_out(struct buf *wire, const struct response_out *out)
{
    ck_assert_int_eq(buf_append(wire, out->framing, out->framing_len), 0);
    ck_assert_int_eq(buf_append(wire, out->data, out->data_len), 0);
    ck_assert_int_eq(buf_append(wire, out->after, out->after_len), 0);
}

/* Drives a response as wsgi.c does: each chunk, then the end. */
START_TEST(test_framing)
{
    const struct framing_case *c = &framing_cases[_i];
    struct response_state resp;
    struct buf head = {0}, wire = {0};
    struct response_out out;
    int code = response_parse_status(c->status, strlen(c->status));
    ck_assert_int_eq(
        response_begin(&resp, &head, code, c->status, strlen(c->status), c->head_request), 0);
    for (int i = 0; c->headers[i][0]; i++)
        ck_assert_int_eq(response_add_header(&resp, &head, c->headers[i][0],
                                             strlen(c->headers[i][0]), c->headers[i][1],
                                             strlen(c->headers[i][1])),
                         RESPONSE_HEADER_OK);
    for (int i = 0; c->body[i]; i++) {
        ck_assert_int_eq(response_frame(&resp, &head, &out, &c->ctx, c->body[i], -1, 0,
                                        strlen(c->body[i]), c->known),
                         0);
        append_out(&wire, &out);
    }
    if (!resp.headers_sent) {
        ck_assert_int_eq(response_frame(&resp, &head, &out, &c->ctx, NULL, -1, 0, 0, 0), 0);
        append_out(&wire, &out);
    }
    if (response_finish(&resp, &out))
        append_out(&wire, &out);
    ck_assert_msg(wire.len == strlen(c->wire) && memcmp(wire.data, c->wire, wire.len) == 0,
                  "%s: got %.*s", c->name, (int)wire.len, wire.data);
    ck_assert_int_eq(resp.must_close, c->must_close);
    ck_assert_int_eq(resp.sent_status, code);
    buf_free(&head);
    buf_free(&wire);
}
END_TEST

struct header_case {
    const char *name, *value;
    int result;
};

static const struct header_case header_cases[] = {
    {"X-Ok", "fine\tvalue", RESPONSE_HEADER_OK},
    {"Bad Name", "v", RESPONSE_HEADER_INVALID},
    {"", "v", RESPONSE_HEADER_INVALID},
    {"X-Split", "a\r\nInjected: yes", RESPONSE_HEADER_INVALID},
    {"Content-Length", "", RESPONSE_HEADER_BAD_LENGTH},
    {"content-length", "12a", RESPONSE_HEADER_BAD_LENGTH},
    {"Content-Length", "-1", RESPONSE_HEADER_BAD_LENGTH},
    {"Content-Length", "1234567890123456789", RESPONSE_HEADER_BAD_LENGTH},
    {"Content-Length", "123456789012345678", RESPONSE_HEADER_OK},
};

START_TEST(test_add_header)
{
    const struct header_case *c = &header_cases[_i];
    struct response_state resp;
    struct buf head = {0};
    ck_assert_int_eq(response_begin(&resp, &head, 200, "200 OK", 6, 0), 0);
    size_t before = head.len;
    int rc =
        response_add_header(&resp, &head, c->name, strlen(c->name), c->value, strlen(c->value));
    ck_assert_msg(rc == c->result, "%s: %s gave %d", c->name, c->value, rc);
    if (rc != RESPONSE_HEADER_OK)
        ck_assert_uint_eq(head.len, before); /* nothing unchecked reaches the head */
    buf_free(&head);
}
END_TEST

START_TEST(test_add_header_repeated_content_length)
{
    struct response_state resp;
    struct buf head = {0};
    ck_assert_int_eq(response_begin(&resp, &head, 200, "200 OK", 6, 0), 0);
    ck_assert_int_eq(response_add_header(&resp, &head, INPUT("Content-Length"), INPUT("20")),
                     RESPONSE_HEADER_OK);
    size_t once = head.len;
    /* The same length again is one field on the wire. */
    ck_assert_int_eq(response_add_header(&resp, &head, INPUT("content-length"), INPUT("020")),
                     RESPONSE_HEADER_OK);
    ck_assert_uint_eq(head.len, once);
    /* A different one cannot frame the body: rejected, the first stays. */
    ck_assert_int_eq(response_add_header(&resp, &head, INPUT("Content-Length"), INPUT("1")),
                     RESPONSE_HEADER_CONFLICTING_LENGTH);
    ck_assert_uint_eq(head.len, once);
    ck_assert_int_eq((int)resp.content_length, 20);
    buf_free(&head);
}
END_TEST

START_TEST(test_frame_file_range_cut_to_length)
{
    struct response_state resp;
    struct buf head = {0};
    struct response_out out;
    struct response_context ctx = HTTP11;
    ck_assert_int_eq(response_begin(&resp, &head, 200, "200 OK", 6, 0), 0);
    ck_assert_int_eq(response_add_header(&resp, &head, INPUT("Content-Length"), INPUT("4")), 0);
    ck_assert_int_eq(response_frame(&resp, &head, &out, &ctx, NULL, 7, 3, 10, -1), 0);
    ck_assert_int_eq(out.file_fd, 7);
    ck_assert_int_eq((int)out.file_offset, 3);
    ck_assert_uint_eq(out.file_len, 4);
    ck_assert_uint_eq(out.data_len, 0);
    ck_assert_uint_eq(resp.body_sent, 4);
    buf_free(&head);
}
END_TEST

START_TEST(test_frame_after_failure)
{
    struct response_state resp;
    struct buf head = {0};
    struct response_out out;
    struct response_context ctx = HTTP11;
    ck_assert_int_eq(response_begin(&resp, &head, 200, "200 OK", 6, 0), 0);
    resp.failed = 1;
    ck_assert_int_eq(response_frame(&resp, &head, &out, &ctx, "x", -1, 0, 1, -1), -1);
    ck_assert_int_eq(resp.headers_sent, 0);
    buf_free(&head);
}
END_TEST

Suite *make_response_suite(void)
{
    Suite *s = suite_create("response");
    TCase *core = tcase_create("core");
    tcase_add_loop_test(core, test_parse_status, 0, ARRAY_SIZE(status_cases));
    tcase_add_loop_test(core, test_valid_header_name, 0, ARRAY_SIZE(name_cases));
    tcase_add_loop_test(core, test_valid_header_value, 0, ARRAY_SIZE(value_cases));
    tcase_add_loop_test(core, test_chunk_header, 0, ARRAY_SIZE(chunk_cases));
    tcase_add_test(core, test_out_nothing_to_send);
    tcase_add_test(core, test_out_send_file_range);
    tcase_add_test(core, test_out_order_framing_file_after);
    tcase_add_test(core, test_out_full_socket_keeps_the_rest);
    tcase_add_loop_test(core, test_framing, 0, ARRAY_SIZE(framing_cases));
    tcase_add_test(core, test_frame_file_range_cut_to_length);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_out_send_large_payload_in_pieces);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_out_send_times_out_when_nobody_reads);
    tcase_add_test(errors, test_out_send_epipe_after_peer_closed);
    tcase_add_test(errors, test_out_send_file_ends_early);
    tcase_add_test(errors, test_out_file_shorter_than_announced);
    tcase_add_loop_test(errors, test_add_header, 0, ARRAY_SIZE(header_cases));
    tcase_add_test(errors, test_add_header_repeated_content_length);
    tcase_add_test(errors, test_frame_after_failure);
    suite_add_tcase(s, errors);

    {
        TCase *bugs = tcase_create("regressions");
        tcase_add_loop_test(bugs, test_known_bug_parse_status_range, 0,
                            ARRAY_SIZE(status_bug_cases));
        suite_add_tcase(s, bugs);
    }
    return s;
}

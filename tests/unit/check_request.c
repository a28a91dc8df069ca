/* Tests for src/request.c: HTTP/1.x requests parsed into spans, limits and
 * error statuses. Every table row is fed whole, split at every byte, one
 * byte at a time, and through buffers that move between feeds. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "pyruvate/request.h"
#include "suites.h"

/* Input as (bytes, length), so rows may hold NUL bytes. */
#define INPUT(s) s, sizeof(s) - 1

static const struct request_limits default_limits = {
    .max_target_length = 8192,
    .max_header_bytes = 16384,
    .max_headers = 64,
    .max_body_size = 1 << 20,
};

/* How one row's bytes arrive. Plans 1..len-1 split the input at that byte. */
struct plan {
    size_t first, step;
    enum feed_mode mode;
    char name[40];
};

static size_t plan_count(size_t len)
{
    return len + 3;
}

static struct plan plan_at(size_t len, size_t p)
{
    struct plan plan = {len, 0, FEED_IN_PLACE, "whole"};
    if (p > 0 && p < len) {
        plan.first = p;
        snprintf(plan.name, sizeof(plan.name), "split at %zu", p);
    } else if (p == len) {
        plan = (struct plan){1, 1, FEED_IN_PLACE, "byte by byte"};
    } else if (p == len + 1) {
        plan = (struct plan){1, 1, FEED_MOVING, "byte by byte, moving buffer"};
    } else if (p == len + 2) {
        plan = (struct plan){len / 2, 0, FEED_MOVING, "two halves, moving buffer"};
    }
    return plan;
}

static int span_equals(const char *base, struct span s, const char *expected)
{
    return s.len == strlen(expected) && memcmp(base + s.offset, expected, s.len) == 0;
}

static const char *span_text(const char *base, struct span s, char *out, size_t size)
{
    snprintf(out, size, "%.*s", (int)s.len, base + s.offset);
    return out;
}

/* The parsed headers as "name=value|name=value", easy to compare. */
static const char *headers_text(const struct request *r, const char *base, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < r->header_count && used < size; i++) {
        const struct request_header *h = &r->headers[i];
        used +=
            (size_t)snprintf(out + used, size - used, "%s%.*s=%.*s", i ? "|" : "", (int)h->name.len,
                             base + h->name.offset, (int)h->value.len, base + h->value.offset);
    }
    return out;
}

/* Valid requests. */

struct valid_case {
    const char *name;
    const char *input;
    size_t len;
    const char *method;
    const char *target;
    int minor;
    int keep_alive;
    const char *headers; /* as headers_text writes them */
    const char *body;    /* decoded */
    size_t body_len;
    int chunked;
    int expect_continue;
};

/* 4096 bytes of chunk line: "1;x=\"" (5) + 4088 + "\"\r\n" (3). */
#define X64   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define X1024 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64
#define LONG_EXTENSION                                                            \
    X1024 X1024 X1024 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 \
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static const struct valid_case valid_cases[] = {
    {"GET with headers, values trimmed",
     INPUT("GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  test/1.0 \t\r\n"
           "Accept:\t*/*\r\nX-Inner:  a  b \r\n\r\n"),
     "GET", "/path?q=1", 1, 1, "Host=example.com|User-Agent=test/1.0|Accept=*/*|X-Inner=a  b",
     INPUT(""), 0, 0},
    {"HTTP/1.0 closes by default", INPUT("GET / HTTP/1.0\r\n\r\n"), "GET", "/", 0, 0, "", INPUT(""),
     0, 0},
    {"HTTP/1.0 with Connection: keep-alive",
     INPUT("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "GET", "/", 0, 1,
     "Connection=keep-alive", INPUT(""), 0, 0},
    {"HTTP/1.1 with Connection: close",
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), "GET", "/", 1, 0,
     "Host=a|Connection=close", INPUT(""), 0, 0},
    {"HEAD", INPUT("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n"), "HEAD", "/x", 1, 1, "Host=a", INPUT(""),
     0, 0},
    {"OPTIONS *", INPUT("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), "OPTIONS", "*", 1, 1, "Host=a",
     INPUT(""), 0, 0},
    {"absolute-form target", INPUT("GET http://a.example/p HTTP/1.1\r\nHost: a.example\r\n\r\n"),
     "GET", "http://a.example/p", 1, 1, "Host=a.example", INPUT(""), 0, 0},
    /* RFC 9112 §3.2: an empty Host is allowed where the target names the host. */
    {"empty Host beside an absolute-form target",
     INPUT("GET http://a.example HTTP/1.1\r\nHost:\r\n\r\n"), "GET", "http://a.example", 1, 1,
     "Host=", INPUT(""), 0, 0},
    {"Host forms", INPUT("GET https://[::1]:8443/?x HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n"), "GET",
     "https://[::1]:8443/?x", 1, 1, "Host=10.0.0.1:80", INPUT(""), 0, 0},
    {"Host with pct-encoding and sub-delims",
     INPUT("GET / HTTP/1.1\r\nHost: a%41-b_c~!$&'()*+,;=\r\n\r\n"), "GET", "/", 1, 1,
     "Host=a%41-b_c~!$&'()*+,;=", INPUT(""), 0, 0},
    /* RFC 9112 §7.1.1: BWS around ";" is in the grammar, but llhttp 8.1
     * refuses it (README: deliberate strictness); no BWS is accepted. */
    {"chunk line at the limit",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "1;x=\"" LONG_EXTENSION "\"\r\na\r\n0\r\n\r\n"),
     "POST", "/", 1, 1, "Host=a|Transfer-Encoding=chunked", INPUT("a"), 1, 0},
    {"empty values, with and without whitespace",
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nX:\r\nY: \t \r\n\r\n"), "GET", "/", 1, 1,
     "Host=a|X=|Y=", INPUT(""), 0, 0},
    {"header names are case-insensitive", INPUT("GET / HTTP/1.1\r\nhOsT: a\r\nX:\r\n\r\n"), "GET",
     "/", 1, 1, "hOsT=a|X=", INPUT(""), 0, 0},
    /* RFC 9110 §5.5: obs-text is allowed in field values. */
    {"obs-text in a value", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n"), "GET",
     "/", 1, 1, "Host=a|X=caf\xc3\xa9", INPUT(""), 0, 0},
    /* RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request. */
    {"leading empty line", INPUT("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), "GET", "/", 1, 1,
     "Host=a", INPUT(""), 0, 0},
    {"POST with Content-Length",
     INPUT("POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"), "POST",
     "/form", 1, 1, "Host=a|Content-Length=11", INPUT("hello world"), 0, 0},
    {"POST with Content-Length 0", INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
     "POST", "/", 1, 1, "Host=a|Content-Length=0", INPUT(""), 0, 0},
    {"HTTP/1.0 POST with a body", INPUT("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"), "POST",
     "/", 0, 0, "Content-Length=3", INPUT("abc"), 0, 0},
    {"body with NUL and CRLF bytes",
     INPUT("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\na\0\r\nb"), "PUT", "/", 1, 1,
     "Host=a|Content-Length=5", INPUT("a\0\r\nb"), 0, 0},
    /* Trailer fields are read and dropped: they are not request headers. */
    {"chunked with extensions and trailers",
     INPUT("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5;name=value\r\nhello\r\n1;x\r\n \r\n5\r\nworld\r\n0\r\nTrailer-X: t\r\n\r\n"),
     "POST", "/up", 1, 1, "Host=a|Transfer-Encoding=chunked", INPUT("hello world"), 1, 0},
    /* RFC 9110 §6.5.1: trailers never change what the header block decided;
     * empty and whitespace-only trailer values are fine. */
    {"framing and routing fields as trailers are dropped",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n0\r\nContent-Length: 100\r\nHost: evil\r\nExpect: x\r\n"
           "Upgrade: y\r\nT:\r\nU: \t\r\n\r\n"),
     "POST", "/", 1, 1, "Host=a|Transfer-Encoding=chunked", INPUT("hello"), 1, 0},
    {"chunked with upper-case hex size",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "A\r\n0123456789\r\n0\r\n\r\n"),
     "POST", "/", 1, 1, "Host=a|Transfer-Encoding=chunked", INPUT("0123456789"), 1, 0},
    {"chunked, empty body",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), "POST",
     "/", 1, 1, "Host=a|Transfer-Encoding=chunked", INPUT(""), 1, 0},
    {"Expect: 100-continue with its body",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"),
     "POST", "/", 1, 1, "Host=a|Expect=100-continue|Content-Length=2", INPUT("ok"), 0, 1},
    /* RFC 9110 §10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request. */
    {"Expect: 100-continue on HTTP/1.0",
     INPUT("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"), "POST", "/",
     0, 0, "Expect=100-continue|Content-Length=2", INPUT("ok"), 0, 0},
};

static void check_valid(const struct valid_case *c, const struct plan *plan)
{
    struct request r;
    struct guard_buf g;
    char got[512];
    ck_assert_int_eq(request_init(&r, &default_limits), 0);
    enum request_state state =
        feed_request(&r, &g, c->input, c->len, plan->first, plan->step, plan->mode);
    ck_assert_msg(state == REQUEST_COMPLETE, "%s (%s): state %d, status %d: %s", c->name,
                  plan->name, state, r.error_status, r.error_reason ? r.error_reason : "");
    ck_assert_msg(r.consumed == c->len, "%s (%s): consumed %zu of %zu", c->name, plan->name,
                  r.consumed, c->len);
    ck_assert_str_eq(r.method, c->method);
    ck_assert_msg(span_equals(g.data, r.target, c->target), "%s (%s): target '%s'", c->name,
                  plan->name, span_text(g.data, r.target, got, sizeof(got)));
    ck_assert_int_eq(r.http_major, 1);
    ck_assert_int_eq(r.http_minor, c->minor);
    ck_assert_msg(r.keep_alive == c->keep_alive, "%s (%s): keep_alive %d", c->name, plan->name,
                  r.keep_alive);
    ck_assert_msg(strcmp(headers_text(&r, g.data, got, sizeof(got)), c->headers) == 0,
                  "%s (%s): headers '%s'", c->name, plan->name, got);
    ck_assert_msg(
        r.body.len == c->body_len && memcmp(g.data + r.body.offset, c->body, c->body_len) == 0,
        "%s (%s): body '%.*s'", c->name, plan->name, (int)r.body.len, g.data + r.body.offset);
    ck_assert_int_eq(r.chunked, c->chunked);
    ck_assert_int_eq(r.expect_continue, c->expect_continue);
    ck_assert_int_eq(r.headers_complete, 1);
    ck_assert_int_eq(request_wants_body(&r), 0);
    ck_assert_int_eq(r.error_status, 0);
    guard_buf_free(&g);
    request_free(&r);
}

START_TEST(test_valid_requests)
{
    const struct valid_case *c = &valid_cases[_i];
    for (size_t p = 0; p < plan_count(c->len); p++) {
        struct plan plan = plan_at(c->len, p);
        check_valid(c, &plan);
    }
}
END_TEST

START_TEST(test_find_header)
{
    static const char input[] = "GET / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n"
                                "X-Dup: first\r\nX-Dup: second\r\n\r\n";
    struct request r;
    struct guard_buf g;
    ck_assert_int_eq(request_init(&r, &default_limits), 0);
    ck_assert_int_eq(
        feed_request(&r, &g, input, sizeof(input) - 1, sizeof(input) - 1, 0, FEED_IN_PLACE),
        REQUEST_COMPLETE);
    const struct request_header *h = request_find_header(&r, g.data, "content-type");
    ck_assert_ptr_nonnull(h);
    ck_assert(span_equals(g.data, h->value, "text/plain"));
    h = request_find_header(&r, g.data, "X-DUP");
    ck_assert_ptr_nonnull(h);
    ck_assert(span_equals(g.data, h->value, "first"));
    ck_assert_ptr_null(request_find_header(&r, g.data, "X-Du"));
    ck_assert_ptr_null(request_find_header(&r, g.data, "Absent"));
    guard_buf_free(&g);
    request_free(&r);
}
END_TEST

/* Expect: 100-continue. The acceptor sends the interim response while the
 * request wants its body, so the flags must be set before the body comes. */

START_TEST(test_expect_continue_before_body)
{
    static const char input[] = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                                "Content-Length: 5\r\n\r\nhello";
    size_t headers_len = sizeof(input) - 1 - 5;
    struct request r;
    struct guard_buf g;
    ck_assert_int_eq(request_init(&r, &default_limits), 0);
    guard_buf_init_copy(&g, input, sizeof(input) - 1);
    ck_assert_int_eq(request_feed(&r, g.data, headers_len), REQUEST_INCOMPLETE);
    ck_assert_int_eq(r.headers_complete, 1);
    ck_assert_int_eq(r.expect_continue, 1);
    ck_assert_int_eq(request_wants_body(&r), 1);
    ck_assert_int_eq(request_feed(&r, g.data, headers_len + 2), REQUEST_INCOMPLETE);
    ck_assert_int_eq(request_wants_body(&r), 1);
    ck_assert_int_eq(request_feed(&r, g.data, g.len), REQUEST_COMPLETE);
    ck_assert_int_eq(request_wants_body(&r), 0);
    ck_assert(span_equals(g.data, r.body, "hello"));
    guard_buf_free(&g);
    request_free(&r);
}
END_TEST

START_TEST(test_wants_body_without_expect)
{
    static const char input[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
    struct request r;
    struct guard_buf g;
    ck_assert_int_eq(request_init(&r, &default_limits), 0);
    guard_buf_init_copy(&g, input, sizeof(input) - 1);
    ck_assert_int_eq(request_feed(&r, g.data, 10), REQUEST_INCOMPLETE);
    ck_assert_int_eq(request_wants_body(&r), 0); /* headers are not complete yet */
    ck_assert_int_eq(request_feed(&r, g.data, g.len), REQUEST_INCOMPLETE);
    ck_assert_int_eq(request_wants_body(&r), 1);
    ck_assert_int_eq(r.expect_continue, 0);
    guard_buf_free(&g);
    request_free(&r);
}
END_TEST

/* Pipelining: several requests in one stream. After each COMPLETE the caller
 * drops request_next() bytes from the front and feeds the rest, as conn.c
 * does. Every feed gets a fresh guarded buffer, so the buffer always moves. */

struct pipeline_case {
    const char *name;
    const char *input;
    size_t len;
    unsigned count;
    size_t lengths[3];
    const char *targets[3];
    const char *bodies[3];
};

#define GET_1  "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
#define GET_3  "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
#define POST_2 "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
#define CHUNKED_2                                                       \
    "POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" \
    "2\r\nhe\r\n3;e=1\r\nllo\r\n0\r\nT: 1\r\n\r\n"
#define GET_10 "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"

static const struct pipeline_case pipeline_cases[] = {
    {"two GETs",
     INPUT(GET_1 GET_3),
     2,
     {sizeof(GET_1) - 1, sizeof(GET_3) - 1},
     {"/1", "/3"},
     {"", ""}},
    {"GET, POST, GET",
     INPUT(GET_1 POST_2 GET_3),
     3,
     {sizeof(GET_1) - 1, sizeof(POST_2) - 1, sizeof(GET_3) - 1},
     {"/1", "/2", "/3"},
     {"", "hello", ""}},
    /* The chunked body is compacted in place; the next request must survive. */
    {"GET, chunked POST, GET",
     INPUT(GET_1 CHUNKED_2 GET_3),
     3,
     {sizeof(GET_1) - 1, sizeof(CHUNKED_2) - 1, sizeof(GET_3) - 1},
     {"/1", "/2", "/3"},
     {"", "hello", ""}},
    {"HTTP/1.0 keep-alive, then GET",
     INPUT(GET_10 GET_3),
     2,
     {sizeof(GET_10) - 1, sizeof(GET_3) - 1},
     {"/ka", "/3"},
     {"", ""}},
};

/* Replaces *g by a guarded copy of g's bytes [from, g->len) followed by
 * extra[0..extra_len). */
static void regrow(struct guard_buf *g, size_t from, const char *extra, size_t extra_len)
{
    struct guard_buf next;
    size_t kept = g->len - from;
    guard_buf_init(&next, kept + extra_len);
    if (kept)
        memcpy(next.data, g->data + from, kept);
    if (extra_len)
        memcpy(next.data + kept, extra, extra_len);
    guard_buf_free(g);
    *g = next;
}

static void run_pipeline(const struct pipeline_case *c, size_t step)
{
    struct request r;
    struct guard_buf g = {0};
    size_t arrived = 0;
    unsigned done = 0;
    ck_assert_int_eq(request_init(&r, &default_limits), 0);
    while (done < c->count) {
        enum request_state state = request_feed(&r, g.data, g.len);
        if (state == REQUEST_INCOMPLETE) {
            ck_assert_msg(arrived < c->len, "%s (step %zu): request %u incomplete at the end",
                          c->name, step, done + 1);
            size_t n = step < c->len - arrived ? step : c->len - arrived;
            regrow(&g, 0, c->input + arrived, n);
            arrived += n;
            continue;
        }
        ck_assert_msg(state == REQUEST_COMPLETE, "%s (step %zu): request %u status %d", c->name,
                      step, done + 1, r.error_status);
        ck_assert_msg(r.consumed == c->lengths[done], "%s (step %zu): request %u consumed %zu",
                      c->name, step, done + 1, r.consumed);
        ck_assert(span_equals(g.data, r.target, c->targets[done]));
        ck_assert(span_equals(g.data, r.body, c->bodies[done]));
        ck_assert_int_eq(r.keep_alive, 1);
        size_t used = request_next(&r);
        ck_assert_uint_eq(used, c->lengths[done]);
        ck_assert_int_eq(r.headers_complete, 0);
        regrow(&g, used, NULL, 0);
        done++;
    }
    ck_assert_uint_eq(arrived, c->len);
    ck_assert_uint_eq(g.len, 0);
    ck_assert_int_eq(request_feed(&r, g.data, g.len), REQUEST_INCOMPLETE);
    guard_buf_free(&g);
    request_free(&r);
}

START_TEST(test_pipelining)
{
    const struct pipeline_case *c = &pipeline_cases[_i];
    static const size_t steps[] = {(size_t)-1, 1, 2, 7, 30};
    for (size_t s = 0; s < ARRAY_SIZE(steps); s++)
        run_pipeline(c, steps[s]);
}
END_TEST

/* Limits: each row brings its own. */

struct limit_case {
    const char *name;
    struct request_limits limits;
    const char *input;
    size_t len;
    int status; /* 0: the request completes */
};

#define LIMITS(target, header_bytes, headers, body)                        \
    {                                                                      \
        .max_target_length = (target), .max_header_bytes = (header_bytes), \
        .max_headers = (headers), .max_body_size = (body)                  \
    }
#define CHUNKED_HEAD "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
/* T: + 25 spaces + v + CRLF CRLF: a 32-byte trailer section. */
#define SPACES_25 "                         "
#define ZEROS_64  "0000000000000000000000000000000000000000000000000000000000000000"
#define ZEROS_1024                                                                            \
    ZEROS_64 ZEROS_64 ZEROS_64 ZEROS_64 ZEROS_64 ZEROS_64 ZEROS_64 ZEROS_64 ZEROS_64 ZEROS_64 \
        ZEROS_64 ZEROS_64 ZEROS_64 ZEROS_64 ZEROS_64 ZEROS_64
#define ZEROS_4096 ZEROS_1024 ZEROS_1024 ZEROS_1024 ZEROS_1024 "0"

static const struct limit_case limit_cases[] = {
    {"target at the limit", LIMITS(16, 1024, 8, 64),
     INPUT("GET /123456789abcdef HTTP/1.1\r\nHost: a\r\n\r\n"), 0},
    {"target one byte over", LIMITS(16, 1024, 8, 64),
     INPUT("GET /123456789abcdefg HTTP/1.1\r\nHost: a\r\n\r\n"), 414},
    /* Header bytes count names and values: 4+1 + 6+5 = 16. */
    {"header bytes at the limit", LIMITS(64, 16, 8, 64),
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nX-Test: abcde\r\n\r\n"), 0},
    {"header bytes one over", LIMITS(64, 16, 8, 64),
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nX-Test: abcdef\r\n\r\n"), 431},
    {"one huge header value", LIMITS(64, 16, 8, 64),
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789abcdefghijklmnopqrstuvwxyz\r\n\r\n"), 431},
    /* A limit passed before a bad byte wins, however the bytes were split:
     * llhttp hands over the token's last piece only to our own check. */
    {"target over the limit, then a bad byte", LIMITS(16, 1024, 8, 64),
     INPUT("GET /123456789abcdefgh\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 414},
    /* The CR after a target at the limit is no target byte. */
    {"target at the limit, then CR without LF", LIMITS(16, 1024, 8, 64),
     INPUT("POST  /HTTP/upgrade1.8\r*T\n"), 400},
    /* llhttp skips extra spaces before the target; they are not part of it. */
    {"target after extra spaces over the limit, then a bad byte", LIMITS(16, 1024, 8, 64),
     INPUT("GET      FFFFFFFFFFFFFFFFFFFFFFFF   \xff\x00\n"), 414},
    {"header name over the limit, then a bad byte", LIMITS(64, 16, 8, 64),
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nXXXXXXXXXXXXXXXXXXXX\x01: v\r\n\r\n"), 431},
    {"header value over the limit, then a bad byte", LIMITS(64, 16, 8, 64),
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789abcdef\x01\r\n\r\n"), 431},
    {"bad byte in a value under the limit", LIMITS(64, 64, 8, 64),
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: 0123\x01\r\n\r\n"), 400},
    /* llhttp hands over the value before the control byte that ends it;
     * counted twice, it would pass the limit when fed whole. */
    {"bad byte after a value over half the limit", LIMITS(64, 64, 8, 64),
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nT: ?" SPACES_25 "                 \x01\r\n\r\n"), 400},
    {"bad byte after a trailer value over half the limit", LIMITS(64, 64, 8, 64),
     INPUT(CHUNKED_HEAD "0\r\nT:        ?" SPACES_25 "   \x01\r\n\r\n"), 400},
    {"header count at the limit", LIMITS(64, 1024, 2, 64),
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n"), 0},
    {"one header too many", LIMITS(64, 1024, 2, 64),
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n"), 431},
    {"Content-Length at the limit", LIMITS(64, 1024, 8, 5),
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), 0},
    /* No body bytes in the input: the 413 must come from the header alone. */
    {"Content-Length over the limit, before the body", LIMITS(64, 1024, 8, 5),
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n"), 413},
    {"Content-Length far over the limit", LIMITS(64, 1024, 8, 5),
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n"), 413},
    {"chunked body at the limit", LIMITS(64, 1024, 8, 5),
     INPUT(CHUNKED_HEAD "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), 0},
    {"chunked body over the limit", LIMITS(64, 1024, 8, 5),
     INPUT(CHUNKED_HEAD "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"), 413},
    {"one chunk over the limit", LIMITS(64, 1024, 8, 5), INPUT(CHUNKED_HEAD "6\r\nabcdef"), 413},
    /* Chunked framing counts byte by byte, though llhttp reports no callback
     * for leading zeros or whitespace. */
    {"chunk line one byte over", LIMITS(64, 1024, 8, 5),
     INPUT(CHUNKED_HEAD "1;x=\"" LONG_EXTENSION "x\"\r\na\r\n0\r\n\r\n"), 400},
    {"second chunk line one byte over", LIMITS(64, 1024, 8, 5),
     INPUT(CHUNKED_HEAD "1\r\na\r\n1;x=\"" LONG_EXTENSION "\"\r\na\r\n0\r\n\r\n"), 400},
    {"endless chunk extension", LIMITS(64, 1024, 8, 5),
     INPUT(CHUNKED_HEAD "1;" LONG_EXTENSION "xxxxxxxxxx"), 400},
    {"endless leading zeros", LIMITS(64, 1024, 8, 5), INPUT(CHUNKED_HEAD ZEROS_4096), 400},
    {"trailer section at the limit", LIMITS(64, 32, 8, 5),
     INPUT(CHUNKED_HEAD "0\r\nT:" SPACES_25 "v\r\n\r\n"), 0},
    {"trailer section one byte over", LIMITS(64, 32, 8, 5),
     INPUT(CHUNKED_HEAD "0\r\nT:" SPACES_25 " v\r\n\r\n"), 431},
    {"endless trailer whitespace", LIMITS(64, 32, 8, 5),
     INPUT(CHUNKED_HEAD "0\r\nT:                                        "), 431},
    /* The limit passed before the bad byte decides. */
    {"trailer over the limit, then a bad byte", LIMITS(64, 32, 8, 5),
     INPUT(CHUNKED_HEAD "0\r\nT:                                        \x01\r\n\r\n"), 431},
    /* Whitespace before a value counts against the trailer section only:
     * its limit, passed there, comes before a fold or a bad name found at
     * the line's end. */
    {"trailer over the limit, then a fold", LIMITS(64, 64, 8, 5),
     INPUT(CHUNKED_HEAD "0\r\nT:" SPACES_25 SPACES_25 SPACES_25 "x\r\n y\r\n\r\n"), 431},
    /* The CR before a missing LF is no value byte: the value is at the limit. */
    {"trailer value at the limit, then CR without LF", LIMITS(64, 64, 8, 5),
     INPUT(CHUNKED_HEAD "0\r\nT:" SPACES_25 "_" SPACES_25 "       a\r'\r\n\r\n"), 400},
    {"trailer over the limit at the LF of a fold", LIMITS(64, 64, 8, 5),
     INPUT(CHUNKED_HEAD "0\r\nT:" SPACES_25 SPACES_25 "      a\r\n b\r\nU: c\r\n\r\n"), 431},
    {"bad trailer name, then over the limit", LIMITS(64, 64, 8, 5),
     INPUT(CHUNKED_HEAD "0\r\nBad Name:" SPACES_25 SPACES_25 SPACES_25 "x\r\nU: z\r\n\r\n"), 431},
};

/* Errors: a status, sticky once set. */

struct error_case {
    const char *name;
    const char *input;
    size_t len;
    int status;
};

static const struct error_case error_cases[] = {
    /* RFC 9110 §6.2 suggests treating HTTP/1.2 as 1.1; llhttp refuses it, and
     * 505 is the sensible answer for a well-formed version we do not serve. */
    {"HTTP/1.2", INPUT("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/2.0", INPUT("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/3.0", INPUT("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/3.0 after an empty line", INPUT("\r\nGET / HTTP/3.0\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/0.9", INPUT("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/0.9 simple request", INPUT("GET /\r\n\r\n"), 505},
    {"HTTP/2 connection preface", INPUT("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505},
    /* RFC 9112 §3.2: exactly one Host in HTTP/1.1. */
    {"HTTP/1.1 without Host", INPUT("GET / HTTP/1.1\r\nX: y\r\n\r\n"), 400},
    {"two Host headers", INPUT("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400},
    /* RFC 9110 §4.2.1, §7.2: a Host that names no valid host. */
    {"empty Host with origin-form", INPUT("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 400},
    {"empty Host on HTTP/1.0", INPUT("GET / HTTP/1.0\r\nHost: \r\n\r\n"), 400},
    {"empty Host with OPTIONS *", INPUT("OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n"), 400},
    {"Host with userinfo", INPUT("GET / HTTP/1.1\r\nHost: u:p@a\r\n\r\n"), 400},
    {"Host with a bad port", INPUT("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n"), 400},
    {"Host with port 0", INPUT("GET / HTTP/1.1\r\nHost: a:0\r\n\r\n"), 400},
    {"Host with an empty port", INPUT("GET / HTTP/1.1\r\nHost: a:\r\n\r\n"), 400},
    {"Host with a bad IPv6 literal", INPUT("GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n"), 400},
    {"Host with a path", INPUT("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400},
    /* RFC 9112 §3.2.2: absolute-form is an http(s) URI with a valid authority. */
    {"absolute-form, empty host", INPUT("GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"absolute-form, port only", INPUT("GET http://:80/p HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"absolute-form, bad IPv6", INPUT("GET http://[zz]/p HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"absolute-form, port too big", INPUT("GET http://a:99999/p HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"absolute-form, ftp", INPUT("GET ftp://a/p HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"absolute-form, odd scheme", INPUT("PUT s://]ufd/: HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"absolute-form, userinfo",
     INPUT("GET http://u:p@a.example:8080/f HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"relative target", INPUT("GET p/q HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    /* RFC 9112 §3.2: no fragment in a request-target. */
    {"fragment in the query", INPUT("GET /p?page=1#frag HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"fragment in the path", INPUT("GET /p#frag HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    /* RFC 9112 §5.2: obs-fold right after the colon. */
    {"fold after an empty Transfer-Encoding",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"), 400},
    {"fold after an empty Content-Length",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 5\r\n\r\nhello"), 400},
    {"fold after an empty Host", INPUT("GET / HTTP/1.1\r\nHost:\r\n\tevil\r\n\r\n"), 400},
    /* llhttp 8.1 without strict mode takes CR plus any byte for a CRLF at
     * the end of the header block, a chunk line and the trailers. */
    {"bare CR ending the header block",
     INPUT("GET / HTTP/1.1\r\nHost: a\r\n\rXGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"bare CR ending a chunk size",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\rXhello\r\n0\r\n\r\n"),
     400},
    {"bare CR ending a chunk extension",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5;a=b\rXhello\r\n0\r\n\r\n"),
     400},
    {"bare CR ending the trailers",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n0\r\n\rX"),
     400},
    {"bare CR ending an empty value", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX:\r^\n 0\r\n\r\n"), 400},
    {"bare CR ending an empty trailer",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "0\r\nT:\rXGET / HTTP/1.1\r\n\r\n"),
     400},
    {"fold of whitespace after an empty value",
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nX:\r\n \r\n\r\n"), 400},
    {"chunk extension with BWS",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5; n=v\r\nhello\r\n0\r\n\r\n"),
     400},
    /* RFC 9112 §6.3: request smuggling vectors. */
    {"Content-Length with Transfer-Encoding",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
           "\r\n3\r\nabc\r\n0\r\n\r\n"),
     400},
    {"Transfer-Encoding on HTTP/1.0",
     INPUT("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), 400},
    {"Content-Length +5", INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nabcde"),
     400},
    {"Content-Length -1", INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\na"), 400},
    {"Content-Length 0x10",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n0123456789abcdef"), 400},
    {"Content-Length 1 2", INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\nab"),
     400},
    {"Content-Length overflow",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\na"), 400},
    {"Content-Length list", INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"),
     400},
    {"two differing Content-Lengths",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
     400},
    /* RFC 9110 §8.6 allows rejecting even identical duplicates. */
    {"two equal Content-Lengths",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 400},
    /* A method that is a token but unknown is 501; one that is no token, 400. */
    {"unknown method FOO", INPUT("FOO / HTTP/1.1\r\nHost: a\r\n\r\n"), 501},
    {"lower-case get (methods are case-sensitive)", INPUT("get / HTTP/1.1\r\nHost: a\r\n\r\n"),
     501},
    {"method GETX", INPUT("GETX / HTTP/1.1\r\nHost: a\r\n\r\n"), 501},
    /* RFC 9112 §6.1: a coding we cannot undo, in front of chunked: 501. */
    {"Transfer-Encoding: gzip, chunked",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501},
    /* RFC 9110 §5.3: the fields form one list, "gzip, chunked". */
    {"Transfer-Encoding split over two fields",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
           "chunked\r\n\r\n0\r\n\r\n"),
     501},
    {"obs-fold in the middle of a value",
     INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\nY: c\r\n\r\n"), 400},
    /* RFC 9112 §7.1: CRLF after chunk data; llhttp 8.1 alone skips any two
     * bytes there (a smuggling vector). */
    {"chunk data followed by XX", INPUT(CHUNKED_HEAD "5\r\nhelloXX0\r\n\r\n"), 400},
    {"second chunk data followed by XX", INPUT(CHUNKED_HEAD "1\r\na\r\n1\r\nbXX0\r\n\r\n"), 400},
    /* RFC 9112 §3.2.4: "*" is a target for OPTIONS only. */
    {"GET *", INPUT("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    /* HTTP/0.9: a clear 505 as soon as the line ends, not a wait. */
    {"HTTP/0.9 line alone", INPUT("GET /\r\n"), 505},
    {"malformed method G@T", INPUT("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"LF inside the target", INPUT("GET /a\nb HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"header without colon", INPUT("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), 400},
    {"tab before colon", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX-Foo\t: v\r\n\r\n"), 400},
    /* Rejected, though partly because "Host " is then not a Host header. */
    {"space before colon in Host", INPUT("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400},
    {"8-bit byte in a header name", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX\xe9: v\r\n\r\n"), 400},
    {"bare CR inside a value", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), 400},
    {"bare CR ending a header line", INPUT("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 400},
    {"bare LF line endings", INPUT("GET / HTTP/1.1\nHost: a\n\n"), 400},
    {"NUL in a header value", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), 400},
    {"control byte in a header value", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n"),
     400},
    {"DEL in a header value", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n"), 400},
    {"chunk size zz", INPUT(CHUNKED_HEAD "zz\r\nabc\r\n0\r\n\r\n"), 400},
    {"chunk size 1 2", INPUT(CHUNKED_HEAD "1 2\r\nabc\r\n0\r\n\r\n"), 400},
    {"chunk size overflow", INPUT(CHUNKED_HEAD "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), 400},
    {"chunk data without CRLF", INPUT(CHUNKED_HEAD "3\r\nabcX\r\n0\r\n\r\n"), 400},
    /* RFC 9110 §10.1.1: 100-continue is the only expectation defined. */
    {"unknown expectation", INPUT("GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n"),
     417}, /* RFC 9112 §7.1.2: trailer fields are field lines, checked like headers. */
    {"fold in a trailer value", INPUT(CHUNKED_HEAD "1\r\nA\r\n0\r\nT: x\r\n folded\r\n\r\n"), 400},
    {"fold right after a trailer colon", INPUT(CHUNKED_HEAD "0\r\nT:\r\n folded\r\n\r\n"), 400},
    {"fold of a second trailer", INPUT(CHUNKED_HEAD "0\r\nT: x\r\nU: y\r\n\tz\r\n\r\n"), 400},
    {"space in a trailer name", INPUT(CHUNKED_HEAD "0\r\nBad Name: x\r\n\r\n"), 400},
    {"space before a trailer colon", INPUT(CHUNKED_HEAD "0\r\nT : x\r\n\r\n"), 400},
    {"empty trailer name", INPUT(CHUNKED_HEAD "0\r\n: x\r\n\r\n"), 400},
    {"empty trailer name after a trailer", INPUT(CHUNKED_HEAD "0\r\nA: b\r\n: x\r\n\r\n"), 400},
    {"empty name after an empty trailer", INPUT(CHUNKED_HEAD "0\r\nA:\r\n:\r\n\r\n"), 400},
    {"trailer without colon", INPUT(CHUNKED_HEAD "0\r\nNoColon\r\n\r\n"), 400},
    {"NUL in a trailer value", INPUT(CHUNKED_HEAD "0\r\nT: a\0b\r\n\r\n"), 400},
    {"bare CR inside a trailer value", INPUT(CHUNKED_HEAD "0\r\nT: a\rb\r\n\r\n"), 400},
    /* A bare LF ends no line anywhere (RFC 9112 §2.2 allows either rule;
     * one rule for every line keeps us in step with a proxy in front). */
    {"bare LF ending the request line", INPUT("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400},
    {"bare LF ending a request line without fields", INPUT("GET / HTTP/1.0\n\r\n"), 400},
    {"bare LF ending the header block", INPUT("GET / HTTP/1.1\r\nHost: a\r\n\n"), 400},
    {"bare LF ending the header block before a body",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\nA"), 400},
    {"bare LF ending a field line", INPUT("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n"), 400},
    {"bare LF ending an empty value", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX:\nY: z\r\n\r\n"), 400},
    {"bare LF ending a chunk size", INPUT(CHUNKED_HEAD "1\nA\r\n0\r\n\r\n"), 400},
    {"bare LF ending a chunk extension", INPUT(CHUNKED_HEAD "1;a=b\nA\r\n0\r\n\r\n"), 400},
    {"bare LF ending chunk data", INPUT(CHUNKED_HEAD "1\r\nA\n0\r\n\r\n"), 400},
    {"bare LF ending the last chunk", INPUT(CHUNKED_HEAD "1\r\nA\r\n0\n\r\n"), 400},
    {"bare LF after the last chunk", INPUT(CHUNKED_HEAD "1\r\nA\r\n0\r\n\n"), 400},
    {"bare LF ending a trailer line", INPUT(CHUNKED_HEAD "0\r\nT: x\nU: y\r\n\r\n"), 400},
    {"bare LF ending an empty trailer", INPUT(CHUNKED_HEAD "0\r\nT:\nU: y\r\n\r\n"), 400},
    {"bare LF ending the trailers", INPUT(CHUNKED_HEAD "1\r\nA\r\n0\r\nT: x\r\n\n"), 400},
};

static void check_error(const char *name, const struct request_limits *limits, const char *input,
                        size_t len, int status, const struct plan *plan)
{
    static const char valid[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct request r;
    struct guard_buf g;
    ck_assert_int_eq(request_init(&r, limits), 0);
    enum request_state state =
        feed_request(&r, &g, input, len, plan->first, plan->step, plan->mode);
    ck_assert_msg(state == REQUEST_ERROR && r.error_status == status,
                  "%s (%s): state %d, status %d (want %d): %s", name, plan->name, state,
                  r.error_status, status, r.error_reason ? r.error_reason : "");
    ck_assert_ptr_nonnull(r.error_reason);
    ck_assert_int_eq(r.keep_alive, 0);

    /* Sticky: neither the same bytes again nor a valid request clear it. */
    ck_assert_int_eq(request_feed(&r, g.data, g.len), REQUEST_ERROR);
    struct guard_buf fresh;
    guard_buf_init_copy(&fresh, valid, sizeof(valid) - 1);
    ck_assert_int_eq(request_feed(&r, fresh.data, fresh.len), REQUEST_ERROR);
    ck_assert_int_eq(r.error_status, status);
    guard_buf_free(&fresh);
    guard_buf_free(&g);
    request_free(&r);
}

START_TEST(test_errors)
{
    const struct error_case *c = &error_cases[_i];
    size_t plans = plan_count(c->len);
    for (size_t p = 0; p < plans; p++) {
        struct plan plan = plan_at(c->len, p);
        check_error(c->name, &default_limits, c->input, c->len, c->status, &plan);
    }
}
END_TEST

START_TEST(test_limits)
{
    const struct limit_case *c = &limit_cases[_i];
    for (size_t p = 0; p < plan_count(c->len); p++) {
        struct plan plan = plan_at(c->len, p);
        if (c->status) {
            check_error(c->name, &c->limits, c->input, c->len, c->status, &plan);
            continue;
        }
        struct request r;
        struct guard_buf g;
        ck_assert_int_eq(request_init(&r, &c->limits), 0);
        enum request_state state =
            feed_request(&r, &g, c->input, c->len, plan.first, plan.step, plan.mode);
        ck_assert_msg(state == REQUEST_COMPLETE, "%s (%s): state %d, status %d", c->name, plan.name,
                      state, r.error_status);
        ck_assert_uint_eq(r.consumed, c->len);
        guard_buf_free(&g);
        request_free(&r);
    }
}
END_TEST

START_TEST(test_feed_after_complete_repeats_it)
{
    static const char input[] = GET_1 GET_3;
    struct request r;
    struct guard_buf g;
    ck_assert_int_eq(request_init(&r, &default_limits), 0);
    guard_buf_init_copy(&g, input, sizeof(input) - 1);
    ck_assert_int_eq(request_feed(&r, g.data, g.len), REQUEST_COMPLETE);
    /* Until request_next, the finished request stays as it is. */
    ck_assert_int_eq(request_feed(&r, g.data, g.len), REQUEST_COMPLETE);
    ck_assert_uint_eq(r.consumed, sizeof(GET_1) - 1);
    ck_assert(span_equals(g.data, r.target, "/1"));
    guard_buf_free(&g);
    request_free(&r);
}
END_TEST

/* All chunk lines of a request together are bounded too: chunks of one
 * byte, each with a long (allowed) extension, get 413 once their framing
 * passes request_framing_allowance, fed whole or in small pieces. */
START_TEST(test_chunked_framing_total_413)
{
    static const struct request_limits limits = LIMITS(64, 1024, 8, 1024);
    uint64_t allowance = request_framing_allowance(&limits);
    char line[4000];
    memset(line, 'x', sizeof(line));
    memcpy(line, "1;", 2);
    memcpy(line + sizeof(line) - 5, "\r\na\r\n", 5);
    size_t head = sizeof(CHUNKED_HEAD) - 1, count = (size_t)(allowance / sizeof(line)) + 2;
    size_t len = head + count * sizeof(line);
    char *input = malloc(len);
    ck_assert_ptr_nonnull(input);
    memcpy(input, CHUNKED_HEAD, head);
    for (size_t i = 0; i < count; i++)
        memcpy(input + head + i * sizeof(line), line, sizeof(line));
    static const size_t steps[] = {(size_t)-1, 1, 1000, 4096};
    for (size_t s = 0; s < ARRAY_SIZE(steps); s++) {
        struct request r;
        char *buffer = malloc(len); /* compaction writes into it */
        ck_assert_ptr_nonnull(buffer);
        memcpy(buffer, input, len);
        ck_assert_int_eq(request_init(&r, &limits), 0);
        enum request_state state = REQUEST_INCOMPLETE;
        for (size_t fed = 0; fed < len && state == REQUEST_INCOMPLETE;) {
            fed += steps[s] < len - fed ? steps[s] : len - fed;
            state = request_feed(&r, buffer, fed);
        }
        free(buffer);
        ck_assert_int_eq(state, REQUEST_ERROR);
        ck_assert_msg(r.error_status == 413, "step %zu: %d %s", steps[s], r.error_status,
                      r.error_reason);
        ck_assert_uint_le(r.body.len, count);
        request_free(&r);
    }
    free(input);
}
END_TEST

/* Regressions: each row states what RFC 9110/9112 wants, and what the code
 * once did instead. */

static const struct error_case known_bug_cases[] = {
    /* Was a bug: obs-fold is accepted and the value span becomes "a\r\n" (the
     * continuation is appended as if adjacent). RFC 9112 §5.2: reject with
     * 400 or replace each obs-fold by SP. */
    {"obs-fold", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), 400},
    /* Was a bug: accepted with the header name "X-Foo ". RFC 9112 §5.1: MUST 400. */
    {"space before colon", INPUT("GET / HTTP/1.1\r\nHost: a\r\nX-Foo : v\r\n\r\n"), 400},
    /* Was a bug: accepted with an empty header name. RFC 9110 §5.1: a name is a token. */
    {"empty header name", INPUT("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n"), 400},
    /* Was a bug: accepted with target "/a\tb". RFC 9112 §3: no whitespace in a target. */
    {"tab inside the target", INPUT("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    /* Was a bug: accepted. RFC 9112 §3.2: 400 for more than one Host in any request. */
    {"two Host headers on HTTP/1.0", INPUT("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400},
    /* Was a bug: 505. Malformed request lines are 400; llhttp reports them as
     * HPE_INVALID_VERSION ("Expected CRLF after version") too. */
    {"bare CR after the version", INPUT("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400},
    {"version HTTP/1.10", INPUT("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400},
    /* Was a bug: 501. RFC 9112 §6.3: chunked not final in a request, MUST 400. */
    {"Transfer-Encoding: gzip",
     INPUT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc"), 400},
    /* Was a bug: 501 when fed whole, 400 when the method is split: the token check
     * only sees the bytes that have arrived. The status must not depend on
     * how TCP cut the stream. */
    {"unknown method FOO, every split", INPUT("FOO / HTTP/1.1\r\nHost: a\r\n\r\n"), 501},
    {"lower-case get, every split", INPUT("get / HTTP/1.1\r\nHost: a\r\n\r\n"), 501},
    {"method GETX, every split", INPUT("GETX / HTTP/1.1\r\nHost: a\r\n\r\n"), 501},
};

START_TEST(test_known_bug_errors)
{
    const struct error_case *c = &known_bug_cases[_i];
    for (size_t p = 0; p < plan_count(c->len); p++) {
        struct plan plan = plan_at(c->len, p);
        check_error(c->name, &default_limits, c->input, c->len, c->status, &plan);
    }
}
END_TEST

/* Was a bug: on_message_complete pauses before llhttp can report
 * HPE_PAUSED_UPGRADE, so request_feed's "keep_alive = 0" for upgrades never
 * runs: an Upgrade or CONNECT request completes with keep_alive 1, and the
 * next pipelined request then fails with 400 "Pause on CONNECT/Upgrade".
 * Expected: keep_alive 0 (or the Upgrade ignored and the next request parsed). */
START_TEST(test_known_bug_upgrade_keeps_alive)
{
    static const char *const inputs[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n" GET_3,
        "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n" GET_3,
    };
    for (size_t i = 0; i < ARRAY_SIZE(inputs); i++) {
        struct request r;
        struct guard_buf g;
        size_t len = strlen(inputs[i]);
        ck_assert_int_eq(request_init(&r, &default_limits), 0);
        guard_buf_init_copy(&g, inputs[i], len);
        ck_assert_int_eq(request_feed(&r, g.data, g.len), REQUEST_COMPLETE);
        int keep_alive = r.keep_alive;
        size_t used = request_next(&r);
        regrow(&g, used, NULL, 0);
        enum request_state next = request_feed(&r, g.data, g.len);
        ck_assert_msg(keep_alive == 0 || next == REQUEST_COMPLETE,
                      "input %zu: keep_alive %d, then the next request: state %d, status %d (%s)",
                      i, keep_alive, next, r.error_status, r.error_reason ? r.error_reason : "");
        guard_buf_free(&g);
        request_free(&r);
    }
}
END_TEST

Suite *make_request_suite(void)
{
    Suite *s = suite_create("request");

    TCase *core = tcase_create("core");
    tcase_add_loop_test(core, test_valid_requests, 0, ARRAY_SIZE(valid_cases));
    tcase_add_test(core, test_find_header);
    tcase_add_test(core, test_expect_continue_before_body);
    tcase_add_test(core, test_wants_body_without_expect);
    tcase_add_loop_test(core, test_pipelining, 0, ARRAY_SIZE(pipeline_cases));
    tcase_add_test(core, test_feed_after_complete_repeats_it);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_loop_test(limits, test_limits, 0, ARRAY_SIZE(limit_cases));
    tcase_add_test(limits, test_chunked_framing_total_413);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_loop_test(errors, test_errors, 0, ARRAY_SIZE(error_cases));
    suite_add_tcase(s, errors);

    {
        TCase *bugs = tcase_create("regressions");
        tcase_add_loop_test(bugs, test_known_bug_errors, 0, ARRAY_SIZE(known_bug_cases));
        tcase_add_test(bugs, test_known_bug_upgrade_keeps_alive);
        suite_add_tcase(s, bugs);
    }
    return s;
}

/* libFuzzer harness for src/request.c, without Python (`make fuzz`, `make
 * fuzz-replay`; see ci/fuzz.mk). Input: byte 0 = flags (bits 0-2: k, the
 * number of chunk-size bytes that follow; bit 3: a fresh exact-size malloc
 * buffer for every feed instead of a growing struct buf as in conn.c; bit 4:
 * tiny limits), then k bytes (chunk sizes 1..256, used in turn), then the
 * byte stream of one connection. The stream is parsed with pipelining
 * (request_next, then the rest moved to the front) until it ends or fails,
 * checking every result; then the same stream fed whole, fed in the chosen
 * chunks and fed one byte at a time into a moving buffer must give the same
 * transcript (states, statuses, span offsets and bytes). A broken invariant
 * or a difference prints both and calls __builtin_trap().
 * Every byte held after a request's headers must count against a limit.
 * The regressions in tests/fuzz/regressions/ are past findings: error
 * statuses that depended on the split (*-status-*) and Transfer-Encoding
 * fields naming no coding (te-empty-*, RFC 9112 §6.3: 400). While such a
 * bug is open, FUZZ_TOLERATE=error-status (two final ERROR lines count as
 * equal whatever their allowed statuses) or FUZZ_TOLERATE=empty-te (such
 * fields count as absent) in the environment lets a long run look past it;
 * unset, the harness is strict. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pyruvate/buf.h"
#include "pyruvate/http_status.h"
#include "pyruvate/request.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int tolerate_error_status, tolerate_empty_te;

/* Small limits, so that every limit can be reached within -max_len. */
static const struct request_limits small_limits = {
    .max_target_length = 256,
    .max_header_bytes = 1024,
    .max_headers = 8,
    .max_body_size = 4096,
    .max_chunk_line = 128,
    .max_framing_bytes = 512,
};

static const struct request_limits tiny_limits = {
    .max_target_length = 16,
    .max_header_bytes = 64,
    .max_headers = 2,
    .max_body_size = 16,
    .max_chunk_line = 24,
    .max_framing_bytes = 64,
};

enum feed_mode {
    FEED_BUF,    /* one struct buf grows (and may move) as in conn.c */
    FEED_MOVING, /* each feed gets a fresh malloc buffer of exactly len bytes */
};

/* The connection buffer under one of the two feed modes. */
struct feeder {
    enum feed_mode mode;
    struct buf b; /* FEED_BUF */
    char *p;      /* FEED_MOVING */
    size_t len;
};

#define FAIL(...)                                         \
    do {                                                  \
        fprintf(stderr, "fuzz_request.c:%d: ", __LINE__); \
        fprintf(stderr, __VA_ARGS__);                     \
        fputc('\n', stderr);                              \
        __builtin_trap();                                 \
    } while (0)

#define CHECK(cond)                              \
    do {                                         \
        if (!(cond))                             \
            FAIL("invariant broken: %s", #cond); \
    } while (0)

static char *feeder_base(struct feeder *f)
{
    return f->mode == FEED_BUF ? f->b.data : f->p;
}

static size_t feeder_len(const struct feeder *f)
{
    return f->mode == FEED_BUF ? f->b.len : f->len;
}

/* Appends arriving bytes. A moving buffer keeps the parsed prefix from the
 * old buffer, since chunked bodies are compacted in place. */
static void feeder_add(struct feeder *f, const uint8_t *bytes, size_t n)
{
    if (f->mode == FEED_BUF) {
        if (buf_append(&f->b, bytes, n) < 0)
            abort();
        return;
    }
    char *p = malloc(f->len + n);
    if (p == NULL)
        abort();
    if (f->len)
        memcpy(p, f->p, f->len);
    memcpy(p + f->len, bytes, n);
    free(f->p);
    f->p = p;
    f->len += n;
}

/* Drops a finished request from the front, as conn_reset_for_next_request
 * does (which also frees an empty buffer). */
static void feeder_drop(struct feeder *f, size_t used)
{
    if (f->mode == FEED_BUF) {
        buf_consume(&f->b, used);
        if (f->b.len == 0)
            buf_free(&f->b);
        return;
    }
    size_t rest = f->len - used;
    char *p = NULL;
    if (rest) {
        p = malloc(rest);
        if (p == NULL)
            abort();
        memcpy(p, f->p + used, rest);
    }
    free(f->p);
    f->p = p;
    f->len = rest;
}

static void feeder_free(struct feeder *f)
{
    buf_free(&f->b);
    free(f->p);
    f->p = NULL;
    f->len = 0;
}

/* Transcripts: one text line per result, compared between feed plans. */

static void put(struct buf *t, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || buf_append(t, line, (size_t)n) < 0)
        abort();
}

static void put_span(struct buf *t, const char *label, const char *base, struct span s)
{
    put(t, " %s=%zu+%zu:'", label, s.offset, s.len);
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)base[s.offset + i];
        if (c >= ' ' && c < 127 && c != '\\' && c != '\'')
            put(t, "%c", c);
        else
            put(t, "\\x%02x", c);
    }
    put(t, "'");
}

/* Invariants. */

static int span_within(struct span s, size_t end)
{
    return s.offset <= end && s.len <= end - s.offset;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int span_is(const char *base, struct span s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && strncasecmp(base + s.offset, text, n) == 0;
}

static unsigned count_headers(const struct request *r, const char *base, const char *name,
                              const struct request_header **first)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r->header_count; i++)
        if (span_is(base, r->headers[i].name, name) && n++ == 0 && first)
            *first = &r->headers[i];
    return n;
}

/* Whether any Transfer-Encoding field names a coding (is more than commas
 * and whitespace). */
static int has_coding(const struct request *r, const char *base)
{
    for (unsigned i = 0; i < r->header_count; i++) {
        const struct request_header *h = &r->headers[i];
        if (!span_is(base, h->name, "transfer-encoding"))
            continue;
        for (size_t j = 0; j < h->value.len; j++) {
            char c = base[h->value.offset + j];
            if (c != ',' && c != ' ' && c != '\t')
                return 1;
        }
    }
    return 0;
}

static void check_complete(const struct request *r, const char *base, size_t len)
{
    const struct request_limits *lim = r->limits;
    size_t end = r->consumed;
    CHECK(r->error_status == 0);
    CHECK(r->headers_complete == 1);
    CHECK(!request_wants_body(r));
    CHECK(end > 0 && end <= len);

    /* The method is llhttp's static name, never a pointer into the buffer. */
    CHECK(r->method != NULL && r->method[0] != '\0');
    CHECK((uintptr_t)r->method + strlen(r->method) <= (uintptr_t)base ||
          (uintptr_t)r->method >= (uintptr_t)base + len);
    CHECK(strcmp(r->method, llhttp_method_name((llhttp_method_t)r->_parser.method)) == 0);
    CHECK(r->http_major == 1 && r->http_minor <= 1);

    CHECK(span_within(r->target, end));
    CHECK(r->target.len >= 1 && r->target.len <= lim->max_target_length);
    for (size_t i = 0; i < r->target.len; i++) {
        unsigned char c = (unsigned char)base[r->target.offset + i];
        CHECK(c > ' ' && c != 127 && c != '#');
    }
    /* An absolute-form target names the host in place of Host. */
    if (base[r->target.offset] != '/' && base[r->target.offset] != '*' &&
        strcmp(r->method, "CONNECT") != 0)
        CHECK(r->target.len >= 8 && (strncasecmp(base + r->target.offset, "http://", 7) == 0 ||
                                     strncasecmp(base + r->target.offset, "https://", 8) == 0));

    if (r->target.len == 1 && base[r->target.offset] == '*')
        CHECK(strcmp(r->method, "OPTIONS") == 0);

    CHECK(r->header_count <= lim->max_headers);
    size_t header_bytes = 0, header_end = r->target.offset + r->target.len;
    for (unsigned i = 0; i < r->header_count; i++) {
        const struct request_header *h = &r->headers[i];
        CHECK(span_within(h->name, end) && span_within(h->value, end));
        CHECK(h->name.len >= 1);
        CHECK(h->name.offset >= header_end);
        for (size_t j = 0; j < h->name.len; j++)
            CHECK(is_tchar((unsigned char)base[h->name.offset + j]));
        for (size_t j = 0; j < h->value.len; j++) {
            char c = base[h->value.offset + j];
            CHECK(c != '\r' && c != '\n' && c != '\0');
        }
        if (h->value.len) {
            CHECK(h->value.offset >= h->name.offset + h->name.len);
            char first = base[h->value.offset];
            char last = base[h->value.offset + h->value.len - 1];
            CHECK(first != ' ' && first != '\t' && last != ' ' && last != '\t');
            header_end = h->value.offset + h->value.len;
        } else {
            header_end = h->name.offset + h->name.len;
        }
        header_bytes += h->name.len + h->value.len;
    }
    CHECK(header_bytes <= lim->max_header_bytes);

    CHECK(span_within(r->body, end));
    CHECK(r->body.len <= lim->max_body_size);
    CHECK(r->body.len == 0 || r->body.offset >= header_end);

    /* Framing (RFC 9112 §6): what the app sees as the body must be what
     * the headers announced. */
    const struct request_header *cl = NULL, *te = NULL;
    unsigned hosts = count_headers(r, base, "host", NULL);
    unsigned cls = count_headers(r, base, "content-length", &cl);
    unsigned tes = count_headers(r, base, "transfer-encoding", &te);
    if (tolerate_empty_te && tes && !has_coding(r, base))
        tes = 0;
    CHECK(r->http_minor == 1 ? hosts == 1 : hosts <= 1);
    CHECK(cls <= 1 && !(cls && tes));
    /* llhttp reads no body after CONNECT (the connection would become a
     * tunnel), whatever the headers say; such a request must end the
     * connection, so the unread bytes are never parsed as a request. */
    int connect = strcmp(r->method, "CONNECT") == 0;
    if (connect)
        CHECK(r->body.len == 0 && !r->keep_alive);
    if (cls) {
        CHECK(!r->chunked);
        uint64_t n = 0;
        CHECK(cl->value.len >= 1);
        for (size_t j = 0; j < cl->value.len; j++) {
            char c = base[cl->value.offset + j];
            CHECK(c >= '0' && c <= '9');
            CHECK(n <= (UINT64_MAX - 9) / 10);
            n = n * 10 + (uint64_t)(c - '0');
        }
        CHECK(n == r->body.len || connect);
    } else if (tes) {
        CHECK(r->chunked && r->http_minor == 1);
    } else {
        CHECK(!r->chunked && r->body.len == 0);
    }
    CHECK(r->chunked == 0 || r->chunked == 1);
    CHECK(r->keep_alive == 0 || r->keep_alive == 1);
    CHECK(!r->expect_continue ||
          (r->http_minor == 1 && count_headers(r, base, "expect", NULL) >= 1));
    if (count_headers(r, base, "upgrade", NULL))
        CHECK(!r->keep_alive || !r->_parser.upgrade);
}

/* Where the header block of a request whose headers are complete ends:
 * after the first empty line that follows the target (values hold no CR
 * or LF). */
static size_t header_block_end(const struct request *r, const char *base, size_t len)
{
    for (size_t i = r->target.offset + r->target.len; i + 1 < len; i++) {
        if (base[i] != '\n')
            continue;
        if (base[i + 1] == '\n')
            return i + 2;
        if (base[i + 1] == '\r' && i + 2 < len && base[i + 2] == '\n')
            return i + 3;
    }
    FAIL("headers complete but no empty line after the target");
}

/* Every byte held after the headers counts against a limit: decoded body
 * (max_body_size), chunk lines (the framing allowance) or the trailer
 * section (max_header_bytes). end: the bytes of this request held. */
static void check_held(const struct request *r, const char *base, size_t end)
{
    const struct request_limits *lim = r->limits;
    size_t body_start = header_block_end(r, base, end);
    uint64_t bound = lim->max_body_size + request_framing_allowance(lim) + lim->max_header_bytes;
    if (end - body_start > bound)
        FAIL("%zu bytes held after the headers, over the %llu the limits allow", end - body_start,
             (unsigned long long)bound);
}

static void check_error(const struct request *r)
{
    static const int allowed[] = {400, 413, 414, 417, 431, 501, 505};
    int ok = 0;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        ok |= r->error_status == allowed[i];
    if (!ok)
        FAIL("unexpected error status %d (%s)", r->error_status,
             r->error_reason ? r->error_reason : "no reason");
    CHECK(r->error_reason != NULL);
    CHECK(r->keep_alive == 0);
    CHECK(strcmp(http_status_reason(r->error_status), "Unknown") != 0);
    char response[512];
    CHECK(http_status_error_response(r->error_status, 0, response, sizeof(response)) > 0);
}

static void record_complete(struct buf *t, const struct request *r, const char *base)
{
    put(t, "COMPLETE consumed=%zu method=%s version=%u.%u keep_alive=%d chunked=%d expect=%d",
        r->consumed, r->method, r->http_major, r->http_minor, r->keep_alive, r->chunked,
        r->expect_continue);
    put_span(t, "target", base, r->target);
    for (unsigned i = 0; i < r->header_count; i++) {
        put_span(t, "name", base, r->headers[i].name);
        put_span(t, "value", base, r->headers[i].value);
    }
    put_span(t, "body", base, r->body);
    put(t, "\n");
}

/* Feeds stream[0..n) in chunks of sizes[0], sizes[1], ... (cycling) and
 * writes the transcript to t. */
static void run(const uint8_t *stream, size_t n, const struct request_limits *limits,
                enum feed_mode mode, const size_t *sizes, size_t nsizes, struct buf *t)
{
    static const char valid[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct request r;
    struct feeder f = {.mode = mode};
    size_t arrived = 0, chunk = 0;
    if (request_init(&r, limits) < 0)
        abort();
    for (;;) {
        char *base = feeder_base(&f);
        size_t len = feeder_len(&f);
        enum request_state state = request_feed(&r, base, len);
        if (state == REQUEST_INCOMPLETE) {
            if (request_wants_body(&r))
                check_held(&r, base, len);
            if (arrived == n) {
                put(t, "END headers_complete=%d wants_body=%d expect=%d buffered=%zu\n",
                    r.headers_complete, request_wants_body(&r), r.expect_continue, len);
                break;
            }
            size_t c = sizes[chunk++ % nsizes];
            if (c > n - arrived)
                c = n - arrived;
            feeder_add(&f, stream + arrived, c);
            arrived += c;
            continue;
        }
        if (state == REQUEST_ERROR) {
            int status = r.error_status;
            check_error(&r);
            put(t, "ERROR status=%d\n", status);
            /* Sticky: neither the same bytes nor a valid request clear it. */
            char fresh[sizeof(valid)];
            memcpy(fresh, valid, sizeof(valid));
            CHECK(request_feed(&r, base, len) == REQUEST_ERROR && r.error_status == status);
            CHECK(request_feed(&r, fresh, sizeof(valid) - 1) == REQUEST_ERROR &&
                  r.error_status == status);
            break;
        }
        CHECK(state == REQUEST_COMPLETE);
        check_complete(&r, base, len);
        check_held(&r, base, r.consumed);
        record_complete(t, &r, base);
        /* Until request_next the finished request stays as it is. */
        size_t consumed = r.consumed;
        CHECK(request_feed(&r, base, len) == REQUEST_COMPLETE && r.consumed == consumed);
        size_t used = request_next(&r);
        CHECK(used == consumed);
        CHECK(r.headers_complete == 0 && r.error_status == 0);
        feeder_drop(&f, used);
    }
    feeder_free(&f);
    request_free(&r);
}

static int same(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* The transcripts without their last line, when that is an ERROR line. */
static size_t before_error(const struct buf *t)
{
    static const char error[] = "ERROR status=";
    size_t start = t->len ? t->len - 1 : 0;
    while (start > 0 && t->data[start - 1] != '\n')
        start--;
    if (t->len - start < sizeof(error) - 1 || memcmp(t->data + start, error, sizeof(error) - 1))
        return t->len;
    return start;
}

static int tolerated(const struct buf *a, const struct buf *b)
{
    size_t ea = before_error(a), eb = before_error(b);
    return tolerate_error_status && ea != a->len && eb != b->len && ea == eb &&
           memcmp(a->data, b->data, ea) == 0;
}

static void compare(const struct buf *expected, const struct buf *got, const char *plan,
                    const uint8_t *data, size_t size)
{
    if (same(expected, got) || tolerated(expected, got))
        return;
    fprintf(stderr, "fed whole:\n%.*s%s:\n%.*s", (int)expected->len, expected->data, plan,
            (int)got->len, got->data);
    fprintf(stderr, "flags 0x%02x, input %zu bytes\n", size ? data[0] : 0, size);
    FAIL("the result depends on how the bytes arrived (%s)", plan);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tolerate = getenv("FUZZ_TOLERATE");
    tolerate_error_status = tolerate != NULL && strstr(tolerate, "error-status") != NULL;
    tolerate_empty_te = tolerate != NULL && strstr(tolerate, "empty-te") != NULL;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t nsizes = data[0] & 7;
    enum feed_mode mode = (data[0] & 8) ? FEED_MOVING : FEED_BUF;
    const struct request_limits *limits = (data[0] & 16) ? &tiny_limits : &small_limits;
    if (size < 1 + nsizes)
        return 0;
    size_t sizes[8];
    for (size_t i = 0; i < nsizes; i++)
        sizes[i] = (size_t)data[1 + i] + 1;
    const uint8_t *stream = data + 1 + nsizes;
    size_t n = size - 1 - nsizes;
    size_t all = n ? n : 1, one = 1;
    if (nsizes == 0) {
        sizes[0] = all;
        nsizes = 1;
    }

    struct buf whole = {0}, split = {0}, bytewise = {0};
    run(stream, n, limits, FEED_MOVING, &all, 1, &whole);
    run(stream, n, limits, mode, sizes, nsizes, &split);
    compare(&whole, &split, "fed in the chosen chunks", data, size);
    run(stream, n, limits, FEED_MOVING, &one, 1, &bytewise);
    compare(&whole, &bytewise, "fed one byte at a time, moving", data, size);
    buf_free(&whole);
    buf_free(&split);
    buf_free(&bytewise);
    return 0;
}

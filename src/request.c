/* HTTP/1.x request parsing: llhttp callbacks fill struct request with spans
 * into the connection buffer, enforce size limits as bytes arrive, and turn
 * protocol errors into a status code. No Python here. */
#include "pyruvate/request.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pyruvate/syntax.h"

/* Framing events. Their callbacks pause llhttp, which tells us where in
 * the stream they happened (llhttp_get_error_pos). */
enum framing_event {
    EVENT_NONE,
    EVENT_HEADERS,        /* the header block ended (a chunk line may begin) */
    EVENT_CHUNK_HEADER,   /* a chunk line ended */
    EVENT_CHUNK_COMPLETE, /* chunk data and its CRLF, or the trailers, ended */
    EVENT_EMPTY_VALUE,    /* a field line with an empty value ended */
    EVENT_TRAILER_FIELD,  /* a trailer field line ended */
};

/* The framing element being received, whose raw bytes count against a limit. */
enum frame {
    FRAME_NONE,       /* headers, chunk data or a Content-Length body */
    FRAME_CHUNK_LINE, /* CRLF after data, chunk-size, extensions, CRLF */
    FRAME_TRAILERS,   /* the trailer section with its final CRLF */
};

/* The token llhttp is receiving, as its callbacks tell: the data callback
 * that a piece of it cut short by an error would have gone to. */
enum element {
    ELEMENT_OTHER, /* method, version, line ends, body, chunk lines */
    ELEMENT_URL,
    ELEMENT_FIELD,
    ELEMENT_VALUE,
};

static int on_message_begin(llhttp_t *p);
static int on_method_complete(llhttp_t *p);
static int on_url_complete(llhttp_t *p);
static int on_header_field_complete(llhttp_t *p);
static int on_url(llhttp_t *p, const char *at, size_t len);
static int on_header_field(llhttp_t *p, const char *at, size_t len);
static int on_header_value(llhttp_t *p, const char *at, size_t len);
static int on_header_value_complete(llhttp_t *p);
static int on_headers_complete(llhttp_t *p);
static int on_body(llhttp_t *p, const char *at, size_t len);
static int on_message_complete(llhttp_t *p);
static int on_version_complete(llhttp_t *p);
static int on_chunk_header(llhttp_t *p);
static int on_chunk_complete(llhttp_t *p);
static int fail_with(struct request *r, int status, const char *reason);
static int status_for_parser_error(const struct request *r, llhttp_errno_t err);
static int unknown_method_status(const struct request *r);
static int version_status(const struct request *r);
static int request_line_ended(const struct request *r);
static void check_span_before_error(struct request *r, size_t start, size_t stop);
static int line_ends_before_error(const struct request *r);
static llhttp_errno_t execute(struct request *r);
static int framing_event(struct request *r, enum framing_event event, size_t at);
static int check_frame(struct request *r, size_t end);

/* llhttp keeps a pointer to its settings for the parser's lifetime. */
static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_method_complete = on_method_complete,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_version_complete = on_version_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
};

static void clear_results(struct request *r)
{
    r->method = NULL;
    r->target = (struct span){0, 0};
    r->http_major = 0;
    r->http_minor = 0;
    r->header_count = 0;
    r->body = (struct span){0, 0};
    r->chunked = 0;
    r->keep_alive = 0;
    r->expect_continue = 0;
    r->headers_complete = 0;
    r->consumed = 0;
    r->error_status = 0;
    r->error_reason = NULL;
    r->_header_bytes = 0;
    r->_host_count = 0;
    r->_transfer_codings = 0;
    r->_last_coding_chunked = 0;
    r->_version_seen = 0;
    r->_event = EVENT_NONE;
    r->_last_chunk = 0;
    r->_frame = FRAME_NONE;
    r->_frame_start = 0;
    r->_framing_bytes = 0;
    r->_host_empty = 0;
    r->_pending_error = HPE_OK;
    r->_fail_offset = SIZE_MAX;
    r->_in_field = 0;
    r->_trailer = (struct request_header){{0, 0}, {0, 0}};
    r->_value_seen = 0;
    r->_token_end = 0;
    r->_complete = 0;
}

int request_init(struct request *r, const struct request_limits *limits)
{
    memset(r, 0, sizeof(*r));
    r->limits = limits;
    /* Only the first header_count entries are ever read. */
    r->headers = malloc((limits->max_headers ? limits->max_headers : 1) * sizeof(*r->headers));
    if (r->headers == NULL) {
        errno = ENOMEM;
        return -1;
    }
    llhttp_init(&r->_parser, HTTP_REQUEST, &parser_settings);
    r->_parser.data = r;
    clear_results(r);
    return 0;
}

void request_free(struct request *r)
{
    free(r->headers);
    r->headers = NULL;
}

struct request *request_create(const struct request_limits *limits)
{
    /* Two allocations, not one: each is small enough for the allocator's
     * per-thread cache (the default 32 headers take 1 KiB), and a
     * connection makes and frees one per request it reads. */
    struct request *r = malloc(sizeof(*r));
    if (r == NULL || request_init(r, limits) < 0) {
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    return r;
}

void request_destroy(struct request *r)
{
    if (r)
        request_free(r);
    free(r);
}

/* The reason for a status decided by our own reading of the request line:
 * after llhttp refused its method or version, or for a line without a
 * version (err HPE_OK). */
static const char *request_line_reason(llhttp_errno_t err, int status)
{
    if (err == HPE_INVALID_METHOD)
        return status == 501 ? "unknown method" : "invalid method";
    if (err == HPE_INVALID_VERSION && status == 505)
        return "HTTP version not supported";
    if (err != HPE_INVALID_VERSION && status == 505)
        return "HTTP/0.9 is not supported";
    return "malformed request line";
}

/* Some errors are only fully known once more bytes arrive: the status must
 * not depend on how TCP split the stream. Returns 1 while the decision
 * waits for more bytes. */
static int decide_request_line_error(struct request *r, llhttp_errno_t err)
{
    if ((err != HPE_INVALID_METHOD && err != HPE_INVALID_VERSION) || r->error_status)
        return 0;
    int status = err == HPE_INVALID_METHOD ? unknown_method_status(r) : version_status(r);
    if (status == 0) {
        r->_pending_error = err;
        return 1;
    }
    r->_pending_error = HPE_OK;
    fail_with(r, status, request_line_reason(err, status));
    return 0;
}

/* A request line that ended without a version (HTTP/0.9, or a bare LF) is
 * the first problem, whatever llhttp found in the bytes after it (it reads
 * them as headers). */
static void prefer_versionless_line(struct request *r, llhttp_errno_t err)
{
    if (err == HPE_OK || err == HPE_PAUSED || err == HPE_INVALID_METHOD ||
        err == HPE_INVALID_VERSION || r->_version_seen || !line_ends_before_error(r))
        return;
    int status = request_line_ended(r);
    if (status) {
        r->error_status = status;
        r->error_reason = request_line_reason(HPE_OK, status);
    }
}

enum request_state request_feed(struct request *r, char *base, size_t len)
{
    if (r->error_status)
        return REQUEST_ERROR;
    if (r->_complete)
        return REQUEST_COMPLETE;
    if (r->_parsed >= len)
        return REQUEST_INCOMPLETE;

    r->_base = base;
    r->_len = len;
    /* After a pending error llhttp has stopped; only our scan goes on. */
    llhttp_errno_t err = r->_pending_error ? r->_pending_error : execute(r);
    if (decide_request_line_error(r, err)) {
        r->_base = NULL;
        return REQUEST_INCOMPLETE;
    }
    prefer_versionless_line(r, err);

    int status;
    switch (err) {
    case HPE_OK:
        if (!r->_version_seen && (status = request_line_ended(r)) != 0) {
            fail_with(r, status, request_line_reason(HPE_OK, status));
            break;
        }
        r->_base = NULL;
        r->_parsed = len;
        return REQUEST_INCOMPLETE;
    case HPE_PAUSED:
    case HPE_PAUSED_UPGRADE:
        if (!r->_complete)
            break;
        /* A pause from on_message_complete: the request ends exactly here and
         * anything after it is the next, pipelined request. */
        r->_base = NULL;
        r->consumed = (size_t)(llhttp_get_error_pos(&r->_parser) - base);
        r->_parsed = r->consumed;
        if (err == HPE_PAUSED_UPGRADE)
            r->keep_alive = 0; /* WSGI cannot take over the connection */
        return REQUEST_COMPLETE;
    default:
        break;
    }
    if (!r->error_status) {
        r->error_status = status_for_parser_error(r, err);
        r->error_reason = llhttp_get_error_reason(&r->_parser);
    }
    r->_base = NULL;
    r->keep_alive = 0;
    return REQUEST_ERROR;
}

/* Runs llhttp over the unparsed bytes, handling the pauses of framing
 * events on the way; returns where it stopped for good. */
static llhttp_errno_t execute(struct request *r)
{
    for (;;) {
        const char *start = r->_base + r->_parsed;
        llhttp_errno_t err = llhttp_execute(&r->_parser, start, r->_len - r->_parsed);
        /* An offset: the buffer may move before the position is looked at. */
        const char *stop = llhttp_get_error_pos(&r->_parser);
        r->_error_offset = err != HPE_OK && stop ? (size_t)(stop - r->_base) : r->_len;
        if (err == HPE_PAUSED && r->_event != EVENT_NONE) {
            enum framing_event event = r->_event;
            r->_event = EVENT_NONE;
            r->_parsed = r->_error_offset;
            llhttp_resume(&r->_parser);
            if (framing_event(r, event, r->_error_offset) < 0)
                return HPE_USER;
            continue;
        }
        if (err == HPE_USER || err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
            return err;
        if (err != HPE_OK && stop)
            check_span_before_error(r, (size_t)(start - r->_base), r->_error_offset);
        /* The framing bytes received so far, up to a bad byte if there is
         * one: a limit they pass came first in the stream. */
        if (!r->error_status && check_frame(r, r->_error_offset) < 0)
            return HPE_USER;
        return err;
    }
}

/* True when the first line ended before the byte llhttp stopped at: then
 * the line was the first problem, and the status must be about it. */
static int line_ends_before_error(const struct request *r)
{
    size_t i = 0;
    while (i < r->_len && (r->_base[i] == '\r' || r->_base[i] == '\n'))
        i++;
    const char *lf = memchr(r->_base + i, '\n', r->_len - i);
    if (lf == NULL)
        return 0;
    size_t line_end = (size_t)(lf - r->_base);
    return line_end < r->_error_offset && line_end < r->_fail_offset;
}

/* Once the request line has ended without llhttp seeing a version: 505
 * for an HTTP/0.9 line ("GET /" CRLF, which llhttp would wait on), 400 for
 * anything else; 0 while the line has not ended. Empty lines a client may
 * send first are skipped (RFC 9112 §2.2). */
static int request_line_ended(const struct request *r)
{
    size_t i = 0;
    while (i < r->_len && (r->_base[i] == '\r' || r->_base[i] == '\n'))
        i++;
    const char *line = r->_base + i;
    const char *lf = memchr(line, '\n', r->_len - i);
    if (lf == NULL)
        return 0;
    size_t len = (size_t)(lf - line), spaces = 0;
    if (len == 0 || line[len - 1] != '\r')
        return 400;
    for (size_t k = 0; k + 1 < len; k++)
        spaces += line[k] == ' ';
    return spaces == 1 ? 505 : 400;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Where the token being received when llhttp stopped at offset stop
 * begins, found in the bytes as llhttp reads them: the target after the
 * method's space, a field name at its line's start, a value after the
 * colon (or, on a folded line, the line's start) and its whitespace. */
static size_t element_start(const struct request *r, size_t stop)
{
    const char *b = r->_base;
    if (r->_element == ELEMENT_URL) {
        size_t i = 0;
        while (i < stop && (b[i] == '\r' || b[i] == '\n'))
            i++;
        const char *space = memchr(b + i, ' ', stop - i);
        if (space == NULL)
            return stop;
        /* llhttp 8.1 skips further spaces before the target. */
        for (i = (size_t)(space - b) + 1; i < stop && b[i] == ' ';)
            i++;
        return i;
    }
    size_t line = stop;
    while (line > 0 && b[line - 1] != '\n')
        line--;
    if (r->_element == ELEMENT_FIELD)
        return line;
    const char *colon = memchr(b + line, ':', stop - line);
    size_t i = colon ? (size_t)(colon - b) + 1 : line;
    while (i < stop && is_ows(b[i]))
        i++;
    return i;
}

/* When llhttp stops at a bad byte, the piece of the token before it may
 * not have been handed to our callbacks (llhttp does that at the token's
 * end, at the end of the fed bytes, and for some bad bytes, such as a
 * control byte in a value, just before the error; what came before start,
 * the first byte of this llhttp_execute, or before _token_end was handed
 * over). Checking it now makes a limit passed before the bad byte win, as
 * it does when the piece happened to arrive earlier: the status must not
 * depend on how the stream was split. Only llhttp's public callbacks and
 * our reading of the bytes are used. */
static void check_span_before_error(struct request *r, size_t start, size_t stop)
{
    if (r->_element == ELEMENT_OTHER)
        return;
    size_t from = element_start(r, stop);
    if (from < start)
        from = start;
    if (from < r->_token_end)
        from = r->_token_end; /* counted once, however llhttp handed it */
    /* A CR before the bad byte ends the target or value for llhttp (it
     * then wants LF): it is no byte of the token. */
    if (stop > from && r->_base[stop - 1] == '\r')
        stop--;
    if (stop <= from)
        return;
    const char *at = r->_base + from;
    size_t len = stop - from;
    if (r->_element == ELEMENT_URL)
        on_url(&r->_parser, at, len);
    else if (r->_element == ELEMENT_FIELD)
        on_header_field(&r->_parser, at, len);
    else
        on_header_value(&r->_parser, at, len);
}

size_t request_next(struct request *r)
{
    size_t used = r->consumed;
    clear_results(r);
    r->_parsed = 0;
    llhttp_resume(&r->_parser);
    return used;
}

int request_wants_body(const struct request *r)
{
    return r->headers_complete && !r->_complete;
}

const struct request_header *request_find_header(const struct request *r, const char *base,
                                                 const char *name)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < r->header_count; i++) {
        const struct request_header *h = &r->headers[i];
        if (h->name.len == n && strncasecmp(base + h->name.offset, name, n) == 0)
            return h;
    }
    return NULL;
}

/* Callbacks. Data callbacks may deliver one token in several pieces (one per
 * llhttp_execute call); the pieces are adjacent in the buffer, so a span is
 * started by the first piece and grown by the next ones. */

static struct request *request_of(llhttp_t *p)
{
    return p->data;
}

static size_t offset_of(const struct request *r, const char *at)
{
    return (size_t)(at - r->_base);
}

static void span_extend(struct span *s, size_t offset, size_t len)
{
    if (s->len == 0)
        s->offset = offset;
    s->len += len;
}

/* fail_with for a problem found at a byte of the buffer: its position
 * decides which of two problems came first in the stream. */
static int fail_at(struct request *r, const char *at, int status, const char *reason)
{
    r->_fail_offset = offset_of(r, at);
    return fail_with(r, status, reason);
}

static int fail_with(struct request *r, int status, const char *reason)
{
    r->error_status = status;
    r->error_reason = reason;
    llhttp_set_error_reason(&r->_parser, reason);
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    request_of(p)->_element = ELEMENT_OTHER;
    return 0;
}

static int on_method_complete(llhttp_t *p)
{
    request_of(p)->_element = ELEMENT_URL;
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    request_of(p)->_element = ELEMENT_OTHER;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    request_of(p)->_element = ELEMENT_VALUE;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = request_of(p);
    /* Byte by byte, so that whichever problem comes first in the stream is
     * the one reported, however the bytes were split. */
    for (size_t i = 0; i < len; i++) {
        if (r->target.len + i >= r->limits->max_target_length)
            return fail_at(r, at + i, 414, "request target too long");
        /* RFC 9112 §3.2: no whitespace or control characters in a target,
         * and no fragment: "#" is not part of any request-target form. */
        unsigned char c = (unsigned char)at[i];
        if (c <= ' ' || c == 127 || c == '#')
            return fail_at(r, at + i, 400, "invalid character in the request target");
    }
    span_extend(&r->target, offset_of(r, at), len);
    r->_token_end = offset_of(r, at) + len;
    return 0;
}

static int count_header_bytes(struct request *r, const char *at, size_t len)
{
    if (len > r->limits->max_header_bytes - r->_header_bytes) {
        fail_at(r, at, 431, "request header fields too large");
        return 1;
    }
    r->_header_bytes += len;
    return 0;
}

/* The field line being received: a header, or a trailer field, which is
 * checked like one and then dropped (it is no request header). */
static struct request_header *current_field(struct request *r)
{
    return r->headers_complete ? &r->_trailer : &r->headers[r->header_count - 1];
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = request_of(p);
    if (count_header_bytes(r, at, len))
        return HPE_USER;
    if (!r->_in_field) {
        if (!r->headers_complete) {
            if (r->header_count == r->limits->max_headers)
                return fail_at(r, at, 431, "too many request header fields");
            r->header_count++;
        }
        *current_field(r) = (struct request_header){{0, 0}, {0, 0}};
        r->_in_field = 1;
    }
    span_extend(&current_field(r)->name, offset_of(r, at), len);
    r->_token_end = offset_of(r, at) + len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = request_of(p);
    if (count_header_bytes(r, at, len))
        return HPE_USER;
    r->_value_seen |= len > 0;
    span_extend(&current_field(r)->value, offset_of(r, at), len);
    r->_token_end = offset_of(r, at) + len;
    return 0;
}

static int name_is(const struct request *r, const struct request_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name.len == n && strncasecmp(r->_base + h->name.offset, name, n) == 0;
}

static int value_is(const struct request *r, const struct request_header *h, const char *value)
{
    size_t n = strlen(value);
    return h->value.len == n && strncasecmp(r->_base + h->value.offset, value, n) == 0;
}

static int valid_name(const struct request *r, const struct request_header *h)
{
    if (h->name.len == 0)
        return 0;
    for (size_t i = 0; i < h->name.len; i++)
        if (!syntax_is_tchar((unsigned char)r->_base[h->name.offset + i]))
            return 0;
    return 1;
}

/* Transfer-Encoding may be split over several fields, which together form
 * one list (RFC 9110 §5.3): count its codings and remember the last. */
static void note_transfer_codings(struct request *r, const struct request_header *h)
{
    const char *value = r->_base + h->value.offset;
    size_t pos = 0;
    struct span coding;
    unsigned before = r->_transfer_codings;
    while (syntax_list_next(value, h->value.len, &pos, &coding)) {
        r->_transfer_codings++;
        r->_last_coding_chunked =
            coding.len == 7 && strncasecmp(value + coding.offset, "chunked", 7) == 0;
    }
    /* A field that names no coding leaves the framing unknown (400). */
    if (r->_transfer_codings == before) {
        r->_transfer_codings++;
        r->_last_coding_chunked = 0;
    }
}

/* RFC 9112 §6.1 and §6.3: we decode "chunked" and nothing else. A chunked
 * body wrapped in another coding is understood but not served (501); a
 * final coding other than chunked leaves the length unknown (400). */
static int check_transfer_codings(struct request *r)
{
    if (r->_transfer_codings == 0 || (r->_transfer_codings == 1 && r->_last_coding_chunked))
        return 0;
    if (r->_last_coding_chunked)
        return fail_with(r, 501, "unsupported transfer coding");
    return fail_with(r, 400, "the final transfer coding is not chunked");
}

static int is_hex_digit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 §3.2.2 reg-name characters: unreserved and sub-delims (an IPv4
 * address is made of them too); "%" starts a pct-encoded octet. */
static int is_reg_name_char(unsigned char c)
{
    static const char others[] = "-._~!$&'()*+,;=";
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr(others, c) != NULL;
}

/* host [":" port] as the Host field and the authority of an http(s) URI
 * carry it (RFC 9110 §7.2, §4.2.1): a non-empty reg-name or IPv4 address,
 * or an IPv6 address in brackets; a port, if there is one, is 1-65535.
 * No userinfo: "@" is not a host character. need_port: CONNECT's target. */
static int valid_authority(const char *s, size_t len, int need_port)
{
    size_t i = 0;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        char address[INET6_ADDRSTRLEN];
        struct in6_addr parsed;
        size_t n = close ? (size_t)(close - s) - 1 : 0;
        if (n == 0 || n >= sizeof(address))
            return 0;
        memcpy(address, s + 1, n);
        address[n] = '\0';
        if (inet_pton(AF_INET6, address, &parsed) != 1)
            return 0;
        i = n + 2;
    } else {
        while (i < len && (is_reg_name_char((unsigned char)s[i]) ||
                           (s[i] == '%' && i + 2 < len && is_hex_digit((unsigned char)s[i + 1]) &&
                            is_hex_digit((unsigned char)s[i + 2]))))
            i += s[i] == '%' ? 3 : 1;
        if (i == 0)
            return 0;
    }
    if (i == len)
        return !need_port;
    if (s[i] != ':' || ++i == len)
        return 0;
    unsigned long port = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        port = port * 10 + (unsigned long)(s[i] - '0');
        if (port > 65535)
            return 0;
    }
    return port > 0;
}

/* RFC 9112 §3.2.2: an absolute-form target is an http or https URI whose
 * authority takes the place of the Host field. */
static int valid_absolute_form(const char *target, size_t len)
{
    size_t scheme;
    if (len >= 7 && strncasecmp(target, "http://", 7) == 0)
        scheme = 7;
    else if (len >= 8 && strncasecmp(target, "https://", 8) == 0)
        scheme = 8;
    else
        return 0;
    size_t end = scheme;
    while (end < len && target[end] != '/' && target[end] != '?')
        end++;
    return valid_authority(target + scheme, end - scheme, 0);
}

/* RFC 9112 §3.2: origin-form, absolute-form (http/https only),
 * authority-form for CONNECT and asterisk-form for OPTIONS. An empty Host
 * is accepted only beside an absolute-form target, which names the host:
 * otherwise the target URI would have an empty host, which RFC 9110 §4.2.1
 * says a recipient must reject. */
static int check_target(struct request *r)
{
    const char *target = r->_base + r->target.offset;
    size_t len = r->target.len;
    llhttp_method_t method = llhttp_get_method(&r->_parser);
    if (method == HTTP_CONNECT)
        return valid_authority(target, len, 1) ? 0 : fail_with(r, 400, "invalid CONNECT target");
    if (len == 1 && target[0] == '*') {
        /* RFC 9112 §3.2.4: the asterisk-form is for OPTIONS only. */
        if (method != HTTP_OPTIONS)
            return fail_with(r, 400, "'*' is only a target for OPTIONS");
    } else if (len == 0 || target[0] != '/') {
        if (!valid_absolute_form(target, len))
            return fail_with(r, 400, "invalid request target");
        return 0;
    }
    if (r->_host_empty)
        return fail_with(r, 400, "empty Host header");
    return 0;
}

/* The syntax of a field line, the same for headers and trailer fields
 * (RFC 9112 §5, §7.1.2); trims the value's surrounding whitespace (RFC 9110
 * §5.5). Returns 0, or HPE_USER with the error status set. */
static int check_field_line(struct request *r, struct request_header *h)
{
    /* RFC 9112 §5.1: no whitespace between name and colon; a name is a token. */
    if (!valid_name(r, h))
        return fail_with(r, 400, "invalid field name");
    while (h->value.len > 0 && is_ows(r->_base[h->value.offset + h->value.len - 1]))
        h->value.len--;
    /* RFC 9112 §5.2: obs-fold puts a line break inside the value; we reject
     * it rather than hand the app a value with CR or LF in it. */
    for (size_t i = 0; i < h->value.len; i++) {
        char c = r->_base[h->value.offset + i];
        if (c == '\r' || c == '\n' || c == '\0')
            return fail_with(r, 400, "line folding or control character in a field value");
    }
    /* A fold right after the colon: llhttp drops it as leading whitespace,
     * so only the bytes between the name and the value show it. */
    for (size_t i = h->name.offset + h->name.len + 1; h->value.len > 0 && i < h->value.offset; i++)
        if (!is_ows(r->_base[i]))
            return fail_with(r, 400, "line folding in a field value");
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct request *r = request_of(p);
    /* llhttp 8.1 (non-strict) skips the byte after a CR that follows an
     * empty value, and drops a fold there as whitespace: such a line is
     * checked where llhttp says it ends. */
    int empty = !r->_value_seen;
    r->_value_seen = 0;
    r->_element = ELEMENT_FIELD;
    r->_in_field = 0;
    if (r->headers_complete) {
        /* A trailer line is checked where it ends, after the trailer
         * section's limit (framing_event): a limit passed earlier in the
         * stream comes first, however the bytes were split. */
        r->_event = EVENT_TRAILER_FIELD;
        return HPE_PAUSED;
    }
    r->_event = empty ? EVENT_EMPTY_VALUE : EVENT_NONE;
    struct request_header *h = current_field(r);
    if (check_field_line(r, h))
        return HPE_USER;
    if (name_is(r, h, "host")) {
        /* RFC 9112 §3.2: more than one Host is an error in any version, an
         * invalid value too. */
        if (++r->_host_count > 1)
            return fail_with(r, 400, "more than one Host header");
        if (h->value.len == 0)
            r->_host_empty = 1;
        else if (!valid_authority(r->_base + h->value.offset, h->value.len, 0))
            return fail_with(r, 400, "invalid Host header");
    } else if (name_is(r, h, "expect")) {
        /* RFC 9110 §10.1.1: 100-continue is the only expectation defined. */
        if (!value_is(r, h, "100-continue"))
            return fail_with(r, 417, "unsupported expectation");
        r->expect_continue = 1;
    } else if (name_is(r, h, "transfer-encoding")) {
        note_transfer_codings(r, h);
    }
    return empty ? HPE_PAUSED : 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct request *r = request_of(p);
    r->_element = ELEMENT_OTHER;
    r->http_major = llhttp_get_http_major(p);
    r->http_minor = llhttp_get_http_minor(p);
    r->method = llhttp_method_name(llhttp_get_method(p));
    if (!r->_version_seen) {
        /* llhttp read a line without a version as HTTP/0.9; judge it as
         * the byte-by-byte path does (505 for CRLF, 400 for a bare LF). */
        int status = request_line_ended(r);
        return fail_with(r, status ? status : 505, "HTTP/0.9 is not supported");
    }
    if (r->http_major != 1 || r->http_minor > 1)
        return fail_with(r, 505, "HTTP version not supported");
    if (r->http_minor == 1 && r->_host_count != 1)
        return fail_with(r, 400, "HTTP/1.1 requires exactly one Host header");
    if (check_transfer_codings(r))
        return HPE_USER;
    if (check_target(r))
        return HPE_USER;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    if ((p->flags & F_TRANSFER_ENCODING) && r->http_minor == 0)
        return fail_with(r, 400, "Transfer-Encoding is not allowed in HTTP/1.0");
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > r->limits->max_body_size)
        return fail_with(r, 413, "request body too large");
    /* Only HTTP/1.1 clients understand an interim 100 response. */
    if (r->http_minor == 0)
        r->expect_continue = 0;
    r->keep_alive = llhttp_should_keep_alive(p);
    r->headers_complete = 1;
    /* Pause to learn where the header block ends. */
    r->_event = EVENT_HEADERS;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = request_of(p);
    if (len > r->limits->max_body_size - r->body.len)
        return fail_with(r, 413, "request body too large");
    size_t offset = offset_of(r, at);
    if (r->body.len == 0) {
        r->body.offset = offset;
    } else if (offset != r->body.offset + r->body.len) {
        /* Chunk framing sits between the pieces: move this piece down so the
         * decoded body is contiguous. The bytes it overwrites were parsed. */
        memmove(r->_base + r->body.offset + r->body.len, at, len);
    }
    r->body.len += len;
    return 0;
}

static int on_version_complete(llhttp_t *p)
{
    request_of(p)->_version_seen = 1;
    request_of(p)->_element = ELEMENT_FIELD;
    return 0;
}

static int on_chunk_header(llhttp_t *p)
{
    struct request *r = request_of(p);
    r->_last_chunk = p->content_length == 0;
    /* After the last chunk come the trailer fields. */
    r->_element = r->_last_chunk ? ELEMENT_FIELD : ELEMENT_OTHER;
    r->_event = EVENT_CHUNK_HEADER;
    return HPE_PAUSED;
}

static int on_chunk_complete(llhttp_t *p)
{
    request_of(p)->_event = EVENT_CHUNK_COMPLETE;
    return HPE_PAUSED;
}

size_t request_chunk_line_max(const struct request_limits *limits)
{
    return limits->max_chunk_line ? limits->max_chunk_line : REQUEST_CHUNK_LINE_MAX;
}

uint64_t request_framing_allowance(const struct request_limits *limits)
{
    if (limits->max_framing_bytes)
        return limits->max_framing_bytes;
    return REQUEST_FRAMING_BASE + limits->max_body_size / REQUEST_FRAMING_BODY_DIVISOR;
}

/* Checks the bytes of the current framing element up to offset `end`
 * against its limits. Of two limits, the one passed at the earlier byte
 * decides the status, so that it does not depend on how TCP split the
 * stream. Every byte after the headers is chunk data (max_body_size), a
 * chunk line or a trailer: so all of them are bounded. */
static int check_frame(struct request *r, size_t end)
{
    if (r->_frame == FRAME_NONE || end <= r->_frame_start)
        return 0;
    size_t len = end - r->_frame_start;
    if (r->_frame == FRAME_TRAILERS) {
        if (len <= r->limits->max_header_bytes)
            return 0;
        fail_at(r, r->_base + r->_frame_start + r->limits->max_header_bytes, 431,
                "trailer section too large");
        return -1;
    }
    uint64_t allowance = request_framing_allowance(r->limits);
    uint64_t room = allowance > r->_framing_bytes ? allowance - r->_framing_bytes : 0;
    size_t line_max = request_chunk_line_max(r->limits);
    if (len <= line_max && len <= room)
        return 0;
    if (room < line_max)
        fail_at(r, r->_base + r->_frame_start + room, 413, "chunked framing too large");
    else
        fail_at(r, r->_base + r->_frame_start + line_max, 400, "chunk line too long");
    return -1;
}

/* One rule for every line end (README): a request line ended by a bare LF
 * is refused like any other line. The request is whole in the buffer up
 * to `at`, the end of its header block. Returns 0, or -1 with the error
 * status set. */
static int request_line_bare_lf(struct request *r, size_t at)
{
    size_t i = 0;
    while (i < at && (r->_base[i] == '\r' || r->_base[i] == '\n'))
        i++; /* RFC 9112 §2.2: empty lines before the request line */
    const char *lf = memchr(r->_base + i, '\n', at - i);
    if (lf == NULL || lf[-1] == '\r')
        return 0;
    fail_at(r, lf, 400, "bare LF as a line end");
    return -1;
}

/* A field line with an empty value that ends before offset `at`: between
 * the colon and the LF only whitespace and one CR, no fold. Returns 0, or
 * -1 with the error status set. */
static int check_empty_value_line(struct request *r, size_t at)
{
    size_t i = at - 1;
    if (i > 0 && r->_base[i - 1] == '\r')
        i--;
    while (i > 0 && is_ows(r->_base[i - 1]))
        i--;
    if (i == 0 || r->_base[i - 1] != ':') {
        fail_at(r, r->_base + at - 1, 400, "line folding in a field value");
        return -1;
    }
    return 0;
}

static void begin_frame(struct request *r, enum frame frame, size_t at)
{
    r->_frame = frame;
    r->_frame_start = at;
}

/* llhttp 8.1 (built without LLHTTP_STRICT_MODE) takes CR and any byte, or a
 * bare LF, for the CRLF that ends the header block, a chunk line or the
 * trailers: "\r\n\rX" would hide the byte X from us but not from a proxy in
 * front. The element ending before `at` must end with CRLF. Returns 0, or
 * -1 with the error status set. */
static int element_ends_with_crlf(struct request *r, size_t at)
{
    if (r->_base[at - 1] != '\n') {
        fail_at(r, r->_base + at - 1, 400, "bare CR in the message framing");
        return -1;
    }
    if (at < 2 || r->_base[at - 2] != '\r') {
        fail_at(r, r->_base + at - 1, 400, "bare LF as a line end");
        return -1;
    }
    return 0;
}

/* A chunk's data, or the trailer block, ended before `at`. */
static int chunk_complete(struct request *r, size_t at)
{
    if (r->_frame == FRAME_TRAILERS) {
        if (check_frame(r, at) < 0)
            return -1;
        begin_frame(r, FRAME_NONE, at);
        return 0;
    }
    /* RFC 9112 §7.1: chunk data ends with CRLF. llhttp 8.1 skips the two
     * bytes after the data without looking at them, which lets a request
     * smuggle bytes past a proxy that reads the framing differently; so we
     * look. The bytes are still in the buffer: compaction only writes below
     * the data. They begin the next chunk line's count. */
    if (r->_base[at - 2] != '\r' || r->_base[at - 1] != '\n') {
        fail_at(r, r->_base + at - 2, 400, "chunk data not followed by CRLF");
        return -1;
    }
    begin_frame(r, FRAME_CHUNK_LINE, at - 2);
    return check_frame(r, at);
}

/* RFC 9110 §6.5.1: a trailer must not change the framing, routing or
 * anything else decided from the header block, so trailer fields
 * (Content-Length, Host, ... among them) are checked and dropped. */
static int trailer_field(struct request *r, size_t at)
{
    /* The line's bytes up to its LF came before the line is judged, as
     * they do when the next line's first byte arrives in a later read. */
    if (check_frame(r, at) < 0)
        return -1;
    if (r->_trailer.value.len == 0 && check_empty_value_line(r, at) < 0)
        return -1;
    return check_field_line(r, &r->_trailer) ? -1 : 0;
}

/* A framing event at offset `at` (the byte after it). Returns 0, or -1 with
 * the error status set. */
static int framing_event(struct request *r, enum framing_event event, size_t at)
{
    /* A limit passed before the element's last byte comes first. */
    if (check_frame(r, at - 1) < 0)
        return -1;
    /* Chunk data ends with its own CRLF check (chunk_complete). */
    if ((event != EVENT_CHUNK_COMPLETE || r->_frame == FRAME_TRAILERS) &&
        element_ends_with_crlf(r, at) < 0)
        return -1;
    switch (event) {
    case EVENT_HEADERS:
        /* llhttp checks the field lines' CRLF but not the request line's. */
        if (request_line_bare_lf(r, at) < 0)
            return -1;
        if (r->chunked)
            begin_frame(r, FRAME_CHUNK_LINE, at);
        return 0;
    case EVENT_CHUNK_HEADER:
        if (check_frame(r, at) < 0)
            return -1;
        r->_framing_bytes += at - r->_frame_start;
        begin_frame(r, r->_last_chunk ? FRAME_TRAILERS : FRAME_NONE, at);
        return 0;
    case EVENT_CHUNK_COMPLETE:
        return chunk_complete(r, at);
    case EVENT_EMPTY_VALUE:
        return check_empty_value_line(r, at);
    case EVENT_TRAILER_FIELD:
        return trailer_field(r, at);
    case EVENT_NONE:
        break;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct request *r = request_of(p);
    /* After an Upgrade or CONNECT, llhttp stops parsing HTTP on this
     * connection; WSGI cannot take it over, so it ends with this request. */
    r->keep_alive = llhttp_should_keep_alive(p) && !llhttp_get_upgrade(p);
    r->_complete = 1;
    return HPE_PAUSED;
}

/* The status for a method llhttp does not know: 501 when it is a
 * well-formed token (RFC 9110 §9.1), 400 when it is not, 0 while the token
 * is still arriving, so that the answer never depends on how TCP split it. */
static int unknown_method_status(const struct request *r)
{
    size_t i = 0, token = 0;
    while (i < r->_len && (r->_base[i] == '\r' || r->_base[i] == '\n'))
        i++; /* RFC 9112 §2.2: empty lines before a request are ignored */
    for (; i < r->_len; i++, token++) {
        unsigned char c = (unsigned char)r->_base[i];
        if (c == ' ')
            return token > 0 ? 501 : 400;
        if (!syntax_is_tchar(c) || token >= 64)
            return 400;
    }
    return 0;
}

/* For a version llhttp refused: 505 when the request line ends in a
 * well-formed "HTTP/<digit>.<digit>" and CRLF (a version we do not serve),
 * 400 when it is malformed, 0 while the line's end has not arrived. A
 * request line without any version is HTTP/0.9, which we do not serve. */
static int version_status(const struct request *r)
{
    size_t skipped = 0;
    while (skipped < r->_len && (r->_base[skipped] == '\r' || r->_base[skipped] == '\n'))
        skipped++; /* RFC 9112 §2.2: empty lines before the request line */
    const char *line = r->_base + skipped;
    size_t avail = r->_len - skipped, end = 0;
    while (end < avail && line[end] != '\r' && line[end] != '\n')
        end++;
    size_t spaces = 0, last_space = 0;
    for (size_t i = 0; i < end; i++)
        if (line[i] == ' ') {
            spaces++;
            last_space = i;
        }
    const char *version = line + last_space + 1;
    size_t len = end - last_space - 1;
    int well_formed = spaces == 2 && len == 8 && memcmp(version, "HTTP/", 5) == 0 &&
                      version[5] >= '0' && version[5] <= '9' && version[6] == '.' &&
                      version[7] >= '0' && version[7] <= '9';
    if (spaces == 1 && end + 1 < avail && line[end] == '\r' && line[end + 1] == '\n')
        return 505; /* "GET /" CRLF */
    if (!well_formed) {
        /* A prefix of a version may still become a good one. */
        static const char pattern[] = "HTTP/9.9";
        int prefix = spaces == 2 && end == avail && len < 8;
        for (size_t i = 0; prefix && i < len; i++)
            prefix = pattern[i] == '9' ? version[i] >= '0' && version[i] <= '9'
                                       : version[i] == pattern[i];
        return prefix ? 0 : 400;
    }
    if (end == avail || (end + 1 == avail && line[end] == '\r'))
        return 0; /* is a CRLF coming? */
    return line[end] == '\r' && line[end + 1] == '\n' ? 505 : 400;
}

static int status_for_parser_error(const struct request *r, llhttp_errno_t err)
{
    switch (err) {
    case HPE_PAUSED_H2_UPGRADE:
        return 505;
    case HPE_INVALID_VERSION:
        return version_status(r) == 505 ? 505 : 400;
    default:
        return 400;
    }
}

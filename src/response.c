/* The response without Python: validation, the head, framing, writing. */
#include "pyruvate/response.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "pyruvate/common.h"
#include "pyruvate/log.h"
#include "pyruvate/syntax.h"

int response_parse_status(const char *status, size_t len)
{
    if (len < 4 || status[3] != ' ')
        return -1;
    int code = 0;
    for (int i = 0; i < 3; i++) {
        if (status[i] < '0' || status[i] > '9')
            return -1;
        code = code * 10 + (status[i] - '0');
    }
    if (code < 100 || code > 599) /* RFC 9110 §15: 1xx to 5xx */
        return -1;
    for (size_t i = 4; i < len; i++) {
        unsigned char c = (unsigned char)status[i];
        if ((c < 32 && c != '\t') || c == 127)
            return -1;
    }
    return code;
}

int response_valid_header_name(const char *name, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!syntax_is_tchar((unsigned char)name[i]))
            return 0;
    return 1;
}

int response_valid_header_value(const char *value, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 32 && c != '\t') || c == 127)
            return 0;
    }
    return 1;
}

size_t response_chunk_header(size_t len, char out[24])
{
    int n = snprintf(out, 24, "%zx\r\n", len);
    return (size_t)n;
}

/* ---- the head --------------------------------------------------------- */

int response_begin(struct response_state *resp, struct buf *head, int code, const char *status,
                   size_t status_len, int head_request)
{
    *resp = (struct response_state){.status = code, .content_length = -1};
    resp->head_request = head_request;
    /* RFC 9110 §6.4.1: these responses never have content. */
    resp->no_body = code < 200 || code == 204 || code == 304 || head_request;
    head->len = 0;
    if (buf_append_str(head, "HTTP/1.1 ") < 0 || buf_append(head, status, status_len) < 0 ||
        buf_append_str(head, "\r\n") < 0)
        return -1;
    return 0;
}

static int is_name(const char *name, size_t len, const char *expected)
{
    return len == strlen(expected) && strncasecmp(name, expected, len) == 0;
}

static int parse_content_length(const char *value, size_t len, long long *out)
{
    if (len == 0 || len > 18)
        return -1;
    long long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return -1;
        n = n * 10 + (value[i] - '0');
    }
    *out = n;
    return 0;
}

int response_add_header(struct response_state *resp, struct buf *head, const char *name,
                        size_t name_len, const char *value, size_t value_len)
{
    if (!response_valid_header_name(name, name_len) ||
        !response_valid_header_value(value, value_len))
        return RESPONSE_HEADER_INVALID;
    if (is_name(name, name_len, "content-length")) {
        long long length;
        if (parse_content_length(value, value_len, &length) < 0)
            return RESPONSE_HEADER_BAD_LENGTH;
        /* RFC 9110 §8.6: one length; the same one again adds nothing. */
        if (resp->content_length >= 0)
            return length == resp->content_length ? RESPONSE_HEADER_OK
                                                  : RESPONSE_HEADER_CONFLICTING_LENGTH;
        resp->content_length = length;
        /* RFC 9110 §8.6: never in a 1xx or 204 response. */
        if (resp->status < 200 || resp->status == 204) {
            resp->content_length = -1;
            return RESPONSE_HEADER_OK;
        }
    } else if (is_name(name, name_len, "connection")) {
        /* Hop-by-hop (RFC 9110 §7.6.1): the server writes its own. */
        if (syntax_list_has(value, value_len, "close"))
            resp->app_wants_close = 1;
        return RESPONSE_HEADER_OK;
    } else if (is_name(name, name_len, "transfer-encoding") ||
               is_name(name, name_len, "keep-alive")) {
        return RESPONSE_HEADER_OK; /* framing is the server's job */
    } else if (is_name(name, name_len, "date")) {
        resp->app_sent_date = 1;
    } else if (is_name(name, name_len, "server")) {
        resp->app_sent_server = 1;
    }
    if (buf_append(head, name, name_len) < 0 || buf_append_str(head, ": ") < 0 ||
        buf_append(head, value, value_len) < 0 || buf_append_str(head, "\r\n") < 0)
        return RESPONSE_HEADER_NO_MEMORY;
    return RESPONSE_HEADER_OK;
}

static int append_content_length(struct buf *head, long long length)
{
    char line[48];
    int n = snprintf(line, sizeof(line), "Content-Length: %lld\r\n", length);
    return buf_append(head, line, (size_t)n);
}

/* Chooses the framing now that the first body bytes (or the end) are
 * known, and writes its header field. */
static int add_framing(struct response_state *resp, struct buf *head,
                       const struct response_context *ctx, long long known_length)
{
    if (!resp->no_body && resp->content_length < 0) {
        if (known_length >= 0) {
            resp->content_length = known_length;
            return append_content_length(head, known_length);
        }
        if (ctx->http_minor == 1 && ctx->chunked_allowed) {
            resp->chunked = 1;
            return buf_append_str(head, "Transfer-Encoding: chunked\r\n");
        }
        resp->close_delimited = 1;
    } else if (resp->head_request && resp->content_length < 0 && known_length > 0 &&
               resp->status >= 200 && resp->status != 204 && resp->status != 304) {
        /* RFC 9110 §9.3.2: HEAD gets the header fields GET would have,
         * including a length the server worked out (an empty result says
         * nothing about GET's length, so it adds none). */
        return append_content_length(head, known_length);
    }
    return 0;
}

/* Completes the head with Date, Server, framing and Connection. */
static int complete_head(struct response_state *resp, struct buf *head,
                         const struct response_context *ctx, long long known_length)
{
    if (!resp->app_sent_date &&
        (buf_append_str(head, "Date: ") < 0 || buf_append(head, ctx->date, SYNTAX_DATE_LEN) < 0 ||
         buf_append_str(head, "\r\n") < 0))
        return -1;
    if (!resp->app_sent_server && buf_append_str(head, "Server: pyruvate\r\n") < 0)
        return -1;
    if (add_framing(resp, head, ctx, known_length) < 0)
        return -1;
    /* A 1xx cannot be a final response (WSGI has no interim ones): the
     * client would take the next response for this request's, so the
     * connection ends here. */
    if (resp->status < 200)
        resp->must_close = 1;
    if (!ctx->keep_alive || resp->app_wants_close || resp->close_delimited ||
        ctx->last_on_connection)
        resp->must_close = 1;
    if (resp->must_close) {
        if (buf_append_str(head, "Connection: close\r\n") < 0)
            return -1;
    } else if (ctx->http_minor == 0 && buf_append_str(head, "Connection: keep-alive\r\n") < 0) {
        return -1;
    }
    return buf_append_str(head, "\r\n");
}

/* ---- the body --------------------------------------------------------- */

/* Cuts len to what the response's Content-Length still allows. */
static size_t allowed_length(const struct response_state *resp, size_t len)
{
    if (resp->no_body)
        return 0;
    if (resp->content_length < 0)
        return len;
    unsigned long long left = (unsigned long long)resp->content_length - resp->body_sent;
    if (len > left) {
        log_write(LOG_WARNING,
                  "application sent more than its Content-Length of %lld; "
                  "extra bytes dropped",
                  resp->content_length);
        len = (size_t)left;
    }
    return len;
}

int response_frame(struct response_state *resp, struct buf *head, struct response_out *out,
                   const struct response_context *ctx, const char *data, int file_fd,
                   off_t file_offset, size_t len, long long known)
{
    if (resp->failed)
        return -1;
    *out = (struct response_out){.file_fd = -1};
    if (!resp->headers_sent) {
        if (complete_head(resp, head, ctx, known) < 0)
            goto fail;
        resp->headers_sent = 1;
        resp->sent_status = resp->status;
    } else {
        head->len = 0; /* the head went out with earlier bytes */
    }
    len = allowed_length(resp, len);
    if (len > 0) {
        if (resp->chunked) {
            char chunk_header[24];
            if (buf_append(head, chunk_header, response_chunk_header(len, chunk_header)) < 0)
                goto fail;
            memcpy(out->after, "\r\n", 2);
            out->after_len = 2;
        }
        if (data) {
            out->data = data;
            out->data_len = len;
        } else {
            out->file_fd = file_fd;
            out->file_offset = file_offset;
            out->file_len = len;
        }
        resp->body_sent += len;
    }
    out->framing = head->data;
    out->framing_len = head->len;
    return 0;
fail:
    resp->failed = resp->must_close = 1;
    return -1;
}

int response_finish(struct response_state *resp, struct response_out *out)
{
    if (resp->chunked) {
        *out = (struct response_out){.framing = "0\r\n\r\n", .framing_len = 5, .file_fd = -1};
        return 1;
    }
    if (!resp->no_body && resp->content_length >= 0 &&
        resp->body_sent < (unsigned long long)resp->content_length) {
        log_write(LOG_WARNING,
                  "application sent %llu of its Content-Length of %lld bytes; "
                  "closing the connection",
                  resp->body_sent, resp->content_length);
        resp->must_close = 1;
    }
    return 0;
}

/* ---- writing ---------------------------------------------------------- */

/* Waits until fd is writable. Returns 0, or -1 with errno ETIMEDOUT. */
static int wait_writable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n > 0)
            return 0;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

/* One sendmsg of what is left. Returns bytes written or -1 with errno. */
static ssize_t send_iov(int fd, struct iovec *iov, int iovcnt, int flags)
{
    struct msghdr msg = {.msg_iov = iov,
                         .msg_iovlen = (size_t)(iovcnt > IOV_MAX ? IOV_MAX : iovcnt)};
    ssize_t n;
    do
        n = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
    while (n < 0 && errno == EINTR);
    return n;
}

int response_out_pending(const struct response_out *out)
{
    return out->framing_len || out->data_len || out->file_len || out->after_len;
}

size_t response_out_left(const struct response_out *out)
{
    return out->framing_len + out->data_len + out->file_len + out->after_len;
}

/* Drops n sent bytes from the memory parts of out, in sending order. */
static void out_consume(struct response_out *out, size_t n)
{
    size_t part = n < out->framing_len ? n : out->framing_len;
    out->framing += part;
    out->framing_len -= part;
    n -= part;
    part = n < out->data_len ? n : out->data_len;
    out->data += part;
    out->data_len -= part;
    n -= part;
    /* The trailer is only sent once the file part is done (response_out_try). */
    part = n < out->after_len ? n : out->after_len;
    if (part > 0 && part <= sizeof(out->after)) {
        memmove(out->after, &out->after[part], out->after_len - part);
        out->after_len -= part;
    }
}

int response_out_try(int fd, struct response_out *out)
{
    while (response_out_pending(out)) {
        struct iovec iov[3];
        int count = 0;
        if (out->framing_len)
            iov[count++] = (struct iovec){(void *)out->framing, out->framing_len};
        if (out->data_len)
            iov[count++] = (struct iovec){(void *)out->data, out->data_len};
        /* The file's bytes come between the framing and the trailer. */
        if (out->after_len && out->file_len == 0)
            iov[count++] = (struct iovec){out->after, out->after_len};
        ssize_t n;
        if (count > 0) {
            n = send_iov(fd, iov, count, MSG_DONTWAIT);
        } else {
            do
                n = sendfile(fd, out->file_fd, &out->file_offset, out->file_len);
            while (n < 0 && errno == EINTR);
            if (n == 0) {
                errno = ENODATA; /* the file is shorter than announced */
                return -1;
            }
        }
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
        if (count > 0)
            out_consume(out, (size_t)n);
        else
            out->file_len -= (size_t)n;
    }
    return 0;
}

int response_out_send(int fd, struct response_out *out, int wait_ms, int64_t deadline_ms)
{
    for (;;) {
        int rc = response_out_try(fd, out);
        if (rc <= 0)
            return rc;
        int wait = wait_ms;
        if (deadline_ms) {
            int64_t left = deadline_ms - monotonic_ms();
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            if (left < wait)
                wait = (int)left;
        }
        if (wait_writable(fd, wait) < 0)
            return -1;
    }
}

/* Response helpers that need no Python: validation, framing, writing. */
#include "pyruvate/response.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include "pyruvate/common.h"

/* RFC 9110 §5.6.2 tchar. */
static int is_token_char(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return 1;
    if (c >= 'A' && c <= 'Z')
        return 1;
    if (c >= '0' && c <= '9')
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

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
        if (!is_token_char((unsigned char)name[i]))
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

void response_http_date(time_t t, char out[RESPONSE_DATE_LEN + 1])
{
    /* Fixed English names: strftime would follow the process locale. */
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    /* Fields are filled digit by digit: the values are bounded by gmtime_r,
     * which the compiler cannot see through a format string. */
    char *p = out;
    memcpy(p, days[tm.tm_wday % 7], 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    *p++ = (char)('0' + tm.tm_mday / 10);
    *p++ = (char)('0' + tm.tm_mday % 10);
    *p++ = ' ';
    memcpy(p, months[tm.tm_mon % 12], 3);
    p += 3;
    *p++ = ' ';
    int year = (tm.tm_year + 1900) % 10000;
    *p++ = (char)('0' + year / 1000);
    *p++ = (char)('0' + year / 100 % 10);
    *p++ = (char)('0' + year / 10 % 10);
    *p++ = (char)('0' + year % 10);
    const int clock[3] = {tm.tm_hour, tm.tm_min, tm.tm_sec};
    for (int i = 0; i < 3; i++) {
        *p++ = i ? ':' : ' ';
        *p++ = (char)('0' + clock[i] / 10);
        *p++ = (char)('0' + clock[i] % 10);
    }
    memcpy(p, " GMT", 5);
}

size_t response_chunk_header(size_t len, char out[24])
{
    int n = snprintf(out, 24, "%zx\r\n", len);
    return (size_t)n;
}

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

/* Drops n written bytes from the front of *iov / *iovcnt. */
static void advance_iov(struct iovec **iov, int *iovcnt, size_t n)
{
    while (*iovcnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*iovcnt)--;
    }
    if (*iovcnt > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
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

int response_write_nowait(int fd, struct iovec *iov, int *iovcnt)
{
    int count = *iovcnt;
    ssize_t n = send_iov(fd, iov, count, MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
    struct iovec *rest = iov;
    advance_iov(&rest, &count, (size_t)n);
    while (count > 0 && rest->iov_len == 0) {
        rest++;
        count--;
    }
    if (count == 0)
        return 0;
    /* Move the rest to the front so the caller's array describes it. */
    memmove(iov, rest, (size_t)count * sizeof(*iov));
    *iovcnt = count;
    return 1;
}

int response_write_all(int fd, struct iovec *iov, int iovcnt, int timeout_ms)
{
    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        ssize_t n = send_iov(fd, iov, iovcnt, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_writable(fd, timeout_ms) < 0)
                    return -1;
                continue;
            }
            return -1;
        }
        advance_iov(&iov, &iovcnt, (size_t)n);
    }
    return 0;
}

int response_sendfile(int fd, int in_fd, off_t *offset, size_t count, int timeout_ms)
{
    while (count > 0) {
        ssize_t n = sendfile(fd, in_fd, offset, count);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_writable(fd, timeout_ms) < 0)
                    return -1;
                continue;
            }
            return -1;
        }
        if (n == 0) {
            errno = ENODATA;
            return -1;
        }
        count -= (size_t)n;
    }
    return 0;
}

int response_out_pending(const struct response_out *out)
{
    return out->framing_len || out->data_len || out->file_len || out->after_len;
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

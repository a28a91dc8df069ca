/* Connection lifecycle: create, read, parse, reset between requests, free. */
#include "pyruvate/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "pyruvate/http_status.h"
#include "pyruvate/log.h"
#include "pyruvate/syntax.h"

/* Read at least this much at a time so that a typical request arrives in
 * one read() call. */
enum { CONN_READ_CHUNK = 16384 };

struct conn *conn_create(int fd, const struct listener *listener, const struct sockaddr *peer,
                         socklen_t peer_len, const struct request_limits *limits)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    if (request_init(&c->request, limits) < 0)
        goto fail;
    c->fd = fd;
    c->listener = listener;
    if (peer_len > sizeof(c->peer))
        peer_len = sizeof(c->peer);
    memcpy(&c->peer, peer, peer_len);
    c->peer_len = peer_len;
    return c;
fail:
    free(c);
    close(fd);
    errno = ENOMEM;
    return NULL;
}

ssize_t conn_read(struct conn *c)
{
    if (buf_reserve(&c->in, CONN_READ_CHUNK) < 0)
        return -1;
    for (;;) {
        ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            c->in.len += (size_t)n;
            metrics_count_bytes_in(c->metrics, (uint64_t)n);
        }
        return n;
    }
}

enum request_state conn_parse(struct conn *c)
{
    return request_feed(&c->request, c->in.data, c->in.len);
}

enum request_state conn_reset_for_next_request(struct conn *c)
{
    buf_consume(&c->in, request_next(&c->request));
    c->continue_sent = 0;
    c->request_start_ms = 0;
    if (c->in.len == 0) {
        /* An idle connection keeps no buffer: thousands of them may wait. */
        buf_free(&c->in);
        return REQUEST_INCOMPLETE;
    }
    /* After a large body, the next request must not keep its capacity. */
    buf_shrink(&c->in, CONN_READ_CHUNK);
    return conn_parse(c);
}

/* The next step for the parser's verdict on what is buffered. */
static enum conn_next next_for(struct conn *c, enum request_state state)
{
    switch (state) {
    case REQUEST_COMPLETE:
        return CONN_DISPATCH;
    case REQUEST_ERROR:
        return CONN_REJECT;
    case REQUEST_INCOMPLETE:
        break;
    }
    /* The parser limits each part; this bounds what a header block that
     * never ends can make us buffer. */
    const struct request_limits *limits = c->request.limits;
    if (!c->request.headers_complete &&
        c->in.len > limits->max_target_length + limits->max_header_bytes + 8192) {
        c->request.error_status = 431;
        c->request.error_reason = "request header block too large";
        return CONN_REJECT;
    }
    return CONN_READ;
}

enum conn_next conn_next(struct conn *c, enum conn_moment moment)
{
    switch (moment) {
    case CONN_AFTER_LAST_RESPONSE:
        return c->in.len > c->request.consumed ? CONN_LINGER : CONN_CLOSE;
    case CONN_AFTER_RESPONSE:
        return next_for(c, conn_reset_for_next_request(c));
    case CONN_AFTER_READ:
        break;
    }
    return next_for(c, conn_parse(c));
}

int conn_has_unread_input(const struct conn *c)
{
    char byte;
    ssize_t n;
    do
        n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n > 0;
}

void conn_linger(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    buf_free(&c->in); /* draining does not need it */
    c->lingering = 1;
}

void conn_send_error(struct conn *c, int status)
{
    char response[512];
    size_t len = http_status_error_response(status, time(NULL), response, sizeof(response));
    if (len > 0) {
        ssize_t n;
        do
            n = send(c->fd, response, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        metrics_count_bytes_out(c->metrics, n > 0 ? (uint64_t)n : 0);
    }
    metrics_count_server_response(c->metrics, status);
    shutdown(c->fd, SHUT_WR);
}

void conn_reject(struct conn *c, int status, int access_log)
{
    if (access_log)
        conn_log_access(c, status);
    /* Draining reads into a stack buffer: what was buffered (perhaps a
     * whole body's worth) is of no use. Freed before the answer goes out,
     * so a client that has it knows the memory is back. */
    buf_free(&c->in);
    conn_send_error(c, status);
    c->lingering = 1;
}

void conn_log_access(const struct conn *c, int status)
{
    char line[LOG_MESSAGE_LEN];
    conn_access_line(c, NULL, status, 0, line, sizeof(line));
    log_write_access(line);
}

void conn_peer_strings(const struct conn *c, char *host, size_t host_size, char *port,
                       size_t port_size)
{
    host[0] = '\0';
    port[0] = '\0';
    if (c->peer.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&c->peer;
        inet_ntop(AF_INET, &in->sin_addr, host, (socklen_t)host_size);
        snprintf(port, port_size, "%u", ntohs(in->sin_port));
    } else if (c->peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&c->peer;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, (socklen_t)host_size);
        snprintf(port, port_size, "%u", ntohs(in6->sin6_port));
    }
}

void conn_access_line(const struct conn *c, const char *address, int status,
                      unsigned long long body_bytes, char *out, size_t out_size)
{
    const struct request *r = &c->request;
    char peer[64], port[16], shown_address[64];
    if (address == NULL || address[0] == '\0') {
        conn_peer_strings(c, peer, sizeof(peer), port, sizeof(port));
        address = peer[0] ? peer : "-";
    }
    /* A trusted proxy's client address is the proxy's text. */
    log_escape(shown_address, sizeof(shown_address), address, strlen(address));
    /* The request line as "METHOD target HTTP/x.y", escaped like every
     * field that comes from the client: a target may hold any byte from
     * 0x80 up, '"' and '\\' (the parser refuses control characters). */
    char request_line[320] = "-";
    if (r->method && r->target.len > 0 && c->in.data) {
        size_t n = (size_t)snprintf(request_line, sizeof(request_line), "%s ", r->method);
        if (n < sizeof(request_line) - 16)
            n += log_escape(request_line + n, sizeof(request_line) - 16 - n,
                            c->in.data + r->target.offset, r->target.len);
        snprintf(request_line + n, sizeof(request_line) - n, " HTTP/%d.%d", r->http_major,
                 r->http_minor);
    }
    char size[24] = "-";
    if (body_bytes)
        snprintf(size, sizeof(size), "%llu", body_bytes);
    double seconds =
        c->request_start_ms ? (double)(monotonic_us() - c->request_start_ms * 1000) / 1e6 : 0;
    if (seconds < 0)
        seconds = 0;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, out_size, "%s - - [%02d/%s/%04d:%02d:%02d:%02d +0000] \"%s\" %d %s %.6f",
             shown_address, tm.tm_mday, syntax_month_names[tm.tm_mon % 12], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec, request_line, status, size, seconds);
}

void conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    request_free(&c->request);
    buf_free(&c->in);
    free(c);
}

enum metrics_endpoint conn_endpoint(const struct conn *c,
                                    const char *const paths[METRICS_ENDPOINT_COUNT])
{
    if (paths[METRICS_HEALTH] == NULL && paths[METRICS_EXPOSITION] == NULL)
        return METRICS_NO_ENDPOINT;
    const struct request *r = &c->request;
    return metrics_endpoint_of(paths, c->in.data + r->target.offset, r->target.len);
}

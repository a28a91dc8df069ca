/* Connection lifecycle: create, read, parse, reset between requests, free. */
#include "pyruvate/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
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

/* Connections come from slabs of their own rather than from the heap that
 * request buffers churn through: thousands of idle ones then lie side by
 * side, instead of each pinning pages among the holes that freed buffers
 * leave. A freed connection is kept for the next one; slabs are never
 * returned. Requests are recycled too (see spare_request). Sanitizer
 * builds take connections from malloc, to keep catching use after free. */
#if defined(__SANITIZE_ADDRESS__)
#define CONN_RECYCLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONN_RECYCLE 0
#endif
#endif
#ifndef CONN_RECYCLE
#define CONN_RECYCLE 1
#endif

/* About 44 KiB (255 connections of 176 bytes). */
struct conn_slab {
    struct conn_slab *next; /* every slab stays on this list (for leak checkers too) */
    struct conn conns[255];
};

static pthread_mutex_t spare_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct conn_slab *slabs;  /* under spare_mutex */
static struct conn *spare_conns; /* linked by next, under spare_mutex */

static struct conn *conn_alloc(void)
{
    if (!CONN_RECYCLE)
        return calloc(1, sizeof(struct conn));
    pthread_mutex_lock(&spare_mutex);
    struct conn_slab *slab = spare_conns ? NULL : malloc(sizeof(*slab));
    if (slab) {
        slab->next = slabs;
        slabs = slab;
        for (size_t i = 0; i < sizeof(slab->conns) / sizeof(slab->conns[0]); i++) {
            slab->conns[i].next = spare_conns;
            spare_conns = &slab->conns[i];
        }
    }
    struct conn *c = spare_conns;
    if (c)
        spare_conns = c->next;
    pthread_mutex_unlock(&spare_mutex);
    if (c)
        memset(c, 0, sizeof(*c));
    return c;
}

static void conn_release(struct conn *c)
{
    if (!CONN_RECYCLE) {
        free(c);
        return;
    }
    pthread_mutex_lock(&spare_mutex);
    c->next = spare_conns;
    spare_conns = c;
    pthread_mutex_unlock(&spare_mutex);
}

/* The request of a connection that went back to wait, kept by the thread
 * that let it go (the acceptor) for the next connection that speaks, which
 * saves making and freeing one per request. It was reset for a next
 * request (request_next), and such a request serves any connection. */
static _Thread_local struct request *spare_request;

static struct request *new_request(const struct request_limits *limits)
{
    struct request *r = spare_request;
    if (r != NULL && r->limits == limits) {
        spare_request = NULL;
        return r;
    }
    return request_create(limits);
}

void conn_drop_spare(void)
{
    request_destroy(spare_request);
    spare_request = NULL;
}

struct conn *conn_create(int fd, const struct listener *listener, const struct sockaddr *peer,
                         socklen_t peer_len, const struct request_limits *limits)
{
    struct conn *c = conn_alloc();
    if (c == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    c->fd = fd;
    c->listener = listener;
    c->limits = limits;
    /* A Unix socket's path is cut off: only its family is looked at. */
    memcpy(&c->peer, peer, peer_len < sizeof(c->peer) ? peer_len : sizeof(c->peer));
    return c;
}

/* The first read of a request goes to the stack and is kept in a buffer of
 * just its size: most requests arrive whole in one read, and many clients
 * sending at once then leave no 16 KiB holes among the connections that
 * stay (idle ones would pin those pages). */
static ssize_t read_first(struct conn *c)
{
    char scratch[CONN_READ_CHUNK];
    ssize_t n;
    do
        n = read(c->fd, scratch, sizeof(scratch));
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n;
    char *data = malloc((size_t)n);
    if (data == NULL || (c->request == NULL && (c->request = new_request(c->limits)) == NULL)) {
        free(data);
        errno = ENOMEM;
        return -1;
    }
    memcpy(data, scratch, (size_t)n);
    c->in = (struct buf){.data = data, .len = (size_t)n, .cap = (size_t)n};
    metrics_count_bytes_in(c->metrics, (uint64_t)n);
    return n;
}

ssize_t conn_read(struct conn *c)
{
    if (c->in.data == NULL)
        return read_first(c);
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
    if (c->request == NULL) /* nothing read yet */
        return REQUEST_INCOMPLETE;
    return request_feed(c->request, c->in.data, c->in.len);
}

/* Frees what only a request in progress needs. */
static void release_request(struct conn *c)
{
    buf_free(&c->in);
    request_destroy(c->request);
    c->request = NULL;
}

/* RFC 9112 §2.2: empty lines before a request line are ignored. Those a
 * client sends after its request (a stray CRLF, with the request or on its
 * own) must not keep c busy reading a request that never comes: it would
 * hold its buffers, miss the idle set and be answered 408, or hold up a
 * drain. Drops the leading ones (all: only when nothing else is buffered).
 * Returns 1 when that left the buffer empty. */
static int drop_blank_lines(struct conn *c, int only_if_all)
{
    size_t blank = 0;
    while (blank < c->in.len && (c->in.data[blank] == '\r' || c->in.data[blank] == '\n'))
        blank++;
    if (blank == 0 || (only_if_all && blank < c->in.len))
        return 0;
    buf_consume(&c->in, blank);
    return c->in.len == 0;
}

enum request_state conn_reset_for_next_request(struct conn *c)
{
    c->continue_sent = 0;
    c->request_start_ms = 0;
    if (c->request == NULL)
        return REQUEST_INCOMPLETE;
    buf_consume(&c->in, request_next(c->request));
    drop_blank_lines(c, 0);
    /* After a large body, the next request must not keep its capacity. */
    buf_shrink(&c->in, CONN_READ_CHUNK);
    /* With nothing buffered, both stay for a next request read at once;
     * conn_release_if_idle frees them when c goes back to wait. */
    return c->in.len > 0 ? conn_parse(c) : REQUEST_INCOMPLETE;
}

void conn_release_if_idle(struct conn *c)
{
    if (c->in.len > 0)
        return;
    /* With nothing buffered, its request was reset by
     * conn_reset_for_next_request (or there is none). */
    /* Kept in sanitizer builds too: one object, whose reuse is worth
     * checking there (unlike the slabs, it hides no use after free of
     * another connection). */
    if (spare_request == NULL) {
        spare_request = c->request;
        c->request = NULL;
    }
    release_request(c);
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
    const struct request_limits *limits = c->limits;
    struct request *r = c->request;
    if (r && !r->headers_complete &&
        c->in.len > limits->max_target_length + limits->max_header_bytes + 8192) {
        r->error_status = 431;
        r->error_reason = "request header block too large";
        return CONN_REJECT;
    }
    return CONN_READ;
}

enum conn_next conn_next(struct conn *c, enum conn_moment moment)
{
    switch (moment) {
    case CONN_AFTER_LAST_RESPONSE:
        return c->request && c->in.len > c->request->consumed ? CONN_LINGER : CONN_CLOSE;
    case CONN_AFTER_RESPONSE:
        return next_for(c, conn_reset_for_next_request(c));
    case CONN_AFTER_READ:
        /* Only empty lines so far (none was given to the parser): wait. */
        if (drop_blank_lines(c, 1))
            return CONN_READ;
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
    release_request(c); /* draining needs neither */
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
    release_request(c);
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
    if (c->peer.sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &c->peer.in.sin_addr, host, (socklen_t)host_size);
        snprintf(port, port_size, "%u", ntohs(c->peer.in.sin_port));
    } else if (c->peer.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &c->peer.in6.sin6_addr, host, (socklen_t)host_size);
        snprintf(port, port_size, "%u", ntohs(c->peer.in6.sin6_port));
    }
}

void conn_access_line(const struct conn *c, const char *address, int status,
                      unsigned long long body_bytes, char *out, size_t out_size)
{
    const struct request *r = c->request; /* NULL: no request read */
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
    if (r && r->method && r->target.len > 0 && c->in.data) {
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
    release_request(c);
    conn_release(c);
}

enum metrics_endpoint conn_endpoint(const struct conn *c,
                                    const char *const paths[METRICS_ENDPOINT_COUNT])
{
    if (paths[METRICS_HEALTH] == NULL && paths[METRICS_EXPOSITION] == NULL)
        return METRICS_NO_ENDPOINT;
    const struct request *r = c->request;
    return metrics_endpoint_of(paths, c->in.data + r->target.offset, r->target.len);
}

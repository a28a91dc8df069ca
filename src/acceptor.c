/* The acceptor thread: one poll() set holding the wake eventfd, the
 * listening sockets and every connection that is between requests.
 *
 * Poll set layout: slot 0 is the wake fd, slots 1..L the listeners, then
 * connections. Removal swaps the last slot in, so the connection loop walks
 * the set backwards and never sees a slot twice.
 *
 * Lock order: returned_mutex, then pool and log locks (never the reverse). */
#include "pyruvate/acceptor.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pyruvate/handoff.h"
#include "pyruvate/http_status.h"
#include "pyruvate/idle.h"
#include "pyruvate/log.h"
#include "pyruvate/pollset.h"
#include "pyruvate/wakeup.h"

/* How often idle and slow connections are checked against their deadlines. */
enum { SWEEP_INTERVAL_MS = 250 };

/* A keep-alive connection quiet for this long moves to the idle set, so
 * that the acceptor's poll() only watches connections in use. */
enum { IDLE_AFTER_MS = 250 };

struct acceptor {
    struct acceptor_config config;
    pthread_t thread;
    int wake_fd;
    atomic_int stopping;
    atomic_uint open_connections;
    atomic_uint idle_connections; /* held by the idle set */
    struct idle_set *idle;
    /* The acceptor sleeps in poll() (or is about to): only then does a
     * give-back need the wake fd. Paired with the check of `returned`
     * before poll(), so that one of the two sides always sees the other. */
    atomic_int polling;

    /* acceptor thread only */
    struct pollset polls; /* the wake fd, the listeners, then connections */
    unsigned first_conn;
    int64_t next_sweep_ms;
    int listeners_paused; /* after EMFILE: resume at the next wake-up or sweep */
    int64_t last_queue_warning_ms;
    int64_t last_eviction_warning_ms;
    int64_t last_accept_warning_ms;
    struct buf endpoint_body, endpoint_response; /* kept between endpoint answers */

    /* connections coming back from workers */
    pthread_mutex_t returned_mutex;
    struct conn *returned;
    int stopped; /* under returned_mutex: no more give-backs accepted */

    /* the drain at shutdown, under returned_mutex */
    pthread_cond_t drain_started;
    int drain_requested;
    int drain_grace_ms;
    int64_t drain_start_ms; /* set by the acceptor thread once the listeners are let go */
};

static void *acceptor_main(void *arg);
static int poll_set_add(struct acceptor *a, int fd, struct conn *c);
static void poll_set_remove(struct acceptor *a, unsigned index);
static int accept_ready(struct acceptor *a, const struct listener *l, int64_t now);
static void connection_ready(struct acceptor *a, struct conn *c, int64_t now);
static void take_returned(struct acceptor *a, int64_t now);
static void advance(struct acceptor *a, struct conn *c, int64_t now);
static void sweep(struct acceptor *a, int64_t now);
static void wake(struct acceptor *a);
static void idle_woke(struct conn *c, void *ctx);
static void idle_expired(struct conn *c, void *ctx);
static void idle_evicted(void *ctx);

static void give_back_to(struct conn *c, void *acceptor)
{
    acceptor_give_back(acceptor, c);
}

static void close_for(struct conn *c, void *acceptor)
{
    acceptor_close(acceptor, c);
}

static void wake_for_handoff(void *acceptor)
{
    wake(acceptor);
}

/* Connections taken out of the handoff set wait here like any other. */
static void give_back_list(struct acceptor *a, struct conn *list)
{
    while (list) {
        struct conn *c = list;
        list = c->next;
        c->next = NULL;
        acceptor_give_back(a, c);
    }
}

struct acceptor *acceptor_start(const struct acceptor_config *config,
                                struct conn_return *conn_return, char err[PYR_ERR_LEN])
{
    struct acceptor *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, PYR_ERR_LEN, "out of memory creating the acceptor");
        return NULL;
    }
    a->config = *config;
    a->wake_fd = wakeup_open();
    pthread_mutex_init(&a->returned_mutex, NULL);
    pthread_cond_init(&a->drain_started, NULL);
    if (a->wake_fd < 0 || poll_set_add(a, a->wake_fd, NULL) < 0)
        goto fail;
    for (unsigned i = 0; i < config->listener_count; i++)
        if (poll_set_add(a, config->listeners[i].fd, NULL) < 0)
            goto fail;
    a->first_conn = a->polls.nfds;
    struct idle_callbacks idle_callbacks = {
        .wake = idle_woke, .expire = idle_expired, .evicted = idle_evicted, .ctx = a};
    a->idle = idle_start(&idle_callbacks, err);
    if (a->idle == NULL)
        goto fail_said; /* err says why */
    *conn_return = (struct conn_return){.give_back = give_back_to, .close = close_for, .ctx = a};
    if (config->handoff)
        handoff_set_waker(config->handoff, wake_for_handoff, a);
    int rc = pthread_create(&a->thread, NULL, acceptor_main, a);
    if (rc != 0) {
        idle_stop(a->idle);
        errno = rc;
        goto fail;
    }
    return a;
fail:
    snprintf(err, PYR_ERR_LEN, "cannot start the acceptor (errno %d)", errno);
fail_said:
    if (a->wake_fd >= 0)
        close(a->wake_fd);
    pthread_mutex_destroy(&a->returned_mutex);
    pthread_cond_destroy(&a->drain_started);
    pollset_free(&a->polls);
    free(a);
    return NULL;
}

void acceptor_give_back(struct acceptor *a, struct conn *c)
{
    pthread_mutex_lock(&a->returned_mutex);
    if (a->stopped) {
        pthread_mutex_unlock(&a->returned_mutex);
        acceptor_close(a, c);
        return;
    }
    int was_empty = a->returned == NULL;
    c->next = a->returned;
    a->returned = c;
    pthread_mutex_unlock(&a->returned_mutex);
    /* The acceptor empties the whole list per round, so one wake-up is
     * enough; an acceptor that is not polling looks at the list before it
     * polls again. */
    if (was_empty && atomic_load(&a->polling))
        wake(a);
}

void acceptor_close(struct acceptor *a, struct conn *c)
{
    conn_free(c);
    atomic_fetch_sub(&a->open_connections, 1);
}

void acceptor_snapshot(struct acceptor *a, struct metrics_snapshot *s)
{
    *s = (struct metrics_snapshot){0};
    if (a->config.metrics)
        metrics_read(a->config.metrics, s);
    s->queue_depth = pool_queued(a->config.pool);
    pool_threads(a->config.pool, &s->busy_workers, &s->idle_workers);
    s->open_connections = atomic_load(&a->open_connections);
    s->idle_connections = atomic_load(&a->idle_connections);
    s->draining = a->config.draining && atomic_load(a->config.draining);
}

void acceptor_drain(struct acceptor *a, int idle_grace_ms)
{
    pthread_mutex_lock(&a->returned_mutex);
    a->drain_requested = 1;
    a->drain_grace_ms = idle_grace_ms;
    pthread_mutex_unlock(&a->returned_mutex);
    wake(a);
    pthread_mutex_lock(&a->returned_mutex);
    while (a->drain_start_ms == 0)
        pthread_cond_wait(&a->drain_started, &a->returned_mutex);
    pthread_mutex_unlock(&a->returned_mutex);
}

unsigned acceptor_open_connections(struct acceptor *a)
{
    return atomic_load(&a->open_connections);
}

void acceptor_stop(struct acceptor *a)
{
    atomic_store(&a->stopping, 1);
    wake(a);
    pthread_join(a->thread, NULL);
    /* Give-backs are refused now, so the idle set closes what it holds. */
    idle_stop(a->idle);
    a->idle = NULL;
}

/* Idle set callbacks, on its thread. */
static void idle_woke(struct conn *c, void *ctx)
{
    struct acceptor *a = ctx;
    atomic_fetch_sub(&a->idle_connections, 1);
    acceptor_give_back(a, c);
}

static void idle_expired(struct conn *c, void *ctx)
{
    struct acceptor *a = ctx;
    atomic_fetch_sub(&a->idle_connections, 1);
    acceptor_close(a, c);
}

/* Descriptors were freed: paused listeners may accept again. */
static void idle_evicted(void *ctx)
{
    wake(ctx);
}

void acceptor_destroy(struct acceptor *a)
{
    if (a == NULL)
        return;
    close(a->wake_fd);
    pthread_mutex_destroy(&a->returned_mutex);
    pthread_cond_destroy(&a->drain_started);
    pollset_free(&a->polls);
    buf_free(&a->endpoint_body);
    buf_free(&a->endpoint_response);
    free(a);
}

static void wake(struct acceptor *a)
{
    wakeup_signal(a->wake_fd);
}

static int poll_set_add(struct acceptor *a, int fd, struct conn *c)
{
    int slot = pollset_add(&a->polls, fd, POLLIN, c);
    if (slot < 0)
        return -1;
    if (c)
        c->poll_index = (unsigned)slot;
    return 0;
}

static void poll_set_remove(struct acceptor *a, unsigned index)
{
    pollset_take(&a->polls, index)->poll_index = 0;
    if (index < a->polls.nfds) /* the last slot moved here */
        a->polls.slots[index].conn->poll_index = index;
}

/* Removes c from the poll set (if there) and closes it. */
static void drop(struct acceptor *a, struct conn *c)
{
    if (c->poll_index)
        poll_set_remove(a, c->poll_index);
    acceptor_close(a, c);
}

/* Answers with an error the server decided on (conn_reject), then keeps
 * reading and discarding until the linger deadline. */
static void reject(struct acceptor *a, struct conn *c, int status, int64_t now)
{
    log_write(LOG_DEBUG, "answering %d to fd %d: %s", status, c->fd,
              c->request->error_reason ? c->request->error_reason : "");
    conn_reject(c, status, a->config.access_log);
    c->deadline_ms = now + a->config.linger_timeout_ms;
    if (!c->poll_index && poll_set_add(a, c->fd, c) < 0)
        acceptor_close(a, c);
}

/* Answers 503 to a connection past max_connections and closes it at once:
 * lingering would hold a descriptor beyond the cap, taken from those kept
 * for the application, for every connection of a flood. What the client
 * has sent so far is read first, so that the close sends FIN, not RST. */
static void refuse_over_cap(struct acceptor *a, struct conn *c)
{
    log_write(LOG_DEBUG, "answering 503 to fd %d: too many connections", c->fd);
    if (a->config.access_log)
        conn_log_access(c, 503);
    conn_send_error(c, 503);
    char discard[4096];
    for (int i = 0; i < 16 && read(c->fd, discard, sizeof(discard)) > 0; i++)
        ;
    acceptor_close(a, c);
}

/* Pyruvate's queue monitor: a warning (at most one a second) when the
 * requests waiting for a worker reach the threshold. */
static void warn_if_queue_long(struct acceptor *a, int64_t now)
{
    unsigned queued = pool_queued(a->config.pool);
    if (queued >= a->config.queue_warn_threshold && now - a->last_queue_warning_ms >= 1000) {
        log_write(LOG_WARNING, "%u requests are waiting for a worker", queued);
        a->last_queue_warning_ms = now;
    }
}

static void dispatch(struct acceptor *a, struct conn *c, int64_t now)
{
    if (c->poll_index)
        poll_set_remove(a, c->poll_index);
    c->queued_us = monotonic_us();
    if (pool_submit(a->config.pool, c) == 0) {
        if (a->config.queue_warn_threshold)
            warn_if_queue_long(a, now);
        return;
    }
    if (errno == EAGAIN) {
        log_write(LOG_WARNING, "all workers busy and the request queue is full: answering 503");
        reject(a, c, 503, now);
    } else {
        acceptor_close(a, c);
    }
}

/* The body of an endpoint's answer, in a->endpoint_body. NULL on ENOMEM. */
static const char *endpoint_body(struct acceptor *a, enum metrics_endpoint endpoint,
                                 const struct metrics_answer *answer, size_t *len)
{
    const char *text = answer->status == 405   ? "method not allowed\n"
                       : answer->status == 503 ? metrics_health_draining
                                               : metrics_health_ok;
    a->endpoint_body.len = 0;
    if (endpoint == METRICS_EXPOSITION && answer->status == 200) {
        struct metrics_snapshot snapshot;
        acceptor_snapshot(a, &snapshot);
        if (metrics_format(&snapshot, &a->endpoint_body) < 0)
            return NULL;
    } else if (buf_append_str(&a->endpoint_body, text) < 0) {
        return NULL;
    }
    *len = a->endpoint_body.len;
    return a->endpoint_body.data;
}

/* Answers a health or metrics request here, without a worker or the GIL,
 * so that an application whose workers are all stuck shows as busy, not
 * as down. The answer is small: what the socket does not take at once
 * ends the connection rather than stall the poll loop. Returns the
 * connection's next step. */
static enum conn_next answer_endpoint(struct acceptor *a, struct conn *c,
                                      enum metrics_endpoint endpoint, int64_t now)
{
    const struct request *r = c->request;
    int draining = a->config.draining && atomic_load(a->config.draining);
    int last = a->config.max_reuse_count && c->requests_served + 1 >= a->config.max_reuse_count;
    /* Requests a client pipelined behind this one were taken in: answered
     * during a drain too (the last of them says close). */
    int pipelined = c->in.len > c->request->consumed;
    struct metrics_answer answer =
        metrics_decide(endpoint, r->method, draining, r->keep_alive && !last, pipelined);
    int exposition = endpoint == METRICS_EXPOSITION && answer.status == 200;
    int head = strcmp(r->method, "HEAD") == 0;
    size_t body_len = 0;
    const char *body = endpoint_body(a, endpoint, &answer, &body_len);
    a->endpoint_response.len = 0;
    if (body == NULL ||
        metrics_response(&a->endpoint_response, &answer, head, r->http_minor,
                         exposition ? metrics_content_type : "text/plain", body, body_len) < 0)
        return CONN_CLOSE;
    if (a->config.access_log) {
        char line[LOG_MESSAGE_LEN];
        conn_access_line(c, NULL, answer.status, head ? 0 : body_len, line, sizeof(line));
        log_write_access(line);
    }
    ssize_t n;
    do
        n = send(c->fd, a->endpoint_response.data, a->endpoint_response.len,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    metrics_count_bytes_out(a->config.metrics, n > 0 ? (uint64_t)n : 0);
    metrics_count_endpoint(a->config.metrics, endpoint);
    if (n < 0 || (size_t)n < a->endpoint_response.len) {
        log_write(LOG_DEBUG, "fd %d did not take the %s answer at once: closing", c->fd,
                  endpoint == METRICS_HEALTH ? "health" : "metrics");
        return CONN_CLOSE;
    }
    c->requests_served++;
    if (answer.closing)
        return conn_next(c, CONN_AFTER_LAST_RESPONSE);
    enum conn_next next = conn_next(c, CONN_AFTER_RESPONSE);
    if (c->in.len > 0) {
        c->request_start_ms = now; /* part of the next request is here */
        c->deadline_ms = now + a->config.request_timeout_ms;
    } else {
        /* Waiting now, like a connection a worker gave back: it keeps
         * neither its parser nor its buffer (take_returned does the same). */
        conn_release_if_idle(c);
        c->idle_since_ms = now;
        c->deadline_ms = now + a->config.keepalive_timeout_ms;
    }
    return next;
}

/* Parses what is buffered and moves the connection on: to the pool when a
 * request is complete, to an error response when it is bad. Health and
 * metrics requests are answered here, and so are any that a keep-alive
 * client pipelined behind one (bounded by the bytes buffered). */
static void advance(struct acceptor *a, struct conn *c, int64_t now)
{
    enum conn_next next = conn_next(c, CONN_AFTER_READ);
    enum metrics_endpoint endpoint;
    while (next == CONN_DISPATCH &&
           (endpoint = conn_endpoint(c, a->config.endpoint_paths)) != METRICS_NO_ENDPOINT)
        next = answer_endpoint(a, c, endpoint, now);
    switch (next) {
    case CONN_DISPATCH:
        dispatch(a, c, now);
        return;
    case CONN_REJECT:
        reject(a, c, c->request->error_status, now);
        return;
    case CONN_LINGER:
        conn_linger(c);
        c->deadline_ms = now + a->config.linger_timeout_ms;
        return;
    case CONN_CLOSE:
        drop(a, c);
        return;
    case CONN_READ:
        break;
    }
    if (c->in.len == 0 && c->request_start_ms != 0) {
        /* What came were empty lines (conn_next dropped them): c waits
         * for a request again, under the wait it had before they came. */
        c->request_start_ms = 0;
        c->idle_since_ms = now;
        c->deadline_ms = now + (c->requests_served ? a->config.keepalive_timeout_ms
                                                   : a->config.header_timeout_ms);
        conn_release_if_idle(c);
        return;
    }
    const struct request *r = c->request;
    if (r && r->expect_continue && !c->continue_sent && request_wants_body(r)) {
        /* RFC 9110 §10.1.1: the client waits for this before the body. */
        ssize_t sent = send(c->fd, http_status_continue, strlen(http_status_continue),
                            MSG_NOSIGNAL | MSG_DONTWAIT);
        metrics_count_bytes_out(c->metrics, sent > 0 ? (uint64_t)sent : 0);
        c->continue_sent = 1;
    }
}

/* Makes room for one more connection under descriptor pressure by closing
 * the connection that has been idle longest (no request in progress: a
 * keep-alive connection between requests, or one that has not sent a byte
 * yet), as nginx does. The oldest are in the idle set, which closes one
 * asynchronously; else the oldest quiet one of ours goes at once.
 * Returns 1 when one was closed now, 0 when one will be closed shortly, -1
 * when no connection is idle. */
static int evict_idle(struct acceptor *a, int64_t now)
{
    int rc = -1;
    if (idle_evict(a->idle) == 0) {
        rc = 0;
    } else {
        /* Bounded: each round reads one connection, which is then no
         * longer idle (or is gone). */
        for (unsigned round = a->polls.nfds; rc < 0 && round-- > 0;) {
            struct conn *oldest = NULL;
            for (unsigned i = a->first_conn; i < a->polls.nfds; i++) {
                struct conn *c = a->polls.slots[i].conn;
                if (c->idle_since_ms && !c->lingering && c->in.len == 0 &&
                    (oldest == NULL || c->idle_since_ms < oldest->idle_since_ms))
                    oldest = c;
            }
            if (oldest == NULL)
                break;
            if (conn_has_unread_input(oldest)) {
                /* Its request came in this very poll round: read it
                 * rather than close a connection that just spoke. */
                connection_ready(a, oldest, now);
                continue;
            }
            log_write(LOG_DEBUG, "closing idle connection fd %d to make room", oldest->fd);
            drop(a, oldest);
            rc = 1;
        }
    }
    if (rc >= 0 && now - a->last_eviction_warning_ms >= 1000) {
        log_write(LOG_WARNING, "out of connections or file descriptors: closing the "
                               "longest idle connections to make room");
        a->last_eviction_warning_ms = now;
    }
    return rc;
}

static void pause_listeners(struct acceptor *a, int paused)
{
    for (unsigned s = 1; s < a->first_conn; s++)
        a->polls.fds[s].events = paused ? 0 : POLLIN;
    a->listeners_paused = paused;
}

static void connection_ready(struct acceptor *a, struct conn *c, int64_t now)
{
    if (c->lingering) {
        char discard[4096];
        ssize_t n;
        while ((n = read(c->fd, discard, sizeof(discard))) > 0)
            ;
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            drop(a, c);
        return;
    }
    ssize_t n = conn_read(c);
    if (n == 0) {
        drop(a, c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            drop(a, c);
        return;
    }
    c->idle_since_ms = 0;
    if (c->request_start_ms == 0) {
        c->request_start_ms = now;
        c->deadline_ms = now + a->config.request_timeout_ms;
    }
    advance(a, c, now);
}

/* Accepts what l's backlog holds, at most 64 connections. Returns 1 when
 * more may be waiting, 0 when the backlog is empty (or cannot be taken). */
static int accept_ready(struct acceptor *a, const struct listener *l, int64_t now)
{
    /* Bounded, so one busy listener cannot starve the connections. */
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int error = errno;
            if (error == EINTR || error == ECONNABORTED)
                continue;
            int evicted = error == EMFILE || error == ENFILE ? evict_idle(a, now) : -1;
            if (evicted == 1)
                continue;
            if (evicted == 0 || error == EMFILE || error == ENFILE || error == ENOBUFS ||
                error == ENOMEM) {
                /* Stop polling the listeners until an eviction is done or
                 * the next sweep, instead of spinning on a ready backlog. */
                if (evicted < 0 && now - a->last_accept_warning_ms >= 1000) {
                    log_write(LOG_WARNING, "cannot accept: out of file descriptors or memory");
                    a->last_accept_warning_ms = now;
                }
                pause_listeners(a, 1);
            }
            return 0;
        }
        if (l->family != AF_UNIX) {
            int on = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        }
        unsigned open = atomic_fetch_add(&a->open_connections, 1) + 1;
        struct conn *c = conn_create(fd, l, (struct sockaddr *)&peer, peer_len, a->config.limits);
        if (c == NULL) {
            atomic_fetch_sub(&a->open_connections, 1);
            continue;
        }
        c->metrics = a->config.metrics;
        /* Nothing sent yet: header_timeout, never longer than keep-alive. */
        c->deadline_ms = now + (a->config.header_timeout_ms < a->config.keepalive_timeout_ms
                                    ? a->config.header_timeout_ms
                                    : a->config.keepalive_timeout_ms);
        c->idle_since_ms = now;
        if (open > a->config.max_connections && evict_idle(a, now) < 0) {
            refuse_over_cap(a, c);
            continue;
        }
        if (poll_set_add(a, fd, c) < 0) {
            acceptor_close(a, c);
            continue;
        }
        /* A client sends its request right after connecting, so it is
         * often here already: read it now rather than after another round
         * through poll(). */
        connection_ready(a, c, now);
    }
    return 1;
}

/* Connections were given back while the acceptor was not polling. */
static int returned_waiting(struct acceptor *a)
{
    pthread_mutex_lock(&a->returned_mutex);
    int waiting = a->returned != NULL;
    pthread_mutex_unlock(&a->returned_mutex);
    return waiting;
}

static void take_returned(struct acceptor *a, int64_t now)
{
    pthread_mutex_lock(&a->returned_mutex);
    struct conn *list = a->returned;
    a->returned = NULL;
    pthread_mutex_unlock(&a->returned_mutex);
    while (list) {
        struct conn *c = list;
        list = c->next;
        c->next = NULL;
        conn_release_if_idle(c);
        if (c->lingering) {
            c->deadline_ms = now + a->config.linger_timeout_ms;
        } else if (c->in.len > 0) {
            /* Part of the next request came with the previous one. */
            c->request_start_ms = now;
            c->deadline_ms = now + a->config.request_timeout_ms;
        } else if (c->idle_since_ms == 0) {
            c->deadline_ms = now + a->config.keepalive_timeout_ms;
            c->idle_since_ms = now;
        }
        if (poll_set_add(a, c->fd, c) < 0) {
            acceptor_close(a, c);
            continue;
        }
        /* Bytes that came with the previous request will not make poll()
         * report the socket again: parse them now. */
        if (!c->lingering && c->in.len > 0)
            advance(a, c, now);
    }
}

/* Closes a listener of our own without resetting anyone: whoever the
 * kernel took into its backlog is accepted (and served) first. A Unix
 * socket's path goes before that, so that later clients fail to connect
 * (ENOENT, which a proxy retries elsewhere) instead of joining the
 * backlog. A TCP listener takes new clients until close(): one arriving
 * between the last accept() and close() is still reset, a window of
 * microseconds rather than the serving thread's wait for the GIL. */
static void close_drained(struct acceptor *a, struct listener *l, int64_t now)
{
    if (l->unix_path[0]) {
        unlink(l->unix_path);
        l->unix_path[0] = '\0'; /* listen_close must not unlink a successor's */
    }
    /* Bounded, against a TCP flood that never lets the backlog empty. */
    for (int round = 0; round < 16 && accept_ready(a, l, now); round++)
        ;
    listen_close(l);
}

/* The drain at shutdown begins, once acceptor_drain asked: the listeners
 * are let go (closed here when they are ours, see close_drained), and idle
 * connections get drain_grace_ms to send a request before they are
 * closed. */
static void begin_drain(struct acceptor *a, int64_t now)
{
    pthread_mutex_lock(&a->returned_mutex);
    int asked = a->drain_requested && a->drain_start_ms == 0;
    pthread_mutex_unlock(&a->returned_mutex);
    if (!asked)
        return;
    for (unsigned s = 1; s < a->first_conn; s++) {
        if (a->config.drain_accepts_backlog)
            close_drained(a, &a->config.listeners[s - 1], now);
        a->polls.fds[s].fd = -1; /* poll() skips it from now on */
    }
    idle_drain(a->idle, a->drain_grace_ms);
    /* Workers give back from now on; what they left waits here. */
    if (a->config.handoff)
        give_back_list(a, handoff_close(a->config.handoff));
    /* The lock also publishes the closed listeners (fd -1) to the serving
     * thread, which reads them once acceptor_drain returns. */
    pthread_mutex_lock(&a->returned_mutex);
    a->drain_start_ms = now > 0 ? now : 1;
    pthread_cond_broadcast(&a->drain_started);
    pthread_mutex_unlock(&a->returned_mutex);
}

static int is_idle(const struct conn *c)
{
    return c->idle_since_ms && !c->lingering && c->in.len == 0;
}

/* When the connection's wait ends: its deadline, and while draining, for
 * an idle one, drain_grace_ms after it went quiet (not before the drain
 * began). Written by this thread only, so read without the lock. */
static int64_t wait_ends(const struct acceptor *a, const struct conn *c)
{
    if (a->drain_start_ms == 0 || !is_idle(c))
        return c->deadline_ms;
    int64_t drained = c->idle_since_ms + a->drain_grace_ms;
    if (drained < a->drain_start_ms)
        drained = a->drain_start_ms;
    return drained < c->deadline_ms ? drained : c->deadline_ms;
}

/* Answers a request that cannot be read to its end (status 408 after the
 * request timeout, 503 when the server stops first): logged, never dropped
 * silently. */
static void answer_cut_off(struct acceptor *a, struct conn *c, int status)
{
    log_write(LOG_DEBUG, "answering %d to fd %d: request incomplete", status, c->fd);
    conn_send_error(c, status);
    if (a->config.access_log)
        conn_log_access(c, status);
}

static void sweep(struct acceptor *a, int64_t now)
{
    for (unsigned i = a->polls.nfds; i-- > a->first_conn;) {
        struct conn *c = a->polls.slots[i].conn;
        if (now < wait_ends(a, c)) {
            if (is_idle(c) && now - c->idle_since_ms >= IDLE_AFTER_MS && !a->drain_start_ms) {
                conn_release_if_idle(c); /* whatever path it came by */
                poll_set_remove(a, i);
                /* Counted first: the idle thread may hand it back at once. */
                atomic_fetch_add(&a->idle_connections, 1);
                if (idle_add(a->idle, c) < 0) {
                    atomic_fetch_sub(&a->idle_connections, 1);
                    if (poll_set_add(a, c->fd, c) < 0)
                        acceptor_close(a, c);
                }
            }
            continue;
        }
        if (a->drain_start_ms && is_idle(c) && conn_has_unread_input(c)) {
            /* A request came at the last moment: answer it. */
            connection_ready(a, c, now);
            continue;
        }
        /* RFC 9110 §15.5.9: the request did not arrive in time. */
        if (!c->lingering && c->in.len > 0)
            answer_cut_off(a, c, 408);
        drop(a, c);
    }
    if (a->listeners_paused)
        pause_listeners(a, 0);
    a->next_sweep_ms = now + SWEEP_INTERVAL_MS;
}

/* How long poll() may sleep: until the next sweep, or until a connection
 * in the handoff set is due back, whichever comes first. Those due now are
 * taken back first: no worker may have looked at them for a while. */
static int64_t poll_timeout(struct acceptor *a)
{
    int64_t wait = a->next_sweep_ms - monotonic_ms();
    if (wait < 0)
        wait = 0;
    if (a->config.handoff) {
        int until_due;
        int idle_worker = pool_has_spare_thread(a->config.pool);
        give_back_list(a, handoff_take_stale(a->config.handoff, monotonic_ms(), idle_worker,
                                             (int)wait, &until_due));
        wait = until_due;
    }
    return wait;
}

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    a->next_sweep_ms = monotonic_ms() + SWEEP_INTERVAL_MS;
    while (!atomic_load(&a->stopping)) {
        int64_t wait = poll_timeout(a);
        atomic_store(&a->polling, 1);
        if (returned_waiting(a))
            wait = 0;
        int n = poll(a->polls.fds, a->polls.nfds, (int)wait);
        atomic_store(&a->polling, 0);
        int64_t now = monotonic_ms();
        if (n < 0 && errno != EINTR) {
            log_write(LOG_ERROR, "poll failed (errno %d)", errno);
            continue;
        }
        int woken = n > 0 && a->polls.fds[0].revents;
        if (woken)
            wakeup_drain(a->wake_fd);
        take_returned(a, now);
        if (woken) {
            begin_drain(a, now); /* acceptor_drain always wakes us */
            if (a->listeners_paused)
                pause_listeners(a, 0);
        }
        if (n > 0) {
            for (unsigned s = 1; s < a->first_conn; s++)
                if (a->polls.fds[s].fd >= 0 && (a->polls.fds[s].revents & POLLIN))
                    accept_ready(a, &a->config.listeners[s - 1], now);
            for (unsigned i = a->polls.nfds; i-- > a->first_conn;) {
                if (a->polls.fds[i].revents)
                    connection_ready(a, a->polls.slots[i].conn, now);
            }
        }
        if (now >= a->next_sweep_ms)
            sweep(a, now);
    }

    if (a->config.handoff)
        give_back_list(a, handoff_close(a->config.handoff));
    pthread_mutex_lock(&a->returned_mutex);
    a->stopped = 1;
    pthread_mutex_unlock(&a->returned_mutex);
    take_returned(a, 0);
    for (unsigned i = a->polls.nfds; i-- > a->first_conn;) {
        struct conn *c = a->polls.slots[i].conn;
        if (!c->lingering && c->in.len > 0)
            answer_cut_off(a, c, 503);
        drop(a, c);
    }
    conn_drop_spare();
    return NULL;
}

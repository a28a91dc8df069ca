/* Sending a worker's response: framed by response.c, written without the
 * GIL when the socket is full, and parked when the client stops reading so
 * that it does not hold the worker. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/send.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "pyruvate/http_status.h"
#include "pyruvate/log.h"
#include "pyruvate/park.h"
#include "pyruvate/server_state.h"
#include "pyruvate/worker_state.h"

/* A failed connection takes nothing more: the rest of w->out is dropped, so
 * that no later send reaches for it (it may point into a chunk or write()
 * argument that is gone by then). */
static void fail_connection(struct worker *w, int saved_errno)
{
    log_write(LOG_DEBUG, "write to client failed (errno %d)", saved_errno);
    w->response.failed = w->response.must_close = 1;
    w->out = (struct response_out){.file_fd = -1};
}

int send_try(struct worker *w)
{
    size_t before = response_out_left(&w->out);
    int rc = response_out_try(w->conn->fd, &w->out);
    metrics_count_bytes_out(w->server->metrics, before - response_out_left(&w->out));
    return rc;
}

/* response_out_send, counting what went out. Runs without the GIL too. */
static int send_waiting(struct worker *w, int wait_ms, int64_t deadline_ms)
{
    size_t before = response_out_left(&w->out);
    int rc = response_out_send(w->conn->fd, &w->out, wait_ms, deadline_ms);
    int saved_errno = errno;
    metrics_count_bytes_out(w->server->metrics, before - response_out_left(&w->out));
    errno = saved_errno;
    return rc;
}

/* Sends w->out, waiting up to send_timeout each time the socket is full.
 * Returns 0, or -1 when the connection failed (then nothing more is sent). */
static int send_out(struct worker *w)
{
    int timeout = w->server->options.send_timeout_ms;
    /* Most responses fit the socket buffer: a send that cannot block costs
     * less with the GIL held than the two GIL handoffs around it. Only a
     * write that has to wait lets the other workers run meanwhile. */
    int rc = send_try(w), saved_errno = errno;
    if (rc > 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = send_waiting(w, timeout, 0);
        saved_errno = errno;
        Py_END_ALLOW_THREADS
    }
    if (rc < 0)
        fail_connection(w, saved_errno);
    return rc;
}

/* ---- parking ---------------------------------------------------------- */

/* How long a worker waits for a client that does not take the response as
 * fast as it is written, before it parks the response and goes back to the
 * pool: long enough that a reading client never notices, short enough that
 * clients that stopped reading cannot keep the workers from others. */
enum { PARK_AFTER_MS = 20 };

/* How long a worker waits itself for a client that takes nothing while the
 * park set is full, before it drops the connection: the clients beyond the
 * set's caps may each cost a worker only this long, not send_timeout. */
enum { PARK_FULL_WAIT_MS = 1000 };

/* Moves the response from w into c->parked and hands c to the park set.
 * Returns 0 (then neither w nor the caller may touch c again), or -1 when
 * the set is full (nothing moved). */
static int park_response(struct worker *w)
{
    struct conn *c = w->conn;
    if (w->server->park == NULL)
        return -1;
    struct parked_response *p = malloc(sizeof(*p));
    if (p == NULL)
        return -1;
    *p = (struct parked_response){
        .response = w->response,
        .head = w->head,
        .out = w->out,
        .out_owner = w->out_owner,
        .env = w->env,
        .input = w->input,
        .result = w->result,
        .iterator = w->iterator,
        .known_length = w->known_length,
        .body_done = w->body_done,
        .ending = w->ending,
    };
    c->parked = p;
    c->deadline_ms = w->park_deadline_ms ? w->park_deadline_ms
                                         : monotonic_ms() + w->server->options.send_timeout_ms;
    size_t held = w->head.cap + (w->out_owner ? (size_t)PyBytes_GET_SIZE(w->out_owner) : 0);
    if (park_add(w->server->park, c, held) < 0) {
        c->parked = NULL;
        free(p);
        return -1;
    }
    /* The worker keeps a fresh head buffer; the rest now belongs to p. */
    w->head = (struct buf){0};
    w->out = (struct response_out){.file_fd = -1};
    w->out_owner = w->env = w->input = w->result = w->iterator = NULL;
    return 0;
}

/* Takes a parked response back from c->parked into w. */
void send_unpark(struct worker *w)
{
    struct parked_response *p = w->conn->parked;
    w->conn->parked = NULL;
    buf_free(&w->head);
    w->response = p->response;
    w->head = p->head;
    w->out = p->out;
    w->out_owner = p->out_owner;
    w->env = p->env;
    w->input = p->input;
    w->result = p->result;
    w->iterator = p->iterator;
    w->known_length = p->known_length;
    w->body_done = p->body_done;
    w->ending = p->ending;
    free(p);
}

/* Sends w->out for at most wait_ms in all (a deadline, not a per-wait
 * timeout, so that a client reading a trickle cannot hold the worker).
 * Returns 0 when sent, 1 when some is still unsent then (errno ETIMEDOUT),
 * -1 when the connection failed. */
static int send_unless_stalled(struct worker *w, int wait_ms, int *saved_errno)
{
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = send_waiting(w, wait_ms, monotonic_ms() + wait_ms);
    *saved_errno = errno;
    Py_END_ALLOW_THREADS
    return rc < 0 && *saved_errno == ETIMEDOUT ? 1 : rc;
}

/* Sends w->out. What is not sent within PARK_AFTER_MS (the client stopped
 * reading, or reads slower than the worker writes) is parked: a slow reader
 * costs a worker PARK_AFTER_MS per resume, never more. When the park set is
 * full, the worker waits for the client itself, and drops one that takes
 * nothing in PARK_FULL_WAIT_MS.
 * Returns 0 when sent, 1 when parked (the worker must let go of the
 * connection), -1 when the connection failed. */
int send_or_park(struct worker *w)
{
    struct response_out *out = &w->out;
    int fd = w->conn->fd;
    int rc = send_try(w), saved_errno = errno;
    if (rc > 0 && w->server->park) {
        int full_wait_ms = w->server->options.send_timeout_ms < PARK_FULL_WAIT_MS
                               ? w->server->options.send_timeout_ms
                               : PARK_FULL_WAIT_MS;
        /* Each round needs the client to take something: bounded. */
        while ((rc = send_unless_stalled(w, PARK_AFTER_MS, &saved_errno)) > 0) {
            if (park_response(w) == 0)
                return 1;
            size_t before = response_out_left(out);
            rc = send_unless_stalled(w, full_wait_ms, &saved_errno);
            size_t after = response_out_left(out);
            if (rc <= 0)
                break;
            if (after == before) {
                log_write(LOG_WARNING,
                          "client on fd %d took nothing for %d ms while %u responses were "
                          "parked: connection dropped",
                          fd, full_wait_ms, park_count(w->server->park));
                rc = -1;
                saved_errno = ETIMEDOUT;
                break;
            }
        }
    }
    if (rc > 0)
        return send_out(w);
    if (rc < 0)
        fail_connection(w, saved_errno);
    return rc;
}

/* The request and server facts the framing depends on. */
static void response_context_of(struct worker *w, struct response_context *ctx)
{
    const struct request *r = w->conn->request;
    const struct server_options *opt = &w->server->options;
    time_t now = time(NULL);
    if (now != w->date_second) {
        syntax_http_date(now, w->date);
        w->date_second = now;
    }
    /* While stopping, the last response on a connection is the one with no
     * pipelined bytes behind it: those are a request the client has sent
     * already, to be answered too (the acceptor reads the rest of it). */
    int stopping = atomic_load(&w->server->stopping) && w->conn->in.len <= r->consumed;
    *ctx = (struct response_context){
        .http_minor = r->http_minor,
        .keep_alive = r->keep_alive,
        .chunked_allowed = opt->chunked_transfer,
        .last_on_connection = stopping || (opt->max_reuse_count &&
                                           w->conn->requests_served + 1 >= opt->max_reuse_count),
        .date = w->date,
    };
}

/* Frames body bytes into w->out (see response_frame). Every body byte
 * leaves the server through here. */
int send_frame(struct worker *w, const char *data, int file_fd, off_t file_offset, size_t len,
               long long known)
{
    struct response_context ctx = {0};
    if (!w->response.headers_sent)
        response_context_of(w, &ctx);
    return response_frame(&w->response, &w->head, &w->out, &ctx, data, file_fd, file_offset, len,
                          known);
}

static int send_framed(struct worker *w, const char *data, int file_fd, off_t file_offset,
                       size_t len, long long known)
{
    if (send_frame(w, data, file_fd, file_offset, len, known) < 0)
        return -1;
    return send_out(w);
}

int send_body(struct worker *w, const char *data, size_t len)
{
    /* PEP 3333: headers go out with the first non-empty chunk. */
    if (len == 0)
        return 0;
    return send_framed(w, data, -1, 0, len, -1);
}

/* Ends the body's framing. Returns 0, 1 when parked, -1 when failed. */
int send_finish(struct worker *w)
{
    if (w->response.failed)
        return -1;
    if (!w->response.headers_sent)
        return send_framed(w, NULL, -1, 0, 0, 0);
    if (response_finish(&w->response, &w->out))
        return send_or_park(w);
    return 0;
}

void send_error(struct worker *w, int status)
{
    char text[512];
    size_t len = http_status_error_response(status, time(NULL), text, sizeof(text));
    w->response.must_close = 1;
    w->response.sent_status = status;
    w->out = (struct response_out){.framing = text, .framing_len = len, .file_fd = -1};
    if (len > 0)
        send_out(w);
}

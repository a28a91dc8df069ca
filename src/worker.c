/* Worker threads, the Python side of the pool: each keeps one thread state
 * for life, answers a connection's requests, then hands the connection on
 * (to the handoff set or back to the acceptor) or closes it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/worker.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pyruvate/conn.h"
#include "pyruvate/environ.h"
#include "pyruvate/handoff.h"
#include "pyruvate/log.h"
#include "pyruvate/pool.h"
#include "pyruvate/room.h"
#include "pyruvate/server_state.h"
#include "pyruvate/start_response.h"
#include "pyruvate/wsgi.h"

/* Gives the Python thread the pool thread's name, so that logging's
 * %(threadName)s and tracebacks say "pyruvate-N" instead of "Dummy-N". */
static void name_python_thread(unsigned index)
{
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *thread = threading ? PyObject_CallMethod(threading, "current_thread", NULL) : NULL;
    PyObject *name = PyUnicode_FromFormat("pyruvate-%u", index);
    if (thread == NULL || name == NULL || PyObject_SetAttrString(thread, "name", name) < 0)
        PyErr_Clear();
    Py_XDECREF(name);
    Py_XDECREF(thread);
    Py_XDECREF(threading);
}

void *worker_thread_start(void *ctx, unsigned index)
{
    struct server *server = ctx;
    struct worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->server = server;
    w->index = index;
    w->thread_state = PyThreadState_New(server->interpreter);
    if (w->thread_state == NULL) {
        free(w);
        return NULL;
    }
    PyEval_RestoreThread(w->thread_state);
    w->start_response = start_response_new(w);
    if (w->start_response == NULL)
        PyErr_Clear();
    else
        name_python_thread(index);
    PyEval_SaveThread();
    if (w->start_response == NULL) {
        worker_thread_stop(w);
        return NULL;
    }
    return w;
}

void worker_thread_stop(void *worker)
{
    struct worker *w = worker;
    PyEval_RestoreThread(w->thread_state);
    Py_CLEAR(w->start_response);
    environ_cache_clear(&w->environ);
    PyThreadState_Clear(w->thread_state);
    PyThreadState_DeleteCurrent(); /* releases the GIL */
    buf_free(&w->head);
    free(w);
}

/* How long a worker with nothing else to do waits for a keep-alive client's
 * next request before handing the connections back to the acceptor. */
enum { NEXT_REQUEST_WAIT_MS = HANDOFF_MAX_MS };

/* A keep-alive client usually sends its next request as soon as it has read
 * the response: the connection waits in the handoff set, where whichever
 * worker is free first finds that request, without the two thread handoffs
 * through the acceptor. A connection with part of a request buffered goes
 * back: the acceptor waits for the rest under the request timeout. */
static void hand_off(struct worker *w, struct conn *c)
{
    if (c->in.len > 0 || atomic_load(&w->server->stopping) ||
        handoff_put(w->server->handoff, c, monotonic_ms()) < 0)
        conn_return_give_back(&w->server->conn_return, c);
}

/* Reads what the client of a connection taken from the handoff set sent.
 * Returns 1 when a whole request is buffered, for the caller to serve;
 * else c was handed on: given back (a partial request, an endpoint, or
 * nothing after all), rejected or closed. */
static int read_next_request(struct worker *w, struct conn *c)
{
    ssize_t n = conn_read(c);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_return_close(&w->server->conn_return, c);
        return 0;
    }
    switch (n > 0 ? conn_next(c, CONN_AFTER_READ) : CONN_READ) {
    case CONN_DISPATCH:
        if (conn_endpoint(c, w->server->endpoint_paths) != METRICS_NO_ENDPOINT)
            break; /* the acceptor answers those */
        c->request_start_ms = monotonic_ms();
        c->queued_us = monotonic_us();
        return 1;
    case CONN_REJECT:
        conn_reject(c, c->request->error_status, w->server->options.access_log);
        break;
    default:
        break;
    }
    conn_return_give_back(&w->server->conn_return, c);
    return 0;
}

/* Gives back to the acceptor what waits in the handoff set. */
static void give_back_handed_off(struct worker *w)
{
    for (struct conn *c = handoff_take_all(w->server->handoff), *next; c != NULL; c = next) {
        next = c->next;
        c->next = NULL;
        conn_return_give_back(&w->server->conn_return, c);
    }
}

/* A connection from the handoff set whose client sent something, for a
 * worker with nothing queued: it waits up to wait_until_ms with the GIL
 * released while another worker sits idle (no queued request waits for
 * it then), else only looks. NULL, with *outcome, when none came. */
static struct conn *take_handed_off(struct worker *w, int64_t wait_until_ms,
                                    enum handoff_wait *outcome)
{
    struct handoff *h = w->server->handoff;
    int64_t now = monotonic_ms();
    if (now >= wait_until_ms || atomic_load(&w->server->stopping) ||
        !pool_has_spare_thread(w->server->pool)) {
        *outcome = HANDOFF_TIMED_OUT;
        return handoff_take_ready(h);
    }
    struct conn *c;
    /* While it waits, a request queued for the pool is its: pool_submit
     * does not refuse it as queue full, and ends the wait when no idle
     * worker takes it (HANDOFF_WOKEN), so that it goes before any later
     * request from the set. */
    pool_watching(w->server->pool, 1);
    Py_BEGIN_ALLOW_THREADS
    c = handoff_wait_ready(h, (int)(wait_until_ms - now), outcome);
    Py_END_ALLOW_THREADS
    pool_watching(w->server->pool, -1);
    /* This thread stops watching the set to serve c: the others stay. The
     * next worker done with a request looks at them, or, should c's request
     * be slow while a worker is idle, the acceptor takes back the ones
     * whose client sent (handoff_take_stale). */
    return c;
}

/* The next connection with a whole request for this worker: one the
 * acceptor queued, else one from the handoff set. Returns NULL when there
 * is none; what is left in the set then goes back to the acceptor, unless
 * another worker waits on it. */
static struct conn *next_connection(struct worker *w)
{
    /* Another worker computed in the application all along this one's
     * run: it takes what comes next, and this one waits in the pool
     * (room.h) instead of trading the GIL with it. */
    if (room_should_leave(w->server->room, w->index))
        return NULL;
    int64_t wait_until_ms = monotonic_ms() + NEXT_REQUEST_WAIT_MS;
    for (;;) {
        struct conn *c = pool_try_take(w->server->pool);
        if (c)
            return c;
        enum handoff_wait outcome;
        c = take_handed_off(w, wait_until_ms, &outcome);
        if (c) {
            if (read_next_request(w, c))
                return c;
        } else if (outcome == HANDOFF_WATCHED_ELSEWHERE) {
            return NULL;
        } else if (outcome == HANDOFF_TIMED_OUT) {
            give_back_handed_off(w);
            return NULL;
        }
        /* HANDOFF_LOOK_AGAIN or HANDOFF_WOKEN: the queue first, then the
         * set again, until wait_until_ms. */
    }
}

/* Answers every request buffered on c, then hands c on. Runs with the GIL
 * held; only writes that have to wait release it. */
static void serve_requests(struct worker *w, struct conn *c)
{
    for (;;) {
        /* The connections in the handoff set must not wait for this
         * request, however slow: the acceptor takes them back in time. */
        handoff_cover(w->server->handoff, monotonic_ms());
        w->conn = c;
        int parked = c->parked ? wsgi_resume_response(w) : wsgi_handle_request(w);
        w->conn = NULL;
        pool_finishing(w->server->pool, w->index, 1); /* see worker_handle */
        if (parked)
            return; /* the park set has c now */
        c->requests_served++;
        /* A pipelined request may be buffered already; answering it here
         * saves two thread handoffs and keeps responses in order. */
        switch (
            conn_next(c, w->response.must_close ? CONN_AFTER_LAST_RESPONSE : CONN_AFTER_RESPONSE)) {
        case CONN_CLOSE:
            conn_return_close(&w->server->conn_return, c);
            return;
        case CONN_LINGER:
            /* The acceptor drains what the client still sends. */
            conn_linger(c);
            conn_return_give_back(&w->server->conn_return, c);
            return;
        case CONN_DISPATCH:
            if (conn_endpoint(c, w->server->endpoint_paths) != METRICS_NO_ENDPOINT) {
                /* the acceptor answers those */
                conn_return_give_back(&w->server->conn_return, c);
                return;
            }
            /* Also while stopping: the request was read whole, and the
             * response before it promised to answer it (send.c). */
            c->request_start_ms = monotonic_ms();
            c->queued_us = monotonic_us();
            pool_finishing(w->server->pool, w->index, 0);
            continue;
        case CONN_REJECT:
            conn_reject(c, c->request->error_status, w->server->options.access_log);
            conn_return_give_back(&w->server->conn_return, c);
            return;
        case CONN_READ:
            hand_off(w, c);
            return;
        }
    }
}

/* One run (room.h): c's requests, pipelined ones too, count as one, so
 * that a client's pipeline keeps the other workers out no longer than one
 * long request would. */
static void serve_connection(struct worker *w, struct conn *c)
{
    room_run_started(w->server->room, w->index);
    serve_requests(w, c);
    room_run_done(w->server->room, w->index);
}

void worker_acquire(void *worker)
{
    struct worker *w = worker;
    PyEval_RestoreThread(w->thread_state);
}

void worker_release(void *worker)
{
    PYR_UNUSED(worker);
    PyEval_SaveThread();
}

void worker_handle(void *worker, void *item)
{
    struct worker *w = worker;
    struct conn *c = item;
    /* While this thread holds the GIL (the pool had it take the GIL before
     * the item), it goes on with requests that queued up meanwhile: the
     * other workers could only wait for the GIL, and each handoff between
     * threads costs two context switches. The same goes for the handoff
     * set: a client's next request costs no handoff then. CPython's switch interval still
     * makes this thread yield the GIL every 5 ms. */
    for (;;) {
        /* Done with c once its last response is out (pool_finishing in
         * wsgi.c): until this thread has its next item, pool_submit counts
         * it as free, and the pool until it is idle again. */
        serve_connection(w, c);
        if ((c = next_connection(w)) == NULL)
            break;
        pool_finishing(w->server->pool, w->index, 0);
    }
}

/* Worker threads, the Python side of the pool: each keeps one thread state
 * for life, answers a connection's requests, then hands the connection back
 * to the acceptor or closes it. */
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
#include "pyruvate/log.h"
#include "pyruvate/pool.h"
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
 * next request before handing the connection back to the acceptor. */
enum { NEXT_REQUEST_WAIT_MS = 2 };

/* A connection stays in a worker's hands (held) at most about this long
 * while the worker serves others: then the acceptor hands its next request
 * to whichever worker is free, and its deadlines apply again. */
enum { HOLD_MAX_MS = 2 };

/* A keep-alive client usually sends its next request as soon as it has
 * read the response, often while this worker answers other connections:
 * such a connection is kept (held) and looked at again before the worker
 * gives it back, so its next request costs no thread handoff through the
 * acceptor. A connection with part of a request buffered goes back: the
 * acceptor waits for the rest under the request timeout. */
static void hold_or_give_back(struct worker *w, struct conn *c)
{
    /* After a slow request the next may be slow too, and those held would
     * wait for it while another worker could serve them. */
    int quick = w->last_request_us < HOLD_MAX_MS * 1000 / 2;
    if (quick && c->in.len == 0 && w->held_count < WORKER_HELD_MAX &&
        !atomic_load(&w->server->stopping)) {
        w->held[w->held_count] = c;
        w->held_since_ms[w->held_count] = monotonic_ms();
        w->held_count++;
    } else {
        conn_return_give_back(&w->server->conn_return, c);
    }
}

/* Gives back the connections held for HOLD_MAX_MS or more: after a slow
 * request, or a long run of queued ones, they must not wait for this
 * worker. The oldest come first. */
static void give_back_stale_held(struct worker *w)
{
    if (w->held_count == 0 || monotonic_ms() - w->held_since_ms[0] < HOLD_MAX_MS)
        return;
    int64_t now = monotonic_ms();
    unsigned stale = 0;
    while (stale < w->held_count && now - w->held_since_ms[stale] >= HOLD_MAX_MS)
        conn_return_give_back(&w->server->conn_return, w->held[stale++]);
    w->held_count -= stale;
    memmove(w->held, w->held + stale, w->held_count * sizeof(w->held[0]));
    memmove(w->held_since_ms, w->held_since_ms + stale,
            w->held_count * sizeof(w->held_since_ms[0]));
}

/* Reads what the client of a held connection sent. Returns 1 when a whole
 * request is buffered, for the caller to serve; else c was handed on:
 * given back (a partial request, or nothing after all), rejected or
 * closed. */
static int read_held(struct worker *w, struct conn *c)
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

/* Polls the held connections without blocking (or, when another worker
 * sits idle, up to NEXT_REQUEST_WAIT_MS with the GIL released, so no
 * queued request waits for it). Fills ready[] with those whose next
 * request came whole; the rest stay held while this worker has other
 * work, else go back. Returns the number of ready connections. */
static unsigned take_ready_held(struct worker *w, struct conn **ready)
{
    struct pollfd fds[WORKER_HELD_MAX];
    unsigned n = w->held_count;
    for (unsigned i = 0; i < n; i++)
        fds[i] = (struct pollfd){.fd = w->held[i]->fd, .events = POLLIN};
    int polled = poll(fds, n, 0);
    if (polled == 0 && !atomic_load(&w->server->stopping) &&
        pool_has_spare_thread(w->server->pool)) {
        Py_BEGIN_ALLOW_THREADS
        polled = poll(fds, n, NEXT_REQUEST_WAIT_MS);
        Py_END_ALLOW_THREADS
    }
    unsigned ready_count = 0, kept = 0;
    int64_t now = monotonic_ms();
    for (unsigned i = 0; i < n; i++) {
        struct conn *c = w->held[i];
        if (polled > 0 && fds[i].revents) {
            if (read_held(w, c))
                ready[ready_count++] = c;
        } else {
            w->held[kept] = c;
            w->held_since_ms[kept++] = w->held_since_ms[i];
        }
    }
    /* Quiet ones wait in the acceptor unless this worker goes on anyway. */
    w->held_count = 0;
    for (unsigned i = 0; i < kept; i++) {
        if (ready_count > 0 && now - w->held_since_ms[i] < HOLD_MAX_MS &&
            !atomic_load(&w->server->stopping)) {
            w->held[w->held_count] = w->held[i];
            w->held_since_ms[w->held_count++] = w->held_since_ms[i];
        } else {
            conn_return_give_back(&w->server->conn_return, w->held[i]);
        }
    }
    return ready_count;
}

/* Answers every request buffered on c, then hands c on. Runs with the GIL
 * held; only writes that have to wait release it. */
static void serve_connection(struct worker *w, struct conn *c)
{
    for (;;) {
        w->conn = c;
        int64_t started_us = monotonic_us();
        int parked = c->parked ? wsgi_resume_response(w) : wsgi_handle_request(w);
        w->last_request_us = monotonic_us() - started_us;
        w->conn = NULL;
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
            continue;
        case CONN_REJECT:
            conn_reject(c, c->request->error_status, w->server->options.access_log);
            conn_return_give_back(&w->server->conn_return, c);
            return;
        case CONN_READ:
            hold_or_give_back(w, c);
            return;
        }
    }
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
     * threads costs two context switches. CPython's switch interval still
     * makes this thread yield the GIL every 5 ms. */
    for (;;) {
        for (; c != NULL; c = pool_try_take(w->server->pool)) {
            serve_connection(w, c);
            give_back_stale_held(w);
        }
        if (w->held_count == 0)
            return;
        struct conn *ready[WORKER_HELD_MAX];
        unsigned ready_count = take_ready_held(w, ready);
        if (ready_count == 0 && w->held_count == 0)
            return;
        for (unsigned i = 0; i < ready_count; i++) {
            serve_connection(w, ready[i]);
            give_back_stale_held(w);
        }
        c = pool_try_take(w->server->pool);
    }
}

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

/* A client that answered quickly (the usual keep-alive client sends its next
 * request as soon as it has read the response) is served on without the two
 * thread handoffs through the acceptor. Only a worker that would otherwise
 * sit idle waits, with the GIL released, so no queued request is delayed by
 * it. The worker serves no other connection meanwhile: a connection kept
 * while the worker ran another client's request would wait for that
 * request, however slow, while other workers could have served it.
 * Returns 1 when the next request arrived whole, -1 when c must be closed
 * (the read failed: what it read may be lost), else 0. */
static int await_next_request(struct worker *w, struct conn *c)
{
    if (c->in.len > 0 || atomic_load(&w->server->stopping) ||
        !pool_has_spare_thread(w->server->pool))
        return 0;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int ready;
    Py_BEGIN_ALLOW_THREADS
    ready = poll(&p, 1, NEXT_REQUEST_WAIT_MS);
    Py_END_ALLOW_THREADS
    if (ready <= 0 || !(p.revents & POLLIN))
        return 0;
    ssize_t n = conn_read(c);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return -1;
    /* EOF, errors and partial requests are the acceptor's to handle. */
    return n > 0 && conn_parse(c) == REQUEST_COMPLETE;
}

/* Answers every request buffered on c, then hands c on. Runs with the GIL
 * held; only writes that have to wait release it. */
static void serve_connection(struct worker *w, struct conn *c)
{
    for (;;) {
        w->conn = c;
        int parked = c->parked ? wsgi_resume_response(w) : wsgi_handle_request(w);
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
        case CONN_READ: {
            int next = await_next_request(w, c);
            if (next < 0) {
                conn_return_close(&w->server->conn_return, c);
                return;
            }
            if (next > 0 && conn_endpoint(c, w->server->endpoint_paths) == METRICS_NO_ENDPOINT) {
                c->request_start_ms = monotonic_ms();
                c->queued_us = monotonic_us();
                continue;
            }
            conn_return_give_back(&w->server->conn_return, c);
            return;
        }
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
    do
        serve_connection(w, c);
    while ((c = pool_try_take(w->server->pool)) != NULL);
}

/* One request through the WSGI app (PEP 3333): build the environ, call the
 * app, iterate its result and send it (send.c), call close(), log the
 * access. Runs on a worker thread holding the GIL. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/wsgi.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pyruvate/conn.h"
#include "pyruvate/environ.h"
#include "pyruvate/filewrapper.h"
#include "pyruvate/input.h"
#include "pyruvate/log.h"
#include "pyruvate/pool.h"
#include "pyruvate/send.h"
#include "pyruvate/server_state.h"
#include "pyruvate/start_response.h"

static void log_app_exception(struct module_state *st, const char *what);

static struct module_state *state_of(struct worker *w)
{
    return module_get_state(w->server->module);
}

/* ---- the result ------------------------------------------------------- */

/* The sum of the chunk lengths when result is a list or tuple of bytes, so
 * the response gets a Content-Length; -1 otherwise. */
static long long sequence_length(PyObject *result)
{
    if (!PyList_CheckExact(result) && !PyTuple_CheckExact(result))
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(result);
    PyObject **items = PySequence_Fast_ITEMS(result);
    long long total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i]))
            return -1;
        total += PyBytes_GET_SIZE(items[i]);
    }
    return total;
}

/* Frames a FileWrapper around a real file into w->out, to go out with
 * sendfile(2), framed like any other body. Returns 1 when framed (or the
 * response failed), 0 to fall back to iterating, -1 with an exception. */
static int try_sendfile(struct worker *w, PyObject *result)
{
    struct module_state *st = state_of(w);
    if (Py_TYPE(result) != st->file_wrapper_type)
        return 0;
    if (w->response.status == 0) {
        /* Nothing may go out: a head without a status line is no response. */
        PyErr_SetString(PyExc_RuntimeError,
                        "the application returned a file before calling start_response");
        return -1;
    }
    PyObject *filelike = ((FileWrapperObject *)result)->filelike;
    PyObject *fileno = PyObject_CallMethodNoArgs(filelike, st->str_fileno);
    if (fileno == NULL) {
        PyErr_Clear(); /* no descriptor: iterate instead */
        return 0;
    }
    long fd = PyLong_AsLong(fileno);
    Py_DECREF(fileno);
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Clear();
        return 0;
    }
    struct stat info;
    if (fstat((int)fd, &info) < 0 || !S_ISREG(info.st_mode))
        return 0;
    /* Python's buffered files keep their own position; tell() knows it. */
    off_t offset;
    PyObject *position = PyObject_CallMethodNoArgs(filelike, st->str_tell);
    if (position == NULL) {
        PyErr_Clear();
        offset = lseek((int)fd, 0, SEEK_CUR);
    } else {
        offset = (off_t)PyLong_AsLongLong(position);
        Py_DECREF(position);
        if (offset < 0 && PyErr_Occurred())
            return -1;
    }
    if (offset < 0)
        return 0;
    size_t available = offset < info.st_size ? (size_t)(info.st_size - offset) : 0;
    /* The file's size is the body's length only when it is all the body:
     * after write() the framing chosen then goes on around the file. */
    long long known = w->response.headers_sent ? -1 : (long long)available;
    send_frame(w, NULL, (int)fd, offset, available, known);
    return 1;
}

/* Iterates the app's result and sends each chunk, from where it stands (a
 * resumed response goes on with the iterator it had). Returns 0 when the
 * body is done, 1 when parked, -1 with an exception set when the app
 * misbehaved. A file goes out as one piece: once framed, the body is done
 * (w->body_done) even while its bytes wait in a parked w->out. */
static int send_result(struct worker *w)
{
    if (w->iterator == NULL) {
        int framed = try_sendfile(w, w->result);
        if (framed < 0)
            return -1;
        if (framed) {
            w->body_done = 1;
            return response_out_pending(&w->out) && send_or_park(w) > 0;
        }
        w->known_length = sequence_length(w->result);
        w->iterator = PyObject_GetIter(w->result);
        if (w->iterator == NULL)
            return -1;
    }
    PyObject *chunk;
    while (!w->response.failed && (chunk = PyIter_Next(w->iterator)) != NULL) {
        if (!PyBytes_Check(chunk)) {
            PyErr_Format(PyExc_TypeError, "the application yielded %.100s, not bytes",
                         Py_TYPE(chunk)->tp_name);
            Py_DECREF(chunk);
            return -1;
        }
        if (w->response.status == 0) {
            PyErr_SetString(PyExc_RuntimeError,
                            "the application returned data before calling start_response");
            Py_DECREF(chunk);
            return -1;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(chunk);
        /* While parked, the chunk being sent is kept alive by out_owner. */
        Py_XSETREF(w->out_owner, chunk);
        if (len > 0 &&
            send_frame(w, PyBytes_AS_STRING(chunk), -1, 0, (size_t)len, w->known_length) == 0 &&
            send_or_park(w) > 0)
            return 1;
        Py_CLEAR(w->out_owner);
    }
    return PyErr_Occurred() ? -1 : 0;
}

/* getattr(obj, name, NULL) without building an AttributeError, which
 * costs a formatted message each time: 1 found, 0 absent, -1 error. */
static int lookup_optional(PyObject *obj, PyObject *name, PyObject **result)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, name, result);
#else
    return _PyObject_LookupAttr(obj, name, result);
#endif
}

static void call_close(struct module_state *st, PyObject *result)
{
    /* The usual result, a list or tuple, has no close(). */
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result))
        return;
    PyObject *close = NULL;
    if (lookup_optional(result, st->str_close, &close) < 0) {
        log_app_exception(st, "Error looking up the result's close()");
        return;
    }
    if (close == NULL)
        return;
    PyObject *ignored = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    if (ignored == NULL)
        log_app_exception(st, "Error in the result's close()");
    Py_XDECREF(ignored);
}

static void log_app_exception(struct module_state *st, const char *what)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value && traceback)
        PyException_SetTraceback(value, traceback);
    PyObject *logger = st->logger;
    PyObject *kwargs = Py_BuildValue("{s:O}", "exc_info", value ? value : Py_True);
    PyObject *args = Py_BuildValue("(s)", what);
    PyObject *done = NULL;
    if (kwargs && args) {
        PyObject *error = PyObject_GetAttrString(logger, "error");
        if (error) {
            done = PyObject_Call(error, args, kwargs);
            Py_DECREF(error);
        }
    }
    if (done == NULL)
        PyErr_WriteUnraisable(logger);
    Py_XDECREF(done);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
}

/* One line in Common Log Format plus the request's duration in seconds,
 * for the "pyruvate.access" logger: the response on c as far as it went. */
static void log_access(struct server *server, struct conn *c, PyObject *env,
                       const struct response_state *response)
{
    struct module_state *st = module_get_state(server->module);
    /* REMOTE_ADDR from the environ: behind a trusted proxy, the client's. */
    Py_ssize_t addr_len = 0;
    const char *addr = NULL;
    PyObject *remote = env ? PyDict_GetItemWithError(env, st->str_REMOTE_ADDR) : NULL;
    if (remote)
        addr = module_latin1_data(remote, &addr_len);
    PyErr_Clear();
    char address[64] = "";
    if (addr && addr_len > 0 && (size_t)addr_len < sizeof(address)) {
        memcpy(address, addr, (size_t)addr_len);
        address[addr_len] = '\0';
    }
    char line[LOG_MESSAGE_LEN];
    conn_access_line(c, address, response->sent_status, response->body_sent, line, sizeof(line));
    if (server->options.async_logging) {
        log_write_access(line);
        return;
    }
    PyObject *done = PyObject_CallMethod(st->access_logger, "info", "s", line);
    if (done == NULL)
        PyErr_WriteUnraisable(st->access_logger);
    Py_XDECREF(done);
}

/* Sends the response from where it stands (just after the app returned,
 * or resumed after a park): the rest of w->out, the rest of the body, the
 * end of its framing; then close(). Returns 1 when parked (again), 0 when
 * the response is over. */
static int drive_response(struct worker *w)
{
    if (response_out_pending(&w->out) && send_or_park(w) > 0)
        return 1;
    /* Sent, also when the resumed socket took the rest at once: the chunk
     * that was being sent is no longer needed. */
    Py_CLEAR(w->out_owner);
    /* Each step runs once, however often the response was parked. */
    if (!w->body_done) {
        int rc = send_result(w);
        if (rc > 0)
            return 1;
        w->body_done = 1;
        if (rc < 0) {
            log_app_exception(state_of(w), "Error in the WSGI application's response");
            if (!w->response.headers_sent)
                send_error(w, 500);
            /* Headers already out: closing is the only honest signal left. */
            w->response.must_close = 1;
            goto done;
        }
        if (w->response.status == 0) {
            PyErr_SetString(PyExc_RuntimeError, "the application never called start_response");
            log_app_exception(state_of(w), "Error in the WSGI application's response");
            send_error(w, 500);
            goto done;
        }
    }
    if (!w->ending) {
        w->ending = 1;
        if (send_finish(w) > 0)
            return 1;
    }
done:
    /* The response is out (or failed): the client may send its next
     * request before this thread is back in the pool, and pool_submit
     * must count it as free already. */
    pool_finishing(w->server->pool, w->index, 1);
    /* PEP 3333: close() is called whatever happened, even on errors. */
    call_close(state_of(w), w->result);
    return 0;
}

/* After the response: what the request held goes, the access record goes
 * out. */
static void end_request(struct worker *w)
{
    struct metrics *m = w->server->metrics;
    metrics_count_response(m, w->response.sent_status);
    metrics_request_finished(m, monotonic_us() - w->conn->taken_us);
    Py_CLEAR(w->out_owner);
    Py_CLEAR(w->iterator);
    Py_CLEAR(w->result);
    start_response_renew_if_kept(w);
    if (w->server->options.access_log)
        log_access(w->server, w->conn, w->env, &w->response);
    if (w->input)
        input_detach(w->input);
    Py_CLEAR(w->input);
    Py_CLEAR(w->env);
    if (w->response.failed)
        w->response.must_close = 1;
}

int wsgi_handle_request(struct worker *w)
{
    w->response = (struct response_state){.content_length = -1};
    w->head.len = 0;
    w->out = (struct response_out){.file_fd = -1};
    w->known_length = -1;
    w->body_done = 0;
    w->ending = 0;
    w->park_deadline_ms = 0;
    struct conn *c = w->conn;
    c->taken_us = monotonic_us();
    metrics_request_started(w->server->metrics, c->taken_us - c->queued_us);

    w->env = environ_build(w, &w->input);
    if (w->env == NULL) {
        log_app_exception(state_of(w), "Error building the WSGI environ");
        send_error(w, 500);
        goto done;
    }
    w->result =
        PyObject_CallFunctionObjArgs(w->server->application, w->env, w->start_response, NULL);
    if (w->result == NULL) {
        log_app_exception(state_of(w), "Error calling the WSGI application");
        if (!w->response.headers_sent)
            send_error(w, 500);
        w->response.must_close = 1;
        goto done;
    }
    if (drive_response(w)) {
        /* The result may hold start_response: then it is the request's. */
        start_response_renew_if_kept(w);
        return 1;
    }
done:
    end_request(w);
    return 0;
}

int wsgi_resume_response(struct worker *w)
{
    send_unpark(w);
    /* Woken by its deadline: a socket that still takes nothing is given up. */
    size_t before = response_out_left(&w->out);
    int rc = send_try(w);
    size_t after = response_out_left(&w->out);
    if (rc < 0 || (rc > 0 && after == before && monotonic_ms() >= w->conn->deadline_ms)) {
        log_write(LOG_DEBUG, "client on fd %d left or stopped reading: response dropped",
                  w->conn->fd);
        w->response.failed = w->response.must_close = 1;
        call_close(state_of(w), w->result);
    } else {
        /* Woken without the client taking anything: no new deadline. */
        w->park_deadline_ms = after == before ? w->conn->deadline_ms : 0;
        if (drive_response(w))
            return 1;
    }
    end_request(w);
    return 0;
}

void wsgi_drop_parked(struct server *server, struct conn *c)
{
    struct parked_response *p = c->parked;
    c->parked = NULL;
    /* Counted and logged as far as it went, like a drop by send_timeout. */
    metrics_count_response(server->metrics, p->response.sent_status);
    metrics_request_finished(server->metrics, monotonic_us() - c->taken_us);
    struct module_state *st = module_get_state(server->module);
    call_close(st, p->result);
    if (server->options.access_log)
        log_access(server, c, p->env, &p->response);
    Py_XDECREF(p->out_owner);
    Py_XDECREF(p->iterator);
    Py_XDECREF(p->result);
    if (p->input)
        input_detach(p->input);
    Py_XDECREF(p->input);
    Py_XDECREF(p->env);
    buf_free(&p->head);
    free(p);
    conn_return_close(&server->conn_return, c);
}

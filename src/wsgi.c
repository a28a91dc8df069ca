/* One request through the WSGI app (PEP 3333): the environ, start_response
 * and its write(), iterating the result, framing and sending it, and
 * close(). Runs on a worker thread holding the GIL; every blocking write
 * releases it. */
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

#include "pyruvate/environ.h"
#include "pyruvate/filewrapper.h"
#include "pyruvate/http_status.h"
#include "pyruvate/input.h"
#include "pyruvate/log.h"
#include "pyruvate/park.h"
#include "pyruvate/proxy.h"
#include "pyruvate/server.h"

typedef struct {
    PyObject_HEAD
    struct worker *worker;
    PyObject *write; /* bound write(), returned by every call */
} StartResponseObject;

static int send_body(struct worker *w, const char *data, size_t len);
static int finish_response(struct worker *w);
static int send_or_park(struct worker *w);
static void send_error_response(struct worker *w, int status);
static void log_app_exception(struct module_state *st, const char *what);

static struct module_state *state_of(struct worker *w)
{
    return module_get_state(w->server->module);
}

/* ---- start_response --------------------------------------------------- */

/* Validates status and headers and writes them into w->head, so that the
 * app changing the list afterwards cannot put anything unchecked on the
 * wire. Raises and returns -1 when they are not what PEP 3333 allows. */
static int record_response_head(struct worker *w, PyObject *status, PyObject *headers)
{
    Py_ssize_t status_len;
    const char *status_text = module_latin1_data(status, &status_len);
    if (status_text == NULL) {
        PyErr_SetString(PyExc_TypeError, "status must be a str of latin-1 characters");
        return -1;
    }
    int code = response_parse_status(status_text, (size_t)status_len);
    if (code < 0) {
        PyErr_Format(PyExc_ValueError, "invalid status %R: expected '<3 digits> <reason>'", status);
        return -1;
    }
    if (!PyList_Check(headers)) {
        PyErr_SetString(PyExc_TypeError, "response headers must be a list");
        return -1;
    }
    /* w->response changes only when all of it is valid. */
    struct response_state fresh;
    int head_request = strcmp(w->conn->request.method, "HEAD") == 0;
    if (response_begin(&fresh, &w->head, code, status_text, (size_t)status_len, head_request) < 0)
        goto nomemory;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *item = PyList_GET_ITEM(headers, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError, "header %zd must be a (name, value) tuple", i);
            return -1;
        }
        Py_ssize_t name_len, value_len;
        const char *name = module_latin1_data(PyTuple_GET_ITEM(item, 0), &name_len);
        const char *value = module_latin1_data(PyTuple_GET_ITEM(item, 1), &value_len);
        if (name == NULL || value == NULL) {
            PyErr_Format(PyExc_TypeError, "header %R: name and value must be latin-1 str", item);
            return -1;
        }
        switch (response_add_header(&fresh, &w->head, name, (size_t)name_len, value,
                                    (size_t)value_len)) {
        case RESPONSE_HEADER_OK:
            break;
        case RESPONSE_HEADER_INVALID:
            PyErr_Format(PyExc_ValueError, "invalid header %R (control characters or bad name)",
                         item);
            return -1;
        case RESPONSE_HEADER_BAD_LENGTH:
            PyErr_Format(PyExc_ValueError, "invalid Content-Length %R", item);
            return -1;
        default:
            goto nomemory;
        }
    }
    w->response = fresh;
    return 0;
nomemory:
    PyErr_NoMemory();
    return -1;
}

/* start_response and write() act only for the request they were given to:
 * on its worker's thread (another thread could change the response while
 * the worker writes it without the GIL) and while it runs. A callable kept
 * past its request is cut loose by wsgi_handle_request. */
static int belongs_to_current_request(const struct worker *w)
{
    return w != NULL && w->conn != NULL && PyThreadState_Get() == w->thread_state;
}

static PyObject *start_response_call(StartResponseObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"status", "headers", "exc_info", NULL};
    PyObject *status, *headers, *exc_info = Py_None;
    struct worker *w = self->worker;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response", keywords, &status,
                                     &headers, &exc_info))
        return NULL;
    if (!belongs_to_current_request(w)) {
        PyErr_SetString(PyExc_RuntimeError, "start_response called outside of its request");
        return NULL;
    }
    if (exc_info != Py_None) {
        /* PEP 3333: after the headers went out, the error can only be
         * re-raised; before, the new status and headers replace the old. */
        if (w->response.headers_sent) {
            if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
                PyErr_SetString(PyExc_TypeError, "exc_info must be a 3-tuple");
                return NULL;
            }
            PyObject *type = PyTuple_GET_ITEM(exc_info, 0);
            PyObject *value = PyTuple_GET_ITEM(exc_info, 1);
            PyObject *tb = PyTuple_GET_ITEM(exc_info, 2);
            Py_INCREF(type);
            Py_INCREF(value);
            Py_INCREF(tb);
            PyErr_Restore(type, value, tb);
            return NULL;
        }
    } else if (w->response.status != 0) {
        PyErr_SetString(PyExc_RuntimeError, "start_response called a second time without exc_info");
        return NULL;
    }
    if (record_response_head(w, status, headers) < 0)
        return NULL;
    return Py_NewRef(self->write);
}

static PyObject *start_response_write(StartResponseObject *self, PyObject *data)
{
    struct worker *w = self->worker;
    if (!belongs_to_current_request(w) || w->response.status == 0) {
        PyErr_SetString(PyExc_RuntimeError, "write() called before start_response");
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (send_body(w, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data)) < 0) {
        PyErr_SetString(PyExc_OSError, "client connection lost");
        return NULL;
    }
    Py_RETURN_NONE;
}

static int start_response_traverse(StartResponseObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->write);
    return 0;
}

static int start_response_clear(StartResponseObject *self)
{
    Py_CLEAR(self->write);
    return 0;
}

static void start_response_dealloc(StartResponseObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    start_response_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef start_response_write_def = {
    "write", (PyCFunction)start_response_write, METH_O,
    "write($self, data, /)\n--\n\nSend data now (PEP 3333's imperative write callable)."};

static PyType_Slot start_response_slots[] = {
    {Py_tp_call, start_response_call},
    {Py_tp_dealloc, start_response_dealloc},
    {Py_tp_traverse, start_response_traverse},
    {Py_tp_clear, start_response_clear},
    {Py_tp_doc, "start_response(status, headers, exc_info=None)\n--\n\nPEP 3333 start_response."},
    {0, NULL},
};

PyType_Spec wsgi_start_response_spec = {
    .name = "pyruvate._pyruvate.StartResponse",
    .basicsize = sizeof(StartResponseObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = start_response_slots,
};

/* When the app kept start_response or its write() beyond the request, the
 * next request gets new ones, and the kept ones raise from now on. */
static void renew_start_response_if_kept(struct worker *w)
{
    StartResponseObject *old = (StartResponseObject *)w->start_response;
    /* Unkept, the worker and old's own write() (its m_self) hold old, and
     * only old holds its write(). */
    if (Py_REFCNT(old) == 2 && Py_REFCNT(old->write) == 1)
        return;
    PyObject *fresh = wsgi_start_response_new(w);
    if (fresh == NULL) {
        PyErr_Clear(); /* keep the old one; try again after the next request */
        return;
    }
    old->worker = NULL;
    /* Breaks the old <-> write() cycle: a kept write() still refers to old
     * and raises, and old itself raises before it would return write(). */
    Py_CLEAR(old->write);
    Py_SETREF(w->start_response, fresh);
}

PyObject *wsgi_start_response_new(struct worker *w)
{
    struct module_state *st = state_of(w);
    StartResponseObject *self = PyObject_GC_New(StartResponseObject, st->start_response_type);
    if (self == NULL)
        return NULL;
    self->worker = w;
    self->write = NULL;
    PyObject_GC_Track(self);
    self->write = PyCFunction_New(&start_response_write_def, (PyObject *)self);
    if (self->write == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* ---- sending ---------------------------------------------------------- */

/* Sends w->out, waiting up to send_timeout each time the socket is full.
 * Returns 0, or -1 when the connection failed (then nothing more is sent). */
static int send_out(struct worker *w)
{
    struct response_out *out = &w->out;
    int fd = w->conn->fd, timeout = w->server->options.send_timeout_ms;
    /* Most responses fit the socket buffer: a send that cannot block costs
     * less with the GIL held than the two GIL handoffs around it. Only a
     * write that has to wait lets the other workers run meanwhile. */
    int rc = response_out_try(fd, out), saved_errno = errno;
    if (rc > 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = response_out_send(fd, out, timeout, 0);
        saved_errno = errno;
        Py_END_ALLOW_THREADS
    }
    if (rc < 0) {
        log_write(LOG_DEBUG, "write to client failed (errno %d)", saved_errno);
        w->response.failed = 1;
        w->response.must_close = 1;
    }
    return rc;
}

/* ---- parking ---------------------------------------------------------- */

/* How long a worker waits for a client that does not take the response as
 * fast as it is written, before it parks the response and goes back to the
 * pool: long enough that a reading client never notices, short enough that
 * clients that stopped reading cannot keep the workers from others. */
enum { PARK_AFTER_MS = 20 };

/* Everything a response in progress needs when it leaves its worker. */
struct parked_response {
    struct response_state response;
    struct buf head;
    struct response_out out;
    PyObject *out_owner, *env, *input, *result, *iterator;
    long long known_length;
    int ending;
};

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
static void unpark_response(struct worker *w)
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
    w->ending = p->ending;
    free(p);
}

/* Sends w->out. A client that takes none of it for PARK_AFTER_MS gets its
 * response parked. Returns 0 when sent, 1 when parked (the worker must let
 * go of the connection), -1 when the connection failed. */
static int send_or_park(struct worker *w)
{
    struct response_out *out = &w->out;
    int fd = w->conn->fd;
    int rc = response_out_try(fd, out), saved_errno = errno;
    if (rc > 0 && w->server->park) {
        Py_BEGIN_ALLOW_THREADS
        rc = response_out_send(fd, out, PARK_AFTER_MS, monotonic_ms() + PARK_AFTER_MS);
        saved_errno = errno;
        Py_END_ALLOW_THREADS
        if (rc < 0 && saved_errno == ETIMEDOUT) {
            if (park_response(w) == 0)
                return 1;
            rc = 1; /* too many parked: wait here, as without parking */
        }
    }
    if (rc > 0)
        return send_out(w);
    if (rc < 0) {
        log_write(LOG_DEBUG, "write to client failed (errno %d)", saved_errno);
        w->response.failed = w->response.must_close = 1;
    }
    return rc;
}

/* The request and server facts the framing depends on. */
static void response_context_of(struct worker *w, struct response_context *ctx)
{
    const struct request *r = &w->conn->request;
    const struct server_options *opt = &w->server->options;
    time_t now = time(NULL);
    if (now != w->date_second) {
        response_http_date(now, w->date);
        w->date_second = now;
    }
    *ctx = (struct response_context){
        .http_minor = r->http_minor,
        .keep_alive = r->keep_alive,
        .chunked_allowed = opt->chunked_transfer,
        .last_on_connection =
            atomic_load(&w->server->stopping) ||
            (opt->max_reuse_count && w->conn->requests_served + 1 >= opt->max_reuse_count),
        .date = w->date,
    };
}

/* Frames body bytes into w->out (see response_frame). Every body byte
 * leaves the server through here. */
static int frame_body(struct worker *w, const char *data, int file_fd, off_t file_offset,
                      size_t len, long long known)
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
    if (frame_body(w, data, file_fd, file_offset, len, known) < 0)
        return -1;
    return send_out(w);
}

static int send_body(struct worker *w, const char *data, size_t len)
{
    /* PEP 3333: headers go out with the first non-empty chunk. */
    if (len == 0)
        return 0;
    return send_framed(w, data, -1, 0, len, -1);
}

/* Ends the body's framing. Returns 0, 1 when parked, -1 when failed. */
static int finish_response(struct worker *w)
{
    if (w->response.failed)
        return -1;
    if (!w->response.headers_sent)
        return send_framed(w, NULL, -1, 0, 0, 0);
    if (response_finish(&w->response, &w->out))
        return send_or_park(w);
    return 0;
}

static void send_error_response(struct worker *w, int status)
{
    char text[512];
    size_t len = http_status_error_response(status, time(NULL), text, sizeof(text));
    w->response.must_close = 1;
    w->response.sent_status = status;
    w->out = (struct response_out){.framing = text, .framing_len = len, .file_fd = -1};
    if (len > 0)
        send_out(w);
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
    frame_body(w, NULL, (int)fd, offset, available, known);
    return 1;
}

/* Iterates the app's result and sends each chunk, from where it stands (a
 * resumed response goes on with the iterator it had). Returns 0 when the
 * body is done, 1 when parked, -1 with an exception set when the app
 * misbehaved. */
static int send_result(struct worker *w)
{
    if (w->iterator == NULL) {
        int framed = try_sendfile(w, w->result);
        if (framed < 0)
            return -1;
        if (framed)
            return response_out_pending(&w->out) && send_or_park(w) > 0;
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
        w->out_owner = chunk;
        if (len > 0 &&
            frame_body(w, PyBytes_AS_STRING(chunk), -1, 0, (size_t)len, w->known_length) == 0 &&
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
 * for the "pyruvate.access" logger. */
static void log_access(struct worker *w, PyObject *env)
{
    /* REMOTE_ADDR from the environ: behind a trusted proxy, the client's. */
    Py_ssize_t addr_len = 0;
    const char *addr = NULL;
    PyObject *remote = env ? PyDict_GetItemWithError(env, state_of(w)->str_REMOTE_ADDR) : NULL;
    if (remote)
        addr = module_latin1_data(remote, &addr_len);
    PyErr_Clear();
    char address[64] = "";
    if (addr && addr_len > 0 && (size_t)addr_len < sizeof(address)) {
        memcpy(address, addr, (size_t)addr_len);
        address[addr_len] = '\0';
    }
    char line[LOG_MESSAGE_LEN];
    conn_access_line(w->conn, address, w->response.sent_status, w->response.body_sent, line,
                     sizeof(line));
    if (w->server->options.async_logging) {
        log_write_access(line);
        return;
    }
    PyObject *done = PyObject_CallMethod(state_of(w)->access_logger, "info", "s", line);
    if (done == NULL)
        PyErr_WriteUnraisable(state_of(w)->access_logger);
    Py_XDECREF(done);
}

/* Sends the response from where it stands (just after the app returned,
 * or resumed after a park): the rest of w->out, the rest of the body, the
 * end of its framing; then close(). Returns 1 when parked (again), 0 when
 * the response is over. */
static int drive_response(struct worker *w)
{
    int rc;
    if (response_out_pending(&w->out)) {
        if (send_or_park(w) > 0)
            return 1;
        Py_CLEAR(w->out_owner);
    }
    if (w->ending)
        goto done;
    rc = send_result(w);
    if (rc > 0)
        return 1;
    if (rc < 0) {
        log_app_exception(state_of(w), "Error in the WSGI application's response");
        if (!w->response.headers_sent)
            send_error_response(w, 500);
        /* Headers already out: closing is the only honest signal left. */
        w->response.must_close = 1;
    } else if (w->response.status == 0) {
        PyErr_SetString(PyExc_RuntimeError, "the application never called start_response");
        log_app_exception(state_of(w), "Error in the WSGI application's response");
        send_error_response(w, 500);
    } else {
        w->ending = 1;
        if (finish_response(w) > 0)
            return 1;
    }
done:
    /* PEP 3333: close() is called whatever happened, even on errors. */
    call_close(state_of(w), w->result);
    return 0;
}

/* After the response: what the request held goes, the access record goes
 * out. */
static void end_request(struct worker *w)
{
    Py_CLEAR(w->out_owner);
    Py_CLEAR(w->iterator);
    Py_CLEAR(w->result);
    renew_start_response_if_kept(w);
    if (w->server->options.access_log)
        log_access(w, w->env);
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
    w->ending = 0;
    w->park_deadline_ms = 0;

    w->env = environ_build(w, &w->input);
    if (w->env == NULL) {
        log_app_exception(state_of(w), "Error building the WSGI environ");
        send_error_response(w, 500);
        goto done;
    }
    w->result =
        PyObject_CallFunctionObjArgs(w->server->application, w->env, w->start_response, NULL);
    if (w->result == NULL) {
        log_app_exception(state_of(w), "Error calling the WSGI application");
        if (!w->response.headers_sent)
            send_error_response(w, 500);
        w->response.must_close = 1;
        goto done;
    }
    if (drive_response(w)) {
        /* The result may hold start_response: then it is the request's. */
        renew_start_response_if_kept(w);
        return 1;
    }
done:
    end_request(w);
    return 0;
}

int wsgi_resume_response(struct worker *w)
{
    unpark_response(w);
    /* Woken by its deadline: a socket that still takes nothing is given up. */
    size_t before = w->out.framing_len + w->out.data_len + w->out.file_len + w->out.after_len;
    int rc = response_out_try(w->conn->fd, &w->out);
    size_t after = w->out.framing_len + w->out.data_len + w->out.file_len + w->out.after_len;
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
    struct module_state *st = module_get_state(server->module);
    call_close(st, p->result);
    Py_XDECREF(p->out_owner);
    Py_XDECREF(p->iterator);
    Py_XDECREF(p->result);
    if (p->input)
        input_detach(p->input);
    Py_XDECREF(p->input);
    Py_XDECREF(p->env);
    buf_free(&p->head);
    free(p);
    acceptor_close(server->acceptor, c);
}

/* start_response and its write() (PEP 3333): the status and headers the
 * app gives are checked and written into the worker's head at once. Needs
 * the GIL. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/start_response.h"

#include <string.h>

#include "pyruvate/send.h"
#include "pyruvate/server_state.h"
#include "pyruvate/worker_state.h"

typedef struct {
    PyObject_HEAD
    struct worker *worker;
    PyObject *write; /* bound write(), returned by every call */
} StartResponseObject;

static struct module_state *state_of(struct worker *w)
{
    return module_get_state(w->server->module);
}

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
    int head_request = strcmp(w->conn->request->method, "HEAD") == 0;
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
        case RESPONSE_HEADER_CONFLICTING_LENGTH:
            PyErr_Format(PyExc_ValueError, "conflicting Content-Length %R", item);
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

PyType_Spec start_response_spec = {
    .name = "pyruvate._pyruvate.StartResponse",
    .basicsize = sizeof(StartResponseObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = start_response_slots,
};

/* When the app kept start_response or its write() beyond the request, the
 * next request gets new ones, and the kept ones raise from now on. */
void start_response_renew_if_kept(struct worker *w)
{
    StartResponseObject *old = (StartResponseObject *)w->start_response;
    /* Unkept, the worker and old's own write() (its m_self) hold old, and
     * only old holds its write(). */
    if (Py_REFCNT(old) == 2 && Py_REFCNT(old->write) == 1)
        return;
    PyObject *fresh = start_response_new(w);
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

PyObject *start_response_new(struct worker *w)
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

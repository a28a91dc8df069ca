/* wsgi.input over the buffered request body (PEP 3333 "Input and Error
 * Streams"): read, readline, readlines and iteration, plus seek, tell and
 * seekable, which PEP 3333 does not ask for but Zope needs: it retries a
 * request after a ConflictError by seeking wsgi.input back to 0. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/input.h"

#include <string.h>

typedef struct {
    PyObject_HEAD
    const char *data; /* owned by the connection; NULL once detached */
    Py_ssize_t len;
    Py_ssize_t pos;
} InputObject;

PyObject *input_new(struct module_state *state, const char *data, Py_ssize_t len)
{
    InputObject *self = PyObject_New(InputObject, state->input_type);
    if (self == NULL)
        return NULL;
    self->data = data;
    self->len = len;
    self->pos = 0;
    return (PyObject *)self;
}

void input_detach(PyObject *input)
{
    InputObject *self = (InputObject *)input;
    self->data = NULL;
    self->len = 0;
    self->pos = 0;
}

static void input_dealloc(InputObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_Free(self);
    Py_DECREF(tp);
}

/* Parses the optional size argument: None or a negative int means "all". */
static int size_argument(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *size)
{
    *size = -1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "expected at most one argument");
        return -1;
    }
    if (nargs == 0 || args[0] == Py_None)
        return 0;
    *size = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (*size == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

static Py_ssize_t remaining(const InputObject *self)
{
    return self->len - self->pos;
}

static PyObject *take(InputObject *self, Py_ssize_t n)
{
    PyObject *bytes = PyBytes_FromStringAndSize(self->data ? self->data + self->pos : "", n);
    if (bytes)
        self->pos += n;
    return bytes;
}

static PyObject *input_read(InputObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;
    if (size_argument(args, nargs, &size) < 0)
        return NULL;
    Py_ssize_t n = remaining(self);
    if (size >= 0 && size < n)
        n = size;
    return take(self, n);
}

/* Bytes up to and including the next newline, at most limit (-1: no limit). */
static Py_ssize_t line_length(const InputObject *self, Py_ssize_t limit)
{
    Py_ssize_t n = remaining(self);
    if (limit >= 0 && limit < n)
        n = limit;
    if (n == 0)
        return 0;
    const char *newline = memchr(self->data + self->pos, '\n', (size_t)n);
    return newline ? (Py_ssize_t)(newline - (self->data + self->pos)) + 1 : n;
}

static PyObject *input_readline(InputObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;
    if (size_argument(args, nargs, &size) < 0)
        return NULL;
    return take(self, line_length(self, size));
}

static PyObject *input_readlines(InputObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint;
    if (size_argument(args, nargs, &hint) < 0)
        return NULL;
    PyObject *lines = PyList_New(0);
    if (lines == NULL)
        return NULL;
    Py_ssize_t total = 0;
    while (remaining(self) > 0 && (hint <= 0 || total < hint)) {
        Py_ssize_t n = line_length(self, -1);
        PyObject *line = take(self, n);
        if (line == NULL || PyList_Append(lines, line) < 0) {
            Py_XDECREF(line);
            Py_DECREF(lines);
            return NULL;
        }
        Py_DECREF(line);
        total += n;
    }
    return lines;
}

static PyObject *input_iternext(InputObject *self)
{
    Py_ssize_t n = line_length(self, -1);
    if (n == 0)
        return NULL; /* StopIteration */
    return take(self, n);
}

/* seek(offset, whence=0) as io.BytesIO's, except that a position past the
 * end stops at the end: reading there gives b"" either way. */
static PyObject *input_seek(InputObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "seek() takes an offset and an optional whence");
        return NULL;
    }
    Py_ssize_t offset = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (offset == -1 && PyErr_Occurred())
        return NULL;
    long whence = 0;
    if (nargs == 2) {
        whence = PyLong_AsLong(args[1]);
        if (whence == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_ssize_t base;
    switch (whence) {
    case 0: /* SEEK_SET: io.BytesIO refuses a negative absolute position */
        if (offset < 0) {
            PyErr_Format(PyExc_ValueError, "negative seek value %zd", offset);
            return NULL;
        }
        base = 0;
        break;
    case 1: /* SEEK_CUR */
        base = self->pos;
        break;
    case 2: /* SEEK_END */
        base = self->len;
        break;
    default:
        PyErr_Format(PyExc_ValueError, "invalid whence (%ld, should be 0, 1 or 2)", whence);
        return NULL;
    }
    /* Clamped to [0, len] without overflow (offset may be any Py_ssize_t;
     * 0 <= base <= len). */
    if (offset < 0)
        self->pos = offset <= -base ? 0 : base + offset;
    else
        self->pos = offset >= self->len - base ? self->len : base + offset;
    return PyLong_FromSsize_t(self->pos);
}

static PyObject *input_tell(InputObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->pos);
}

static PyObject *input_seekable(InputObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    Py_RETURN_TRUE;
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL,
     "read($self, size=-1, /)\n--\n\nRead up to size bytes of the body (all if negative)."},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL,
     "readline($self, size=-1, /)\n--\n\nRead one line, at most size bytes."},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
     "readlines($self, hint=-1, /)\n--\n\nRead lines until about hint bytes (all if <= 0)."},
    {"seek", (PyCFunction)(void (*)(void))input_seek, METH_FASTCALL,
     "seek($self, offset, whence=0, /)\n--\n\nMove to offset from the start (0), the current "
     "position (1) or the end (2), within the body; return the new position."},
    {"tell", (PyCFunction)input_tell, METH_NOARGS,
     "tell($self, /)\n--\n\nThe current position in the body."},
    {"seekable", (PyCFunction)input_seekable, METH_NOARGS,
     "seekable($self, /)\n--\n\nTrue: the body is in memory."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot input_slots[] = {
    {Py_tp_dealloc, input_dealloc},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, input_iternext},
    {Py_tp_methods, input_methods},
    {Py_tp_doc, "wsgi.input: the request body, read from memory."},
    {0, NULL},
};

PyType_Spec input_spec = {
    .name = "pyruvate._pyruvate.Input",
    .basicsize = sizeof(InputObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = input_slots,
};

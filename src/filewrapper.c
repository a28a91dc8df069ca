/* pyruvate.FileWrapper (PEP 3333 "Optional Platform-Specific File
 * Handling"): iterates a file-like in blocks; the worker recognises it and
 * uses sendfile(2) when the file has a real descriptor. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/filewrapper.h"

#include <stddef.h>
#include <structmember.h>

static PyObject *filewrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"filelike", "blksize", NULL};
    PyObject *filelike;
    Py_ssize_t blksize = 8192;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:FileWrapper", keywords, &filelike,
                                     &blksize))
        return NULL;
    if (blksize <= 0) {
        PyErr_SetString(PyExc_ValueError, "blksize must be positive");
        return NULL;
    }
    FileWrapperObject *self = (FileWrapperObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->filelike = Py_NewRef(filelike);
    self->blksize = blksize;
    return (PyObject *)self;
}

static int filewrapper_traverse(FileWrapperObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->filelike);
    return 0;
}

static int filewrapper_clear(FileWrapperObject *self)
{
    Py_CLEAR(self->filelike);
    return 0;
}

static void filewrapper_dealloc(FileWrapperObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    filewrapper_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *filewrapper_iternext(FileWrapperObject *self)
{
    if (self->filelike == NULL)
        return NULL;
    PyObject *block = PyObject_CallMethod(self->filelike, "read", "n", self->blksize);
    if (block == NULL)
        return NULL;
    if (PyObject_Length(block) <= 0) {
        Py_DECREF(block);
        if (PyErr_Occurred())
            return NULL;
        return NULL; /* StopIteration */
    }
    return block;
}

static PyObject *filewrapper_close(FileWrapperObject *self, PyObject *unused)
{
    (void)unused;
    if (self->filelike == NULL)
        Py_RETURN_NONE;
    PyObject *close = PyObject_GetAttrString(self->filelike, "close");
    if (close == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *result = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    return result;
}

static PyMethodDef filewrapper_methods[] = {
    {"close", (PyCFunction)filewrapper_close, METH_NOARGS,
     "close($self, /)\n--\n\nClose the wrapped file-like, if it has close()."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef filewrapper_members[] = {
    {"filelike", T_OBJECT, offsetof(FileWrapperObject, filelike), READONLY, NULL},
    {"blksize", T_PYSSIZET, offsetof(FileWrapperObject, blksize), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot filewrapper_slots[] = {
    {Py_tp_new, filewrapper_new},
    {Py_tp_dealloc, filewrapper_dealloc},
    {Py_tp_traverse, filewrapper_traverse},
    {Py_tp_clear, filewrapper_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, filewrapper_iternext},
    {Py_tp_methods, filewrapper_methods},
    {Py_tp_members, filewrapper_members},
    {Py_tp_doc, "FileWrapper(filelike, blksize=8192)\n--\n\n"
                "Wrap a file-like so the server can send it efficiently (sendfile for real "
                "files)."},
    {0, NULL},
};

PyType_Spec filewrapper_spec = {
    .name = "pyruvate.FileWrapper",
    .basicsize = sizeof(FileWrapperObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = filewrapper_slots,
};

/* pyruvate.FileWrapper, offered as wsgi.file_wrapper: marks a file-like the
 * app returns, so the worker can send a real file with sendfile(2) instead
 * of iterating it in Python. Needs the GIL. */
#ifndef PYRUVATE_FILEWRAPPER_H
#define PYRUVATE_FILEWRAPPER_H

#include "pyruvate/state.h"

typedef struct {
    PyObject_HEAD
    PyObject *filelike;
    Py_ssize_t blksize;
} FileWrapperObject;

extern PyType_Spec filewrapper_spec;

#endif

/* Module state of pyruvate._pyruvate: types, interned environ keys and
 * constants, shared by every Python-facing file. module.c fills it at
 * import; this header depends on nothing of pyruvate, so any file can
 * include it without standing above module.c. Needs the GIL. */
#ifndef PYRUVATE_STATE_H
#define PYRUVATE_STATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The environ keys and constant values, interned once at import. */
#define MODULE_STRINGS(X)                               \
    X(REQUEST_METHOD, "REQUEST_METHOD")                 \
    X(SCRIPT_NAME, "SCRIPT_NAME")                       \
    X(PATH_INFO, "PATH_INFO")                           \
    X(QUERY_STRING, "QUERY_STRING")                     \
    X(REQUEST_URI, "REQUEST_URI")                       \
    X(CONTENT_TYPE, "CONTENT_TYPE")                     \
    X(CONTENT_LENGTH, "CONTENT_LENGTH")                 \
    X(SERVER_NAME, "SERVER_NAME")                       \
    X(SERVER_PORT, "SERVER_PORT")                       \
    X(SERVER_PROTOCOL, "SERVER_PROTOCOL")               \
    X(REMOTE_ADDR, "REMOTE_ADDR")                       \
    X(REMOTE_PORT, "REMOTE_PORT")                       \
    X(HTTP_HOST, "HTTP_HOST")                           \
    X(wsgi_version, "wsgi.version")                     \
    X(wsgi_url_scheme, "wsgi.url_scheme")               \
    X(wsgi_input, "wsgi.input")                         \
    X(wsgi_errors, "wsgi.errors")                       \
    X(wsgi_multithread, "wsgi.multithread")             \
    X(wsgi_multiprocess, "wsgi.multiprocess")           \
    X(wsgi_run_once, "wsgi.run_once")                   \
    X(wsgi_file_wrapper, "wsgi.file_wrapper")           \
    X(wsgi_input_terminated, "wsgi.input_terminated")   \
    X(HTTP_1_0, "HTTP/1.0")                             \
    X(HTTP_1_1, "HTTP/1.1")                             \
    X(http, "http")                                     \
    X(empty, "")                                        \
    X(close, "close")                                   \
    X(fileno, "fileno")                                 \
    X(tell, "tell")                                     \
    X(read, "read")                                     \
    X(https, "https")                                   \
    X(queue_wait, "pyruvate.queue_wait")                \
    X(HTTP_X_FORWARDED_FOR, "HTTP_X_FORWARDED_FOR")     \
    X(HTTP_X_FORWARDED_PROTO, "HTTP_X_FORWARDED_PROTO") \
    X(HTTP_X_FORWARDED_HOST, "HTTP_X_FORWARDED_HOST")   \
    X(HTTP_FORWARDED, "HTTP_FORWARDED")

struct module_state {
    PyTypeObject *input_type;
    PyTypeObject *start_response_type;
    PyTypeObject *file_wrapper_type;
    PyObject *wsgi_version_value; /* (1, 0) */
    PyObject *logger;             /* logging.getLogger("pyruvate") */
    PyObject *access_logger;      /* logging.getLogger("pyruvate.access") */
#define MODULE_STRING_FIELD(name, text) PyObject *str_##name;
    MODULE_STRINGS(MODULE_STRING_FIELD)
#undef MODULE_STRING_FIELD
};

/* The state of the module object. Inline, so that the files below module.c
 * (server.c and the rest) need nothing of module.c: module.c calls into
 * them, never the other way round. */
static inline struct module_state *module_get_state(PyObject *module)
{
    return (struct module_state *)PyModule_GetState(module);
}

/* A str whose characters all fit in one byte, as latin-1 bytes (PEP 3333's
 * native strings), or NULL without an exception for any other object. */
static inline const char *module_latin1_data(PyObject *s, Py_ssize_t *len)
{
    if (!PyUnicode_Check(s) || PyUnicode_READY(s) < 0 || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND)
        return NULL;
    *len = PyUnicode_GET_LENGTH(s);
    return (const char *)PyUnicode_1BYTE_DATA(s);
}

#endif

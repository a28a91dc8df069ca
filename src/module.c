/* pyruvate._pyruvate: module state, types, serve() and OPTIONS.
 * Multi-phase initialisation; the server itself lives in server.c. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/state.h"

#include "pyruvate/filewrapper.h"
#include "pyruvate/input.h"
#include "pyruvate/options.h"
#include "pyruvate/server.h"
#include "pyruvate/signals.h"
#include "pyruvate/start_response.h"

/* serve()'s arguments are parsed by options.c, from the table in options.h. */
static PyObject *serve(PyObject *module, PyObject *args, PyObject *kwargs)
{
    PyObject *application;
    struct server_bind bind;
    struct server_options options;
    if (options_parse(module, args, kwargs, &application, &bind, &options) < 0)
        return NULL;
    return server_run(module, application, &bind, &options);
}

/* The Makefile names its build variant (release, coverage, asan...), so that
 * a benchmark can refuse to time an instrumented build; setup.py's builds
 * are optimised like release. */
#ifndef PYRUVATE_VARIANT
#define PYRUVATE_VARIANT "release"
#endif

static PyMethodDef module_methods[] = {
    {"serve", (PyCFunction)(void (*)(void))serve, METH_VARARGS | METH_KEYWORDS, options_serve_doc},
    {"stats", server_stats, METH_NOARGS,
     "stats($module, /)\n--\n\nThe running server's metrics as a dict: the numbers that "
     "metrics_path\nshows, histograms as lists of (upper bound in seconds, cumulative "
     "count).\nNone when no serve() runs in this process."},
    {"shutdown", (PyCFunction)(void (*)(void))server_shutdown, METH_VARARGS | METH_KEYWORDS,
     "shutdown($module, /, timeout=None)\n--\n\n"
     "Ask every serve() running in this process to stop as on SIGTERM: stop\n"
     "accepting, answer every request already taken in (with Connection: close)\n"
     "and make serve() return None. timeout (seconds) bounds the drain instead of the\n"
     "server's shutdown_timeout; the shortest asked for wins.\n\n"
     "Returns at once, with the number of servers asked to stop: 0 when none\n"
     "runs (not an error; a serve() that starts later is not affected). Each\n"
     "begins its drain a moment later in its own thread: join that thread to\n"
     "wait for serve() to return. Safe from any thread and from a signal\n"
     "handler; calling it again is harmless (a shorter timeout shortens the\n"
     "drain)."},
    {"_on_signal", signals_on_signal, METH_VARARGS,
     "_on_signal($module, signum, frame, /)\n--\n\nSIGTERM and SIGINT handler installed by "
     "serve()."},
    {NULL, NULL, 0, NULL},
};

static int add_type(PyObject *module, PyType_Spec *spec, PyTypeObject **slot, int public)
{
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(module, spec, NULL);
    if (*slot == NULL)
        return -1;
    if (public)
        return PyModule_AddType(module, *slot);
    return 0;
}

static int module_exec(PyObject *module)
{
    struct module_state *st = module_get_state(module);
#define MODULE_STRING_INIT(name, text)                               \
    if ((st->str_##name = PyUnicode_InternFromString(text)) == NULL) \
        return -1;
    MODULE_STRINGS(MODULE_STRING_INIT)
#undef MODULE_STRING_INIT
    if (add_type(module, &input_spec, &st->input_type, 0) < 0 ||
        add_type(module, &start_response_spec, &st->start_response_type, 0) < 0 ||
        add_type(module, &filewrapper_spec, &st->file_wrapper_type, 1) < 0)
        return -1;
    PyObject *options = options_table();
    int added = options == NULL ? -1 : PyModule_AddObjectRef(module, "OPTIONS", options);
    Py_XDECREF(options);
    if (added < 0 || PyModule_AddStringConstant(module, "BUILD_VARIANT", PYRUVATE_VARIANT) < 0)
        return -1;
    st->wsgi_version_value = Py_BuildValue("(ii)", 1, 0);
    if (st->wsgi_version_value == NULL)
        return -1;
    PyObject *logging = PyImport_ImportModule("logging");
    if (logging == NULL)
        return -1;
    st->logger = PyObject_CallMethod(logging, "getLogger", "s", "pyruvate");
    st->access_logger = PyObject_CallMethod(logging, "getLogger", "s", "pyruvate.access");
    Py_DECREF(logging);
    if (st->logger == NULL || st->access_logger == NULL)
        return -1;
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    struct module_state *st = module_get_state(module);
    Py_VISIT(st->input_type);
    Py_VISIT(st->start_response_type);
    Py_VISIT(st->file_wrapper_type);
    Py_VISIT(st->wsgi_version_value);
    Py_VISIT(st->logger);
    Py_VISIT(st->access_logger);
    return 0;
}

static int module_clear(PyObject *module)
{
    struct module_state *st = module_get_state(module);
    Py_CLEAR(st->input_type);
    Py_CLEAR(st->start_response_type);
    Py_CLEAR(st->file_wrapper_type);
    Py_CLEAR(st->wsgi_version_value);
    Py_CLEAR(st->logger);
    Py_CLEAR(st->access_logger);
#define MODULE_STRING_CLEAR(name, text) Py_CLEAR(st->str_##name);
    MODULE_STRINGS(MODULE_STRING_CLEAR)
#undef MODULE_STRING_CLEAR
    return 0;
}

static void module_free(void *module)
{
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters /* 3.12+: the server is process-wide */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyruvate._pyruvate",
    .m_doc = "The C core of pyruvate, a multithreaded WSGI server.",
    .m_size = sizeof(struct module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__pyruvate(void);
PyMODINIT_FUNC PyInit__pyruvate(void)
{
    return PyModuleDef_Init(&module_def);
}

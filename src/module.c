/* pyruvate._pyruvate: module state, types and serve()'s argument handling.
 * Multi-phase initialisation; the server itself lives in server.c. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/module.h"

#include <float.h>
#include <string.h>

#include "pyruvate/filewrapper.h"
#include "pyruvate/input.h"
#include "pyruvate/listen.h"
#include "pyruvate/proxy.h"
#include "pyruvate/server.h"
#include "pyruvate/start_response.h"

/* Seconds (int or float, > 0) as milliseconds. */
static int timeout_argument(PyObject *value, const char *name, int *out_ms)
{
    double seconds = PyFloat_AsDouble(value);
    if (seconds == -1.0 && PyErr_Occurred())
        return -1;
    if (!(seconds > 0) || seconds > INT_MAX / 1000) {
        PyErr_Format(PyExc_ValueError, "%s must be a positive number of seconds", name);
        return -1;
    }
    *out_ms = (int)(seconds * 1000);
    if (*out_ms == 0)
        *out_ms = 1;
    return 0;
}

/* socket may be "host:port", "[v6]:port", a Unix socket path ("/..." or
 * "unix:/..."), None for systemd socket activation, or a listening socket
 * given as an fd or an object with fileno(). */
static int socket_argument(PyObject *socket, struct server_bind *bind)
{
    if (socket == Py_None)
        return 0;
    if (PyUnicode_Check(socket)) {
        bind->address = PyUnicode_AsUTF8(socket);
        if (bind->address == NULL)
            return -1;
        if (bind->address[0] == '/' || strncmp(bind->address, "unix:", 5) == 0)
            return 0;
        char host[256], port[16], err[PYR_ERR_LEN];
        if (listen_parse_address(bind->address, host, sizeof(host), port, sizeof(port), err) < 0) {
            PyErr_SetString(PyExc_ValueError, err);
            return -1;
        }
        return 0;
    }
    int fd = PyObject_AsFileDescriptor(socket);
    if (fd < 0) {
        PyErr_Format(PyExc_TypeError,
                     "socket must be a str such as \"127.0.0.1:7878\", a Unix socket path, "
                     "None (systemd) or a listening socket, not %.100s",
                     Py_TYPE(socket)->tp_name);
        return -1;
    }
    bind->fd = fd;
    return 0;
}

/* Permissions for a Unix socket file: an int, or an octal str like "660". */
static int unix_mode_argument(PyObject *value, struct server_bind *bind)
{
    long mode;
    if (PyUnicode_Check(value)) {
        PyObject *number = PyLong_FromUnicodeObject(value, 8);
        if (number == NULL)
            return -1;
        mode = PyLong_AsLong(number);
        Py_DECREF(number);
    } else {
        mode = PyLong_AsLong(value);
    }
    if (mode == -1 && PyErr_Occurred())
        return -1;
    if (mode <= 0 || mode > 07777) {
        PyErr_SetString(PyExc_ValueError, "unix_socket_perms must be a mode such as 0o660");
        return -1;
    }
    bind->unix_mode = (unsigned)mode;
    return 0;
}

static int positive(Py_ssize_t value, const char *name)
{
    if (value < 1) {
        PyErr_Format(PyExc_ValueError, "%s must be at least 1", name);
        return -1;
    }
    return 0;
}

/* A str option, or NULL with TypeError naming it and an example. */
static const char *text_argument(PyObject *value, const char *name, const char *example)
{
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str such as %s", name, example);
        return NULL;
    }
    return PyUnicode_AsUTF8(value);
}

/* trusted_proxy (which peers), trusted_proxy_headers (which of their
 * headers) and trusted_proxy_count (how many proxies in the chain). The
 * last two mean nothing without the first. */
static int trusted_proxy_argument(PyObject *module, PyObject *peers, PyObject *headers,
                                  PyObject *count, struct proxy_trust *trust)
{
    char err[PYR_ERR_LEN];
    if (peers == Py_None) {
        if (headers != Py_None || count != NULL) {
            PyErr_SetString(PyExc_ValueError, "trusted_proxy_headers and trusted_proxy_count "
                                              "need trusted_proxy (the proxies' addresses or *)");
            return -1;
        }
        return 0;
    }
    const char *spec = text_argument(peers, "trusted_proxy", "\"127.0.0.1, ::1\" or \"*\"");
    if (spec == NULL)
        return -1;
    if (proxy_trust_parse(spec, trust, err) < 0) {
        PyErr_SetString(PyExc_ValueError, err);
        return -1;
    }
    if (count != NULL) {
        Py_ssize_t hops = PyNumber_AsSsize_t(count, PyExc_OverflowError);
        if (hops == -1 && PyErr_Occurred())
            return -1;
        if (hops < 1 || hops > PROXY_MAX_HOPS) {
            PyErr_Format(PyExc_ValueError, "trusted_proxy_count must be 1 to %d", PROXY_MAX_HOPS);
            return -1;
        }
        trust->hops = (unsigned)hops;
    }
    if (headers == Py_None) {
        /* The operator has not said which headers the proxy controls. */
        PyObject *done = PyObject_CallMethod(
            module_get_state(module)->logger, "warning", "s",
            "trusted_proxy is set without trusted_proxy_headers: only " PROXY_DEFAULT_HEADERS_TEXT
            " is used; other forwarding headers (Forwarded, X-Forwarded-Proto, "
            "X-Forwarded-Host, ...) are removed. Name the headers your proxy sets with "
            "trusted_proxy_headers");
        Py_XDECREF(done);
        return done == NULL ? -1 : 0;
    }
    spec = text_argument(headers, "trusted_proxy_headers", "\"x-forwarded-for x-forwarded-proto\"");
    if (spec == NULL)
        return -1;
    if (proxy_headers_parse(spec, &trust->headers, err) < 0) {
        PyErr_SetString(PyExc_ValueError, err);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(serve_doc,
             "serve($module, /, application, socket, workers, *, max_number_headers=32,\n"
             "      max_request_line_size=8192, max_request_header_size=65536,\n"
             "      max_request_body_size=268435456, keepalive_timeout=60, request_timeout=30,\n"
             "      header_timeout=10, send_timeout=60, shutdown_timeout=30, max_reuse_count=0, "
             "max_connections=50000,\n"
             "      max_queue_size=1024, qmon_warn_threshold=None, chunked_transfer=True,\n"
             "      async_logging=True, backlog=1024, unix_socket_perms=None,\n"
             "      trusted_proxy=None, trusted_proxy_headers=None, trusted_proxy_count=1,\n"
             "      url_scheme='http', url_prefix='', access_log=False)\n"
             "--\n\n"
             "Serve a WSGI application on socket (\"host:port\", \"[ipv6]:port\", a Unix\n"
             "socket path, a listening socket or None for systemd socket activation) with\n"
             "`workers` threads until SIGTERM (returns None) or SIGINT (raises\n"
             "KeyboardInterrupt once stopped). Timeouts are in seconds.");

static PyObject *serve(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"application",
                               "socket",
                               "workers",
                               "max_number_headers",
                               "max_request_line_size",
                               "max_request_header_size",
                               "max_request_body_size",
                               "keepalive_timeout",
                               "request_timeout",
                               "header_timeout",
                               "send_timeout",
                               "shutdown_timeout",
                               "max_reuse_count",
                               "max_connections",
                               "max_queue_size",
                               "qmon_warn_threshold",
                               "chunked_transfer",
                               "async_logging",
                               "backlog",
                               "unix_socket_perms",
                               "trusted_proxy",
                               "trusted_proxy_headers",
                               "trusted_proxy_count",
                               "url_scheme",
                               "url_prefix",
                               "access_log",
                               NULL};
    PyObject *application, *socket;
    Py_ssize_t workers;
    Py_ssize_t max_headers = 32, max_line = 8192, max_header_size = 65536;
    long long max_body = 256LL * 1024 * 1024;
    PyObject *keepalive = NULL, *request_timeout = NULL, *header_timeout = NULL,
             *send_timeout = NULL, *shutdown_timeout = NULL, *qmon = Py_None;
    Py_ssize_t max_reuse = 0, max_connections = 50000, max_queue = 1024, backlog = 1024;
    int chunked = 1, async_logging = 1;
    PyObject *unix_socket_perms = Py_None, *trusted_proxy = Py_None;
    PyObject *trusted_proxy_headers = Py_None, *trusted_proxy_count = NULL;
    const char *url_scheme = "http", *url_prefix = "";
    int access_log = 0;

    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "OOn|$nnnLOOOOOnnnOppnOOOOssp:serve", keywords, &application, &socket,
            &workers, &max_headers, &max_line, &max_header_size, &max_body, &keepalive,
            &request_timeout, &header_timeout, &send_timeout, &shutdown_timeout, &max_reuse,
            &max_connections, &max_queue, &qmon, &chunked, &async_logging, &backlog,
            &unix_socket_perms, &trusted_proxy, &trusted_proxy_headers, &trusted_proxy_count,
            &url_scheme, &url_prefix, &access_log))
        return NULL;
    if (!PyCallable_Check(application)) {
        PyErr_SetString(PyExc_TypeError, "application must be callable");
        return NULL;
    }
    if (workers < 1) {
        PyErr_SetString(PyExc_ValueError, "workers must be at least 1");
        return NULL;
    }
    struct server_bind bind = {.address = NULL, .fd = -1};
    if (socket_argument(socket, &bind) < 0)
        return NULL;
    if (unix_socket_perms != Py_None && unix_mode_argument(unix_socket_perms, &bind) < 0)
        return NULL;

    struct server_options options = {
        .workers = (unsigned)workers,
        .keepalive_timeout_ms = 60000,
        .request_timeout_ms = 30000,
        .header_timeout_ms = 10000,
        .send_timeout_ms = 60000,
        .shutdown_timeout_ms = 30000,
        .chunked_transfer = chunked,
        .async_logging = async_logging,
    };
    if (positive(max_headers, "max_number_headers") < 0 ||
        positive(max_line, "max_request_line_size") < 0 ||
        positive(max_header_size, "max_request_header_size") < 0 ||
        positive(max_connections, "max_connections") < 0 ||
        positive(max_queue, "max_queue_size") < 0 || positive(backlog, "backlog") < 0)
        return NULL;
    if (max_body < 0 || max_reuse < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "max_request_body_size and max_reuse_count must not be negative");
        return NULL;
    }
    if ((keepalive &&
         timeout_argument(keepalive, "keepalive_timeout", &options.keepalive_timeout_ms) < 0) ||
        (request_timeout &&
         timeout_argument(request_timeout, "request_timeout", &options.request_timeout_ms) < 0) ||
        (header_timeout &&
         timeout_argument(header_timeout, "header_timeout", &options.header_timeout_ms) < 0) ||
        (send_timeout &&
         timeout_argument(send_timeout, "send_timeout", &options.send_timeout_ms) < 0) ||
        (shutdown_timeout &&
         timeout_argument(shutdown_timeout, "shutdown_timeout", &options.shutdown_timeout_ms) < 0))
        return NULL;
    if (qmon != Py_None) {
        Py_ssize_t threshold = PyNumber_AsSsize_t(qmon, PyExc_OverflowError);
        if (threshold == -1 && PyErr_Occurred())
            return NULL;
        if (positive(threshold, "qmon_warn_threshold") < 0)
            return NULL;
        options.qmon_warn_threshold = (unsigned)threshold;
    }
    options.limits = (struct request_limits){
        .max_target_length = (size_t)max_line,
        .max_header_bytes = (size_t)max_header_size,
        .max_headers = (unsigned)max_headers,
        .max_body_size = (uint64_t)max_body,
    };
    options.max_reuse_count = (unsigned)max_reuse;
    options.max_connections = (unsigned)max_connections;
    options.max_queue_size = (unsigned)max_queue;
    options.backlog = (int)backlog;
    options.access_log = access_log;
    if (strcmp(url_scheme, "http") != 0 && strcmp(url_scheme, "https") != 0) {
        PyErr_SetString(PyExc_ValueError, "url_scheme must be 'http' or 'https'");
        return NULL;
    }
    snprintf(options.url_scheme, sizeof(options.url_scheme), "%s", url_scheme);
    /* SCRIPT_NAME never ends with a slash (PEP 3333, "URL Reconstruction"). */
    size_t prefix_len = strlen(url_prefix);
    while (prefix_len > 0 && url_prefix[prefix_len - 1] == '/')
        prefix_len--;
    if (prefix_len >= sizeof(options.url_prefix) || (prefix_len > 0 && url_prefix[0] != '/')) {
        PyErr_SetString(PyExc_ValueError, "url_prefix must start with '/' (at most 255 bytes)");
        return NULL;
    }
    memcpy(options.url_prefix, url_prefix, prefix_len);
    options.url_prefix[prefix_len] = '\0';
    if (trusted_proxy_argument(module, trusted_proxy, trusted_proxy_headers, trusted_proxy_count,
                               &options.trusted_proxies) < 0)
        return NULL;
    return server_run(module, application, &bind, &options);
}

static PyMethodDef module_methods[] = {
    {"serve", (PyCFunction)(void (*)(void))serve, METH_VARARGS | METH_KEYWORDS, serve_doc},
    {"_on_signal", server_on_signal, METH_VARARGS,
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

/* serve()'s keyword options, made from the one table SERVE_OPTIONS in
 * options.h: the keyword list, the PyArg format, the docstring's
 * signature, each option's checks by kind, and _pyruvate.OPTIONS. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/options.h"

#include <string.h>

#include "pyruvate/listen.h"
#include "pyruvate/proxy.h"
#include "pyruvate/state.h"

/* Per kind: the C field(s) an option is parsed into, its PyArg format
 * unit, its default in C, in the docstring and in Python, and its check.
 * Kinds whose default is None take any object here and are checked with
 * the options they go with (socket, trusted_proxy). */
#define OPTION_BOOL_True  1
#define OPTION_BOOL_False 0

#define OPTION_FIELD_COUNT(name) Py_ssize_t name;
#define OPTION_FIELD_SIZE(name)  long long name;
#define OPTION_FIELD_SECONDS(name) \
    PyObject *name;                \
    int name##_ms;
#define OPTION_FIELD_BOOL(name)    int name;
#define OPTION_FIELD_TEXT(name)    const char *name;
#define OPTION_FIELD_LIMIT(name)   PyObject *name;
#define OPTION_FIELD_MODE(name)    PyObject *name;
#define OPTION_FIELD_PROXIES(name) PyObject *name;
#define OPTION_FIELD_HEADERS(name) PyObject *name;
#define OPTION_FIELD_PATH(name)    PyObject *name;
#define OPTION_FIELD_HOPS(name) \
    PyObject *name;             \
    unsigned name##_default;

#define OPTION_FORMAT_COUNT   "n"
#define OPTION_FORMAT_SIZE    "L"
#define OPTION_FORMAT_SECONDS "O"
#define OPTION_FORMAT_BOOL    "p"
#define OPTION_FORMAT_TEXT    "s"
#define OPTION_FORMAT_LIMIT   "O"
#define OPTION_FORMAT_MODE    "O"
#define OPTION_FORMAT_PROXIES "O"
#define OPTION_FORMAT_HEADERS "O"
#define OPTION_FORMAT_PATH    "O"
#define OPTION_FORMAT_HOPS    "O" /* NULL: not given */

#define OPTION_INIT_COUNT(name, d)   .name = d,
#define OPTION_INIT_SIZE(name, d)    .name = d,
#define OPTION_INIT_SECONDS(name, d) .name = NULL, .name##_ms = d * 1000,
#define OPTION_INIT_BOOL(name, d)    .name = OPTION_BOOL_##d,
#define OPTION_INIT_TEXT(name, d)    .name = d,
#define OPTION_INIT_LIMIT(name, d)   .name = Py_##d,
#define OPTION_INIT_MODE(name, d)    .name = Py_##d,
#define OPTION_INIT_PROXIES(name, d) .name = Py_##d,
#define OPTION_INIT_HEADERS(name, d) .name = Py_##d,
#define OPTION_INIT_PATH(name, d)    .name = Py_##d,
#define OPTION_INIT_HOPS(name, d)    .name = NULL, .name##_default = d,

#define OPTION_DOC_COUNT(d)   #d
#define OPTION_DOC_SIZE(d)    #d
#define OPTION_DOC_SECONDS(d) #d
#define OPTION_DOC_BOOL(d)    #d
#define OPTION_DOC_TEXT(d)    "'" d "'"
#define OPTION_DOC_LIMIT(d)   #d
#define OPTION_DOC_MODE(d)    #d
#define OPTION_DOC_PROXIES(d) #d
#define OPTION_DOC_HEADERS(d) #d
#define OPTION_DOC_PATH(d)    #d
#define OPTION_DOC_HOPS(d)    #d

#define OPTION_PYTHON_COUNT(d)   PyLong_FromSsize_t(d)
#define OPTION_PYTHON_SIZE(d)    PyLong_FromLongLong(d)
#define OPTION_PYTHON_SECONDS(d) PyLong_FromLong(d)
#define OPTION_PYTHON_BOOL(d)    PyBool_FromLong(OPTION_BOOL_##d)
#define OPTION_PYTHON_TEXT(d)    PyUnicode_FromString(d)
#define OPTION_PYTHON_LIMIT(d)   Py_NewRef(Py_##d)
#define OPTION_PYTHON_MODE(d)    Py_NewRef(Py_##d)
#define OPTION_PYTHON_PROXIES(d) Py_NewRef(Py_##d)
#define OPTION_PYTHON_HEADERS(d) Py_NewRef(Py_##d)
#define OPTION_PYTHON_PATH(d)    Py_NewRef(Py_##d)
#define OPTION_PYTHON_HOPS(d)    PyLong_FromLong(d)

#define OPTION_CHECK_COUNT(args, name)   at_least_one((args)->name, #name)
#define OPTION_CHECK_SIZE(args, name)    not_negative((args)->name, #name)
#define OPTION_CHECK_SECONDS(args, name) seconds_argument((args)->name, #name, &(args)->name##_ms)
#define OPTION_CHECK_BOOL(args, name)    0
#define OPTION_CHECK_TEXT(args, name)    0
#define OPTION_CHECK_LIMIT(args, name)   0
#define OPTION_CHECK_MODE(args, name)    0
#define OPTION_CHECK_PROXIES(args, name) 0
#define OPTION_CHECK_HEADERS(args, name) 0
#define OPTION_CHECK_PATH(args, name)    0
#define OPTION_CHECK_HOPS(args, name)    0

struct serve_arguments {
    PyObject *application, *socket;
    Py_ssize_t workers;
#define OPTION_FIELD(name, kind, d, help) OPTION_FIELD_##kind(name)
    SERVE_OPTIONS(OPTION_FIELD)
#undef OPTION_FIELD
};

#define OPTION_DOC(name, kind, d, help) ", " #name "=" OPTION_DOC_##kind(d)
const char options_serve_doc[] = "serve($module, /, application, socket, workers, *" SERVE_OPTIONS(
    OPTION_DOC) ")\n"
                "--\n\n"
                "Serve a WSGI application on socket (\"host:port\", \"[ipv6]:port\", a Unix\n"
                "socket path, a listening socket or None for systemd socket activation) with\n"
                "`workers` threads until SIGTERM (returns None) or SIGINT (raises\n"
                "KeyboardInterrupt once stopped). Timeouts are in seconds; "
                "pyruvate._pyruvate.OPTIONS\n"
                "says what each option means.";
#undef OPTION_DOC

/* Counts are stored as int or unsigned: a larger value would wrap (2**32
 * workers would be 0 of them), so it is refused, not cut. */
static int at_least_one(Py_ssize_t value, const char *name)
{
    if (value < 1 || value > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s must be 1 to %d", name, INT_MAX);
        return -1;
    }
    return 0;
}

/* Each worker is a thread with its own Python thread state; beyond this
 * many the GIL, not the pool, decides, and start-up takes seconds. */
enum { OPTIONS_MAX_WORKERS = 1024 };

static int workers_argument(Py_ssize_t value)
{
    if (value < 1 || value > OPTIONS_MAX_WORKERS) {
        PyErr_Format(PyExc_ValueError, "workers must be 1 to %d", OPTIONS_MAX_WORKERS);
        return -1;
    }
    return 0;
}

static int not_negative(long long value, const char *name)
{
    if (value < 0) {
        PyErr_Format(PyExc_ValueError, "%s must not be negative", name);
        return -1;
    }
    return 0;
}

/* Seconds (int or float, > 0) as milliseconds; NULL (not given) keeps the
 * default. */
static int seconds_argument(PyObject *value, const char *name, int *out_ms)
{
    if (value == NULL)
        return 0;
    double seconds = PyFloat_AsDouble(value);
    if (seconds == -1.0 && PyErr_Occurred())
        return -1;
    if (!(seconds > 0) || seconds > INT_MAX / 1000) {
        PyErr_Format(PyExc_ValueError, "%s must be a positive number of seconds, at most %d", name,
                     INT_MAX / 1000);
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
    if (value == Py_None)
        return 0;
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

/* qmon_warn_threshold: None (off) or a count. */
static int limit_argument(PyObject *value, const char *name, unsigned *out)
{
    if (value == Py_None)
        return 0;
    Py_ssize_t limit = PyNumber_AsSsize_t(value, PyExc_OverflowError);
    if (limit == -1 && PyErr_Occurred())
        return -1;
    if (at_least_one(limit, name) < 0)
        return -1;
    *out = (unsigned)limit;
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

static int warn_default_proxy_headers(PyObject *module)
{
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

/* trusted_proxy (which peers), trusted_proxy_headers (which of their
 * headers) and trusted_proxy_count (how many proxies in the chain). The
 * last two mean nothing without the first. */
static int trusted_proxy_argument(PyObject *module, const struct serve_arguments *args,
                                  struct proxy_trust *trust)
{
    char err[PYR_ERR_LEN];
    if (args->trusted_proxy == Py_None) {
        if (args->trusted_proxy_headers != Py_None || args->trusted_proxy_count != NULL) {
            PyErr_SetString(PyExc_ValueError, "trusted_proxy_headers and trusted_proxy_count "
                                              "need trusted_proxy (the proxies' addresses or *)");
            return -1;
        }
        return 0;
    }
    const char *spec =
        text_argument(args->trusted_proxy, "trusted_proxy", "\"127.0.0.1, ::1\" or \"*\"");
    if (spec == NULL)
        return -1;
    if (proxy_trust_parse(spec, trust, err) < 0) {
        PyErr_SetString(PyExc_ValueError, err);
        return -1;
    }
    trust->hops = args->trusted_proxy_count_default;
    if (args->trusted_proxy_count != NULL) {
        Py_ssize_t hops = PyNumber_AsSsize_t(args->trusted_proxy_count, PyExc_OverflowError);
        if (hops == -1 && PyErr_Occurred())
            return -1;
        if (hops < 1 || hops > PROXY_MAX_HOPS) {
            PyErr_Format(PyExc_ValueError, "trusted_proxy_count must be 1 to %d", PROXY_MAX_HOPS);
            return -1;
        }
        trust->hops = (unsigned)hops;
    }
    if (args->trusted_proxy_headers == Py_None)
        return warn_default_proxy_headers(module);
    spec = text_argument(args->trusted_proxy_headers, "trusted_proxy_headers",
                         "\"x-forwarded-for x-forwarded-proto\"");
    if (spec == NULL)
        return -1;
    if (proxy_headers_parse(spec, &trust->headers, err) < 0) {
        PyErr_SetString(PyExc_ValueError, err);
        return -1;
    }
    return 0;
}

/* url_scheme and url_prefix into options. */
static int url_arguments(const struct serve_arguments *args, struct server_options *options)
{
    if (strcmp(args->url_scheme, "http") != 0 && strcmp(args->url_scheme, "https") != 0) {
        PyErr_SetString(PyExc_ValueError, "url_scheme must be 'http' or 'https'");
        return -1;
    }
    snprintf(options->url_scheme, sizeof(options->url_scheme), "%s", args->url_scheme);
    /* SCRIPT_NAME never ends with a slash (PEP 3333, "URL Reconstruction"). */
    const char *prefix = args->url_prefix;
    size_t prefix_len = strlen(prefix);
    while (prefix_len > 0 && prefix[prefix_len - 1] == '/')
        prefix_len--;
    if (prefix_len >= sizeof(options->url_prefix) || (prefix_len > 0 && prefix[0] != '/')) {
        PyErr_SetString(PyExc_ValueError, "url_prefix must start with '/' (at most 255 bytes)");
        return -1;
    }
    memcpy(options->url_prefix, prefix, prefix_len);
    options->url_prefix[prefix_len] = '\0';
    return 0;
}

/* health_path or metrics_path: None (off), or an absolute path of
 * visible ASCII without a query, compared byte for byte with the path of
 * the request target. */
static int path_argument(PyObject *value, const char *name, char *out, size_t out_size)
{
    out[0] = '\0';
    if (value == Py_None)
        return 0;
    const char *path = text_argument(value, name, "\"/health\"");
    if (path == NULL)
        return -1;
    size_t len = strlen(path);
    int valid = len > 0 && len < out_size && path[0] == '/';
    for (size_t i = 0; valid && i < len; i++)
        valid = path[i] > ' ' && path[i] < 0x7f && path[i] != '?' && path[i] != '#';
    if (!valid) {
        PyErr_Format(PyExc_ValueError,
                     "%s must start with '/' and hold visible ASCII characters but '?' and "
                     "'#' (at most %zu bytes), or be None",
                     name, out_size - 1);
        return -1;
    }
    memcpy(out, path, len + 1);
    return 0;
}

static int endpoint_arguments(const struct serve_arguments *args, struct server_options *options)
{
    if (path_argument(args->health_path, "health_path", options->health_path,
                      sizeof(options->health_path)) < 0 ||
        path_argument(args->metrics_path, "metrics_path", options->metrics_path,
                      sizeof(options->metrics_path)) < 0)
        return -1;
    if (options->health_path[0] && strcmp(options->health_path, options->metrics_path) == 0) {
        PyErr_SetString(PyExc_ValueError, "health_path and metrics_path must differ");
        return -1;
    }
    return 0;
}

/* The checked arguments into the server's options. */
static void copy_options(const struct serve_arguments *args, struct server_options *options)
{
    *options = (struct server_options){
        .workers = (unsigned)args->workers,
        .limits =
            {
                .max_target_length = (size_t)args->max_request_line_size,
                .max_header_bytes = (size_t)args->max_request_header_size,
                .max_headers = (unsigned)args->max_number_headers,
                .max_body_size = (uint64_t)args->max_request_body_size,
            },
        .keepalive_timeout_ms = args->keepalive_timeout_ms,
        .request_timeout_ms = args->request_timeout_ms,
        .header_timeout_ms = args->header_timeout_ms,
        .send_timeout_ms = args->send_timeout_ms,
        .shutdown_timeout_ms = args->shutdown_timeout_ms,
        .shutdown_idle_grace_ms = args->shutdown_idle_grace_ms,
        /* More requests than fit in an unsigned is no limit in practice. */
        .max_reuse_count =
            args->max_reuse_count > UINT_MAX ? UINT_MAX : (unsigned)args->max_reuse_count,
        .max_connections = (unsigned)args->max_connections,
        .max_queue_size = (unsigned)args->max_queue_size,
        .chunked_transfer = args->chunked_transfer,
        .async_logging = args->async_logging,
        .access_log = args->access_log,
        .backlog = (int)args->backlog,
    };
}

int options_parse(PyObject *module, PyObject *pyargs, PyObject *kwargs, PyObject **application,
                  struct server_bind *bind, struct server_options *options)
{
#define OPTION_KEYWORD(name, kind, d, help) #name,
    static char *keywords[] = {"application", "socket", "workers",
                               SERVE_OPTIONS(OPTION_KEYWORD) NULL};
#undef OPTION_KEYWORD
#define OPTION_INIT(name, kind, d, help) OPTION_INIT_##kind(name, d)
    struct serve_arguments args = {.workers = 0, SERVE_OPTIONS(OPTION_INIT)};
#define OPTION_FORMAT(name, kind, d, help)  OPTION_FORMAT_##kind
#define OPTION_ADDRESS(name, kind, d, help) , &args.name
    if (!PyArg_ParseTupleAndKeywords(pyargs, kwargs, "OOn|$" SERVE_OPTIONS(OPTION_FORMAT) ":serve",
                                     keywords, &args.application, &args.socket,
                                     &args.workers SERVE_OPTIONS(OPTION_ADDRESS)))
        return -1;
#undef OPTION_FORMAT
#undef OPTION_ADDRESS
    if (!PyCallable_Check(args.application)) {
        PyErr_SetString(PyExc_TypeError, "application must be callable");
        return -1;
    }
    if (workers_argument(args.workers) < 0)
        return -1;
    *bind = (struct server_bind){.address = NULL, .fd = -1};
    if (socket_argument(args.socket, bind) < 0 ||
        unix_mode_argument(args.unix_socket_perms, bind) < 0)
        return -1;
#define OPTION_CHECK(name, kind, d, help)     \
    if (OPTION_CHECK_##kind(&args, name) < 0) \
        return -1;
    SERVE_OPTIONS(OPTION_CHECK)
#undef OPTION_CHECK
    copy_options(&args, options);
    /* Fitting the default under the open file limit is routine (INFO); an
     * operator's own value lowered is worth a WARNING. */
    const struct serve_arguments defaults = {SERVE_OPTIONS(OPTION_INIT)};
    options->max_connections_chosen = args.max_connections != defaults.max_connections;
#undef OPTION_INIT
    if (limit_argument(args.qmon_warn_threshold, "qmon_warn_threshold",
                       &options->qmon_warn_threshold) < 0 ||
        url_arguments(&args, options) < 0 || endpoint_arguments(&args, options) < 0 ||
        trusted_proxy_argument(module, &args, &options->trusted_proxies) < 0)
        return -1;
    *application = args.application;
    return 0;
}

PyObject *options_table(void)
{
    PyObject *table = PyList_New(0);
    if (table == NULL)
        return NULL;
#define OPTION_ROW(name, kind, d, help)                                                            \
    {                                                                                              \
        PyObject *value = OPTION_PYTHON_##kind(d);                                                 \
        PyObject *row = value == NULL ? NULL : Py_BuildValue("(ssNs)", #name, #kind, value, help); \
        if (row == NULL || PyList_Append(table, row) < 0) {                                        \
            Py_XDECREF(row);                                                                       \
            goto fail;                                                                             \
        }                                                                                          \
        Py_DECREF(row);                                                                            \
    }
    SERVE_OPTIONS(OPTION_ROW)
#undef OPTION_ROW
    PyObject *result = PyList_AsTuple(table);
    Py_DECREF(table);
    return result;
fail:
    Py_DECREF(table);
    return NULL;
}

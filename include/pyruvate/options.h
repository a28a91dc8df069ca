/* serve()'s keyword options: the one table from which the C argument
 * parsing, serve.__doc__ and _pyruvate.OPTIONS are made. pyruvate/paste.py
 * (PasteDeploy) and pyruvate/__main__.py (the CLI flags) are built from
 * _pyruvate.OPTIONS; tests/integration/test_options.py checks the README's
 * tables against it. Needs the GIL. */
#ifndef PYRUVATE_OPTIONS_H
#define PYRUVATE_OPTIONS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/server_state.h"

/* X(name, kind, default, help), in the order of serve()'s keywords.
 * The kind is the type and its limits:
 *   COUNT      int >= 1                   SIZE     int >= 0
 *   SECONDS    number > 0 (int or float)  BOOL     any truth value
 *   TEXT       str                        LIMIT    int >= 1, or None (off)
 *   MODE       octal file mode: int, or str such as "660"; or None
 *   PROXIES    str: addresses, networks, "unix" or "*"; or None (off)
 *   HEADERS    str: header names separated by spaces or commas; or None
 *   HOPS       int from 1 to PROXY_MAX_HOPS
 *   PATH       str: an absolute request path; or None (off)
 * The default is a C token; serve.__doc__ shows it as written here. */
#define SERVE_OPTIONS(X)                                                                       \
    X(max_number_headers, COUNT, 32, "more request header fields are answered with 431")       \
    X(max_request_line_size, COUNT, 8192, "a longer request target is answered with 414")      \
    X(max_request_header_size, COUNT, 65536, "more header bytes are answered with 431")        \
    X(max_request_body_size, SIZE, 268435456,                                                  \
      "a larger body is answered with 413 (bodies are buffered)")                              \
    X(keepalive_timeout, SECONDS, 60, "seconds an idle keep-alive connection is kept")         \
    X(request_timeout, SECONDS, 30, "seconds from a request's first byte to its last (408)")   \
    X(header_timeout, SECONDS, 10, "seconds a new connection may take to send its first byte") \
    X(send_timeout, SECONDS, 60, "seconds a client may stop reading a response")               \
    X(shutdown_timeout, SECONDS, 30,                                                           \
      "seconds in-flight requests get to finish after "                                        \
      "SIGTERM/SIGINT")                                                                        \
    X(shutdown_idle_grace, SECONDS, 1,                                                         \
      "seconds an idle keep-alive connection stays open after SIGTERM for a request already "  \
      "on its way")                                                                            \
    X(max_reuse_count, SIZE, 0, "requests per connection, 0 for no limit")                     \
    X(max_connections, COUNT, 50000,                                                           \
      "beyond it the longest idle connection is closed, else 503 (lowered to fit the open "    \
      "file limit)")                                                                           \
    X(max_queue_size, COUNT, 1024, "requests waiting for a worker beyond it get 503")          \
    X(qmon_warn_threshold, LIMIT, None,                                                        \
      "log a warning when this many complete requests wait for a worker")                      \
    X(chunked_transfer, BOOL, True, "chunked responses when the app gives no Content-Length")  \
    X(async_logging, BOOL, True, "log records are queued in C and emitted by one thread")      \
    X(backlog, COUNT, 1024, "listen backlog")                                                  \
    X(unix_socket_perms, MODE, None, "permissions of a Unix socket file, octal (e.g. 660)")    \
    X(trusted_proxy, PROXIES, None,                                                            \
      "comma-separated addresses or networks of the proxies (or *, or unix) whose "            \
      "forwarding headers are used")                                                           \
    X(trusted_proxy_headers, HEADERS, None,                                                    \
      "the forwarding headers the proxy sets, e.g. 'x-forwarded-for x-forwarded-proto' or "    \
      "'forwarded'; the others are removed (None: x-forwarded-for only, with a warning)")      \
    X(trusted_proxy_count, HOPS, 1,                                                            \
      "proxies in the chain: the client is this many entries from the right")                  \
    X(health_path, PATH, None,                                                                 \
      "GET/HEAD on this path is answered by the server itself: 200 ok, 503 while draining")    \
    X(metrics_path, PATH, None,                                                                \
      "GET/HEAD on this path is answered by the server itself with Prometheus metrics")        \
    X(url_scheme, TEXT, "http", "wsgi.url_scheme of every request: http or https")             \
    X(url_prefix, TEXT, "", "SCRIPT_NAME; stripped from PATH_INFO")                            \
    X(access_log, BOOL, False, "one Common Log Format line per request on logger pyruvate.access")

/* serve()'s docstring: its signature with every default, then what it does. */
extern const char options_serve_doc[];

/* Parses serve()'s arguments into *application (borrowed), *bind and
 * *options. Returns 0, or -1 with an exception set. */
int options_parse(PyObject *module, PyObject *args, PyObject *kwargs, PyObject **application,
                  struct server_bind *bind, struct server_options *options);

/* _pyruvate.OPTIONS: a tuple of (name, kind, default, help) tuples, the
 * kind as named in SERVE_OPTIONS ("COUNT", "SECONDS", ...). Returns a new
 * reference. */
PyObject *options_table(void);

#endif

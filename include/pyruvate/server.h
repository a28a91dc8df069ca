/* server_run: the lifetime of one serve() call. It opens the listeners,
 * starts the pool and the acceptor, waits for a stop signal while relaying
 * log records to Python, and shuts everything down in order. */
#ifndef PYRUVATE_SERVER_H
#define PYRUVATE_SERVER_H

#include "pyruvate/state.h"

#include "pyruvate/server_state.h"

/* Runs serve(): returns None after SIGTERM or shutdown(), NULL with an exception set on
 * error or after SIGINT (KeyboardInterrupt, once the server has stopped).
 * Needs the GIL; steals nothing. */
PyObject *server_run(PyObject *module, PyObject *application, const struct server_bind *bind,
                     const struct server_options *options);

/* pyruvate.shutdown(timeout=None): asks every running serve() to drain as
 * on SIGTERM and return None; returns how many were asked, at once. */
PyObject *server_shutdown(PyObject *module, PyObject *args, PyObject *kwargs);

/* pyruvate.stats(): the running server's metrics as a dict (stats.h), or
 * None when no serve() is running in this process. */
PyObject *server_stats(PyObject *module, PyObject *unused);

#endif

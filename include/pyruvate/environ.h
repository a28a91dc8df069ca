/* The WSGI environ (PEP 3333) of the request a worker answers, and the
 * worker's caches for it. Needs the GIL. */
#ifndef PYRUVATE_ENVIRON_H
#define PYRUVATE_ENVIRON_H

#include "pyruvate/state.h"

#include "pyruvate/environ_cache.h"

struct server;
struct worker;

/* The per-server environ entries (wsgi.*, SERVER_NAME, ...), copied into
 * every request's environ. Returns a new reference. */
PyObject *environ_template(struct server *server);

/* The environ for the request buffered in w->conn. Returns a new reference
 * and sets *input to a new reference to its wsgi.input; on error returns
 * NULL with an exception set and *input NULL. */
PyObject *environ_build(struct worker *w, PyObject **input);

/* Releases what the caches hold. */
void environ_cache_clear(struct environ_cache *cache);

#endif

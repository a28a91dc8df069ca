/* The WSGI environ (PEP 3333) of the request a worker answers, and the
 * worker's caches for it. Needs the GIL. */
#ifndef PYRUVATE_ENVIRON_H
#define PYRUVATE_ENVIRON_H

#include "pyruvate/module.h"

#include <stddef.h>

struct server;
struct worker;

enum { ENVIRON_KEY_SLOTS = 64, ENVIRON_KEY_NAME_LEN = 40, ENVIRON_METHOD_SLOTS = 4 };

/* A header name and its environ key ("HTTP_USER_AGENT"), or None for a
 * name that is left out of the environ. */
struct environ_key {
    size_t len;
    char name[ENVIRON_KEY_NAME_LEN];
    PyObject *key;
};

/* A method name from llhttp (a static string) and its str. */
struct environ_method {
    const char *name;
    PyObject *str;
};

/* One worker's caches: the same few names arrive in nearly every request. */
struct environ_cache {
    struct environ_key keys[ENVIRON_KEY_SLOTS];
    struct environ_method methods[ENVIRON_METHOD_SLOTS];
    unsigned next_method_slot;
};

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

/* One worker's caches for building the environ (environ.c owns and fills
 * them; struct worker holds one). Apart from environ.h, so that the worker's
 * struct need not include the environ's functions. Needs the GIL. */
#ifndef PYRUVATE_ENVIRON_CACHE_H
#define PYRUVATE_ENVIRON_CACHE_H

#include "pyruvate/state.h"

#include <stddef.h>

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

#endif

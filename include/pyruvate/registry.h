/* The running servers of the process, for what reaches them from outside
 * their serve() call: pyruvate.shutdown() asks them to stop, and whatever
 * reports on them (pyruvate.stats()) visits them. No Python here.
 *
 * Each serve() call owns its entry (on its stack or in its struct server),
 * adds it once its wake-up descriptor exists and removes it before that
 * descriptor is closed; in between, the registry may write to the
 * descriptor and hand the entry's server to a visitor. */
#ifndef PYRUVATE_REGISTRY_H
#define PYRUVATE_REGISTRY_H

#include <stdatomic.h>

/* A stop request with no timeout of its own: the server's
 * shutdown_timeout applies. */
enum { REGISTRY_OWN_TIMEOUT = -1 };

struct registry_entry {
    void *server; /* handed to registry_visit's visitor; NULL: not published */
    int wake_fd;  /* a byte is written to it on a stop request; -1: none */

    /* set by registry_request_stop, read by the serving thread */
    atomic_int stop_requested;
    atomic_int stop_timeout_ms; /* the shortest asked for, or REGISTRY_OWN_TIMEOUT */

    struct registry_entry *next; /* under the registry's lock */
};

/* Prepares an entry (no stop requested, no server published) and lists
 * it: from now on stop requests reach it. */
void registry_add(struct registry_entry *e, int wake_fd);

/* Shows server to registry_visit from now on (NULL: no longer), under the
 * lock: publish it once what visitors read of it exists, withdraw it before
 * that goes. */
void registry_publish(struct registry_entry *e, void *server);

/* Takes the entry off the list; afterwards nothing touches it or its
 * wake_fd, so both may go. */
void registry_remove(struct registry_entry *e);

/* Asks every listed server to stop: timeout_ms >= 0 bounds its drain
 * (the shortest of several requests wins), REGISTRY_OWN_TIMEOUT leaves its
 * shutdown_timeout. Never waits for a server: the lock it takes is held
 * only for list walks, a wake-up write and registry_visit's copying of
 * numbers, never while waiting for the GIL or another server, so it is
 * safe from any thread and from a Python signal handler. Returns how many
 * servers were asked. */
unsigned registry_request_stop(int timeout_ms);

/* The serving thread's side: 1 when a stop was requested, with *timeout_ms
 * set to the timeout asked for (or REGISTRY_OWN_TIMEOUT); else 0. */
int registry_stop_requested(struct registry_entry *e, int *timeout_ms);

/* Calls visit(server, ctx) for every published server, under the
 * registry's lock: it cannot be withdrawn meanwhile. visit must be quick
 * and must neither take nor release the GIL, nor call into Python (copy
 * numbers out; build Python objects after). Returns the count. */
unsigned registry_visit(void (*visit)(void *server, void *ctx), void *ctx);

#endif

/* struct pollset: the growable poll() array of one poll thread (the
 * acceptor, the idle set, the park set): descriptors and, slot by slot,
 * the connection each belongs to (NULL for a wake-up fd or a listener). */
#ifndef PYRUVATE_POLLSET_H
#define PYRUVATE_POLLSET_H

#include <poll.h>
#include <stddef.h>

struct conn; /* only held, never looked into */

struct pollset_slot {
    struct conn *conn;
    size_t bytes; /* what the owner noted for the slot (the park set: memory held) */
};

/* Owned by one thread; zero-initialised is empty. */
struct pollset {
    struct pollfd *fds;
    struct pollset_slot *slots;
    unsigned nfds, capacity;
};

/* Adds fd, watched for events, with its connection. Returns the slot, or
 * -1 when out of memory (the set is unchanged). */
int pollset_add(struct pollset *set, int fd, short events, struct conn *c);

/* Removes slot i by moving the last slot into it (so walk the set
 * backwards while taking). Returns the connection that was in slot i. */
struct conn *pollset_take(struct pollset *set, unsigned i);

/* Frees the arrays; the set is empty afterwards. */
void pollset_free(struct pollset *set);

#endif

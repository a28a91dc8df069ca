/* The growable poll() array shared by the poll threads. */
#include "pyruvate/pollset.h"

#include <stdlib.h>

int pollset_add(struct pollset *set, int fd, short events, struct conn *c)
{
    if (set->nfds == set->capacity) {
        unsigned capacity = set->capacity ? set->capacity * 2 : 64;
        struct pollfd *fds = realloc(set->fds, capacity * sizeof(*fds));
        if (fds == NULL)
            return -1;
        set->fds = fds;
        struct pollset_slot *slots = realloc(set->slots, capacity * sizeof(*slots));
        if (slots == NULL)
            return -1;
        set->slots = slots;
        set->capacity = capacity;
    }
    unsigned i = set->nfds++;
    set->fds[i] = (struct pollfd){.fd = fd, .events = events};
    set->slots[i] = (struct pollset_slot){.conn = c};
    return (int)i;
}

struct conn *pollset_take(struct pollset *set, unsigned i)
{
    struct conn *c = set->slots[i].conn;
    set->nfds--;
    set->fds[i] = set->fds[set->nfds];
    set->slots[i] = set->slots[set->nfds];
    return c;
}

void pollset_free(struct pollset *set)
{
    free(set->fds);
    free(set->slots);
    *set = (struct pollset){0};
}

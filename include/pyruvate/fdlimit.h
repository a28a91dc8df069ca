/* The process's file descriptor budget: every connection costs one, so
 * max_connections must fit under RLIMIT_NOFILE or accept() fails with
 * EMFILE long before the 503 path is reached. */
#ifndef PYRUVATE_FDLIMIT_H
#define PYRUVATE_FDLIMIT_H

struct fd_budget {
    unsigned long soft_before; /* soft RLIMIT_NOFILE found at start-up */
    unsigned long soft;        /* soft limit after raising it */
    unsigned long hard;
    unsigned in_use;  /* descriptors open when counted */
    unsigned reserve; /* kept free for the application's files, logs, ... */
};

/* Raises the soft RLIMIT_NOFILE to the hard limit and counts the open
 * descriptors. Returns 0, or -1 with errno when the limit cannot be read
 * (a failed raise only leaves soft == soft_before). */
int fdlimit_raise(struct fd_budget *budget);

/* How many connections fit: requested, lowered so that in_use + reserve +
 * connections stays under the soft limit; at least 1. Sets budget->reserve. */
unsigned fdlimit_max_connections(unsigned requested, struct fd_budget *budget);

#endif

/* struct acceptor: the poll() thread. It accepts connections, reads each
 * request completely without blocking, and hands complete requests to the
 * pool. Limits, timeouts and overload are decided here, so a slow or hostile
 * client never costs a worker. */
#ifndef PYRUVATE_ACCEPTOR_H
#define PYRUVATE_ACCEPTOR_H

#include "pyruvate/common.h"
#include "pyruvate/conn.h"
#include "pyruvate/listen.h"
#include "pyruvate/metrics.h"
#include "pyruvate/pool.h"
#include "pyruvate/request.h"

struct acceptor;

struct handoff;

struct acceptor_config {
    /* The acceptor closes those it drains (drain_accepts_backlog). */
    struct listener *listeners;
    unsigned listener_count;
    struct pool *pool; /* where complete requests go */
    const struct request_limits *limits;
    int request_timeout_ms;        /* first byte to complete request; then 408 */
    int header_timeout_ms;         /* accept to first byte; then close */
    int keepalive_timeout_ms;      /* idle time since the last activity; then close */
    int linger_timeout_ms;         /* draining input after an error response */
    unsigned max_connections;      /* beyond it: close the longest idle, else 503 */
    unsigned queue_warn_threshold; /* warn when this many requests wait; 0: off */
    int access_log;                /* log the responses it sends itself */
    unsigned max_reuse_count;      /* requests per connection; 0: no limit */
    struct metrics *metrics;       /* counted into; may be NULL */
    const atomic_int *draining;    /* the health endpoint answers 503 once set; may be NULL */
    /* Paths it answers itself (health, metrics); NULL: off. */
    const char *endpoint_paths[METRICS_ENDPOINT_COUNT];
    /* The listeners are ours alone: the drain empties and closes them (a
     * Unix socket's path goes first), so no connection the kernel took in
     * is reset by a later close. */
    int drain_accepts_backlog;
    /* Takes back what waits there too long (see handoff.h), and all of it
     * when the drain begins; may be NULL. */
    struct handoff *handoff;
};

/* Creates the acceptor and starts its thread. NULL on failure, with a
 * message in err. The config and what it points to must outlive it. Fills
 * *conn_return (acceptor_give_back and acceptor_close) before the thread
 * can hand out a connection, so the stages after the pool never need the
 * acceptor itself. */
struct acceptor *acceptor_start(const struct acceptor_config *config,
                                struct conn_return *conn_return, char err[PYR_ERR_LEN]);

/* Returns a connection after its response: it waits for the next request
 * (or, when c->lingering, for the peer to close). Takes ownership of c;
 * thread-safe. */
void acceptor_give_back(struct acceptor *a, struct conn *c);

/* Closes and frees a connection that its owner is done with, keeping the
 * connection count right. Thread-safe. */
void acceptor_close(struct acceptor *a, struct conn *c);

/* Reads the metrics and the gauges the acceptor and its pool know of into
 * *s. Thread-safe while a is not destroyed (also after acceptor_stop). */
void acceptor_snapshot(struct acceptor *a, struct metrics_snapshot *s);

/* Begins the drain at shutdown and returns once the acceptor no longer
 * watches the listeners: closed already (fd -1) with drain_accepts_backlog,
 * else the caller may close them now. From then on
 * requests being read are read to their end and dispatched, and an idle
 * connection is closed once it has been quiet for idle_grace_ms (those
 * quiet longer at once), unless it sends a request first: that one is
 * answered. Call once, without the GIL. */
void acceptor_drain(struct acceptor *a, int idle_grace_ms);

/* Connections open now, wherever they are (acceptor, idle set, queue,
 * workers, parked): 0 once a drain is complete. Thread-safe. */
unsigned acceptor_open_connections(struct acceptor *a);

/* Stops accepting, closes every connection the acceptor holds (a request
 * only partly read is answered 503 first) and joins its thread.
 * Connections given back afterwards are closed at once. */
void acceptor_stop(struct acceptor *a);

/* Frees a stopped acceptor. */
void acceptor_destroy(struct acceptor *a);

#endif

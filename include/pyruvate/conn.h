/* struct conn: one client connection and the request being read from it.
 *
 * A connection has exactly one owner at a time and ownership moves with each
 * handoff: acceptor (reading) -> pool queue -> worker (answering) -> back to
 * the acceptor for keep-alive (through struct conn_return), or for a moment
 * into the handoff set (handoff.h) where any worker may take it up again,
 * or closed by the owner. */
#ifndef PYRUVATE_CONN_H
#define PYRUVATE_CONN_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "pyruvate/buf.h"
#include "pyruvate/listen.h"
#include "pyruvate/metrics.h"
#include "pyruvate/request.h"

/* The peer's address as far as anything looks at it: an IPv4 or IPv6
 * address and port; of a Unix socket peer only its family. */
union conn_peer {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* Thousands of keep-alive connections may wait idle, so an idle one holds
 * only this struct (176 bytes; check_conn.c bounds it): its
 * input buffer and its request (parser state and header array) exist while
 * a request is read or answered. */
struct conn {
    /* immutable after conn_create, but for poll_index */
    int fd;
    unsigned poll_index; /* acceptor thread only: slot in its poll set; 0 when not in it */
    const struct listener *listener;
    const struct request_limits *limits;
    union conn_peer peer;
    struct metrics *metrics; /* the server's, set by the acceptor; may be NULL */

    /* current owner only */
    unsigned requests_served;
    struct buf in; /* bytes read and not yet consumed by a request */
    /* The request being read or answered; NULL while c waits in a poll
     * set with no byte of one buffered (then c->in holds no memory either). */
    struct request *request;
    int continue_sent;        /* 100 Continue went out for this request */
    int lingering;            /* answered and half-closed; draining input */
    int64_t deadline_ms;      /* monotonic ms when the current wait ends */
    int64_t request_start_ms; /* monotonic ms of the request's first byte */
    int64_t queued_us;        /* monotonic us when handed to the pool */
    int64_t taken_us;         /* monotonic us when a worker took the request */
    int64_t idle_since_ms;    /* acceptor: when it last went quiet; 0 while busy */

    /* A response waiting for the client to read (wsgi.c's struct
     * parked_response) and the bytes it holds; NULL between responses.
     * Current owner only; freed by a worker or at shutdown, with the GIL. */
    void *parked;
    size_t park_bytes;

    /* link in a handoff list, owned by that list's lock */
    struct conn *next;
};

/* Wraps an accepted socket. Takes ownership of fd (closed on failure too).
 * Returns NULL on ENOMEM. */
struct conn *conn_create(int fd, const struct listener *listener, const struct sockaddr *peer,
                         socklen_t peer_len, const struct request_limits *limits);

/* Reads what the socket has into c->in (counted as bytes in, and makes
 * c->request when these are a request's first bytes). Returns bytes read,
 * 0 at EOF, or -1 with errno (EAGAIN: nothing available now; ENOMEM: the
 * bytes read are lost, close c). */
ssize_t conn_read(struct conn *c);

/* Parses the buffered bytes; see request_feed. */
enum request_state conn_parse(struct conn *c);

/* Drops the answered request from the buffer and parses what follows it
 * (a pipelined request). */
enum request_state conn_reset_for_next_request(struct conn *c);

/* Frees c's input buffer and request when nothing is buffered, for c to
 * wait in a poll set holding neither: thousands of idle connections may
 * wait. (A worker that reads the next request at once reuses them.) */
void conn_release_if_idle(struct conn *c);

/* Frees the request conn_release_if_idle may keep for the calling thread's
 * next connection; call before the thread ends. */
void conn_drop_spare(void);

/* A connection's next step, decided by conn_next for both of its owners. */
enum conn_next {
    CONN_READ,     /* the request is not whole yet: wait for more bytes */
    CONN_DISPATCH, /* a whole request is buffered: answer it */
    CONN_REJECT,   /* answer c->request.error_status with conn_reject */
    CONN_LINGER,   /* the last response went out and the client sent more:
                    * conn_linger, then drain until it closes */
    CONN_CLOSE,    /* the last response went out, nothing unread: close */
};

enum conn_moment {
    CONN_AFTER_READ,          /* the acceptor read bytes or got c back */
    CONN_AFTER_RESPONSE,      /* a worker answered; c may carry another */
    CONN_AFTER_LAST_RESPONSE, /* a worker answered; c must not carry another */
};

/* Decides what happens to c now: parses what is buffered (after a
 * response, from the byte after the answered request), and refuses a
 * header block that outgrows every limit (431). */
enum conn_next conn_next(struct conn *c, enum conn_moment moment);

/* 1 when bytes wait unread in c's socket: such a connection is not idle,
 * whatever its idle_since_ms says. 0 after the peer's close: closing it
 * to make room is the right thing then. */
int conn_has_unread_input(const struct conn *c);

/* Half-closes c and frees its input, for its owner to drain what the
 * client still sends: closing with unread input would make the kernel
 * send a reset that can destroy the response before the client reads it. */
void conn_linger(struct conn *c);

/* Sends a canned error response without blocking (best effort), counts
 * it as the server's own response, and half-closes the socket. */
void conn_send_error(struct conn *c, int status);

/* Answers the request on c with the server's own error response: its
 * access record first (when access_log is set), then the buffered input is
 * freed and the response sent, and c is marked lingering, for its owner to
 * drain it for a while: closing with unread input would make the kernel
 * send a reset that can destroy the response before the client reads it. */
void conn_reject(struct conn *c, int status, int access_log);

/* Queues the access record of a response the server sent on its own. */
void conn_log_access(const struct conn *c, int status);

/* Formats the peer address for REMOTE_ADDR/REMOTE_PORT ("" for AF_UNIX). */
void conn_peer_strings(const struct conn *c, char *host, size_t host_size, char *port,
                       size_t port_size);

/* Formats the access-log line for the request on c: Common Log Format plus
 * the seconds since its first byte. address overrides the peer address
 * when not empty (a trusted proxy's client); a request that never got a
 * request line shows as "-". */
void conn_access_line(const struct conn *c, const char *address, int status,
                      unsigned long long body_bytes, char *out, size_t out_size);

/* The endpoint (health, metrics) that the complete request on c names,
 * given the configured paths (NULL: off); METRICS_NO_ENDPOINT for the
 * app's. Only the acceptor answers those, without the GIL. */
enum metrics_endpoint conn_endpoint(const struct conn *c,
                                    const char *const paths[METRICS_ENDPOINT_COUNT]);

/* Closes the socket and frees c. */
void conn_free(struct conn *c);

/* Where a connection goes when a later stage (worker, wsgi, shutdown) is
 * done with it, without that stage knowing who reads requests: give_back
 * takes ownership of c to wait for its next request (or, when c->lingering,
 * for the peer to close); close frees c and keeps the connection count
 * right. Both are thread-safe. The acceptor fills it in (acceptor_start). */
struct conn_return {
    void (*give_back)(struct conn *c, void *ctx);
    void (*close)(struct conn *c, void *ctx);
    void *ctx;
};

static inline void conn_return_give_back(const struct conn_return *to, struct conn *c)
{
    to->give_back(c, to->ctx);
}

static inline void conn_return_close(const struct conn_return *to, struct conn *c)
{
    to->close(c, to->ctx);
}

#endif

/* struct server and its options: what the stages below server.c (the
 * acceptor's and the workers' files) read of the serve() call. server.c owns
 * and fills it; this header stands below everything that uses it. */
#ifndef PYRUVATE_SERVER_STATE_H
#define PYRUVATE_SERVER_STATE_H

#include "pyruvate/state.h"

#include <stdatomic.h>

#include "pyruvate/conn.h"
#include "pyruvate/listen.h"
#include "pyruvate/proxy.h"
#include "pyruvate/request.h"

struct acceptor;
struct park_set;
struct pool;

/* Where to listen. */
struct server_bind {
    const char *address; /* "host:port", "[v6]:port", "/path" or "unix:/path"; or NULL */
    int fd;              /* a bound, listening socket to serve on; -1 for none */
    unsigned unix_mode;  /* permissions of a Unix socket file; 0 leaves the umask's */
};
/* With address NULL and fd -1, the sockets come from systemd (LISTEN_FDS). */

enum { SERVER_MAX_LISTENERS = 16 };

/* Everything serve() accepts besides the app, the address and the worker
 * count. Times are in milliseconds. */
struct server_options {
    unsigned workers;
    struct request_limits limits;
    int keepalive_timeout_ms;
    int request_timeout_ms;
    int header_timeout_ms; /* accept to first byte, at most keepalive_timeout_ms */
    int send_timeout_ms;
    int shutdown_timeout_ms;
    unsigned max_reuse_count; /* requests per connection; 0: no limit */
    unsigned max_connections;
    int max_connections_chosen;   /* given by the operator, not the default */
    unsigned max_queue_size;      /* complete requests waiting for a worker */
    unsigned qmon_warn_threshold; /* 0: off */
    int chunked_transfer;         /* chunked framing when the length is unknown */
    int async_logging;
    int access_log; /* one "pyruvate.access" record per request */
    int backlog;
    struct proxy_trust trusted_proxies;
    char url_scheme[16];  /* wsgi.url_scheme unless a trusted proxy says otherwise */
    char url_prefix[256]; /* SCRIPT_NAME, stripped from PATH_INFO */
};

struct server {
    /* immutable while serving */
    struct server_options options;
    PyObject *module;           /* strong reference */
    PyObject *application;      /* strong reference */
    PyObject *environ_template; /* the per-server environ entries, copied per request */
    PyInterpreterState *interpreter;
    struct listener listeners[SERVER_MAX_LISTENERS];
    unsigned listener_count;
    struct pool *pool;
    struct acceptor *acceptor;      /* server.c only */
    struct conn_return conn_return; /* the acceptor's, for the workers */
    struct park_set *park;          /* responses waiting for their client to read */

    atomic_int stopping; /* set once shutdown begins */

    /* needs the GIL: a KeyboardInterrupt raised while relaying log records */
    PyObject *interrupt_type, *interrupt_value, *interrupt_traceback;
};

#endif

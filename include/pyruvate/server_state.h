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
#include "pyruvate/registry.h"
#include "pyruvate/request.h"

struct acceptor;
struct metrics;
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
    int shutdown_idle_grace_ms; /* idle keep-alive connections in the drain */
    unsigned max_reuse_count;   /* requests per connection; 0: no limit */
    unsigned max_connections;
    int max_connections_chosen;   /* given by the operator, not the default */
    unsigned max_queue_size;      /* complete requests waiting for a worker */
    unsigned qmon_warn_threshold; /* 0: off */
    int chunked_transfer;         /* chunked framing when the length is unknown */
    int async_logging;
    int access_log; /* one "pyruvate.access" record per request */
    int backlog;
    struct proxy_trust trusted_proxies;
    char url_scheme[16];    /* wsgi.url_scheme unless a trusted proxy says otherwise */
    char url_prefix[256];   /* SCRIPT_NAME, stripped from PATH_INFO */
    char health_path[256];  /* answered by the acceptor; "" when off */
    char metrics_path[256]; /* answered by the acceptor; "" when off */
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
    int listeners_opened_here; /* not given to serve() nor passed by systemd */
    struct pool *pool;
    struct room *room;              /* the pool's (room.h); freed after it */
    struct acceptor *acceptor;      /* server.c only */
    struct conn_return conn_return; /* the acceptor's, for the workers */
    struct park_set *park;          /* responses waiting for their client to read */
    struct handoff *handoff;        /* answered keep-alive connections, for any worker */
    struct metrics *metrics;        /* counted by every thread; freed with the server */
    /* The paths the acceptor answers itself (health, metrics); NULL: off. */
    const char *endpoint_paths[METRICS_ENDPOINT_COUNT];

    atomic_int stopping; /* set once shutdown begins */
    /* Listed while serve() runs, for pyruvate.shutdown(); published to
     * registry_visit (as this struct server) while pool, park and acceptor
     * exist. See registry.h. */
    struct registry_entry registry;

    /* needs the GIL: a KeyboardInterrupt raised while relaying log records */
    PyObject *interrupt_type, *interrupt_value, *interrupt_traceback;
};

#endif

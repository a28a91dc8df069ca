/* One serve() call from start to stop: listeners, pool and acceptor come up
 * in that order and go down in reverse; meanwhile the calling thread waits
 * for signals and relays queued log records to Python's logging. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/server.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pyruvate/acceptor.h"
#include "pyruvate/environ.h"
#include "pyruvate/fdlimit.h"
#include "pyruvate/handoff.h"
#include "pyruvate/log.h"
#include "pyruvate/park.h"
#include "pyruvate/pool.h"
#include "pyruvate/stats.h"
#include "pyruvate/registry.h"
#include "pyruvate/room.h"
#include "pyruvate/signals.h"
#include "pyruvate/systemd.h"
#include "pyruvate/wakeup.h"
#include "pyruvate/worker.h"
#include "pyruvate/wsgi.h"

/* One serve() at a time. */
static atomic_int serving;

struct stats_visit {
    struct metrics_snapshot *snapshot;
    int found;
};

/* registry_visit's visitor for stats(): copies the first published
 * server's numbers (one serve() runs at a time); runs under the
 * registry's lock, so the server cannot go away meanwhile. */
static void snapshot_server(void *server, void *ctx)
{
    struct stats_visit *visit = ctx;
    if (visit->found)
        return;
    struct server *s = server;
    acceptor_snapshot(s->acceptor, visit->snapshot);
    visit->found = 1;
}

/* The one place that finds the running server for stats(). Returns 1 with
 * *snapshot filled, or 0 when no server is running. */
static int snapshot_running_server(struct metrics_snapshot *snapshot)
{
    struct stats_visit visit = {.snapshot = snapshot, .found = 0};
    registry_visit(snapshot_server, &visit);
    return visit.found;
}

PyObject *server_stats(PyObject *module, PyObject *unused)
{
    PYR_UNUSED(module);
    PYR_UNUSED(unused);
    struct metrics_snapshot snapshot;
    if (!snapshot_running_server(&snapshot))
        Py_RETURN_NONE;
    return stats_dict(&snapshot);
}

/* After a failed logging call: an ordinary exception is dropped (logging
 * must not stop the server), but KeyboardInterrupt or SystemExit, raised by
 * an application's own signal handler while logging ran Python code, is
 * kept for serve(). The record is not logged again: it may have been
 * written before the handler ran. */
static void keep_interrupt(struct server *s)
{
    if (PyErr_ExceptionMatches(PyExc_Exception) || s->interrupt_type != NULL) {
        PyErr_Clear();
        return;
    }
    PyErr_Fetch(&s->interrupt_type, &s->interrupt_value, &s->interrupt_traceback);
}

/* Hands queued records to logging.getLogger("pyruvate"). */
static void relay_logs(struct server *s)
{
    struct log_record records[64];
    unsigned long dropped;
    struct module_state *st = module_get_state(s->module);
    PyObject *logger = st->logger;
    size_t n;
    while ((n = log_take(records, ARRAY_SIZE(records), &dropped)) > 0 || dropped) {
        if (dropped) {
            PyObject *r = PyObject_CallMethod(logger, "warning", "sk",
                                              "%lu log records were dropped", dropped);
            if (r == NULL)
                keep_interrupt(s);
            Py_XDECREF(r);
        }
        for (size_t i = 0; i < n; i++) {
            PyObject *target = records[i].target == LOG_TO_ACCESS ? st->access_logger : logger;
            PyObject *r =
                PyObject_CallMethod(target, "log", "is", records[i].level, records[i].message);
            if (r == NULL)
                keep_interrupt(s);
            Py_XDECREF(r);
        }
        if (n < ARRAY_SIZE(records))
            break;
    }
}

static int logger_level(PyObject *logger)
{
    PyObject *level = PyObject_CallMethod(logger, "getEffectiveLevel", NULL);
    long value = level ? PyLong_AsLong(level) : LOG_INFO;
    Py_XDECREF(level);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        value = LOG_INFO;
    }
    return (int)value;
}

static void drop_queued_conn(void *item, void *ctx)
{
    struct server *s = ctx;
    struct conn *c = item;
    if (c->parked)
        wsgi_drop_parked(s, c); /* a parked response on its way back */
    else
        conn_return_close(&s->conn_return, c);
}

/* Responses parked at once, and the response memory they may hold (the
 * chunk each is sending, kept by reference): beyond either, a worker waits
 * for its client itself, briefly (send.c). */
enum { PARK_MAX_RESPONSES = 1024 };
#define PARK_MAX_BYTES ((size_t)256 << 20)

/* Park thread: a parked response can go on; a worker resumes it. */
static int resume_parked(struct conn *c, void *ctx)
{
    struct server *s = ctx;
    c->queued_us = monotonic_us();
    return pool_submit(s->pool, c);
}

/* With the GIL, once no worker runs. */
static void drop_parked(struct conn *c, void *ctx)
{
    wsgi_drop_parked(ctx, c);
}

static void close_listeners(struct server *s)
{
    for (unsigned i = 0; i < s->listener_count; i++)
        listen_close(&s->listeners[i]);
    s->listener_count = 0;
}

/* The description of a listener for the start-up record: its address as
 * bound (the port the kernel chose for ":0"), IPv6 in brackets. */
static void describe_listener(const struct listener *l, const char *prefix, char *description,
                              size_t description_size)
{
    int v6 = strchr(l->server_name, ':') != NULL;
    snprintf(description, description_size, "%.40s%s%.180s%s%s%.15s", prefix, v6 ? "[" : "",
             l->server_name, v6 ? "]" : "", l->server_port[0] ? ":" : "", l->server_port);
}

/* "host:port", "[v6]:port" or a Unix socket path ("/..." or "unix:/..."). */
static int open_address(struct server *s, const struct server_bind *bind, char err[PYR_ERR_LEN])
{
    const char *path = bind->address;
    if (strncmp(path, "unix:", 5) == 0)
        path += 5;
    int rc = path[0] == '/' ? listen_open_unix(&s->listeners[0], path, bind->unix_mode,
                                               s->options.backlog, err)
                            : listen_open(&s->listeners[0], bind->address, s->options.backlog, err);
    if (rc < 0)
        return -1;
    s->listener_count = 1;
    return 0;
}

/* A listening socket given to serve(): checked before the dup, so nothing
 * happens to a descriptor that is not one. The caller keeps its own. */
static int adopt_given(struct server *s, int given_fd, char err[PYR_ERR_LEN])
{
    if (listen_check(given_fd, err) < 0)
        return -1;
    int fd = dup(given_fd);
    if (fd < 0) {
        snprintf(err, PYR_ERR_LEN, "cannot duplicate file descriptor %d", given_fd);
        return -1;
    }
    if (listen_adopt(&s->listeners[0], fd, err) < 0) {
        int saved_errno = errno;
        close(fd);
        errno = saved_errno;
        return -1;
    }
    s->listener_count = 1;
    return 0;
}

/* The sockets systemd passed (count of them, from SYSTEMD_FIRST_FD). Every
 * one is checked before any is taken: with a wrong environment they may be
 * the application's files, and they stay as they were. */
static int adopt_systemd(struct server *s, int count, char err[PYR_ERR_LEN])
{
    for (int i = 0; i < count; i++)
        if (listen_check(SYSTEMD_FIRST_FD + i, err) < 0)
            return -1;
    for (int i = 0; i < count; i++) {
        if (listen_adopt(&s->listeners[i], SYSTEMD_FIRST_FD + i, err) < 0) {
            /* Not taken after all: left open for whoever passed them. */
            for (unsigned j = 0; j < s->listener_count; j++)
                s->listeners[j].fd = -1;
            return -1;
        }
        s->listener_count++;
    }
    return 0;
}

/* Opens every listening socket. Raises OSError (or ValueError for a
 * missing systemd socket) and returns -1 on failure. */
static int open_listeners(struct server *s, const struct server_bind *bind, char *description,
                          size_t description_size)
{
    char err[PYR_ERR_LEN] = "";
    if (bind->address) {
        if (open_address(s, bind, err) < 0)
            goto fail;
        s->listeners_opened_here = 1;
        if (s->listeners[0].server_port[0])
            describe_listener(&s->listeners[0], "", description, description_size);
        else
            snprintf(description, description_size, "%s", bind->address);
        return 0;
    }
    if (bind->fd >= 0) {
        if (adopt_given(s, bind->fd, err) < 0)
            goto fail;
        describe_listener(&s->listeners[0], "inherited socket ", description, description_size);
        return 0;
    }
    int count = systemd_listen_count();
    if (count == 0) {
        PyErr_SetString(PyExc_ValueError, "no socket given and no socket passed by systemd "
                                          "(LISTEN_PID/LISTEN_FDS are not set for this process)");
        return -1;
    }
    if (count > SERVER_MAX_LISTENERS)
        count = SERVER_MAX_LISTENERS;
    if (adopt_systemd(s, count, err) < 0)
        goto fail;
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%d socket(s) from systemd, first ", count);
    describe_listener(&s->listeners[0], prefix, description, description_size);
    return 0;
fail:;
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", errno, err);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    close_listeners(s);
    return -1;
}

/* Raises the open file limit as far as allowed and lowers max_connections
 * to what fits under it, so that running out of descriptors ends in an
 * eviction or a 503 rather than in accept() failing while clients wait. */
static unsigned fit_connections_to_descriptors(unsigned requested, int chosen)
{
    struct fd_budget budget;
    if (fdlimit_raise(&budget) < 0) {
        log_write(LOG_WARNING, "cannot read the open file limit (errno %d)", errno);
        return requested;
    }
    if (budget.soft != budget.soft_before)
        log_write(LOG_INFO, "raised the open file limit (RLIMIT_NOFILE) from %lu to %lu",
                  budget.soft_before, budget.soft);
    else if (budget.soft < budget.hard)
        log_write(LOG_WARNING, "cannot raise the open file limit from %lu to %lu", budget.soft,
                  budget.hard);
    unsigned fitted = fdlimit_max_connections(requested, &budget);
    if (fitted < requested)
        log_write(chosen ? LOG_WARNING : LOG_INFO,
                  "max_connections lowered from %u to %u: the open file limit is %lu "
                  "(%u descriptors in use, %u kept for the application)",
                  requested, fitted, budget.soft, budget.in_use, budget.reserve);
    return fitted;
}

static void server_free(struct server *s)
{
    close_listeners(s);
    metrics_free(s->metrics);
    Py_CLEAR(s->environ_template);
    Py_CLEAR(s->application);
    Py_CLEAR(s->module);
    PyMem_RawFree(s);
}

/* Waits for SIGINT/SIGTERM or pyruvate.shutdown(), relaying log records
 * meanwhile. Returns 0 on SIGTERM or shutdown(), -1 with KeyboardInterrupt
 * on SIGINT or with the exception an application's signal handler raised. */
static int wait_for_stop(struct server *s, int signal_fd, int log_fd)
{
    int ignored_timeout;
    for (;;) {
        struct pollfd fds[2] = {{.fd = signal_fd, .events = POLLIN},
                                {.fd = log_fd, .events = POLLIN}};
        Py_BEGIN_ALLOW_THREADS
        poll(fds, 2, 1000);
        Py_END_ALLOW_THREADS
        char drain[64];
        while (read(signal_fd, drain, sizeof(drain)) > 0)
            ;
        uint64_t count;
        if (read(log_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
            log_write(LOG_DEBUG, "reading the log wake-up failed (errno %d)", errno);
        relay_logs(s);
        if (s->interrupt_type) {
            PyErr_Restore(s->interrupt_type, s->interrupt_value, s->interrupt_traceback);
            s->interrupt_type = s->interrupt_value = s->interrupt_traceback = NULL;
            return -1;
        }
        if (PyErr_CheckSignals() < 0)
            return -1;
        int received = signals_take();
        if (received == SIGINT) {
            PyErr_SetNone(PyExc_KeyboardInterrupt);
            return -1;
        }
        if (received == SIGTERM)
            return 0;
        if (registry_stop_requested(&s->registry, &ignored_timeout))
            return 0; /* shut_down reads the timeout */
    }
}

/* During the shutdown: has a second SIGTERM or SIGINT come (logged)? */
static int second_signal(int signal_fd)
{
    char drain[64];
    int signalled = read(signal_fd, drain, sizeof(drain)) > 0;
    if (!signalled && !signals_pending())
        return 0;
    int interrupted = PyErr_CheckSignals() < 0;
    while (signals_take() != 0)
        interrupted = 1;
    PyErr_Clear();
    if (interrupted)
        log_write(LOG_WARNING, "second signal: stopping without waiting for workers");
    return interrupted;
}

/* The drain's deadline: the shutdown timeout from its start, or sooner when
 * pyruvate.shutdown() asked for a shorter one. */
static int64_t drain_deadline(struct server *s, int64_t started, int64_t deadline)
{
    int timeout_ms;
    if (registry_stop_requested(&s->registry, &timeout_ms) && timeout_ms >= 0 &&
        started + timeout_ms < deadline)
        return started + timeout_ms;
    return deadline;
}

/* Everything taken in before the stop is answered: the connections, the
 * queue, the parked responses and the workers are all done. */
static int drained(struct server *s)
{
    return acceptor_open_connections(s->acceptor) == 0 && pool_busy(s->pool) == 0 &&
           park_count(s->park) == 0;
}

/* Complete requests still waiting for a worker when the drain's time is
 * up (every worker busy to the end) are answered 503 (Retry-After,
 * Connection: close) and logged, like a request still being read then,
 * rather than closed silently: a proxy cannot tell a silent close from a
 * crash. Taken from the pool under its lock, so this works also while a
 * worker is stuck in the app and the pool cannot be destroyed. With the
 * GIL, for a parked response on its way back to a worker. */
static void refuse_queued(struct server *s)
{
    struct conn *c;
    while ((c = pool_try_take(s->pool)) != NULL) {
        if (c->parked) {
            wsgi_drop_parked(s, c);
            continue;
        }
        log_write(LOG_DEBUG, "answering 503 to fd %d: no worker before the shutdown timeout",
                  c->fd);
        conn_send_error(c, 503);
        if (s->options.access_log)
            conn_log_access(c, 503);
        conn_return_close(&s->conn_return, c);
    }
}

/* Stops accepting and drains (acceptor_drain): every request taken in is
 * answered, within the shutdown timeout (a second signal cuts it short);
 * then the acceptor and the workers stop. Returns 0 when every worker
 * exited, -1 when some are still busy. */
static int shut_down(struct server *s, int signal_fd)
{
    atomic_store(&s->stopping, 1);
    Py_BEGIN_ALLOW_THREADS
    /* An idle connection stays open a little, for a request its client (a
     * proxy reusing its cached connection) may be sending already: see
     * README.md, Deployment. */
    acceptor_drain(s->acceptor, s->options.shutdown_idle_grace_ms);
    Py_END_ALLOW_THREADS
    /* New clients are refused at once instead of waiting in the backlog
     * for an answer that will never come; a proxy tries another server.
     * Sockets we opened are closed by the acceptor already (backlog
     * served); those given to us are only let go of here. */
    close_listeners(s);

    int64_t started = monotonic_ms();
    int64_t deadline = started + s->options.shutdown_timeout_ms;
    while (!drained(s) && monotonic_ms() < (deadline = drain_deadline(s, started, deadline))) {
        struct pollfd wake = {.fd = signal_fd, .events = POLLIN};
        Py_BEGIN_ALLOW_THREADS
        poll(&wake, 1, 50);
        Py_END_ALLOW_THREADS
        relay_logs(s);
        if (second_signal(signal_fd)) {
            deadline = monotonic_ms(); /* the workers get no more time either */
            break;
        }
    }
    /* What is left after the deadline is closed (a request being read or
     * waiting for a worker is answered 503); parked responses are dropped
     * below. */
    Py_BEGIN_ALLOW_THREADS
    acceptor_stop(s->acceptor);
    pool_stop(s->pool);
    Py_END_ALLOW_THREADS
    refuse_queued(s);

    int joined = -1;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        joined = pool_join(s->pool, 100);
        Py_END_ALLOW_THREADS
        relay_logs(s);
        if (joined == 0 || monotonic_ms() >= drain_deadline(s, started, deadline) ||
            second_signal(signal_fd))
            break;
    }
    return joined;
}

/* Stops the pool (and with it the park set) after a failed start. */
static void stop_pool_early(struct server *s)
{
    pool_stop(s->pool);
    Py_BEGIN_ALLOW_THREADS
    pool_join(s->pool, -1);
    Py_END_ALLOW_THREADS
    if (s->park)
        park_stop(s->park, drop_parked, s);
    pool_destroy(s->pool, NULL, NULL);
}

/* Starts the workers, the park set and the acceptor, in the order a
 * request needs them, and says where it serves. Returns 0, or -1 with an
 * exception set and none of them running. */
/* What the acceptor is told of this serve() call. */
static struct acceptor_config acceptor_config_of(struct server *s)
{
    const struct server_options *options = &s->options;
    return (struct acceptor_config){
        .listeners = s->listeners,
        .listener_count = s->listener_count,
        .pool = s->pool,
        .limits = &s->options.limits,
        .request_timeout_ms = options->request_timeout_ms,
        .header_timeout_ms = options->header_timeout_ms,
        .keepalive_timeout_ms = options->keepalive_timeout_ms,
        .linger_timeout_ms = 2000,
        .max_connections = s->options.max_connections,
        .queue_warn_threshold = options->qmon_warn_threshold,
        .access_log = options->access_log,
        .max_reuse_count = options->max_reuse_count,
        .metrics = s->metrics,
        .draining = &s->stopping,
        .endpoint_paths = {s->endpoint_paths[METRICS_HEALTH],
                           s->endpoint_paths[METRICS_EXPOSITION]},
        /* Sockets given to us or passed by systemd have another owner, who
         * keeps their backlog for whoever serves them next. */
        .drain_accepts_backlog = s->listeners_opened_here,
        .handoff = s->handoff,
    };
}

/* pool_callbacks.wake_watching: a request was queued while a worker waits
 * on the handoff set and no idle worker takes it. */
static void wake_handoff_watcher(void *ctx)
{
    struct server *s = ctx;
    if (s->handoff)
        handoff_wake_watcher(s->handoff);
}

/* CPython's switch interval (sys.getswitchinterval()) in seconds, or 0
 * when it cannot be read: room_alone_us makes the room's bound of it. */
static double switch_interval(void)
{
    double seconds = 0;
    PyObject *get = PySys_GetObject("getswitchinterval"); /* borrowed */
    PyObject *value = get ? PyObject_CallNoArgs(get) : NULL;
    if (value && PyFloat_Check(value))
        seconds = PyFloat_AsDouble(value);
    Py_XDECREF(value);
    PyErr_Clear();
    return seconds;
}

static int start_threads(struct server *s, const char *address)
{
    char err[PYR_ERR_LEN] = "";
    const struct server_options *options = &s->options;
    struct pool_callbacks callbacks = {.thread_start = worker_thread_start,
                                       .acquire = worker_acquire,
                                       .release = worker_release,
                                       .handle = worker_handle,
                                       .thread_stop = worker_thread_stop,
                                       .wake_watching = wake_handoff_watcher,
                                       .ctx = s};
    s->room = room_create(options->workers, room_alone_us(switch_interval()), NULL, NULL);
    if (s->room == NULL) {
        snprintf(err, PYR_ERR_LEN, "out of memory creating the worker pool");
        goto fail;
    }
    callbacks.room = s->room;
    /* Workers take the GIL while they start, so let go of it meanwhile. */
    Py_BEGIN_ALLOW_THREADS
    s->pool = pool_create("pyruvate", options->workers, options->max_queue_size, &callbacks, err);
    Py_END_ALLOW_THREADS
    if (s->pool == NULL)
        goto free_room;
    struct park_callbacks park_callbacks = {.ready = resume_parked, .ctx = s};
    s->park = park_start(&park_callbacks, PARK_MAX_RESPONSES, PARK_MAX_BYTES, err);
    if (s->park == NULL)
        goto stop_pool;
    s->options.max_connections =
        fit_connections_to_descriptors(options->max_connections, options->max_connections_chosen);
    s->handoff = handoff_create();
    if (s->handoff == NULL) {
        snprintf(err, PYR_ERR_LEN, "out of memory creating the handoff set");
        goto stop_pool;
    }
    struct acceptor_config config = acceptor_config_of(s);
    /* The start-up records reach the log before the first request is
     * answered, whatever the scheduling of the threads. */
    log_write(LOG_INFO, "pyruvate serving on %s with %u workers", address, options->workers);
    relay_logs(s);
    s->acceptor = acceptor_start(&config, &s->conn_return, err);
    if (s->acceptor == NULL)
        goto stop_pool;
    return 0;
stop_pool:
    stop_pool_early(s);
    handoff_destroy(s->handoff);
    s->handoff = NULL;
free_room:
    room_destroy(s->room);
    s->room = NULL;
fail:
    PyErr_SetString(PyExc_RuntimeError, err);
    return -1;
}

/* Stops serving (shut_down) and frees the threads. Returns 1, or 0 when
 * workers still run the app and use the server: then it stays allocated. */
static int stop_threads(struct server *s, int signal_fd)
{
    int joined = shut_down(s, signal_fd);
    registry_publish(&s->registry, NULL); /* what visitors read goes now */
    if (joined != 0) {
        log_write(LOG_WARNING, "workers still busy after the shutdown timeout; not waiting");
        return 0;
    }
    /* No worker runs now: what is still parked is dropped here. */
    park_stop(s->park, drop_parked, s);
    pool_destroy(s->pool, drop_queued_conn, s);
    acceptor_destroy(s->acceptor);
    handoff_destroy(s->handoff); /* the acceptor emptied it as it stopped */
    room_destroy(s->room);
    return 1;
}

/* serve() raises what a signal handler raised while it waited (*type set),
 * else the KeyboardInterrupt or SystemExit a worker kept. */
static void take_interrupt(struct server *s, PyObject **type, PyObject **value, PyObject **tb)
{
    if (s->interrupt_type == NULL)
        return;
    if (*type == NULL) {
        *type = s->interrupt_type;
        *value = s->interrupt_value;
        *tb = s->interrupt_traceback;
    } else {
        Py_DECREF(s->interrupt_type);
        Py_XDECREF(s->interrupt_value);
        Py_XDECREF(s->interrupt_traceback);
    }
    s->interrupt_type = s->interrupt_value = s->interrupt_traceback = NULL;
}

/* A server for one serve() call. NULL with an exception set. */
static struct server *server_new(PyObject *module, PyObject *application,
                                 const struct server_options *options)
{
    struct server *s = PyMem_RawCalloc(1, sizeof(*s));
    if (s == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    s->options = *options;
    s->endpoint_paths[METRICS_HEALTH] = s->options.health_path[0] ? s->options.health_path : NULL;
    s->endpoint_paths[METRICS_EXPOSITION] =
        s->options.metrics_path[0] ? s->options.metrics_path : NULL;
    s->metrics = metrics_new();
    if (s->metrics == NULL) {
        PyMem_RawFree(s);
        PyErr_NoMemory();
        return NULL;
    }
    s->module = Py_NewRef(module);
    s->application = Py_NewRef(application);
    s->interpreter = PyInterpreterState_Get();
    return s;
}

/* Puts back the signal handlers and closes the descriptors serve() made
 * for signals and log wake-ups (-1: not made). */
static void put_process_back(struct saved_signals *saved, const int signal_pair[2], int log_fd)
{
    signals_restore(saved);
    log_set_wake_fd(-1);
    if (signal_pair[0] >= 0) {
        close(signal_pair[0]);
        close(signal_pair[1]);
    }
    if (log_fd >= 0)
        close(log_fd);
}

/* Serves from the moment the threads run until a signal or a stop ends it,
 * then stops the threads. What a signal handler raised (KeyboardInterrupt)
 * is kept in *exc_* for the end. Returns whether every thread stopped (if
 * not, s must outlive them). */
static int serve_until_stopped(struct server *s, int signal_fd, int log_fd, PyObject **exc_type,
                               PyObject **exc_value, PyObject **exc_tb)
{
    if (systemd_notify("READY=1") < 0)
        log_write(LOG_WARNING, "cannot notify systemd (NOTIFY_SOCKET): errno %d", errno);
    /* Keep what a signal handler raised (KeyboardInterrupt) for the end. */
    if (wait_for_stop(s, signal_fd, log_fd) < 0)
        PyErr_Fetch(exc_type, exc_value, exc_tb);
    log_write(LOG_INFO, "pyruvate stopping");
    int stopped_cleanly = stop_threads(s, signal_fd);
    relay_logs(s);
    take_interrupt(s, exc_type, exc_value, exc_tb);
    return stopped_cleanly;
}

/* Opens the sockets, makes the environ template and starts the threads,
 * with log records going to log_fd's relay. Returns 0, or -1 with an
 * exception set. */
static int start_serving(struct server *s, const struct server_bind *bind, PyObject *logger,
                         int log_fd)
{
    char address[PYR_ERR_LEN];
    if (open_listeners(s, bind, address, sizeof(address)) < 0)
        return -1;
    s->environ_template = environ_template(s);
    if (s->environ_template == NULL)
        return -1;
    log_set_level(logger_level(logger));
    log_set_wake_fd(log_fd);
    return start_threads(s, address);
}

PyObject *server_run(PyObject *module, PyObject *application, const struct server_bind *bind,
                     const struct server_options *options)
{
    int signal_pair[2] = {-1, -1}, log_fd = -1;
    struct saved_signals saved = {0};
    struct module_state *st = module_get_state(module);

    if (atomic_exchange(&serving, 1)) {
        PyErr_SetString(PyExc_RuntimeError, "pyruvate is already serving in this process");
        return NULL;
    }
    struct server *s = server_new(module, application, options);
    if (s == NULL) {
        atomic_store(&serving, 0);
        return NULL;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, signal_pair) < 0 ||
        (log_fd = wakeup_open()) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto fail;
    }
    /* Listed before the socket exists: a shutdown() from a thread that has
     * seen us start is never lost. */
    registry_add(&s->registry, signal_pair[1]);
    /* Before the socket exists: a client that can connect may also signal,
     * and a SIGTERM must then stop us gracefully, not kill the process. */
    signals_install(module, &saved, signal_pair[1]);
    if (start_serving(s, bind, st->logger, log_fd) < 0)
        goto fail;
    registry_publish(&s->registry, s);

    PyObject *exc_type = NULL, *exc_value = NULL, *exc_tb = NULL;
    int stopped_cleanly =
        serve_until_stopped(s, signal_pair[0], log_fd, &exc_type, &exc_value, &exc_tb);
    registry_remove(&s->registry);
    put_process_back(&saved, signal_pair, log_fd);
    if (stopped_cleanly)
        server_free(s);
    else
        close_listeners(s);
    atomic_store(&serving, 0);
    if (exc_type) {
        PyErr_Restore(exc_type, exc_value, exc_tb);
        return NULL;
    }
    Py_RETURN_NONE;

fail:
    registry_remove(&s->registry);
    put_process_back(&saved, signal_pair, log_fd);
    server_free(s);
    atomic_store(&serving, 0);
    return NULL;
}

PyObject *server_shutdown(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    PYR_UNUSED(module);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:shutdown", keywords, &timeout))
        return NULL;
    int timeout_ms = REGISTRY_OWN_TIMEOUT;
    if (timeout != Py_None) {
        double seconds = PyFloat_AsDouble(timeout);
        if (seconds == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(seconds >= 0)) { /* NaN too */
            PyErr_SetString(PyExc_ValueError, "shutdown() timeout must be None or seconds >= 0");
            return NULL;
        }
        timeout_ms = seconds * 1000 >= INT_MAX ? INT_MAX : (int)(seconds * 1000);
    }
    return PyLong_FromUnsignedLong(registry_request_stop(timeout_ms));
}

/* struct worker: one pool thread's Python side, as the files that answer
 * its request (wsgi, environ, start_response, send) see it. worker.c owns
 * and fills it; this header stands below all of them. */
#ifndef PYRUVATE_WORKER_STATE_H
#define PYRUVATE_WORKER_STATE_H

#include "pyruvate/state.h"

#include <time.h>

#include "pyruvate/buf.h"
#include "pyruvate/conn.h"
#include "pyruvate/environ_cache.h"
#include "pyruvate/response.h"
#include "pyruvate/syntax.h"

struct server;

struct worker {
    struct server *server;
    unsigned index;
    PyThreadState *thread_state;
    PyObject *start_response; /* this worker's StartResponse, reused */

    struct conn *conn; /* the connection being answered */
    struct response_state response;
    struct buf head;         /* status line and app headers, then framing */
    struct response_out out; /* what is being sent: points into head and the body */

    /* The request being answered; they move to conn->parked with the
     * response while the client does not read. */
    PyObject *env, *input, *result;
    PyObject *iterator;       /* the result's, once iterating began */
    PyObject *out_owner;      /* the chunk out.data points into */
    long long known_length;   /* the body's length when the result tells it */
    int body_done;            /* the whole body is framed; only w->out and the end are left */
    int ending;               /* the end of the framing is framed too */
    int64_t park_deadline_ms; /* a resumed response that made no progress keeps it; 0: fresh */

    struct environ_cache environ;
    time_t date_second; /* the second `date` was formatted for */
    char date[SYNTAX_DATE_LEN + 1];
};

#endif

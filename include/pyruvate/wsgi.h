/* The WSGI side of one request (PEP 3333): calling the app and sending
 * what it returns. Needs the GIL, except where it releases it around
 * blocking writes. */
#ifndef PYRUVATE_WSGI_H
#define PYRUVATE_WSGI_H

#include "pyruvate/state.h"

#include "pyruvate/worker_state.h"

/* Answers the request buffered in w->conn: calls the app and writes its
 * response. Returns 1 when the response was parked because the client does
 * not read (the connection then belongs to the park set; a worker resumes it
 * with wsgi_resume_response). Otherwise returns 0, and w->response.must_close
 * says whether the connection can carry another request. Never raises:
 * errors are logged and become a 500 or a closed connection. */
int wsgi_handle_request(struct worker *w);

/* Goes on with the response parked on w->conn (conn->parked), on whichever
 * worker took the connection from the pool. Returns like
 * wsgi_handle_request. */
int wsgi_resume_response(struct worker *w);

/* At shutdown, with the GIL: counts and logs the parked response as far as
 * it went (like a drop by send_timeout), calls its close(), frees it and
 * closes the connection. */
void wsgi_drop_parked(struct server *server, struct conn *c);

#endif

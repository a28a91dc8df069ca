/* Sending the response of the request a worker answers (w->response,
 * w->head, w->out). Needs the GIL, which it releases while it waits. */
#ifndef PYRUVATE_SEND_H
#define PYRUVATE_SEND_H

#include "pyruvate/state.h"

#include <sys/types.h>

#include "pyruvate/buf.h"
#include "pyruvate/response.h"

struct worker;

/* Everything a response in progress needs when it leaves its worker. */
struct parked_response {
    struct response_state response;
    struct buf head;
    struct response_out out;
    PyObject *out_owner, *env, *input, *result, *iterator;
    long long known_length;
    int body_done, ending;
};

/* Frames len body bytes (from data, or from file_fd at file_offset when
 * data is NULL) into w->out, after the head when it has not gone out; see
 * response_frame. Every body byte leaves the server through here. Returns
 * 0, or -1 when the response failed. */
int send_frame(struct worker *w, const char *data, int file_fd, off_t file_offset, size_t len,
               long long known);

/* One attempt to send w->out without waiting (response_out_try),
 * counted in the metrics. */
int send_try(struct worker *w);

/* Sends w->out. A client that takes none of it for a short while gets its
 * response parked in c->parked. Returns 0 when sent, 1 when parked (the
 * worker must let go of the connection), -1 when the connection failed. */
int send_or_park(struct worker *w);

/* write()'s bytes: framed and sent at once, waiting as long as the send
 * timeout allows. Returns 0, or -1 when the connection failed. */
int send_body(struct worker *w, const char *data, size_t len);

/* Ends the body's framing. Returns 0, 1 when parked, -1 when failed. */
int send_finish(struct worker *w);

/* Sends the canned error response for status and marks the connection to
 * be closed. */
void send_error(struct worker *w, int status);

/* Takes the response parked on w->conn back into w. */
void send_unpark(struct worker *w);

#endif

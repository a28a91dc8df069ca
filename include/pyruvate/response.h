/* The response without Python: validation of what the app sends, the head
 * and the framing of the body for every case (HEAD, 1xx/204/304, HTTP/1.0,
 * Content-Length, chunked, close-delimited), the Date value, and the write
 * loops that workers run with the GIL released. */
#ifndef PYRUVATE_RESPONSE_H
#define PYRUVATE_RESPONSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "pyruvate/buf.h"

/* Parses a WSGI status ("200 OK"): three digits, a space, then a reason
 * without control characters. Returns the code, or -1 when malformed. */
int response_parse_status(const char *status, size_t len);

/* RFC 9110 §5.1: a field name is a non-empty token. */
int response_valid_header_name(const char *name, size_t len);

/* RFC 9110 §5.5: no CR, LF or NUL (or other controls but HTAB) in a value. */
int response_valid_header_value(const char *value, size_t len);

/* Writes "<hex length>\r\n" into out and returns its length. */
size_t response_chunk_header(size_t len, char out[24]);

/* One piece of a response, sent in this order: framing bytes (the head
 * and/or a chunk header), then body bytes from memory or a file range,
 * then trailing framing bytes (a chunk's CRLF). The pointers are not
 * owned; sending advances the fields past what went out, so a piece that
 * could not be sent whole describes exactly its rest. */
struct response_out {
    const char *framing;
    size_t framing_len;
    const char *data;
    size_t data_len;
    int file_fd;
    off_t file_offset;
    size_t file_len;
    char after[8];
    size_t after_len;
};

/* The response being produced; reset for each request. */
struct response_state {
    int status;               /* 0 until start_response succeeded */
    int sent_status;          /* the status that went out, for the access log */
    long long content_length; /* from the app's headers; -1 if none */
    int app_sent_date, app_sent_server;
    int app_wants_close; /* the app sent "Connection: close" */
    int headers_sent;
    int no_body; /* HEAD, 1xx, 204, 304 */
    int head_request;
    int chunked;
    int close_delimited; /* the body ends when the connection closes */
    unsigned long long body_sent;
    int failed; /* the connection broke or the app misbehaved */
    int must_close;
};

/* What the framing needs to know of the request and the server. */
struct response_context {
    int http_minor;         /* the request's HTTP/1.<minor> */
    int keep_alive;         /* the request lets the connection carry another */
    int chunked_allowed;    /* the chunked_transfer option */
    int last_on_connection; /* the server stops, or max_reuse_count is reached */
    const char *date;       /* the Date value, SYNTAX_DATE_LEN bytes */
};

enum response_header_result {
    RESPONSE_HEADER_OK = 0,
    RESPONSE_HEADER_INVALID = -1,    /* a bad name, or controls in the value */
    RESPONSE_HEADER_BAD_LENGTH = -2, /* Content-Length is not a number */
    RESPONSE_HEADER_NO_MEMORY = -3,
    RESPONSE_HEADER_CONFLICTING_LENGTH = -4, /* a second, different Content-Length */
};

/* Starts a fresh *resp for status code (from response_parse_status) and
 * writes the status line into head. Returns 0, or -1 when out of memory. */
int response_begin(struct response_state *resp, struct buf *head, int code, const char *status,
                   size_t status_len, int head_request);

/* Adds one of the app's header fields to head, or only notes it in resp
 * when the server writes that field itself (framing, Connection) or has it
 * already (a repeated Content-Length of the same value). Returns a
 * RESPONSE_HEADER_* value. */
int response_add_header(struct response_state *resp, struct buf *head, const char *name,
                        size_t name_len, const char *value, size_t value_len);

/* Frames len body bytes, from data or from file_fd at file_offset (data
 * NULL), into out: the completed head in front of the first ones (known is
 * the whole body's length when known, else -1), a chunk header and CRLF
 * around them when chunked, cut to what Content-Length still allows. out
 * points into head and data. Returns 0, or -1 when the response failed. */
int response_frame(struct response_state *resp, struct buf *head, struct response_out *out,
                   const struct response_context *ctx, const char *data, int file_fd,
                   off_t file_offset, size_t len, long long known);

/* Ends the body of a response whose head went out. Returns 1 when out
 * holds the last chunk to send, 0 when nothing is left to send (a body
 * shorter than its Content-Length sets must_close). */
int response_finish(struct response_state *resp, struct response_out *out);

/* True while some of out is still to be sent. */
int response_out_pending(const struct response_out *out);

/* The bytes of out still to be sent. */
size_t response_out_left(const struct response_out *out);

/* Sends what the socket takes without waiting. Returns 0 when out went out
 * whole, 1 when the socket is full, -1 with errno when the connection failed
 * (ENODATA: the file ended before file_len bytes). */
int response_out_try(int fd, struct response_out *out);

/* Sends out whole, waiting up to wait_ms each time the socket is full, and
 * giving up at deadline_ms (monotonic; 0 for none). Returns 0, or -1 with
 * errno (ETIMEDOUT for either limit). */
int response_out_send(int fd, struct response_out *out, int wait_ms, int64_t deadline_ms);

#endif

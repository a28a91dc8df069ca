/* Response framing and writing, without Python: validation of what the app
 * sends, chunk framing, the Date value, and the blocking write loop that
 * workers run with the GIL released. */
#ifndef PYRUVATE_RESPONSE_H
#define PYRUVATE_RESPONSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

/* Length of an IMF-fixdate such as "Sun, 06 Nov 1994 08:49:37 GMT". */
#define RESPONSE_DATE_LEN 29

/* Parses a WSGI status ("200 OK"): three digits, a space, then a reason
 * without control characters. Returns the code, or -1 when malformed. */
int response_parse_status(const char *status, size_t len);

/* RFC 9110 §5.1: a field name is a non-empty token. */
int response_valid_header_name(const char *name, size_t len);

/* RFC 9110 §5.5: no CR, LF or NUL (or other controls but HTAB) in a value. */
int response_valid_header_value(const char *value, size_t len);

/* Writes the RFC 9110 §5.6.7 date for t into out (RESPONSE_DATE_LEN + 1 bytes). */
void response_http_date(time_t t, char out[RESPONSE_DATE_LEN + 1]);

/* Writes "<hex length>\r\n" into out and returns its length. */
size_t response_chunk_header(size_t len, char out[24]);

/* Writes every byte of iov to the nonblocking socket fd. When the socket is
 * full, waits up to timeout_ms for it to drain. Returns 0, or -1 with errno
 * (ETIMEDOUT when the peer stopped reading, EPIPE/ECONNRESET when it left).
 * iov is modified. */
int response_write_all(int fd, struct iovec *iov, int iovcnt, int timeout_ms);

/* One nonblocking attempt to write iov. Returns 0 when everything went out,
 * 1 when some is left (then iov and *iovcnt describe the rest), -1 with
 * errno when the connection failed. */
int response_write_nowait(int fd, struct iovec *iov, int *iovcnt);

/* Sends count bytes of in_fd from *offset with sendfile(2), waiting like
 * response_write_all. Returns 0, or -1 with errno (ENODATA if the file ended
 * early). *offset is advanced by what was sent. */
int response_sendfile(int fd, int in_fd, off_t *offset, size_t count, int timeout_ms);

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

/* True while some of out is still to be sent. */
int response_out_pending(const struct response_out *out);

/* Sends what the socket takes without waiting. Returns 0 when out went out
 * whole, 1 when the socket is full, -1 with errno when the connection failed
 * (ENODATA: the file ended before file_len bytes). */
int response_out_try(int fd, struct response_out *out);

/* Sends out whole, waiting up to wait_ms each time the socket is full, and
 * giving up at deadline_ms (monotonic; 0 for none). Returns 0, or -1 with
 * errno (ETIMEDOUT for either limit). */
int response_out_send(int fd, struct response_out *out, int wait_ms, int64_t deadline_ms);

#endif

/* The one table of status codes: reason phrases and the canned responses
 * the server sends on its own (errors, 100 Continue). */
#ifndef PYRUVATE_HTTP_STATUS_H
#define PYRUVATE_HTTP_STATUS_H

#include <stddef.h>
#include <time.h>

/* Reason phrase for a status code; "Unknown" for codes not in the table. */
const char *http_status_reason(int status);

/* Writes a complete response for an error the server answers itself
 * (4xx/5xx, Date for `now`, plain-text body, Connection: close) into out,
 * NUL-terminated. Returns its length, or 0 when out is too small. */
size_t http_status_error_response(int status, time_t now, char *out, size_t out_size);

/* The interim response sent before reading a body the client holds back. */
extern const char http_status_continue[];

#endif

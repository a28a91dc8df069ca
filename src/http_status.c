/* Status codes, reason phrases (RFC 9110 §15) and canned responses. */
#include "pyruvate/http_status.h"

#include <stdio.h>

#include "pyruvate/syntax.h"

const char http_status_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

struct status_entry {
    int status;
    const char *reason;
};

static const struct status_entry status_table[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {417, "Expectation Failed"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {503, "Service Unavailable"},
    {505, "HTTP Version Not Supported"},
};

const char *http_status_reason(int status)
{
    for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
        if (status_table[i].status == status)
            return status_table[i].reason;
    return "Unknown";
}

size_t http_status_error_response(int status, time_t now, char *out, size_t out_size)
{
    char date[SYNTAX_DATE_LEN + 1];
    syntax_http_date(now, date);
    const char *reason = http_status_reason(status);
    char body[96];
    int body_len = snprintf(body, sizeof(body), "%d %s\n", status, reason);
    /* Overload is temporary: tell the client when to come back. */
    const char *retry = status == 503 ? "Retry-After: 1\r\n" : "";
    int n = snprintf(out, out_size,
                     "HTTP/1.1 %d %s\r\n"
                     "Date: %s\r\n"
                     "Server: pyruvate\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %d\r\n"
                     "%s"
                     "Connection: close\r\n"
                     "\r\n"
                     "%s",
                     status, reason, date, body_len, retry, body);
    if (n < 0 || (size_t)n >= out_size)
        return 0;
    return (size_t)n;
}

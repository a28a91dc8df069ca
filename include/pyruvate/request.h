/* struct request: one HTTP/1.x request parsed by llhttp out of a connection
 * buffer, without copying and without Python. Method, target, headers and
 * body are spans (offsets) into the buffer that was fed. */
#ifndef PYRUVATE_REQUEST_H
#define PYRUVATE_REQUEST_H

#include <stdint.h>
#include <llhttp.h>

#include "pyruvate/common.h"

/* Limits enforced while bytes arrive, before anything beyond them is kept. */
struct request_limits {
    size_t max_target_length; /* request-target bytes; beyond: 414 */
    size_t max_header_bytes;  /* names + values of all headers; beyond: 431 */
    unsigned max_headers;     /* header count; beyond: 431 */
    uint64_t max_body_size;   /* decoded body bytes; beyond: 413 */
    /* Raw chunked framing, which no serve() option names (0: the default
     * below). The trailer section, counted raw, is limited by
     * max_header_bytes (431). */
    size_t max_chunk_line;      /* one chunk line; beyond: 400 */
    uint64_t max_framing_bytes; /* all chunk lines of a request; beyond: 413 */
};

enum {
    /* One chunk line: the CRLF ending the previous chunk's data, the size,
     * the extensions and the CRLF. */
    REQUEST_CHUNK_LINE_MAX = 4096,
    /* All chunk lines of a request: this, plus max_body_size divided by
     * REQUEST_FRAMING_BODY_DIVISOR (room for small chunks). */
    REQUEST_FRAMING_BASE = 65536,
    REQUEST_FRAMING_BODY_DIVISOR = 4,
};

/* The most bytes one chunk line may have under `limits`. */
size_t request_chunk_line_max(const struct request_limits *limits);

/* The most chunk-line bytes one request may carry under `limits`. */
uint64_t request_framing_allowance(const struct request_limits *limits);

struct request_header {
    struct span name;
    struct span value; /* leading and trailing whitespace trimmed */
};

enum request_state {
    REQUEST_ERROR = -1,     /* error_status and error_reason are set */
    REQUEST_INCOMPLETE = 0, /* feed more bytes */
    REQUEST_COMPLETE = 1,   /* `consumed` bytes of the buffer form the request */
};

struct request {
    /* set by request_init, read-only afterwards */
    const struct request_limits *limits;
    struct request_header *headers; /* limits->max_headers entries */

    /* results; valid once request_feed returned REQUEST_COMPLETE */
    const char *method; /* static string from llhttp */
    struct span target;
    unsigned char http_major, http_minor;
    unsigned header_count;
    struct span body;     /* decoded: chunked framing is removed in place */
    int chunked;          /* the body arrived chunked */
    int keep_alive;       /* the client allows another request */
    int expect_continue;  /* "Expect: 100-continue" was sent */
    int headers_complete; /* the header block has been parsed */
    size_t consumed;      /* bytes belonging to this request */

    /* set when request_feed returned REQUEST_ERROR */
    int error_status;
    const char *error_reason;

    /* parser internals */
    llhttp_t _parser;
    char *_base;    /* buffer start during a request_feed call */
    size_t _len;    /* bytes in _base during a request_feed call */
    size_t _parsed; /* offset of the first byte not yet parsed */
    size_t _header_bytes;
    unsigned _host_count;
    unsigned _transfer_codings;     /* codings listed in all Transfer-Encoding fields */
    int _last_coding_chunked;       /* the last one listed is "chunked" */
    int _version_seen;              /* llhttp finished the request line's version */
    int _event;                     /* a framing event waiting for its offset */
    int _last_chunk;                /* the chunk header just read has size 0 */
    int _frame;                     /* the framing element being received */
    size_t _frame_start;            /* its first byte's offset */
    uint64_t _framing_bytes;        /* chunk-line bytes of finished lines */
    int _host_empty;                /* the Host field value is empty */
    llhttp_errno_t _pending_error;  /* an error whose status waits for more bytes */
    size_t _error_offset;           /* where llhttp stopped, for a pending error */
    size_t _fail_offset;            /* where one of our checks failed; SIZE_MAX: none */
    int _in_field;                  /* a field name is being received */
    struct request_header _trailer; /* the trailer field being received */
    int _value_seen;                /* the current field has value bytes */
    int _element;                   /* the token llhttp is in (enum element) */
    size_t _token_end;              /* offset after the last token piece llhttp handed us */
    int _complete;
};

/* Prepares r, which the caller holds, for a new connection. Returns 0, or
 * -1 (ENOMEM). */
int request_init(struct request *r, const struct request_limits *limits);

/* Releases what request_init allocated. */
void request_free(struct request *r);

/* A prepared request on the heap, for a connection to hold only while it
 * reads or answers one. NULL on ENOMEM. */
struct request *request_create(const struct request_limits *limits);

/* Frees what request_create returned (NULL is fine). */
void request_destroy(struct request *r);

/* Parses the bytes base[r->_parsed .. len). base may differ between calls
 * (the buffer may have moved) but must hold the same bytes up to _parsed.
 * The body of a chunked request is compacted in place inside base. */
enum request_state request_feed(struct request *r, char *base, size_t len);

/* Makes r ready for the next request on the same connection and returns the
 * number of leading buffer bytes the finished request used; the caller drops
 * them from the buffer before feeding the rest. */
size_t request_next(struct request *r);

/* True when headers are complete and a body is still expected. */
int request_wants_body(const struct request *r);

/* Case-insensitive lookup of the first header named `name`; NULL if absent. */
const struct request_header *request_find_header(const struct request *r, const char *base,
                                                 const char *name);

#endif

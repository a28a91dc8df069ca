/* Server log records, written from any thread without the GIL.
 *
 * Records go into a bounded in-memory queue; the thread that owns the GIL
 * side (server.c) takes them out and hands them to Python's logging. */
#ifndef PYRUVATE_LOG_H
#define PYRUVATE_LOG_H

#include <stddef.h>

/* The numeric levels of Python's logging module. */
enum log_level { LOG_DEBUG = 10, LOG_INFO = 20, LOG_WARNING = 30, LOG_ERROR = 40 };

/* The queue holds LOG_QUEUE_LEN records, of which access records may use
 * all but LOG_SERVER_RESERVE. Records that do not fit are counted, never
 * waited for: a blocked logging handler must not stop the server. */
enum { LOG_MESSAGE_LEN = 512, LOG_QUEUE_LEN = 1024, LOG_SERVER_RESERVE = 64 };

/* Which Python logger a record is for. */
enum log_target { LOG_TO_SERVER = 0, LOG_TO_ACCESS = 1 };

struct log_record {
    int target; /* enum log_target */
    int level;
    char message[LOG_MESSAGE_LEN];
};

/* Copies len bytes of in to out as printable ASCII, the way nginx writes
 * its access log: bytes outside 0x20..0x7e, '"' and '\\' become \xHH, so
 * that a field can neither end early nor carry bytes that are not text.
 * Stops before an escape that would not fit; out is always terminated.
 * Returns the length of out. */
size_t log_escape(char *out, size_t out_size, const char *in, size_t len);

/* Sets the fd written to (eventfd semantics: 8-byte counter) whenever a
 * record is queued into an empty queue; -1 for none. */
void log_set_wake_fd(int fd);

/* Sets the lowest level kept; records below it are dropped at once, so a
 * disabled DEBUG costs one comparison. */
void log_set_level(int level);

/* True if a record at this level would be kept. */
int log_enabled(int level);

/* Queues a formatted record. Control characters and bytes that are not
 * UTF-8 are escaped as \xHH, so every record reaches Python's logging as
 * text. When the queue is full the record is counted as dropped instead
 * (the relaying thread reports the count as one warning). */
void log_write(int level, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Queues one access-log line for "pyruvate.access" at INFO, whatever the
 * server logger's level (the access logger filters for itself). */
void log_write_access(const char *line);

/* Moves up to max queued records into out, oldest first; returns how many.
 * *dropped receives the number of records lost since the last call. */
size_t log_take(struct log_record *out, size_t max, unsigned long *dropped);

#endif

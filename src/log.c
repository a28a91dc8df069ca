/* The log queue: a mutex-guarded ring of formatted records. */
#include "pyruvate/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct log_record log_ring[LOG_QUEUE_LEN];
static size_t log_head, log_count;
static unsigned long log_dropped;
static int log_wake_fd = -1;
static _Atomic int log_min_level = LOG_INFO;

void log_set_wake_fd(int fd)
{
    pthread_mutex_lock(&log_mutex);
    log_wake_fd = fd;
    pthread_mutex_unlock(&log_mutex);
}

void log_set_level(int level)
{
    log_min_level = level;
}

int log_enabled(int level)
{
    return level >= log_min_level;
}

static void log_vwrite(int target, int level, const char *format, va_list args)
{
    int saved_errno = errno;
    pthread_mutex_lock(&log_mutex);
    if (log_count == LOG_QUEUE_LEN) {
        log_dropped++;
        pthread_mutex_unlock(&log_mutex);
        errno = saved_errno;
        return;
    }
    struct log_record *r = &log_ring[(log_head + log_count) % LOG_QUEUE_LEN];
    r->target = target;
    r->level = level;
    vsnprintf(r->message, sizeof(r->message), format, args);
    int wake = log_count == 0 ? log_wake_fd : -1;
    log_count++;
    pthread_mutex_unlock(&log_mutex);
    if (wake >= 0) {
        uint64_t one = 1;
        /* EAGAIN means a wake-up is already pending. */
        ssize_t ignored = write(wake, &one, sizeof(one));
        (void)ignored;
    }
    errno = saved_errno;
}

void log_write(int level, const char *format, ...)
{
    if (!log_enabled(level))
        return;
    va_list args;
    va_start(args, format);
    log_vwrite(LOG_TO_SERVER, level, format, args);
    va_end(args);
}

static void log_write_target(int target, int level, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    log_vwrite(target, level, format, args);
    va_end(args);
}

void log_write_access(const char *line)
{
    log_write_target(LOG_TO_ACCESS, LOG_INFO, "%s", line);
}

size_t log_take(struct log_record *out, size_t max, unsigned long *dropped)
{
    pthread_mutex_lock(&log_mutex);
    size_t n = 0;
    while (n < max && log_count > 0) {
        out[n++] = log_ring[log_head];
        log_head = (log_head + 1) % LOG_QUEUE_LEN;
        log_count--;
    }
    *dropped = log_dropped;
    log_dropped = 0;
    pthread_mutex_unlock(&log_mutex);
    return n;
}

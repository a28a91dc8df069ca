/* The log queue: a mutex-guarded ring of formatted records. */
#include "pyruvate/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pyruvate/wakeup.h"

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

size_t log_escape(char *out, size_t out_size, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    if (out_size == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (n + 1 >= out_size)
                break;
            out[n++] = (char)c;
            continue;
        }
        if (n + 4 >= out_size)
            break;
        out[n++] = '\\';
        out[n++] = 'x';
        out[n++] = hex[c >> 4];
        out[n++] = hex[c & 15];
    }
    out[n] = '\0';
    return n;
}

/* Length of the valid UTF-8 sequence at s (at most len bytes), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    size_t need;
    unsigned min;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        need = 2;
        min = 0x80;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        need = 3;
        min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        need = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    unsigned code = s[0] & (0x7f >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        code = (code << 6) | (s[i] & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
        return 0;
    return need;
}

/* Copies text to out, escaping control characters and bytes that are not
 * UTF-8 (Python would refuse the whole record otherwise). */
static void copy_as_text(char *out, size_t out_size, const char *text)
{
    const unsigned char *in = (const unsigned char *)text;
    size_t len = strlen(text), n = 0;
    for (size_t i = 0; i < len;) {
        size_t seq = in[i] < 0x20 || in[i] == 0x7f ? 0 : utf8_sequence(in + i, len - i);
        if (seq == 0) {
            if (n + 4 >= out_size)
                break;
            n += log_escape(out + n, out_size - n, text + i, 1);
            i++;
            continue;
        }
        if (n + seq >= out_size)
            break;
        memcpy(out + n, in + i, seq);
        n += seq;
        i += seq;
    }
    out[n] = '\0';
}

static void log_vwrite(int target, int level, const char *format, va_list args)
{
    int saved_errno = errno;
    /* Formatted before the lock, which every worker and the acceptor share. */
    char text[LOG_MESSAGE_LEN], message[LOG_MESSAGE_LEN];
    vsnprintf(text, sizeof(text), format, args);
    copy_as_text(message, sizeof(message), text);
    /* Access records leave the last slots to server records, so that a
     * flood of requests cannot crowd out a warning or "pyruvate stopping". */
    size_t room = target == LOG_TO_ACCESS ? LOG_QUEUE_LEN - LOG_SERVER_RESERVE : LOG_QUEUE_LEN;
    pthread_mutex_lock(&log_mutex);
    if (log_count >= room) {
        log_dropped++;
    } else {
        struct log_record *r = &log_ring[(log_head + log_count) % LOG_QUEUE_LEN];
        r->target = target;
        r->level = level;
        memcpy(r->message, message, sizeof(r->message));
        /* Under the lock: log_set_wake_fd(-1) then close() cannot come in
         * between, so a wake-up never lands on a reused descriptor. The
         * eventfd is nonblocking. */
        if (log_count == 0 && log_wake_fd >= 0)
            wakeup_signal(log_wake_fd);
        log_count++;
    }
    pthread_mutex_unlock(&log_mutex);
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

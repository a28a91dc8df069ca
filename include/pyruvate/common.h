/* Small shared vocabulary: spans, attributes and helpers. Holds no state. */
#ifndef PYRUVATE_COMMON_H
#define PYRUVATE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PYR_UNUSED(x) ((void)(x))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A slice of a connection buffer, kept as an offset so the buffer may grow
 * (and move) while a request is still arriving. */
struct span {
    size_t offset;
    size_t len;
};

/* Size of the caller-owned buffer for error messages meant for the log. */
#define PYR_ERR_LEN 256

/* Milliseconds on the monotonic clock, for deadlines. */
static inline int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Microseconds on the monotonic clock, for durations. */
static inline int64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif

/* The eventfd by which one thread wakes another's poll(): the acceptor,
 * the idle and park sets, and serve()'s loop for log records. */
#ifndef PYRUVATE_WAKEUP_H
#define PYRUVATE_WAKEUP_H

/* A nonblocking, close-on-exec eventfd. Returns it, or -1 with errno. */
int wakeup_open(void);

/* Makes fd readable. Never blocks; thread-safe and async-signal-safe. */
void wakeup_signal(int fd);

/* Takes the pending wake-ups, so that fd polls quiet again. */
void wakeup_drain(int fd);

#endif

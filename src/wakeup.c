/* Wake-ups through an eventfd. */
#include "pyruvate/wakeup.h"

#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int wakeup_open(void)
{
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void wakeup_signal(int fd)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is saturated, so a wake-up is pending anyway. */
    ssize_t ignored = write(fd, &one, sizeof(one));
    (void)ignored;
}

void wakeup_drain(int fd)
{
    uint64_t count;
    ssize_t ignored = read(fd, &count, sizeof(count));
    (void)ignored;
}

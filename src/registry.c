/* The running servers: a list under one mutex, held only to link, unlink,
 * flag or visit, never across anything that waits. */
#include "pyruvate/registry.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct registry_entry *registry_head;

void registry_add(struct registry_entry *e, int wake_fd)
{
    e->server = NULL;
    e->wake_fd = wake_fd;
    atomic_store(&e->stop_requested, 0);
    atomic_store(&e->stop_timeout_ms, REGISTRY_OWN_TIMEOUT);
    pthread_mutex_lock(&registry_mutex);
    e->next = registry_head;
    registry_head = e;
    pthread_mutex_unlock(&registry_mutex);
}

void registry_remove(struct registry_entry *e)
{
    pthread_mutex_lock(&registry_mutex);
    for (struct registry_entry **link = &registry_head; *link; link = &(*link)->next) {
        if (*link == e) {
            *link = e->next;
            break;
        }
    }
    e->next = NULL;
    pthread_mutex_unlock(&registry_mutex);
}

/* Keeps the shortest timeout asked for; REGISTRY_OWN_TIMEOUT is the
 * longest of all. */
static void shorten_timeout(struct registry_entry *e, int timeout_ms)
{
    if (timeout_ms < 0)
        return;
    int current = atomic_load(&e->stop_timeout_ms);
    while ((current < 0 || timeout_ms < current) &&
           !atomic_compare_exchange_weak(&e->stop_timeout_ms, &current, timeout_ms))
        ;
}

unsigned registry_request_stop(int timeout_ms)
{
    unsigned asked = 0;
    pthread_mutex_lock(&registry_mutex);
    for (struct registry_entry *e = registry_head; e; e = e->next) {
        shorten_timeout(e, timeout_ms);
        atomic_store(&e->stop_requested, 1);
        if (e->wake_fd >= 0) {
            ssize_t n;
            do
                n = write(e->wake_fd, "s", 1);
            while (n < 0 && errno == EINTR);
            /* A full pipe already wakes its reader: nothing is lost. */
        }
        asked++;
    }
    pthread_mutex_unlock(&registry_mutex);
    return asked;
}

void registry_publish(struct registry_entry *e, void *server)
{
    pthread_mutex_lock(&registry_mutex);
    e->server = server;
    pthread_mutex_unlock(&registry_mutex);
}

int registry_stop_requested(struct registry_entry *e, int *timeout_ms)
{
    if (!atomic_load(&e->stop_requested))
        return 0;
    *timeout_ms = atomic_load(&e->stop_timeout_ms);
    return 1;
}

unsigned registry_visit(void (*visit)(void *server, void *ctx), void *ctx)
{
    unsigned count = 0;
    pthread_mutex_lock(&registry_mutex);
    for (struct registry_entry *e = registry_head; e; e = e->next) {
        if (e->server) {
            visit(e->server, ctx);
            count++;
        }
    }
    pthread_mutex_unlock(&registry_mutex);
    return count;
}

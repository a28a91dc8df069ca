/* Whether a pool thread may start a request while another is inside one
 * (see room.h). Lock-free: each thread writes only its own slot. */
#include "pyruvate/room.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* Only the first threads are watched: beyond them, sampling costs more
 * than it saves (and N threads would need N * N samples). */
enum { ROOM_WATCHED_THREADS = 64 };

struct room_slot {
    /* written by its own thread, read by the others */
    _Atomic int64_t run_since_ns; /* 0: in no run */
    atomic_int has_cpu_clock;
    clockid_t cpu_clock;
    /* its own thread only */
    struct room_sample at_start; /* the others when its run started */
};

struct room {
    unsigned threads; /* watched */
    int64_t alone_ns;
    room_cpu_time cpu_time;
    void *ctx;
    struct room_slot *slots;
};

static int64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) < 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct room_slot *slot_of(struct room *room, unsigned index)
{
    return room && index >= 1 && index <= room->threads ? &room->slots[index - 1] : NULL;
}

static int64_t cpu_time_of(struct room *room, unsigned i)
{
    if (room->cpu_time)
        return room->cpu_time(room->ctx, i + 1);
    struct room_slot *slot = &room->slots[i];
    return atomic_load(&slot->has_cpu_clock) ? clock_ns(slot->cpu_clock) : -1;
}

int64_t room_alone_us(double switch_interval_seconds)
{
    double us = switch_interval_seconds * 1e6;
    return us > 0 && us < ROOM_ALONE_MAX_US ? (int64_t)us : ROOM_ALONE_MAX_US;
}

struct room *room_create(unsigned threads, int64_t alone_us, room_cpu_time cpu_time, void *ctx)
{
    struct room *room = calloc(1, sizeof(*room));
    if (room == NULL)
        return NULL;
    room->threads = threads < ROOM_WATCHED_THREADS ? threads : ROOM_WATCHED_THREADS;
    room->alone_ns = alone_us * 1000;
    room->cpu_time = cpu_time;
    room->ctx = ctx;
    room->slots = calloc(room->threads ? room->threads : 1, sizeof(*room->slots));
    if (room->slots == NULL)
        goto fail;
    for (unsigned i = 0; i < room->threads; i++)
        if (room_sample_init(room, &room->slots[i].at_start) < 0)
            goto fail;
    return room;
fail:
    room_destroy(room);
    return NULL;
}

void room_destroy(struct room *room)
{
    if (room == NULL)
        return;
    for (unsigned i = 0; room->slots && i < room->threads; i++)
        room_sample_free(&room->slots[i].at_start);
    free(room->slots);
    free(room);
}

void room_thread_start(struct room *room, unsigned index)
{
    struct room_slot *slot = slot_of(room, index);
    if (slot && pthread_getcpuclockid(pthread_self(), &slot->cpu_clock) == 0)
        atomic_store(&slot->has_cpu_clock, 1);
}

int room_sample_init(struct room *room, struct room_sample *sample)
{
    sample->wall_ns = 0;
    sample->cpu_ns = calloc(room->threads ? room->threads : 1, sizeof(*sample->cpu_ns));
    return sample->cpu_ns ? 0 : -1;
}

void room_sample_free(struct room_sample *sample)
{
    free(sample->cpu_ns);
    sample->cpu_ns = NULL;
}

void room_sample(struct room *room, unsigned index, struct room_sample *sample)
{
    if (room == NULL || sample->cpu_ns == NULL)
        return;
    sample->wall_ns = clock_ns(CLOCK_MONOTONIC);
    for (unsigned i = 0; i < room->threads; i++) {
        int inside = i + 1 != index &&
                     atomic_load_explicit(&room->slots[i].run_since_ns, memory_order_relaxed) != 0;
        sample->cpu_ns[i] = inside ? cpu_time_of(room, i) : -1;
    }
}

int room_others_compute(struct room *room, unsigned index, const struct room_sample *sample)
{
    if (room == NULL || sample->cpu_ns == NULL || sample->wall_ns <= 0)
        return 0;
    int64_t now = clock_ns(CLOCK_MONOTONIC);
    int64_t wall = now - sample->wall_ns;
    if (wall <= 0)
        return 0;
    for (unsigned i = 0; i < room->threads; i++) {
        if (i + 1 == index || sample->cpu_ns[i] < 0)
            continue;
        int64_t since = atomic_load_explicit(&room->slots[i].run_since_ns, memory_order_relaxed);
        if (since == 0 || now - since >= room->alone_ns)
            continue;
        int64_t cpu = cpu_time_of(room, i);
        if (cpu >= 0 && (cpu - sample->cpu_ns[i]) * 2 >= wall)
            return 1;
    }
    return 0;
}

int room_others_inside(struct room *room, unsigned index)
{
    for (unsigned i = 0; room && i < room->threads; i++)
        if (i + 1 != index &&
            atomic_load_explicit(&room->slots[i].run_since_ns, memory_order_relaxed) != 0)
            return 1;
    return 0;
}

void room_run_started(struct room *room, unsigned index)
{
    struct room_slot *slot = slot_of(room, index);
    if (slot == NULL)
        return;
    int64_t now = clock_ns(CLOCK_MONOTONIC);
    atomic_store_explicit(&slot->run_since_ns, now > 0 ? now : 1, memory_order_relaxed);
    /* A sample per ROOM_LOOK_US at most: reading another thread's CPU
     * clock is a system call, too dear for every 10 µs request. */
    if (now - slot->at_start.wall_ns >= (int64_t)ROOM_LOOK_US * 1000)
        room_sample(room, index, &slot->at_start);
}

void room_run_done(struct room *room, unsigned index)
{
    struct room_slot *slot = slot_of(room, index);
    if (slot)
        atomic_store_explicit(&slot->run_since_ns, 0, memory_order_relaxed);
}

int room_should_leave(struct room *room, unsigned index)
{
    struct room_slot *slot = slot_of(room, index);
    if (slot == NULL ||
        clock_ns(CLOCK_MONOTONIC) - slot->at_start.wall_ns < (int64_t)ROOM_LOOK_US * 1000)
        return 0; /* too short a time to tell */
    return room_others_compute(room, index, &slot->at_start);
}

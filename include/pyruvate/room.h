/* struct room: whether a pool thread may start a request while another
 * thread is inside one.
 *
 * CPython runs one thread's Python code at a time. Two threads inside a
 * CPU-bound application hand the GIL to each other at every release (a
 * read, a lock, the switch interval): each hand-off costs two context
 * switches and cold caches, and both requests take longer. So a thread
 * about to start a request while another one computes leaves it to that
 * one, which takes it when its own request is done. It starts beside it
 * when the other waits outside the GIL (sleep, I/O: then running both is
 * what threads are for), or when the other's run has lasted the room's
 * alone_us: a run is what a thread does with one connection it took, a
 * request or a client's pipeline of them, so that neither a long request
 * nor a pipeline holds up the others for longer. A thread that takes one
 * queued request after another starts a new run each time: the queue
 * moves, in order, while the others wait.
 *
 * "Computes" is measured, not guessed: the other thread's CPU time grew by
 * at least half the wall-clock time over an interval. A thread may also
 * compute in C code that let go of the GIL (zlib, hashing, image scaling):
 * the pool tells that apart by taking the GIL when it is free
 * (acquire_if_free in pool.c), and then starts the request beside it.
 *
 * Ownership: the pool's threads write their own slot (thread `index`,
 * 1..N) and read the others' without locks; the slots live as long as the
 * room, which outlives the pool. */
#ifndef PYRUVATE_ROOM_H
#define PYRUVATE_ROOM_H

#include "pyruvate/common.h"

struct room;

/* How soon a thread that waits for room looks at the others again, and
 * how seldom at most (it doubles the interval each time). */
enum { ROOM_LOOK_US = 300, ROOM_LOOK_MAX_US = 5000 };

/* The pool's test whether the GIL is free (acquire_if_free) looks twice,
 * this far apart. */
enum { ROOM_PROBE_GAP_US = 100 };

/* A run's time alone (room_create's alone_us) for CPython's switch
 * interval in seconds (sys.getswitchinterval() when serve() starts): as
 * long as a request could have waited for the GIL anyway, but never more
 * than ROOM_ALONE_MAX_US, the interval's default, so that an application
 * that raised it for throughput does not make a fast request wait behind
 * one that lets go of the GIL every few ms. ROOM_ALONE_MAX_US for an
 * interval that is not positive (unknown). */
enum { ROOM_ALONE_MAX_US = 5000 };
int64_t room_alone_us(double switch_interval_seconds);

/* A thread's CPU time in nanoseconds, or -1. Tests pass their own; NULL
 * reads each thread's CPU clock (room_thread_start). */
typedef int64_t (*room_cpu_time)(void *ctx, unsigned index);

/* A room for `threads` pool threads, where a run keeps the others out for
 * at most alone_us (room_alone_us). NULL when out of memory. */
struct room *room_create(unsigned threads, int64_t alone_us, room_cpu_time cpu_time, void *ctx);
void room_destroy(struct room *room);

/* Called on pool thread `index` before it runs anything: its CPU clock. */
void room_thread_start(struct room *room, unsigned index);

/* Thread `index` starts a run (the requests of one connection it took):
 * notes the time and (at most once per ROOM_LOOK_US) how much CPU each
 * other thread in a run had used. room_run_done when it is done with the
 * connection. */
void room_run_started(struct room *room, unsigned index);
void room_run_done(struct room *room, unsigned index);

/* Called by thread `index` after its run, before it takes the next item:
 * 1 when another thread computed through at least half of the time since
 * this thread's run started (or, after short runs, since one of them
 * started at most ROOM_LOOK_US before): this thread should leave the next
 * item to it and wait in the pool (wait_for_room). 0 when less than
 * ROOM_LOOK_US passed: too short a time to tell. */
int room_should_leave(struct room *room, unsigned index);

/* What a waiting thread measures the others by: room_sample now, then,
 * after a while, room_others_compute. */
struct room_sample {
    int64_t wall_ns;
    int64_t *cpu_ns; /* one per thread, -1 when it was in no run */
};

/* 0, or -1 when out of memory (then room_others_compute says 0). */
int room_sample_init(struct room *room, struct room_sample *sample);
void room_sample_free(struct room_sample *sample);
void room_sample(struct room *room, unsigned index, struct room_sample *sample);

/* 1 when a thread other than `index`, in a run when sampled and still in
 * a run younger than alone_us, used at least half a CPU since the sample. */
int room_others_compute(struct room *room, unsigned index, const struct room_sample *sample);

/* 1 when a thread other than `index` is in a run now. */
int room_others_inside(struct room *room, unsigned index);

#endif

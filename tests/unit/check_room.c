/* Tests for src/room.c: whether a thread may start a request while another
 * is inside one. The threads' CPU times come from the test (fake_cpu), so
 * "computes" and "waits outside the GIL" do not depend on the scheduler:
 * a computing thread's CPU time jumps by far more than any wall-clock
 * time between two samples, a waiting one's stays put. */
#include <check.h>
#include <stdint.h>
#include <time.h>

#include "pyruvate/room.h"
#include "suites.h"

enum { THREADS = 3 };

/* A CPU time step no wall-clock interval of a test comes near (1000 s). */
static const int64_t FAR_MORE_NS = (int64_t)1000 * 1000000000;

/* A run that keeps the others out longer than any test takes. */
static const int64_t LONG_ALONE_US = (int64_t)600 * 1000000;

static int64_t fake_cpu_ns[THREADS + 1];

static int64_t fake_cpu(void *ctx, unsigned index)
{
    (void)ctx;
    return index >= 1 && index <= THREADS ? fake_cpu_ns[index] : -1;
}

static struct room *room;
static struct room_sample sample; /* thread 1's view of the others */

static void setup(void)
{
    for (unsigned i = 0; i <= THREADS; i++)
        fake_cpu_ns[i] = 1000;
    room = room_create(THREADS, LONG_ALONE_US, fake_cpu, NULL);
    ck_assert_ptr_nonnull(room);
    ck_assert_int_eq(room_sample_init(room, &sample), 0);
}

static void teardown(void)
{
    room_sample_free(&sample);
    room_destroy(room);
    room = NULL;
}

static void sleep_ms(long ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {
    }
}

/* Thread 2 starts a run; thread 1 samples it, and 1 ms passes. */
static void thread_1_samples_thread_2_in_a_run(void)
{
    room_run_started(room, 2);
    room_sample(room, 1, &sample);
    sleep_ms(1);
}

START_TEST(test_a_thread_in_a_request_that_computes_keeps_the_others_out)
{
    thread_1_samples_thread_2_in_a_run();
    ck_assert_int_eq(room_others_inside(room, 1), 1);
    ck_assert_int_eq(room_others_inside(room, 2), 0); /* itself does not count */
    fake_cpu_ns[2] += FAR_MORE_NS;
    ck_assert_int_eq(room_others_compute(room, 1, &sample), 1);
}
END_TEST

START_TEST(test_a_thread_waiting_outside_the_gil_lets_the_others_in)
{
    thread_1_samples_thread_2_in_a_run(); /* thread 2 uses no CPU: it sleeps or waits */
    ck_assert_int_eq(room_others_compute(room, 1, &sample), 0);
}
END_TEST

START_TEST(test_a_thread_that_left_its_request_keeps_nobody_out)
{
    thread_1_samples_thread_2_in_a_run();
    fake_cpu_ns[2] += FAR_MORE_NS;
    room_run_done(room, 2);
    ck_assert_int_eq(room_others_inside(room, 1), 0);
    ck_assert_int_eq(room_others_compute(room, 1, &sample), 0);
}
END_TEST

START_TEST(test_a_thread_in_no_request_when_sampled_is_not_waited_for)
{
    /* Thread 3 started its request after the sample: what it used since
     * cannot be told from this sample, and the caller takes the item. */
    room_sample(room, 1, &sample);
    room_run_started(room, 3);
    sleep_ms(1);
    fake_cpu_ns[3] += FAR_MORE_NS;
    ck_assert_int_eq(room_others_compute(room, 1, &sample), 0);
}
END_TEST

START_TEST(test_a_run_computing_past_alone_us_lets_the_others_in)
{
    struct room *short_alone = room_create(THREADS, 20 * 1000, fake_cpu, NULL);
    ck_assert_ptr_nonnull(short_alone);
    struct room_sample view;
    ck_assert_int_eq(room_sample_init(short_alone, &view), 0);
    room_run_started(short_alone, 2);
    room_sample(short_alone, 1, &view);
    sleep_ms(30);
    fake_cpu_ns[2] += FAR_MORE_NS;
    ck_assert_int_eq(room_others_compute(short_alone, 1, &view), 0);
    room_sample_free(&view);
    room_destroy(short_alone);
}
END_TEST

START_TEST(test_a_thread_leaves_the_next_item_to_one_that_computed_through_its_request)
{
    room_run_started(room, 2);
    room_run_started(room, 1); /* samples thread 2 */
    sleep_ms(1);               /* longer than ROOM_LOOK_US */
    fake_cpu_ns[2] += FAR_MORE_NS;
    room_run_done(room, 1);
    ck_assert_int_eq(room_should_leave(room, 1), 1);
}
END_TEST

START_TEST(test_a_thread_keeps_the_next_item_when_the_others_waited_outside_the_gil)
{
    room_run_started(room, 2);
    room_run_started(room, 1);
    sleep_ms(1);
    room_run_done(room, 1);
    ck_assert_int_eq(room_should_leave(room, 1), 0);
    room_run_done(room, 2);
    ck_assert_int_eq(room_should_leave(room, 2), 0); /* thread 1 is in no request */
}
END_TEST

START_TEST(test_threads_outside_the_room_and_no_room_change_nothing)
{
    /* Index 0 and indexes past the room's threads are not watched; a
     * server without a room (NULL) never waits. */
    room_run_started(room, 0);
    room_run_started(room, THREADS + 1);
    ck_assert_int_eq(room_others_inside(room, 1), 0);
    ck_assert_int_eq(room_should_leave(room, THREADS + 1), 0);
    room_run_started(NULL, 1);
    room_run_done(NULL, 1);
    ck_assert_int_eq(room_should_leave(NULL, 1), 0);
    ck_assert_int_eq(room_others_inside(NULL, 1), 0);
}
END_TEST

START_TEST(test_the_real_cpu_clock_sees_a_sleeping_thread_use_no_cpu)
{
    /* Without fake_cpu, each thread's own CPU clock (room_thread_start):
     * this thread, in a request as thread 2, sleeps 5 ms, and thread 1's
     * view of it (sampled by this same thread) says it did not compute. */
    struct room *real = room_create(2, LONG_ALONE_US, NULL, NULL);
    ck_assert_ptr_nonnull(real);
    room_thread_start(real, 2);
    room_run_started(real, 2);
    struct room_sample view;
    ck_assert_int_eq(room_sample_init(real, &view), 0);
    room_sample(real, 1, &view);
    ck_assert_int_ge(view.cpu_ns[1], 0); /* thread 2's clock was read */
    sleep_ms(5);
    ck_assert_int_eq(room_others_compute(real, 1, &view), 0);
    room_sample_free(&view);
    room_destroy(real);
}
END_TEST

START_TEST(test_the_alone_time_follows_the_switch_interval_up_to_its_default)
{
    /* Second outside attack (room2): an application that raised
     * sys.setswitchinterval to 2 s or 5 s held fast requests that long. */
    ck_assert_int_eq(room_alone_us(0.005), 5000);
    ck_assert_int_eq(room_alone_us(0.001), 1000);
    ck_assert_int_eq(room_alone_us(5.0), ROOM_ALONE_MAX_US);
    ck_assert_int_eq(room_alone_us(100.0), ROOM_ALONE_MAX_US);
    ck_assert_int_eq(room_alone_us(0), ROOM_ALONE_MAX_US); /* unknown */
    ck_assert_int_eq(room_alone_us(-1), ROOM_ALONE_MAX_US);
}
END_TEST

Suite *make_room_suite(void)
{
    Suite *s = suite_create("room");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_thread_in_a_request_that_computes_keeps_the_others_out);
    tcase_add_test(tc, test_a_thread_waiting_outside_the_gil_lets_the_others_in);
    tcase_add_test(tc, test_a_thread_that_left_its_request_keeps_nobody_out);
    tcase_add_test(tc, test_a_thread_in_no_request_when_sampled_is_not_waited_for);
    tcase_add_test(tc, test_a_run_computing_past_alone_us_lets_the_others_in);
    tcase_add_test(tc, test_a_thread_leaves_the_next_item_to_one_that_computed_through_its_request);
    tcase_add_test(tc, test_a_thread_keeps_the_next_item_when_the_others_waited_outside_the_gil);
    tcase_add_test(tc, test_threads_outside_the_room_and_no_room_change_nothing);
    tcase_add_test(tc, test_the_real_cpu_clock_sees_a_sleeping_thread_use_no_cpu);
    tcase_add_test(tc, test_the_alone_time_follows_the_switch_interval_up_to_its_default);
    suite_add_tcase(s, tc);
    return s;
}

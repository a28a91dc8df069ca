/* Tests for src/log.c: the GIL-free queue of log records. The queue is
 * process-wide, so each test starts from an empty one (this matters with
 * CK_FORK=no, where the tests share one process). */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pyruvate/log.h"
#include "suites.h"

static struct log_record *records; /* LOG_QUEUE_LEN of them */

static void reset_log(void)
{
    log_set_wake_fd(-1);
    log_set_level(LOG_DEBUG);
    records = calloc(LOG_QUEUE_LEN, sizeof(*records));
    ck_assert_ptr_nonnull(records);
    unsigned long dropped;
    while (log_take(records, LOG_QUEUE_LEN, &dropped) > 0)
        ;
}

static void free_records(void)
{
    log_set_wake_fd(-1);
    free(records);
    records = NULL;
}

START_TEST(test_records_come_out_in_order)
{
    for (int i = 0; i < 10; i++)
        log_write(i % 2 ? LOG_WARNING : LOG_INFO, "record %d", i);
    unsigned long dropped = 99;
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), 10);
    ck_assert_uint_eq(dropped, 0);
    for (int i = 0; i < 10; i++) {
        char expected[32];
        snprintf(expected, sizeof(expected), "record %d", i);
        ck_assert_str_eq(records[i].message, expected);
        ck_assert_int_eq(records[i].level, i % 2 ? LOG_WARNING : LOG_INFO);
    }
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), 0);
}
END_TEST

START_TEST(test_take_at_most_max)
{
    for (int i = 0; i < 5; i++)
        log_write(LOG_ERROR, "%d", i);
    unsigned long dropped;
    ck_assert_uint_eq(log_take(records, 2, &dropped), 2);
    ck_assert_str_eq(records[1].message, "1");
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), 3);
    ck_assert_str_eq(records[0].message, "2");
    ck_assert_str_eq(records[2].message, "4");
}
END_TEST

START_TEST(test_order_survives_wrapping)
{
    unsigned long dropped;
    /* Move the ring's head away from slot 0, then fill it completely. */
    for (int i = 0; i < 7; i++)
        log_write(LOG_INFO, "old %d", i);
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), 7);
    for (int i = 0; i < LOG_QUEUE_LEN; i++)
        log_write(LOG_INFO, "%d", i);
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), LOG_QUEUE_LEN);
    ck_assert_uint_eq(dropped, 0);
    for (int i = 0; i < LOG_QUEUE_LEN; i++)
        ck_assert_int_eq((int)strtol(records[i].message, NULL, 10), i);
}
END_TEST

START_TEST(test_overflow_counts_dropped)
{
    for (int i = 0; i < LOG_QUEUE_LEN + 7; i++)
        log_write(LOG_INFO, "%d", i);
    unsigned long dropped = 0;
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), LOG_QUEUE_LEN);
    ck_assert_uint_eq(dropped, 7);
    /* The oldest records are the ones kept. */
    ck_assert_str_eq(records[0].message, "0");
    ck_assert_int_eq((int)strtol(records[LOG_QUEUE_LEN - 1].message, NULL, 10), LOG_QUEUE_LEN - 1);
    /* The count is reported once. */
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), 0);
    ck_assert_uint_eq(dropped, 0);
}
END_TEST

START_TEST(test_access_records_leave_room_for_server_records)
{
    for (int i = 0; i < LOG_QUEUE_LEN; i++)
        log_write_access("GET /");
    log_write(LOG_WARNING, "still heard");
    unsigned long dropped = 0;
    size_t n = log_take(records, LOG_QUEUE_LEN, &dropped);
    ck_assert_uint_eq(n, LOG_QUEUE_LEN - LOG_SERVER_RESERVE + 1);
    ck_assert_uint_eq(dropped, LOG_SERVER_RESERVE);
    ck_assert_int_eq(records[n - 1].target, LOG_TO_SERVER);
    ck_assert_str_eq(records[n - 1].message, "still heard");
}
END_TEST

START_TEST(test_long_message_is_truncated)
{
    char text[LOG_MESSAGE_LEN * 2];
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    log_write(LOG_INFO, "%s", text);
    unsigned long dropped;
    ck_assert_uint_eq(log_take(records, 1, &dropped), 1);
    ck_assert_uint_eq(strlen(records[0].message), LOG_MESSAGE_LEN - 1);
}
END_TEST

START_TEST(test_level_filtering)
{
    log_set_level(LOG_WARNING);
    ck_assert(!log_enabled(LOG_DEBUG));
    ck_assert(!log_enabled(LOG_INFO));
    ck_assert(log_enabled(LOG_WARNING));
    ck_assert(log_enabled(LOG_ERROR));
    log_write(LOG_DEBUG, "debug");
    log_write(LOG_INFO, "info");
    log_write(LOG_WARNING, "warning");
    log_write(LOG_ERROR, "error");
    unsigned long dropped;
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), 2);
    ck_assert_uint_eq(dropped, 0); /* filtered records are not "dropped" */
    ck_assert_str_eq(records[0].message, "warning");
    ck_assert_str_eq(records[1].message, "error");
}
END_TEST

START_TEST(test_write_keeps_errno)
{
    errno = ECONNRESET;
    log_write(LOG_INFO, "a record");
    ck_assert_int_eq(errno, ECONNRESET);
    for (int i = 0; i < LOG_QUEUE_LEN; i++)
        log_write(LOG_INFO, "fill");
    errno = EPIPE;
    log_write(LOG_INFO, "dropped"); /* the full-queue path too */
    ck_assert_int_eq(errno, EPIPE);
}
END_TEST

static uint64_t read_wakeups(int fd)
{
    uint64_t count = 0;
    if (read(fd, &count, sizeof(count)) != (ssize_t)sizeof(count)) {
        ck_assert_int_eq(errno, EAGAIN);
        return 0;
    }
    return count;
}

START_TEST(test_wake_fd_written_when_queue_becomes_non_empty)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    log_set_wake_fd(fd);
    unsigned long dropped;

    log_write(LOG_INFO, "one");
    log_write(LOG_INFO, "two");
    log_write(LOG_INFO, "three");
    ck_assert_uint_eq(read_wakeups(fd), 1);
    ck_assert_uint_eq(read_wakeups(fd), 0);

    /* Records filtered out never wake the reader. */
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), 3);
    log_set_level(LOG_ERROR);
    log_write(LOG_INFO, "filtered");
    ck_assert_uint_eq(read_wakeups(fd), 0);

    /* Once drained, the next record wakes again. */
    log_write(LOG_ERROR, "four");
    ck_assert_uint_eq(read_wakeups(fd), 1);

    log_set_wake_fd(-1);
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), 1);
    log_write(LOG_ERROR, "five");
    ck_assert_uint_eq(read_wakeups(fd), 0);
    close(fd);
}
END_TEST

enum { WRITERS = 4, RECORDS_PER_WRITER = 200 };

static void *write_records(void *arg)
{
    int writer = (int)(intptr_t)arg;
    for (int i = 0; i < RECORDS_PER_WRITER; i++)
        log_write(LOG_INFO, "%d %d", writer, i);
    return NULL;
}

START_TEST(test_concurrent_writers_keep_per_thread_order)
{
    pthread_t threads[WRITERS];
    for (int w = 0; w < WRITERS; w++)
        ck_assert_int_eq(pthread_create(&threads[w], NULL, write_records, (void *)(intptr_t)w), 0);
    for (int w = 0; w < WRITERS; w++)
        pthread_join(threads[w], NULL);
    unsigned long dropped;
    ck_assert_uint_eq(log_take(records, LOG_QUEUE_LEN, &dropped), WRITERS * RECORDS_PER_WRITER);
    int next[WRITERS] = {0};
    for (int i = 0; i < WRITERS * RECORDS_PER_WRITER; i++) {
        int writer, n;
        ck_assert_int_eq(sscanf(records[i].message, "%d %d", &writer, &n), 2);
        ck_assert_int_eq(n, next[writer]++);
    }
}
END_TEST

START_TEST(test_escape_makes_printable_ascii)
{
    char out[64];
    const char in[] = "a\"b\\c\x01\x7f\xff\xc3\xa9 ~";
    ck_assert_uint_eq(log_escape(out, sizeof(out), in, sizeof(in) - 1), strlen(out));
    ck_assert_str_eq(out, "a\\x22b\\x5cc\\x01\\x7f\\xff\\xc3\\xa9 ~");
    /* Truncated before an escape that does not fit, never inside one. */
    ck_assert_uint_eq(log_escape(out, 7, "ab\xff\xff", 4), 6);
    ck_assert_str_eq(out, "ab\\xff");
    ck_assert_uint_eq(log_escape(out, 1, "ab", 2), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_records_are_always_text)
{
    /* Valid UTF-8 stays; a stray byte, a bad sequence and a control
     * character are escaped, so Python can decode every record. */
    log_write(LOG_INFO, "socket /tmp/s\xc3\xa9 /tmp/\xff \xe2\x82 tab\tnl\n");
    unsigned long dropped;
    ck_assert_uint_eq(log_take(records, 1, &dropped), 1);
    ck_assert_str_eq(records[0].message,
                     "socket /tmp/s\xc3\xa9 /tmp/\\xff \\xe2\\x82 tab\\x09nl\\x0a");
}
END_TEST

Suite *make_log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, reset_log, free_records);
    tcase_add_test(core, test_records_come_out_in_order);
    tcase_add_test(core, test_take_at_most_max);
    tcase_add_test(core, test_order_survives_wrapping);
    tcase_add_test(core, test_level_filtering);
    tcase_add_test(core, test_write_keeps_errno);
    tcase_add_test(core, test_wake_fd_written_when_queue_becomes_non_empty);
    tcase_add_test(core, test_concurrent_writers_keep_per_thread_order);
    tcase_add_test(core, test_escape_makes_printable_ascii);
    tcase_add_test(core, test_records_are_always_text);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_checked_fixture(limits, reset_log, free_records);
    tcase_add_test(limits, test_overflow_counts_dropped);
    tcase_add_test(limits, test_long_message_is_truncated);
    tcase_add_test(limits, test_access_records_leave_room_for_server_records);
    suite_add_tcase(s, limits);
    return s;
}

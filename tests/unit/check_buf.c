/* Tests for src/buf.c: the growable byte buffer. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "pyruvate/buf.h"
#include "suites.h"

START_TEST(test_append_and_consume)
{
    struct buf b = {0};
    ck_assert_int_eq(buf_append(&b, "hello ", 6), 0);
    ck_assert_int_eq(buf_append_str(&b, "world"), 0);
    ck_assert_uint_eq(b.len, 11);
    ck_assert_uint_ge(b.cap, b.len);
    ck_assert_mem_eq(b.data, "hello world", 11);

    buf_consume(&b, 6);
    ck_assert_uint_eq(b.len, 5);
    ck_assert_mem_eq(b.data, "world", 5);
    buf_consume(&b, 0);
    ck_assert_uint_eq(b.len, 5);
    buf_consume(&b, 5);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_nonnull(b.data); /* the memory stays for the next request */
    buf_free(&b);
}
END_TEST

START_TEST(test_consume_more_than_held)
{
    struct buf b = {0};
    ck_assert_int_eq(buf_append_str(&b, "abc"), 0);
    buf_consume(&b, 10);
    ck_assert_uint_eq(b.len, 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_empty_append)
{
    struct buf b = {0};
    ck_assert_int_eq(buf_append(&b, NULL, 0), 0);
    ck_assert_int_eq(buf_append_str(&b, ""), 0);
    ck_assert_uint_eq(b.len, 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_reserve_gives_room)
{
    struct buf b = {0};
    ck_assert_int_eq(buf_reserve(&b, 100), 0);
    ck_assert_uint_ge(b.cap, 100);
    ck_assert_uint_eq(b.len, 0);
    char *data = b.data;
    size_t cap = b.cap;
    ck_assert_int_eq(buf_reserve(&b, cap), 0); /* already room: no reallocation */
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.cap, cap);
    buf_free(&b);
}
END_TEST

START_TEST(test_growth_keeps_content)
{
    struct buf b = {0};
    unsigned char chunk[1000];
    for (unsigned i = 0; i < 300; i++) {
        memset(chunk, (int)(i & 0xff), sizeof(chunk));
        ck_assert_int_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
    }
    ck_assert_uint_eq(b.len, 300 * sizeof(chunk));
    for (size_t i = 0; i < b.len; i++)
        ck_assert_int_eq((unsigned char)b.data[i], (i / sizeof(chunk)) & 0xff);

    /* Consuming moves the rest to the front, in order. */
    buf_consume(&b, 1500);
    ck_assert_int_eq((unsigned char)b.data[0], 1);
    ck_assert_int_eq((unsigned char)b.data[499], 1);
    ck_assert_int_eq((unsigned char)b.data[500], 2);
    buf_free(&b);
}
END_TEST

START_TEST(test_free_makes_reusable)
{
    struct buf b = {0};
    ck_assert_int_eq(buf_append_str(&b, "abc"), 0);
    buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
    buf_free(&b); /* twice is harmless */
    ck_assert_int_eq(buf_append_str(&b, "xyz"), 0);
    ck_assert_mem_eq(b.data, "xyz", 3);
    buf_free(&b);
}
END_TEST

/* After a large request, a few leftover bytes keep little capacity. */
START_TEST(test_shrink_gives_back_unused_capacity)
{
    struct buf b = {0};
    ck_assert_int_eq(buf_reserve(&b, 1 << 20), 0);
    ck_assert_int_eq(buf_append_str(&b, "0123456789"), 0);
    buf_consume(&b, 4);
    buf_shrink(&b, 16384);
    ck_assert_uint_eq(b.cap, 6 + 16384);
    ck_assert_mem_eq(b.data, "456789", 6);
    /* Nothing to gain: the buffer stays as it is. */
    char *data = b.data;
    buf_shrink(&b, 8192);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.cap, 6 + 16384);
    ck_assert_int_eq(buf_append_str(&b, "ab"), 0);
    ck_assert_mem_eq(b.data, "456789ab", 8);
    buf_free(&b);
    buf_shrink(&b, 16); /* an empty buf is left alone */
    ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(test_reserve_overflow)
{
    struct buf b = {0};
    ck_assert_int_eq(buf_append_str(&b, "keep"), 0);
    char *data = b.data;
    errno = 0;
    ck_assert_int_eq(buf_reserve(&b, SIZE_MAX), -1);
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_int_eq(buf_reserve(&b, SIZE_MAX / 2), -1);
    /* The buffer is unchanged. */
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.len, 4);
    ck_assert_mem_eq(b.data, "keep", 4);
    buf_free(&b);
}
END_TEST

Suite *make_buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_append_and_consume);
    tcase_add_test(core, test_consume_more_than_held);
    tcase_add_test(core, test_empty_append);
    tcase_add_test(core, test_reserve_gives_room);
    tcase_add_test(core, test_growth_keeps_content);
    tcase_add_test(core, test_free_makes_reusable);
    tcase_add_test(core, test_shrink_gives_back_unused_capacity);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_reserve_overflow);
    suite_add_tcase(s, limits);
    return s;
}

/* Tests for src/http_status.c: reason phrases and the canned responses. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pyruvate/common.h"
#include "pyruvate/http_status.h"
#include "suites.h"

/* Every status the server sends on its own (grep src/ for them). */
static const int statuses_sent[] = {400, 408, 413, 414, 417, 431, 500, 501, 503, 505};

START_TEST(test_every_sent_status_has_a_reason)
{
    int status = statuses_sent[_i];
    const char *reason = http_status_reason(status);
    ck_assert_ptr_nonnull(reason);
    ck_assert_msg(strcmp(reason, "Unknown") != 0, "%d has no reason phrase", status);
}
END_TEST

START_TEST(test_known_reasons)
{
    ck_assert_str_eq(http_status_reason(100), "Continue");
    ck_assert_str_eq(http_status_reason(200), "OK");
    ck_assert_str_eq(http_status_reason(404), "Not Found");
    ck_assert_str_eq(http_status_reason(413), "Content Too Large");
    ck_assert_str_eq(http_status_reason(505), "HTTP Version Not Supported");
    ck_assert_str_eq(http_status_reason(299), "Unknown");
    ck_assert_str_eq(http_status_reason(0), "Unknown");
}
END_TEST

/* Returns the value of header `name` in the head [head, head_end), or NULL. */
static const char *find_field(const char *head, const char *head_end, const char *name,
                              size_t *value_len)
{
    size_t n = strlen(name);
    for (const char *line = strstr(head, "\r\n") + 2; line < head_end;
         line = strstr(line, "\r\n") + 2) {
        const char *eol = strstr(line, "\r\n");
        if ((size_t)(eol - line) > n + 1 && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *value = line + n + 1;
            while (*value == ' ')
                value++;
            *value_len = (size_t)(eol - value);
            return value;
        }
    }
    return NULL;
}

START_TEST(test_error_response_is_well_formed)
{
    int status = statuses_sent[_i];
    char out[512];
    size_t len = http_status_error_response(status, 784111777, out, sizeof(out));
    ck_assert_uint_gt(len, 0);
    ck_assert_uint_eq(strlen(out), len);

    char status_line[96];
    snprintf(status_line, sizeof(status_line), "HTTP/1.1 %d %s\r\n", status,
             http_status_reason(status));
    ck_assert_msg(strncmp(out, status_line, strlen(status_line)) == 0, "status line: %s", out);
    /* RFC 9110 §6.6.1: Date in the server's own responses too. */
    ck_assert_ptr_nonnull(strstr(out, "\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));

    const char *head_end = strstr(out, "\r\n\r\n");
    ck_assert_ptr_nonnull(head_end);
    const char *body = head_end + 4;
    size_t body_len = len - (size_t)(body - out);
    ck_assert_uint_gt(body_len, 0);

    size_t value_len;
    const char *value = find_field(out, head_end + 2, "Content-Length", &value_len);
    ck_assert_ptr_nonnull(value);
    ck_assert_uint_eq(strtoul(value, NULL, 10), body_len);
    value = find_field(out, head_end + 2, "Connection", &value_len);
    ck_assert_ptr_nonnull(value);
    ck_assert_int_eq(strncmp(value, "close", value_len), 0);
    ck_assert_ptr_nonnull(find_field(out, head_end + 2, "Content-Type", &value_len));
    /* Overload is the one temporary error: only it says when to retry. */
    value = find_field(out, head_end + 2, "Retry-After", &value_len);
    if (status == 503)
        ck_assert_ptr_nonnull(value);
    else
        ck_assert_ptr_null(value);
}
END_TEST

START_TEST(test_error_response_too_small)
{
    char out[512];
    size_t full = http_status_error_response(400, 784111777, out, sizeof(out));
    ck_assert_uint_gt(full, 0);
    /* The NUL terminator needs one byte more than the response. */
    ck_assert_uint_eq(http_status_error_response(400, 784111777, out, full), 0);
    ck_assert_uint_eq(http_status_error_response(400, 784111777, out, full + 1), full);
    ck_assert_uint_eq(http_status_error_response(400, 784111777, out, 16), 0);
}
END_TEST

START_TEST(test_continue_response)
{
    ck_assert_str_eq(http_status_continue, "HTTP/1.1 100 Continue\r\n\r\n");
}
END_TEST

Suite *make_http_status_suite(void)
{
    Suite *s = suite_create("http_status");
    TCase *core = tcase_create("core");
    tcase_add_loop_test(core, test_every_sent_status_has_a_reason, 0, ARRAY_SIZE(statuses_sent));
    tcase_add_test(core, test_known_reasons);
    tcase_add_loop_test(core, test_error_response_is_well_formed, 0, ARRAY_SIZE(statuses_sent));
    tcase_add_test(core, test_continue_response);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_error_response_too_small);
    suite_add_tcase(s, limits);
    return s;
}

/* Tests for src/metrics.c: histogram buckets, snapshots, the Prometheus
 * text, and the health and metrics answers. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyruvate/common.h"
#include "pyruvate/metrics.h"
#include "suites.h"

/* The text of b as a NUL-terminated string (b keeps it). */
static const char *text_of(struct buf *b)
{
    ck_assert_int_eq(buf_append(b, "", 1), 0);
    b->len--;
    return b->data;
}

START_TEST(test_observe_puts_a_bound_in_its_own_bucket)
{
    struct metrics *m = metrics_new();
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq((uintptr_t)m % 64, 0);
    metrics_observe(&m->duration, 500);      /* le 0.0005: bounds are inclusive */
    metrics_observe(&m->duration, 501);      /* le 0.001 */
    metrics_observe(&m->duration, -3);       /* a clock step: le 0.0005, counted as 0 */
    metrics_observe(&m->duration, 10000000); /* le 10 */
    metrics_observe(&m->duration, 10000001); /* +Inf */
    struct metrics_snapshot s;
    metrics_read(m, &s);
    ck_assert_uint_eq(s.duration.buckets[0], 2);
    ck_assert_uint_eq(s.duration.buckets[1], 3);
    ck_assert_uint_eq(s.duration.buckets[METRICS_BUCKET_COUNT - 2], 4);
    ck_assert_uint_eq(s.duration.buckets[METRICS_BUCKET_COUNT - 1], 5);
    ck_assert_uint_eq(s.duration.sum_us, 500 + 501 + 10000000 + 10000001);
    for (unsigned i = 1; i < METRICS_BUCKET_COUNT; i++)
        ck_assert_uint_ge(s.duration.buckets[i], s.duration.buckets[i - 1]);
    metrics_free(m);
}
END_TEST

START_TEST(test_bounds_and_labels_agree)
{
    for (unsigned i = 0; i + 1 < METRICS_BUCKET_COUNT; i++) {
        char label[32];
        snprintf(label, sizeof(label), "%g", (double)metrics_bucket_bounds_us[i] / 1e6);
        ck_assert_str_eq(label, metrics_bucket_labels[i]);
        if (i > 0)
            ck_assert_uint_gt(metrics_bucket_bounds_us[i], metrics_bucket_bounds_us[i - 1]);
    }
    ck_assert_str_eq(metrics_bucket_labels[METRICS_BUCKET_COUNT - 1], "+Inf");
}
END_TEST

START_TEST(test_counts_by_class_code_and_in_flight)
{
    struct metrics *m = metrics_new();
    metrics_count_response(m, 200);
    metrics_count_response(m, 204);
    metrics_count_response(m, 0); /* nothing went out */
    metrics_count_response(m, 600);
    metrics_count_server_response(m, 413);
    metrics_count_server_response(m, 431);
    metrics_count_server_response(m, 418); /* no code row, but a 4xx */
    metrics_request_started(m, 10);
    metrics_request_started(m, 20);
    metrics_request_finished(m, 30);
    metrics_count_bytes_in(m, 100);
    metrics_count_bytes_out(m, 7);
    metrics_count_bytes_in(NULL, 1); /* no server: nothing */
    metrics_count_response(NULL, 200);
    struct metrics_snapshot s;
    metrics_read(m, &s);
    ck_assert_uint_eq(s.status_classes[1], 2);
    ck_assert_uint_eq(s.status_classes[3], 3);
    ck_assert_uint_eq(s.status_classes[0] + s.status_classes[2] + s.status_classes[4], 0);
    for (unsigned i = 0; i < METRICS_SERVER_CODE_COUNT; i++)
        ck_assert_uint_eq(s.server_codes[i],
                          metrics_server_codes[i] == 413 || metrics_server_codes[i] == 431);
    ck_assert_uint_eq(s.requests_in_flight, 1);
    ck_assert_uint_eq(s.queue_wait.buckets[METRICS_BUCKET_COUNT - 1], 2);
    ck_assert_uint_eq(s.duration.buckets[METRICS_BUCKET_COUNT - 1], 1);
    ck_assert_uint_eq(s.bytes_in, 100);
    ck_assert_uint_eq(s.bytes_out, 7);
    metrics_free(m);
}
END_TEST

START_TEST(test_format_is_prometheus_text)
{
    struct metrics *m = metrics_new();
    metrics_count_response(m, 200);
    metrics_count_server_response(m, 408);
    metrics_request_started(m, 1500);
    metrics_request_finished(m, 2500001);
    struct metrics_snapshot s;
    metrics_read(m, &s);
    s.queue_depth = 3;
    s.busy_workers = 2;
    struct buf out = {0};
    ck_assert_int_eq(metrics_format(&s, &out), 0);
    const char *text = text_of(&out);
    const char *expected[] = {
        "# HELP pyruvate_requests_total ",
        "# TYPE pyruvate_requests_total counter\n",
        "\npyruvate_requests_total{class=\"2xx\"} 1\n",
        "\npyruvate_requests_total{class=\"5xx\"} 0\n",
        "\npyruvate_server_responses_total{code=\"408\"} 1\n",
        "\npyruvate_requests_in_flight 0\n",
        "# TYPE pyruvate_queue_depth gauge\npyruvate_queue_depth 3\n",
        "\npyruvate_busy_workers 2\n",
        "# TYPE pyruvate_queue_wait_seconds histogram\n",
        "\npyruvate_queue_wait_seconds_bucket{le=\"0.001\"} 0\n",
        "\npyruvate_queue_wait_seconds_bucket{le=\"0.0025\"} 1\n",
        "\npyruvate_queue_wait_seconds_sum 0.001500\n",
        "\npyruvate_queue_wait_seconds_count 1\n",
        "\npyruvate_request_duration_seconds_bucket{le=\"2.5\"} 0\n",
        "\npyruvate_request_duration_seconds_bucket{le=\"5\"} 1\n",
        "\npyruvate_request_duration_seconds_bucket{le=\"+Inf\"} 1\n",
        "\npyruvate_request_duration_seconds_sum 2.500001\n",
    };
    for (unsigned i = 0; i < ARRAY_SIZE(expected); i++)
        ck_assert_msg(strstr(text, expected[i]) != NULL, "missing %s", expected[i]);
    /* Every line is a comment or a sample named pyruvate_..., and it ends. */
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        ck_assert(strncmp(line, "# HELP pyruvate_", 16) == 0 ||
                  strncmp(line, "# TYPE pyruvate_", 16) == 0 || strncmp(line, "pyruvate_", 9) == 0);
        ck_assert_ptr_nonnull(strchr(line, '\n'));
    }
    buf_free(&out);
    metrics_free(m);
}
END_TEST

START_TEST(test_endpoint_of_matches_the_path_exactly)
{
    const char *paths[METRICS_ENDPOINT_COUNT] = {"/health", "/metrics"};
    const char *off[METRICS_ENDPOINT_COUNT] = {NULL, NULL};
#define ENDPOINT(p, t) metrics_endpoint_of(p, t, strlen(t))
    ck_assert_int_eq(ENDPOINT(paths, "/health"), METRICS_HEALTH);
    ck_assert_int_eq(ENDPOINT(paths, "/health?x=1"), METRICS_HEALTH);
    ck_assert_int_eq(ENDPOINT(paths, "/metrics?"), METRICS_EXPOSITION);
    ck_assert_int_eq(ENDPOINT(paths, "/healthz"), METRICS_NO_ENDPOINT);
    ck_assert_int_eq(ENDPOINT(paths, "/health/"), METRICS_NO_ENDPOINT);
    ck_assert_int_eq(ENDPOINT(paths, "/healt"), METRICS_NO_ENDPOINT);
    ck_assert_int_eq(ENDPOINT(paths, "http://x/health"), METRICS_NO_ENDPOINT);
    ck_assert_int_eq(ENDPOINT(paths, ""), METRICS_NO_ENDPOINT);
    ck_assert_int_eq(ENDPOINT(off, "/health"), METRICS_NO_ENDPOINT);
#undef ENDPOINT
}
END_TEST

START_TEST(test_decide)
{
    struct metrics_answer a = metrics_decide(METRICS_HEALTH, "GET", 0, 1, 0);
    ck_assert_int_eq(a.status, 200);
    ck_assert_int_eq(a.closing, 0);
    a = metrics_decide(METRICS_HEALTH, "HEAD", 1, 1, 0);
    ck_assert_int_eq(a.status, 503);
    ck_assert_int_eq(a.closing, 1);
    a = metrics_decide(METRICS_EXPOSITION, "GET", 1, 1, 0); /* metrics still answer */
    ck_assert_int_eq(a.status, 200);
    ck_assert_int_eq(a.closing, 1);
    a = metrics_decide(METRICS_HEALTH, "POST", 0, 0, 0);
    ck_assert_int_eq(a.status, 405);
    ck_assert_int_eq(a.closing, 1);
    /* Draining with a request pipelined behind: that one is answered too. */
    a = metrics_decide(METRICS_HEALTH, "GET", 1, 1, 1);
    ck_assert_int_eq(a.status, 503);
    ck_assert_int_eq(a.closing, 0);
    a = metrics_decide(METRICS_HEALTH, "GET", 1, 0, 1); /* unless the client said close */
    ck_assert_int_eq(a.closing, 1);
}
END_TEST

START_TEST(test_response_head_and_body)
{
    struct buf out = {0};
    struct metrics_answer ok = {.status = 200, .closing = 0};
    ck_assert_int_eq(metrics_response(&out, &ok, 0, 1, "text/plain", "ok\n", 3), 0);
    ck_assert_str_eq(text_of(&out), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                    "Content-Length: 3\r\nCache-Control: no-store\r\n\r\nok\n");
    out.len = 0;
    ck_assert_int_eq(metrics_response(&out, &ok, 1, 0, "text/plain", "ok\n", 3), 0);
    ck_assert_str_eq(text_of(&out), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                    "Content-Length: 3\r\nCache-Control: no-store\r\n"
                                    "Connection: keep-alive\r\n\r\n");
    out.len = 0;
    struct metrics_answer refused = {.status = 405, .closing = 1};
    ck_assert_int_eq(metrics_response(&out, &refused, 0, 1, "text/plain", "no\n", 3), 0);
    ck_assert_ptr_nonnull(strstr(text_of(&out), "HTTP/1.1 405 Method Not Allowed\r\n"));
    ck_assert_ptr_nonnull(strstr(text_of(&out), "\r\nConnection: close\r\nAllow: GET, HEAD\r\n"
                                                "\r\nno\n"));
    buf_free(&out);
}
END_TEST

Suite *make_metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *counting = tcase_create("counting");
    tcase_add_test(counting, test_observe_puts_a_bound_in_its_own_bucket);
    tcase_add_test(counting, test_bounds_and_labels_agree);
    tcase_add_test(counting, test_counts_by_class_code_and_in_flight);
    suite_add_tcase(s, counting);
    TCase *text = tcase_create("text");
    tcase_add_test(text, test_format_is_prometheus_text);
    suite_add_tcase(s, text);
    TCase *endpoints = tcase_create("endpoints");
    tcase_add_test(endpoints, test_endpoint_of_matches_the_path_exactly);
    tcase_add_test(endpoints, test_decide);
    tcase_add_test(endpoints, test_response_head_and_body);
    suite_add_tcase(s, endpoints);
    return s;
}

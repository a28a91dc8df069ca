/* Counting, reading and writing out the server's metrics, and the health
 * and metrics answers. Counters are relaxed atomics: a scrape may see one
 * counter a request ahead of another, never a torn value. */
#include "pyruvate/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyruvate/common.h"
#include "pyruvate/http_status.h"

#define METRICS_CODE_ENTRY(code) code,
const int metrics_server_codes[METRICS_SERVER_CODE_COUNT] = {
    METRICS_SERVER_CODES(METRICS_CODE_ENTRY)};
#undef METRICS_CODE_ENTRY

#define METRICS_BOUND_ENTRY(us, le) us,
const uint64_t metrics_bucket_bounds_us[METRICS_BUCKET_COUNT - 1] = {
    METRICS_BUCKETS(METRICS_BOUND_ENTRY)};
#undef METRICS_BOUND_ENTRY

#define METRICS_LABEL_ENTRY(us, le) le,
const char *const metrics_bucket_labels[METRICS_BUCKET_COUNT] = {
    METRICS_BUCKETS(METRICS_LABEL_ENTRY) "+Inf"};
#undef METRICS_LABEL_ENTRY

const char metrics_content_type[] = "text/plain; version=0.0.4; charset=utf-8";
const char metrics_health_ok[] = "ok\n";
const char metrics_health_draining[] = "draining\n";

struct metrics *metrics_new(void)
{
    size_t size = (sizeof(struct metrics) + 63) / 64 * 64;
    struct metrics *m = aligned_alloc(64, size);
    if (m)
        memset(m, 0, size);
    return m;
}

void metrics_free(struct metrics *m)
{
    free(m);
}

void metrics_count_bytes_in(struct metrics *m, uint64_t n)
{
    if (m)
        metrics_add(&m->bytes_in, n);
}

void metrics_count_bytes_out(struct metrics *m, uint64_t n)
{
    if (m && n)
        metrics_add(&m->bytes_out, n);
}

void metrics_count_response(struct metrics *m, int status)
{
    if (m && status >= 100 && status < 600)
        metrics_add(&m->status_classes[status / 100 - 1], 1);
}

void metrics_count_server_response(struct metrics *m, int status)
{
    if (m == NULL)
        return;
    metrics_count_response(m, status);
    for (unsigned i = 0; i < METRICS_SERVER_CODE_COUNT; i++)
        if (metrics_server_codes[i] == status)
            metrics_add(&m->server_codes[i], 1);
}

void metrics_count_endpoint(struct metrics *m, enum metrics_endpoint endpoint)
{
    if (m)
        metrics_add(&m->endpoint_requests[endpoint], 1);
}

void metrics_observe(struct metrics_histogram *h, int64_t us)
{
    uint64_t value = us > 0 ? (uint64_t)us : 0;
    unsigned i = 0;
    while (i < METRICS_BUCKET_COUNT - 1 && value > metrics_bucket_bounds_us[i])
        i++;
    metrics_add(&h->buckets[i], 1);
    metrics_add(&h->sum_us, value);
}

void metrics_request_started(struct metrics *m, int64_t wait_us)
{
    if (m == NULL)
        return;
    metrics_add(&m->requests_started, 1);
    metrics_observe(&m->queue_wait, wait_us);
}

void metrics_request_finished(struct metrics *m, int64_t duration_us)
{
    if (m == NULL)
        return;
    metrics_observe(&m->duration, duration_us);
    /* Release: a reader that sees the request finished sees its counts. */
    atomic_fetch_add_explicit(&m->requests_finished, 1, memory_order_release);
}

static uint64_t load(const atomic_ullong *counter)
{
    return atomic_load_explicit(counter, memory_order_relaxed);
}

static void read_histogram(const struct metrics_histogram *h, struct metrics_histogram_snapshot *s)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < METRICS_BUCKET_COUNT; i++) {
        total += load(&h->buckets[i]);
        s->buckets[i] = total;
    }
    s->sum_us = load(&h->sum_us);
}

void metrics_read(const struct metrics *m, struct metrics_snapshot *s)
{
    for (unsigned i = 0; i < 5; i++)
        s->status_classes[i] = load(&m->status_classes[i]);
    for (unsigned i = 0; i < METRICS_SERVER_CODE_COUNT; i++)
        s->server_codes[i] = load(&m->server_codes[i]);
    for (unsigned i = 0; i < METRICS_ENDPOINT_COUNT; i++)
        s->endpoint_requests[i] = load(&m->endpoint_requests[i]);
    /* Finished first: a request that ends meanwhile may show as still in
     * flight, never the count as negative. */
    uint64_t finished = atomic_load_explicit(&m->requests_finished, memory_order_acquire);
    uint64_t started = load(&m->requests_started);
    s->requests_in_flight = started > finished ? started - finished : 0;
    s->bytes_in = load(&m->bytes_in);
    s->bytes_out = load(&m->bytes_out);
    read_histogram(&m->queue_wait, &s->queue_wait);
    read_histogram(&m->duration, &s->duration);
}

/* ---- the Prometheus text format ---------------------------------------- */

static int appendf(struct buf *out, const char *format, ...) __attribute__((format(printf, 2, 3)));

static int appendf(struct buf *out, const char *format, ...)
{
    char line[256];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof(line))
        return -1;
    return buf_append(out, line, (size_t)n);
}

static int family(struct buf *out, const char *name, const char *type, const char *help)
{
    return appendf(out, "# HELP pyruvate_%s %s\n# TYPE pyruvate_%s %s\n", name, help, name, type);
}

static int sample(struct buf *out, const char *name, uint64_t value)
{
    return appendf(out, "pyruvate_%s %" PRIu64 "\n", name, value);
}

static int histogram(struct buf *out, const char *name, const char *help,
                     const struct metrics_histogram_snapshot *h)
{
    if (family(out, name, "histogram", help) < 0)
        return -1;
    for (unsigned i = 0; i < METRICS_BUCKET_COUNT; i++)
        if (appendf(out, "pyruvate_%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
                    metrics_bucket_labels[i], h->buckets[i]) < 0)
            return -1;
    return appendf(
        out, "pyruvate_%s_sum %" PRIu64 ".%06" PRIu64 "\npyruvate_%s_count %" PRIu64 "\n", name,
        h->sum_us / 1000000, h->sum_us % 1000000, name, h->buckets[METRICS_BUCKET_COUNT - 1]);
}

static int counters(struct buf *out, const struct metrics_snapshot *s)
{
    static const char *const endpoints[METRICS_ENDPOINT_COUNT] = {"health", "metrics"};
    if (family(out, "requests_total", "counter",
               "Final responses sent, by status class (health and metrics requests not "
               "included).") < 0)
        return -1;
    for (unsigned i = 0; i < 5; i++)
        if (appendf(out, "pyruvate_requests_total{class=\"%uxx\"} %" PRIu64 "\n", i + 1,
                    s->status_classes[i]) < 0)
            return -1;
    if (family(out, "server_responses_total", "counter",
               "Error responses the server sent itself, not the application, by status "
               "code.") < 0)
        return -1;
    for (unsigned i = 0; i < METRICS_SERVER_CODE_COUNT; i++)
        if (appendf(out, "pyruvate_server_responses_total{code=\"%d\"} %" PRIu64 "\n",
                    metrics_server_codes[i], s->server_codes[i]) < 0)
            return -1;
    if (family(out, "endpoint_requests_total", "counter",
               "Requests answered by the health and metrics endpoints.") < 0)
        return -1;
    for (unsigned i = 0; i < METRICS_ENDPOINT_COUNT; i++)
        if (appendf(out, "pyruvate_endpoint_requests_total{endpoint=\"%s\"} %" PRIu64 "\n",
                    endpoints[i], s->endpoint_requests[i]) < 0)
            return -1;
    if (family(out, "received_bytes_total", "counter", "Bytes read from clients.") < 0 ||
        sample(out, "received_bytes_total", s->bytes_in) < 0 ||
        family(out, "sent_bytes_total", "counter", "Bytes written to clients.") < 0 ||
        sample(out, "sent_bytes_total", s->bytes_out) < 0)
        return -1;
    return 0;
}

static int gauges(struct buf *out, const struct metrics_snapshot *s)
{
    const struct {
        const char *name, *help;
        uint64_t value;
    } rows[] = {
        {"requests_in_flight", "Requests a worker has taken and not finished (parked included).",
         s->requests_in_flight},
        {"queue_depth", "Complete requests waiting for a worker.", s->queue_depth},
        {"busy_workers", "Worker threads answering a request.", s->busy_workers},
        {"idle_workers", "Worker threads waiting for a request.", s->idle_workers},
        {"open_connections", "Client connections open.", s->open_connections},
        {"idle_connections", "Keep-alive connections quiet for more than 0.25 s.",
         s->idle_connections},
        {"draining", "1 while the server shuts down.", (uint64_t)s->draining},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(rows); i++)
        if (family(out, rows[i].name, "gauge", rows[i].help) < 0 ||
            sample(out, rows[i].name, rows[i].value) < 0)
            return -1;
    return 0;
}

int metrics_format(const struct metrics_snapshot *s, struct buf *out)
{
    if (counters(out, s) < 0 || gauges(out, s) < 0 ||
        histogram(out, "queue_wait_seconds", "Time from a complete request to a worker taking it.",
                  &s->queue_wait) < 0 ||
        histogram(out, "request_duration_seconds",
                  "Time from a worker taking a request to its response finished.",
                  &s->duration) < 0)
        return -1;
    return 0;
}

/* ---- the endpoints ------------------------------------------------------ */

enum metrics_endpoint metrics_endpoint_of(const char *const paths[METRICS_ENDPOINT_COUNT],
                                          const char *target, size_t target_len)
{
    const char *query = memchr(target, '?', target_len);
    size_t path_len = query ? (size_t)(query - target) : target_len;
    for (int i = 0; i < METRICS_ENDPOINT_COUNT; i++)
        if (paths[i] && strlen(paths[i]) == path_len && memcmp(paths[i], target, path_len) == 0)
            return (enum metrics_endpoint)i;
    return METRICS_NO_ENDPOINT;
}

struct metrics_answer metrics_decide(enum metrics_endpoint endpoint, const char *method,
                                     int draining, int keep_alive, int pipelined)
{
    struct metrics_answer answer = {.status = 200,
                                    .closing = !keep_alive || (draining && !pipelined)};
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        answer.status = 405;
    else if (endpoint == METRICS_HEALTH && draining)
        answer.status = 503;
    return answer;
}

int metrics_response(struct buf *out, const struct metrics_answer *answer, int head_request,
                     int http_minor, const char *content_type, const char *body, size_t body_len)
{
    const char *connection = answer->closing   ? "Connection: close\r\n"
                             : http_minor == 0 ? "Connection: keep-alive\r\n"
                                               : "";
    if (appendf(out,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                "Cache-Control: no-store\r\n%s%s\r\n",
                answer->status, http_status_reason(answer->status), content_type, body_len,
                connection, answer->status == 405 ? "Allow: GET, HEAD\r\n" : "") < 0)
        return -1;
    return head_request ? 0 : buf_append(out, body, body_len);
}

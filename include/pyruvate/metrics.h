/* struct metrics: what the server counts of its work, kept in relaxed
 * atomics (no lock on the request path), read into a snapshot and written
 * out in the Prometheus text format (0.0.4) or, by server.c, as
 * pyruvate.stats(). Also the health and metrics answers that the acceptor
 * sends itself. No Python here. */
#ifndef PYRUVATE_METRICS_H
#define PYRUVATE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "pyruvate/buf.h"

/* Histogram bucket upper bounds: microseconds, and the `le` label in
 * seconds. A last bucket (+Inf) takes everything longer. */
/* clang-format off */
#define METRICS_BUCKETS(X)                                                            \
    X(500, "0.0005") X(1000, "0.001") X(2500, "0.0025") X(5000, "0.005")               \
    X(10000, "0.01") X(25000, "0.025") X(50000, "0.05") X(100000, "0.1")               \
    X(250000, "0.25") X(500000, "0.5") X(1000000, "1") X(2500000, "2.5")               \
    X(5000000, "5") X(10000000, "10")
/* clang-format on */

#define METRICS_COUNT_ONE(us, le) +1
enum { METRICS_BUCKET_COUNT = 0 METRICS_BUCKETS(METRICS_COUNT_ONE) + 1 };
#undef METRICS_COUNT_ONE

/* The error responses the server sends itself (not the app's), by code. */
#define METRICS_SERVER_CODES(X) \
    X(400) X(408) X(411) X(413) X(414) X(417) X(431) X(501) X(503) X(505)

#define METRICS_COUNT_ONE(code) +1
enum { METRICS_SERVER_CODE_COUNT = 0 METRICS_SERVER_CODES(METRICS_COUNT_ONE) };
#undef METRICS_COUNT_ONE

extern const int metrics_server_codes[METRICS_SERVER_CODE_COUNT];
extern const uint64_t metrics_bucket_bounds_us[METRICS_BUCKET_COUNT - 1];
extern const char *const metrics_bucket_labels[METRICS_BUCKET_COUNT]; /* "0.0005" .. "+Inf" */

enum metrics_endpoint {
    METRICS_NO_ENDPOINT = -1,
    METRICS_HEALTH = 0,
    METRICS_EXPOSITION = 1,
};
enum { METRICS_ENDPOINT_COUNT = 2 };

struct metrics_histogram {
    atomic_ullong buckets[METRICS_BUCKET_COUNT]; /* per bucket, not cumulative */
    atomic_ullong sum_us;
};

/* Written by every thread with relaxed atomics; the groups that different
 * threads write most start on their own cache line. Allocate with
 * metrics_new so that the alignment holds. */
struct metrics {
    /* mostly the acceptor */
    _Alignas(64) atomic_ullong bytes_in;
    atomic_ullong server_codes[METRICS_SERVER_CODE_COUNT];
    atomic_ullong endpoint_requests[METRICS_ENDPOINT_COUNT];
    /* mostly the workers */
    _Alignas(64) atomic_ullong status_classes[5]; /* 1xx .. 5xx */
    atomic_ullong requests_started, requests_finished;
    atomic_ullong bytes_out;
    struct metrics_histogram queue_wait, duration;
};

/* What a scrape shows: the counters read once, and the gauges, which the
 * caller fills from the pool and the acceptor. */
struct metrics_histogram_snapshot {
    uint64_t buckets[METRICS_BUCKET_COUNT]; /* cumulative, as exposed */
    uint64_t sum_us;
};

struct metrics_snapshot {
    uint64_t status_classes[5];
    uint64_t server_codes[METRICS_SERVER_CODE_COUNT];
    uint64_t endpoint_requests[METRICS_ENDPOINT_COUNT];
    uint64_t requests_in_flight;
    uint64_t bytes_in, bytes_out;
    struct metrics_histogram_snapshot queue_wait, duration;
    /* gauges */
    unsigned queue_depth;
    unsigned busy_workers, idle_workers;
    unsigned open_connections, idle_connections;
    int draining;
};

/* A zeroed, cache-line aligned struct metrics; NULL on ENOMEM. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* The counting functions accept m == NULL (unit tests, no server). */
static inline void metrics_add(atomic_ullong *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

void metrics_count_bytes_in(struct metrics *m, uint64_t n);
void metrics_count_bytes_out(struct metrics *m, uint64_t n);

/* A final response with this status went out (app's or server's). */
void metrics_count_response(struct metrics *m, int status);

/* An error response the server sent itself: its code and its class. */
void metrics_count_server_response(struct metrics *m, int status);

/* The endpoint answered a request (not counted as a response above). */
void metrics_count_endpoint(struct metrics *m, enum metrics_endpoint endpoint);

/* A worker took a request that waited wait_us; one that ran duration_us
 * finished (or was dropped). */
void metrics_request_started(struct metrics *m, int64_t wait_us);
void metrics_request_finished(struct metrics *m, int64_t duration_us);

void metrics_observe(struct metrics_histogram *h, int64_t us);

/* Reads the counters into *s (the gauges are left as they are). */
void metrics_read(const struct metrics *m, struct metrics_snapshot *s);

/* Appends s in the Prometheus text exposition format 0.0.4. Returns 0, or
 * -1 on ENOMEM. */
int metrics_format(const struct metrics_snapshot *s, struct buf *out);

/* The media type of metrics_format's text. */
extern const char metrics_content_type[];

/* Which endpoint the request target names: its path (before '?') must
 * equal a configured path exactly; NULL paths are off. */
enum metrics_endpoint metrics_endpoint_of(const char *const paths[METRICS_ENDPOINT_COUNT],
                                          const char *target, size_t target_len);

/* What an endpoint answers to a request. */
struct metrics_answer {
    int status;  /* 200, 503 or 405 */
    int closing; /* Connection: close goes out; the connection ends */
};

/* Decides the answer: GET and HEAD get 200 (503 from the health endpoint
 * while draining), any other method 405. closing is set when the client
 * did not ask to keep the connection (keep_alive 0, also for the last
 * request the connection may carry), and when draining unless requests are
 * pipelined behind this one: those are answered first, the last of them
 * with the close. */
struct metrics_answer metrics_decide(enum metrics_endpoint endpoint, const char *method,
                                     int draining, int keep_alive, int pipelined);

/* Appends the whole response: a head with Content-Type, Content-Length,
 * Cache-Control: no-store, Connection (close, or keep-alive for an
 * HTTP/1.0 client), Allow for 405; then body unless the request is HEAD.
 * Returns 0, or -1 on ENOMEM. */
int metrics_response(struct buf *out, const struct metrics_answer *answer, int head_request,
                     int http_minor, const char *content_type, const char *body, size_t body_len);

/* The health endpoint's body. */
extern const char metrics_health_ok[], metrics_health_draining[];

#endif

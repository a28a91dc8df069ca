/* latency_client: keep-alive GET load that times every request.
 *
 *   latency_client PORT CONNECTIONS SECONDS THREADS PATH
 *
 * Each connection has one request in flight: it sends the next request as
 * soon as the last response is complete, and each request's latency runs
 * from just before its write to the read that completes its response. The
 * summary is one JSON line on stdout.
 *
 * Why not wrk's percentiles: on this 2-core machine wrk's mean latency
 * times its req/s came to several times the number of connections, which
 * no measurement of requests one at a time per connection can give
 * (Little's law); this client's figures satisfy it (RESULTS.md). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { BUCKET_US = 10, BUCKETS = 200000 }; /* 10 µs buckets up to 2 s */

struct connection {
    int fd;
    uint64_t sent_us;
    char in[16384];
    size_t have;
    long long body_left; /* of the response being read, once its head is in */
    int in_body;
};

struct thread_work {
    pthread_t thread;
    int port, connections, seconds;
    const char *request;
    uint64_t *histogram;
    uint64_t completed, errors;
};

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Length of the response head at the start of c->in, 0 while incomplete,
 * -1 when it has no Content-Length (not supported). Sets *body. */
static long response_head(const struct connection *c, long long *body)
{
    const char *end = memmem(c->in, c->have, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    *body = -1;
    for (const char *line = c->in; line < end;) {
        const char *next = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (next == NULL)
            next = end;
        if ((size_t)(next - line) > 15 && strncasecmp(line, "content-length:", 15) == 0)
            *body = strtoll(line + 15, NULL, 10);
        line = next + 2;
    }
    return *body < 0 ? -1 : (long)(end - c->in) + 4;
}

/* Drops the first n bytes of c->in. */
static void consume(struct connection *c, size_t n)
{
    memmove(c->in, c->in + n, c->have - n);
    c->have -= n;
}

static int send_request(struct thread_work *t, struct connection *c)
{
    size_t len = strlen(t->request);
    c->sent_us = now_us();
    return write(c->fd, t->request, len) == (ssize_t)len ? 0 : -1;
}

static int open_connection(struct thread_work *t, struct connection *c, int epoll_fd)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        connect(c->fd, (struct sockaddr *)&address, sizeof(address)) < 0)
        return -1;
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &event) < 0)
        return -1;
    return send_request(t, c);
}

/* Reads what arrived on c and times the responses it completes (their
 * bodies are dropped as they come). Returns 0, or -1 when the connection
 * failed or sent what this client cannot read. */
static int on_readable(struct thread_work *t, struct connection *c)
{
    ssize_t n = read(c->fd, c->in + c->have, sizeof(c->in) - c->have);
    if (n <= 0)
        return n < 0 && errno == EINTR ? 0 : -1;
    c->have += (size_t)n;
    for (;;) {
        if (!c->in_body) {
            long head = response_head(c, &c->body_left);
            if (head <= 0)
                return head < 0 || c->have == sizeof(c->in) ? -1 : 0;
            consume(c, (size_t)head);
            c->in_body = 1;
        }
        size_t take = c->have < (unsigned long long)c->body_left ? c->have : (size_t)c->body_left;
        consume(c, take);
        c->body_left -= (long long)take;
        if (c->body_left > 0)
            return 0;
        uint64_t bucket = (now_us() - c->sent_us) / BUCKET_US;
        t->histogram[bucket < BUCKETS ? bucket : BUCKETS - 1]++;
        t->completed++;
        c->in_body = 0;
        if (send_request(t, c) < 0)
            return -1;
    }
}

static void *run_thread(void *arg)
{
    struct thread_work *t = arg;
    struct connection *connections = calloc((size_t)t->connections, sizeof(*connections));
    int epoll_fd = epoll_create1(0);
    if (connections == NULL || epoll_fd < 0)
        goto fail;
    for (int i = 0; i < t->connections; i++)
        if (open_connection(t, &connections[i], epoll_fd) < 0)
            goto fail;
    uint64_t end = now_us() + (uint64_t)t->seconds * 1000000u;
    struct epoll_event events[64];
    while (now_us() < end) {
        int n = epoll_wait(epoll_fd, events, 64, 100);
        for (int i = 0; i < n; i++) {
            struct connection *c = events[i].data.ptr;
            if (on_readable(t, c) < 0) {
                t->errors++;
                epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
            }
        }
    }
    goto done;
fail:
    t->errors++;
done:
    if (connections != NULL)
        for (int i = 0; i < t->connections; i++)
            if (connections[i].fd > 0)
                close(connections[i].fd);
    free(connections);
    if (epoll_fd >= 0)
        close(epoll_fd);
    return NULL;
}

static uint64_t percentile_us(const uint64_t *histogram, uint64_t total, double p)
{
    uint64_t want = (uint64_t)((double)total * p / 100.0), seen = 0;
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < BUCKETS; i++) {
        seen += histogram[i];
        if (seen >= want)
            return (uint64_t)(i + 1) * BUCKET_US;
    }
    return (uint64_t)BUCKETS * BUCKET_US;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s PORT CONNECTIONS SECONDS THREADS PATH\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), connections = atoi(argv[2]), seconds = atoi(argv[3]);
    int threads = atoi(argv[4]);
    if (threads < 1 || threads > connections || threads > 64 || seconds < 1)
        return 2;
    char request[512];
    snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[5]);
    struct thread_work work[64];
    uint64_t *histogram = calloc(BUCKETS, sizeof(uint64_t));
    if (histogram == NULL)
        return 1;
    uint64_t started = now_us();
    for (int i = 0; i < threads; i++) {
        work[i] = (struct thread_work){
            .port = port,
            .connections = connections / threads + (i < connections % threads),
            .seconds = seconds,
            .request = request,
            .histogram = calloc(BUCKETS, sizeof(uint64_t)),
        };
        if (work[i].histogram == NULL ||
            pthread_create(&work[i].thread, NULL, run_thread, &work[i]))
            return 1;
    }
    uint64_t completed = 0, errors = 0, sum_us = 0, max_us = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(work[i].thread, NULL);
        completed += work[i].completed;
        errors += work[i].errors;
        for (unsigned b = 0; b < BUCKETS; b++) {
            histogram[b] += work[i].histogram[b];
            sum_us += work[i].histogram[b] * (b * BUCKET_US + BUCKET_US / 2);
            if (work[i].histogram[b])
                max_us = max_us > (b + 1) * BUCKET_US ? max_us : (uint64_t)(b + 1) * BUCKET_US;
        }
        free(work[i].histogram);
    }
    uint64_t elapsed = now_us() - started;
    printf("{\"requests\": %llu, \"errors\": %llu, \"duration_us\": %llu, \"mean_us\": %.1f, "
           "\"p50_us\": %llu, \"p99_us\": %llu, \"p999_us\": %llu, \"max_us\": %llu}\n",
           (unsigned long long)completed, (unsigned long long)errors, (unsigned long long)elapsed,
           completed ? (double)sum_us / (double)completed : 0.0,
           (unsigned long long)percentile_us(histogram, completed, 50),
           (unsigned long long)percentile_us(histogram, completed, 99),
           (unsigned long long)percentile_us(histogram, completed, 99.9),
           (unsigned long long)max_us);
    free(histogram);
    return completed > 0 && errors == 0 ? 0 : 1;
}

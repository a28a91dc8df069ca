/* The dict of pyruvate.stats(), from a metrics snapshot. */
#include "pyruvate/stats.h"

#include <math.h>

static PyObject *histogram_dict(const struct metrics_histogram_snapshot *h)
{
    PyObject *buckets = PyList_New(METRICS_BUCKET_COUNT);
    if (buckets == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < METRICS_BUCKET_COUNT; i++) {
        double bound =
            i < METRICS_BUCKET_COUNT - 1 ? (double)metrics_bucket_bounds_us[i] / 1e6 : INFINITY;
        PyObject *pair = Py_BuildValue("(dK)", bound, (unsigned long long)h->buckets[i]);
        if (pair == NULL) {
            Py_DECREF(buckets);
            return NULL;
        }
        PyList_SET_ITEM(buckets, i, pair);
    }
    return Py_BuildValue("{s:N,s:d,s:K}", "buckets", buckets, "sum", (double)h->sum_us / 1e6,
                         "count", (unsigned long long)h->buckets[METRICS_BUCKET_COUNT - 1]);
}

static PyObject *server_codes_dict(const struct metrics_snapshot *s)
{
    PyObject *codes = PyDict_New();
    for (unsigned i = 0; codes && i < METRICS_SERVER_CODE_COUNT; i++) {
        PyObject *code = PyLong_FromLong(metrics_server_codes[i]);
        PyObject *count = PyLong_FromUnsignedLongLong(s->server_codes[i]);
        if (code == NULL || count == NULL || PyDict_SetItem(codes, code, count) < 0)
            Py_CLEAR(codes);
        Py_XDECREF(code);
        Py_XDECREF(count);
    }
    return codes;
}

PyObject *stats_dict(const struct metrics_snapshot *s)
{
    PyObject *requests = Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K}", "1xx", (unsigned long long)s->status_classes[0], "2xx",
        (unsigned long long)s->status_classes[1], "3xx", (unsigned long long)s->status_classes[2],
        "4xx", (unsigned long long)s->status_classes[3], "5xx",
        (unsigned long long)s->status_classes[4]);
    PyObject *endpoints = Py_BuildValue(
        "{s:K,s:K}", "health", (unsigned long long)s->endpoint_requests[METRICS_HEALTH], "metrics",
        (unsigned long long)s->endpoint_requests[METRICS_EXPOSITION]);
    PyObject *codes = server_codes_dict(s);
    PyObject *queue_wait = histogram_dict(&s->queue_wait);
    PyObject *duration = histogram_dict(&s->duration);
    if (!requests || !endpoints || !codes || !queue_wait || !duration)
        goto fail;
    /* N: the dict takes these references, also when building it fails. */
    return Py_BuildValue("{s:N,s:N,s:N,s:K,s:K,s:K,s:I,s:I,s:I,s:I,s:I,s:O,s:N,s:N}", "requests",
                         requests, "server_responses", codes, "endpoint_requests", endpoints,
                         "requests_in_flight", (unsigned long long)s->requests_in_flight,
                         "received_bytes", (unsigned long long)s->bytes_in, "sent_bytes",
                         (unsigned long long)s->bytes_out, "queue_depth", s->queue_depth,
                         "busy_workers", s->busy_workers, "idle_workers", s->idle_workers,
                         "open_connections", s->open_connections, "idle_connections",
                         s->idle_connections, "draining", s->draining ? Py_True : Py_False,
                         "queue_wait_seconds", queue_wait, "request_duration_seconds", duration);
fail:
    Py_XDECREF(requests);
    Py_XDECREF(endpoints);
    Py_XDECREF(codes);
    Py_XDECREF(queue_wait);
    Py_XDECREF(duration);
    return NULL;
}

/* pyruvate.stats(): a metrics snapshot as a dict. Needs the GIL. */
#ifndef PYRUVATE_STATS_H
#define PYRUVATE_STATS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/metrics.h"

/* The snapshot as the dict that pyruvate.stats() returns (README, "Health
 * and metrics"): the names of the Prometheus families without the
 * pyruvate_ prefix and the _total suffix; histograms as a dict of
 * "buckets" (a list of (upper bound in seconds, cumulative count), the
 * last bound inf), "sum" (seconds) and "count". A new reference, or NULL
 * with an exception set. */
PyObject *stats_dict(const struct metrics_snapshot *s);

#endif

/*
 * Prometheus metrics (metrics.c). Counters are atomics: any thread adds to
 * them, GET /metrics renders them with the gauges its caller reads.
 */
#ifndef SQD_METRICS_H
#define SQD_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

#define SQD_HIST_BUCKETS 12

struct sqd_route; /* request.h: the rows of the route table label the request counters */

struct sqd_metrics {
    atomic_uint_fast64_t *requests; /* [route][status slot] */
    size_t nroutes;
    const struct sqd_route *routes; /* the route table (borrowed), nroutes_table rows */
    size_t nroutes_table;
    atomic_uint_fast64_t bytes_in, bytes_out;
    atomic_int_fast64_t in_flight;
    atomic_uint_fast64_t jobs_finished[SQD_STATES];
    atomic_uint_fast64_t tensors, weights;
    atomic_uint_fast64_t hist[SQD_HIST_BUCKETS + 1];
    atomic_uint_fast64_t hist_sum_us;
    atomic_uint_fast64_t rejected; /* 503 for a full queue */
};

/* Counters for the `nroutes` rows of `routes` (borrowed: the table outlives the metrics). */
bool sqd_metrics_init(struct sqd_metrics *m, const struct sqd_route *routes, size_t nroutes);
void sqd_metrics_free(struct sqd_metrics *m);
void sqd_metrics_request(struct sqd_metrics *m, size_t route, unsigned status);
void sqd_metrics_quantized(struct sqd_metrics *m, double seconds, uint64_t tensors,
                           uint64_t weights);

/* What the exposition shows besides the counters, read by the caller when it renders. */
struct sqd_gauges {
    size_t queued, running;            /* jobs waiting to start, and running */
    uint64_t conns_timed_out, evicted; /* connections closed by a deadline, for the reserve */
    unsigned threads;                  /* the worker pool */
    bool draining;
};

/* The Prometheus text exposition (malloc'ed, caller frees); `reg` gives the async job counts. */
char *sqd_metrics_render(struct sqd_metrics *m, const struct sqd_gauges *g,
                         struct sqd_registry *reg, size_t *len);

#endif

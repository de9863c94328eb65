/*
 * Prometheus metrics. Counters are atomics that any thread bumps; the text
 * exposition is rendered on demand by GET /metrics.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "registry.h"
#include "request.h"
#include "util.h"

/* The HTTP statuses the daemon answers with; anything else lands in "other". */
static const unsigned status_slots[] = {200, 202, 204, 400, 401, 404, 405,
                                        406, 409, 413, 415, 422, 500, 503};
#define NSLOTS (sizeof(status_slots) / sizeof(status_slots[0]) + 1)

/* Upper bounds of the quantization-seconds histogram (the last bucket is +Inf). */
static const double hist_bounds[SQD_HIST_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,   1,    2.5,   10,   60};

bool sqd_metrics_init(struct sqd_metrics *m, const struct sqd_route *routes, size_t nroutes)
{
    memset(m, 0, sizeof(*m));
    m->routes = routes;
    m->nroutes_table = nroutes;
    m->nroutes = 2 * nroutes + 1; /* routes, other methods on their paths (405), unmatched */
    m->requests = calloc(m->nroutes * NSLOTS, sizeof(*m->requests));
    return m->requests != NULL;
}

void sqd_metrics_free(struct sqd_metrics *m)
{
    free(m->requests);
    m->requests = NULL;
}

void sqd_metrics_request(struct sqd_metrics *m, size_t route, unsigned status)
{
    size_t slot = NSLOTS - 1;
    for (size_t i = 0; i + 1 < NSLOTS; i++) {
        if (status_slots[i] == status) {
            slot = i;
            break;
        }
    }
    if (route >= m->nroutes)
        route = m->nroutes - 1;
    atomic_fetch_add(&m->requests[route * NSLOTS + slot], 1);
}

void sqd_metrics_quantized(struct sqd_metrics *m, double seconds, uint64_t tensors,
                           uint64_t weights)
{
    size_t b = 0;
    while (b < SQD_HIST_BUCKETS && seconds > hist_bounds[b])
        b++;
    atomic_fetch_add(&m->hist[b], 1);
    atomic_fetch_add(&m->hist_sum_us, (uint64_t)(seconds * 1e6));
    atomic_fetch_add(&m->tensors, tensors);
    atomic_fetch_add(&m->weights, weights);
}

char *sqd_metrics_render(struct sqd_metrics *m, const struct sqd_gauges *g,
                         struct sqd_registry *reg, size_t *len)
{
    struct sqi_buf b;
    sqi_buf_init(&b, 1 << 20);
    size_t nroutes = m->nroutes_table;
    const struct sqd_route *routes = m->routes;

    sqi_buf_printf(&b, "# HELP squantd_requests_total HTTP requests answered, by route, "
                       "method and status.\n# TYPE squantd_requests_total counter\n");
    for (size_t r = 0; r < m->nroutes; r++) {
        const char *path = r < 2 * nroutes ? routes[r % nroutes].path : "unmatched";
        const char *method = r < nroutes ? routes[r].method : r < 2 * nroutes ? "other" : "";
        for (size_t s = 0; s < NSLOTS; s++) {
            uint64_t v = atomic_load(&m->requests[r * NSLOTS + s]);
            if (!v)
                continue;
            char code[16];
            if (s + 1 < NSLOTS)
                snprintf(code, sizeof(code), "%u", status_slots[s]);
            else
                snprintf(code, sizeof(code), "other");
            sqi_buf_printf(
                &b,
                "squantd_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %" PRIu64 "\n",
                path, method, code, v);
        }
    }
    sqi_buf_printf(&b,
                   "# HELP squantd_request_bytes_total Request body bytes received.\n"
                   "# TYPE squantd_request_bytes_total counter\n"
                   "squantd_request_bytes_total %" PRIu64 "\n"
                   "# HELP squantd_response_bytes_total Response body bytes queued.\n"
                   "# TYPE squantd_response_bytes_total counter\n"
                   "squantd_response_bytes_total %" PRIu64 "\n"
                   "# HELP squantd_requests_in_flight Requests received and not yet completed.\n"
                   "# TYPE squantd_requests_in_flight gauge\n"
                   "squantd_requests_in_flight %" PRId64 "\n",
                   (uint64_t)atomic_load(&m->bytes_in), (uint64_t)atomic_load(&m->bytes_out),
                   (int64_t)atomic_load(&m->in_flight));
    sqi_buf_printf(&b,
                   "# HELP squantd_queue_depth Jobs admitted and waiting to start.\n"
                   "# TYPE squantd_queue_depth gauge\n"
                   "squantd_queue_depth %zu\n"
                   "# HELP squantd_jobs_running Jobs being parsed, quantized or written.\n"
                   "# TYPE squantd_jobs_running gauge\n"
                   "squantd_jobs_running %zu\n"
                   "# HELP squantd_queue_rejected_total Requests refused with 503 because the "
                   "queue was full.\n"
                   "# TYPE squantd_queue_rejected_total counter\n"
                   "squantd_queue_rejected_total %" PRIu64 "\n",
                   g->queued, g->running, (uint64_t)atomic_load(&m->rejected));
    sqi_buf_printf(&b,
                   "# HELP squantd_connections_closed_total Connections the daemon closed to "
                   "protect the others: past header-timeout or under min-body-rate (deadline), "
                   "or the oldest still sending headers when slots ran short (reserve).\n"
                   "# TYPE squantd_connections_closed_total counter\n"
                   "squantd_connections_closed_total{reason=\"deadline\"} %" PRIu64 "\n"
                   "squantd_connections_closed_total{reason=\"reserve\"} %" PRIu64 "\n",
                   g->conns_timed_out, g->evicted);
    sqi_buf_printf(&b, "# HELP squantd_jobs_total Jobs (sync and async) that ended, by final "
                       "state.\n# TYPE squantd_jobs_total counter\n");
    for (int s = SQD_DONE; s < SQD_STATES; s++)
        sqi_buf_printf(&b, "squantd_jobs_total{state=\"%s\"} %" PRIu64 "\n",
                       sqd_state_name((enum sqd_job_state)s),
                       (uint64_t)atomic_load(&m->jobs_finished[s]));
    sqi_buf_printf(&b, "# HELP squantd_async_jobs Async jobs remembered, by state.\n"
                       "# TYPE squantd_async_jobs gauge\n");
    for (int s = 0; s < SQD_STATES; s++)
        sqi_buf_printf(&b, "squantd_async_jobs{state=\"%s\"} %zu\n",
                       sqd_state_name((enum sqd_job_state)s),
                       sqd_reg_count(reg, (enum sqd_job_state)s));
    sqi_buf_printf(&b,
                   "# HELP squantd_tensors_quantized_total Tensors quantized.\n"
                   "# TYPE squantd_tensors_quantized_total counter\n"
                   "squantd_tensors_quantized_total %" PRIu64 "\n"
                   "# HELP squantd_weights_quantized_total Weights quantized.\n"
                   "# TYPE squantd_weights_quantized_total counter\n"
                   "squantd_weights_quantized_total %" PRIu64 "\n",
                   (uint64_t)atomic_load(&m->tensors), (uint64_t)atomic_load(&m->weights));
    sqi_buf_printf(&b, "# HELP squantd_quantize_seconds Time from a job's start to its result, "
                       "per request.\n# TYPE squantd_quantize_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i <= SQD_HIST_BUCKETS; i++) {
        cum += atomic_load(&m->hist[i]);
        if (i < SQD_HIST_BUCKETS)
            sqi_buf_printf(&b, "squantd_quantize_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                           hist_bounds[i], cum);
        else
            sqi_buf_printf(&b, "squantd_quantize_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    sqi_buf_printf(&b,
                   "squantd_quantize_seconds_sum %.6f\n"
                   "squantd_quantize_seconds_count %" PRIu64 "\n"
                   "# HELP squantd_worker_threads Size of the worker pool.\n"
                   "# TYPE squantd_worker_threads gauge\n"
                   "squantd_worker_threads %u\n"
                   "# HELP squantd_draining 1 while the daemon shuts down.\n"
                   "# TYPE squantd_draining gauge\n"
                   "squantd_draining %d\n",
                   (double)atomic_load(&m->hist_sum_us) / 1e6, cum, g->threads,
                   g->draining ? 1 : 0);
    if (b.len == 0 || b.data == NULL)
        return NULL;
    return (char *)sqi_buf_take(&b, len);
}

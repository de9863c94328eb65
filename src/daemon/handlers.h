/* The answers of the routes that need no job (handlers.c). */
#ifndef SQD_HANDLERS_H
#define SQD_HANDLERS_H

#include <stdbool.h>

#include "registry.h"
#include "request.h"

void sqd_h_healthz(struct sqd_request *req);
void sqd_h_readyz(struct sqd_request *req);
void sqd_h_info(struct sqd_request *req);
void sqd_h_metrics(struct sqd_request *req);
void sqd_h_job_get(struct sqd_request *req);
void sqd_h_job_delete(struct sqd_request *req);
void sqd_h_job_result(struct sqd_request *req);
void sqd_h_jobs_list(struct sqd_request *req);
void sqd_h_job_report(struct sqd_request *req);
/*
 * Whether the caller of `req` may see job `rec` (caller holds the registry lock): the
 * one place every job endpoint asks. A job created with auth on belongs to
 * its token's owner id (rec->owner); one created without, to every caller.
 */
bool sqd_job_visible(const struct sqd_request *req, const struct sqd_jobrec *rec);

/* GET /v1/jobs paging: default and largest `limit`. */
#define SQD_JOBS_PAGE_DEFAULT 20
#define SQD_JOBS_PAGE_MAX 100

#endif

/* Receiving a model: POST /v1/quantize and POST /v1/jobs (upload.c). */
#ifndef SQD_UPLOAD_H
#define SQD_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"

/* First call (headers complete): set up the sink and the parameters. False = answered. */
bool sqd_upload_begin(struct sqd_request *req);
/* A chunk of body. False = abort the connection (answer impossible mid-body). */
bool sqd_upload_data(struct sqd_request *req, const char *data, size_t size);
/* The body is complete: turn it into a job (or answer an error). */
void sqd_upload_end(struct sqd_request *req);
void sqd_upload_free(struct sqd_request *req);
/* 406 not_acceptable: nothing in Accept is a format we write. */
void sqd_respond_not_acceptable(struct sqd_request *req);
/* POST /v1/quantize, body complete: run it as a sync job on a suspended connection. */
void sqd_h_quantize(struct sqd_request *req);
/* POST /v1/jobs, body complete: make the job durable, then answer 202. */
void sqd_h_jobs_post(struct sqd_request *req);

#endif

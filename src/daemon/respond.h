/* Answers: a request's response with the headers every answer carries (respond.c). */
#ifndef SQD_RESPOND_H
#define SQD_RESPOND_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <squant/squant.h>

#include "log.h"
#include "request.h"

/* Queue an answer; `body` (malloc'ed, may be NULL) is handed to MHD, which frees it. */
void sqd_respond(struct sqd_request *req, unsigned status, const char *content_type, void *body,
                 size_t len);
/* Answer with a JSON document (consumed). */
void sqd_respond_jsonv(struct sqd_request *req, unsigned status, json_t *doc);
void sqd_respond_error(struct sqd_request *req, unsigned status, const char *code, const char *fmt,
                       ...) SQD_PRINTF(4, 5);
/* An error answer with a ready message, `where` (may be NULL) and extra headers (as below). */
void sqd_respond_error_headers(struct sqd_request *req, unsigned status, const char *code,
                               const char *msg, const struct sq_error *where,
                               const char *const *headers);
void sqd_respond_sq(struct sqd_request *req, const struct sq_error *err);
/* Queue an answer with extra headers (NULL-terminated name/value list). */
void sqd_respond_headers(struct sqd_request *req, unsigned status, const char *content_type,
                         void *body, size_t len, const char *const *headers);
/* Answer with bytes that outlive the daemon (embedded files): not copied, not freed. */
void sqd_respond_static(struct sqd_request *req, unsigned status, const char *content_type,
                        const void *body, size_t len, const char *const *headers);
/* Answer from an open file (taken over). */
void sqd_respond_fd(struct sqd_request *req, unsigned status, const char *content_type, int fd,
                    uint64_t size);
/* The same from `offset` of the file, with extra headers as sqd_respond_headers. */
void sqd_respond_fd_at(struct sqd_request *req, unsigned status, const char *content_type, int fd,
                       uint64_t offset, uint64_t size, const char *const *headers);

#endif

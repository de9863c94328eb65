/* What a quantize request asks for: parameters, content types, Accept (spec.c). */
#ifndef SQD_SPEC_H
#define SQD_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <squant/squant.h>

/* An option as it came in: key and value text for sq_options_set. */
struct sqd_kv {
    char *key;
    char *value;
};

/*
 * What a quantize request asks for, besides the weights: how to read the
 * body and the options. It is all a spooled job needs to run again after
 * a restart (spool.c stores it as request.json).
 */
/* A multipart part kept as a slice of the body: an ONNX model's external data. */
struct sqd_part {
    char *name; /* owned: the part's name, the location the model refers to */
    uint64_t off, len;
};

struct sqd_spec {
    enum sq_format input; /* AUTO (detect), RAW, NPY, SAFETENSORS or ONNX */
    bool have_dtype;
    enum sq_dtype dtype;
    unsigned rank; /* 0 = no shape given */
    int64_t shape[SQ_MAX_RANK];
    char *name;          /* tensor name for raw and npy input (NULL = "weight") */
    struct sqd_kv *opts; /* in order; passed to sq_options_set */
    size_t nopts;
    bool have_format; /* a `format` option was given */
    bool octet;       /* sent as application/octet-stream: say so if it is no known format */
    /* multipart with file parts besides "model": the model is a slice of the body too */
    bool sliced;
    uint64_t model_off, model_len;
    struct sqd_part *parts;
    size_t nparts;
    struct sq_external *ext; /* owned: the parts as sq_onnx_parse takes them (sqd_spec_parse) */
};
/* Record a file part: `name` starts at body offset `off`. SQ_ERR_ARG/LIMIT with a message. */
enum sq_status sqd_spec_add_part(struct sqd_spec *s, const char *name, uint64_t off,
                                 struct sq_error *err);

void sqd_spec_init(struct sqd_spec *s);
void sqd_spec_free(struct sqd_spec *s);
/*
 * Add one request parameter: dtype, shape and name describe the input, any
 * other key is an option (checked by sq_options_set later). SQ_ERR_ARG with
 * a message for a bad value.
 */
enum sq_status sqd_spec_param(struct sqd_spec *s, const char *key, const char *value,
                              struct sq_error *err);
/* Parameters from a JSON object (the multipart "options" part). */
enum sq_status sqd_spec_json(struct sqd_spec *s, const char *text, size_t len,
                             struct sq_error *err);
/* Input format from a Content-Type (media type only, parameters ignored). */
enum sqd_ctype {
    SQD_CT_NONE,
    SQD_CT_NPY,
    SQD_CT_SAFETENSORS,
    SQD_CT_ONNX,
    SQD_CT_RAW,
    SQD_CT_MULTIPART,
    SQD_CT_OTHER,
    SQD_CT_UNSUPPORTED
};
enum sqd_ctype sqd_ctype_parse(const char *content_type);
/*
 * The output format an Accept header prefers, by q-value: AUTO when it has
 * no preference (absent, or a wildcard that admits the default). False when
 * none of the formats we write is acceptable (406).
 */
bool sqd_accept_format(const char *accept, enum sq_format *out);
/* Whether Accept admits format f (true without an Accept). */
bool sqd_accept_allows(const char *accept, enum sq_format f);
const char *sqd_format_mime(enum sq_format f);
/*
 * Build the sq_options of a spec (caller-initialized `opt`, freed by the
 * caller) and check that the input description is consistent.
 */
enum sq_status sqd_spec_options(const struct sqd_spec *s, struct sq_options *opt,
                                struct sq_error *err);
/* Parse the model bytes as the spec says. `model` is initialized by the caller. */
enum sq_status sqd_spec_parse(struct sqd_spec *s, const struct sq_limits *limits,
                              const uint8_t *data, size_t len, struct sq_model *model,
                              struct sq_error *err);
json_t *sqd_spec_to_json(const struct sqd_spec *s);
enum sq_status sqd_spec_from_json(struct sqd_spec *s, json_t *j, struct sq_error *err);

#endif

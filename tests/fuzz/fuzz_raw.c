/*
 * Fuzz harness for raw blobs (application/octet-stream with dtype and
 * shape): the first bytes choose the dtype and shape, the rest is the
 * body, parsed as sqd_spec_parse does for a request. Properties: a failure
 * leaves no tensor and a message; a success is one tensor whose bytes are
 * exactly the body.
 */
#include <string.h>

#include "fuzz.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const char *const dtypes[] = {"F32", "F16", "BF16", "F64", "I8", "U8", "X"};
    struct sqd_spec s;
    sqd_spec_init(&s);
    struct sq_error e;
    sq_error_init(&e);
    unsigned rank = data[1] % 5;
    if (size < 2 + 2 * (size_t)rank)
        return 0;
    char shape[64] = "";
    size_t o = 0;
    for (unsigned d = 0; d < rank; d++) {
        unsigned v = (unsigned)data[2 + 2 * d] | (unsigned)data[3 + 2 * d] << 8;
        o += (size_t)snprintf(shape + o, sizeof(shape) - o, "%s%u", d ? "," : "", v);
    }
    const uint8_t *body = data + 2 + 2 * rank;
    size_t len = size - 2 - 2 * rank;
    enum sq_status st = sqd_spec_param(&s, "dtype", dtypes[data[0] % 7], &e);
    if (st == SQ_OK && rank)
        st = sqd_spec_param(&s, "shape", shape, &e);
    if (st != SQ_OK) {
        FUZZ_CHECK(e.message[0] != '\0');
        sqd_spec_free(&s);
        return 0;
    }
    s.input = SQ_FORMAT_RAW;
    struct sq_limits lim;
    sq_limits_init(&lim);
    struct sq_model m;
    sq_model_init(&m);
    st = sqd_spec_parse(&s, &lim, body, len, &m, &e);
    if (st != SQ_OK) {
        FUZZ_CHECK(m.count == 0 && e.status == st && e.message[0] != '\0');
    } else {
        FUZZ_CHECK(m.count == 1 && m.tensors[0].nbytes == len);
        FUZZ_CHECK(len == 0 || memcmp(m.tensors[0].data, body, len) == 0);
    }
    sq_model_free(&m);
    sqd_spec_free(&s);
    return 0;
}

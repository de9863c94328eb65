/*
 * Fuzz harness for sq_npy_parse. Properties: a failure leaves the model
 * empty with a message; a success converts every float element, writes
 * back as .npy and parses again to the same tensor.
 */
#include <string.h>

#include <squant/squant.h>

#include "fuzz.h"

static void convert_all(const struct sq_tensor *t)
{
    float buf[256];
    if (!sq_dtype_is_quantizable(t->dtype))
        return;
    for (size_t i = 0; i < t->nelems; i += 256) {
        size_t n = t->nelems - i < 256 ? t->nelems - i : 256;
        sq_tensor_to_f32(t, i, n, buf);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sq_limits lim;
    sq_limits_init(&lim);
    struct sq_model m, m2;
    struct sq_error e;
    sq_model_init(&m);
    sq_model_init(&m2);
    sq_error_init(&e);
    enum sq_status st = sq_npy_parse(data, size, &lim, "fuzz", &m, &e);
    if (st != SQ_OK) {
        FUZZ_CHECK(m.count == 0 && m.meta_count == 0);
        FUZZ_CHECK(e.status == st && e.message[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(m.count == 1);
    const struct sq_tensor *t = &m.tensors[0];
    FUZZ_CHECK(t->nbytes == t->nelems * sq_dtype_size(t->dtype) && t->nbytes <= size);
    convert_all(t);

    uint8_t *out = NULL;
    size_t len = 0;
    st = sq_npy_write(t, SIZE_MAX, &out, &len, &e);
    FUZZ_CHECK(st == SQ_OK);
    FUZZ_CHECK(len % 64 == 0 || t->nbytes % 64 != 0);
    st = sq_npy_parse(out, len, &lim, "fuzz", &m2, &e);
    FUZZ_CHECK(st == SQ_OK);
    const struct sq_tensor *u = &m2.tensors[0];
    FUZZ_CHECK(u->dtype == t->dtype && u->rank == t->rank && u->nbytes == t->nbytes);
    FUZZ_CHECK(memcmp(u->shape, t->shape, t->rank * sizeof t->shape[0]) == 0);
    FUZZ_CHECK(t->nbytes == 0 || memcmp(u->data, t->data, t->nbytes) == 0);
    free(out);
    sq_model_free(&m2);
    sq_model_free(&m);
    return 0;
}

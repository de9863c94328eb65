/*
 * Fuzz harness for sq_safetensors_parse. Properties: a failure leaves the
 * model empty with a message; a success converts every float element, and
 * write -> parse -> write gives the same tensors and identical bytes.
 */
#include <string.h>

#include <squant/squant.h>

#include "fuzz.h"

static void convert_all(const struct sq_model *m)
{
    float buf[256];
    for (size_t k = 0; k < m->count; k++) {
        const struct sq_tensor *t = &m->tensors[k];
        if (!sq_dtype_is_quantizable(t->dtype))
            continue;
        for (size_t i = 0; i < t->nelems; i += 256) {
            size_t n = t->nelems - i < 256 ? t->nelems - i : 256;
            sq_tensor_to_f32(t, i, n, buf);
        }
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
    (void)sq_format_detect(data, size);
    enum sq_status st = sq_safetensors_parse(data, size, &lim, &m, &e);
    if (st != SQ_OK) {
        FUZZ_CHECK(m.count == 0 && m.meta_count == 0);
        FUZZ_CHECK(e.status == st && e.message[0] != '\0');
        return 0;
    }
    size_t total = 0;
    for (size_t k = 0; k < m.count; k++) {
        const struct sq_tensor *t = &m.tensors[k];
        FUZZ_CHECK(t->nbytes == t->nelems * sq_dtype_size(t->dtype));
        FUZZ_CHECK(t->nbytes == 0 || (t->data >= data && t->data + t->nbytes <= data + size));
        total += t->nbytes;
    }
    FUZZ_CHECK(total <= size);
    convert_all(&m);

    uint8_t *out = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    FUZZ_CHECK(sq_safetensors_write(&m, SIZE_MAX, &out, &len, &e) == SQ_OK);
    FUZZ_CHECK(sq_safetensors_parse(out, len, &lim, &m2, &e) == SQ_OK);
    FUZZ_CHECK(m2.count == m.count && m2.meta_count == m.meta_count);
    for (size_t k = 0; k < m.count; k++) {
        const struct sq_tensor *t = &m.tensors[k], *u = &m2.tensors[k];
        FUZZ_CHECK(strcmp(t->name, u->name) == 0 && t->dtype == u->dtype && t->rank == u->rank);
        FUZZ_CHECK(memcmp(t->shape, u->shape, t->rank * sizeof t->shape[0]) == 0);
        FUZZ_CHECK(t->nbytes == u->nbytes);
        FUZZ_CHECK(t->nbytes == 0 || memcmp(t->data, u->data, t->nbytes) == 0);
    }
    for (size_t k = 0; k < m.meta_count; k++)
        FUZZ_CHECK(strcmp(m.meta[k].key, m2.meta[k].key) == 0 &&
                   strcmp(m.meta[k].value, m2.meta[k].value) == 0);
    FUZZ_CHECK(sq_safetensors_write(&m2, SIZE_MAX, &again, &len2, &e) == SQ_OK);
    FUZZ_CHECK(len2 == len && memcmp(out, again, len) == 0);
    free(again);
    free(out);
    sq_model_free(&m2);
    sq_model_free(&m);
    return 0;
}

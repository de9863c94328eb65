/*
 * Allocation failure injection, in the spirit of jansson's test_chaos.c:
 * make the nth allocation fail, for n = 0, 1, 2, ... until the operation
 * succeeds, and check each time for a clean SQ_ERR_NOMEM, an empty model
 * and (under ASan) no leak.
 *
 * The hook lives in this program only: tests/unit/Makefile.inc links it
 * with -Wl,--wrap=malloc,--wrap=realloc,--wrap=calloc, so every malloc
 * call in the objects linked here (libsquant's convenience libraries
 * included) goes through the wrappers below; jansson, a shared library,
 * gets them through json_set_alloc_funcs. The library has no global state
 * for it.
 */
#include <jansson.h>

#include "sqtest.h"

void *__real_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_calloc(size_t k, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_calloc(size_t k, size_t n);

static long countdown = -1; /* allocations to allow before the failing one; -1: none fails */
static long calls;          /* allocations since arm() */

static bool fail_now(void)
{
    if (countdown < 0)
        return false;
    calls++;
    if (countdown-- == 0) {
        countdown = -1; /* fail once, as jansson's test_chaos does */
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __real_realloc(p, n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    return fail_now() ? NULL : __real_calloc(k, n);
}

/*
 * jansson's lexer reports some failed allocations as a syntax error ("string
 * or '}' expected"), so a parse whose failing allocation was jansson's may
 * end in SQ_ERR_FORMAT instead of SQ_ERR_NOMEM, and it gets over others by
 * itself. Either way the result must be clean.
 */
static bool failed_in_jansson;

static void *jansson_malloc(size_t n)
{
    long before = countdown;
    void *p = __wrap_malloc(n);
    if (!p && before == 0)
        failed_in_jansson = true;
    return p;
}

static void arm(long n)
{
    failed_in_jansson = false;
    calls = 0;
    countdown = n;
}

static void disarm(void)
{
    countdown = -1;
}

/* ------------------------------------------------------------------ operations */

struct op {
    const uint8_t *in;
    size_t in_len;
    struct sq_model model; /* parsed into, or written from */
    uint8_t *out;
    size_t out_len;
};

typedef enum sq_status (*op_fn)(struct op *o, struct sq_error *err);

/*
 * Run `fn` with the nth allocation failing, n = 0, 1, ... until it
 * succeeds without a failure injected. Returns how many allocations the
 * successful run made.
 */
static long chaos(op_fn fn, struct op *o, bool parses)
{
    for (long n = 0; n < 100000; n++) {
        struct sq_error err;
        sq_error_init(&err);
        if (parses)
            sq_model_init(&o->model);
        o->out = NULL;
        arm(n);
        enum sq_status st = fn(o, &err);
        long made = calls;
        disarm();
        if (made <= n) { /* nothing failed */
            ck_assert_msg(st == SQ_OK, "n=%ld: %s: %s", n, sq_status_name(st), err.message);
            return made;
        }
        if (st == SQ_OK && failed_in_jansson) { /* jansson recovered on its own */
            if (parses)
                sq_model_free(&o->model);
            free(o->out);
            continue;
        }
        ck_assert_msg(st == SQ_ERR_NOMEM || (failed_in_jansson && st == SQ_ERR_FORMAT),
                      "allocation %ld failed, but status is %s: %s", n, sq_status_name(st),
                      err.message);
        ck_assert_int_eq(err.status, st);
        ck_assert_ptr_null(o->out);
        if (parses) {
            ck_assert_uint_eq(o->model.count, 0);
            ck_assert_uint_eq(o->model.meta_count, 0);
            sq_model_free(&o->model);
        }
    }
    ck_abort_msg("never succeeded");
    return 0;
}

static enum sq_status op_npy_parse(struct op *o, struct sq_error *err)
{
    return sq_npy_parse(o->in, o->in_len, NULL, "w", &o->model, err);
}

static enum sq_status op_safetensors_parse(struct op *o, struct sq_error *err)
{
    return sq_safetensors_parse(o->in, o->in_len, NULL, &o->model, err);
}

static enum sq_status op_raw_parse(struct op *o, struct sq_error *err)
{
    return sq_raw_parse(o->in, o->in_len, SQ_DTYPE_F32, 2, (int64_t[]){2, 2}, NULL, "r", &o->model,
                        err);
}

static enum sq_status op_safetensors_write(struct op *o, struct sq_error *err)
{
    return sq_safetensors_write(&o->model, SIZE_MAX, &o->out, &o->out_len, err);
}

static enum sq_status op_npy_write(struct op *o, struct sq_error *err)
{
    return sq_npy_write(&o->model.tensors[0], SIZE_MAX, &o->out, &o->out_len, err);
}

static enum sq_status op_build(struct op *o, struct sq_error *err)
{
    static const float w[4] = {1, 2, 3, 4};
    char name[16];
    enum sq_status st = SQ_OK;
    for (int i = 0; i < 20 && st == SQ_OK; i++) {
        snprintf(name, sizeof name, "t%d", i);
        st = sq_model_add(&o->model, name, SQ_DTYPE_F32, 1, (int64_t[]){4}, w, 16, false, err);
        if (st == SQ_OK)
            st = sq_model_set_meta(&o->model, name, "v", err);
    }
    if (st == SQ_OK)
        st = sq_model_set_meta(&o->model, "t3", "replaced", err);
    if (st != SQ_OK) {
        sq_model_free(&o->model); /* what a caller does with a half-built model */
    }
    return st;
}

/* ------------------------------------------------------------------ tests */

static void setup(void)
{
    json_set_alloc_funcs(jansson_malloc, free);
}

START_TEST(test_npy_parse)
{
    const char hdr[] = "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }  \n";
    size_t len;
    uint8_t *f = sqt_npy(1, hdr, "\x3f\x80\0\0\x40\0\0\0\x40\x40\0\0\x40\x80\0\0", 16, &len);
    struct op o = {.in = f, .in_len = len};
    ck_assert_int_ge(chaos(op_npy_parse, &o, true), 3);
    ck_assert_ptr_nonnull(o.model.tensors[0].owned);
    sq_model_free(&o.model);
    free(f);
}
END_TEST

static const char st_json[] =
    "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"a longer value to make jansson grow its "
    "string buffer more than once, to be sure\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
    "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[16,20]},"
    "\"c\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[20,21]}}";

START_TEST(test_safetensors_parse)
{
    static const uint8_t data[21];
    size_t len;
    uint8_t *f = sqt_safetensors(st_json, data, sizeof data, &len);
    struct op o = {.in = f, .in_len = len};
    ck_assert_int_ge(chaos(op_safetensors_parse, &o, true), 10);
    ck_assert_uint_eq(o.model.count, 3);
    ck_assert_uint_eq(o.model.meta_count, 2);
    sq_model_free(&o.model);
    free(f);
}
END_TEST

START_TEST(test_raw_parse)
{
    static const uint8_t data[16];
    struct op o = {.in = data, .in_len = 16};
    ck_assert_int_ge(chaos(op_raw_parse, &o, true), 2);
    sq_model_free(&o.model);
}
END_TEST

START_TEST(test_writers)
{
    static const uint8_t data[21];
    size_t len;
    uint8_t *f = sqt_safetensors(st_json, data, sizeof data, &len);
    struct op o = {.in = f, .in_len = len};
    struct sq_error err;
    sq_model_init(&o.model);
    CHECK_OK(sq_safetensors_parse(f, len, NULL, &o.model, &err), &err);
    ck_assert_int_ge(chaos(op_safetensors_write, &o, false), 5);
    free(o.out);
    ck_assert_int_ge(chaos(op_npy_write, &o, false), 1);
    free(o.out);
    sq_model_free(&o.model);
    free(f);
}
END_TEST

START_TEST(test_build)
{
    struct op o = {0};
    ck_assert_int_ge(chaos(op_build, &o, true), 40);
    ck_assert_uint_eq(o.model.count, 20);
    ck_assert_str_eq(o.model.meta[3].value, "replaced");
    sq_model_free(&o.model);
}
END_TEST

static Suite *chaos_suite(void)
{
    Suite *s = suite_create("chaos");
    TCase *tc = tcase_create("nomem");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_npy_parse);
    tcase_add_test(tc, test_safetensors_parse);
    tcase_add_test(tc, test_raw_parse);
    tcase_add_test(tc, test_writers);
    tcase_add_test(tc, test_build);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(chaos_suite());
}

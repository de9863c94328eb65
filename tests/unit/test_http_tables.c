/*
 * The daemon's tables and small pure functions: routes (routes.c), the
 * status table (errors.c), request parameters and content types (spec.c),
 * bounded bodies (body.c) and token comparison (auth.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "body.h"
#include "errors.h"
#include "handlers.h"
#include "log.h"
#include "registry.h"
#include "routes.h"
#include "spec.h"
#include "upload.h"

START_TEST(test_routes)
{
    bool known;
    char allow[128], id[SQD_JOBID_LEN + 2];
    const struct sqd_route *r;
    r = sqd_route_find("POST", "/v1/quantize", &known, allow, sizeof(allow), id, sizeof(id));
    ck_assert(r && r->handler == sqd_h_quantize && (r->flags & SQD_ROUTE_BODY));
    r = sqd_route_find("GET", "/v1/jobs/abc/result", &known, allow, sizeof(allow), id, sizeof(id));
    ck_assert(r && r->handler == sqd_h_job_result);
    ck_assert_str_eq(id, "abc");
    r = sqd_route_find("HEAD", "/healthz", &known, allow, sizeof(allow), id, sizeof(id));
    ck_assert(r && r->handler == sqd_h_healthz && (r->flags & SQD_ROUTE_NOAUTH));
    r = sqd_route_find("PATCH", "/v1/jobs/abc", &known, allow, sizeof(allow), id, sizeof(id));
    ck_assert(!r && known);
    ck_assert_str_eq(allow, "GET, HEAD, DELETE");
    r = sqd_route_find("GET", "/v1/jobs//result", &known, allow, sizeof(allow), id, sizeof(id));
    ck_assert(!r && !known);
    r = sqd_route_find("GET", "/v1/info/", &known, allow, sizeof(allow), id, sizeof(id));
    ck_assert(!r && !known);
    char longid[200];
    memset(longid, 'a', sizeof(longid));
    memcpy(longid, "/v1/jobs/", 9);
    longid[199] = '\0';
    r = sqd_route_find("GET", longid, &known, allow, sizeof(allow), id, sizeof(id));
    ck_assert(r && known && r->handler == sqd_h_job_get); /* answered 404 by the handler */
    ck_assert(!sqd_job_id_valid(id));
    ck_assert(sqd_route_path("/v1/jobs/abc") ==
              sqd_route_find("GET", "/v1/jobs/abc", &known, allow, sizeof(allow), id, sizeof(id)));
    ck_assert(sqd_route_path("/nope") == NULL);
    size_t n;
    const struct sqd_route *all = sqd_routes(&n);
    ck_assert_uint_eq(sqd_route_index(&all[2]), 2);
    ck_assert_uint_eq(sqd_route_index(NULL), n);
}
END_TEST

START_TEST(test_sha256)
{
    /* FIPS 180-4 examples: one block, two blocks, and the empty string. */
    static const struct {
        const char *in, *hex;
    } v[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    };
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
        uint8_t d[32];
        char hex[65];
        sqd_sha256(v[k].in, strlen(v[k].in), d);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        ck_assert_str_eq(hex, v[k].hex);
    }
}
END_TEST

START_TEST(test_status_table)
{
    ck_assert_uint_eq(sqd_http_status(SQ_ERR_ARG), 400);
    ck_assert_uint_eq(sqd_http_status(SQ_ERR_FORMAT), 400);
    ck_assert_uint_eq(sqd_http_status(SQ_ERR_NONFINITE), 422);
    ck_assert_uint_eq(sqd_http_status(SQ_ERR_NO_TENSOR), 422);
    ck_assert_uint_eq(sqd_http_status(SQ_ERR_LIMIT), 413);
    ck_assert_uint_eq(sqd_http_status(SQ_ERR_UNSUPPORTED), 415);
    ck_assert_uint_eq(sqd_http_status(SQ_ERR_NOMEM), 503);
    ck_assert_uint_eq(sqd_http_status(SQ_ERR_INTERNAL), 500);
    ck_assert_uint_eq(sqd_http_status(SQ_ERR_NOSPACE), 507);
    ck_assert_uint_eq(sqd_http_status((enum sq_status)999), 500);
    for (int s = 1; s < SQ_STATUS_COUNT; s++) {
        unsigned h = sqd_http_status((enum sq_status)s);
        ck_assert_msg(h >= 400 && h < 600, "status %d maps to %u", s, h);
    }
    struct sq_error err;
    sq_error_init(&err);
    err.status = SQ_ERR_NONFINITE;
    strcpy(err.message, "NaN at channel 3");
    strcpy(err.tensor, "fc.weight");
    err.channel = 3;
    err.index = 77;
    json_t *e = sqd_error_json(422, sq_status_name(err.status), err.message, &err);
    char *body = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    ck_assert_str_eq(body, "{\"status\":422,\"code\":\"nonfinite_weight\",\"message\":"
                           "\"NaN at channel 3\",\"tensor\":\"fc.weight\",\"channel\":3,"
                           "\"index\":77}");
    free(body);
}
END_TEST

START_TEST(test_params)
{
    struct sqd_spec s;
    struct sq_error err;
    sqd_spec_init(&s);
    sq_error_init(&err);
    ck_assert_int_eq(sqd_spec_param(&s, "shape", "64,64,3,3", &err), SQ_OK);
    ck_assert_uint_eq(s.rank, 4);
    ck_assert_int_eq(s.shape[1], 64);
    ck_assert_int_eq(sqd_spec_param(&s, "shape", "8x3", &err), SQ_OK);
    ck_assert_uint_eq(s.rank, 2);
    const char *bad_shapes[] = {
        "", ",", "1,,2", "0", "-1", "1,2,", "a", "1 2", "1,1,1,1,1,1,1,1,1", "9223372036854775808"};
    for (size_t i = 0; i < sizeof(bad_shapes) / sizeof(bad_shapes[0]); i++)
        ck_assert_msg(sqd_spec_param(&s, "shape", bad_shapes[i], &err) == SQ_ERR_ARG, "%s",
                      bad_shapes[i]);
    ck_assert_int_eq(sqd_spec_param(&s, "dtype", "BF16", &err), SQ_OK);
    ck_assert_int_eq(s.dtype, SQ_DTYPE_BF16);
    ck_assert_int_eq(sqd_spec_param(&s, "dtype", "I8", &err), SQ_ERR_ARG);
    ck_assert_int_eq(sqd_spec_param(&s, "dtype", "f32", &err), SQ_ERR_ARG);
    ck_assert_int_eq(sqd_spec_param(&s, "name", "", &err), SQ_ERR_ARG);
    ck_assert_int_eq(sqd_spec_param(&s, "name", "a\nb", &err), SQ_ERR_ARG);
    ck_assert_int_eq(sqd_spec_param(&s, "bits", "3", &err), SQ_OK);
    ck_assert_int_eq(sqd_spec_param(&s, "bits", NULL, &err), SQ_ERR_ARG);
    ck_assert_uint_eq(s.nopts, 1);
    sqd_spec_free(&s);
}
END_TEST

START_TEST(test_options_json)
{
    struct sqd_spec s;
    struct sq_error err;
    sqd_spec_init(&s);
    const char *doc = "{\"bits\":3,\"include\":[\"a*\",\"b*\"],\"bits_for\":{\"fc.*\":8},"
                      "\"shape\":[4,4],\"dtype\":\"F16\",\"format\":\"json\"}";
    ck_assert_int_eq(sqd_spec_json(&s, doc, strlen(doc), &err), SQ_OK);
    ck_assert_uint_eq(s.nopts, 5); /* bits, include x2, bits_for, format */
    ck_assert_str_eq(s.opts[3].value, "fc.*=8");
    ck_assert(s.have_format && s.have_dtype && s.rank == 2);
    struct sq_options opt;
    sq_options_init(&opt);
    s.input = SQ_FORMAT_RAW;
    ck_assert_int_eq(sqd_spec_options(&s, &opt, &err), SQ_OK);
    ck_assert_int_eq(opt.output, SQ_FORMAT_JSON);
    sq_options_free(&opt);
    json_t *j = sqd_spec_to_json(&s);
    struct sqd_spec back;
    sqd_spec_init(&back);
    ck_assert_int_eq(sqd_spec_from_json(&back, j, &err), SQ_OK);
    ck_assert_uint_eq(back.nopts, s.nopts);
    ck_assert(back.rank == 2 && back.dtype == SQ_DTYPE_F16 && back.input == SQ_FORMAT_RAW);
    json_decref(j);
    sqd_spec_free(&back);
    sqd_spec_free(&s);
    const char *bad[] = {"[]", "{\"bits\":1.5}", "{\"bits\":true}", "{\"a\":1,\"a\":2}",
                         "{",  "{\"shape\":[]}", "{\"shape\":[0]}", "{\"bits_for\":{\"x\":\"8\"}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sqd_spec_init(&s);
        ck_assert_msg(sqd_spec_json(&s, bad[i], strlen(bad[i]), &err) == SQ_ERR_ARG, "%s", bad[i]);
        sqd_spec_free(&s);
    }
}
END_TEST

START_TEST(test_content_types)
{
    ck_assert_int_eq(sqd_ctype_parse(NULL), SQD_CT_NONE);
    ck_assert_int_eq(sqd_ctype_parse("application/x-npy"), SQD_CT_NPY);
    ck_assert_int_eq(sqd_ctype_parse("Application/VND.safetensors ; x=1"), SQD_CT_SAFETENSORS);
    ck_assert_int_eq(sqd_ctype_parse("application/octet-stream"), SQD_CT_RAW);
    ck_assert_int_eq(sqd_ctype_parse("multipart/form-data; boundary=x"), SQD_CT_MULTIPART);
    ck_assert_int_eq(sqd_ctype_parse("application/x-www-form-urlencoded"), SQD_CT_OTHER);
    ck_assert_int_eq(sqd_ctype_parse("application/x-npyfoo"), SQD_CT_UNSUPPORTED);
    ck_assert_int_eq(sqd_ctype_parse("text/plain"), SQD_CT_UNSUPPORTED);
    struct {
        const char *accept;
        bool ok;
        enum sq_format f;
    } acc[] = {
        {"*/*", true, SQ_FORMAT_AUTO},
        {NULL, true, SQ_FORMAT_AUTO},
        {"", true, SQ_FORMAT_AUTO},
        {"text/html, application/json;q=0.9", true, SQ_FORMAT_JSON},
        {"application/x-npy", true, SQ_FORMAT_NPY},
        {"application/x-npy;q=0.5, application/json", true, SQ_FORMAT_JSON},
        {"application/json;q=0.2, application/x-npy;q=0.8", true, SQ_FORMAT_NPY},
        {"application/x-npy, application/json", true, SQ_FORMAT_NPY},
        {"*/*;q=0.1, application/json", true, SQ_FORMAT_JSON},
        {"*/*, application/vnd.safetensors;q=0", true, SQ_FORMAT_NPY},
        {"application/*", true, SQ_FORMAT_AUTO},
        {"text/html", false, SQ_FORMAT_AUTO},
        {"application/json;q=0", false, SQ_FORMAT_AUTO},
        {"application/json;q=0.000, text/*", false, SQ_FORMAT_AUTO},
        {"application/json;q=2", true, SQ_FORMAT_AUTO}, /* a malformed item is ignored */
        {"APPLICATION/JSON ; Q=1.0", true, SQ_FORMAT_JSON},
        {",,,", true, SQ_FORMAT_AUTO},
    };
    for (size_t i = 0; i < sizeof(acc) / sizeof(acc[0]); i++) {
        enum sq_format f;
        bool ok = sqd_accept_format(acc[i].accept, &f);
        ck_assert_msg(ok == acc[i].ok, "Accept '%s': ok %d", acc[i].accept, ok);
        if (ok)
            ck_assert_msg(f == acc[i].f, "Accept '%s': format %d", acc[i].accept, (int)f);
    }
    ck_assert(sqd_accept_allows("application/json", SQ_FORMAT_JSON));
    ck_assert(!sqd_accept_allows("application/json", SQ_FORMAT_SAFETENSORS));
    ck_assert(sqd_accept_allows(NULL, SQ_FORMAT_SAFETENSORS));
}
END_TEST

START_TEST(test_body)
{
    struct sqd_body b;
    struct sq_error err;
    sq_error_init(&err);
    sqd_body_init(&b, 100, 10, "/tmp");
    ck_assert_int_eq(sqd_body_append(&b, "0123456789", 10, &err), SQ_OK);
    ck_assert_int_eq(b.fd, -1); /* still in memory */
    ck_assert_int_eq(sqd_body_append(&b, "abcdef", 6, &err), SQ_OK);
    ck_assert_int_ge(b.fd, 0); /* spilled to a file */
    const uint8_t *data;
    size_t len;
    ck_assert_int_eq(sqd_body_map(&b, &data, &len, &err), SQ_OK);
    ck_assert_uint_eq(len, 16);
    ck_assert(memcmp(data, "0123456789abcdef", 16) == 0);
    char big[100] = {0};
    ck_assert_int_eq(sqd_body_append(&b, big, 85, &err), SQ_ERR_LIMIT);
    ck_assert_uint_eq(b.len, 16);
    ck_assert_int_eq(sqd_body_append(&b, big, (size_t)-1, &err), SQ_ERR_LIMIT);
    sqd_body_free(&b);
    sqd_body_init(&b, 100, 1000, "/tmp");
    ck_assert_int_eq(sqd_body_map(&b, &data, &len, &err), SQ_OK);
    ck_assert_uint_eq(len, 0);
    sqd_body_free(&b);
}
END_TEST

START_TEST(test_ct_equal)
{
    ck_assert(sqd_ct_equal("secret", 6, "secret", 6));
    ck_assert(!sqd_ct_equal("secret", 6, "secreT", 6));
    ck_assert(!sqd_ct_equal("secre", 5, "secret", 6));
    ck_assert(!sqd_ct_equal("secrets", 7, "secret", 6));
    ck_assert(sqd_ct_equal("", 0, "", 0));
    ck_assert(sqd_job_id_valid("0123456789abcdef0123456789abcdef"));
    ck_assert(!sqd_job_id_valid("0123456789ABCDEF0123456789abcdef"));
    ck_assert(!sqd_job_id_valid("../../etc/passwd"));
    char id[SQD_JOBID_LEN + 1], id2[SQD_JOBID_LEN + 1];
    sqd_random_id("", id);
    sqd_random_id("", id2);
    ck_assert(sqd_job_id_valid(id) && strcmp(id, id2) != 0);
    ck_assert(strlen(id) == 32 && sqd_job_id_owned("", id) && !sqd_job_id_owned("a", id));
    ck_assert(sqd_request_id_valid("abc-1.2_3"));
    ck_assert(!sqd_request_id_valid("a b"));
    ck_assert(!sqd_request_id_valid(""));
    ck_assert(sqd_request_id_valid("123e4567-e89b-12d3-a456-426614174000"));
    char rid[70];
    memset(rid, 'a', 65);
    rid[65] = '\0';
    ck_assert(!sqd_request_id_valid(rid));
    rid[64] = '\0';
    ck_assert(sqd_request_id_valid(rid));
}
END_TEST

/* Instance names and the ids they give out (docs/operations.md, "Instances"). */
START_TEST(test_instance_ids)
{
    ck_assert(sqd_instance_valid("a", 1));
    ck_assert(sqd_instance_valid("squantd-0", 9));
    ck_assert(!sqd_instance_valid("", 0));
    ck_assert(!sqd_instance_valid("-a", 2));
    ck_assert(!sqd_instance_valid("a-", 2));
    ck_assert(!sqd_instance_valid("A", 1));
    ck_assert(!sqd_instance_valid("a.b", 3));
    ck_assert(!sqd_instance_valid("a/b", 3));
    char longname[SQD_INSTANCE_MAX + 2];
    memset(longname, 'x', sizeof(longname));
    ck_assert(sqd_instance_valid(longname, SQD_INSTANCE_MAX));
    ck_assert(!sqd_instance_valid(longname, SQD_INSTANCE_MAX + 1));

    char id[SQD_JOBID_LEN + 1];
    sqd_random_id("squantd-0", id);
    ck_assert_int_eq(strncmp(id, "squantd-0.", 10), 0);
    ck_assert_uint_eq(strlen(id), 10 + 32);
    ck_assert_uint_eq(strspn(id + 10, "0123456789abcdef"), 32);
    ck_assert(sqd_job_id_valid(id));
    ck_assert(sqd_job_id_owned("squantd-0", id));
    ck_assert(!sqd_job_id_owned("squantd-1", id));
    ck_assert(!sqd_job_id_owned("squantd", id));
    ck_assert(!sqd_job_id_owned("squantd-00", id));
    ck_assert(!sqd_job_id_owned("", id));
    memset(longname, 'x', sizeof(longname));
    longname[SQD_INSTANCE_MAX] = '\0';
    sqd_random_id(longname, id);
    ck_assert_uint_eq(strlen(id), SQD_JOBID_LEN);
    ck_assert(sqd_job_id_owned(longname, id));

    ck_assert(sqd_job_id_valid("b.0123456789abcdef0123456789abcdef"));
    ck_assert(!sqd_job_id_valid(".0123456789abcdef0123456789abcdef"));
    ck_assert(!sqd_job_id_valid("-b.0123456789abcdef0123456789abcdef"));
    ck_assert(!sqd_job_id_valid("B.0123456789abcdef0123456789abcdef"));
    ck_assert(!sqd_job_id_valid("b_0123456789abcdef0123456789abcdef"));
    ck_assert(!sqd_job_id_valid("b.0123456789abcdef0123456789abcde"));
    ck_assert(!sqd_job_id_valid("../b.0123456789abcdef0123456789abcdef"));
    ck_assert(!sqd_job_id_valid("b.c.0123456789abcdef0123456789abcdef"));
}
END_TEST

static Suite *tables_suite(void)
{
    Suite *s = suite_create("http_tables");
    TCase *tc = tcase_create("routes");
    tcase_add_test(tc, test_routes);
    tcase_add_test(tc, test_status_table);
    tcase_add_test(tc, test_sha256);
    suite_add_tcase(s, tc);
    tc = tcase_create("spec");
    tcase_add_test(tc, test_params);
    tcase_add_test(tc, test_options_json);
    tcase_add_test(tc, test_content_types);
    suite_add_tcase(s, tc);
    tc = tcase_create("body_auth");
    tcase_add_test(tc, test_body);
    tcase_add_test(tc, test_ct_equal);
    tcase_add_test(tc, test_instance_ids);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(tables_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

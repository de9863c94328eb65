/*
 * Fuzz harness for what a quantize request says besides its body: query
 * parameters (sqd_spec_param) and the multipart options part
 * (sqd_spec_json), then the options they build (sqd_spec_options) and the
 * spec's round trip through request.json. Input: lines "key=value"; a
 * line starting with '{' is an options JSON object. Properties: every
 * failure has a status and a message; an accepted spec survives
 * request.json unchanged.
 */
#include <string.h>

#include "fuzz.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sqd_spec s;
    sqd_spec_init(&s);
    struct sq_error e;
    sq_error_init(&e);
    enum sq_status st = SQ_OK;
    size_t i = 0;
    while (st == SQ_OK && i < size) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t n = nl ? (size_t)(nl - (data + i)) : size - i;
        char *line = malloc(n + 1);
        FUZZ_CHECK(line);
        memcpy(line, data + i, n);
        line[n] = '\0';
        if (n && line[0] == '{') {
            st = sqd_spec_json(&s, line, n, &e);
        } else if (strlen(line) == n) { /* a NUL is refused before this (400) */
            char *eq = strchr(line, '=');
            if (eq)
                *eq = '\0';
            st = sqd_spec_param(&s, line, eq ? eq + 1 : "", &e);
        }
        free(line);
        i += n + 1;
    }
    if (st != SQ_OK) {
        FUZZ_CHECK(e.status == st && e.message[0] != '\0');
        sqd_spec_free(&s);
        return 0;
    }
    struct sq_options opt;
    sq_options_init(&opt);
    sq_error_init(&e);
    st = sqd_spec_options(&s, &opt, &e);
    FUZZ_CHECK(st == SQ_OK || (e.status == st && e.message[0] != '\0'));
    sq_options_free(&opt);

    json_t *j = sqd_spec_to_json(&s);
    FUZZ_CHECK(j);
    struct sqd_spec back;
    sqd_spec_init(&back);
    sq_error_init(&e);
    FUZZ_CHECK(sqd_spec_from_json(&back, j, &e) == SQ_OK);
    json_t *j2 = sqd_spec_to_json(&back);
    FUZZ_CHECK(j2 && json_equal(j, j2));
    json_decref(j);
    json_decref(j2);
    sqd_spec_free(&back);
    sqd_spec_free(&s);
    return 0;
}

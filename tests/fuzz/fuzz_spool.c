/*
 * Fuzz harness for the spool's JSON files read at start-up: the input is
 * a state.json (sqd_jobrec_from_json) and, after a form feed, a
 * request.json (sqd_spec_from_json). Properties: no crash on any
 * document; an accepted record writes back (sqd_jobrec_json) to one that
 * reads back to the same record; an accepted spec round-trips.
 */
#include <string.h>

#include "fuzz.h"
#include "registry.h"
#include "spec.h"

static void fuzz_state(const char *text, size_t n)
{
    json_t *j = json_loadb(text, n, JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        return;
    struct sqd_jobrec rec, back;
    memset(&rec, 0, sizeof(rec));
    if (sqd_jobrec_from_json(&rec, j)) {
        FUZZ_CHECK(sqd_job_id_valid(rec.id) && rec.state < SQD_STATES);
        json_t *out = sqd_jobrec_json(&rec);
        FUZZ_CHECK(out);
        if (rec.owner[0])
            json_object_set_new(out, "owner", json_string(rec.owner));
        memset(&back, 0, sizeof(back));
        FUZZ_CHECK(sqd_jobrec_from_json(&back, out));
        FUZZ_CHECK(strcmp(back.id, rec.id) == 0 && back.state == rec.state &&
                   strcmp(back.owner, rec.owner) == 0);
        json_decref(back.error);
        json_decref(out);
    }
    json_decref(rec.error);
    json_decref(j);
}

static void fuzz_request(const char *text, size_t n)
{
    json_t *j = json_loadb(text, n, JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        return;
    struct sqd_spec s;
    sqd_spec_init(&s);
    struct sq_error e;
    sq_error_init(&e);
    if (sqd_spec_from_json(&s, j, &e) == SQ_OK) {
        json_t *out = sqd_spec_to_json(&s);
        FUZZ_CHECK(out);
        struct sqd_spec back;
        sqd_spec_init(&back);
        FUZZ_CHECK(sqd_spec_from_json(&back, out, &e) == SQ_OK);
        json_t *out2 = sqd_spec_to_json(&back);
        FUZZ_CHECK(out2 && json_equal(out, out2));
        json_decref(out2);
        json_decref(out);
        sqd_spec_free(&back);
    } else {
        FUZZ_CHECK(e.message[0] != '\0');
    }
    sqd_spec_free(&s);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *ff = memchr(data, '\f', size);
    size_t n = ff ? (size_t)(ff - data) : size;
    fuzz_state((const char *)data, n);
    if (ff)
        fuzz_request((const char *)ff + 1, size - n - 1);
    return 0;
}

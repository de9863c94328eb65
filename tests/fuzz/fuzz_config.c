/*
 * Fuzz harness for the configuration file (sqd_config_read on the input as
 * a file) and the cross-key check. Properties: a failure has a message; an
 * accepted configuration formats every key back to text that sets the
 * same value.
 */
#include <string.h>

#include "fuzz.h"
#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sqd_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    FUZZ_CHECK(sqd_config_defaults(&cfg));
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f) {
        sqd_config_free(&cfg);
        return 0;
    }
    char msg[1024] = "";
    bool ok = sqd_config_read(&cfg, f, "fuzz.conf", msg, sizeof(msg));
    fclose(f);
    if (ok)
        ok = sqd_config_check(&cfg, msg, sizeof(msg));
    if (!ok) {
        FUZZ_CHECK(msg[0] != '\0');
        sqd_config_free(&cfg);
        return 0;
    }
    size_t n;
    const struct sqd_option *opts = sqd_options(&n);
    for (size_t i = 0; i < n; i++) {
        char *text = sqd_config_format(&cfg, &opts[i]);
        FUZZ_CHECK(text);
        struct sqd_config again;
        memset(&again, 0, sizeof(again));
        FUZZ_CHECK(sqd_config_defaults(&again));
        FUZZ_CHECK(sqd_config_set(&again, opts[i].name, text, "again", msg, sizeof(msg)));
        char *text2 = sqd_config_format(&again, &opts[i]);
        FUZZ_CHECK(text2 && strcmp(text, text2) == 0);
        free(text);
        free(text2);
        sqd_config_free(&again);
    }
    sqd_config_free(&cfg);
    return 0;
}

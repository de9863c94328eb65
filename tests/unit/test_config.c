/*
 * src/daemon/config.c: the option table, value syntax, the file and the
 * command line, and the rule that the table, etc/squantd.conf and
 * docs/config.md name exactly the same keys with the same defaults.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

static const char *srcdir(void)
{
    const char *s = getenv("top_srcdir");
    return s ? s : ".";
}

static char *path(const char *rel)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/%s", srcdir(), rel);
    return buf;
}

START_TEST(test_defaults)
{
    struct sqd_config c;
    ck_assert(sqd_config_defaults(&c));
    ck_assert_str_eq(c.listen, "127.0.0.1:8080");
    ck_assert_str_eq(c.spool_dir, "/var/lib/squantd");
    ck_assert_uint_eq(c.max_body_size, 1ull << 30);
    ck_assert_uint_eq(c.memory_body_limit, 16ull << 20);
    ck_assert_uint_eq(c.result_ttl, 3600);
    ck_assert(c.access_log);
    char msg[256];
    ck_assert(sqd_config_check(&c, msg, sizeof(msg)));
    sqd_config_free(&c);
}
END_TEST

START_TEST(test_values)
{
    struct sqd_config c;
    char msg[256];
    ck_assert(sqd_config_defaults(&c));
    ck_assert(sqd_config_set(&c, "max-body-size", "512K", "t", msg, sizeof(msg)));
    ck_assert_uint_eq(c.max_body_size, 512 * 1024);
    ck_assert(sqd_config_set(&c, "max_body_size", "2g", "t", msg, sizeof(msg)));
    ck_assert_uint_eq(c.max_body_size, 2ull << 30);
    ck_assert(sqd_config_set(&c, "result-ttl", "5m", "t", msg, sizeof(msg)));
    ck_assert_uint_eq(c.result_ttl, 300);
    ck_assert(sqd_config_set(&c, "access-log", "off", "t", msg, sizeof(msg)));
    ck_assert(!c.access_log);
    ck_assert(!sqd_config_set(&c, "access-log", "maybe", "t", msg, sizeof(msg)));
    ck_assert(!sqd_config_set(&c, "threads", "-1", "t", msg, sizeof(msg)));
    ck_assert(!sqd_config_set(&c, "threads", "4k", "t", msg, sizeof(msg)));
    ck_assert(!sqd_config_set(&c, "threads", "2000", "t", msg, sizeof(msg)));
    ck_assert_ptr_nonnull(strstr(msg, "out of range"));
    ck_assert(!sqd_config_set(&c, "max-body-size", "99999999999999999999", "t", msg, sizeof(msg)));
    ck_assert(!sqd_config_set(&c, "max-body-size", "16777216T", "t", msg, sizeof(msg)));
    ck_assert(!sqd_config_set(&c, "max-body-size", "", "t", msg, sizeof(msg)));
    ck_assert(!sqd_config_set(&c, "no-such-key", "1", "here", msg, sizeof(msg)));
    ck_assert_ptr_nonnull(strstr(msg, "here: unknown key"));
    sqd_config_free(&c);
}
END_TEST

START_TEST(test_listen)
{
    struct sockaddr_storage ss;
    size_t len;
    char msg[256];
    ck_assert(sqd_parse_listen("127.0.0.1:0", &ss, &len, msg, sizeof(msg)));
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ck_assert(sqd_parse_listen("[::1]:8080", &ss, &len, msg, sizeof(msg)));
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    ck_assert(!sqd_parse_listen("127.0.0.1", &ss, &len, msg, sizeof(msg)));
    ck_assert(!sqd_parse_listen("127.0.0.1:65536", &ss, &len, msg, sizeof(msg)));
    ck_assert(!sqd_parse_listen("::1:80", &ss, &len, msg, sizeof(msg)));
    ck_assert(!sqd_parse_listen(":80", &ss, &len, msg, sizeof(msg)));
    ck_assert(!sqd_parse_listen("[::1]80", &ss, &len, msg, sizeof(msg)));
}
END_TEST

START_TEST(test_args)
{
    struct sqd_config c;
    char msg[256];
    char *argv[] = {"squantd", "--listen=127.0.0.1:0", "--spool-dir", "/tmp/x", "--threads", "3",
                    NULL};
    ck_assert_int_eq(sqd_config_from_args(&c, 6, argv, msg, sizeof(msg)), SQD_RUN);
    ck_assert_str_eq(c.listen, "127.0.0.1:0");
    ck_assert_str_eq(c.spool_dir, "/tmp/x");
    ck_assert_uint_eq(sqd_config_threads(&c), 3);
    ck_assert_uint_eq(sqd_config_active_jobs(&c), 6);
    sqd_config_free(&c);
    char *bad[] = {"squantd", "--threads", NULL};
    ck_assert_int_eq(sqd_config_from_args(&c, 2, bad, msg, sizeof(msg)), SQD_CLI_ERROR);
    sqd_config_free(&c);
    char *stray[] = {"squantd", "serve", NULL};
    ck_assert_int_eq(sqd_config_from_args(&c, 2, stray, msg, sizeof(msg)), SQD_CLI_ERROR);
    sqd_config_free(&c);
    char *inst[] = {"squantd", "--instance", "squantd-0", NULL};
    ck_assert_int_eq(sqd_config_from_args(&c, 3, inst, msg, sizeof(msg)), SQD_RUN);
    ck_assert_str_eq(c.instance, "squantd-0");
    sqd_config_free(&c);
    const char *bad_names[] = {"Upper",
                               "a.b",
                               "-a",
                               "a-",
                               "a b",
                               "a/b",
                               "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        char *argv_bad[] = {"squantd", "--instance", (char *)bad_names[i], NULL};
        ck_assert_int_eq(sqd_config_from_args(&c, 3, argv_bad, msg, sizeof(msg)), SQD_CLI_ERROR);
        ck_assert_msg(strstr(msg, "instance") != NULL, "%s", msg);
        sqd_config_free(&c);
    }
    char *check[] = {"squantd", "--check-config", NULL};
    ck_assert_int_eq(sqd_config_from_args(&c, 2, check, msg, sizeof(msg)), SQD_CHECK_CONFIG);
    sqd_config_free(&c);
}
END_TEST

/* The file overrides defaults; flags override the file, whatever their order. */
START_TEST(test_file_then_flags)
{
    char tmpl[] = "/tmp/sqd-conf-XXXXXX";
    int fd = mkstemp(tmpl);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("# comment\n  threads = 5   # trailing\nlisten = \"127.0.0.1:9\"\n\nport-file =\n", f);
    fclose(f);
    struct sqd_config c;
    char msg[256];
    char *argv[] = {"squantd", "--threads", "7", "--config", tmpl, NULL};
    ck_assert_int_eq(sqd_config_from_args(&c, 5, argv, msg, sizeof(msg)), SQD_RUN);
    ck_assert_uint_eq(c.threads, 7);
    ck_assert_str_eq(c.listen, "127.0.0.1:9");
    ck_assert_str_eq(c.port_file, "");
    sqd_config_free(&c);
    f = fopen(tmpl, "w");
    fputs("threads = 1\nthis line has no equals sign\n", f);
    fclose(f);
    ck_assert(sqd_config_defaults(&c));
    ck_assert(!sqd_config_load(&c, tmpl, msg, sizeof(msg)));
    ck_assert_ptr_nonnull(strstr(msg, ":2:"));
    sqd_config_free(&c);
    unlink(tmpl);
}
END_TEST

/* Keys named by `### \`key\`` headings (docs) or `key = value` lines (the conf file). */
static size_t read_keys(const char *file, bool doc, char keys[][64], size_t max)
{
    FILE *f = fopen(file, "r");
    ck_assert_msg(f != NULL, "cannot open %s", file);
    char line[1024];
    size_t n = 0;
    while (fgets(line, sizeof(line), f)) {
        char key[64];
        if (doc ? sscanf(line, "### `%63[a-z-]`", key) == 1
                : (line[0] >= 'a' && line[0] <= 'z' && sscanf(line, "%63[a-z-] =", key) == 1)) {
            ck_assert(n < max);
            memcpy(keys[n++], key, sizeof(key));
        }
    }
    fclose(f);
    return n;
}

static void same_keys(const char *file, bool doc)
{
    size_t count;
    const struct sqd_option *opts = sqd_options(&count);
    char keys[128][64];
    size_t n = read_keys(file, doc, keys, 128);
    for (size_t i = 0; i < count; i++) {
        bool found = false;
        for (size_t k = 0; k < n; k++)
            found |= strcmp(keys[k], opts[i].name) == 0;
        ck_assert_msg(found, "%s does not document the key '%s'", file, opts[i].name);
    }
    for (size_t k = 0; k < n; k++) {
        bool found = false;
        for (size_t i = 0; i < count; i++)
            found |= strcmp(keys[k], opts[i].name) == 0;
        ck_assert_msg(found, "%s documents '%s', which is not a key", file, keys[k]);
    }
    ck_assert_uint_eq(n, count);
}

START_TEST(test_docs_name_every_key)
{
    same_keys(path("docs/config.md"), true);
}
END_TEST

START_TEST(test_shipped_conf)
{
    same_keys(path("etc/squantd.conf"), false);
    /* ... and it sets each key to its default, so it works as shipped and documents truly. */
    struct sqd_config file, def;
    char msg[256];
    ck_assert(sqd_config_defaults(&file) && sqd_config_defaults(&def));
    ck_assert_msg(sqd_config_load(&file, path("etc/squantd.conf"), msg, sizeof(msg)), "%s", msg);
    size_t count;
    const struct sqd_option *opts = sqd_options(&count);
    for (size_t i = 0; i < count; i++) {
        char *a = sqd_config_format(&file, &opts[i]), *b = sqd_config_format(&def, &opts[i]);
        ck_assert_msg(strcmp(a, b) == 0, "squantd.conf sets %s = %s, the default is %s",
                      opts[i].name, a, b);
        free(a);
        free(b);
    }
    sqd_config_free(&file);
    sqd_config_free(&def);
}
END_TEST

/* docs/config.md states each default as "Default: `VALUE`" under the key's heading. */
START_TEST(test_docs_defaults)
{
    FILE *f = fopen(path("docs/config.md"), "r");
    ck_assert_ptr_nonnull(f);
    size_t count;
    const struct sqd_option *opts = sqd_options(&count);
    char line[1024], key[64] = "";
    size_t seen = 0;
    while (fgets(line, sizeof(line), f)) {
        char v[256];
        if (sscanf(line, "### `%63[a-z-]`", key) == 1)
            continue;
        if (key[0] && strncmp(line, "Default: none", 13) == 0) {
            /* an empty default */
            for (size_t i = 0; i < count; i++) {
                if (strcmp(opts[i].name, key) == 0) {
                    ck_assert_msg(opts[i].def[0] == '\0', "docs/config.md: %s has a default", key);
                    seen++;
                }
            }
            key[0] = '\0';
            continue;
        }
        if (key[0] && strncmp(line, "Default: `", 10) == 0) {
            char *end = strchr(line + 10, '`');
            ck_assert_ptr_nonnull(end);
            size_t len = (size_t)(end - (line + 10));
            memcpy(v, line + 10, len);
            v[len] = '\0';
            for (size_t i = 0; i < count; i++) {
                if (strcmp(opts[i].name, key) == 0) {
                    ck_assert_msg(strcmp(opts[i].def, v) == 0,
                                  "docs/config.md: %s default `%s`, the table says `%s`", key, v,
                                  opts[i].def);
                    seen++;
                }
            }
            key[0] = '\0';
        }
    }
    fclose(f);
    ck_assert_uint_eq(seen, count);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("values");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_listen);
    suite_add_tcase(s, tc);
    tc = tcase_create("sources");
    tcase_add_test(tc, test_args);
    tcase_add_test(tc, test_file_then_flags);
    suite_add_tcase(s, tc);
    tc = tcase_create("documents");
    tcase_add_test(tc, test_docs_name_every_key);
    tcase_add_test(tc, test_docs_defaults);
    tcase_add_test(tc, test_shipped_conf);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(config_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

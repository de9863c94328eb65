/*
 * struct sq_options and its one text interface, sq_options_set, shared by
 * the CLI flags, the HTTP query string and the JSON options part.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"

void sq_options_init(struct sq_options *opt)
{
    memset(opt, 0, sizeof *opt);
    sq_params_init(&opt->params);
    opt->output = SQ_FORMAT_AUTO;
    opt->scale_dtype = SQ_DTYPE_F32;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

void sq_options_free(struct sq_options *opt)
{
    free_list(opt->include, opt->include_count);
    free_list(opt->exclude, opt->exclude_count);
    for (size_t i = 0; i < opt->bits_for_count; i++)
        free(opt->bits_for[i].pattern);
    free(opt->bits_for);
    for (size_t i = 0; i < opt->group_for_count; i++)
        free(opt->group_for[i].pattern);
    free(opt->group_for);
    sq_options_init(opt);
}

/* Parse a decimal integer in [lo, hi] that fills the whole string. */
static bool parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Globs: non-empty, printable, at most SQI_PATTERN_MAX bytes, and valid for fnmatch. */
#define SQI_PATTERN_MAX 1024

static enum sq_status check_pattern(const char *key, const char *p, size_t n, struct sq_error *err)
{
    if (n == 0)
        return sqi_fail(err, SQ_ERR_ARG, "%s: empty pattern", key);
    if (n > SQI_PATTERN_MAX)
        return sqi_fail(err, SQ_ERR_ARG, "%s: pattern longer than %d bytes", key,
                        SQI_PATTERN_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return sqi_fail(err, SQ_ERR_ARG, "%s: pattern contains a control character", key);
    return SQ_OK;
}

static enum sq_status append_patterns(char ***list, size_t *count, const char *key,
                                      const char *value, struct sq_error *err)
{
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        enum sq_status st = check_pattern(key, p, n, err);
        if (st != SQ_OK)
            return st;
        char **grown = realloc(*list, (*count + 1) * sizeof **list);
        if (!grown)
            return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
        *list = grown;
        if (!(grown[*count] = sqi_strndup(p, n)))
            return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
        (*count)++;
        if (!comma)
            return SQ_OK;
        p = comma + 1;
    }
}

/*
 * Rules "GLOB=N,GLOB=N": for each, check the glob and N in [lo, hi], then
 * add(opt, glob, glob_len, N). `what` and `noun` name N in messages.
 */
static enum sq_status append_rules(struct sq_options *opt, const char *key, const char *what,
                                   const char *noun, const char *value, unsigned lo, unsigned hi,
                                   enum sq_status (*add)(struct sq_options *, const char *, size_t,
                                                         unsigned),
                                   struct sq_error *err)
{
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p), eq = n;
        while (eq > 0 && p[eq - 1] != '=')
            eq--;
        if (eq == 0)
            return sqi_fail(err, SQ_ERR_ARG, "%s: expected NAME=%s, got '%.*s'", key, what,
                            (int)(n < 80 ? n : 80), p);
        enum sq_status st = check_pattern(key, p, eq - 1, err);
        if (st != SQ_OK)
            return st;
        char digits[12] = {0};
        unsigned v = 0;
        bool ok = n - eq < sizeof digits;
        if (ok) {
            memcpy(digits, p + eq, n - eq);
            ok = parse_uint(digits, lo, hi, &v);
        }
        if (!ok)
            return sqi_fail(err, SQ_ERR_ARG, "%s: %s must be %u..%u in '%.*s'", key, noun, lo, hi,
                            (int)(n < 80 ? n : 80), p);
        if (add(opt, p, eq - 1, v) != SQ_OK)
            return sqi_fail(err, SQ_ERR_NOMEM, "out of memory");
        if (!comma)
            return SQ_OK;
        p = comma + 1;
    }
}

static enum sq_status add_bits_rule(struct sq_options *opt, const char *p, size_t n, unsigned v)
{
    struct sq_bits_rule *grown = realloc(opt->bits_for, (opt->bits_for_count + 1) * sizeof *grown);
    if (!grown)
        return SQ_ERR_NOMEM;
    opt->bits_for = grown;
    if (!(grown[opt->bits_for_count].pattern = sqi_strndup(p, n)))
        return SQ_ERR_NOMEM;
    grown[opt->bits_for_count++].bits = v;
    return SQ_OK;
}

static enum sq_status add_group_rule(struct sq_options *opt, const char *p, size_t n, unsigned v)
{
    struct sq_group_rule *grown =
        realloc(opt->group_for, (opt->group_for_count + 1) * sizeof *grown);
    if (!grown)
        return SQ_ERR_NOMEM;
    opt->group_for = grown;
    if (!(grown[opt->group_for_count].pattern = sqi_strndup(p, n)))
        return SQ_ERR_NOMEM;
    grown[opt->group_for_count++].group = v;
    return SQ_OK;
}

enum sq_status sq_options_set(struct sq_options *opt, const char *key, const char *value,
                              struct sq_error *err)
{
    if (!key || !value)
        return sqi_fail(err, SQ_ERR_ARG, "option without a %s", key ? "value" : "name");
    if (strcmp(key, "bits") == 0) {
        if (!parse_uint(value, SQ_BITS_MIN, SQ_BITS_MAX, &opt->params.bits))
            return sqi_fail(err, SQ_ERR_ARG, "bits must be an integer from %d to %d, not '%.40s'",
                            SQ_BITS_MIN, SQ_BITS_MAX, value);
    } else if (strcmp(key, "mode") == 0) {
        if (sq_mode_from_name(value, &opt->params.mode) != SQ_OK)
            return sqi_fail(err, SQ_ERR_ARG,
                            "mode must be squant, squant-k, squant-c or rtn (squant-e), not '%.40s'",
                            value);
    } else if (strcmp(key, "scheme") == 0) {
        if (sq_scheme_from_name(value, &opt->params.scheme) != SQ_OK)
            return sqi_fail(err, SQ_ERR_ARG, "scheme must be asymmetric or symmetric, not '%.40s'",
                            value);
    } else if (strcmp(key, "impl") == 0) {
        enum sq_impl impl;
        if (sq_impl_from_name(value, &impl) != SQ_OK)
            return sqi_fail(err, SQ_ERR_ARG,
                            "impl must be auto, ref, generic, avx2 or avx512, not '%.40s'", value);
        if (!sq_impl_available(impl))
            return sqi_fail(err, SQ_ERR_ARG, "impl %s is not available on this CPU", value);
        opt->params.impl = impl;
    } else if (strcmp(key, "include") == 0) {
        return append_patterns(&opt->include, &opt->include_count, key, value, err);
    } else if (strcmp(key, "exclude") == 0) {
        return append_patterns(&opt->exclude, &opt->exclude_count, key, value, err);
    } else if (strcmp(key, "bits_for") == 0) {
        return append_rules(opt, key, "BITS", "bits", value, SQ_BITS_MIN, SQ_BITS_MAX,
                            add_bits_rule, err);
    } else if (strcmp(key, "group") == 0) {
        unsigned g;
        if (!parse_uint(value, 0, (unsigned)SQ_GROUP_MAX, &g))
            return sqi_fail(err, SQ_ERR_ARG,
                            "group must be an integer from 0 (per channel) to %zu, not '%.40s'",
                            SQ_GROUP_MAX, value);
        opt->group = g;
    } else if (strcmp(key, "group_for") == 0) {
        return append_rules(opt, key, "GROUP", "group", value, 0, (unsigned)SQ_GROUP_MAX,
                            add_group_rule, err);
    } else if (strcmp(key, "scale_dtype") == 0) {
        enum sq_dtype d;
        if (sq_dtype_from_name(value, &d) != SQ_OK || (d != SQ_DTYPE_F32 && d != SQ_DTYPE_F16))
            return sqi_fail(err, SQ_ERR_ARG, "scale_dtype must be F32 or F16, not '%.40s'", value);
        opt->scale_dtype = d;
    } else if (strcmp(key, "format") == 0) {
        enum sq_format f;
        if (sq_format_from_name(value, &f) != SQ_OK ||
            f == SQ_FORMAT_RAW)
            return sqi_fail(err, SQ_ERR_ARG,
                            "format must be auto, safetensors, onnx, dequantized, npy or json, not "
                            "'%.40s'",
                            value);
        opt->output = f;
    } else if (strcmp(key, "packing") == 0) {
        if (strcmp(value, "none") == 0)
            opt->packing = SQ_PACKING_NONE;
        else if (strcmp(value, "int4") == 0)
            opt->packing = SQ_PACKING_INT4;
        else if (strcmp(value, "matmulnbits") == 0)
            opt->packing = SQ_PACKING_MATMULNBITS;
        else
            return sqi_fail(err, SQ_ERR_ARG,
                            "packing must be none, int4 or matmulnbits, not '%.40s'", value);
    } else {
        return sqi_fail(
            err, SQ_ERR_ARG,
            "unknown option '%.60s' (known: bits, mode, scheme, impl, include, exclude, "
            "bits_for, group, group_for, scale_dtype, format, packing)",
            key);
    }
    return SQ_OK;
}

bool sqi_options_match_any(char *const *globs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (fnmatch(globs[i], name, 0) == 0)
            return true;
    return false;
}

unsigned sqi_options_bits_for(const struct sq_options *opt, const char *name)
{
    for (size_t i = 0; i < opt->bits_for_count; i++)
        if (fnmatch(opt->bits_for[i].pattern, name, 0) == 0)
            return opt->bits_for[i].bits;
    return opt->params.bits;
}

size_t sqi_options_group_for(const struct sq_options *opt, const char *name)
{
    for (size_t i = 0; i < opt->group_for_count; i++)
        if (fnmatch(opt->group_for[i].pattern, name, 0) == 0)
            return opt->group_for[i].group;
    return opt->group;
}

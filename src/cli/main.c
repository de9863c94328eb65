/*
 * squant: the command-line tool. The same plan as the daemon, run on files:
 *
 *   squant quantize [options] IN -o OUT
 *   squant inspect FILE
 *   squant report [--json] FILE
 *   squant dequantize IN -o OUT
 *
 * Exit status: 0 success, 1 the input or the work failed, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <uv.h>

#include <squant/squant.h>

#include "cli.h"
#include "util.h"

#define OUTPUT_LIMIT ((size_t)1 << 40)

static const char usage_text[] =
    "usage: squant quantize [options] IN -o OUT\n"
    "       squant inspect FILE\n"
    "       squant report [--json] FILE   the report stored in a quantized file\n"
    "       squant dequantize IN -o OUT\n"
    "       squant --version | --help\n"
    "\n"
    "IN is a .npy, .safetensors or .onnx file (recognized by its content; an ONNX\n"
    "model's external data files are read from its directory); OUT is written\n"
    "atomically, '-' means standard output.\n"
    "\n"
    "quantize options:\n"
    "  -b, --bits N           bit width 2..8 (default 4)\n"
    "  -m, --mode M           squant (default), squant-k, squant-c, rtn (= squant-e)\n"
    "  -s, --scheme S         asymmetric (default) or symmetric\n"
    "  -i, --include GLOB     quantize only tensors matching GLOB (repeatable)\n"
    "  -x, --exclude GLOB     do not quantize tensors matching GLOB (repeatable)\n"
    "  -B, --bits-for GLOB=N  bit width for tensors matching GLOB (repeatable, first wins)\n"
    "  -g, --group G          a range per G input channels (default 0: per output channel)\n"
    "  -G, --group-for GLOB=G group size for tensors matching GLOB (repeatable, first wins)\n"
    "      --scale-dtype D    F32 (default) or F16: F16 scales and small-integer zero points\n"
    "  -f, --format F         output format: auto (default: onnx for an ONNX input, else\n"
    "                         safetensors), safetensors, onnx, dequantized, npy, json\n"
    "      --dequantized      the same as --format dequantized: the input's own format\n"
    "                         with SQuant's dequantized float weights in place\n"
    "      --packing P        none (default) or int4: two codes per byte for bits <= 4\n"
    "                         (U8 in safetensors, INT4 in ONNX at opset >= 21), or\n"
    "                         matmulnbits: ONNX MatMul weights as ONNX Runtime's\n"
    "                         MatMulNBits (bits <= 4, --group 16, 32, 64...)\n"
    "  -t, --threads N        worker threads (default: the number of cores)\n"
    "      --impl I           auto (default), ref, generic, avx2, avx512\n"
    "  -j, --json             print the report as JSON instead of a table\n"
    "  -q, --quiet            no table and no progress line (errors and --json still print)\n"
    "  -o, --output OUT       where to write the result\n"
    "\n"
    "Every command takes -h or --help, which prints this text.\n";

struct input {
    uint8_t *map;
    size_t len;
    struct input *ext; /* ONNX external data files beside the model */
    struct sq_external *ext_ref;
    size_t ext_count;
    char **names; /* their locations */
    size_t name_count;
};

void cli_fail_line(const char *file, const struct sq_error *err)
{
    fprintf(stderr, "squant: %s: %s", file, err->message);
    if (err->tensor[0])
        fprintf(stderr, " (tensor '%s'", err->tensor);
    if (err->offset >= 0)
        fprintf(stderr, "%sbyte offset %lld", err->tensor[0] ? ", " : " (", (long long)err->offset);
    if (err->tensor[0] || err->offset >= 0)
        fputc(')', stderr);
    fputc('\n', stderr);
}

/* Map a file read-only. An empty file maps to a 0-byte input. */
static int input_open(const char *path, struct input *in)
{
    memset(in, 0, sizeof *in);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "squant: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "squant: %s: not a regular file\n", path);
        close(fd);
        return -1;
    }
    in->len = (size_t)st.st_size;
    if (in->len > 0) {
        void *p = mmap(NULL, in->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "squant: %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        in->map = p;
    }
    close(fd);
    return 0;
}

static void input_close(struct input *in)
{
    for (size_t i = 0; i < in->ext_count; i++)
        input_close(&in->ext[i]);
    free(in->ext);
    free(in->ext_ref);
    sq_onnx_locations_free(in->names, in->name_count);
    if (in->map)
        munmap(in->map, in->len);
}

/* Map the external data files an ONNX model names, from the model's directory. */
static int open_externals(const char *path, struct input *in, const struct sq_limits *limits)
{
    char **names;
    size_t n;
    struct sq_error err;
    sq_error_init(&err);
    if (sq_onnx_locations(in->map, in->len, limits, &names, &n, &err) != SQ_OK)
        return 0; /* the parse reports it */
    int rc = 0;
    in->ext = calloc(n + 1, sizeof *in->ext);
    in->ext_ref = calloc(n + 1, sizeof *in->ext_ref);
    if (!in->ext || !in->ext_ref) {
        fprintf(stderr, "squant: out of memory\n");
        rc = -1;
    }
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (names[i][0] == '/' || strstr(names[i], "..")) {
            fprintf(stderr,
                    "squant: %s: external data location '%s' is not a relative path "
                    "inside the model's directory\n",
                    path, names[i]);
            rc = -1;
            break;
        }
        size_t len = dir + strlen(names[i]) + 1;
        char *p = malloc(len);
        if (!p) {
            rc = -1;
            break;
        }
        snprintf(p, len, "%.*s%s", (int)dir, path, names[i]);
        if (access(p, F_OK) != 0) { /* missing: the parser names it */
            free(p);
            continue;
        }
        if (input_open(p, &in->ext[in->ext_count]) != 0)
            rc = -1;
        free(p);
        if (rc != 0)
            break;
        in->ext_ref[in->ext_count] =
            (struct sq_external){names[i], in->ext[in->ext_count].map, in->ext[in->ext_count].len};
        in->ext_count++;
    }
    in->names = names;
    in->name_count = n;
    return rc;
}

static int load_model(const char *path, struct input *in, struct sq_model *model)
{
    if (input_open(path, in) != 0)
        return -1;
    struct sq_limits limits;
    sq_limits_init(&limits);
    struct sq_error err;
    sq_error_init(&err);
    sq_model_init(model);
    enum sq_format f = sq_format_detect(in->map ? in->map : (const uint8_t *)"", in->len);
    if (f == SQ_FORMAT_ONNX && open_externals(path, in, &limits) != 0) {
        input_close(in);
        return -1;
    }
    enum sq_status st =
        f == SQ_FORMAT_ONNX
            ? sq_onnx_parse(in->map, in->len, in->ext_ref, in->ext_count, &limits, model, &err)
            : sq_model_parse(in->map, in->len, SQ_FORMAT_AUTO, &limits, "weight", model, &err);
    if (st != SQ_OK) {
        cli_fail_line(path, &err);
        sq_model_free(model);
        input_close(in);
        return -1;
    }
    return 0;
}

/* Write the whole buffer to path atomically (temp file + rename), or to stdout for "-". */
static int write_output(const char *path, const uint8_t *data, size_t len)
{
    if (strcmp(path, "-") == 0) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
            fprintf(stderr, "squant: writing to standard output: %s\n", strerror(errno));
            return -1;
        }
        return 0;
    }
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp) {
        fprintf(stderr, "squant: out of memory\n");
        return -1;
    }
    snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "squant: %s: %s\n", path, strerror(errno));
        free(tmp);
        return -1;
    }
    int ok = sqi_write_full(fd, data, len, -1) && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "squant: %s: %s\n", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* ------------------------------------------------------------ running a plan */

/* Runs the plan's items on libuv's thread pool, as the daemon does. */
struct runner {
    struct sq_plan *plan;
    uv_work_t *reqs;
    size_t done, layers_done, total_layers;
    size_t *layer_left;        /* items still to run per layer */
    size_t failed_item;        /* lowest failed item, or SIZE_MAX */
    struct sq_error first_err; /* its error */
    struct sq_error *errs;     /* one per item, written by the worker */
    enum sq_status *status;
    bool progress;
};

static void work_cb(uv_work_t *req)
{
    struct runner *r = req->data;
    size_t i = (size_t)(req - r->reqs);
    r->status[i] = sq_plan_run(r->plan, i, &r->errs[i]);
}

static void after_cb(uv_work_t *req, int status)
{
    struct runner *r = req->data;
    size_t i = (size_t)(req - r->reqs);
    r->done++;
    if (status == UV_ECANCELED)
        return;
    if (r->status[i] != SQ_OK) {
        if (i < r->failed_item) {
            r->failed_item = i;
            r->first_err = r->errs[i];
        }
        /* Stop what has not started; uv_cancel fails harmlessly on running items. */
        for (size_t j = 0; j < sq_plan_item_count(r->plan); j++)
            uv_cancel((uv_req_t *)&r->reqs[j]);
        return;
    }
    size_t layer = sq_plan_item_layer(r->plan, i);
    if (--r->layer_left[layer] == 0) {
        r->layers_done++;
        if (r->progress)
            fprintf(stderr, "\rsquant: %zu/%zu layers", r->layers_done, r->total_layers);
    }
}

static int run_plan(struct sq_plan *plan, bool progress, const char *path)
{
    size_t n = sq_plan_item_count(plan), layers = sq_plan_layer_count(plan);
    struct runner r = {
        .plan = plan, .failed_item = SIZE_MAX, .total_layers = layers, .progress = progress};
    r.reqs = calloc(n, sizeof *r.reqs);
    r.errs = calloc(n, sizeof *r.errs);
    r.status = calloc(n, sizeof *r.status);
    r.layer_left = calloc(layers, sizeof *r.layer_left);
    uv_loop_t loop;
    int rc = -1;
    if (!r.reqs || !r.errs || !r.status || !r.layer_left || uv_loop_init(&loop) != 0) {
        fprintf(stderr, "squant: out of memory\n");
        goto out;
    }
    for (size_t l = 0; l < layers; l++) {
        struct sq_layer_info info;
        sq_plan_layer_info(plan, l, &info);
        r.layer_left[l] = info.items;
    }
    for (size_t i = 0; i < n; i++) {
        sq_error_init(&r.errs[i]);
        r.reqs[i].data = &r;
        if (uv_queue_work(&loop, &r.reqs[i], work_cb, after_cb) != 0) {
            fprintf(stderr, "squant: cannot queue work\n");
            break;
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (progress)
        fputc('\n', stderr);
    if (r.failed_item != SIZE_MAX)
        cli_fail_line(path, &r.first_err);
    else if (r.done == n)
        rc = 0;
out:
    free(r.reqs);
    free(r.errs);
    free(r.status);
    free(r.layer_left);
    return rc;
}

static void print_shape(char *buf, size_t size, unsigned rank, const int64_t *shape)
{
    size_t o = 0;
    for (unsigned i = 0; i < rank && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%lld", i ? "x" : "", (long long)shape[i]);
    if (rank == 0)
        snprintf(buf, size, "scalar");
}

/* A number of a report object, 0 when absent. */
static double num(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

/* A fraction as a percentage cell: "67.7%". */
static void print_pct(double f)
{
    printf(" %10.1f%%", 100.0 * f);
}

/*
 * The report as a table: what SQuant optimizes first (how much smaller the
 * largest kernel and channel residual are than round to nearest's, then
 * the residuals themselves), then the element-wise errors, the flips, and
 * what identifies the layer. `ms` only when the report has timings (a fresh
 * run; a stored report has none).
 */
static int print_table(json_t *report, FILE *err_out)
{
    json_t *layers = json_object_get(report, "layers"), *total = json_object_get(report, "total");
    if (!json_is_array(layers) || !json_is_object(total)) {
        fputs("squant: the report has no layers or no total\n", err_out);
        return -1;
    }
    bool timed = json_object_get(total, "seconds") != NULL;
    int w = 5;
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        const char *name = json_string_value(json_object_get(l, "name"));
        int len = name ? (int)strlen(name) : 0;
        w = len > w ? (len < 60 ? len : 60) : w;
    }
    printf("%-*s  %11s %11s %11s %11s %11s %11s %11s %11s %7s %7s %7s %4s %5s %6s  %-*s%s\n", w,
           "layer", "kernel_cut", "channel_cut", "kernel_res", "rtn_kernel", "channel_res",
           "rtn_channel", "mse", "rtn_mse", "flips", "k_flips", "c_flips", "bits", "group", "bpw",
           timed ? 14 : 0, "shape", timed ? "        ms" : "");
    json_array_foreach(layers, i, l)
    {
        char shape[64] = "";
        size_t o = 0, d;
        json_t *dim;
        json_array_foreach(json_object_get(l, "shape"), d, dim)
        {
            if (o < sizeof shape)
                o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%lld", d ? "x" : "",
                                      (long long)json_integer_value(dim));
        }
        printf("%-*s ", w, json_string_value(json_object_get(l, "name")));
        print_pct(num(l, "kernel_residual_reduction"));
        print_pct(num(l, "channel_residual_reduction"));
        printf(" %11.4f %11.4f %11.4f %11.4f %11.4e %11.4e %7lld %7lld %7lld %4lld %5lld %6.3f  "
               "%-*s",
               num(l, "max_kernel_residual"), num(l, "rtn_max_kernel_residual"),
               num(l, "max_channel_residual"), num(l, "rtn_max_channel_residual"), num(l, "mse"),
               num(l, "rtn_mse"), (long long)json_integer_value(json_object_get(l, "flips")),
               (long long)json_integer_value(json_object_get(l, "kernel_flips")),
               (long long)json_integer_value(json_object_get(l, "channel_flips")),
               (long long)json_integer_value(json_object_get(l, "bits")),
               (long long)json_integer_value(json_object_get(l, "group")),
               num(l, "bits_per_weight"), timed ? 14 : 0, shape);
        if (timed)
            printf(" %9.3f", num(l, "seconds") * 1e3);
        putchar('\n');
    }
    printf("%-*s ", w, "total");
    print_pct(num(total, "kernel_residual_reduction"));
    print_pct(num(total, "channel_residual_reduction"));
    printf(" %11s %11s %11s %11s %11.4e %11.4e %7lld %7s %7s %4s %5s %6.3f  %-*lld", "", "", "", "",
           num(total, "mse"), num(total, "rtn_mse"),
           (long long)json_integer_value(json_object_get(total, "flips")), "", "", "", "",
           num(total, "bits_per_weight"), timed ? 14 : 0,
           (long long)json_integer_value(json_object_get(total, "weights")));
    if (timed)
        printf(" %9.3f", num(total, "seconds") * 1e3);
    putchar('\n');
    return 0;
}

/* Print a report document (text) as the table, or as indented JSON. */
static int print_report(const char *text, bool json, const char *path)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        fprintf(stderr, "squant: %s: the report is not a JSON object (%s)\n", path, jerr.text);
        json_decref(doc);
        return -1;
    }
    int rc = 0;
    if (json) {
        char *out = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        if (out)
            printf("%s\n", out);
        rc = out ? 0 : -1;
        free(out);
    } else {
        rc = print_table(doc, stderr);
    }
    json_decref(doc);
    return rc;
}

static int set_option(struct sq_options *opt, const char *key, const char *value)
{
    struct sq_error err;
    sq_error_init(&err);
    if (sq_options_set(opt, key, value, &err) != SQ_OK) {
        fprintf(stderr, "squant: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int cmd_quantize(int argc, char **argv)
{
    static const struct option longopts[] = {{"bits", required_argument, NULL, 'b'},
                                             {"mode", required_argument, NULL, 'm'},
                                             {"scheme", required_argument, NULL, 's'},
                                             {"include", required_argument, NULL, 'i'},
                                             {"exclude", required_argument, NULL, 'x'},
                                             {"bits-for", required_argument, NULL, 'B'},
                                             {"format", required_argument, NULL, 'f'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"impl", required_argument, NULL, 'I'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"output", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"group", required_argument, NULL, 'g'},
                                             {"group-for", required_argument, NULL, 'G'},
                                             {"scale-dtype", required_argument, NULL, 'S'},
                                             {"dequantized", no_argument, NULL, 'D'},
                                             {"packing", required_argument, NULL, 'P'},
                                             {NULL, 0, NULL, 0}};
    static const struct {
        int flag;
        const char *key;
    } keys[] = {{'b', "bits"},    {'m', "mode"},      {'s', "scheme"},      {'i', "include"},
                {'x', "exclude"}, {'B', "bits_for"},  {'f', "format"},      {'I', "impl"},
                {'g', "group"},   {'G', "group_for"}, {'S', "scale_dtype"}, {'P', "packing"}};
    struct sq_options opt;
    sq_options_init(&opt);
    const char *out_path = NULL;
    bool json = false, quiet = false;
    int c, rc = 2;
    opterr = 0; /* one error line, ours */
    while ((c = getopt_long(argc, argv, "b:m:s:i:x:B:g:G:f:t:jqo:h", longopts, NULL)) != -1) {
        const char *key = NULL;
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            if (keys[k].flag == c)
                key = keys[k].key;
        if (key) {
            if (set_option(&opt, key, optarg) != 0)
                goto done;
        } else if (c == 't') {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (*end || t < 1 || t > 1024) {
                fprintf(stderr, "squant: --threads must be 1..1024\n");
                goto done;
            }
            setenv("UV_THREADPOOL_SIZE", optarg, 1);
        } else if (c == 'D') {
            if (set_option(&opt, "format", "dequantized") != 0)
                goto done;
        } else if (c == 'j') {
            json = true;
        } else if (c == 'q') {
            quiet = true;
        } else if (c == 'o') {
            out_path = optarg;
        } else if (c == 'h') {
            fputs(usage_text, stdout);
            rc = 0;
            goto done;
        } else {
            fprintf(stderr, "squant quantize: %s '%s' (see squant --help)\n",
                    c == ':' || (c == '?' && optopt && strchr("bmsixBgGfto", optopt))
                        ? "missing value for"
                        : "unknown option",
                    argv[optind - 1]);
            goto done;
        }
    }
    if (optind + 1 != argc || !out_path) {
        fprintf(stderr, "squant quantize: expected one input file and -o OUT\n");
        goto done;
    }
    if (!getenv("UV_THREADPOOL_SIZE")) {
        char n[24];
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(n, sizeof n, "%ld", cores > 0 ? cores : 1);
        setenv("UV_THREADPOOL_SIZE", n, 1);
    }
    rc = 1;
    const char *in_path = argv[optind];
    struct input in;
    struct sq_model model;
    if (load_model(in_path, &in, &model) != 0)
        goto done;
    struct sq_plan *plan = NULL;
    struct sq_error err;
    sq_error_init(&err);
    uint8_t *out = NULL;
    size_t out_len = 0;
    /* safetensors is streamed with bounded memory; npy and json are assembled in memory */
    bool stream = opt.packing == SQ_PACKING_NONE &&
                  (opt.output == SQ_FORMAT_SAFETENSORS ||
                   (opt.output == SQ_FORMAT_AUTO && !sq_model_is_onnx(&model, NULL)));
    if ((stream ? sq_plan_new_streaming : sq_plan_new)(&model, &opt, &plan, &err) != SQ_OK) {
        cli_fail_line(in_path, &err);
    } else if (stream) {
        bool progress = !quiet && !json && isatty(2) && sq_plan_layer_count(plan) > 8;
        if (cli_quantize_streaming(plan, &model, in.map, in.len, out_path, progress, in_path) == 0)
            rc = 0;
    } else if (run_plan(plan, !quiet && !json && isatty(2) && sq_plan_layer_count(plan) > 8,
                        in_path) == 0) {
        if (sq_plan_write(plan, opt.output, OUTPUT_LIMIT, &out, &out_len, &err) != SQ_OK)
            cli_fail_line(in_path, &err);
        else if (write_output(out_path, out, out_len) == 0)
            rc = 0;
    }
    /* --json is asked for explicitly: printed even with --quiet. */
    if (rc == 0 && (json || !quiet)) {
        char *text = NULL;
        if (sq_plan_report_json(plan, true, &text, &err) != SQ_OK ||
            print_report(text, json, in_path) != 0)
            rc = 1;
        free(text);
    }
    free(out);
    sq_plan_free(plan);
    sq_model_free(&model);
    input_close(&in);
done:
    sq_options_free(&opt);
    return rc;
}

/* "-h" or "--help" among a command's arguments: print the usage. */
static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return true;
        }
    return false;
}

static int cmd_inspect(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return 0;
    if (argc != 2) {
        fprintf(stderr, "squant inspect: expected one file\n");
        return 2;
    }
    struct input in;
    struct sq_model model;
    if (load_model(argv[1], &in, &model) != 0)
        return 1;
    struct sq_onnx_tensor_info oi;
    int64_t opset = 0;
    bool onnx = sq_model_is_onnx(&model, &opset);
    if (onnx)
        printf("%-40s %-8s %-20s %12s  %-14s %4s %s\n", "tensor", "dtype", "shape", "bytes",
               "operator", "axis", "source");
    else
        printf("%-40s %-8s %-20s %12s\n", "tensor", "dtype", "shape", "bytes");
    for (size_t i = 0; i < model.count; i++) {
        const struct sq_tensor *t = &model.tensors[i];
        char shape[96];
        if (onnx && sq_onnx_tensor_info(&model, i, &oi)) {
            print_shape(shape, sizeof shape, oi.rank, oi.dims);
            printf("%-40s %-8s %-20s %12zu  %-14s %4d %s\n", t->name, sq_dtype_name(t->dtype),
                   shape, t->nbytes, oi.op, oi.axis, oi.constant_node ? "Constant" : "initializer");
            continue;
        }
        print_shape(shape, sizeof shape, t->rank, t->shape);
        printf("%-40s %-8s %-20s %12zu\n", t->name, sq_dtype_name(t->dtype), shape, t->nbytes);
    }
    const char *sk_name, *sk_why;
    size_t skipped = sq_onnx_skipped(&model, 0, &sk_name, &sk_why);
    for (size_t i = 0; i < skipped; i++) {
        sq_onnx_skipped(&model, i, &sk_name, &sk_why);
        printf("left float: %s: %s\n", sk_name, sk_why);
    }
    if (onnx)
        printf("onnx: opset %lld, %zu weights to quantize\n", (long long)opset, model.count);
    for (size_t i = 0; i < model.meta_count; i++)
        printf("metadata %s: %zu bytes\n", model.meta[i].key, strlen(model.meta[i].value));
    sq_model_free(&model);
    input_close(&in);
    return 0;
}

/*
 * The report a quantized file carries: the metadata entry "squant", however
 * the format stores it. Safetensors keeps it in __metadata__; a format
 * whose parser fills the model's metadata the same way (ONNX's
 * metadata_props) needs nothing here. Borrowed from the model, or NULL.
 */
static const char *stored_report(const struct sq_model *model)
{
    for (size_t i = 0; i < model->meta_count; i++)
        if (strcmp(model->meta[i].key, "squant") == 0)
            return model->meta[i].value;
    return NULL;
}

static int cmd_report(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return 0;
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-j") == 0 || strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "squant report: unknown option '%s' (see squant --help)\n", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            path = NULL;
            break;
        }
    }
    if (!path) {
        fprintf(stderr, "squant report: expected one file\n");
        return 2;
    }
    struct input in;
    struct sq_model model;
    if (load_model(path, &in, &model) != 0)
        return 1;
    const char *text = stored_report(&model);
    int rc = 1;
    if (!text)
        fprintf(stderr, "squant: %s: no squant report in its metadata (not written by squant?)\n",
                path);
    else if (print_report(text, json, path) == 0)
        rc = 0;
    sq_model_free(&model);
    input_close(&in);
    return rc;
}

static int cmd_dequantize(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return 0;
    const char *out_path = NULL, *in_path = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc)
            out_path = argv[++i];
        else if (!in_path)
            in_path = argv[i];
        else
            in_path = NULL, i = argc;
    }
    if (!in_path || !out_path) {
        fprintf(stderr, "squant dequantize: expected one input file and -o OUT\n");
        return 2;
    }
    struct input in;
    struct sq_model model, out;
    if (input_open(in_path, &in) != 0)
        return 1;
    if (sq_format_detect(in.map ? in.map : (const uint8_t *)"", in.len) == SQ_FORMAT_ONNX) {
        /* ONNX: the QDQ subgraphs folded back into float weights, the rest kept */
        struct sq_error e;
        sq_error_init(&e);
        struct sq_limits limits;
        sq_limits_init(&limits);
        uint8_t *b = NULL;
        size_t n = 0, restored = 0;
        int orc = 1;
        if (sq_onnx_dequantize(in.map, in.len, &limits, OUTPUT_LIMIT, &b, &n, &restored, &e) !=
            SQ_OK)
            cli_fail_line(in_path, &e);
        else if (write_output(out_path, b, n) == 0)
            orc = 0;
        free(b);
        input_close(&in);
        return orc;
    }
    input_close(&in);
    if (load_model(in_path, &in, &model) != 0)
        return 1;
    sq_model_init(&out);
    struct sq_error err;
    sq_error_init(&err);
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = 1;
    if (sq_dequantize_model(&model, &out, &err) != SQ_OK ||
        sq_safetensors_write(&out, OUTPUT_LIMIT, &bytes, &len, &err) != SQ_OK)
        cli_fail_line(in_path, &err);
    else if (write_output(out_path, bytes, len) == 0)
        rc = 0;
    free(bytes);
    sq_model_free(&out);
    sq_model_free(&model);
    input_close(&in);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0) {
        printf("squant %s\n", SQ_VERSION_STRING);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "quantize") == 0)
        return cmd_quantize(argc - 1, argv + 1);
    if (strcmp(cmd, "inspect") == 0)
        return cmd_inspect(argc - 1, argv + 1);
    if (strcmp(cmd, "dequantize") == 0)
        return cmd_dequantize(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    fprintf(stderr, "squant: unknown command '%s' (see squant --help)\n", cmd);
    return 2;
}

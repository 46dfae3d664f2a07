/* command_common.c: shared pieces of the commands (see command_common.h). */
#define _XOPEN_SOURCE 700
#include "command_common.h"

#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/progress.h"
#include "../data/md5.h"

int FN(command_fail)(const char *command) {
    fprintf(stderr, "hessian %s: error: %s\n", command, hs_last_error());
    return EXIT_ERROR;
}

int FN(command_usage_error)(const char *command) {
    fprintf(stderr, "hessian %s: %s\n", command, hs_last_error());
    return EXIT_USAGE;
}

int FN(command_report)(const char *command, int status) {
    return status == EXIT_USAGE ? FN(command_usage_error)(command) : FN(command_fail)(command);
}

int FN(command_open_model)(const char *arch, const char *checkpoint, uint64_t seed, int allow_swap, Model **m) {
    HS_TRY(FN(model_create)(arch, seed, m));
    if (!checkpoint) return 0;
    char note[512];
    if (FN(model_load)(*m, checkpoint, allow_swap, note, sizeof note) != 0) {
        FN(model_free)(*m);
        *m = NULL;
        return -1;
    }
    if (note[0]) fprintf(stderr, "note: %s\n", note);
    return 0;
}

/* --indices FILE: an int32/int64 (n,) array of distinct indices in [0, total), kept in the file's order. */
static int FN(selection_from_file)(const char *path, int total, const char *noun, int **indices, int *count) {
    NpyRaw raw = {0};
    if (npy_read_raw(path, &raw) != 0) return hs_error_context("--indices %s: ", path);
    int rc = -1;
    unsigned char *seen = NULL;
    if (raw.dtype != NPY_I32 && raw.dtype != NPY_I64) {
        hs_error("--indices %s holds %s values: sample indices must be int32 or int64", path,
                 npy_dtype_name(raw.dtype));
        goto done;
    }
    if (raw.ndim != 1) {
        hs_error("--indices %s has %d dimensions: expected shape (n,), one sample index per entry", path, raw.ndim);
        goto done;
    }
    if (raw.numel == 0 || raw.numel > total) {
        hs_error("--indices %s holds %lld indices: expected 1 to %d (the %d %s, each at most once)", path,
                 (long long)raw.numel, total, total, noun);
        goto done;
    }
    int n = (int)raw.numel;
    seen = hs_calloc((size_t)total, 1);
    *indices = hs_malloc(sizeof(int) * (size_t)n);
    if (!seen || !*indices) goto done;
    for (int i = 0; i < n; i++) {
        int64_t x = raw.dtype == NPY_I32 ? ((const int32_t *)raw.data)[i] : ((const int64_t *)raw.data)[i];
        if (x < 0 || x >= total) {
            hs_error("--indices %s: entry %d is %lld, outside [0, %d) (the %d %s)", path, i, (long long)x, total,
                     total, noun);
            goto done;
        }
        if (seen[x]) { /* a Hessian over a set counts each sample once */
            hs_error("--indices %s: sample %lld appears more than once (entry %d); each sample may appear once", path,
                     (long long)x, i);
            goto done;
        }
        seen[x] = 1;
        (*indices)[i] = (int)x;
    }
    *count = n;
    rc = 0;
done:
    if (rc != 0) {
        free(*indices);
        *indices = NULL;
    }
    free(seen);
    npy_raw_free(&raw);
    return rc;
}

int FN(command_selection)(const SampleSource *src, const char *samples, int offset, const char *indices_file,
                          int **indices, int *count) {
    int n, total = (int)src->count;
    const char *noun = strcmp(src->unit, "images") == 0 ? "training images" : "samples";
    *indices = NULL;
    if (indices_file) return FN(selection_from_file)(indices_file, total, noun, indices, count);
    if (offset < 0) return hs_error("--offset must be >= 0 (got %d)", offset);
    if (offset >= total) return hs_error("--offset %d is past the %d %s", offset, total, noun);
    if (!samples || strcmp(samples, "all") == 0) {
        n = total - offset;
    } else {
        int x;
        if (args_parse_int(samples, &x) != 0 || x <= 0)
            return hs_error("--samples must be a positive integer or 'all' (got '%s')", samples);
        if (x > total - offset)
            return hs_error("--samples %d with --offset %d needs %lld %s, only %d exist", x, offset,
                            (long long)x + offset, noun, total);
        n = x;
    }
    *indices = hs_malloc(sizeof(int) * (size_t)n);
    if (!*indices) return -1;
    for (int i = 0; i < n; i++) (*indices)[i] = offset + i;
    *count = n;
    return 0;
}

int FN(command_data_options)(int argc, char **argv, const char *data_dir, const char *inputs, const char *targets,
                             const char *loss_name, LossKind *loss) {
    HS_TRY(args_check_exclusive(argc, argv, "--data", "--inputs",
                                "CIFAR-10 from a folder, or your own arrays from .npy files"));
    if (targets && !inputs) return hs_error("--targets needs --inputs FILE (the inputs the targets belong to)");
    if (inputs && !targets)
        return hs_error("--inputs needs --targets FILE (.npy class labels (N,) or target values (N, outputs))");
    if (!data_dir && !inputs)
        return hs_error("needs --data DIR (CIFAR-10), or --inputs FILE --targets FILE (.npy arrays)");
    if (!loss_name || strcmp(loss_name, "cross-entropy") == 0) *loss = LOSS_CROSS_ENTROPY;
    else if (strcmp(loss_name, "mse") == 0) *loss = LOSS_MSE;
    else return hs_error("--loss must be cross-entropy or mse (got '%s')", loss_name);
    if (*loss == LOSS_MSE && data_dir)
        return hs_error("--loss mse needs real-valued targets (--inputs FILE --targets FILE with float targets); "
                        "CIFAR-10 (--data) has class labels");
    return 0;
}

int FN(command_open_source)(const char *data_dir, Cifar10Split split, const char *inputs, const char *targets,
                            SampleSource *src) {
    if (data_dir) return samples_from_cifar10(data_dir, split, src);
    return samples_from_npy(inputs, targets, src);
}

int FN(command_check_source)(Model *m, LossKind loss, const SampleSource *src, const char *options) {
    m->loss = loss;
    if (FN(curv_check_source)(m, src) == 0) return 0;
    return hs_error_context("%s: ", options);
}

int FN(command_set_threads)(int threads) {
    if (threads < 0 || threads > HS_MAX_THREADS)
        return hs_error("--threads must be in [1, %d], or 0 for the default (got %d)", HS_MAX_THREADS, threads);
    if (threads > 0) omp_set_num_threads(threads);
    return 0;
}

/* MD5 of a file as hex, or NULL when it cannot be read. Data files are large and read-only: their hashes
 * are kept for the process (a run writes its JSON more than once). */
static const char *FN(file_md5)(const char *path, int cache) {
    static struct {
        char path[1024], hex[33];
    } cached[16];
    static int used;
    static char hex[33];
    for (int i = 0; cache && i < used; i++)
        if (strcmp(cached[i].path, path) == 0) return cached[i].hex;
    if (md5_file_hex(path, hex) != 0) return NULL;
    if (cache && used < 16 && strlen(path) < sizeof cached[0].path) {
        snprintf(cached[used].path, sizeof cached[used].path, "%s", path);
        memcpy(cached[used].hex, hex, sizeof hex);
        return cached[used++].hex;
    }
    return hex;
}

static void FN(write_file_md5)(JsonWriter *w, const char *path, int cache) {
    const char *hex = FN(file_md5)(path, cache);
    if (hex) json_string(w, hex);
    else json_null(w);
}

/* The CIFAR-10 files a command reads (cifar10_load's layout: DIR/cifar-10-batches-bin/ or DIR itself). */
static void FN(write_data_files)(JsonWriter *w, const char *command, const char *dir) {
    static const char *const files[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                        "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    int first = strcmp(command, "eval") == 0 ? 5 : 0, last = strcmp(command, "train") == 0 || first ? 6 : 5;
    json_key(w, "data");
    json_object_begin(w);
    json_key(w, "dir");
    json_string(w, dir);
    json_key(w, "md5");
    json_object_begin(w);
    for (int i = first; i < last; i++) {
        char path[1200];
        struct stat st;
        snprintf(path, sizeof path, "%s/cifar-10-batches-bin/%s", dir, files[i]);
        if (stat(path, &st) != 0) snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        json_key(w, files[i]);
        FN(write_file_md5)(w, path, 1);
    }
    json_object_end(w);
    json_object_end(w);
}

void FN(command_write_provenance)(JsonWriter *w, const char *command, const char *arch, const char *checkpoint) {
    static const char *const input_options[] = {"--checkpoint", "--init",   "--resume",      "--vector",
                                                "--start",      "--exact",  "--inputs",      "--targets",
                                                "--test-inputs", "--test-targets", "--indices"};
    int argc;
    char **argv;
    args_get_command_line(&argc, &argv);
    json_key(w, "provenance");
    json_object_begin(w);
    json_key(w, "tool");
    json_string(w, "hessian");
    json_key(w, "version");
    json_string(w, HS_VERSION);
    json_key(w, "git_commit");
    json_string(w, hs_git_commit());
    json_key(w, "command");
    json_string(w, command);
    json_key(w, "command_line");
    char *line = argv ? args_shell_join(argc, argv) : NULL;
    if (line) json_string(w, line);
    else json_null(w);
    free(line);
    json_key(w, "model");
    json_string(w, arch);
    json_key(w, "checkpoint");
    if (checkpoint) json_string(w, checkpoint);
    else json_null(w);
    json_key(w, "checkpoint_md5");
    if (checkpoint) FN(write_file_md5)(w, checkpoint, 0);
    else json_null(w);
    json_key(w, "precision");
    json_string(w, HS_PRECISION_NAME);
    json_key(w, "threads");
    json_int(w, omp_get_max_threads());
    char cpu[256];
    hs_cpu_model(cpu, sizeof cpu);
    json_key(w, "cpu_model");
    json_string(w, cpu);
    /* The command's own arguments follow "hessian COMMAND". */
    int nargs = argv && argc > 2 ? argc - 2 : 0;
    char **args = argv ? argv + 2 : NULL;
    const char *data = nargs ? args_find_value(nargs, args, "--data") : NULL;
    if (data) FN(write_data_files)(w, command, data);
    json_key(w, "input_files");
    json_array_begin(w);
    for (size_t i = 0; i < sizeof input_options / sizeof input_options[0] && nargs; i++) {
        const char *path = args_find_value(nargs, args, input_options[i]);
        if (!path || (checkpoint && strcmp(path, checkpoint) == 0)) continue;
        json_object_begin(w);
        json_key(w, "option");
        json_string(w, input_options[i]);
        json_key(w, "path");
        json_string(w, path);
        json_key(w, "md5");
        FN(write_file_md5)(w, path, 0);
        json_object_end(w);
    }
    json_array_end(w);
    json_object_end(w);
}

/* "DIR/NAME" with DIR resolved (realpath), for comparing files that may not exist yet; 0 or -1 (DIR is
 * missing). */
static int FN(canonical_path)(const char *path, char *out, size_t size) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    char *resolved = realpath(dir, NULL);
    if (!resolved) return -1;
    snprintf(out, size, "%s/%s", resolved, base);
    free(resolved);
    return 0;
}

int FN(command_check_files)(const CommandFile *outputs, int n_outputs, const CommandFile *inputs, int n_inputs) {
    char a[8192], b[8192];
    for (int i = 0; i < n_inputs; i++) {
        if (!inputs[i].path) continue;
        struct stat st;
        if (stat(inputs[i].path, &st) != 0 || access(inputs[i].path, R_OK) != 0) {
            hs_error("%s %s: %s", inputs[i].option, inputs[i].path, strerror(errno));
            return EXIT_ERROR;
        }
        if (S_ISDIR(st.st_mode)) {
            hs_error("%s %s is a folder, not a file", inputs[i].option, inputs[i].path);
            return EXIT_ERROR;
        }
    }
    for (int i = 0; i < n_outputs; i++) {
        const char *path = outputs[i].path;
        if (!path) continue;
        size_t len = strlen(path);
        struct stat st;
        if (len == 0 || path[len - 1] == '/' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
            hs_error("%s %s names a folder; it needs a file name", outputs[i].option, path);
            return EXIT_ERROR;
        }
        const char *slash = strrchr(path, '/');
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            hs_error("%s %s: the folder %s does not exist", outputs[i].option, path, dir);
            return EXIT_ERROR;
        }
        if (access(dir, W_OK | X_OK) != 0) {
            hs_error("%s %s: cannot write in the folder %s: %s", outputs[i].option, path, dir, strerror(errno));
            return EXIT_ERROR;
        }
        if (FN(canonical_path)(path, a, sizeof a) != 0) {
            hs_error("%s %s: %s", outputs[i].option, path, strerror(errno));
            return EXIT_ERROR;
        }
        for (int j = 0; j < n_outputs + n_inputs; j++) {
            const CommandFile *other = j < n_outputs ? &outputs[j] : &inputs[j - n_outputs];
            if (j == i || !other->path || FN(canonical_path)(other->path, b, sizeof b) != 0 || strcmp(a, b) != 0)
                continue;
            if (j < n_outputs)
                hs_error("%s and %s both name the file %s", outputs[j < i ? j : i].option,
                         outputs[j < i ? i : j].option, path);
            else
                hs_error("%s %s would overwrite the input %s %s", outputs[i].option, path, other->option,
                         other->path);
            return EXIT_USAGE;
        }
    }
    return 0;
}

int FN(command_curvature)(const char *value, Curvature *c) {
    if (!value || strcmp(value, "hessian") == 0) *c = CURVATURE_HESSIAN;
    else if (strcmp(value, "ggn") == 0) *c = CURVATURE_GGN;
    else return hs_error("--curvature must be hessian or ggn (got '%s')", value);
    return 0;
}

void FN(common_defaults)(CommonOptions *o, const char *samples) {
    memset(o, 0, sizeof *o);
    o->arch = "cnn";
    o->samples = samples;
    o->precision = "f32";
    o->curvature_name = "hessian";
    o->bn = "eval";
}

static int FN(check_model_name)(const char *arch) {
    if (graph_builtin_exists(arch)) return 0;
    size_t n = strlen(arch);
    if (n > 5 && strcmp(arch + n - 5, ".onnx") == 0) return 0; /* read (and checked) by model_create */
    return hs_error("--model must be cnn, cnn_wide[H], resnet18, resnet50 or an ONNX file NAME.onnx (got '%s')", arch);
}

int FN(common_parse)(CommonOptions *o, int argc, char **argv, const char *usage, const ArgSpec *specs, int count) {
    o->argc = argc;
    o->argv = argv;
    int parsed = args_parse(argc, argv, usage, specs, count);
    if (parsed != 0) return parsed;
    int x;
    if (o->samples && strcmp(o->samples, "all") != 0 && (args_parse_int(o->samples, &x) != 0 || x <= 0))
        return hs_error("--samples must be a positive integer or 'all' (got '%s')", o->samples);
    if (FN(check_model_name)(o->arch) != 0 || FN(command_curvature)(o->curvature_name, &o->curvature) != 0 ||
        FN(command_set_threads)(o->threads) != 0)
        return -1;
    if (o->offset < 0) return hs_error("--offset must be >= 0 (got %d)", o->offset);
    if (o->chunk < 0) return hs_error("--chunk must be >= 0 (got %d)", o->chunk);
    if (strcmp(o->bn, "eval") != 0 && strcmp(o->bn, "batch") != 0)
        return hs_error("--bn must be eval or batch (got '%s')", o->bn);
    HS_TRY(args_check_exclusive(argc, argv, "--checkpoint", "--random-init",
                                "a checkpoint's weights or freshly initialised ones"));
    size_t len = strlen(o->arch);
    int onnx = len > 5 && strcmp(o->arch + len - 5, ".onnx") == 0; /* carries its weights */
    o->random_init_given = args_given(argc, argv, "--random-init");
    if (!o->checkpoint && !o->random_init_given && !onnx)
        return hs_error("needs --checkpoint FILE (the weights to study), or --random-init SEED to study freshly "
                        "initialised weights");
    HS_TRY(args_check_exclusive(argc, argv, "--indices", "--samples", "the sample set is the file's indices"));
    HS_TRY(args_check_exclusive(argc, argv, "--indices", "--offset", "the sample set is the file's indices"));
    HS_TRY(FN(command_data_options)(argc, argv, o->data_dir, o->inputs, o->targets, o->loss_name, &o->loss));
    if (o->quiet) progress_set_quiet(1);
    return 0;
}

void FN(write_common_json)(JsonWriter *w, const char *command, const CommonOptions *o, int count) {
    FN(command_write_provenance)(w, command, o->arch, o->checkpoint);
    json_key(w, "random_init");
    if (o->checkpoint || !o->random_init_given) json_null(w);
    else json_uint(w, o->random_init);
    json_key(w, "samples");
    json_int(w, count);
    json_key(w, "offset"); /* null with --indices (the file, in input_files, names the samples) */
    if (o->indices) json_null(w);
    else json_int(w, o->offset);
    json_key(w, "curvature");
    json_string(w, o->curvature == CURVATURE_GGN ? "ggn" : "hessian");
    json_key(w, "params");
    json_string(w, o->params ? o->params : "all");
    json_key(w, "batch_norm");
    json_string(w, o->bn);
    json_key(w, "chunk");
    json_int(w, o->chunk);
    json_key(w, "loss_function");
    json_string(w, o->loss == LOSS_MSE ? "mse" : "cross-entropy");
}

int FN(setup_model)(CommandSetup *s, const CommonOptions *o, const CommandFile *outputs, int n_outputs,
                    const CommandFile *inputs, int n_inputs) {
    memset(s, 0, sizeof *s);
    CommandFile in[11];
    if (n_inputs > 7) {
        hs_error("internal error: too many input files");
        return EXIT_ERROR;
    }
    in[0] = (CommandFile){"--checkpoint", o->checkpoint};
    if (n_inputs > 0) memcpy(in + 1, inputs, sizeof *inputs * (size_t)n_inputs);
    in[n_inputs + 1] = (CommandFile){"--inputs", o->inputs};
    in[n_inputs + 2] = (CommandFile){"--targets", o->targets};
    in[n_inputs + 3] = (CommandFile){"--indices", o->indices};
    int status = FN(command_check_files)(outputs, n_outputs, in, n_inputs + 4);
    if (status) return status;
    if (FN(command_open_model)(o->arch, o->checkpoint, o->random_init, 0, &s->model) != 0) return EXIT_ERROR;
    if (s->model->num_buffers == 0 && args_given(o->argc, o->argv, "--bn")) {
        hs_error("--bn has no effect: model %s has no batch norm; leave it out", o->arch);
        return EXIT_USAGE;
    }
    s->model->training = 0;
    s->model->bn_mode = strcmp(o->bn, "batch") == 0 ? BN_BATCH : BN_EVAL;
    s->model->loss = o->loss;
    int64_t *block;
    if (FN(param_block)(s->model, o->params, "--params", &block, &s->d) != 0) return EXIT_USAGE;
    free(block);
    if (s->d == 0) {
        hs_error("--params %s selects no parameters", o->params);
        return EXIT_USAGE;
    }
    if (o->params && strcmp(o->params, "all") != 0)
        snprintf(s->d_text, sizeof s->d_text, "the --params block %.60s of model %s has %lld parameters", o->params,
                 o->arch, (long long)s->d);
    else
        snprintf(s->d_text, sizeof s->d_text, "model %s has %lld parameters", o->arch, (long long)s->d);
    return 0;
}

int FN(setup_read_vector)(const CommandSetup *s, const char *option, const char *path, int max_rows,
                          NpyArray *v) {
    if (npy_read(path, v) != 0) {
        hs_error_context("%s: ", option);
        return EXIT_ERROR;
    }
    int64_t d = s->d;
    if (v->ndim == 1 && v->shape[0] != d) {
        hs_error("%s %s holds %lld values, but %s", option, path, (long long)v->numel, s->d_text);
        return EXIT_ERROR;
    }
    if (v->ndim == 1) return 0;
    if (v->ndim == 2 && v->shape[1] == d && v->shape[0] >= 1 && v->shape[0] <= max_rows) return 0;
    char shape[160] = "";
    size_t used = 0;
    for (int i = 0; i < v->ndim && used < sizeof shape - 24; i++)
        used += (size_t)snprintf(shape + used, sizeof shape - used, "%s%lld", i ? ", " : "", (long long)v->shape[i]);
    char rows[64];
    if (max_rows == 1) snprintf(rows, sizeof rows, "(1, %lld)", (long long)d);
    else if (max_rows == INT_MAX) snprintf(rows, sizeof rows, "(K, %lld) with K >= 1", (long long)d);
    else snprintf(rows, sizeof rows, "(K, %lld) with 1 <= K <= %d", (long long)d, max_rows);
    hs_error("%s %s has shape (%s%s): expected (%lld,) or %s, because %s", option, path, shape,
             v->ndim == 1 ? "," : "", (long long)d, rows, s->d_text);
    return EXIT_ERROR;
}

int FN(setup_data)(CommandSetup *s, const CommonOptions *o, int with_operator, int stochastic, int batch,
                   uint64_t seed) {
    if (FN(command_open_source)(o->data_dir, CIFAR10_TRAIN, o->inputs, o->targets, &s->source) != 0 ||
        FN(command_check_source)(s->model, o->loss, &s->source, o->data_dir ? "--data" : "--inputs/--targets") != 0 ||
        FN(command_selection)(&s->source, o->samples, o->offset, o->indices, &s->idx, &s->count) != 0)
        return EXIT_ERROR;
    if (!with_operator) return 0;
    if (stochastic && batch > s->count) {
        if (o->indices)
            hs_error("--batch %d is larger than the %d %s selected (--indices %s)", batch, s->count, s->source.unit,
                     o->indices);
        else
            hs_error("--batch %d is larger than the %d %s selected (--samples %s, --offset %d)", batch, s->count,
                     s->source.unit, o->samples, o->offset);
        return EXIT_USAGE;
    }
    if (FN(hessian_operator_init)(&s->hop, s->model, &s->source, s->idx, s->count, stochastic, batch, o->chunk, seed,
                                  o->curvature) != 0)
        return EXIT_ERROR;
    s->hop_ready = 1;
    if (FN(hessian_operator_set_block)(&s->hop, o->params, "--params") != 0) return EXIT_ERROR;
    s->op = FN(hessian_operator_linop)(&s->hop);
    return 0;
}

void FN(setup_close)(CommandSetup *s) {
    if (s->hop_ready) FN(hessian_operator_free)(&s->hop);
    free(s->idx);
    samples_free(&s->source);
    FN(model_free)(s->model);
}

int FN(setup_json_begin)(AtomicFile *af, JsonWriter *w, const char *path, const char *command, const CommonOptions *o,
                         const CommandSetup *s, const uint64_t *seed, int64_t hvps, double seconds) {
    HS_TRY(atomic_file_open(af, path));
    json_begin(w, af->fp);
    json_object_begin(w);
    FN(write_common_json)(w, command, o, s->count);
    json_key(w, "num_params");
    json_int(w, (int64_t)s->model->num_params);
    json_key(w, "d"); /* the operator's dimension (a block with --params) */
    json_int(w, s->d);
    if (s->hop_ready) {
        json_key(w, "operator");
        json_string(w, s->hop.stochastic ? "stochastic" : "fixed");
        json_key(w, "batch");
        json_int(w, s->hop.batch);
    }
    json_key(w, "seed");
    if (seed) json_uint(w, *seed);
    else json_null(w);
    json_key(w, "hvps");
    json_int(w, hvps);
    json_key(w, "seconds");
    json_double(w, seconds);
    return 0;
}

int FN(setup_json_end)(AtomicFile *af, JsonWriter *w) {
    json_object_end(w);
    json_end(w);
    return atomic_file_commit(af);
}

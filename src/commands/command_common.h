/* command_common.h: what the commands share (precision-generic): opening a model and its checkpoint,
 * loading data, turning --samples/--offset into a selection, the stochastic Hessian operator used by power
 * iteration, and a provenance block written into every result file. */
#ifndef HS_COMMAND_COMMON_H
#define HS_COMMAND_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "../cli/args.h"
#include "../core/progress.h"
#include "../core/rng.h"
#include "../curvature/curvature.h"
#include "../curvature/operator.h"
#include "../data/cifar10.h"
#include "../data/samples.h"
#include "../io/atomic_file.h"
#include "../io/json_writer.h"
#include "../io/npy.h"
#include "../models/model.h"
#include "../spectral/linop.h"

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

/* --threads accepts 0 (OMP_NUM_THREADS or all cores) or 1..HS_MAX_THREADS. */
#define HS_MAX_THREADS 1024

/* Prints "hessian CMD: error: message" for the current error and returns EXIT_ERROR. */
int FN(command_fail)(const char *command);
/* Prints "hessian CMD: message" and returns EXIT_USAGE. */
int FN(command_usage_error)(const char *command);
/* Prints the current error as command_fail (EXIT_ERROR) or command_usage_error (EXIT_USAGE) says; returns it. */
int FN(command_report)(const char *command, int status);

/* Creates the model and loads the checkpoint (if any); prints the classifier-swap note. */
int FN(command_open_model)(const char *arch, const char *checkpoint, uint64_t seed, int allow_swap, Model **m);

/* The selection: with indices_file (--indices, NULL: none) the distinct sample indices it holds (an int32 or
 * int64 .npy of shape (n,), each in [0, src->count), in the file's order); else "N" or "all" starting at
 * offset within the source's samples: indices offset..offset+N-1. */
int FN(command_selection)(const SampleSource *src, const char *samples, int offset, const char *indices_file,
                          int **indices, int *count);

/* The data options every data command shares: CIFAR-10 (--data DIR) or the user's arrays (--inputs X.npy
 * --targets Y.npy), exactly one of the two; --loss cross-entropy|mse (NULL: cross-entropy), which needs class
 * labels (CIFAR-10, or integer targets) or real targets respectively. 0, or -1 (usage error, message set). */
int FN(command_data_options)(int argc, char **argv, const char *data_dir, const char *inputs, const char *targets,
                             const char *loss_name, LossKind *loss);
/* Opens the samples: split `split` of CIFAR-10 in data_dir, or the arrays inputs/targets (data_dir NULL). */
int FN(command_open_source)(const char *data_dir, Cifar10Split split, const char *inputs, const char *targets,
                            SampleSource *src);
/* Sets the model's loss and checks the source against the model (curv_check_source), naming the options. */
int FN(command_check_source)(Model *m, LossKind loss, const SampleSource *src, const char *options);

/* Sets the OpenMP thread count (0: leave as is; at most HS_MAX_THREADS); BLAS runs inside OpenMP regions
 * single-threaded. */
int FN(command_set_threads)(int threads);

/* Provenance, everything needed to redo the result: {"tool", "version", "git_commit", "command",
 * "command_line" (shell-quoted), "model", "checkpoint", "checkpoint_md5", "precision", "threads",
 * "cpu_model", "data" (the folder and the MD5 of each CIFAR-10 file the command reads), "input_files" (every
 * other input file named on the command line, with its MD5)}. */
void FN(command_write_provenance)(JsonWriter *w, const char *command, const char *arch, const char *checkpoint);

/* A file named by an option ("--json", path); NULL paths are skipped. */
typedef struct {
    const char *option, *path;
} CommandFile;
/* Before any work: outputs must be distinct files, none an input file (EXIT_USAGE), in existing writable
 * folders and not folders themselves; inputs must be readable files (EXIT_ERROR). Returns 0 or the status,
 * message set. */
int FN(command_check_files)(const CommandFile *outputs, int n_outputs, const CommandFile *inputs, int n_inputs);


/* Options every second-order command shares (COMMON_SPECS lists them for args_parse). */
typedef struct {
    const char *arch, *checkpoint, *data_dir, *samples, *precision, *curvature_name, *json, *params, *bn;
    const char *inputs, *targets, *loss_name; /* --inputs X.npy --targets Y.npy instead of --data; --loss */
    const char *indices;  /* --indices I.npy: the sample set, instead of --samples/--offset */
    LossKind loss;
    int offset, chunk, threads, quiet;
    uint64_t random_init; /* --random-init SEED: weights from model_create's initialisation (no checkpoint) */
    int random_init_given; /* --random-init was on the command line (an ONNX model needs neither option) */
    Curvature curvature;
    int argc;             /* the command's arguments (for args_given) */
    char **argv;
} CommonOptions;

#define COMMON_SPECS(o)                                                                                           \
    {"--model NAME", ARG_STRING, &(o).arch, "cnn, resnet18, resnet50 or an ONNX file NAME.onnx", 0},                      \
        {"--checkpoint FILE", ARG_STRING, &(o).checkpoint, "safetensors checkpoint (this or --random-init)", 0}, \
        {"--random-init SEED", ARG_U64, &(o).random_init,                                                       \
         "no checkpoint: freshly initialised weights from this seed (default: none; needs one of the two)", 0},  \
        {"--data DIR", ARG_STRING, &(o).data_dir, "folder with cifar-10-batches-bin/ (or --inputs/--targets)", 0}, \
        {"--inputs FILE", ARG_STRING, &(o).inputs, ".npy inputs X (N, ...) float32/float64, instead of --data", 0}, \
        {"--targets FILE", ARG_STRING, &(o).targets, ".npy targets: int labels (N,) or float values (N, outputs)", \
         0},                                                                                                      \
        {"--loss cross-entropy|mse", ARG_STRING, &(o).loss_name, "cross-entropy (int labels) or mse (float targets) "         \
                                                    "(default cross-entropy)", 0},                                \
        {"--samples N|all", ARG_STRING, &(o).samples, "training samples used", 0},                              \
        {"--offset N", ARG_INT, &(o).offset, "first training sample (file order; CIFAR-10: data_batch_1 first)", \
         0},                                                                                                      \
        {"--indices FILE", ARG_STRING, &(o).indices, ".npy int32/int64 (n,): these distinct samples, instead of "  \
                                                     "--samples/--offset", 0},                                     \
        {"--chunk N", ARG_INT, &(o).chunk, "samples per pass, memory vs. speed (default 0: automatic)", 0},    \
        {"--curvature hessian|ggn", ARG_STRING, &(o).curvature_name, "the Hessian or the generalised Gauss-Newton " \
                                                                      "matrix", 0},                               \
        {"--precision f32|f64", ARG_STRING, &(o).precision, "working precision", 0},                           \
        {"--threads N", ARG_INT, &(o).threads,                                                                 \
         "OpenMP threads, 1 to 1024 (default 0: OMP_NUM_THREADS or all cores)", 0},                              \
        {"--json FILE", ARG_STRING, &(o).json, "write results as JSON", 0},                                     \
        {"--bn eval|batch", ARG_STRING, &(o).bn, "batch norm: running statistics or each chunk's statistics", 0}, \
        {"--params LIST", ARG_STRING, &(o).params, "restrict to the Hessian block of these tensors: names or "    \
                                                   "prefixes, comma-separated, e.g. 0.weight,3.weight or 7 "     \
                                                   "(default: all)", 0},                                          \
        {"--quiet", ARG_FLAG, &(o).quiet, "no progress output", 0}

void FN(common_defaults)(CommonOptions *o, const char *samples);
/* args_parse, then the shared checks: exactly one of --checkpoint and --random-init, a known model, the
 * values of --samples, --offset, --chunk, --curvature, --bn and --threads. 0, 1 (help printed) or -1 (usage
 * error, message set). */
int FN(common_parse)(CommonOptions *o, int argc, char **argv, const char *usage, const ArgSpec *specs, int count);
/* Provenance, samples, offset, curvature. */
void FN(write_common_json)(JsonWriter *w, const char *command, const CommonOptions *o, int count);

/* What a second-order command holds: model, the operator's dimension d (the --params block or every
 * parameter), data, selection, and (when asked for) the Hessian operator over the selection. */
typedef struct {
    Model *model;
    int64_t d;
    char d_text[160]; /* "model cnn has 5100 parameters" or "the --params block 9 has 310 parameters" */
    SampleSource source; /* the training samples */
    int *idx, count;
    HessianOperator hop;
    int hop_ready;
    LinOp op;
} CommandSetup;
/* Step 1, cheap, before any input is read: checks outputs and inputs (command_check_files; the checkpoint
 * is added to the inputs), opens the model and checks --params against its tensors. Returns 0, EXIT_ERROR or
 * EXIT_USAGE (message set). */
int FN(setup_model)(CommandSetup *s, const CommonOptions *o, const CommandFile *outputs, int n_outputs,
                    const CommandFile *inputs, int n_inputs);
/* Reads a vector for `option` of dimension s->d from a .npy file: shape (d,) or (K, d) with 1 <= K <=
 * max_rows (max_rows 1: only (1, d)). NaN or infinite entries are refused (npy_read). EXIT_ERROR on failure. */
int FN(setup_read_vector)(const CommandSetup *s, const char *option, const char *path, int max_rows,
                          NpyArray *v);
/* Step 2: training data, selection, and with with_operator the operator (stochastic/batch/seed: see
 * hessian_operator_init) restricted to --params. Returns 0, EXIT_ERROR or EXIT_USAGE (--batch larger than
 * the selection). */
int FN(setup_data)(CommandSetup *s, const CommonOptions *o, int with_operator, int stochastic, int batch,
                   uint64_t seed);
void FN(setup_close)(CommandSetup *s);
/* Opens a result file: provenance, selection, d, seed (NULL: the command has none), hvps (the products
 * made) and seconds; the caller adds its keys. */
int FN(setup_json_begin)(AtomicFile *af, JsonWriter *w, const char *path, const char *command,
                         const CommonOptions *o, const CommandSetup *s, const uint64_t *seed, int64_t hvps,
                         double seconds);
int FN(setup_json_end)(AtomicFile *af, JsonWriter *w);

/* Parses "hessian"/"ggn". */
int FN(command_curvature)(const char *value, Curvature *c);

#endif

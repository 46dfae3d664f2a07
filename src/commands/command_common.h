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
#include "../data/cifar10.h"
#include "../io/atomic_file.h"
#include "../io/json_writer.h"
#include "../models/model.h"
#include "../spectral/linop.h"

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

/* Prints "hessian CMD: message" for the current error and returns EXIT_ERROR. */
int FN(command_fail)(const char *command);

/* Creates the model and loads the checkpoint (if any); prints the classifier-swap note. */
int FN(command_open_model)(const char *arch, const char *checkpoint, uint64_t seed, int allow_swap, Model **m);

/* Selection "N" or "all", starting at offset, within the training set: indices offset..offset+N-1. */
int FN(command_selection)(const Cifar10 *train, const char *samples, int offset, int **indices, int *count);

/* Sets the OpenMP thread count (0: leave as is); BLAS runs inside OpenMP regions single-threaded. */
int FN(command_set_threads)(int threads);

/* Provenance: {"tool", "version", "command", "model", "checkpoint", "checkpoint_md5", "precision", "threads"}. */
void FN(command_write_provenance)(JsonWriter *w, const char *command, const char *arch, const char *checkpoint);

/* A Hessian (or GGN) operator on the model over samples, for src/spectral/ methods.
 *   fixed:      the same sample set for every product (deterministic operator)
 *   stochastic: a new batch of `batch` samples per product, from a seeded shuffled pass over the pool
 *               (unaugmented), reshuffled when the pool is used up. */
typedef struct {
    Model *model;
    const Cifar10 *data;
    Curvature curvature;
    int stochastic;
    int *pool;        /* (pool_count) image indices */
    int pool_count;
    int batch, position, chunk;
    Rng rng;
    double last_loss;
    int64_t samples_seen;
    /* Optional block (--params): the operator acts on these parameter indices only (the block of the
     * Hessian with those rows and columns); vectors have block_size entries. */
    int64_t *block;     /* (block_size) ascending indices into the parameter vector */
    int64_t block_size;
    double *full_v, *full_hv; /* (capacity, P) scatter/gather buffers */
    int capacity;
    int64_t products;   /* Hessian-vector products so far */
    struct Progress *progress; /* optional: updated after every product */
} HessianOperator;

int FN(hessian_operator_init)(HessianOperator *op, Model *m, const Cifar10 *data, const int *pool, int pool_count,
                              int stochastic, int batch, int chunk, uint64_t seed, Curvature curvature);
void FN(hessian_operator_free)(HessianOperator *op);
/* Restricts the operator to the parameters named in a comma-separated list: a tensor name ("0.weight") or a
 * prefix of names followed by '.' ("7" = 7.weight and 7.bias, "layer4" = every tensor of layer4). NULL or
 * "all": every parameter. Errors name the unknown entry and list the model's tensors. */
int FN(hessian_operator_set_block)(HessianOperator *op, const char *params);
/* Indices selected by such a list (malloc'd), for commands that work on dense matrices. */
int FN(command_param_block)(const Model *m, const char *params, int64_t **indices, int64_t *count);
LinOp FN(hessian_operator_linop)(HessianOperator *op);

/* Options every second-order command shares (COMMON_SPECS lists them for args_parse). */
typedef struct {
    const char *arch, *checkpoint, *data_dir, *samples, *precision, *curvature_name, *json, *params, *bn;
    int offset, chunk, threads, quiet;
    Curvature curvature;
} CommonOptions;

#define COMMON_SPECS(o)                                                                                           \
    {"--model", ARG_STRING, &(o).arch, "architecture: cnn", 0},                                                  \
        {"--checkpoint", ARG_STRING, &(o).checkpoint, "safetensors checkpoint (default: fresh initialisation)", 0}, \
        {"--data", ARG_STRING, &(o).data_dir, "folder with cifar-10-batches-bin/", 1},                           \
        {"--samples", ARG_STRING, &(o).samples, "training images used: N or all", 0},                            \
        {"--offset", ARG_INT, &(o).offset, "first training image (file order, data_batch_1 first)", 0},         \
        {"--chunk", ARG_INT, &(o).chunk, "samples per pass (memory vs. speed; 0: automatic)", 0},              \
        {"--curvature", ARG_STRING, &(o).curvature_name, "hessian or ggn (generalised Gauss-Newton)", 0},       \
        {"--precision", ARG_STRING, &(o).precision, "f32 or f64", 0},                                           \
        {"--threads", ARG_INT, &(o).threads, "OpenMP threads (0: default)", 0},                                 \
        {"--json", ARG_STRING, &(o).json, "write results as JSON", 0},                                          \
        {"--bn", ARG_STRING, &(o).bn, "batch norm: eval (running statistics) or batch (each chunk's statistics)", 0}, \
        {"--params", ARG_STRING, &(o).params, "restrict to the Hessian block of these tensors: names or prefixes, "\
                                               "comma-separated (e.g. 0.weight,3.weight or 7)", 0},                                          \
        {"--quiet", ARG_FLAG, &(o).quiet, "no progress output", 0}

void FN(common_defaults)(CommonOptions *o, const char *samples);
/* Range checks, curvature, threads, quiet. */
int FN(common_check)(const CommonOptions *o, Curvature *c);
/* Loads the training data, the selection and the model. */
int FN(common_open)(const CommonOptions *o, Model **m, Cifar10 *train, int **idx, int *count);
/* Provenance, samples, offset, curvature. */
void FN(write_common_json)(JsonWriter *w, const char *command, const CommonOptions *o, int count);

/* What a second-order command holds: data, selection, model, and (when asked for) the Hessian operator over
 * the selection, restricted to --params. */
typedef struct {
    Cifar10 train;
    Model *model;
    int *idx, count;
    HessianOperator hop;
    int hop_ready;
    LinOp op;
} CommandSetup;
/* stochastic/batch/seed: see hessian_operator_init; with_operator 0 leaves hop and op unset. */
int FN(setup_open)(CommandSetup *s, const CommonOptions *o, int with_operator, int stochastic, int batch,
                   uint64_t seed);
void FN(setup_close)(CommandSetup *s);
/* Opens a result file: provenance, selection, d, seed, hvps (so far) and seconds; the caller adds its keys. */
int FN(setup_json_begin)(AtomicFile *af, JsonWriter *w, const char *path, const char *command,
                         const CommonOptions *o, const CommandSetup *s, uint64_t seed, double seconds);
int FN(setup_json_end)(AtomicFile *af, JsonWriter *w);

/* Parses "hessian"/"ggn". */
int FN(command_curvature)(const char *value, Curvature *c);

#endif

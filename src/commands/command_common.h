/* command_common.h: what the commands share (precision-generic): opening a model and its checkpoint,
 * loading data, turning --samples/--offset into a selection, the stochastic Hessian operator used by power
 * iteration, and a provenance block written into every result file. */
#ifndef HS_COMMAND_COMMON_H
#define HS_COMMAND_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "../cli/args.h"
#include "../core/rng.h"
#include "../curvature/curvature.h"
#include "../data/cifar10.h"
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
} HessianOperator;

int FN(hessian_operator_init)(HessianOperator *op, Model *m, const Cifar10 *data, const int *pool, int pool_count,
                              int stochastic, int batch, int chunk, uint64_t seed, Curvature curvature);
void FN(hessian_operator_free)(HessianOperator *op);
LinOp FN(hessian_operator_linop)(HessianOperator *op);

/* Parses "hessian"/"ggn". */
int FN(command_curvature)(const char *value, Curvature *c);

#endif

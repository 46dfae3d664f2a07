/* operator.h: the Hessian (or GGN) of a model's loss over samples as a LinOp (src/spectral/linop.h), for the
 * matrix-free spectral methods; optionally restricted to a block of parameters (precision-generic). Used by
 * the CLI's commands and the public API (src/api/). */
#ifndef HS_OPERATOR_H
#define HS_OPERATOR_H

#include <stdint.h>

#include "../core/rng.h"
#include "../spectral/linop.h"
#include "curvature.h"

struct Progress;

/* A Hessian (or GGN) operator on the model over samples, for src/spectral/ methods.
 *   fixed:      the same sample set for every product (deterministic operator)
 *   stochastic: a new batch of `batch` samples per product, from a seeded shuffled pass over the pool
 *               (unaugmented), reshuffled when the pool is used up. */
typedef struct {
    Model *model;
    const SampleSource *source;
    Curvature curvature;
    int stochastic;
    int *pool;        /* (pool_count) sample indices */
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
    struct Progress *progress; /* optional (src/core/progress.h): updated after every product */
    HvpCache cache;     /* a fixed operator's primal passes, kept between products (curvature.h) */
} HessianOperator;

int FN(hessian_operator_init)(HessianOperator *op, Model *m, const SampleSource *source, const int *pool, int pool_count,
                              int stochastic, int batch, int chunk, uint64_t seed, Curvature curvature);
void FN(hessian_operator_free)(HessianOperator *op);
/* Restricts the operator to the parameters named in a comma-separated list: a tensor name ("0.weight") or a
 * prefix of names followed by '.' ("7" = 7.weight and 7.bias, "layer4" = every tensor of layer4). NULL or
 * "all": every parameter. Errors (prefixed with `what`) name the unknown entry and
 * list the model's tensors. */
int FN(hessian_operator_set_block)(HessianOperator *op, const char *params, const char *what);
/* Indices selected by such a list (malloc'd), for code that works on dense matrices. `what` names the list in
 * messages ("--params"). */
int FN(param_block)(const Model *m, const char *params, const char *what, int64_t **indices, int64_t *count);
LinOp FN(hessian_operator_linop)(HessianOperator *op);

#endif

/* linop.h: a symmetric linear operator on float64 vectors of length n, the one interface every matrix-free
 * method in src/spectral/ works on. hessian's Hessian (and Gauss-Newton) operators adapt a model, its data
 * and a precision to it (src/curvature/); tests adapt dense matrices of known spectrum (linop_dense).
 *
 * apply computes out[k] = A v[k] for k < count (vectors stored one after another, each n long). A stochastic
 * operator (a new mini-batch per call) is allowed: methods that assume a fixed operator say so. */
#ifndef HS_LINOP_H
#define HS_LINOP_H

#include <stdint.h>

typedef struct LinOp {
    int64_t n;
    int (*apply)(void *ctx, const double *v /* (count, n) */, double *out /* (count, n) */, int count);
    void *ctx;
    int64_t applications; /* matrix-vector products done so far (incremented by linop_apply) */
} LinOp;

/* Calls op->apply and counts products; checks the result is finite (error otherwise). */
int linop_apply(LinOp *op, const double *v, double *out, int count);

/* A dense symmetric n x n matrix (row-major) as an operator; the matrix is borrowed. */
typedef struct {
    int64_t n;
    const double *a; /* (n, n) */
} DenseMatrix;
LinOp linop_dense(DenseMatrix *m);

#endif

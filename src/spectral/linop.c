/* linop.c: the symmetric linear-operator interface (see linop.h): linop_apply, which validates arguments,
 * counts matrix-vector products and rejects non-finite results, and linop_dense, a dense symmetric matrix
 * as an operator (OpenBLAS dgemv for one vector, dgemm for a batch). */
#include "linop.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>

#include "../core/common.h"
#include "spectral_internal.h"

int linop_apply(LinOp *op, const double *v, double *out, int count) {
    if (!op || !op->apply) return hs_error("linop_apply: operator is NULL or has no apply function");
    if (op->n <= 0) return hs_error("linop_apply: operator dimension %lld must be positive", (long long)op->n);
    if (count <= 0) return hs_error("linop_apply: count %d must be positive", count);
    if (!v || !out) return hs_error("linop_apply: NULL input or output vector");
    if (op->apply(op->ctx, v, out, count) != 0) {
        const char *msg = hs_last_error();
        if (!msg[0]) hs_error("operator apply failed (it gave no reason)");
        return hs_error_context("linop_apply (%d vector%s of length %lld): ", count, count == 1 ? "" : "s",
                                (long long)op->n);
    }
    op->applications += count;
    int64_t total = (int64_t)count * op->n, bad = 0;
    if (!vec_all_finite(out, total, &bad)) {
        int64_t which = bad / op->n, index = bad % op->n;
        return hs_error("linop_apply: the operator produced a non-finite value (%g) at index %lld of output "
                        "vector %lld (of %d); the product A v is not finite (overflow or NaN in the operator)",
                        out[bad], (long long)index, (long long)which, count);
    }
    return 0;
}

static int dense_apply(void *ctx, const double *v, double *out, int count) {
    const DenseMatrix *m = ctx;
    if (!m || !m->a) return hs_error("dense operator: matrix is NULL");
    if (m->n > INT_MAX) return hs_error("dense operator: n = %lld is too large for BLAS", (long long)m->n);
    int n = (int)m->n;
    if (count == 1) {
        /* out = A v */
        cblas_dgemv(CblasRowMajor, CblasNoTrans, n, n, 1.0, m->a, n, v, 1, 0.0, out, 1);
    } else {
        /* out (count, n) = V (count, n) * A^T (= A, symmetric) */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, count, n, n, 1.0, v, n, m->a, n, 0.0, out, n);
    }
    return 0;
}

LinOp linop_dense(DenseMatrix *m) {
    LinOp op = {0};
    op.n = m ? m->n : 0;
    op.apply = dense_apply;
    op.ctx = m;
    op.applications = 0;
    return op;
}

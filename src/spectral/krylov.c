/* krylov.c: the Lanczos core shared by lanczos.c and density.c (see spectral_internal.h): one product per
 * step, full reorthogonalisation (two passes of classical Gram-Schmidt against every stored basis vector,
 * float64), breakdown detection and restart with a random vector orthogonal to the basis; plus the
 * symmetric tridiagonal eigen-solvers (LAPACKE dstevx / dstev) applied to T. */
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"
#include "spectral_internal.h"

#define KRYLOV_BREAKDOWN 1e-12 /* relative to max ||A q_j|| */

void krylov_free(Krylov *kr) {
    if (!kr) return;
    free(kr->q);
    free(kr->alpha);
    free(kr->beta);
    free(kr->w);
    free(kr->h);
    free(kr->tmp);
    free(kr->work);
    memset(kr, 0, sizeof *kr);
}

int krylov_init(Krylov *kr, int64_t n, int cap) {
    memset(kr, 0, sizeof *kr);
    if (n <= 0 || cap <= 0) return hs_error("Lanczos: dimension %lld and steps %d must be positive", (long long)n, cap);
    kr->n = n;
    kr->cap = cap;
    kr->alloc = cap < 16 ? cap : 16;
    kr->q = hs_malloc((size_t)kr->alloc * (size_t)n * sizeof(double));
    kr->alpha = hs_calloc((size_t)cap, sizeof(double));
    kr->beta = hs_calloc((size_t)cap, sizeof(double));
    kr->w = hs_malloc((size_t)n * sizeof(double));
    kr->h = hs_malloc((size_t)cap * sizeof(double));
    kr->tmp = hs_malloc((size_t)cap * sizeof(double));
    kr->work = hs_malloc((size_t)HS_VEC_CHUNKS * (size_t)cap * sizeof(double));
    if (!kr->q || !kr->alpha || !kr->beta || !kr->w || !kr->h || !kr->tmp || !kr->work) {
        krylov_free(kr);
        return hs_error_context("Lanczos basis (%d vectors of %lld): ", cap, (long long)n);
    }
    return 0;
}

/* Makes room for `rows` basis vectors. */
static int krylov_reserve(Krylov *kr, int rows) {
    if (rows <= kr->alloc) return 0;
    int na = kr->alloc * 2;
    if (na < rows) na = rows;
    if (na > kr->cap) na = kr->cap;
    double *q = realloc(kr->q, (size_t)na * (size_t)kr->n * sizeof(double));
    if (!q)
        return hs_error("Lanczos: out of memory growing the basis to %d vectors of %lld doubles", na,
                        (long long)kr->n);
    kr->q = q;
    kr->alloc = na;
    return 0;
}

int krylov_start(Krylov *kr, const double *start) {
    int64_t n = kr->n, bad = 0;
    if (!vec_all_finite(start, n, &bad))
        return hs_error("Lanczos: start vector entry %lld is not finite", (long long)bad);
    double nrm = vec_norm(start, n);
    if (!(nrm > 0.0) || !isfinite(nrm)) return hs_error("Lanczos: start vector has norm %g", nrm);
    for (int64_t k = 0; k < n; k++) kr->q[k] = start[k] / nrm;
    kr->steps = 0;
    kr->basis = 1;
    kr->anorm = 0.0;
    kr->breakdown = 0;
    kr->block_start = 0;
    kr->restarts = 0;
    return 0;
}

const double *krylov_next(const Krylov *kr) {
    int j = kr->steps;
    if (j >= kr->cap || kr->basis != j + 1) {
        hs_error("Lanczos: internal error (step %d without a basis vector)", j);
        return NULL;
    }
    return kr->q + (int64_t)j * kr->n;
}

int krylov_step(Krylov *kr, LinOp *op) {
    const double *qj = krylov_next(kr);
    if (!qj) return -1;
    if (linop_apply(op, qj, kr->w, 1) != 0) return hs_error_context("Lanczos step %d: ", kr->steps + 1);
    return krylov_absorb(kr, NULL);
}

int krylov_absorb(Krylov *kr, const double *aq_in) {
    int j = kr->steps;
    int64_t n = kr->n;
    if (!krylov_next(kr)) return -1;
    if (aq_in) memcpy(kr->w, aq_in, (size_t)n * sizeof *kr->w);
    double aq = vec_norm(kr->w, n);
    if (aq > kr->anorm) kr->anorm = aq;
    /* w <- (I - Q Q^T)^2 w over q_0..q_j; the coefficient on q_j is alpha_j = q_j . A q_j. */
    vec_orthogonalise(kr->q, j + 1, kr->w, n, kr->h, kr->tmp, kr->work);
    kr->alpha[j] = kr->h[j];
    double b = vec_norm(kr->w, n);
    kr->beta[j] = b;
    kr->breakdown = !(b > KRYLOV_BREAKDOWN * kr->anorm);
    kr->steps = j + 1;
    return 0;
}

int krylov_extend(Krylov *kr, Rng *rng) {
    int j = kr->steps; /* index of the vector to add */
    int64_t n = kr->n;
    if (j >= kr->cap || (int64_t)j >= n) return 1;
    HS_TRY(krylov_reserve(kr, j + 1));
    double *qn = kr->q + (int64_t)j * n;
    if (!kr->breakdown) {
        double b = kr->beta[j - 1];
        for (int64_t k = 0; k < n; k++) qn[k] = kr->w[k] / b;
        kr->basis = j + 1;
        return 0;
    }
    /* Invariant subspace: continue in its orthogonal complement with a fresh random vector. */
    for (int attempt = 0; attempt < 3; attempt++) {
        fill_normal(rng, qn, n);
        double before = vec_norm(qn, n);
        vec_orthogonalise(kr->q, j, qn, n, NULL, kr->tmp, kr->work);
        double after = vec_norm(qn, n);
        if (after > 1e-6 * before) {
            vec_scale(qn, 1.0 / after, n);
            kr->beta[j - 1] = 0.0;
            kr->block_start = j;
            kr->restarts++;
            kr->breakdown = 0;
            kr->basis = j + 1;
            return 0;
        }
    }
    return 1; /* numerically the basis spans the whole space */
}

int tridiag_all(const double *d, const double *e, int m, double *w, double *z, double *scratch) {
    double *ee = scratch; /* (m) */
    memcpy(w, d, (size_t)m * sizeof *w);
    if (m > 1) memcpy(ee, e, (size_t)(m - 1) * sizeof *ee);
    ee[m - 1] = 0.0;
    lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, z ? 'V' : 'N', m, w, ee, z, m);
    if (info < 0) return hs_error("LAPACKE_dstev: argument %d had an illegal value (m = %d)", (int)-info, m);
    if (info > 0) return hs_error("LAPACKE_dstev failed to converge on the %d x %d Lanczos matrix (info %d)", m, m, (int)info);
    return 0;
}

int tridiag_select(const double *d, const double *e, int m, int il, int iu, double *w, double *z, double *scratch,
                   int *iscratch) {
    if (il < 1 || iu > m || il > iu) return hs_error("tridiag_select: bad index range %d..%d of %d", il, iu, m);
    double *dd = scratch, *ee = scratch + m; /* (m) each */
    memcpy(dd, d, (size_t)m * sizeof *dd);
    if (m > 1) memcpy(ee, e, (size_t)(m - 1) * sizeof *ee);
    ee[m - 1] = 0.0;
    lapack_int found = 0;
    lapack_int info = LAPACKE_dstevx(LAPACK_COL_MAJOR, z ? 'V' : 'N', 'I', m, dd, ee, 0.0, 0.0, il, iu,
                                     2.0 * DBL_MIN, &found, w, z, m, iscratch);
    if (info == 0 && found == iu - il + 1) return 0;
    if (info < 0) return hs_error("LAPACKE_dstevx: argument %d had an illegal value (m = %d)", (int)-info, m);
    /* Some eigenvectors failed to converge: take the full QR decomposition instead. */
    double *all = hs_malloc((size_t)m * sizeof *all);
    double *zz = z ? hs_malloc((size_t)m * (size_t)m * sizeof *zz) : NULL;
    if (!all || (z && !zz)) {
        free(all);
        free(zz);
        return -1;
    }
    int rc = tridiag_all(d, e, m, all, zz, scratch);
    if (rc == 0) {
        for (int i = il; i <= iu; i++) {
            w[i - il] = all[i - 1];
            if (z) memcpy(z + (size_t)(i - il) * m, zz + (size_t)(i - 1) * m, (size_t)m * sizeof *z);
        }
    }
    free(all);
    free(zz);
    return rc;
}

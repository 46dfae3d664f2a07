/* spectral_internal.h: helpers shared by the files of src/spectral/ and not part of the public API:
 *   deterministic vector kernels (dot products and Gram-Schmidt whose bits do not depend on the number of
 *   OpenMP threads: reductions use a fixed partition of the vector that depends on n alone),
 *   random probe vectors (Rademacher, normal),
 *   the Lanczos/Krylov core with full reorthogonalisation used by lanczos.c and density.c,
 *   selected eigenpairs of a symmetric tridiagonal matrix (LAPACKE dstevx, dstev fallback). */
#ifndef HS_SPECTRAL_INTERNAL_H
#define HS_SPECTRAL_INTERNAL_H

#include <stdint.h>

#include "../core/rng.h"
#include "linop.h"

/* Reductions split a vector into vec_chunks(n) fixed chunks (1 for small n, HS_VEC_CHUNKS otherwise), sum
 * each chunk in a fixed order, then add the chunk sums in chunk order. */
#define HS_VEC_CHUNKS 64
int vec_chunks(int64_t n);

double vec_dot(const double *x /* (n) */, const double *y /* (n) */, int64_t n);
double vec_norm(const double *x /* (n) */, int64_t n);
void vec_scale(double *x /* (n) */, double a, int64_t n);
/* y += a x */
void vec_axpy(double *y /* (n) */, double a, const double *x /* (n) */, int64_t n);
int vec_all_finite(const double *x /* (n) */, int64_t n, int64_t *first_bad);

/* h[i] = q_i . w for the first `rows` rows of q; work holds HS_VEC_CHUNKS * rows doubles. */
void vec_project(const double *q /* (rows, n) */, int rows, const double *w /* (n) */, int64_t n,
                 double *h /* (rows) */, double *work /* (HS_VEC_CHUNKS * rows) */);
/* w -= sum_i h[i] q_i (i ascending). */
void vec_subtract_rows(const double *q /* (rows, n) */, int rows, const double *h /* (rows) */,
                       double *w /* (n) */, int64_t n);
/* y = sum_i c[i] q_i (i ascending). */
void vec_combine_rows(const double *q /* (rows, n) */, int rows, const double *c /* (rows) */,
                      double *y /* (n) */, int64_t n);
/* Two passes of classical Gram-Schmidt of w against the orthonormal rows of q; h receives the summed
 * coefficients of both passes (may be NULL). tmp holds rows doubles, work HS_VEC_CHUNKS * rows. */
void vec_orthogonalise(const double *q /* (rows, n) */, int rows, double *w /* (n) */, int64_t n,
                       double *h /* (rows) or NULL */, double *tmp /* (rows) */, double *work);

/* Rademacher entries +-scale (one 64-bit draw per 64 entries). */
void fill_rademacher(Rng *rng, double *v /* (n) */, int64_t n, double scale);
/* Standard normal entries. */
void fill_normal(Rng *rng, double *v /* (n) */, int64_t n);

/* Products are batched in groups of at most this many vectors (fewer for very long vectors). */
int batch_size(int64_t n, int wanted);

/* ---- Krylov (Lanczos) core ----
 * After s = steps products the basis q_0..q_{s-1} is orthonormal and Q^T A Q = T, the symmetric tridiagonal
 * with diagonal alpha[0..s) and off-diagonal beta[0..s-1); beta[s-1] is the norm of the last residual w
 * (A q_{s-1} minus its projection on the basis), so A Q = Q T + w e_s^T. After a breakdown (beta <=
 * 1e-12 * max ||A q_j||) krylov_extend starts a new block with a random vector orthogonal to the basis and
 * sets the coupling beta[s-1] to 0 (the error this makes in T is at most that beta). */
typedef struct {
    int64_t n;
    int cap;          /* maximum number of steps (and basis vectors) */
    int alloc;        /* rows allocated in q */
    int steps;        /* products done = order of T */
    int basis;        /* vectors in q: steps + 1 while a next step is possible */
    double *q;        /* (alloc, n) orthonormal basis, one vector per row */
    double *alpha;    /* (cap) */
    double *beta;     /* (cap) */
    double *w;        /* (n) residual of the last step */
    double *h, *tmp;  /* (cap) Gram-Schmidt coefficients */
    double *work;     /* (HS_VEC_CHUNKS * cap) */
    double anorm;     /* largest ||A q_j|| seen (lower bound of ||A||) */
    int breakdown;    /* the last residual was negligible: the basis spans an invariant subspace */
    int block_start;  /* first step of the current block (0 until a restart) */
    int restarts;
} Krylov;

int krylov_init(Krylov *kr, int64_t n, int cap);
/* Empties the basis and sets q_0 = start / ||start|| (start must be finite and non-zero). */
int krylov_start(Krylov *kr, const double *start /* (n) */);
/* One product w = A q_{steps} and full reorthogonalisation; steps++. */
int krylov_step(Krylov *kr, LinOp *op);
/* The same step in two halves, so that several Krylov spaces can share one batched product: krylov_next gives
 * q_{steps} (NULL with a message when there is none); krylov_absorb takes aq = A q_{steps} (n; copied; NULL:
 * already in kr->w) and finishes the step. */
const double *krylov_next(const Krylov *kr);
int krylov_absorb(Krylov *kr, const double *aq);
/* Appends the next basis vector (w / beta, or on breakdown a fresh random vector orthogonal to the basis).
 * Returns 0, 1 when no vector can be added (cap reached or the whole space is spanned), -1 on error. */
int krylov_extend(Krylov *kr, Rng *rng);
void krylov_free(Krylov *kr);

/* Eigenvalues il..iu (1-based, ascending) of the symmetric tridiagonal matrix with diagonal d (m) and
 * off-diagonal e (m-1), and, when z is not NULL, the unit eigenvectors (column-major, m x (iu-il+1)).
 * Uses dstevx; falls back to dstev if some vectors fail to converge. scratch: 3m doubles + m ints. */
int tridiag_select(const double *d, const double *e, int m, int il, int iu, double *w, double *z,
                   double *scratch /* (3m) */, int *iscratch /* (m) */);
/* All eigenpairs (ascending; z column-major m x m, may be NULL) with dstev. scratch: 2m doubles. */
int tridiag_all(const double *d, const double *e, int m, double *w /* (m) */, double *z /* (m, m) */,
                double *scratch /* (2m) */);

#endif

/* spectral.h: matrix-free spectral methods on a LinOp, all in float64:
 *   dense symmetric eigen-decomposition (LAPACKE dsyevd / ssyevd),
 *   power iteration (plain, the study's momentum variant, De Sa et al.'s heavy-ball variant),
 *   Lanczos with full reorthogonalisation (top-k / bottom-k with residuals),
 *   Hutchinson and Hutch++ trace estimation with standard errors,
 *   stochastic Lanczos quadrature for the spectral density.
 * Random vectors come from rng.h with the caller's seed, so every result is reproducible. */
#ifndef HS_SPECTRAL_H
#define HS_SPECTRAL_H

#include <stdint.h>

#include "../core/rng.h"
#include "linop.h"

/* ---- dense ---- */
/* All eigenvalues (ascending) of a symmetric n x n row-major matrix (only its upper triangle is read; entries
 * must be finite). `a` is overwritten: with want_vectors it holds the orthonormal eigenvectors as COLUMNS of
 * the row-major matrix (eigenvector j = a[i*n + j], i = 0..n-1, for eigenvalues[j]; LAPACKE's row-major
 * layout); without, its contents are destroyed. */
int eigen_symmetric_f64(double *a /* (n,n) */, int64_t n, double *eigenvalues /* (n) */, int want_vectors);
int eigen_symmetric_f32(float *a /* (n,n) */, int64_t n, float *eigenvalues /* (n) */, int want_vectors);

/* ---- power iteration ----
 * One product per step on the current unit vector v_i: w = H v_i, lambda_i = v_i . w, residual_i =
 * ||w - lambda_i v_i||, then the update from the same w. Converges to the eigenvalue of largest |lambda|
 * (plain); study momentum and heavy ball favour the largest positive one. A stochastic operator is fine. */
typedef enum { POWER_PLAIN, POWER_STUDY_MOMENTUM, POWER_HEAVY_BALL } PowerVariant;

typedef struct {
    int iters;           /* maximum steps */
    double beta;         /* momentum for POWER_STUDY_MOMENTUM (v <- normalise(beta v_prev + (1-beta) normalise(Hv)),
                            beta in [0, 1)) or POWER_HEAVY_BALL (v_{t+1} = H v_t - beta v_{t-1}, both rescaled
                            by ||v_{t+1}||; De Sa et al. suggest beta = lambda_2^2 / 4) */
    PowerVariant variant;
    double tol;          /* stop when ||Hv - lambda v|| <= tol |lambda| (0: run all iters) */
    uint64_t seed;       /* start vector: normal, normalised (unless start is given) */
    const double *start; /* optional (n) */
    /* Called after each step (step = 1, 2, ...: products so far) with lambda_i = v^T H v (v unit) and the
     * residual; may be NULL. */
    void (*on_step)(void *user, int step, double lambda, double residual);
    void *user;
} PowerOptions;

typedef struct {
    double lambda;     /* lambda of the last step (no extra product after the loop) */
    double residual;   /* ||Hv - lambda v|| for the final unit v (the last step's) */
    int steps;
    int64_t products;
    double *lambdas;   /* (steps) lambda at each step, malloc'd */
    double *residuals; /* (steps) */
    double *vector;    /* (n) final unit vector, malloc'd */
} PowerResult;

int power_iteration(LinOp *op, const PowerOptions *opt, PowerResult *res);
void power_result_free(PowerResult *res);

/* ---- Lanczos ----
 * Full reorthogonalisation (two classical Gram-Schmidt passes against the whole basis, float64), one product
 * per step. Converged when the wanted Ritz pairs' estimates beta_m |s_{m,i}| <= tol * max|theta|. On an
 * invariant subspace it restarts with a random vector orthogonal to the basis (see lanczos.c for how that
 * bears on repeated eigenvalues). At the end one batched product gives the true residuals (count products,
 * included in `products`). Assumes a fixed operator. Same operator, options and seed => same bits. */
typedef enum { LANCZOS_LARGEST, LANCZOS_SMALLEST, LANCZOS_BOTH } LanczosWhich;

typedef struct {
    int k;               /* eigenpairs wanted (per end with LANCZOS_BOTH); at most n are returned */
    LanczosWhich which;
    int max_steps;       /* Krylov dimension limit (>= pairs wanted; values above n are lowered to n) */
    double tol;          /* converged when every wanted residual estimate <= tol * max|theta| (0: run max_steps) */
    uint64_t seed;       /* normal start vector (unless start is given) and restart vectors */
    const double *start; /* optional (n) warm start, need not be normalised */
    int want_vectors;
    /* Called after every step (step = Krylov dimension) with the extreme Ritz values and the largest residual
     * estimate of the wanted pairs; may be NULL. */
    void (*on_step)(void *user, int step, double top, double bottom, double worst_residual);
    void *user;
} LanczosOptions;

typedef struct {
    int count;            /* eigenvalues returned */
    double *eigenvalues;  /* (count) ascending */
    double *residuals;    /* (count) true ||Hv - lambda v|| */
    double *vectors;      /* (count, n) unit Ritz vectors when want_vectors */
    int steps;            /* Lanczos steps (Krylov dimension) */
    int64_t products;     /* steps + count (the residual check) */
    int converged;        /* tolerance met, or the whole space spanned */
    int restarts;         /* invariant subspaces met (fresh start vectors) */
} LanczosResult;

int lanczos(LinOp *op, const LanczosOptions *opt, LanczosResult *res);
void lanczos_result_free(LanczosResult *res);

/* ---- trace ----
 * Hutchinson: Rademacher probes, std_error = sample std / sqrt(probes); probes >= 2.
 * Hutch++: `products` split in thirds (sketch A S, tr(Q^T A Q), Hutchinson on the deflated remainder with
 * products - 2 (products / 3) probes); std_error of the Hutchinson part; products >= 4. Batched products;
 * both assume a fixed operator. */
typedef struct {
    double trace;
    double std_error;
    int64_t products;
} TraceResult;

int trace_hutchinson(LinOp *op, int probes, uint64_t seed, TraceResult *res);
int trace_hutchpp(LinOp *op, int products, uint64_t seed, TraceResult *res);

/* ---- spectral density (stochastic Lanczos quadrature) ---- */
typedef enum { DENSITY_RADEMACHER = 0, DENSITY_NORMAL } DensityProbe;

typedef struct {
    int runs, steps;     /* independent Lanczos runs (probe vectors), steps each (lowered to n) */
    double sigma;        /* Gaussian smoothing width (absolute, in eigenvalue units); <= 0: automatic =
                            max(range / 100, range / (grid - 11)), range = max node - min node */
    int grid;            /* grid points (>= 16) spanning [min node - 5 sigma, max node + 5 sigma] */
    uint64_t seed;
    DensityProbe probe;  /* start vectors: Rademacher (default, as PyHessian) or normal, normalised */
} DensityOptions;

typedef struct {
    int grid;
    double *x;          /* (grid) eigenvalue axis */
    double *density;    /* (grid) smoothed density, integrates to ~1 */
    double sigma;       /* smoothing width used */
    int nodes;          /* <= runs * steps (a run stops early when its Krylov space is invariant) */
    double *node_values; /* (nodes) Ritz values */
    double *node_weights; /* (nodes) quadrature weights / runs (sum to 1) */
    int64_t products;
} DensityResult;

int spectral_density(LinOp *op, const DensityOptions *opt, DensityResult *res);
void density_result_free(DensityResult *res);

#endif

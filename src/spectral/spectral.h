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
/* All eigenvalues (ascending) of a symmetric n x n row-major matrix; a is overwritten (with eigenvectors
 * when want_vectors, rows = eigenvectors... see implementation comment). */
int eigen_symmetric_f64(double *a /* (n,n) */, int64_t n, double *eigenvalues /* (n) */, int want_vectors);
int eigen_symmetric_f32(float *a /* (n,n) */, int64_t n, float *eigenvalues /* (n) */, int want_vectors);

/* ---- power iteration ---- */
typedef enum { POWER_PLAIN, POWER_STUDY_MOMENTUM, POWER_HEAVY_BALL } PowerVariant;

typedef struct {
    int iters;           /* maximum steps */
    double beta;         /* momentum for POWER_STUDY_MOMENTUM (v <- normalise(beta v_prev + (1-beta) normalise(Hv)))
                            or POWER_HEAVY_BALL (v_{t+1} = H v_t - beta v_{t-1}) */
    PowerVariant variant;
    double tol;          /* stop when ||Hv - lambda v|| <= tol |lambda| (0: run all iters) */
    uint64_t seed;       /* start vector: normal, normalised (unless start is given) */
    const double *start; /* optional (n) */
    /* Called after each step with lambda_i = v^T H v (v unit) and the residual; may be NULL. */
    void (*on_step)(void *user, int step, double lambda, double residual);
    void *user;
} PowerOptions;

typedef struct {
    double lambda;
    double residual;   /* ||Hv - lambda v|| for the final unit v */
    int steps;
    int64_t products;
    double *lambdas;   /* (steps) lambda at each step, malloc'd */
    double *residuals; /* (steps) */
    double *vector;    /* (n) final unit vector, malloc'd */
} PowerResult;

int power_iteration(LinOp *op, const PowerOptions *opt, PowerResult *res);
void power_result_free(PowerResult *res);

/* ---- Lanczos ---- */
typedef enum { LANCZOS_LARGEST, LANCZOS_SMALLEST, LANCZOS_BOTH } LanczosWhich;

typedef struct {
    int k;               /* eigenpairs wanted (per end with LANCZOS_BOTH) */
    LanczosWhich which;
    int max_steps;       /* Krylov dimension limit */
    double tol;          /* converged when every wanted residual <= tol * max|lambda| */
    uint64_t seed;
    const double *start; /* optional (n) warm start */
    int want_vectors;
    void (*on_step)(void *user, int step, double top, double bottom, double worst_residual);
    void *user;
} LanczosOptions;

typedef struct {
    int count;            /* eigenvalues returned */
    double *eigenvalues;  /* (count) ascending */
    double *residuals;    /* (count) true ||Hv - lambda v|| */
    double *vectors;      /* (count, n) unit Ritz vectors when want_vectors */
    int steps;
    int64_t products;
    int converged;
} LanczosResult;

int lanczos(LinOp *op, const LanczosOptions *opt, LanczosResult *res);
void lanczos_result_free(LanczosResult *res);

/* ---- trace ---- */
typedef struct {
    double trace;
    double std_error;
    int64_t products;
} TraceResult;

int trace_hutchinson(LinOp *op, int probes, uint64_t seed, TraceResult *res);
int trace_hutchpp(LinOp *op, int products, uint64_t seed, TraceResult *res);

/* ---- spectral density (stochastic Lanczos quadrature) ---- */
typedef struct {
    int runs, steps;
    double sigma;        /* Gaussian smoothing width (absolute, in eigenvalue units); <= 0: automatic */
    int grid;            /* grid points */
    uint64_t seed;
} DensityOptions;

typedef struct {
    int grid;
    double *x;          /* (grid) eigenvalue axis */
    double *density;    /* (grid) smoothed density, integrates to ~1 */
    int nodes;          /* runs * steps */
    double *node_values; /* (nodes) Ritz values */
    double *node_weights; /* (nodes) quadrature weights / runs (sum to 1) */
    int64_t products;
} DensityResult;

int spectral_density(LinOp *op, const DensityOptions *opt, DensityResult *res);
void density_result_free(DensityResult *res);

#endif

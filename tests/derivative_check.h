/* derivative_check.h: the finite-difference harness shared by the op tests (test_ops.c, test_batchnorm.c), built
 * in either precision (test_ops, test_ops_f32, ...): the ops under test run in `real`, while every reference is
 * computed in double, from the same (real-valued) inputs converted exactly: direct loops, and central differences
 * of the library's float64 ops (declared below) along simultaneous perturbations (fd_dir) or element by element
 * (fd_grad), evaluated on one thread. Also a seeded generator and fills, comparisons with a relative error floored
 * at 1e-3 max|ref|, direction extraction from (N, K, m) tangents, and the tolerances of each precision.
 * The including file defines EPS (the step) before including this header. */
#ifndef HS_DERIVATIVE_CHECK_H
#define HS_DERIVATIVE_CHECK_H

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/common.h"
#include "../src/ops/ops.h"
#include "check.h"

/* Tolerances on the relative error (floored at 1e-3 max|ref|) of an op's result:
 *   float64  RTOL_FD 1e-6 against central differences of the float64 op, whose own error (truncation ~eps^2,
 *            rounding ~1e-16/eps) dominates; RTOL_EXACT 1e-11 against the same quantity computed in double by
 *            direct loops or in another order.
 *   float32  the op's rounding dominates both (the float64 differences are exact to ~1e-9): a few float32
 *            epsilons of the largest terms summed, times the inputs' condition number, in absolute terms
 *            (measured: 4 epsilon of max|ref| for the ops of test_ops, 25 for batch norm of 2 values spread
 *            0.004 around 0.6, where x - mean loses 7 bits), which relative to an entry at the 1e-3 floor is
 *            1e3 times larger: 2^14 epsilon = 2.0e-3 for both (measured worst: 9.1e-5 in test_ops, conv2d;
 *            2.7e-4 in test_batchnorm; each test prints its worst errors). */
#ifdef HS_F64
#define RTOL_FD 1e-6
#define RTOL_EXACT 1e-11
#else
#define RTOL_FD (16384 * (double)FLT_EPSILON)
#define RTOL_EXACT (16384 * (double)FLT_EPSILON)
#endif

/* The float64 ops the references evaluate. In the float64 build these repeat ops.h's declarations, so the
 * compiler checks that they match; in the float32 build they are the only ones. */
void linear_forward_f64(double *out, const double *in, const double *weight, const double *bias, int N, int In, int O);
void linear_backward_f64(double *d_in, double *d_weight, double *d_bias, const double *d_out, const double *in,
                         const double *weight, int N, int In, int O);
int conv2d_forward_f64(double *out, const double *in, const double *weight, const double *bias, int N,
                       const ConvShape *s);
int conv2d_backward_f64(double *d_in, double *d_weight, double *d_bias, const double *d_out, const double *in,
                        const double *weight, int N, const ConvShape *s);
void relu_forward_f64(double *out, const double *in, size_t n);
void relu_backward_f64(double *d_in, const double *d_out, const double *out, size_t n);
void maxpool_forward_f64(double *out, int32_t *argmax, const double *in, int N, const PoolShape *s);
void maxpool_backward_f64(double *d_in, const double *d_out, const int32_t *argmax, int N, const PoolShape *s);
int cross_entropy_forward_f64(double *loss, double *probs, int *correct, const double *logits, const int32_t *labels,
                              double scale, int N, int C);
void cross_entropy_backward_f64(double *d_logits, const double *probs, const int32_t *labels, double scale, int N,
                                int C);
void batchnorm_eval_forward_f64(double *out, const double *in, const double *gamma, const double *beta,
                                const double *running_mean, const double *running_var, double eps, int N, int C,
                                int HW);
void batchnorm_eval_backward_f64(double *d_in, double *d_gamma, double *d_beta, const double *d_out, const double *in,
                                 const double *gamma, const double *running_mean, const double *running_var,
                                 double eps, int N, int C, int HW);
int batchnorm_train_forward_f64(double *out, double *mean, double *invstd, const double *in, const double *gamma,
                                const double *beta, double *running_mean, double *running_var, double momentum,
                                double eps, int N, int C, int HW, const struct BatchStatsGroup *group);
int batchnorm_train_backward_f64(double *d_in, double *d_gamma, double *d_beta, const double *d_out,
                                 const double *in, const double *gamma, const double *mean, const double *invstd,
                                 int N, int C, int HW, const struct BatchStatsGroup *group);
void avgpool_forward_f64(double *out, const double *in, int N, int C, int HW);
void avgpool2d_forward_f64(double *out, const double *in, int N, const PoolShape *s);

/* xorshift64; each test sets its own seed in rng_state before drawing. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* [0, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}
static void fill(real *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (real)(2 * urand() - 1);
}
static void fill_nan(real *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (real)NAN;
}
static void *alloc_or_exit(size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}
static real *vec(size_t n) { return alloc_or_exit(sizeof(real) * n); }
static double *dvec(size_t n) { return alloc_or_exit(sizeof(double) * n); }
static real *vec_copy(const real *x, size_t n) {
    real *p = vec(n);
    if (n) memcpy(p, x, sizeof(real) * n);
    return p;
}
/* A double copy of x (NULL for NULL): the references' inputs. */
static double *dvec_of(const real *x, size_t n) {
    if (!x) return NULL;
    double *p = dvec(n);
    for (size_t i = 0; i < n; i++) p[i] = (double)x[i];
    return p;
}

/* Compares got to ref: error_i = |got_i - ref_i| / max(|ref_i|, 1e-3 max|ref|, 1e-9); fails on NaN. Records the
 * largest error in *worst_seen. */
static double compare_values(double *worst_seen, const char *what, const real *got, const double *ref, size_t n,
                             double rtol) {
    double amax = 0;
    for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs(ref[i]));
    double floor_ = fmax(1e-3 * amax, 1e-9), worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        double e = d == d ? d / fmax(fabs(ref[i]), floor_) : INFINITY;
        if (e > worst || (e != e)) worst = e, wi = i;
    }
    CHECK(worst <= rtol, "%s: max rel error %.3g > %g at [%zu] (got %.17g, expected %.17g, max |ref| %.3g)", what,
          worst, rtol, wi, n ? (double)got[wi] : 0.0, n ? ref[wi] : 0.0, amax);
    if (worst > *worst_seen) *worst_seen = worst;
    return worst;
}
/* The same with a reference computed in `real` (two orders of the same computation). */
static double compare_reals(double *worst_seen, const char *what, const real *got, const real *ref, size_t n,
                            double rtol) {
    double *r = dvec_of(ref, n);
    double e = compare_values(worst_seen, what, got, r, n, rtol);
    free(r);
    return e;
}

/* dst (N, m) = direction k of src (N, K, m). */
static void get_dir(real *dst, const real *src, int N, int K, size_t m, int k) {
    for (int n = 0; n < N; n++) memcpy(dst + (size_t)n * m, src + ((size_t)n * K + k) * m, sizeof(real) * m);
}

/* A reference evaluation: out = f(the double inputs held by ctx). */
typedef void (*EvalFn)(void *ctx, double *out);

/* The many small reference evaluations run on one thread: no OpenMP team, so the test stays fast when the
 * machine is busy (spinning barriers on oversubscribed cores are slow); the checked calls use the default
 * team. Shrinking to 1 and growing back never ends a worker thread (see test_threads). */
static int saved_threads;
static void serial_begin(void) {
    saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
}
static void serial_end(void) { omp_set_num_threads(saved_threads); }

/* x = x0 + s * t for a list of perturbed double inputs (t == NULL: unperturbed). s == 0 restores x0 exactly. */
typedef struct {
    double *x;
    const double *x0;
    const real *t;
    size_t n;
} Pert;
static void set_pert(const Pert *p, int np, double s) {
    for (int j = 0; j < np; j++)
        for (size_t i = 0; i < p[j].n; i++) p[j].x[i] = p[j].x0[i] + (p[j].t ? s * (double)p[j].t[i] : 0);
}

/* deriv (m) = (f(x + eps t) - f(x - eps t)) / (2 eps), all perturbations applied simultaneously. */
static void fd_dir(double *deriv, size_t m, const Pert *p, int np, EvalFn f, void *ctx) {
    double *fp = dvec(m), *fm = dvec(m);
    serial_begin();
    set_pert(p, np, EPS);
    f(ctx, fp);
    set_pert(p, np, -EPS);
    f(ctx, fm);
    set_pert(p, np, 0);
    serial_end();
    for (size_t j = 0; j < m; j++) deriv[j] = (fp[j] - fm[j]) / (2 * EPS);
    free(fp);
    free(fm);
}

/* grad[i] = d/dx_i sum_j r_j f_j(x) by central differences, one element of x at a time. */
static void fd_grad(double *grad, double *x, size_t n, const real *r, size_t m, EvalFn f, void *ctx) {
    double *fp = dvec(m), *fm = dvec(m);
    serial_begin();
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i], xp = x0 + EPS, xm = x0 - EPS;
        x[i] = xp;
        f(ctx, fp);
        x[i] = xm;
        f(ctx, fm);
        x[i] = x0;
        double s = 0;
        for (size_t j = 0; j < m; j++) s += (double)r[j] * (fp[j] - fm[j]);
        grad[i] = s / (xp - xm);
    }
    serial_end();
    free(fp);
    free(fm);
}

#endif

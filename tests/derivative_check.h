/* derivative_check.h: the finite-difference harness shared by the op tests (test_ops.c, test_batchnorm.c),
 * compiled in double precision: a seeded generator and fills, comparisons with a relative error floored at
 * 1e-3 max|ref|, direction extraction from (N, K, m) tangents, and central differences of a function along
 * simultaneous perturbations (fd_dir) or element by element (fd_grad), evaluated on one thread.
 * The including file defines EPS (the step) before including this header. */
#ifndef HS_DERIVATIVE_CHECK_H
#define HS_DERIVATIVE_CHECK_H

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/common.h"
#include "check.h"

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
static real *vec(size_t n) {
    real *p = calloc(n ? n : 1, sizeof(real));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}
static real *vec_copy(const real *x, size_t n) {
    real *p = vec(n);
    if (n) memcpy(p, x, sizeof(real) * n);
    return p;
}

/* Compares got to ref: error_i = |got_i - ref_i| / max(|ref_i|, 1e-3 max|ref|, 1e-9); fails on NaN. Records the
 * largest error in *worst_seen. */
static double compare_values(double *worst_seen, const char *what, const real *got, const real *ref, size_t n,
                             double rtol) {
    double amax = 0;
    for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs((double)ref[i]));
    double floor_ = fmax(1e-3 * amax, 1e-9), worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double e = d == d ? d / fmax(fabs((double)ref[i]), floor_) : INFINITY;
        if (e > worst || (e != e)) worst = e, wi = i;
    }
    CHECK(worst <= rtol, "%s: max rel error %.3g > %g at [%zu] (got %.17g, expected %.17g, max |ref| %.3g)", what,
          worst, rtol, wi, n ? (double)got[wi] : 0.0, n ? (double)ref[wi] : 0.0, amax);
    if (worst > *worst_seen) *worst_seen = worst;
    return worst;
}

/* dst (N, m) = direction k of src (N, K, m). */
static void get_dir(real *dst, const real *src, int N, int K, size_t m, int k) {
    for (int n = 0; n < N; n++) memcpy(dst + (size_t)n * m, src + ((size_t)n * K + k) * m, sizeof(real) * m);
}

typedef void (*EvalFn)(void *ctx, real *out);

/* The many small reference evaluations run on one thread: no OpenMP team, so the test stays fast when the
 * machine is busy (spinning barriers on oversubscribed cores are slow); the checked calls use the default
 * team. Shrinking to 1 and growing back never ends a worker thread (see test_threads). */
static int saved_threads;
static void serial_begin(void) {
    saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
}
static void serial_end(void) { omp_set_num_threads(saved_threads); }

/* x = x0 + s * t for a list of perturbed arrays (t == NULL: unperturbed). s == 0 restores x0 exactly. */
typedef struct {
    real *x;
    const real *x0;
    const real *t;
    size_t n;
} Pert;
static void set_pert(const Pert *p, int np, double s) {
    for (int j = 0; j < np; j++)
        for (size_t i = 0; i < p[j].n; i++) p[j].x[i] = p[j].x0[i] + (p[j].t ? (real)(s * p[j].t[i]) : 0);
}

/* deriv (m) = (f(x + eps t) - f(x - eps t)) / (2 eps), all perturbations applied simultaneously. */
static void fd_dir(real *deriv, size_t m, const Pert *p, int np, EvalFn f, void *ctx) {
    real *fp = vec(m), *fm = vec(m);
    serial_begin();
    set_pert(p, np, EPS);
    f(ctx, fp);
    set_pert(p, np, -EPS);
    f(ctx, fm);
    set_pert(p, np, 0);
    serial_end();
    for (size_t j = 0; j < m; j++) deriv[j] = (real)(((double)fp[j] - (double)fm[j]) / (2 * EPS));
    free(fp);
    free(fm);
}

/* grad[i] = d/dx_i sum_j r_j f_j(x) by central differences, one element at a time. */
static void fd_grad(real *grad, real *x, size_t n, const real *r, size_t m, EvalFn f, void *ctx) {
    real *fp = vec(m), *fm = vec(m);
    serial_begin();
    for (size_t i = 0; i < n; i++) {
        real x0 = x[i], xp = x0 + (real)EPS, xm = x0 - (real)EPS;
        x[i] = xp;
        f(ctx, fp);
        x[i] = xm;
        f(ctx, fm);
        x[i] = x0;
        double s = 0;
        for (size_t j = 0; j < m; j++) s += (double)r[j] * ((double)fp[j] - (double)fm[j]);
        grad[i] = (real)(s / ((double)xp - (double)xm));
    }
    serial_end();
    free(fp);
    free(fm);
}

#endif

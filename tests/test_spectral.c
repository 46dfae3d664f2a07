/* test_spectral.c: checks src/spectral/ against dense symmetric matrices of known spectrum
 * (A = Q diag(eigs) Q^T with Q a random orthogonal matrix from the QR of a Gaussian matrix):
 * dense eigen-solvers (f64, f32), linop_apply (counting, non-finite rejection), power iteration (plain,
 * study momentum, heavy ball, stochastic operator), Lanczos (top / bottom / both, true residuals, product
 * counts, invariant subspaces, reproducibility, fewer products than power iteration), Hutchinson and Hutch++
 * traces, and the stochastic Lanczos quadrature density. Fixed seeds; runs in well under a second. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/common.h"
#include "../src/core/rng.h"
#include "../src/spectral/linop.h"
#include "../src/spectral/spectral.h"
#include "check.h"

/* ---- matrices of known spectrum ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* a (n, n) = Q diag(eigs) Q^T with Q random orthogonal (QR of a Gaussian matrix), exactly symmetric. */
static double *make_matrix(int n, const double *eigs, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    double *q = malloc((size_t)n * n * sizeof *q), *b = malloc((size_t)n * n * sizeof *b);
    double *a = malloc((size_t)n * n * sizeof *a), *tau = malloc((size_t)n * sizeof *tau);
    for (int i = 0; i < n * n; i++) q[i] = rng_normal(&rng);
    LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n, n, q, n, tau);
    LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n, n, n, q, n, tau);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) b[i * n + j] = q[i * n + j] * eigs[j];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, b, n, q, n, 0.0, a, n);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double s = 0.5 * (a[i * n + j] + a[j * n + i]);
            a[i * n + j] = a[j * n + i] = s;
        }
    free(q);
    free(b);
    free(tau);
    return a;
}

/* The main test spectrum (n = 300, ascending after sorting): outliers 100, 90, 80, 70, 60 and -20, -15, -12,
 * -10, -9; a gap; a tight cluster of 40 around 1; a bulk of 150 in [-0.5, 3]; 100 near zero. */
#define N_MAIN 300
static void main_spectrum(double *e) {
    Rng rng;
    rng_seed(&rng, 7);
    int i = 0;
    const double top[5] = {100, 90, 80, 70, 60}, bottom[5] = {-20, -15, -12, -10, -9};
    for (int j = 0; j < 5; j++) e[i++] = top[j];
    for (int j = 0; j < 5; j++) e[i++] = bottom[j];
    for (int j = 0; j < 40; j++) e[i++] = 0.95 + 0.1 * rng_uniform(&rng);
    for (int j = 0; j < 150; j++) e[i++] = -0.5 + 3.5 * rng_uniform(&rng);
    for (int j = 0; j < 100; j++) e[i++] = 1e-3 * (2.0 * rng_uniform(&rng) - 1.0);
    qsort(e, N_MAIN, sizeof *e, cmp_double);
}

/* ---- dense eigen-solvers ---- */

static void test_eigen(const double *a, const double *eigs, int n) {
    double norm = fmax(fabs(eigs[0]), fabs(eigs[n - 1]));
    double *c = malloc((size_t)n * n * sizeof *c), *w = malloc((size_t)n * sizeof *w);
    memcpy(c, a, (size_t)n * n * sizeof *c);
    CHECK(eigen_symmetric_f64(c, n, w, 1) == 0, "eigen_symmetric_f64: %s", hs_last_error());
    double worst = 0.0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(w[i] - eigs[i]));
    CHECK(worst <= 1e-10 * norm, "f64 eigenvalues: max error %g (norm %g)", worst, norm);
    /* Eigenvectors are the columns of the row-major result: A v_j = lambda_j v_j. */
    double worst_res = 0.0;
    for (int j = 0; j < n; j += 37) {
        double ss = 0.0;
        for (int i = 0; i < n; i++) {
            double av = 0.0;
            for (int k = 0; k < n; k++) av += a[i * n + k] * c[k * n + j];
            ss += (av - w[j] * c[i * n + j]) * (av - w[j] * c[i * n + j]);
        }
        worst_res = fmax(worst_res, sqrt(ss));
    }
    CHECK(worst_res <= 1e-10 * norm, "f64 eigenvectors (columns): residual %g", worst_res);

    float *cf = malloc((size_t)n * n * sizeof *cf), *wf = malloc((size_t)n * sizeof *wf);
    for (int i = 0; i < n * n; i++) cf[i] = (float)a[i];
    CHECK(eigen_symmetric_f32(cf, n, wf, 0) == 0, "eigen_symmetric_f32: %s", hs_last_error());
    worst = 0.0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(wf[i] - eigs[i]));
    CHECK(worst <= 1e-4 * norm, "f32 eigenvalues: max error %g (norm %g)", worst, norm);
    int ascending = 1;
    for (int i = 1; i < n; i++) ascending &= wf[i] >= wf[i - 1];
    CHECK(ascending, "f32 eigenvalues ascending");

    /* Errors: non-finite entry, bad size. */
    memcpy(c, a, (size_t)n * n * sizeof *c);
    c[3 * n + 5] = NAN;
    CHECK(eigen_symmetric_f64(c, n, w, 0) == -1 && strstr(hs_last_error(), "(3, 5)"),
          "eigen rejects NaN entry: '%s'", hs_last_error());
    CHECK(eigen_symmetric_f64(c, 0, w, 0) == -1 && strstr(hs_last_error(), "positive"), "eigen rejects n = 0");
    free(c);
    free(w);
    free(cf);
    free(wf);
}

/* ---- linop_apply ---- */

static int nan_apply(void *ctx, const double *v, double *out, int count) {
    int64_t n = *(const int64_t *)ctx;
    for (int64_t k = 0; k < count * n; k++) out[k] = v[k];
    out[(count - 1) * n + 7] = NAN; /* last vector, index 7 */
    return 0;
}

static int failing_apply(void *ctx, const double *v, double *out, int count) {
    return hs_error("model forward failed on batch 3");
}

static void test_linop(DenseMatrix *dm) {
    LinOp op = linop_dense(dm);
    int64_t n = dm->n;
    double *v = malloc(3 * n * sizeof *v), *out = malloc(3 * n * sizeof *out), *one = malloc(n * sizeof *one);
    Rng rng;
    rng_seed(&rng, 3);
    for (int64_t k = 0; k < 3 * n; k++) v[k] = rng_normal(&rng);
    CHECK(linop_apply(&op, v, out, 3) == 0 && op.applications == 3, "dense batched apply counts 3");
    CHECK(linop_apply(&op, v + n, one, 1) == 0 && op.applications == 4, "dense single apply counts 1");
    double diff = 0.0;
    for (int64_t k = 0; k < n; k++) diff = fmax(diff, fabs(one[k] - out[n + k]));
    CHECK(diff <= 1e-12, "batched (dgemm) and single (dgemv) products agree: %g", diff);
    double ref = 0.0;
    for (int64_t k = 0; k < n; k++) ref += dm->a[5 * n + k] * v[k];
    CHECK_CLOSE(out[5], ref, 1e-12, 1e-12);

    LinOp bad = {.n = n, .apply = nan_apply, .ctx = &n};
    CHECK(linop_apply(&bad, v, out, 2) == -1, "NaN-producing operator rejected");
    CHECK(strstr(hs_last_error(), "non-finite") && strstr(hs_last_error(), "index 7") &&
              strstr(hs_last_error(), "vector 1"),
          "NaN error names the index: '%s'", hs_last_error());
    LinOp fail = {.n = n, .apply = failing_apply};
    CHECK(linop_apply(&fail, v, out, 1) == -1 && strstr(hs_last_error(), "batch 3"),
          "apply failure keeps the operator's message: '%s'", hs_last_error());
    CHECK(linop_apply(&op, v, out, 0) == -1, "count 0 rejected");
    free(v);
    free(out);
    free(one);
}

/* ---- power iteration ---- */

typedef struct {
    int calls;
    double last;
} StepLog;
static void power_log(void *user, int step, double lambda, double residual) {
    StepLog *l = user;
    l->calls++;
    l->last = lambda;
}

typedef struct {
    DenseMatrix *m;
    Rng rng;
    double *tmp;
} NoisyOp;
/* A stochastic operator: each product is (1 + 0.01 u) A v with a fresh u ~ N(0, 1). */
static int noisy_apply(void *ctx, const double *v, double *out, int count) {
    NoisyOp *o = ctx;
    int64_t n = o->m->n;
    for (int c = 0; c < count; c++) {
        double f = 1.0 + 0.01 * rng_normal(&o->rng);
        cblas_dgemv(CblasRowMajor, CblasNoTrans, n, n, f, o->m->a, n, v + c * n, 1, 0.0, out + c * n, 1);
    }
    return 0;
}

static void test_power(DenseMatrix *dm, double *plain_products) {
    LinOp op = linop_dense(dm);
    StepLog log = {0};
    PowerOptions o = {.iters = 2000, .variant = POWER_PLAIN, .tol = 1e-7, .seed = 11, .on_step = power_log, .user = &log};
    PowerResult r;
    CHECK(power_iteration(&op, &o, &r) == 0, "power plain: %s", hs_last_error());
    CHECK_CLOSE(r.lambda, 100.0, 1e-6, 0.0);
    CHECK(r.residual <= 1e-7 * fabs(r.lambda), "power plain residual %g", r.residual);
    CHECK(r.products == r.steps && op.applications == r.steps, "power plain: one product per step (%lld, %d)",
          (long long)r.products, r.steps);
    CHECK(log.calls == r.steps && log.last == r.lambda, "power on_step called every step");
    CHECK(r.lambdas[r.steps - 1] == r.lambda && r.residuals[r.steps - 1] == r.residual, "power records last step");
    double nv = 0.0, rq = 0.0;
    for (int64_t i = 0; i < dm->n; i++) nv += r.vector[i] * r.vector[i];
    CHECK_CLOSE(nv, 1.0, 1e-12, 0.0);
    for (int64_t i = 0; i < dm->n; i++) {
        double av = 0.0;
        for (int64_t k = 0; k < dm->n; k++) av += dm->a[i * dm->n + k] * r.vector[k];
        rq += r.vector[i] * av;
    }
    CHECK_CLOSE(rq, r.lambda, 1e-12, 0.0); /* lambda is the final vector's Rayleigh quotient */
    int plain_steps = r.steps;
    *plain_products = (double)r.products;
    printf("power plain: %d products to residual %.2e (lambda error %.2e)\n", r.steps, r.residual,
           fabs(r.lambda - 100.0) / 100.0);
    power_result_free(&r);

    /* Heavy ball (De Sa et al.) with beta = lambda_2^2 / 4 converges faster. */
    o.variant = POWER_HEAVY_BALL;
    o.beta = 90.0 * 90.0 / 4.0;
    o.on_step = NULL;
    CHECK(power_iteration(&op, &o, &r) == 0, "power heavy ball: %s", hs_last_error());
    CHECK_CLOSE(r.lambda, 100.0, 1e-6, 0.0);
    CHECK(r.residual <= 1e-7 * fabs(r.lambda) && r.products == r.steps, "heavy ball converged");
    CHECK(r.steps < plain_steps, "heavy ball faster than plain: %d vs %d", r.steps, plain_steps);
    printf("power heavy ball: %d products\n", r.steps);
    power_result_free(&r);

    /* Study momentum: converges (more slowly). */
    o.variant = POWER_STUDY_MOMENTUM;
    o.beta = 0.5;
    o.tol = 1e-6;
    CHECK(power_iteration(&op, &o, &r) == 0, "power study momentum: %s", hs_last_error());
    CHECK(r.steps < o.iters && r.residual <= 1e-6 * fabs(r.lambda), "study momentum converged (%d steps)", r.steps);
    CHECK_CLOSE(r.lambda, 100.0, 1e-6, 0.0);
    printf("power study momentum (beta 0.5): %d products\n", r.steps);
    power_result_free(&r);

    /* Same seed, same bits; tol 0 runs every iteration. */
    PowerResult r1, r2;
    o.variant = POWER_PLAIN;
    o.tol = 0.0;
    o.iters = 40;
    CHECK(power_iteration(&op, &o, &r1) == 0 && power_iteration(&op, &o, &r2) == 0, "power repeat");
    CHECK(r1.steps == 40 && memcmp(r1.vector, r2.vector, dm->n * sizeof(double)) == 0 &&
              memcmp(r1.lambdas, r2.lambdas, 40 * sizeof(double)) == 0,
          "power reproducible, tol 0 runs all iterations");
    power_result_free(&r1);
    power_result_free(&r2);

    /* A stochastic operator (new "batch" per product). */
    NoisyOp no = {.m = dm};
    rng_seed(&no.rng, 5);
    LinOp nop = {.n = dm->n, .apply = noisy_apply, .ctx = &no};
    o.iters = 150;
    CHECK(power_iteration(&nop, &o, &r) == 0 && r.products == 150, "power on a stochastic operator");
    CHECK_CLOSE(r.lambda, 100.0, 0.05, 0.0);
    power_result_free(&r);

    /* Errors. */
    o.iters = 0;
    CHECK(power_iteration(&op, &o, &r) == -1 && strstr(hs_last_error(), "iters"), "power rejects iters 0");
    o.iters = 10;
    o.variant = POWER_STUDY_MOMENTUM;
    o.beta = 1.5;
    CHECK(power_iteration(&op, &o, &r) == -1 && strstr(hs_last_error(), "beta"), "power rejects beta 1.5");
    int64_t n = dm->n;
    LinOp bad = {.n = n, .apply = nan_apply, .ctx = &n};
    o.variant = POWER_PLAIN;
    CHECK(power_iteration(&bad, &o, &r) == -1 && strstr(hs_last_error(), "non-finite") && r.vector == NULL,
          "power reports a NaN product: '%s'", hs_last_error());
}

/* ---- Lanczos ---- */

static int lanczos_calls;
static void lanczos_log(void *user, int step, double top, double bottom, double worst) { lanczos_calls++; }

static void check_lanczos_pairs(const char *what, const LanczosResult *r, const double *expect, int count,
                                int64_t products_before, const LinOp *op) {
    CHECK(r->count == count, "%s: %d pairs (expected %d)", what, r->count, count);
    if (r->count != count) return;
    double worst = 0.0, worst_res = 0.0;
    for (int i = 0; i < count; i++) {
        worst = fmax(worst, fabs(r->eigenvalues[i] - expect[i]) / fabs(expect[i]));
        worst_res = fmax(worst_res, r->residuals[i]);
    }
    CHECK(worst <= 1e-8, "%s: eigenvalue relative error %g", what, worst);
    CHECK(worst_res <= 1e-6, "%s: true residual %g", what, worst_res);
    CHECK(r->converged, "%s converged", what);
    CHECK(r->products == r->steps + count && op->applications - products_before == r->products,
          "%s: products %lld = steps %d + %d residual products", what, (long long)r->products, r->steps, count);
    printf("lanczos %s: %d steps, %lld products, worst true residual %.2e\n", what, r->steps,
           (long long)r->products, worst_res);
}

static void test_lanczos(DenseMatrix *dm, const double *eigs, int plain_power_products) {
    int n = (int)dm->n;
    LinOp op = linop_dense(dm);
    LanczosOptions o = {.k = 5, .which = LANCZOS_LARGEST, .max_steps = 300, .tol = 1e-10, .seed = 42,
                        .want_vectors = 1, .on_step = lanczos_log};
    LanczosResult r;
    int64_t before = op.applications;
    lanczos_calls = 0;
    CHECK(lanczos(&op, &o, &r) == 0, "lanczos top-5: %s", hs_last_error());
    check_lanczos_pairs("top-5", &r, eigs + n - 5, 5, before, &op);
    CHECK(lanczos_calls == r.steps, "lanczos on_step every step (%d vs %d)", lanczos_calls, r.steps);
    /* Vectors: unit, and A y = theta y up to the residual. */
    double ny = 0.0;
    for (int k = 0; k < n; k++) ny += r.vectors[4 * n + k] * r.vectors[4 * n + k];
    CHECK_CLOSE(ny, 1.0, 1e-12, 0.0);
    LanczosResult r2;
    CHECK(lanczos(&op, &o, &r2) == 0, "lanczos repeat");
    CHECK(r2.steps == r.steps && memcmp(r.eigenvalues, r2.eigenvalues, 5 * sizeof(double)) == 0 &&
              memcmp(r.residuals, r2.residuals, 5 * sizeof(double)) == 0 &&
              memcmp(r.vectors, r2.vectors, 5 * (size_t)n * sizeof(double)) == 0,
          "lanczos: same seed, same bits");
    lanczos_result_free(&r);
    lanczos_result_free(&r2);

    o.which = LANCZOS_SMALLEST;
    o.want_vectors = 0;
    before = op.applications;
    CHECK(lanczos(&op, &o, &r) == 0, "lanczos bottom-5: %s", hs_last_error());
    check_lanczos_pairs("bottom-5", &r, eigs, 5, before, &op);
    CHECK(r.vectors == NULL, "no vectors unless asked");
    lanczos_result_free(&r);

    o.which = LANCZOS_BOTH;
    o.k = 3;
    before = op.applications;
    CHECK(lanczos(&op, &o, &r) == 0, "lanczos both-3: %s", hs_last_error());
    double both[6] = {eigs[0], eigs[1], eigs[2], eigs[n - 3], eigs[n - 2], eigs[n - 1]};
    check_lanczos_pairs("both-3", &r, both, 6, before, &op);
    lanczos_result_free(&r);

    /* Fewer products than plain power iteration for the top eigenvalue, at better accuracy. */
    o.which = LANCZOS_LARGEST;
    o.k = 1;
    o.tol = 1e-8;
    before = op.applications;
    CHECK(lanczos(&op, &o, &r) == 0, "lanczos top-1");
    check_lanczos_pairs("top-1", &r, eigs + n - 1, 1, before, &op);
    CHECK(r.products < plain_power_products, "lanczos top-1 needs fewer products than power: %lld vs %d",
          (long long)r.products, plain_power_products);
    lanczos_result_free(&r);

    /* Warm start from the top eigenvector: converges almost at once. */
    double *c = malloc((size_t)n * n * sizeof *c), *w = malloc(n * sizeof *w), *v = malloc(n * sizeof *v);
    memcpy(c, dm->a, (size_t)n * n * sizeof *c);
    CHECK(eigen_symmetric_f64(c, n, w, 1) == 0, "eigenvectors for the warm start: %s", hs_last_error());
    for (int i = 0; i < n; i++) v[i] = c[i * n + n - 1] + 1e-6 * c[i * n + n - 2];
    o.start = v;
    CHECK(lanczos(&op, &o, &r) == 0 && r.converged && r.steps <= 6, "warm-started lanczos: %d steps", r.steps);
    CHECK_CLOSE(r.eigenvalues[0], 100.0, 1e-8, 0.0);
    lanczos_result_free(&r);
    o.start = NULL;
    free(c);
    free(w);
    free(v);

    /* Errors. */
    o.k = 0;
    CHECK(lanczos(&op, &o, &r) == -1 && strstr(hs_last_error(), "k = 0"), "lanczos rejects k = 0");
    o.k = 5;
    o.max_steps = 3;
    CHECK(lanczos(&op, &o, &r) == -1 && strstr(hs_last_error(), "max_steps"), "lanczos rejects max_steps < k");
}

static void test_lanczos_invariant(void) {
    /* Few distinct eigenvalues: the Krylov space becomes invariant after 4 steps. */
    enum { n = 120 };
    double e[n];
    e[0] = -1.0;
    for (int i = 1; i < 40; i++) e[i] = -1.0;
    for (int i = 40; i < 80; i++) e[i] = 1.0;
    for (int i = 80; i < n - 1; i++) e[i] = 2.0;
    e[n - 1] = 5.0;
    double *a = make_matrix(n, e, 99);
    DenseMatrix dm = {n, a};
    LinOp op = linop_dense(&dm);
    LanczosOptions o = {.k = 3, .which = LANCZOS_LARGEST, .max_steps = n, .tol = 1e-10, .seed = 1};
    LanczosResult r;
    CHECK(lanczos(&op, &o, &r) == 0, "lanczos on an invariant subspace: %s", hs_last_error());
    CHECK(r.count == 3 && r.restarts >= 1 && r.converged, "restarted (%d) and converged", r.restarts);
    if (r.count == 3) {
        CHECK_CLOSE(r.eigenvalues[0], 2.0, 1e-10, 0.0);
        CHECK_CLOSE(r.eigenvalues[1], 2.0, 1e-10, 0.0);
        CHECK_CLOSE(r.eigenvalues[2], 5.0, 1e-10, 0.0);
        CHECK(r.residuals[0] <= 1e-9 && r.residuals[2] <= 1e-9, "exact pairs have tiny residuals");
    }
    printf("lanczos invariant-subspace case: %d steps, %d restarts\n", r.steps, r.restarts);
    lanczos_result_free(&r);

    /* A multiple of the identity: every step is a breakdown. */
    double *id = calloc(n * n, sizeof *id);
    for (int i = 0; i < n; i++) id[i * n + i] = 3.0;
    DenseMatrix dmi = {n, id};
    LinOp opi = linop_dense(&dmi);
    o.k = 2;
    o.which = LANCZOS_BOTH;
    CHECK(lanczos(&opi, &o, &r) == 0 && r.count == 4 && r.converged && r.steps <= 6,
          "lanczos on 3 I: %d steps", r.steps);
    for (int i = 0; i < r.count; i++) CHECK_CLOSE(r.eigenvalues[i], 3.0, 1e-14, 0.0);
    lanczos_result_free(&r);
    free(id);

    /* Whole space: n = 12, max_steps >= n returns every eigenvalue. */
    double e12[12];
    for (int i = 0; i < 12; i++) e12[i] = i - 4.5;
    double *a12 = make_matrix(12, e12, 5);
    DenseMatrix dm12 = {12, a12};
    LinOp op12 = linop_dense(&dm12);
    LanczosOptions o12 = {.k = 12, .which = LANCZOS_LARGEST, .max_steps = 50, .tol = 0.0, .seed = 3};
    CHECK(lanczos(&op12, &o12, &r) == 0 && r.count == 12 && r.steps == 12 && r.converged,
          "lanczos spanning the whole space");
    for (int i = 0; i < r.count; i++) CHECK_CLOSE(r.eigenvalues[i], e12[i], 0.0, 1e-12);
    lanczos_result_free(&r);
    free(a12);
    free(a);
}

/* ---- trace ---- */

static void test_trace(DenseMatrix *dm, const double *eigs) {
    LinOp op = linop_dense(dm);
    double tr = 0.0;
    for (int64_t i = 0; i < dm->n; i++) tr += eigs[i];
    const int products = 60, seeds = 10;
    double err_h = 0.0, err_pp = 0.0;
    int within = 0, within_pp = 0;
    for (int s = 0; s < seeds; s++) {
        TraceResult h, pp;
        int64_t before = op.applications;
        CHECK(trace_hutchinson(&op, products, 1000 + s, &h) == 0, "hutchinson: %s", hs_last_error());
        CHECK(h.products == products && op.applications - before == products, "hutchinson products %lld",
              (long long)h.products);
        before = op.applications;
        CHECK(trace_hutchpp(&op, products, 2000 + s, &pp) == 0, "hutch++: %s", hs_last_error());
        CHECK(pp.products == products && op.applications - before == products, "hutch++ products %lld",
              (long long)pp.products);
        within += fabs(h.trace - tr) <= 3.0 * h.std_error;
        within_pp += fabs(pp.trace - tr) <= 3.0 * pp.std_error;
        err_h += fabs(h.trace - tr) / seeds;
        err_pp += fabs(pp.trace - tr) / seeds;
        if (s == 0)
            printf("trace %.4f: hutchinson %.4f +- %.4f, hutch++ %.4f +- %.4f (%d products each)\n", tr, h.trace,
                   h.std_error, pp.trace, pp.std_error, products);
    }
    CHECK(within == seeds, "hutchinson within 3 standard errors for %d of %d seeds", within, seeds);
    CHECK(within_pp >= seeds - 1, "hutch++ within 3 standard errors for %d of %d seeds", within_pp, seeds);
    CHECK(err_pp < err_h, "hutch++ mean error %g < hutchinson %g", err_pp, err_h);
    printf("mean |error| over %d seeds: hutchinson %.4f, hutch++ %.4f\n", seeds, err_h, err_pp);

    TraceResult a, b;
    CHECK(trace_hutchpp(&op, 30, 9, &a) == 0 && trace_hutchpp(&op, 30, 9, &b) == 0 &&
              memcmp(&a, &b, sizeof a) == 0,
          "hutch++ reproducible");
    CHECK(trace_hutchinson(&op, 1, 1, &a) == -1 && strstr(hs_last_error(), "at least 2"), "hutchinson needs 2 probes");
    CHECK(trace_hutchpp(&op, 3, 1, &a) == -1 && strstr(hs_last_error(), "at least 4"), "hutch++ needs 4 products");

    /* Hutch++ with products >= 3n is exact. */
    double e[10] = {-3, -1, 0, 0.5, 1, 2, 4, 8, 16, 32}, tr10 = 0.0;
    for (int i = 0; i < 10; i++) tr10 += e[i];
    double *m10 = make_matrix(10, e, 77);
    DenseMatrix d10 = {10, m10};
    LinOp op10 = linop_dense(&d10);
    CHECK(trace_hutchpp(&op10, 30, 1, &a) == 0 && a.std_error == 0.0 && a.products == 20, "hutch++ exact case");
    CHECK_CLOSE(a.trace, tr10, 1e-12, 1e-12);
    free(m10);
}

/* ---- spectral density ---- */

static double integrate(const DensityResult *d, int power) {
    double s = 0.0;
    for (int g = 0; g + 1 < d->grid; g++) {
        double f0 = d->density[g] * pow(d->x[g], power), f1 = d->density[g + 1] * pow(d->x[g + 1], power);
        s += 0.5 * (f0 + f1) * (d->x[g + 1] - d->x[g]);
    }
    return s;
}

static void test_density(DenseMatrix *dm, const double *eigs) {
    int64_t n = dm->n;
    LinOp op = linop_dense(dm);
    DensityOptions o = {.runs = 10, .steps = 60, .sigma = 0.0, .grid = 1000, .seed = 8};
    DensityResult d;
    int64_t before = op.applications;
    CHECK(spectral_density(&op, &o, &d) == 0, "density: %s", hs_last_error());
    CHECK(d.nodes == 600 && d.products == 600 && op.applications - before == 600, "density nodes %d products %lld",
          d.nodes, (long long)d.products);
    double wsum = 0.0, mean_nodes = 0.0;
    for (int i = 0; i < d.nodes; i++) {
        wsum += d.node_weights[i];
        mean_nodes += d.node_weights[i] * d.node_values[i];
    }
    CHECK_CLOSE(wsum, 1.0, 1e-12, 0.0);
    double mass = integrate(&d, 0), mean = integrate(&d, 1);
    CHECK_CLOSE(mass, 1.0, 1e-4, 0.0);
    CHECK_CLOSE(mean, mean_nodes, 1e-6, 1e-6);
    /* sum_i w_i theta_i = mean over runs of v^T A v: a Hutchinson estimate of tr(A) / n with
     * variance 2 (||A||_F^2 - sum a_ii^2) / n^2 per run. */
    double tr = 0.0, fro = 0.0, diag2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        tr += eigs[i];
        fro += eigs[i] * eigs[i];
        diag2 += dm->a[i * n + i] * dm->a[i * n + i];
    }
    double se = sqrt(2.0 * (fro - diag2) / ((double)n * n) / o.runs);
    CHECK(fabs(mean - tr / n) <= 4.0 * se, "density mean %g vs tr/n %g (se %g)", mean, tr / n, se);
    printf("density: integral %.6f, mean %.4f vs tr/n %.4f (se %.3f), sigma %.3g\n", mass, mean, tr / n, se, d.sigma);
    /* Ritz values lie within the spectrum and the extremes are found. */
    double lo = d.node_values[0], hi = d.node_values[0];
    for (int i = 0; i < d.nodes; i++) lo = fmin(lo, d.node_values[i]), hi = fmax(hi, d.node_values[i]);
    CHECK(lo >= eigs[0] - 1e-9 && hi <= eigs[n - 1] + 1e-9, "nodes inside the spectrum");
    CHECK_CLOSE(hi, eigs[n - 1], 1e-8, 0.0);
    DensityResult d2;
    CHECK(spectral_density(&op, &o, &d2) == 0 && memcmp(d.density, d2.density, d.grid * sizeof(double)) == 0 &&
              memcmp(d.node_weights, d2.node_weights, d.nodes * sizeof(double)) == 0,
          "density reproducible");
    density_result_free(&d);
    density_result_free(&d2);

    /* Full-length run on a small matrix: nodes are exactly the eigenvalues, weights the squared overlaps. */
    double e[40];
    for (int i = 0; i < 40; i++) e[i] = -2.0 + 0.1 * i * i / 4.0;
    double *a = make_matrix(40, e, 21);
    DenseMatrix d40 = {40, a};
    LinOp op40 = linop_dense(&d40);
    DensityOptions o40 = {.runs = 1, .steps = 40, .grid = 200, .seed = 2, .probe = DENSITY_NORMAL};
    CHECK(spectral_density(&op40, &o40, &d) == 0 && d.nodes == 40, "density n = 40 full run");
    double worst = 0.0;
    for (int i = 0; i < d.nodes && d.nodes == 40; i++) worst = fmax(worst, fabs(d.node_values[i] - e[i]));
    CHECK(worst <= 1e-10 * 100, "full SLQ run recovers the eigenvalues: %g", worst);
    CHECK_CLOSE(integrate(&d, 0), 1.0, 1e-4, 0.0);
    density_result_free(&d);
    free(a);

    /* 3 I: each run stops after one step (invariant), one node at 3 per run. */
    double *id = calloc(50 * 50, sizeof *id);
    for (int i = 0; i < 50; i++) id[i * 50 + i] = 3.0;
    DenseMatrix did = {50, id};
    LinOp opid = linop_dense(&did);
    DensityOptions oid = {.runs = 4, .steps = 20, .grid = 100, .seed = 2};
    CHECK(spectral_density(&opid, &oid, &d) == 0 && d.nodes == 4 && d.products == 4, "density of 3 I: %d nodes",
          d.nodes);
    CHECK_CLOSE(integrate(&d, 0), 1.0, 1e-4, 0.0);
    CHECK_CLOSE(integrate(&d, 1), 3.0, 1e-6, 0.0);
    density_result_free(&d);
    free(id);

    oid.grid = 4;
    CHECK(spectral_density(&opid, &oid, &d) == -1 && strstr(hs_last_error(), "grid"), "density rejects grid 4");
}

int main(void) {
    double t0 = hs_seconds();
    double eigs[N_MAIN];
    main_spectrum(eigs);
    double *a = make_matrix(N_MAIN, eigs, 2024);
    DenseMatrix dm = {N_MAIN, a};

    test_eigen(a, eigs, N_MAIN);
    test_linop(&dm);
    double plain_products = 0.0;
    test_power(&dm, &plain_products);
    test_lanczos(&dm, eigs, (int)plain_products);
    test_lanczos_invariant();
    test_trace(&dm, eigs);
    test_density(&dm, eigs);

    free(a);
    printf("test_spectral: %.2f s\n", hs_seconds() - t0);
    return check_summary("test_spectral");
}

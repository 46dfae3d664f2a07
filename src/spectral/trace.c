/* trace.c: stochastic trace estimation of a symmetric LinOp (see spectral.h).
 *   Hutchinson: tr(A) ~ mean_j z_j^T A z_j over Rademacher probes z_j; standard error = sample standard
 *     deviation / sqrt(probes). Needs probes >= 2.
 *   Hutch++ (Meyer, Musco, Musco, Woodruff 2021): with m products, s = m/3 Rademacher columns S, Q =
 *     orth(A S) (Householder QR: LAPACKE dgeqrf + dorgqr), tr(A) ~ tr(Q^T A Q) + Hutchinson on
 *     (I - QQ^T) A (I - QQ^T) with the remaining m - 2s probes (>= s); the standard error is that of the
 *     Hutchinson part (the first term is exact). Needs m >= 4. When s reaches n the trace is exact (2n
 *     products, standard error 0).
 * Products are batched (apply with count > 1). Both assume a fixed operator; Hutch++ in particular uses A
 * on S and on Q and relies on it being the same matrix. */
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"
#include "spectral.h"
#include "spectral_internal.h"

static int check_op(const LinOp *op, const TraceResult *res, const char *who) {
    if (!res) return hs_error("%s: result is NULL", who);
    if (!op || !op->apply) return hs_error("%s: operator is NULL", who);
    if (op->n <= 0) return hs_error("%s: operator dimension %lld must be positive", who, (long long)op->n);
    return 0;
}

/* Mean and standard error (sample std / sqrt(p)) of t[0..p). */
static void mean_stderr(const double *t, int p, double *mean, double *se) {
    double s = 0.0;
    for (int j = 0; j < p; j++) s += t[j];
    double mu = s / p, ss = 0.0;
    for (int j = 0; j < p; j++) ss += (t[j] - mu) * (t[j] - mu);
    *mean = mu;
    *se = p > 1 ? sqrt(ss / (p - 1)) / sqrt((double)p) : 0.0;
}

/* t[j] = z_j^T A z_j for `probes` Rademacher probes, projected by (I - Q Q^T) when q_rows > 0. */
static int hutchinson_samples(LinOp *op, Rng *rng, int probes, const double *q /* (q_rows, n) */, int q_rows,
                              double *t /* (probes) */) {
    const int64_t n = op->n;
    int b = batch_size(n, probes);
    double *z = hs_malloc((size_t)b * (size_t)n * sizeof *z);   /* (b, n) probes */
    double *az = hs_malloc((size_t)b * (size_t)n * sizeof *az); /* (b, n) A z */
    double *h = NULL, *work = NULL;
    if (q_rows > 0) {
        h = hs_malloc((size_t)q_rows * sizeof *h);
        work = hs_malloc((size_t)HS_VEC_CHUNKS * (size_t)q_rows * sizeof *work);
    }
    int rc = -1;
    if (!z || !az || (q_rows > 0 && (!h || !work))) goto done;
    for (int j0 = 0; j0 < probes; j0 += b) {
        int cnt = probes - j0 < b ? probes - j0 : b;
        for (int c = 0; c < cnt; c++) {
            double *zc = z + (size_t)c * n;
            fill_rademacher(rng, zc, n, 1.0);
            if (q_rows > 0) { /* z <- (I - Q Q^T) z, one pass (Q has orthonormal rows from Householder QR) */
                vec_project(q, q_rows, zc, n, h, work);
                vec_subtract_rows(q, q_rows, h, zc, n);
            }
        }
        if (linop_apply(op, z, az, cnt) != 0) goto done;
        for (int c = 0; c < cnt; c++) t[j0 + c] = vec_dot(z + (size_t)c * n, az + (size_t)c * n, n);
    }
    rc = 0;
done:
    free(z);
    free(az);
    free(h);
    free(work);
    return rc;
}

int trace_hutchinson(LinOp *op, int probes, uint64_t seed, TraceResult *res) {
    HS_TRY(check_op(op, res, "trace_hutchinson"));
    memset(res, 0, sizeof *res);
    if (probes < 2) return hs_error("trace_hutchinson: probes = %d, need at least 2 for a standard error", probes);
    const int64_t products0 = op->applications;
    double *t = hs_malloc((size_t)probes * sizeof *t); /* (probes) */
    if (!t) return -1;
    Rng rng;
    rng_seed(&rng, seed);
    if (hutchinson_samples(op, &rng, probes, NULL, 0, t) != 0) {
        free(t);
        return hs_error_context("trace_hutchinson: ");
    }
    mean_stderr(t, probes, &res->trace, &res->std_error);
    res->products = op->applications - products0;
    free(t);
    return 0;
}

int trace_hutchpp(LinOp *op, int products, uint64_t seed, TraceResult *res) {
    HS_TRY(check_op(op, res, "trace_hutchpp"));
    memset(res, 0, sizeof *res);
    const int64_t n = op->n;
    if (products < 4)
        return hs_error("trace_hutchpp: products = %d, need at least 4 (sketch, projection and 2 probes)", products);
    if (n > INT_MAX) return hs_error("trace_hutchpp: n = %lld is too large for LAPACK QR", (long long)n);
    int s = products / 3;
    if (s > n) s = (int)n;
    int g = s == n ? 0 : products - 2 * s;
    const int64_t products0 = op->applications;
    Rng rng;
    rng_seed(&rng, seed);
    double *sk = hs_malloc((size_t)s * (size_t)n * sizeof *sk); /* (s, n) sketch S, later A Q */
    double *q = hs_malloc((size_t)s * (size_t)n * sizeof *q);   /* (s, n) A S, then Q (rows orthonormal) */
    double *tau = hs_malloc((size_t)s * sizeof *tau);
    double *t = hs_malloc((size_t)(g > 0 ? g : 1) * sizeof *t);
    int rc = -1;
    if (!sk || !q || !tau || !t) goto done;
    for (int i = 0; i < s; i++) fill_rademacher(&rng, sk + (size_t)i * n, n, 1.0);
    int b = batch_size(n, s);
    for (int i = 0; i < s; i += b) {
        int cnt = s - i < b ? s - i : b;
        if (linop_apply(op, sk + (size_t)i * n, q + (size_t)i * n, cnt) != 0) goto done;
    }
    /* Row-major (s, n) is column-major n x s with leading dimension n: QR of A S. */
    lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (lapack_int)n, s, q, (lapack_int)n, tau);
    if (info != 0) {
        hs_error("LAPACKE_dgeqrf failed (info %d) on the %lld x %d sketch", (int)info, (long long)n, s);
        goto done;
    }
    info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)n, s, s, q, (lapack_int)n, tau);
    if (info != 0) {
        hs_error("LAPACKE_dorgqr failed (info %d) on the %lld x %d sketch", (int)info, (long long)n, s);
        goto done;
    }
    double tq = 0.0; /* tr(Q^T A Q) */
    for (int i = 0; i < s; i += b) {
        int cnt = s - i < b ? s - i : b;
        if (linop_apply(op, q + (size_t)i * n, sk + (size_t)i * n, cnt) != 0) goto done;
        for (int c = i; c < i + cnt; c++) tq += vec_dot(q + (size_t)c * n, sk + (size_t)c * n, n);
    }
    double mean = 0.0, se = 0.0;
    if (g > 0) {
        if (hutchinson_samples(op, &rng, g, q, s, t) != 0) goto done;
        mean_stderr(t, g, &mean, &se);
    }
    res->trace = tq + mean;
    res->std_error = se;
    res->products = op->applications - products0;
    rc = 0;
done:
    if (rc != 0) hs_error_context("trace_hutchpp: ");
    free(sk);
    free(q);
    free(tau);
    free(t);
    return rc;
}

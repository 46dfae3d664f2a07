/* lanczos.c: extreme eigenpairs of a symmetric LinOp by Lanczos with full reorthogonalisation (see
 * spectral.h; the Krylov core is in krylov.c).
 *
 * Each step costs one product. After every step the wanted Ritz values of the tridiagonal T (k largest,
 * k smallest or both) and their residual estimates beta_m |s_{m,i}| (s_i the eigenvector of T, beta_m the
 * norm of the last Lanczos residual) are computed with LAPACKE dstevx (O(k m) work); the run has converged
 * when every estimate is <= tol * max|theta|. When the Krylov space becomes invariant (beta ~ 0) the run
 * continues with a fresh random vector orthogonal to the basis (a new block); convergence is then declared
 * only once the newest block's extreme Ritz value at the wanted end(s) has converged too, which is how
 * copies of repeated eigenvalues are found. Single-vector Lanczos still cannot see the multiplicity of an
 * exactly repeated eigenvalue beyond the copies its blocks reach (documented limitation).
 *
 * At the end the Ritz vectors y_i = Q s_i are formed and ONE batched product A Y (count = number of returned
 * pairs) gives the true residuals ||A y_i - theta_i y_i||; those products are included in `products`.
 * The operator is assumed fixed (the same matrix on every product). Results are bitwise reproducible for a
 * given operator, options and seed (vector kernels with a fixed reduction order, see vecops.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"
#include "spectral.h"
#include "spectral_internal.h"

void lanczos_result_free(LanczosResult *res) {
    if (!res) return;
    free(res->eigenvalues);
    free(res->residuals);
    free(res->vectors);
    memset(res, 0, sizeof *res);
}

/* The wanted Ritz indices (1-based, ascending) among m: up to two ranges [lo[r], hi[r]]. */
static int wanted_ranges(LanczosWhich which, int k, int m, int lo[2], int hi[2]) {
    int kk = k < m ? k : m;
    if (which == LANCZOS_LARGEST) {
        lo[0] = m - kk + 1, hi[0] = m;
        return 1;
    }
    if (which == LANCZOS_SMALLEST) {
        lo[0] = 1, hi[0] = kk;
        return 1;
    }
    if (2 * kk >= m) {
        lo[0] = 1, hi[0] = m;
        return 1;
    }
    lo[0] = 1, hi[0] = kk;
    lo[1] = m - kk + 1, hi[1] = m;
    return 2;
}

typedef struct {
    double *vals;    /* (2k + 2) */
    double *z;       /* (cap, 2k) column-major eigenvectors of T */
    double *scratch; /* (3 cap) */
    int *iscratch;   /* (cap) */
} CheckWork;

/* Ritz values and residual estimates after kr->steps steps. */
static int check_ritz(const Krylov *kr, const LanczosOptions *opt, CheckWork *cw, double *top, double *bottom,
                      double *worst, int *ok) {
    int m = kr->steps;
    const double *d = kr->alpha, *e = kr->beta;
    double bm = kr->beta[m - 1];
    int lo[2], hi[2];
    int nr = wanted_ranges(opt->which, opt->k, m, lo, hi);
    double worst_est = 0.0;
    int have_top = 0, have_bottom = 0;
    for (int r = 0; r < nr; r++) {
        int cols = hi[r] - lo[r] + 1;
        HS_TRY(tridiag_select(d, e, m, lo[r], hi[r], cw->vals, cw->z, cw->scratch, cw->iscratch));
        for (int c = 0; c < cols; c++) {
            double est = fabs(bm * cw->z[(size_t)c * m + (m - 1)]);
            if (est > worst_est) worst_est = est;
        }
        if (lo[r] == 1) *bottom = cw->vals[0], have_bottom = 1;
        if (hi[r] == m) *top = cw->vals[cols - 1], have_top = 1;
    }
    if (!have_top) HS_TRY(tridiag_select(d, e, m, m, m, top, NULL, cw->scratch, cw->iscratch));
    if (!have_bottom) HS_TRY(tridiag_select(d, e, m, 1, 1, bottom, NULL, cw->scratch, cw->iscratch));
    /* After a restart: the newest block's extreme Ritz value(s) at the wanted end(s) must converge as well. */
    if (kr->restarts > 0) {
        int b = kr->block_start, mb = m - b;
        const double *db = d + b, *eb = e + b;
        for (int end = 0; end < 2; end++) {
            if (end == 0 && opt->which == LANCZOS_SMALLEST) continue;
            if (end == 1 && opt->which == LANCZOS_LARGEST) continue;
            int idx = end == 0 ? mb : 1;
            double val;
            HS_TRY(tridiag_select(db, eb, mb, idx, idx, &val, cw->z, cw->scratch, cw->iscratch));
            double est = fabs(bm * cw->z[mb - 1]);
            if (est > worst_est) worst_est = est;
        }
    }
    double scale = fmax(fabs(*top), fabs(*bottom));
    *worst = worst_est;
    *ok = opt->tol > 0.0 && worst_est <= opt->tol * scale;
    return 0;
}

int lanczos(LinOp *op, const LanczosOptions *opt, LanczosResult *res) {
    if (!res) return hs_error("lanczos: result is NULL");
    memset(res, 0, sizeof *res);
    if (!op || !op->apply) return hs_error("lanczos: operator is NULL");
    if (!opt) return hs_error("lanczos: options are NULL");
    const int64_t n = op->n;
    if (n <= 0) return hs_error("lanczos: operator dimension %lld must be positive", (long long)n);
    if (opt->k < 1) return hs_error("lanczos: k = %d, need at least 1 eigenpair", opt->k);
    if (opt->which != LANCZOS_LARGEST && opt->which != LANCZOS_SMALLEST && opt->which != LANCZOS_BOTH)
        return hs_error("lanczos: unknown 'which' %d", (int)opt->which);
    if (!(opt->tol >= 0.0) || !isfinite(opt->tol)) return hs_error("lanczos: tol = %g must be finite and >= 0", opt->tol);
    if (opt->max_steps < 1) return hs_error("lanczos: max_steps = %d, need at least 1", opt->max_steps);
    int64_t want64 = opt->which == LANCZOS_BOTH ? 2 * (int64_t)opt->k : opt->k;
    if (want64 > n) want64 = n;
    int want = (int)want64;
    int max_steps = (int64_t)opt->max_steps > n ? (int)n : opt->max_steps;
    if (max_steps < want)
        return hs_error("lanczos: max_steps = %d is smaller than the %d eigenpairs wanted", max_steps, want);
    int kcols = want64 > max_steps ? max_steps : (int)want64; /* most Ritz vectors needed per check */

    const int64_t products0 = op->applications;
    Krylov kr;
    CheckWork cw = {0};
    double *start = NULL, *theta = NULL, *s = NULL, *y = NULL, *ay = NULL;
    HS_TRY(krylov_init(&kr, n, max_steps));
    Rng rng;
    rng_seed(&rng, opt->seed);
    start = hs_malloc((size_t)n * sizeof *start); /* (n) */
    cw.vals = hs_malloc((size_t)(kcols + 2) * sizeof *cw.vals);
    cw.z = hs_malloc((size_t)max_steps * (size_t)(kcols + 1) * sizeof *cw.z);
    cw.scratch = hs_malloc((size_t)3 * (size_t)max_steps * sizeof *cw.scratch);
    cw.iscratch = hs_malloc((size_t)max_steps * sizeof *cw.iscratch);
    if (!start || !cw.vals || !cw.z || !cw.scratch || !cw.iscratch) goto fail;
    if (opt->start)
        memcpy(start, opt->start, (size_t)n * sizeof *start);
    else
        fill_normal(&rng, start, n);
    if (krylov_start(&kr, start) != 0) goto fail;

    int converged = 0;
    for (;;) {
        if (krylov_step(&kr, op) != 0) goto fail;
        int m = kr.steps;
        double top = 0.0, bottom = 0.0, worst = 0.0;
        int ok = 0;
        if (check_ritz(&kr, opt, &cw, &top, &bottom, &worst, &ok) != 0) goto fail;
        if (opt->on_step) opt->on_step(opt->user, m, top, bottom, worst);
        /* At the first breakdown nothing outside the invariant subspace has been seen yet: go on. */
        if (kr.breakdown && kr.restarts == 0) ok = 0;
        if (ok && m >= want) {
            converged = 1;
            break;
        }
        if ((int64_t)m >= n) { /* the basis spans the whole space: T holds every eigenvalue */
            converged = 1;
            break;
        }
        if (m >= max_steps) break;
        int ext = krylov_extend(&kr, &rng);
        if (ext < 0) goto fail;
        if (ext == 1) { /* the basis spans the whole space: T holds every eigenvalue */
            converged = 1;
            break;
        }
    }

    /* Ritz pairs from the full eigen-decomposition of T. */
    int m = kr.steps;
    theta = hs_malloc((size_t)m * sizeof *theta);                /* (m) */
    s = hs_malloc((size_t)m * (size_t)m * sizeof *s);             /* (m, m) column-major */
    if (!theta || !s) goto fail;
    if (tridiag_all(kr.alpha, kr.beta, m, theta, s, cw.scratch) != 0) goto fail;
    int lo[2], hi[2];
    int nr = wanted_ranges(opt->which, opt->k, m, lo, hi);
    int count = 0;
    for (int r = 0; r < nr; r++) count += hi[r] - lo[r] + 1;
    y = hs_malloc((size_t)count * (size_t)n * sizeof *y);  /* (count, n) Ritz vectors */
    ay = hs_malloc((size_t)count * (size_t)n * sizeof *ay); /* (count, n) A y */
    res->eigenvalues = hs_malloc((size_t)count * sizeof *res->eigenvalues);
    res->residuals = hs_malloc((size_t)count * sizeof *res->residuals);
    if (!y || !ay || !res->eigenvalues || !res->residuals) goto fail;
    int c = 0;
    for (int r = 0; r < nr; r++) {
        for (int i = lo[r] - 1; i < hi[r]; i++, c++) {
            double *yc = y + (size_t)c * n;
            vec_combine_rows(kr.q, m, s + (size_t)i * m, yc, n);
            double ny = vec_norm(yc, n);
            if (ny > 0.0) vec_scale(yc, 1.0 / ny, n);
            res->eigenvalues[c] = theta[i];
        }
    }
    if (linop_apply(op, y, ay, count) != 0) {
        hs_error_context("lanczos: residuals of the Ritz vectors: ");
        goto fail;
    }
    for (c = 0; c < count; c++) {
        const double *yc = y + (size_t)c * n, *ac = ay + (size_t)c * n;
        double lam = res->eigenvalues[c], ss = 0.0;
        for (int64_t k = 0; k < n; k++) {
            double r = ac[k] - lam * yc[k];
            ss += r * r;
        }
        res->residuals[c] = sqrt(ss);
    }
    res->count = count;
    res->steps = m;
    res->restarts = kr.restarts;
    res->converged = converged;
    res->products = op->applications - products0;
    if (opt->want_vectors) {
        res->vectors = y;
        y = NULL;
    }
    free(y);
    free(ay);
    free(theta);
    free(s);
    free(start);
    free(cw.vals);
    free(cw.z);
    free(cw.scratch);
    free(cw.iscratch);
    krylov_free(&kr);
    return 0;

fail:
    free(y);
    free(ay);
    free(theta);
    free(s);
    free(start);
    free(cw.vals);
    free(cw.z);
    free(cw.scratch);
    free(cw.iscratch);
    krylov_free(&kr);
    lanczos_result_free(res);
    return -1;
}

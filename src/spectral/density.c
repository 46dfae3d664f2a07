/* density.c: spectral density of a symmetric LinOp by stochastic Lanczos quadrature (Ghorbani, Krishnan and
 * Xiao 2019; PyHessian's `density`), see spectral.h.
 *
 * Each of `runs` independent runs starts Lanczos (full reorthogonalisation, krylov.c) from a unit random
 * vector v (Rademacher entries +-1/sqrt(n), or normal normalised) and takes `steps` steps, giving the
 * tridiagonal T = S diag(theta) S^T. The Gauss quadrature of v's spectral measure has nodes theta_i and
 * weights S[0][i]^2; over runs the nodes are pooled with weights S[0][i]^2 / runs (they sum to 1). A run
 * whose Krylov space becomes invariant stops early (its quadrature is then exact), so there can be fewer
 * than runs * steps nodes.
 *
 * The smoothed density is sum_i w_i N(x; theta_i, sigma^2) on `grid` equally spaced points spanning
 * [min node - 5 sigma, max node + 5 sigma], so it integrates to 1 up to ~1e-6. sigma <= 0 selects
 * sigma = max(range / 100, range / (grid - 11)) where range = max node - min node (or max(|node|, 1) when
 * every node is the same): 1% of the spectral range, and never less than one grid spacing, so the grid
 * resolves every Gaussian. Assumes a fixed operator.
 *
 * The runs go in lockstep, as many at a time as DENSITY_BATCH_BYTES of Krylov bases allow (all of them for
 * small models, one at a time for ResNets): each step is one batched product of the group's vectors, which an
 * operator with K directions per pass (hessian's) does much faster than K single products. Start vectors are
 * drawn in run order, so the nodes are those of the runs done one by one (up to the products' rounding). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"
#include "spectral.h"
#include "spectral_internal.h"

void density_result_free(DensityResult *res) {
    if (!res) return;
    free(res->x);
    free(res->density);
    free(res->node_values);
    free(res->node_weights);
    memset(res, 0, sizeof *res);
}

/* Krylov bases of runs in lockstep at most (about 1 GiB). */
#define DENSITY_BATCH_BYTES ((size_t)1 << 30)

static void free_work(Krylov *kr, int made, int *active, int *slot, double *v, double *av, double *start,
                      double *theta, double *s, double *scratch) {
    for (int i = 0; i < made; i++) krylov_free(&kr[i]);
    free(kr), free(active), free(slot), free(v), free(av), free(start), free(theta), free(s), free(scratch);
}

int spectral_density(LinOp *op, const DensityOptions *opt, DensityResult *res) {
    if (!res) return hs_error("spectral_density: result is NULL");
    memset(res, 0, sizeof *res);
    if (!op || !op->apply) return hs_error("spectral_density: operator is NULL");
    if (!opt) return hs_error("spectral_density: options are NULL");
    const int64_t n = op->n;
    if (n <= 0) return hs_error("spectral_density: operator dimension %lld must be positive", (long long)n);
    if (opt->runs < 1) return hs_error("spectral_density: runs = %d, need at least 1", opt->runs);
    if (opt->steps < 1) return hs_error("spectral_density: steps = %d, need at least 1", opt->steps);
    if (opt->grid < 16) return hs_error("spectral_density: grid = %d points, need at least 16", opt->grid);
    if (!isfinite(opt->sigma)) return hs_error("spectral_density: sigma = %g is not finite", opt->sigma);
    if (opt->probe != DENSITY_RADEMACHER && opt->probe != DENSITY_NORMAL)
        return hs_error("spectral_density: unknown probe type %d", (int)opt->probe);
    int steps = (int64_t)opt->steps > n ? (int)n : opt->steps;
    const int64_t products0 = op->applications;

    int batch = opt->runs;
    while (batch > 1 && (size_t)batch * (size_t)(steps + 3) * (size_t)n * sizeof(double) > DENSITY_BATCH_BYTES) batch--;
    Krylov *kr = hs_calloc((size_t)batch, sizeof *kr);                  /* (batch) */
    int *active = hs_calloc((size_t)batch, sizeof *active);             /* (batch) runs still stepping */
    int *slot = hs_malloc((size_t)batch * sizeof *slot);                /* (batch) run of each batched vector */
    double *v = hs_malloc((size_t)batch * (size_t)n * sizeof *v);       /* (batch, n) the group's vectors */
    double *av = hs_malloc((size_t)batch * (size_t)n * sizeof *av);     /* (batch, n) their products */
    if (!kr || !active || !slot || !v || !av) {
        free(kr), free(active), free(slot), free(v), free(av);
        return -1;
    }
    int made = 0;
    for (; made < batch; made++)
        if (krylov_init(&kr[made], n, steps) != 0) break;
    size_t max_nodes = (size_t)opt->runs * (size_t)steps;
    double *start = hs_malloc((size_t)n * sizeof *start);               /* (n) */
    double *theta = hs_malloc((size_t)steps * sizeof *theta);           /* (steps) */
    double *s = hs_malloc((size_t)steps * (size_t)steps * sizeof *s);   /* (steps, steps) column-major */
    double *scratch = hs_malloc((size_t)2 * (size_t)steps * sizeof *scratch);
    res->node_values = hs_malloc(max_nodes * sizeof *res->node_values);
    res->node_weights = hs_malloc(max_nodes * sizeof *res->node_weights);
    res->x = hs_malloc((size_t)opt->grid * sizeof *res->x);
    res->density = hs_malloc((size_t)opt->grid * sizeof *res->density);
    if (made < batch || !start || !theta || !s || !scratch || !res->node_values || !res->node_weights || !res->x ||
        !res->density)
        goto fail;

    Rng rng;
    rng_seed(&rng, opt->seed);
    int nodes = 0;
    for (int r0 = 0; r0 < opt->runs; r0 += batch) {
        int nb = opt->runs - r0 < batch ? opt->runs - r0 : batch;
        for (int i = 0; i < nb; i++) {
            if (opt->probe == DENSITY_RADEMACHER)
                fill_rademacher(&rng, start, n, 1.0 / sqrt((double)n));
            else
                fill_normal(&rng, start, n);
            if (krylov_start(&kr[i], start) != 0) goto fail;
            active[i] = 1;
        }
        for (;;) {
            int count = 0;
            for (int i = 0; i < nb; i++) {
                if (!active[i]) continue;
                const double *q = krylov_next(&kr[i]);
                if (!q) goto fail;
                memcpy(v + (size_t)count * n, q, (size_t)n * sizeof *v);
                slot[count++] = i;
            }
            if (count == 0) break;
            if (linop_apply(op, v, av, count) != 0) {
                hs_error_context("spectral_density runs %d-%d: ", r0 + 1, r0 + nb);
                goto fail;
            }
            for (int c = 0; c < count; c++) {
                Krylov *k = &kr[slot[c]];
                if (krylov_absorb(k, av + (size_t)c * n) != 0) goto fail;
                if (k->steps >= steps || k->breakdown) {
                    active[slot[c]] = 0;
                    continue;
                }
                int ext = krylov_extend(k, &rng);
                if (ext < 0) goto fail;
                if (ext == 1) active[slot[c]] = 0;
            }
        }
        for (int i = 0; i < nb; i++) {
            int m = kr[i].steps;
            if (tridiag_all(kr[i].alpha, kr[i].beta, m, theta, s, scratch) != 0) goto fail;
            for (int j = 0; j < m; j++) {
                double s0 = s[(size_t)j * m];
                res->node_values[nodes] = theta[j];
                res->node_weights[nodes] = s0 * s0 / opt->runs;
                nodes++;
            }
        }
    }
    res->nodes = nodes;

    double lo = res->node_values[0], hi = res->node_values[0];
    for (int i = 1; i < nodes; i++) {
        lo = fmin(lo, res->node_values[i]);
        hi = fmax(hi, res->node_values[i]);
    }
    double range = hi - lo;
    if (!(range > 0.0)) range = fmax(fmax(fabs(lo), fabs(hi)), 1.0);
    double sigma = opt->sigma;
    if (sigma <= 0.0) sigma = fmax(range / 100.0, range / (opt->grid - 11));
    double x0 = lo - 5.0 * sigma, x1 = hi + 5.0 * sigma;
    double dx = (x1 - x0) / (opt->grid - 1);
    const double norm = 1.0 / (sigma * sqrt(2.0 * 3.14159265358979323846));
    for (int g = 0; g < opt->grid; g++) {
        double x = x0 + g * dx, sum = 0.0;
        for (int i = 0; i < nodes; i++) {
            double u = (x - res->node_values[i]) / sigma;
            if (fabs(u) < 12.0) sum += res->node_weights[i] * exp(-0.5 * u * u);
        }
        res->x[g] = x;
        res->density[g] = norm * sum;
    }
    res->grid = opt->grid;
    res->sigma = sigma;
    res->products = op->applications - products0;
    free_work(kr, made, active, slot, v, av, start, theta, s, scratch);
    return 0;

fail:
    free_work(kr, made, active, slot, v, av, start, theta, s, scratch);
    density_result_free(res);
    return -1;
}

/* power.c: power iteration for the dominant eigenpair of a LinOp (see spectral.h), in three variants:
 *   POWER_PLAIN           v <- H v / ||H v||
 *   POWER_STUDY_MOMENTUM  v <- normalise(beta v + (1 - beta) normalise(H v))
 *   POWER_HEAVY_BALL      De Sa et al. 2017: x_{t+1} = H x_t - beta x_{t-1}; both x_{t+1} and x_t are divided
 *                         by ||x_{t+1}||, which keeps the recurrence exact and x_{t+1} a unit vector.
 * Every step does exactly one product w = H v_i on the current unit vector v_i and reports from it the
 * Rayleigh quotient lambda_i = v_i . w and the residual ||w - lambda_i v_i||; the same w then drives the
 * update. The loop stops when residual <= tol |lambda| (tol > 0) or after `iters` steps; the result (lambda,
 * residual, vector) is that of the last step, so no product is spent after the loop. Nothing assumes that
 * products repeat, so a stochastic operator (a new mini-batch per product) is fine. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"
#include "spectral.h"
#include "spectral_internal.h"

void power_result_free(PowerResult *res) {
    if (!res) return;
    free(res->lambdas);
    free(res->residuals);
    free(res->vector);
    memset(res, 0, sizeof *res);
}

static int check_options(const LinOp *op, const PowerOptions *opt) {
    if (!op || !op->apply) return hs_error("power_iteration: operator is NULL");
    if (op->n <= 0) return hs_error("power_iteration: operator dimension %lld must be positive", (long long)op->n);
    if (!opt) return hs_error("power_iteration: options are NULL");
    if (opt->iters < 1) return hs_error("power_iteration: iters = %d, need at least 1", opt->iters);
    if (!(opt->tol >= 0.0) || !isfinite(opt->tol))
        return hs_error("power_iteration: tol = %g must be finite and >= 0", opt->tol);
    switch (opt->variant) {
    case POWER_PLAIN:
        break;
    case POWER_STUDY_MOMENTUM:
        if (!(opt->beta >= 0.0 && opt->beta < 1.0))
            return hs_error("power_iteration: study momentum beta = %g must be in [0, 1)", opt->beta);
        break;
    case POWER_HEAVY_BALL:
        if (!(opt->beta >= 0.0) || !isfinite(opt->beta))
            return hs_error("power_iteration: heavy-ball beta = %g must be finite and >= 0 (De Sa et al. suggest "
                            "lambda_2^2 / 4)",
                            opt->beta);
        break;
    default:
        return hs_error("power_iteration: unknown variant %d", (int)opt->variant);
    }
    return 0;
}

int power_iteration(LinOp *op, const PowerOptions *opt, PowerResult *res) {
    if (!res) return hs_error("power_iteration: result is NULL");
    memset(res, 0, sizeof *res);
    HS_TRY(check_options(op, opt));
    const int64_t n = op->n;
    const int64_t products0 = op->applications;

    double *v = hs_malloc((size_t)n * sizeof *v);      /* (n) current unit iterate v_i */
    double *w = hs_malloc((size_t)n * sizeof *w);      /* (n) H v_i */
    double *prev = hs_calloc((size_t)n, sizeof *prev); /* (n) previous iterate (heavy ball) */
    res->lambdas = hs_malloc((size_t)opt->iters * sizeof *res->lambdas);
    res->residuals = hs_malloc((size_t)opt->iters * sizeof *res->residuals);
    if (!v || !w || !prev || !res->lambdas || !res->residuals) goto fail;

    if (opt->start) {
        int64_t bad = 0;
        if (!vec_all_finite(opt->start, n, &bad)) {
            hs_error("power_iteration: start vector entry %lld is not finite", (long long)bad);
            goto fail;
        }
        memcpy(v, opt->start, (size_t)n * sizeof *v);
    } else {
        Rng rng;
        rng_seed(&rng, opt->seed);
        fill_normal(&rng, v, n);
    }
    double nv = vec_norm(v, n);
    if (!(nv > 0.0) || !isfinite(nv)) {
        hs_error("power_iteration: start vector has norm %g (need a finite non-zero vector)", nv);
        goto fail;
    }
    vec_scale(v, 1.0 / nv, n);

    const double beta = opt->beta;
    int step = 0;
    double lambda = 0.0, residual = 0.0;
    for (;;) {
        if (linop_apply(op, v, w, 1) != 0) {
            hs_error_context("power_iteration step %d: ", step + 1);
            goto fail;
        }
        lambda = vec_dot(v, w, n);
        double ss = 0.0; /* ||w - lambda v||^2, summed in a fixed order */
        for (int64_t k = 0; k < n; k++) {
            double r = w[k] - lambda * v[k];
            ss += r * r;
        }
        residual = sqrt(ss);
        res->lambdas[step] = lambda;
        res->residuals[step] = residual;
        step++;
        if (opt->on_step) opt->on_step(opt->user, step, lambda, residual);
        if (opt->tol > 0.0 && residual <= opt->tol * fabs(lambda)) break;
        if (step >= opt->iters) break;

        double nw = vec_norm(w, n);
        if (nw == 0.0) break; /* H v = 0: v is an exact eigenvector (eigenvalue 0) */
        if (opt->variant == POWER_PLAIN) {
            for (int64_t k = 0; k < n; k++) v[k] = w[k] / nw;
        } else if (opt->variant == POWER_STUDY_MOMENTUM) {
            for (int64_t k = 0; k < n; k++) v[k] = beta * v[k] + (1.0 - beta) * (w[k] / nw);
            double nn = vec_norm(v, n);
            if (nn == 0.0) {
                hs_error("power_iteration: study-momentum update cancelled to zero at step %d (beta = %g with "
                         "H v = -|H v| v); use another beta",
                         step, beta);
                goto fail;
            }
            vec_scale(v, 1.0 / nn, n);
        } else { /* POWER_HEAVY_BALL: x_{t+1} = H x_t - beta x_{t-1}; rescale x_{t+1}, x_t by ||x_{t+1}|| */
            for (int64_t k = 0; k < n; k++) w[k] -= beta * prev[k];
            double nn = vec_norm(w, n);
            if (nn == 0.0) {
                hs_error("power_iteration: heavy-ball iterate vanished at step %d (beta = %g)", step, beta);
                goto fail;
            }
            for (int64_t k = 0; k < n; k++) {
                prev[k] = v[k] / nn;
                v[k] = w[k] / nn;
            }
        }
    }

    res->lambda = lambda;
    res->residual = residual;
    res->steps = step;
    res->products = op->applications - products0;
    res->vector = v;
    free(w);
    free(prev);
    return 0;

fail:
    free(v);
    free(w);
    free(prev);
    power_result_free(res);
    return -1;
}

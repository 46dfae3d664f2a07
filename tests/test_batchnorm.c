/* test_batchnorm.c: derivative tests of the ResNet ops: batch norm 2-D in eval mode (running statistics) and in
 * train mode (batch statistics), global average pooling and the residual add. Built in both precisions
 * (test_batchnorm: float64, test_batchnorm_f32: float32); the references are computed in double from the same
 * inputs (tests/derivative_check.h: direct loops, central differences of the float64 ops, tolerances).
 *
 * For each batch-norm mode and several shapes (including M = N*HW = 2, ResNet's 1x1 layer4 with 2 images):
 *   1. forward against direct double loops; train mode: the cache (mean, invstd) and the running-statistics
 *      update against PyTorch's formula (momentum 0.1, unbiased variance), and no update when NULL is given;
 *   2. backward (d_in, d_gamma, d_beta) against central differences of sum(r * forward), element by element;
 *      gamma/beta gradients accumulate (+=), d_in is overwritten, d_in == NULL and d_in == d_out work;
 *   3. tangent forward (K directions; t_in, t_gamma, t_beta each also NULL) against central differences of the
 *      forward pass along (t_in, t_gamma, t_beta) together;
 *   4. tangent backward (every NULL combination of t_in, t_gamma, d_out, td_in) against central differences
 *      of the backward pass with input, gamma, beta and d_out perturbed together; d_out == NULL (Gauss-Newton)
 *      against the backward pass applied to td_out; entries of the (K, ldw) matrix outside the gamma/beta
 *      blocks untouched.
 * Average pool: forward against loops, backward and tangent forward against central differences, tangent
 * backward against the backward pass per direction. Add: exact. Train-mode passes give the same bits with 1 and
 * 2 threads. Synchronised batch norm: a batch cut into slices run by 2 or 3 threads standing in for processes
 * (a BatchStatsGroup summing in thread order) gives the whole batch's outputs, statistics and gradients; a group
 * of one gives its bits. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ops/ops.h"
#include "check.h"

#define EPS 1e-6 /* central-difference step */

#include "derivative_check.h"

static double worst_fd, worst_exact;
static int rc_failures;

static double compare(int exact, const char *what, const real *got, const double *ref, size_t n, double rtol) {
    return compare_values(exact ? &worst_exact : &worst_fd, what, got, ref, n, rtol);
}
static double compare_r(const char *what, const real *got, const real *ref, size_t n) {
    return compare_reals(&worst_exact, what, got, ref, n, RTOL_EXACT);
}

/* ---------------------------------------------------------------- batch norm */

#define BN_EPS 1e-5
#define BN_MOMENTUM 0.1

/* The arrays of the checked passes (real) and of the references (double, perturbed and restored). */
typedef struct {
    int train, N, C, HW;
    real *in, *gamma, *beta, *rmean, *rvar;
} BnCtx;
typedef struct {
    int train, N, C, HW;
    double *in, *gamma, *beta, *rmean, *rvar, *d_out;
} BnRef;

/* Forward in the context's mode; train mode without a running-statistics update. mean/invstd: cache out. */
static void bn_fwd(const BnCtx *x, real *out, real *mean, real *invstd) {
    if (x->train) {
        if (FN(batchnorm_train_forward)(out, mean, invstd, x->in, x->gamma, x->beta, NULL, NULL, BN_MOMENTUM, BN_EPS,
                                        x->N, x->C, x->HW, NULL) != 0)
            rc_failures++;
    } else {
        FN(batchnorm_eval_forward)(out, x->in, x->gamma, x->beta, x->rmean, x->rvar, BN_EPS, x->N, x->C, x->HW);
    }
}
/* The same with the float64 op. */
static void ref_bn_fwd(const BnRef *x, double *out, double *mean, double *invstd) {
    if (x->train) {
        if (batchnorm_train_forward_f64(out, mean, invstd, x->in, x->gamma, x->beta, NULL, NULL, BN_MOMENTUM, BN_EPS,
                                        x->N, x->C, x->HW, NULL) != 0)
            rc_failures++;
    } else {
        batchnorm_eval_forward_f64(out, x->in, x->gamma, x->beta, x->rmean, x->rvar, BN_EPS, x->N, x->C, x->HW);
    }
}
static void eval_bn_fwd(void *c, double *out) {
    BnRef *x = c;
    double *mean = dvec((size_t)x->C), *invstd = dvec((size_t)x->C);
    ref_bn_fwd(x, out, mean, invstd);
    free(mean);
    free(invstd);
}
/* out = [d_in | d_gamma | d_beta] at (in, gamma, beta, d_out). */
static void eval_bn_bwd(void *c, double *out) {
    BnRef *x = c;
    size_t n = (size_t)x->N * x->C * x->HW;
    double *d_gamma = out + n, *d_beta = d_gamma + x->C;
    memset(d_gamma, 0, sizeof(double) * 2 * (size_t)x->C);
    if (x->train) {
        double *y = dvec(n), *mean = dvec((size_t)x->C), *invstd = dvec((size_t)x->C);
        ref_bn_fwd(x, y, mean, invstd);
        batchnorm_train_backward_f64(out, d_gamma, d_beta, x->d_out, x->in, x->gamma, mean, invstd, x->N, x->C, x->HW,
                                     NULL);
        free(y), free(mean), free(invstd);
    } else {
        batchnorm_eval_backward_f64(out, d_gamma, d_beta, x->d_out, x->in, x->gamma, x->rmean, x->rvar, BN_EPS, x->N,
                                    x->C, x->HW);
    }
}

static void bn_tfwd(const BnCtx *x, real *t_out, const real *t_in, const real *t_g, const real *t_b, size_t ldw,
                    const real *mean, const real *invstd, int K) {
    if (x->train)
        FN(batchnorm_train_tangent_forward)(t_out, t_in, t_g, t_b, ldw, x->in, x->gamma, mean, invstd, K, x->N, x->C,
                                            x->HW);
    else
        FN(batchnorm_eval_tangent_forward)(t_out, t_in, t_g, t_b, ldw, x->in, x->gamma, x->rmean, x->rvar, BN_EPS, K,
                                           x->N, x->C, x->HW);
}
static void bn_tbwd(const BnCtx *x, real *td_in, real *td_g, real *td_b, size_t ldw, const real *td_out,
                    const real *d_out, const real *t_in, const real *t_g, const real *mean, const real *invstd, int K) {
    if (x->train) {
        if (FN(batchnorm_train_tangent_backward)(td_in, td_g, td_b, ldw, td_out, d_out, t_in, t_g, x->in, x->gamma,
                                                 mean, invstd, K, x->N, x->C, x->HW) != 0)
            rc_failures++;
    } else {
        FN(batchnorm_eval_tangent_backward)(td_in, td_g, td_b, ldw, td_out, d_out, t_in, t_g, x->in, x->gamma,
                                            x->rmean, x->rvar, BN_EPS, K, x->N, x->C, x->HW);
    }
}

static void test_bn(int train, int N, int C, int HW, int K) {
    const size_t n = (size_t)N * C * HW, tn = (size_t)K * n, nc = (size_t)C;
    const size_t offg = 2, offb = offg + nc + 3, ldw = offb + nc + 4; /* (K, ldw): pad | gamma | pad | beta | pad */
    char name[128], what[512];
    snprintf(name, sizeof name, "batchnorm %s N=%d C=%d HW=%d K=%d", train ? "train" : "eval", N, C, HW, K);

    real *in = vec(n), *gamma = vec(nc), *beta = vec(nc), *rmean = vec(nc), *rvar = vec(nc);
    fill(in, n);
    /* channel offsets; with M = 2 a spread comparable to eps, where the normalisation is far from saturated (for
     * larger spreads xhat = +-1 whatever the input and every derivative is nearly zero) */
    double spread = (double)N * HW == 2 ? 0.004 : 1.5;
    for (size_t i = 0; i < n; i++) in[i] = (real)(spread * in[i] + 0.3 * (double)((i / HW) % C));
    for (size_t c = 0; c < nc; c++) {
        gamma[c] = (real)(0.5 + urand());
        beta[c] = (real)(urand() - 0.5);
        rmean[c] = (real)(urand() - 0.5);
        rvar[c] = (real)(0.3 + urand());
    }
    double *in0 = dvec_of(in, n), *gamma0 = dvec_of(gamma, nc), *beta0 = dvec_of(beta, nc);
    BnCtx ctx = {train, N, C, HW, in, gamma, beta, rmean, rvar};
    BnRef rctx = {train, N, C, HW, dvec_of(in, n), dvec_of(gamma, nc), dvec_of(beta, nc), dvec_of(rmean, nc),
                  dvec_of(rvar, nc), NULL};

    /* 1. forward */
    real *out = vec(n), *mean = vec(nc), *invstd = vec(nc);
    double *ref = dvec(n);
    fill_nan(out, n);
    bn_fwd(&ctx, out, mean, invstd);
    double *mu = calloc(nc, sizeof(double)), *var = calloc(nc, sizeof(double));
    double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        if (train) {
            for (int s = 0; s < N; s++)
                for (int i = 0; i < HW; i++) mu[c] += in[((size_t)s * C + c) * HW + i];
            mu[c] /= M;
            for (int s = 0; s < N; s++)
                for (int i = 0; i < HW; i++) {
                    double d = in[((size_t)s * C + c) * HW + i] - mu[c];
                    var[c] += d * d;
                }
            var[c] /= M;
        } else {
            mu[c] = rmean[c];
            var[c] = rvar[c];
        }
        for (int s = 0; s < N; s++)
            for (int i = 0; i < HW; i++) {
                size_t j = ((size_t)s * C + c) * HW + i;
                ref[j] = gamma[c] * (in[j] - mu[c]) / sqrt(var[c] + BN_EPS) + beta[c];
            }
    }
    snprintf(what, sizeof what, "%s: forward vs direct loops", name);
    compare(1, what, out, ref, n, RTOL_EXACT);
    if (train) {
        real *rm2 = vec_copy(rmean, nc), *rv2 = vec_copy(rvar, nc), *out2 = vec(n);
        double *mref = dvec(nc), *sref = dvec(nc), *rm_ref = dvec(nc), *rv_ref = dvec(nc);
        for (int c = 0; c < C; c++) {
            mref[c] = mu[c];
            sref[c] = 1 / sqrt(var[c] + BN_EPS);
            /* torch: running_mean = momentum * mean + (1 - momentum) * running_mean, running_var with the
             * unbiased variance var * M / (M - 1) */
            rm_ref[c] = BN_MOMENTUM * mu[c] + (1 - BN_MOMENTUM) * rmean[c];
            rv_ref[c] = BN_MOMENTUM * var[c] * M / (M - 1) + (1 - BN_MOMENTUM) * rvar[c];
        }
        snprintf(what, sizeof what, "%s: cached batch mean", name);
        compare(1, what, mean, mref, nc, RTOL_EXACT);
        snprintf(what, sizeof what, "%s: cached invstd", name);
        compare(1, what, invstd, sref, nc, RTOL_EXACT);
        int rc = FN(batchnorm_train_forward)(out2, mean, invstd, in, gamma, beta, rm2, rv2, BN_MOMENTUM, BN_EPS, N, C,
                                             HW, NULL);
        CHECK(rc == 0, "%s: forward with update failed: %s", name, hs_last_error());
        CHECK(memcmp(out2, out, sizeof(real) * n) == 0, "%s: the update changed the output", name);
        snprintf(what, sizeof what, "%s: running_mean update (PyTorch formula)", name);
        compare(1, what, rm2, rm_ref, nc, RTOL_EXACT);
        snprintf(what, sizeof what, "%s: running_var update (PyTorch formula, unbiased)", name);
        compare(1, what, rv2, rv_ref, nc, RTOL_EXACT);
        free(mref), free(sref), free(rm2), free(rv2), free(rm_ref), free(rv_ref), free(out2);
    }

    /* 2. backward */
    real *r = vec(n), *d_in = vec(n), *d_g = vec(nc), *d_b = vec(nc);
    fill(r, n);
    fill_nan(d_in, n);
    fill(d_g, nc);
    fill(d_b, nc);
    real *d_g0 = vec_copy(d_g, nc), *d_b0 = vec_copy(d_b, nc);
    if (train)
        FN(batchnorm_train_backward)(d_in, d_g, d_b, r, in, gamma, mean, invstd, N, C, HW, NULL);
    else
        FN(batchnorm_eval_backward)(d_in, d_g, d_b, r, in, gamma, rmean, rvar, BN_EPS, N, C, HW);
    double *g_in = dvec(n), *g_g = dvec(nc), *g_b = dvec(nc);
    real *inc = vec(nc);
    fd_grad(g_in, rctx.in, n, r, n, eval_bn_fwd, &rctx);
    fd_grad(g_g, rctx.gamma, nc, r, n, eval_bn_fwd, &rctx);
    fd_grad(g_b, rctx.beta, nc, r, n, eval_bn_fwd, &rctx);
    snprintf(what, sizeof what, "%s: backward d_in vs central differences", name);
    compare(0, what, d_in, g_in, n, RTOL_FD);
    for (size_t c = 0; c < nc; c++) inc[c] = d_g[c] - d_g0[c];
    snprintf(what, sizeof what, "%s: backward d_gamma (+=) vs central differences", name);
    compare(0, what, inc, g_g, nc, RTOL_FD);
    for (size_t c = 0; c < nc; c++) inc[c] = d_b[c] - d_b0[c];
    snprintf(what, sizeof what, "%s: backward d_beta (+=) vs central differences", name);
    compare(0, what, inc, g_b, nc, RTOL_FD);
    {
        /* second call: d_in NULL, gradients accumulate to twice the increment; then in place d_in == d_out */
        real *acc = vec(nc), *two = vec(nc), *inc_g = vec(nc);
        for (size_t c = 0; c < nc; c++) inc_g[c] = d_g[c] - d_g0[c];
        if (train)
            FN(batchnorm_train_backward)(NULL, d_g, d_b, r, in, gamma, mean, invstd, N, C, HW, NULL);
        else
            FN(batchnorm_eval_backward)(NULL, d_g, d_b, r, in, gamma, rmean, rvar, BN_EPS, N, C, HW);
        for (size_t c = 0; c < nc; c++) acc[c] = d_g[c] - d_g0[c], two[c] = 2 * inc_g[c];
        snprintf(what, sizeof what, "%s: backward d_gamma accumulates, d_in = NULL", name);
        compare_r(what, acc, two, nc);
        real *alias = vec_copy(r, n);
        if (train)
            FN(batchnorm_train_backward)(alias, d_g, d_b, alias, in, gamma, mean, invstd, N, C, HW, NULL);
        else
            FN(batchnorm_eval_backward)(alias, d_g, d_b, alias, in, gamma, rmean, rvar, BN_EPS, N, C, HW);
        snprintf(what, sizeof what, "%s: backward in place (d_in == d_out)", name);
        compare_r(what, alias, d_in, n);
        free(acc), free(two), free(inc_g), free(alias);
    }

    /* 3. tangent forward */
    real *t_in = vec(tn), *tp = vec((size_t)K * ldw), *t_out = vec(tn);
    fill(t_in, tn);
    fill(tp, (size_t)K * ldw);
    real *tp_copy = vec_copy(tp, (size_t)K * ldw), *tk = vec(n), *got = vec(n);
    double *refk = dvec(n);
    for (int mask = 0; mask < 8; mask++) {
        int use_tin = mask & 1, use_tg = (mask >> 1) & 1, use_tb = (mask >> 2) & 1;
        fill_nan(t_out, tn);
        bn_tfwd(&ctx, t_out, use_tin ? t_in : NULL, use_tg ? tp + offg : NULL, use_tb ? tp + offb : NULL, ldw, mean,
                invstd, K);
        for (int k = 0; k < K; k++) {
            get_dir(tk, t_in, N, K, n / N, k);
            Pert p[3] = {{rctx.in, in0, use_tin ? tk : NULL, n},
                         {rctx.gamma, gamma0, use_tg ? tp + (size_t)k * ldw + offg : NULL, nc},
                         {rctx.beta, beta0, use_tb ? tp + (size_t)k * ldw + offb : NULL, nc}};
            fd_dir(refk, n, p, 3, eval_bn_fwd, &rctx);
            get_dir(got, t_out, N, K, n / N, k);
            snprintf(what, sizeof what, "%s: tangent_forward dir %d [t_in%s t_gamma%s t_beta%s]", name, k,
                     use_tin ? "" : "=NULL", use_tg ? "" : "=NULL", use_tb ? "" : "=NULL");
            compare(0, what, got, refk, n, RTOL_FD);
        }
    }
    CHECK(memcmp(tp, tp_copy, sizeof(real) * (size_t)K * ldw) == 0, "%s: tangent_forward modified its input", name);

    /* 4. tangent backward */
    real *d_out = vec(n), *td_out = vec(tn), *td_in = vec(tn), *tdm = vec((size_t)K * ldw), *tdm0 = vec((size_t)K * ldw);
    real *tdk = vec(n), *tdin_k = vec(n), *incb = vec(nc);
    double *dbuf = dvec(n), *refb = dvec(n + 2 * nc), *tdk_d = dvec(n), *dout0;
    fill(d_out, n);
    fill(td_out, tn);
    dout0 = dvec_of(d_out, n);
    for (int mask = 0; mask < 16; mask++) {
        int use_tin = mask & 1, use_tg = (mask >> 1) & 1, use_dout = (mask >> 2) & 1, want_tdin = (mask >> 3) & 1;
        fill_nan(td_in, tn);
        fill(tdm0, (size_t)K * ldw);
        memcpy(tdm, tdm0, sizeof(real) * (size_t)K * ldw);
        bn_tbwd(&ctx, want_tdin ? td_in : NULL, tdm + offg, tdm + offb, ldw, td_out, use_dout ? d_out : NULL,
                use_tin ? t_in : NULL, use_tg ? tp + offg : NULL, mean, invstd, K);
        char cfg[160];
        snprintf(cfg, sizeof cfg, "[t_in%s t_gamma%s d_out%s td_in%s]", use_tin ? "" : "=NULL",
                 use_tg ? "" : "=NULL", use_dout ? "" : "=NULL (GGN)", want_tdin ? "" : "=NULL");
        size_t untouched_bad = 0;
        for (int k = 0; k < K; k++) {
            get_dir(tk, t_in, N, K, n / N, k);
            get_dir(tdk, td_out, N, K, n / N, k);
            int exact = !use_dout;
            if (use_dout) {
                /* input, gamma, beta (t_beta: the backward pass does not depend on beta) and d_out together */
                rctx.d_out = dbuf;
                Pert p[4] = {{rctx.in, in0, use_tin ? tk : NULL, n},
                             {rctx.gamma, gamma0, use_tg ? tp + (size_t)k * ldw + offg : NULL, nc},
                             {rctx.beta, beta0, tp + (size_t)k * ldw + offb, nc},
                             {dbuf, dout0, tdk, n}};
                fd_dir(refb, n + 2 * nc, p, 4, eval_bn_bwd, &rctx);
            } else {
                for (size_t i = 0; i < n; i++) tdk_d[i] = (double)tdk[i];
                rctx.d_out = tdk_d;
                eval_bn_bwd(&rctx, refb);
            }
            double rtol = exact ? RTOL_EXACT : RTOL_FD;
            if (want_tdin) {
                get_dir(tdin_k, td_in, N, K, n / N, k);
                snprintf(what, sizeof what, "%s: tangent_backward dir %d %s td_in", name, k, cfg);
                compare(exact, what, tdin_k, refb, n, rtol);
            }
            const real *row = tdm + (size_t)k * ldw, *row0 = tdm0 + (size_t)k * ldw;
            for (size_t c = 0; c < nc; c++) incb[c] = row[offg + c] - row0[offg + c];
            snprintf(what, sizeof what, "%s: tangent_backward dir %d %s td_gamma", name, k, cfg);
            compare(exact, what, incb, refb + n, nc, rtol);
            for (size_t c = 0; c < nc; c++) incb[c] = row[offb + c] - row0[offb + c];
            snprintf(what, sizeof what, "%s: tangent_backward dir %d %s td_beta", name, k, cfg);
            compare(exact, what, incb, refb + n + nc, nc, rtol);
            for (size_t j = 0; j < ldw; j++) {
                int inside = (j >= offg && j < offg + nc) || (j >= offb && j < offb + nc);
                if (!inside && memcmp(&row[j], &row0[j], sizeof(real)) != 0) untouched_bad++;
            }
        }
        CHECK(untouched_bad == 0, "%s: tangent_backward %s wrote %zu entries outside its blocks", name, cfg,
              untouched_bad);
    }

    free(in), free(gamma), free(beta), free(rmean), free(rvar), free(in0), free(gamma0), free(beta0), free(out);
    free(ref), free(mean), free(invstd), free(mu), free(var), free(r), free(d_in), free(d_g), free(d_b), free(d_g0);
    free(d_b0), free(g_in), free(g_g), free(g_b), free(inc), free(t_in), free(tp), free(t_out), free(tp_copy);
    free(tk), free(got), free(refk), free(d_out), free(td_out), free(td_in), free(tdm), free(tdm0), free(dbuf);
    free(tdk), free(refb), free(tdin_k), free(incb), free(tdk_d), free(dout0), free(rctx.in), free(rctx.gamma);
    free(rctx.beta), free(rctx.rmean), free(rctx.rvar);
}

/* PyTorch refuses batch statistics of a single value per channel; so must we. */
static void test_bn_single_value(void) {
    real x[3] = {1, 2, 3}, y[3], g[3] = {1, 1, 1}, b[3] = {0, 0, 0}, m[3], s[3];
    int rc = FN(batchnorm_train_forward)(y, m, s, x, g, b, NULL, NULL, BN_MOMENTUM, BN_EPS, 1, 3, 1, NULL);
    CHECK(rc != 0 && strstr(hs_last_error(), "more than 1 value"), "batch norm train with M = 1 accepted: %s",
          hs_last_error());
}

/* ---------------------------------------------------------------- average pool and add */

typedef struct {
    int N, C, HW;
    double *in;
} PoolCtx;
static void eval_pool_fwd(void *c, double *out) {
    PoolCtx *x = c;
    avgpool_forward_f64(out, x->in, x->N, x->C, x->HW);
}

static void test_avgpool(int N, int C, int HW, int K) {
    const size_t nin = (size_t)N * C * HW, nout = (size_t)N * C;
    char name[96], what[200];
    snprintf(name, sizeof name, "avgpool N=%d C=%d HW=%d K=%d", N, C, HW, K);
    real *in = vec(nin), *out = vec(nout);
    double *ref = dvec(nout);
    fill(in, nin);
    double *in_d = dvec_of(in, nin), *in0 = dvec_of(in, nin);
    fill_nan(out, nout);
    FN(avgpool_forward)(out, in, N, C, HW);
    for (size_t p = 0; p < nout; p++) {
        double s = 0;
        for (int i = 0; i < HW; i++) s += in[p * HW + i];
        ref[p] = s / HW;
    }
    snprintf(what, sizeof what, "%s: forward vs direct loops", name);
    compare(1, what, out, ref, nout, RTOL_EXACT);
    PoolCtx ctx = {N, C, HW, in_d};
    real *r = vec(nout), *d_in = vec(nin);
    double *g = dvec(nin);
    fill(r, nout);
    fill_nan(d_in, nin);
    FN(avgpool_backward)(d_in, r, N, C, HW);
    fd_grad(g, in_d, nin, r, nout, eval_pool_fwd, &ctx);
    snprintf(what, sizeof what, "%s: backward vs central differences", name);
    compare(0, what, d_in, g, nin, RTOL_FD);
    real *t_in = vec((size_t)K * nin), *t_out = vec((size_t)K * nout), *tk = vec(nin), *gk = vec(nout);
    double *rk = dvec(nout);
    fill(t_in, (size_t)K * nin);
    fill_nan(t_out, (size_t)K * nout);
    FN(avgpool_tangent_forward)(t_out, t_in, K, N, C, HW);
    for (int k = 0; k < K; k++) {
        get_dir(tk, t_in, N, K, nin / N, k);
        Pert p[1] = {{in_d, in0, tk, nin}};
        fd_dir(rk, nout, p, 1, eval_pool_fwd, &ctx);
        get_dir(gk, t_out, N, K, nout / N, k);
        snprintf(what, sizeof what, "%s: tangent_forward dir %d", name, k);
        compare(0, what, gk, rk, nout, RTOL_FD);
    }
    real *td_out = vec((size_t)K * nout), *td_in = vec((size_t)K * nin), *tdk = vec(nout), *gi = vec(nin), *ri = vec(nin);
    fill(td_out, (size_t)K * nout);
    fill_nan(td_in, (size_t)K * nin);
    FN(avgpool_tangent_backward)(td_in, td_out, K, N, C, HW);
    for (int k = 0; k < K; k++) {
        get_dir(tdk, td_out, N, K, nout / N, k);
        FN(avgpool_backward)(ri, tdk, N, C, HW); /* linear: no second-order term */
        get_dir(gi, td_in, N, K, nin / N, k);
        snprintf(what, sizeof what, "%s: tangent_backward dir %d", name, k);
        compare_r(what, gi, ri, nin);
    }
    free(in), free(out), free(ref), free(in0), free(r), free(d_in), free(g), free(t_in), free(t_out), free(tk);
    free(gk), free(rk), free(td_out), free(td_in), free(tdk), free(gi), free(ri), free(in_d);
}

static void test_add(void) {
    const size_t n = 70001; /* above the OpenMP threshold */
    real *a = vec(n), *b = vec(n), *c = vec(n);
    fill(a, n);
    fill(b, n);
    FN(add_forward)(c, a, b, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += c[i] != a[i] + b[i];
    FN(add_forward)(a, a, b, n); /* in place */
    for (size_t i = 0; i < n; i++) bad += a[i] != c[i];
    CHECK(bad == 0, "add: %zu wrong sums", bad);
    free(a), free(b), free(c);
}

/* ---------------------------------------------------------------- thread-count independence */

static void run_train_passes(int N, int C, int HW, int K, size_t ldw, const real *in, const real *gamma,
                             const real *beta, const real *d_out, const real *t_in, const real *tp,
                             const real *td_out, real *res) {
    size_t n = (size_t)N * C * HW;
    real *out = res, *mean = out + n, *invstd = mean + C, *d_in = invstd + C, *dg = d_in + n, *db = dg + C;
    real *t_out = db + C, *td_in = t_out + (size_t)K * n, *td = td_in + (size_t)K * n;
    memset(dg, 0, sizeof(real) * 2 * (size_t)C);
    memset(td, 0, sizeof(real) * (size_t)K * ldw);
    if (FN(batchnorm_train_forward)(out, mean, invstd, in, gamma, beta, NULL, NULL, BN_MOMENTUM, BN_EPS, N, C, HW, NULL))
        rc_failures++;
    FN(batchnorm_train_backward)(d_in, dg, db, d_out, in, gamma, mean, invstd, N, C, HW, NULL);
    FN(batchnorm_train_tangent_forward)(t_out, t_in, tp, tp + C, ldw, in, gamma, mean, invstd, K, N, C, HW);
    if (FN(batchnorm_train_tangent_backward)(td_in, td, td + C, ldw, td_out, d_out, t_in, tp, in, gamma, mean, invstd,
                                             K, N, C, HW))
        rc_failures++;
}

static void test_threads(void) {
    const int max_threads = omp_get_max_threads(), many = max_threads > 1 ? max_threads : 2;
    const int N = 6, C = 5, HW = 9, K = 3;
    size_t n = (size_t)N * C * HW, ldw = 2 * (size_t)C + 1;
    size_t nres = 2 * n + 4 * (size_t)C + 2 * (size_t)K * n + (size_t)K * ldw;
    real *in = vec(n), *gamma = vec(C), *beta = vec(C), *d_out = vec(n), *t_in = vec((size_t)K * n);
    real *tp = vec((size_t)K * ldw), *td_out = vec((size_t)K * n), *r1 = vec(nres), *rn = vec(nres);
    fill(in, n), fill(gamma, C), fill(beta, C), fill(d_out, n), fill(t_in, (size_t)K * n), fill(tp, (size_t)K * ldw);
    fill(td_out, (size_t)K * n);
    omp_set_num_threads(1);
    run_train_passes(N, C, HW, K, ldw, in, gamma, beta, d_out, t_in, tp, td_out, r1);
    omp_set_num_threads(many);
    run_train_passes(N, C, HW, K, ldw, in, gamma, beta, d_out, t_in, tp, td_out, rn);
    omp_set_num_threads(max_threads);
    CHECK(memcmp(r1, rn, sizeof(real) * nres) == 0, "batchnorm train passes: %d threads differ from 1 thread", many);
    free(in), free(gamma), free(beta), free(d_out), free(t_in), free(tp), free(td_out), free(r1), free(rn);
}

/* ---------------------------------------------------------------- synchronised batch norm (a group) */

/* A group of G OpenMP threads standing in for G processes: each thread publishes its values, and after a
 * barrier every thread adds them in thread order (what dist_sum_ordered does over MPI ranks). */
static int threads_sum(double *values, size_t n, void *user) {
    double **slots = user, *total = malloc(sizeof(double) * (n ? n : 1));
    int t = omp_get_thread_num(), G = omp_get_num_threads();
    slots[t] = values;
#pragma omp barrier
    for (size_t i = 0; total && i < n; i++) {
        double sum = slots[0][i];
        for (int r = 1; r < G; r++) sum += slots[r][i];
        total[i] = sum;
    }
#pragma omp barrier
    if (total) memcpy(values, total, sizeof(double) * n);
    free(total);
    return total ? 0 : -1;
}

/* Cuts a batch of N samples into G slices run by G threads with a group: every slice's output, cache, running
 * statistics and d_in equal the whole batch's (no group) to RTOL_EXACT, and the slices' d_gamma and d_beta add up
 * to the whole batch's. A group whose sum does nothing (G = 1) gives the whole batch's bits. Without the group
 * the slices' own statistics differ from the batch's: the check fails. */
static void test_group(int G, int N, int C, int HW) {
    size_t n = (size_t)N * C * HW;
    real *in = vec(n), *gamma = vec(C), *beta = vec(C), *d_out = vec(n), *rm0 = vec(C), *rv0 = vec(C);
    real *out = vec(n), *mean = vec(C), *invstd = vec(C), *d_in = vec(n), *dgb = vec(2 * (size_t)C), *rm = vec(C),
         *rv = vec(C);
    real *g_out = vec(n), *g_mean = vec((size_t)G * C), *g_invstd = vec((size_t)G * C), *g_d_in = vec(n),
         *g_dgb = vec((size_t)G * 2 * C), *g_rm = vec((size_t)G * C), *g_rv = vec((size_t)G * C);
    fill(in, n), fill(gamma, C), fill(beta, C), fill(d_out, n), fill(rm0, C), fill(rv0, C);
    for (int c = 0; c < C; c++) rv0[c] = (real)(1 + fabs((double)rv0[c]));
    memcpy(rm, rm0, sizeof(real) * C), memcpy(rv, rv0, sizeof(real) * C);
    memset(dgb, 0, sizeof(real) * 2 * (size_t)C), memset(g_dgb, 0, sizeof(real) * (size_t)G * 2 * C);
    if (FN(batchnorm_train_forward)(out, mean, invstd, in, gamma, beta, rm, rv, BN_MOMENTUM, BN_EPS, N, C, HW, NULL) ||
        FN(batchnorm_train_backward)(d_in, dgb, dgb + C, d_out, in, gamma, mean, invstd, N, C, HW, NULL))
        rc_failures++;
    double *slots[8] = {0};
    BatchStatsGroup group = {threads_sum, slots};
    int team = 0, failures = 0;
#pragma omp parallel num_threads(G) reduction(+ : failures)
    {
        int r = omp_get_thread_num(), lo = N * r / G, hi = N * (r + 1) / G;
#pragma omp single
        team = omp_get_num_threads();
        if (team == G) {
            size_t at = (size_t)lo * C * HW;
            real *m = g_mean + (size_t)r * C, *s = g_invstd + (size_t)r * C, *dg = g_dgb + (size_t)r * 2 * C;
            memcpy(g_rm + (size_t)r * C, rm0, sizeof(real) * C), memcpy(g_rv + (size_t)r * C, rv0, sizeof(real) * C);
            failures += FN(batchnorm_train_forward)(g_out + at, m, s, in + at, gamma, beta, g_rm + (size_t)r * C,
                                                    g_rv + (size_t)r * C, BN_MOMENTUM, BN_EPS, hi - lo, C, HW,
                                                    &group) != 0;
            failures += FN(batchnorm_train_backward)(g_d_in + at, dg, dg + C, d_out + at, in + at, gamma, m, s,
                                                     hi - lo, C, HW, &group) != 0;
        }
    }
    CHECK(team == G && failures == 0, "batch norm over a group of %d: %d threads, %d failures (%s)", G, team,
          failures, hs_last_error());
    real *sum_dgb = vec(2 * (size_t)C);
    for (int j = 0; j < 2 * C; j++) {
        sum_dgb[j] = 0;
        for (int r = 0; r < G; r++) sum_dgb[j] += g_dgb[(size_t)r * 2 * C + j];
    }
    if (G == 1) {
        CHECK(memcmp(g_out, out, sizeof(real) * n) == 0 && memcmp(g_mean, mean, sizeof(real) * C) == 0 &&
                  memcmp(g_invstd, invstd, sizeof(real) * C) == 0 && memcmp(g_rm, rm, sizeof(real) * C) == 0 &&
                  memcmp(g_rv, rv, sizeof(real) * C) == 0 && memcmp(g_d_in, d_in, sizeof(real) * n) == 0 &&
                  memcmp(g_dgb, dgb, sizeof(real) * 2 * C) == 0,
              "batch norm over a group of one differs from no group");
    } else {
        char what[96];
        snprintf(what, sizeof what, "group of %d: output", G);
        compare_r(what, g_out, out, n);
        snprintf(what, sizeof what, "group of %d: d_in", G);
        compare_r(what, g_d_in, d_in, n);
        snprintf(what, sizeof what, "group of %d: d_gamma, d_beta summed", G);
        compare_r(what, sum_dgb, dgb, 2 * (size_t)C);
        for (int r = 0; r < G; r++) {
            snprintf(what, sizeof what, "group of %d, slice %d: mean", G, r);
            compare_r(what, g_mean + (size_t)r * C, mean, C);
            snprintf(what, sizeof what, "group of %d, slice %d: invstd", G, r);
            compare_r(what, g_invstd + (size_t)r * C, invstd, C);
            snprintf(what, sizeof what, "group of %d, slice %d: running mean", G, r);
            compare_r(what, g_rm + (size_t)r * C, rm, C);
            snprintf(what, sizeof what, "group of %d, slice %d: running var", G, r);
            compare_r(what, g_rv + (size_t)r * C, rv, C);
        }
    }
    free(in), free(gamma), free(beta), free(d_out), free(rm0), free(rv0), free(out), free(mean), free(invstd);
    free(d_in), free(dgb), free(rm), free(rv), free(g_out), free(g_mean), free(g_invstd), free(g_d_in), free(g_dgb);
    free(g_rm), free(g_rv), free(sum_dgb);
}

int main(void) {
    rng_state = 0x2545F4914F6CDD1Dull; /* this test's stream */
    double t0 = hs_seconds();
    const int shapes[4][4] = {{3, 4, 6, 3}, {2, 3, 1, 2}, {5, 2, 4, 1}, {1, 3, 7, 2}}; /* N C HW K */
    for (int train = 0; train <= 1; train++)
        for (int i = 0; i < 4; i++) test_bn(train, shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]);
    test_bn_single_value();
    test_avgpool(3, 4, 5, 2);
    test_avgpool(2, 3, 1, 3);
    test_add();
    test_threads();
    test_group(1, 4, 3, 5);
    test_group(2, 6, 4, 9);
    test_group(3, 7, 3, 4); /* uneven slices (2, 2, 3 samples) */
    CHECK(rc_failures == 0, "%d op calls returned an error (last: %s)", rc_failures, hs_last_error());
    printf("%s: max relative errors: central differences %.2e, exact-order comparisons %.2e\n",
           CHECK_NAME("test_batchnorm"), worst_fd, worst_exact);
    printf("%s: %.2f s\n", CHECK_NAME("test_batchnorm"), hs_seconds() - t0);
    return check_summary(CHECK_NAME("test_batchnorm"));
}

/* test_mse.c: the squared-error loss (src/ops/mse.c) in float64, as an op and inside a model:
 *   mse_forward against a direct sum; mse_backward against central differences of mse_forward;
 *   mse_tangent_backward against central differences of mse_backward (the loss is quadratic, so central
 *   differences are exact up to rounding: tolerance 1e-9 relative, rounding is ~1e-16 / h = 1e-13);
 *   PyTorch's convention: with scale = 1/N the loss and gradient are C times MSELoss(reduction='mean')'s
 *   (values from torch 1.13, float64, in the comments below);
 *   the cnn with m->loss = LOSS_MSE on real targets from .npy files: the gradient against central
 *   differences of the loss, H v against central differences of the gradient (relative error <= 1e-6, the
 *   RTOL_FD of tests/derivative_check.h: truncation ~h^2 and rounding ~1e-16/h with h = 1e-6 stay far below
 *   it; measured 1e-10), symmetry v.(Hw) = w.(Hv), GGN products positive semi-definite, the exact block
 *   of the last layer against H u, and model_loss's `correct` = 0. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/curvature/curvature.h"
#include "../src/io/npy.h"
#include "../src/ops/ops.h"
#include "check.h"
#include "model_check.h"
#include "temp_dir.h"

static void test_op(void) {
    enum { N = 3, C = 4, K = 2 };
    Rng rng;
    rng_seed(&rng, 5);
    double z[N * C], y[N * C], d[N * C], t[N * K * C], td[N * K * C];
    for (int i = 0; i < N * C; i++) z[i] = rng_normal(&rng), y[i] = rng_normal(&rng);
    for (int i = 0; i < N * K * C; i++) t[i] = rng_normal(&rng);
    double scale = 0.37, loss, direct = 0;
    mse_forward_f64(&loss, z, y, scale, N, C);
    for (int i = 0; i < N * C; i++) direct += (z[i] - y[i]) * (z[i] - y[i]);
    CHECK_CLOSE(loss, scale * direct, 1e-14, 0);
    mse_backward_f64(d, z, y, scale, N, C);
    const double h = 1e-3;
    double worst = 0;
    for (int i = 0; i < N * C; i++) {
        double keep = z[i], lp, lm;
        z[i] = keep + h;
        mse_forward_f64(&lp, z, y, scale, N, C);
        z[i] = keep - h;
        mse_forward_f64(&lm, z, y, scale, N, C);
        z[i] = keep;
        double fd = (lp - lm) / (2 * h), e = fabs(fd - d[i]) / (fabs(fd) + 1e-3);
        worst = e > worst ? e : worst;
    }
    CHECK(worst < 1e-9, "mse_backward vs central differences: %.3g", worst);
    mse_tangent_backward_f64(td, t, scale, K, N, C);
    worst = 0;
    for (int k = 0; k < K; k++) {
        double zp[N * C], zm[N * C], dp[N * C], dm[N * C];
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double tv = t[(n * K + k) * C + c];
                zp[n * C + c] = z[n * C + c] + h * tv;
                zm[n * C + c] = z[n * C + c] - h * tv;
            }
        mse_backward_f64(dp, zp, y, scale, N, C);
        mse_backward_f64(dm, zm, y, scale, N, C);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double fd = (dp[n * C + c] - dm[n * C + c]) / (2 * h), got = td[(n * K + k) * C + c];
                double e = fabs(fd - got) / (fabs(fd) + 1e-3);
                worst = e > worst ? e : worst;
            }
    }
    CHECK(worst < 1e-9, "mse_tangent_backward vs central differences of mse_backward: %.3g", worst);

    /* PyTorch: z = [[1, 2, 0.5], [3, 4, -1]], y = [[0, 0, 0.25], [0, 1, 2]]:
     * MSELoss(reduction='mean')(z, y) = 5.34375, its gradient [[1/3, 2/3, 1/12], [1, 1, -1]]. With scale 1/N
     * ours is C = 3 times both. */
    double pz[6] = {1, 2, 0.5, 3, 4, -1}, py[6] = {0, 0, 0.25, 0, 1, 2}, pd[6];
    const double torch_grad[6] = {1.0 / 3, 2.0 / 3, 1.0 / 12, 1, 1, -1};
    mse_forward_f64(&loss, pz, py, 1.0 / 2, 2, 3);
    CHECK_CLOSE(loss, 3 * 5.34375, 1e-15, 0);
    mse_backward_f64(pd, pz, py, 1.0 / 2, 2, 3);
    for (int i = 0; i < 6; i++) CHECK_CLOSE(pd[i], 3 * torch_grad[i], 1e-15, 0);
}

/* Loss and gradient over the set at parameters theta. */
static double loss_at(Model *m, const SampleSet *set, const double *theta, double *grad) {
    memcpy(m->params, theta, sizeof(double) * m->num_params);
    double loss = NAN, acc;
    CHECK(curv_loss_grad_f64(m, set, &loss, &acc, grad) == 0, "loss: %s", hs_last_error());
    CHECK(isnan(acc), "no accuracy for squared error (got %g)", acc);
    return loss;
}

static void test_model(void) {
    enum { S = 6, C = 10 };
    Rng rng;
    rng_seed(&rng, 17);
    double *x = malloc(sizeof(double) * S * 3072), y[S * C];
    for (int i = 0; i < S * 3072; i++) x[i] = rng_normal(&rng);
    for (int i = 0; i < S * C; i++) y[i] = rng_normal(&rng);
    int64_t xs[4] = {S, 3, 32, 32}, ys[2] = {S, C};
    CHECK(npy_write_f64(temp_path("x.npy"), x, 4, xs) == 0 && npy_write_f64(temp_path("y.npy"), y, 2, ys) == 0,
          "write data: %s", hs_last_error());
    free(x);
    SampleSource src;
    if (samples_from_npy(temp_path("x.npy"), temp_path("y.npy"), &src) != 0) {
        CHECK(0, "source: %s", hs_last_error());
        return;
    }
    Model *m;
    if (model_create_f64("cnn", 4, &m) != 0) {
        CHECK(0, "create: %s", hs_last_error());
        samples_free(&src);
        return;
    }
    m->loss = LOSS_MSE;
    CHECK(curv_check_source_f64(m, &src) == 0, "source fits: %s", hs_last_error());
    int idx[S];
    for (int i = 0; i < S; i++) idx[i] = i;
    SampleSet set = {&src, idx, S, 4, 0}; /* chunks of 4 and 2 */
    size_t P = m->num_params;
    double *theta = malloc(sizeof(double) * P), *g = malloc(sizeof(double) * P), *gp = malloc(sizeof(double) * P);
    double *gm = malloc(sizeof(double) * P), *v = malloc(sizeof(double) * P), *w = malloc(sizeof(double) * P);
    double *hv = malloc(sizeof(double) * P), *hw = malloc(sizeof(double) * P), *fd = malloc(sizeof(double) * P);
    double *tp = malloc(sizeof(double) * P);
    memcpy(theta, m->params, sizeof(double) * P);
    random_vector(v, P, 1);
    random_vector(w, P, 2);

    /* model_loss: the loss of one chunk equals mse_forward on its outputs; correct is 0 */
    double xs1[3072];
    double y0[C];
    CHECK(src.fill(&src, idx, NULL, 1, xs1, 8, y0) == 0, "fill");
    double l1, direct;
    int correct = 7;
    CHECK(model_forward_f64(m, xs1, 1) == 0 && model_loss_f64(m, y0, 1.0, &l1, &correct) == 0, "chunk loss");
    mse_forward_f64(&direct, m->logits, y0, 1.0, 1, C);
    CHECK(l1 == direct && correct == 0, "model_loss = mse_forward (%g vs %g), correct %d", l1, direct, correct);

    /* gradient: directional derivative along v and single coordinates */
    double loss = loss_at(m, &set, theta, g);
    const double h1 = 1e-6;
    for (size_t i = 0; i < P; i++) tp[i] = theta[i] + h1 * v[i];
    double lp = loss_at(m, &set, tp, NULL);
    for (size_t i = 0; i < P; i++) tp[i] = theta[i] - h1 * v[i];
    double lm = loss_at(m, &set, tp, NULL), gv = 0;
    for (size_t i = 0; i < P; i++) gv += g[i] * v[i];
    double fdv = (lp - lm) / (2 * h1);
    CHECK(fabs(fdv - gv) <= 1e-6 * fabs(gv), "g.v %.12g vs central differences %.12g (loss %g)", gv, fdv, loss);
    const size_t coords[] = {0, 374, 375, 700, 1009, 3000, 4789, 5099};
    for (size_t c = 0; c < sizeof coords / sizeof coords[0]; c++) {
        size_t i = coords[c];
        memcpy(tp, theta, sizeof(double) * P);
        tp[i] = theta[i] + h1;
        lp = loss_at(m, &set, tp, NULL);
        tp[i] = theta[i] - h1;
        lm = loss_at(m, &set, tp, NULL);
        double f = (lp - lm) / (2 * h1);
        CHECK(fabs(f - g[i]) <= 1e-6 * fabs(g[i]) + 1e-9 * sqrt(fabs(loss)), "dL/dtheta[%zu] %.12g vs %.12g", i, g[i],
              f);
    }

    /* H v against central differences of the gradient */
    memcpy(m->params, theta, sizeof(double) * P);
    CHECK(curv_hvp_f64(m, &set, v, 1, CURVATURE_HESSIAN, hv, NULL) == 0, "hvp: %s", hs_last_error());
    /* h = 1e-6: on these unnormalised inputs a step of 1e-5 along v already moves some ReLU or max-pool
     * input across its kink (measured: relative error ~1 at h >= 1e-5, 1e-10 at 1e-6 and 1e-7). */
    const double h = 1e-6;
    for (size_t i = 0; i < P; i++) tp[i] = theta[i] + h * v[i];
    loss_at(m, &set, tp, gp);
    for (size_t i = 0; i < P; i++) tp[i] = theta[i] - h * v[i];
    loss_at(m, &set, tp, gm);
    for (size_t i = 0; i < P; i++) fd[i] = (gp[i] - gm[i]) / (2 * h);
    double e = rel_error(hv, fd, P);
    printf("mse: HVP vs central differences of the gradient: relative error %.3g\n", e);
    CHECK(e <= 1e-6, "H v vs central differences: relative error %.3g", e);
    memcpy(m->params, theta, sizeof(double) * P);
    CHECK(curv_hvp_f64(m, &set, w, 1, CURVATURE_HESSIAN, hw, NULL) == 0, "hvp w");
    double vhw = 0, whv = 0;
    for (size_t i = 0; i < P; i++) vhw += v[i] * hw[i], whv += w[i] * hv[i];
    CHECK(fabs(vhw - whv) <= 1e-10 * (fabs(vhw) + fabs(whv)), "symmetry: v.Hw %.15g, w.Hv %.15g", vhw, whv);
    /* GGN: v.Gv >= 0 for several directions */
    int psd = 1;
    for (int r = 0; r < 4; r++) {
        random_vector(w, P, 10 + (uint64_t)r);
        CHECK(curv_hvp_f64(m, &set, w, 1, CURVATURE_GGN, hw, NULL) == 0, "ggn");
        double q = 0;
        for (size_t i = 0; i < P; i++) q += w[i] * hw[i];
        psd &= q >= 0;
    }
    CHECK(psd, "GGN products are positive semi-definite under the squared error");
    /* the exact block of the last layer (9.weight, 9.bias: 310 parameters) against H e_i from curv_hvp */
    int64_t sel[310];
    for (int i = 0; i < 310; i++) sel[i] = 4790 + i;
    double *B = malloc(sizeof(double) * 310 * 310);
    ExactInfo info;
    CHECK(curv_exact_block_f64(m, &set, CURVATURE_HESSIAN, sel, 310, B, &info, NULL, NULL) == 0, "exact block: %s",
          hs_last_error());
    /* B u against (H u) on the block, u random on the block and zero elsewhere */
    memset(w, 0, sizeof(double) * P);
    for (int i = 0; i < 310; i++) w[sel[i]] = v[sel[i]];
    CHECK(curv_hvp_f64(m, &set, w, 1, CURVATURE_HESSIAN, hw, NULL) == 0, "block product: %s", hs_last_error());
    double bu[310], ref[310];
    for (int r = 0; r < 310; r++) {
        bu[r] = 0;
        for (int c = 0; c < 310; c++) bu[r] += B[r * 310 + c] * w[sel[c]];
        ref[r] = hw[sel[r]];
    }
    /* both sum the same per-sample products in different orders: rounding only */
    e = rel_error(bu, ref, 310);
    CHECK(e <= 1e-12, "exact block times u vs H u: relative error %.3g", e);
    CHECK_CLOSE(info.loss, loss, 1e-14, 0);
    free(B);

    model_free_f64(m);
    samples_free(&src);
    free(theta);
    free(g);
    free(gp);
    free(gm);
    free(v);
    free(w);
    free(hv);
    free(hw);
    free(fd);
    free(tp);
}

int main(void) {
    if (temp_dir_create("hs_test_mse") != 0) return 1;
    test_op();
    test_model();
    temp_dir_remove();
    return check_summary("test_mse");
}

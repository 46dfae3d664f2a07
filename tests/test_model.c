#define _DEFAULT_SOURCE
/* test_model.c: whole-network derivatives of the cnn in float64 on tiny synthetic data (every library call's
 * return code is checked):
 *   gradient against central differences of the loss;
 *   Hessian-vector products against central differences of the gradient (relative error <= 1e-6);
 *   symmetry v.(Hw) = w.(Hv); GGN products are positive semi-definite;
 *   the exact Hessian equals the matrix built column by column from single HVPs (checked as H v for random
 *   v and on sampled columns), and the exact block on a parameter subset equals that block of it;
 *   checkpoints round-trip; a zero direction product is refused when it must be.
 * (float32 against float64 and PyTorch: test_golden_f32.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/core/rng.h"
#include "../src/curvature/curvature.h"
#include "../src/io/safetensors.h"
#include "check.h"
#include "model_check.h"

int main(void) {
    Cifar10 data = synthetic_data(7, 7);
    int idx[7];
    for (int i = 0; i < 7; i++) idx[i] = i;
    SampleSource src;
    CHECK(samples_wrap_cifar10(&data, "synthetic", &src) == 0, "source: %s", hs_last_error());
    SampleSet set = {&src, idx, 7, 3, 0}; /* chunks of 3, 3, 1: exercises accumulation */
    Model *m;
    if (model_create_f64("cnn", 3, &m) != 0) {
        CHECK(0, "create: %s", hs_last_error());
        return check_summary("test_model");
    }
    size_t P = m->num_params;
    CHECK(P == 5100, "cnn has %zu parameters, expected 5100", P);
    /* Scale up weights a little so ReLUs are active and curvature is not tiny. */
    for (size_t i = 0; i < P; i++) m->params[i] *= 1.5;

    double *g = malloc(sizeof(double) * P), *gp = malloc(sizeof(double) * P), *gm = malloc(sizeof(double) * P);
    double *v = malloc(sizeof(double) * P), *w = malloc(sizeof(double) * P);
    double *hv = malloc(sizeof(double) * P), *hw = malloc(sizeof(double) * P), *fd = malloc(sizeof(double) * P);
    double *theta = malloc(sizeof(double) * P);
    memcpy(theta, m->params, sizeof(double) * P);
    double loss, acc;
    CHECK(curv_loss_grad_f64(m, &set, &loss, &acc, g) == 0, "grad: %s", hs_last_error());
    CHECK(loss > 0 && isfinite(loss), "loss %g", loss);

    /* Gradient: directional derivative along v against central differences of the loss. */
    random_vector(v, P, 11);
    double eps = 1e-6, lp, lm;
    for (size_t i = 0; i < P; i++) m->params[i] = theta[i] + eps * v[i];
    CHECK(curv_loss_grad_f64(m, &set, &lp, NULL, gp) == 0, "grad at theta + eps v: %s", hs_last_error());
    for (size_t i = 0; i < P; i++) m->params[i] = theta[i] - eps * v[i];
    CHECK(curv_loss_grad_f64(m, &set, &lm, NULL, gm) == 0, "grad at theta - eps v: %s", hs_last_error());
    memcpy(m->params, theta, sizeof(double) * P);
    double dd = (lp - lm) / (2 * eps), gv = dot(g, v, P);
    CHECK_CLOSE(gv, dd, 1e-6, 1e-9);

    /* HVP against central differences of the gradient (the same +-eps evaluations). */
    CHECK(curv_hvp_f64(m, &set, v, 1, CURVATURE_HESSIAN, hv, NULL) == 0, "hvp: %s", hs_last_error());
    for (size_t i = 0; i < P; i++) fd[i] = (gp[i] - gm[i]) / (2 * eps);
    double err = rel_error(hv, fd, P);
    CHECK(err <= 1e-6, "HVP vs differences of gradients: relative error %.3g > 1e-6", err);
    printf("HVP vs central differences: relative error %.3g\n", err);

    /* Symmetry: w.(Hv) = v.(Hw), batched K = 2 must equal two single products. */
    random_vector(w, P, 12);
    double *vw = malloc(sizeof(double) * 2 * P), *hvw = malloc(sizeof(double) * 2 * P);
    memcpy(vw, v, sizeof(double) * P);
    memcpy(vw + P, w, sizeof(double) * P);
    CHECK(curv_hvp_f64(m, &set, vw, 2, CURVATURE_HESSIAN, hvw, NULL) == 0, "hvp K=2: %s", hs_last_error());
    CHECK(curv_hvp_f64(m, &set, w, 1, CURVATURE_HESSIAN, hw, NULL) == 0, "hvp w: %s", hs_last_error());
    CHECK(rel_error(hvw, hv, P) < 1e-12, "batched direction 0 differs from single: %.3g", rel_error(hvw, hv, P));
    CHECK(rel_error(hvw + P, hw, P) < 1e-12, "batched direction 1 differs from single: %.3g", rel_error(hvw + P, hw, P));
    double whv = dot(w, hv, P), vhw = dot(v, hw, P);
    CHECK_CLOSE(whv, vhw, 1e-10, 1e-12);

    /* GGN: v.Gv > 0 for several random v (positive semi-definite, and a random v is not in its null space). */
    for (int s = 0; s < 4; s++) {
        random_vector(w, P, 100 + s);
        CHECK(curv_hvp_f64(m, &set, w, 1, CURVATURE_GGN, hw, NULL) == 0, "GGN product: %s", hs_last_error());
        double q = dot(w, hw, P);
        CHECK(q > 0, "GGN quadratic form not positive: %g", q);
    }

    /* Exact Hessian: H v equals the HVP; sampled columns equal single unit-vector HVPs. */
    double *H = malloc(sizeof(double) * P * P);
    ExactInfo info;
    CHECK(curv_exact_f64(m, &set, CURVATURE_HESSIAN, H, &info, NULL, NULL) == 0, "exact: %s", hs_last_error());
    CHECK(info.asymmetry < 1e-12, "asymmetry %g", info.asymmetry);
    CHECK_CLOSE(info.loss, loss, 1e-12, 0);
    for (size_t i = 0; i < P; i++) fd[i] = dot(H + i * P, v, P);
    err = rel_error(fd, hv, P);
    CHECK(err < 1e-10, "exact H v vs HVP: relative error %.3g", err);
    /* Columns at layer boundaries. A parameter of a unit that is inactive on every sample (here 1010 and 4790)
     * has a zero Hessian column: its HVP is refused as a silent zero, and the exact column must be zero. */
    size_t cols[] = {0, 374, 380, 1009, 1010, 4789, 4790, 5099}, dead = 0;
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        memset(w, 0, sizeof(double) * P);
        w[cols[c]] = 1;
        int rc = curv_hvp_f64(m, &set, w, 1, CURVATURE_HESSIAN, hw, NULL);
        CHECK(rc == 0 || strstr(hs_last_error(), "exactly zero"), "hvp e_%zu: %s", cols[c], hs_last_error());
        if (rc != 0) memset(hw, 0, sizeof(double) * P), dead++;
        double col_err = 0;
        for (size_t i = 0; i < P; i++) col_err = fmax(col_err, fabs(H[i * P + cols[c]] - hw[i]));
        CHECK(col_err < 1e-12, "column %zu of the exact Hessian differs from its HVP%s by %g", cols[c],
              rc ? " (refused as zero)" : "", col_err);
    }
    CHECK(dead == 2, "%zu of the sampled columns are dead, expected 2 (1010 and 4790)", dead);
    int sym = 1;
    for (size_t i = 0; i < P && sym; i++)
        for (size_t j = 0; j < i; j++)
            if (H[i * P + j] != H[j * P + i]) sym = 0;
    CHECK(sym, "exact Hessian is not exactly symmetric after symmetrisation");

    /* The exact block on 3.weight, 3.bias (layer 1, with the dead unit 1010) and 9.bias (layer 3) equals that
     * block of the full matrix, from only its own unit directions (3 chunks); unordered indices are refused. */
    int64_t sel[640], n = 0;
    for (int t = 0; t < m->num_tensors; t++)
        if (!strcmp(m->tensors[t].name, "3.weight") || !strcmp(m->tensors[t].name, "3.bias") ||
            !strcmp(m->tensors[t].name, "9.bias"))
            for (size_t i = 0; i < m->tensors[t].numel; i++) sel[n++] = (int64_t)(m->tensors[t].offset + i);
    CHECK(n == 640, "block size %lld, expected 640", (long long)n);
    double *B = malloc(sizeof(double) * (size_t)(n * n)), berr = 0, hmax = 0;
    ExactInfo binfo;
    CHECK(curv_exact_block_f64(m, &set, CURVATURE_HESSIAN, sel, n, B, &binfo, NULL, NULL) == 0, "exact block: %s",
          hs_last_error());
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double h = H[(size_t)sel[i] * P + (size_t)sel[j]];
            berr = fmax(berr, fabs(B[i * n + j] - h));
            hmax = fmax(hmax, fabs(h));
        }
    CHECK(hmax > 0 && berr <= 1e-12 * hmax, "exact block vs the full matrix's block: max error %g (max entry %g)", berr,
          hmax);
    CHECK(binfo.directions == 3 * n, "exact block propagated %lld directions, expected %lld",
          (long long)binfo.directions, (long long)(3 * n));
    CHECK(binfo.asymmetry < 1e-12, "exact block asymmetry %g", binfo.asymmetry);
    CHECK_CLOSE(binfo.loss, loss, 1e-12, 0);
    sel[0] = sel[1];
    CHECK(curv_exact_block_f64(m, &set, CURVATURE_HESSIAN, sel, n, B, &binfo, NULL, NULL) != 0 &&
              strstr(hs_last_error(), "ascending"), "an exact block with repeated indices was accepted");
    free(B);

    /* The exact GGN: G v equals the GGN product, and v.Gv through the matrix is positive (spot check of
     * positive semi-definiteness). */
    CHECK(curv_exact_f64(m, &set, CURVATURE_GGN, H, &info, NULL, NULL) == 0, "exact GGN: %s", hs_last_error());
    CHECK(curv_hvp_f64(m, &set, v, 1, CURVATURE_GGN, hv, NULL) == 0, "GGN product: %s", hs_last_error());
    for (size_t i = 0; i < P; i++) fd[i] = dot(H + i * P, v, P);
    CHECK(rel_error(fd, hv, P) < 1e-10, "exact GGN v vs GGN product: %.3g", rel_error(fd, hv, P));
    CHECK(dot(v, fd, P) > 0, "v.Gv through the exact GGN is not positive: %g", dot(v, fd, P));

    /* Checkpoint round trip. */
    char dir[] = "/tmp/hessian_test_model_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
    CHECK(model_save_f64(m, path, NULL, NULL, 0) == 0, "save: %s", hs_last_error());
    Model *m2;
    if (model_create_f64("cnn", 99, &m2) != 0) {
        CHECK(0, "create: %s", hs_last_error());
        return check_summary("test_model");
    }
    CHECK(model_load_f64(m2, path, 0, NULL, 0) == 0, "load: %s", hs_last_error());
    CHECK(memcmp(m2->params, m->params, sizeof(double) * P) == 0, "round trip changed parameters");
    SafeTensors st;
    if (safetensors_read(path, &st) == 0) {
        const StTensor *t = safetensors_find(&st, "7.weight");
        CHECK(t && t->ndim == 2 && t->shape[0] == 30 && t->shape[1] == 125, "7.weight layout");
        safetensors_free(&st);
    } else {
        CHECK(0, "read back: %s", hs_last_error());
    }
    /* Wrong shape: a checkpoint with 9.weight [10,31] is rejected. */
    static double junk[310];
    StWriteTensor bad[8];
    for (int i = 0; i < 8; i++) {
        const TensorInfo *ti = &m->tensors[i];
        bad[i] = (StWriteTensor){ti->name, ST_F64, ti->ndim, {0}, m->params + ti->offset};
        memcpy(bad[i].shape, ti->shape, sizeof(int64_t) * (size_t)ti->ndim);
    }
    bad[6].shape[1] = 31;
    bad[6].data = junk;
    char bad_path[256];
    snprintf(bad_path, sizeof bad_path, "%s/bad.safetensors", dir);
    CHECK(safetensors_write(bad_path, bad, 8, NULL, NULL, 0) == 0, "write bad: %s", hs_last_error());
    CHECK(model_load_f64(m2, bad_path, 0, NULL, 0) != 0 && strstr(hs_last_error(), "9.weight"),
          "wrong shape accepted or unclear: %s", hs_last_error());
    unlink(path);
    unlink(bad_path);
    rmdir(dir);

    /* No silent zeros: with all weights zero except biases the loss does not depend on the conv weights, and
     * the product along a direction in 0.weight only is exactly zero: refused. */
    memset(m2->params, 0, sizeof(double) * P);
    memset(w, 0, sizeof(double) * P);
    for (size_t i = 0; i < 375; i++) w[i] = 1;
    CHECK(curv_hvp_f64(m2, &set, w, 1, CURVATURE_HESSIAN, hw, NULL) != 0 && strstr(hs_last_error(), "zero"),
          "a silent zero HVP was returned");
    model_free_f64(m2);

    model_free_f64(m);
    free(g); free(gp); free(gm); free(v); free(w); free(hv); free(hw); free(fd); free(theta); free(vw); free(hvw);
    free(H);
    samples_free(&src);
    cifar10_free(&data);
    return check_summary("test_model");
}

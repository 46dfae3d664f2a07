/* test_golden.c: hessian against PyTorch's reference values (tests/golden/, made by
 * `/usr/bin/python3 tests/golden/make_golden.py`, see tests/golden/README.md): the cnn at its PyTorch
 * initialisation on 64 synthetic images, in the precision this program is built for.
 *   test_golden (-DHS_F64), the library in float64 against PyTorch float64: loss 1e-12, gradient, HVP and the
 *     exact Hessian's diagonal 1e-10 relative, its extreme eigenvalues (5 smallest and 5 largest) 1e-8
 *     relative, trace 1e-9.
 *   test_golden_f32 (-DHS_F32), the library and the CLI (--precision f32) in float32: loss, gradient and HVP
 *     against PyTorch float64 and against PyTorch float32, exact-Hessian eigenvalues against PyTorch float64.
 *     The tolerances are multiples of PyTorch's own float32 error, measured here from the committed goldens
 *     (its float32 result against its float64 result on the same inputs). */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/curvature/curvature.h"
#include "../src/io/json_reader.h"
#include "../src/io/npy.h"
#include "../src/spectral/spectral.h"
#include "check.h"
#include "model_check.h"

#define GOLDEN "tests/golden/"

/* The number at key of a golden JSON file's top level, NAN when the file or the key is missing. */
static double json_number(const char *path, const char *key) {
    JsonValue root;
    if (json_read_file(path, &root) != 0) return NAN;
    double x = json_get_number(&root, key, NAN);
    json_free(&root);
    return x;
}

/* Reads a golden .npy of n values; a missing file or another length fails a check. */
static int read_golden(const char *name, NpyArray *a, size_t n) {
    char path[256];
    snprintf(path, sizeof path, GOLDEN "%s", name);
    int rc = npy_read(path, a);
    CHECK(rc == 0 && (size_t)a->numel == n, "%s: %s (%lld values, expected %zu)", path, rc ? hs_last_error() : "",
          rc ? -1LL : (long long)a->numel, n);
    return rc == 0 && (size_t)a->numel == n ? 0 : -1;
}

/* Largest error of the 5 smallest and 5 largest eigenvalues, relative to max(|ref_i|, 1e-3 max|lambda|). */
static double extreme_eigenvalue_error(const double *got, const double *ref, size_t n) {
    double scale = fmax(fabs(ref[0]), fabs(ref[n - 1])), worst = 0;
    for (size_t i = 0; i < 5; i++) {
        worst = fmax(worst, fabs(got[i] - ref[i]) / fmax(fabs(ref[i]), 1e-3 * scale));
        worst = fmax(worst, fabs(got[n - 1 - i] - ref[n - 1 - i]) / fmax(fabs(ref[n - 1 - i]), 1e-3 * scale));
    }
    return worst;
}

#ifdef HS_F64
/* The exact Hessian: its diagonal, extreme eigenvalues and trace against PyTorch's full float64 Hessian. */
static void check_exact(Model *m, const SampleSet *set, size_t P) {
    NpyArray diag_ref = {0}, eig_ref = {0};
    if (read_golden("cnn_hessian_diag.npy", &diag_ref, P) != 0 || read_golden("cnn_eigenvalues.npy", &eig_ref, P) != 0)
        goto done;
    double *H = malloc(sizeof(double) * P * P), *diag = malloc(sizeof(double) * P), *eig = malloc(sizeof(double) * P);
    ExactInfo info;
    CHECK(curv_exact_f64(m, set, CURVATURE_HESSIAN, H, &info, NULL, NULL) == 0, "exact: %s", hs_last_error());
    for (size_t i = 0; i < P; i++) diag[i] = H[i * P + i];
    double e = rel_error(diag, diag_ref.data, P);
    CHECK(e <= 1e-10, "f64 exact Hessian diagonal vs PyTorch: %.3g relative", e);
    printf("f64: exact Hessian diagonal within %.2g relative of PyTorch\n", e);
    CHECK(eigen_symmetric_f64(H, (int64_t)P, eig, 0) == 0, "eigen: %s", hs_last_error());
    e = extreme_eigenvalue_error(eig, eig_ref.data, P);
    CHECK(e <= 1e-8, "f64 exact Hessian: 5 smallest/largest eigenvalues differ from PyTorch by %.3g relative", e);
    printf("f64: extreme eigenvalues within %.2g relative of PyTorch\n", e);
    double trace = 0;
    for (size_t i = 0; i < P; i++) trace += eig[i];
    CHECK_CLOSE(trace, json_number(GOLDEN "cnn_hessian.json", "trace"), 1e-9, 0);
    free(H);
    free(diag);
    free(eig);
done:
    npy_free(&diag_ref);
    npy_free(&eig_ref);
}
#else
/* The CLI in float32, as a user runs it: hvp and exact --precision f32. Tolerances: see main. */
static void check_cli_f32(size_t P, const double *hv64, const double *hv32, double hv_tol, const double *eig64,
                          double eig_tol) {
    const char *bin = getenv("HESSIAN_BIN") ? getenv("HESSIAN_BIN") : "bin/hessian";
    char dir[] = "/tmp/hessian_golden_XXXXXX", cmd[2048], out[512], eig_path[512];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(out, sizeof out, "%s/hv32.npy", dir);
    snprintf(eig_path, sizeof eig_path, "%s/eig32.npy", dir);
    snprintf(cmd, sizeof cmd,
             "%s hvp --checkpoint " GOLDEN "cnn_init.safetensors --data " GOLDEN "cnn_data --samples 64 --offset 0 "
             "--vector " GOLDEN "cnn_v.npy --out %s --precision f32 --quiet > /dev/null && "
             "%s exact --checkpoint " GOLDEN "cnn_init.safetensors --data " GOLDEN "cnn_data --samples 64 "
             "--save-eigenvalues %s --precision f32 --quiet > /dev/null",
             bin, out, bin, eig_path);
    CHECK(system(cmd) == 0, "command failed: %s", cmd);
    NpyArray hv = {0}, eig = {0};
    if (npy_read(out, &hv) == 0 && npy_read(eig_path, &eig) == 0 && (size_t)hv.numel == P && (size_t)eig.numel == P) {
        CHECK(hv.word_size == 4, "hvp --precision f32 should write float32");
        double e64 = rel_error(hv.data, hv64, P), e32 = rel_error(hv.data, hv32, P);
        CHECK(e64 <= hv_tol, "CLI f32 HVP vs PyTorch f64: %.3g > %.3g", e64, hv_tol);
        CHECK(e32 <= hv_tol, "CLI f32 HVP vs PyTorch f32: %.3g > %.3g", e32, hv_tol);
        printf("CLI f32: HVP within %.2g of PyTorch f64, %.2g of PyTorch f32\n", e64, e32);
        double e = extreme_eigenvalue_error(eig.data, eig64, P);
        CHECK(e <= eig_tol, "CLI f32 exact Hessian: extreme eigenvalues differ from PyTorch f64 by %.3g (> %.3g)", e,
              eig_tol);
        printf("CLI f32: extreme eigenvalues within %.2g relative of PyTorch f64\n", e);
    } else {
        CHECK(0, "reading CLI outputs: %s (%lld and %lld values)", hs_last_error(), (long long)hv.numel,
              (long long)eig.numel);
    }
    unlink(out);
    unlink(eig_path);
    rmdir(dir);
    npy_free(&hv);
    npy_free(&eig);
}
#endif

int main(void) {
    Cifar10 data;
    if (cifar10_load(GOLDEN "cnn_data", CIFAR10_TRAIN, &data) != 0) {
        CHECK(0, "golden data: %s", hs_last_error());
        return check_summary(CHECK_NAME("test_golden"));
    }
    int idx[64];
    for (int i = 0; i < 64; i++) idx[i] = i;
    SampleSource src;
    CHECK(samples_wrap_cifar10(&data, "golden", &src) == 0, "source: %s", hs_last_error());
    SampleSet set = {&src, idx, 64, 32, 0};
    Model *m = NULL;
    if (FN(model_create)("cnn", 0, &m) != 0 || FN(model_load)(m, GOLDEN "cnn_init.safetensors", 0, NULL, 0) != 0) {
        CHECK(0, "model: %s", hs_last_error());
        return check_summary(CHECK_NAME("test_golden"));
    }
    const size_t P = m->num_params;
    CHECK(P == 5100, "cnn has %zu parameters", P);
    NpyArray g64 = {0}, hv64 = {0}, v = {0}, eig64 = {0}, g32 = {0}, hv32 = {0};
    if (read_golden("cnn_grad.npy", &g64, P) || read_golden("cnn_hv.npy", &hv64, P) || read_golden("cnn_v.npy", &v, P) ||
        read_golden("cnn_eigenvalues.npy", &eig64, P) || read_golden("cnn_f32_grad.npy", &g32, P) ||
        read_golden("cnn_f32_hv.npy", &hv32, P))
        goto done;
    const double loss64 = json_number(GOLDEN "cnn_loss.json", "loss");
    CHECK(g32.word_size == 4 && hv32.word_size == 4 && g64.word_size == 8 && hv64.word_size == 8,
          "golden dtypes: the f32 files must be float32, the others float64");

    double loss, *g = malloc(sizeof(double) * P), *hv = malloc(sizeof(double) * P);
    CHECK(FN(curv_loss_grad)(m, &set, &loss, NULL, g) == 0, "grad: %s", hs_last_error());
    CHECK(FN(curv_hvp)(m, &set, v.data, 1, CURVATURE_HESSIAN, hv, NULL) == 0, "hvp: %s", hs_last_error());
#ifdef HS_F64
    CHECK_CLOSE(loss, loss64, 1e-12, 0);
    double e = rel_error(g, g64.data, P);
    CHECK(e <= 1e-10, "f64 gradient vs PyTorch: %.3g", e);
    double eh = rel_error(hv, hv64.data, P);
    CHECK(eh <= 1e-10, "f64 HVP vs PyTorch: %.3g", eh);
    printf("f64: gradient within %.2g, HVP within %.2g relative of PyTorch\n", e, eh);
    check_exact(m, &set, P);
#else
    /* PyTorch's own float32 error, from the goldens (at the time of writing: loss 1.2e-8, gradient 6.5e-7,
     * HVP 6.7e-7 relative). Ours may be 4 times that against float64, and so, by the triangle inequality,
     * 5 times that against PyTorch's float32 result (measured against float64: loss 4e-10, gradient 2e-7,
     * HVP 2.4e-7 relative). */
    const double loss32 = json_number(GOLDEN "cnn_f32_loss.json", "loss");
    const double pt_loss = fabs(loss32 - loss64) / fabs(loss64);
    const double pt_grad = rel_error(g32.data, g64.data, P), pt_hv = rel_error(hv32.data, hv64.data, P);
    printf("PyTorch f32 vs f64: loss %.2g, gradient %.2g, HVP %.2g relative\n", pt_loss, pt_grad, pt_hv);
    CHECK(pt_grad > 0 && pt_hv > 0 && pt_grad < 1e-5 && pt_hv < 1e-5,
          "PyTorch's f32 goldens are not float32 results of the f64 ones: gradient %.3g, HVP %.3g", pt_grad, pt_hv);
    CHECK(pt_loss > 0 && pt_loss < 1e-6, "PyTorch's f32 loss %.17g is not a float32 result of %.17g", loss32, loss64);
    CHECK_CLOSE(loss, loss64, 4 * pt_loss, 0);
    CHECK_CLOSE(loss, loss32, 5 * pt_loss, 0);
    double e64 = rel_error(g, g64.data, P), e32 = rel_error(g, g32.data, P);
    CHECK(e64 <= 4 * pt_grad, "f32 gradient vs PyTorch f64: %.3g > 4 * %.3g", e64, pt_grad);
    CHECK(e32 <= 5 * pt_grad, "f32 gradient vs PyTorch f32: %.3g > 5 * %.3g", e32, pt_grad);
    printf("f32: loss %.2g, gradient %.2g relative of PyTorch f64 (%.2g of PyTorch f32)\n",
           fabs(loss - loss64) / loss64, e64, e32);
    e64 = rel_error(hv, hv64.data, P), e32 = rel_error(hv, hv32.data, P);
    CHECK(e64 <= 4 * pt_hv, "f32 HVP vs PyTorch f64: %.3g > 4 * %.3g", e64, pt_hv);
    CHECK(e32 <= 5 * pt_hv, "f32 HVP vs PyTorch f32: %.3g > 5 * %.3g", e32, pt_hv);
    printf("f32: HVP within %.2g of PyTorch f64 (%.2g of PyTorch f32)\n", e64, e32);
    /* Eigenvalues of a float32 Hessian move by at most ||dH||_2 <= ||dH||_F ~ (HVP-level relative error) *
     * ||H||_F (Weyl), that is 4 * pt_hv * ||H||_F / max|lambda| = 4 * 6.7e-7 * 12.5 / 4.17 = 8e-6 relative to
     * the largest (measured: 7.3e-7). */
    const double eig_tol = 4 * pt_hv * json_number(GOLDEN "cnn_hessian.json", "frobenius") / fabs(eig64.data[P - 1]);
    check_cli_f32(P, hv64.data, hv32.data, 5 * pt_hv, eig64.data, eig_tol);
#endif
    free(g);
    free(hv);
done:
    npy_free(&g64);
    npy_free(&hv64);
    npy_free(&v);
    npy_free(&eig64);
    npy_free(&g32);
    npy_free(&hv32);
    FN(model_free)(m);
    samples_free(&src);
    cifar10_free(&data);
    return check_summary(CHECK_NAME("test_golden"));
}

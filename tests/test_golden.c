/* test_golden.c: hessian against PyTorch's float64 reference (tests/golden/, made by
 * `/usr/bin/python3 tests/golden/make_golden.py`, see tests/golden/README.md): the cnn at its PyTorch
 * initialisation on 64 synthetic images.
 *   f64 (library): loss 1e-12, gradient and HVP 1e-10 relative, exact-Hessian eigenvalues (5 smallest and
 *                  5 largest) 1e-8 relative, trace;
 *   f32 (the CLI, --precision f32): HVP 1e-5 relative, eigenvalues 1e-4 relative (of max |lambda|). */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/curvature/curvature.h"
#include "../src/io/npy.h"
#include "../src/spectral/spectral.h"
#include "check.h"
#include "model_check.h"

#define GOLDEN "tests/golden/"

static double json_number(const char *path, const char *key) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NAN;
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = 0;
    fclose(fp);
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *p = strstr(text, pattern);
    return p ? strtod(p + strlen(pattern), NULL) : NAN;
}


static void check_extreme_eigenvalues(const double *got, const double *ref, size_t n, double rtol, const char *what) {
    double scale = fmax(fabs(ref[0]), fabs(ref[n - 1]));
    double worst = 0;
    for (size_t i = 0; i < 5; i++) {
        worst = fmax(worst, fabs(got[i] - ref[i]) / fmax(fabs(ref[i]), 1e-3 * scale));
        worst = fmax(worst, fabs(got[n - 1 - i] - ref[n - 1 - i]) / fmax(fabs(ref[n - 1 - i]), 1e-3 * scale));
    }
    CHECK(worst <= rtol, "%s: 5 smallest/largest eigenvalues differ from PyTorch by %.3g relative (> %g)", what, worst,
          rtol);
    printf("%s: extreme eigenvalues within %.2g relative of PyTorch\n", what, worst);
}

int main(void) {
    Cifar10 data;
    if (cifar10_load(GOLDEN "cnn_data", CIFAR10_TRAIN, &data) != 0) {
        CHECK(0, "golden data: %s", hs_last_error());
        return check_summary("test_golden");
    }
    int idx[64];
    for (int i = 0; i < 64; i++) idx[i] = i;
    SampleSet set = {&data, idx, 64, 32};
    Model *m;
    CHECK(model_create_f64("cnn", 0, &m) == 0, "create");
    CHECK(model_load_f64(m, GOLDEN "cnn_init.safetensors", 0, NULL, 0) == 0, "load: %s", hs_last_error());
    size_t P = m->num_params;
    NpyArray g_ref, hv_ref, v, eig_ref, hv32_ref;
    CHECK(npy_read(GOLDEN "cnn_grad.npy", &g_ref) == 0 && npy_read(GOLDEN "cnn_hv.npy", &hv_ref) == 0 &&
              npy_read(GOLDEN "cnn_v.npy", &v) == 0 && npy_read(GOLDEN "cnn_eigenvalues.npy", &eig_ref) == 0 &&
              npy_read(GOLDEN "cnn_f32_hv.npy", &hv32_ref) == 0,
          "golden files: %s", hs_last_error());

    double loss, *g = malloc(sizeof(double) * P), *hv = malloc(sizeof(double) * P);
    CHECK(curv_loss_grad_f64(m, &set, &loss, NULL, g) == 0, "grad: %s", hs_last_error());
    CHECK_CLOSE(loss, json_number(GOLDEN "cnn_loss.json", "loss"), 1e-12, 0);
    double e = rel_error(g, g_ref.data, P);
    CHECK(e <= 1e-10, "f64 gradient vs PyTorch: %.3g", e);
    CHECK(curv_hvp_f64(m, &set, v.data, 1, CURVATURE_HESSIAN, hv, NULL) == 0, "hvp: %s", hs_last_error());
    e = rel_error(hv, hv_ref.data, P);
    CHECK(e <= 1e-10, "f64 HVP vs PyTorch: %.3g", e);
    printf("f64: gradient and HVP within %.2g relative of PyTorch\n", e);

    double *H = malloc(sizeof(double) * P * P), *eig = malloc(sizeof(double) * P);
    ExactInfo info;
    CHECK(curv_exact_f64(m, &set, CURVATURE_HESSIAN, H, &info, NULL, NULL) == 0, "exact: %s", hs_last_error());
    CHECK(eigen_symmetric_f64(H, (int64_t)P, eig, 0) == 0, "eigen: %s", hs_last_error());
    check_extreme_eigenvalues(eig, eig_ref.data, P, 1e-8, "f64 exact Hessian");
    double trace = 0;
    for (size_t i = 0; i < P; i++) trace += eig[i];
    CHECK_CLOSE(trace, json_number(GOLDEN "cnn_hessian.json", "trace"), 1e-9, 0);

    /* f32 through the command line, as a user runs it. */
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
    NpyArray hv32 = {0}, eig32 = {0};
    if (npy_read(out, &hv32) == 0 && npy_read(eig_path, &eig32) == 0) {
        CHECK(hv32.word_size == 4, "hvp --precision f32 should write float32");
        e = rel_error(hv32.data, hv_ref.data, P);
        CHECK(e <= 1e-5, "f32 HVP vs PyTorch f64: %.3g", e);
        printf("f32: HVP within %.2g relative of PyTorch f64\n", e);
        check_extreme_eigenvalues(eig32.data, eig_ref.data, P, 1e-4, "f32 exact Hessian");
    } else {
        CHECK(0, "reading CLI outputs: %s", hs_last_error());
    }
    unlink(out);
    unlink(eig_path);
    rmdir(dir);
    npy_free(&hv32);
    npy_free(&eig32);
    npy_free(&g_ref);
    npy_free(&hv_ref);
    npy_free(&v);
    npy_free(&eig_ref);
    npy_free(&hv32_ref);
    free(g);
    free(hv);
    free(H);
    free(eig);
    model_free_f64(m);
    cifar10_free(&data);
    return check_summary("test_golden");
}

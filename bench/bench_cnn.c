/* bench_cnn.c: hessian's side of the cnn benchmarks (bench/run.sh runs it beside the PyTorch peer and
 * prints the ratios). Compiled once per precision (build/bench/bench_cnn_f32, _f64). On training images
 * 0..samples-1 of DIR, with a checkpoint or the seeded default initialisation, it times (median of
 * --repeats after one warm-up):
 *   grad:  loss and gradient of the mean cross-entropy
 *   hvp:   one exact Hessian-vector product (forward, backward, tangent forward and backward)
 *   exact: the full Hessian and all its eigenvalues (once; skipped with --no-exact)
 *   block: with --block K, one product with K directions together (hvp_block_seconds; per direction
 *          hvp_block_seconds / K), the pass block Lanczos and the trace estimators issue
 * and prints one JSON object on stdout.
 *
 * usage: bench_cnn_f32 DIR [--samples 1000] [--repeats 5] [--checkpoint CKPT] [--no-exact] [--exact-chunk 64]
 *                          [--block K] [--chunk N]
 * (--chunk: samples per pass of the gradient and HVPs, default 0: the library's automatic choice) */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/curvature/curvature.h"
#include "../src/spectral/spectral.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static int fail(const char *what) {
    fprintf(stderr, "bench_cnn: %s: %s\n", what, hs_last_error());
    return 1;
}

/* Eigenvalues in the working precision, as `hessian exact` does. */
static int eigenvalues(double *H, size_t P, double *eig) {
    if (sizeof(real) == 8) return eigen_symmetric_f64(H, (int64_t)P, eig, 0);
    float *Hf = malloc(sizeof(float) * P * P), *ef = malloc(sizeof(float) * P);
    if (!Hf || !ef) return hs_error("out of memory");
    for (size_t i = 0; i < P * P; i++) Hf[i] = (float)H[i];
    int rc = eigen_symmetric_f32(Hf, (int64_t)P, ef, 0);
    for (size_t i = 0; i < P; i++) eig[i] = ef[i];
    free(Hf);
    free(ef);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_cnn DIR [--samples N] [--repeats R] [--checkpoint CKPT] [--no-exact]\n");
        return 2;
    }
    const char *dir = argv[1], *ckpt = NULL;
    int samples = 1000, repeats = 5, exact = 1, exact_chunk = 64, block = 0, chunk = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--samples") && i + 1 < argc) samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--checkpoint") && i + 1 < argc) ckpt = argv[++i];
        else if (!strcmp(argv[i], "--no-exact")) exact = 0;
        else if (!strcmp(argv[i], "--exact-chunk") && i + 1 < argc) exact_chunk = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--block") && i + 1 < argc) block = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_cnn: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (samples <= 0 || repeats <= 0 || repeats > 64 || block < 0 || block > 4096 || chunk < 0) {
        fprintf(stderr, "bench_cnn: --samples must be > 0, --repeats in 1..64 and --block in 0..4096, --chunk >= 0\n");
        return 2;
    }
    SampleSource train;
    Model *m;
    if (samples_from_cifar10(dir, CIFAR10_TRAIN, &train) != 0) return fail("data");
    if (FN(model_create)("cnn", 0, &m) != 0 || (ckpt && FN(model_load)(m, ckpt, 0, NULL, 0) != 0)) return fail("model");
    size_t P = m->num_params;
    int *idx = malloc(sizeof(int) * (size_t)samples);
    double *g = malloc(sizeof(double) * P), *v = malloc(sizeof(double) * P), *hv = malloc(sizeof(double) * P);
    for (int i = 0; i < samples; i++) idx[i] = i;
    for (size_t i = 0; i < P; i++) v[i] = sin(0.1 * (double)i);
    SampleSet set = {&train, idx, samples, chunk, 0};
    double tg[64], th[64], loss;
    for (int r = -1; r < repeats; r++) {
        double t0 = hs_seconds();
        if (FN(curv_loss_grad)(m, &set, &loss, NULL, g) != 0) return fail("gradient");
        double t1 = hs_seconds();
        if (FN(curv_hvp)(m, &set, v, 1, CURVATURE_HESSIAN, hv, NULL) != 0) return fail("hvp");
        double t2 = hs_seconds();
        if (r >= 0) tg[r] = t1 - t0, th[r] = t2 - t1;
    }
    double grad_s = median(tg, repeats), hvp_s = median(th, repeats);
    printf("{\"tool\": \"hessian\", \"precision\": \"%s\", \"threads\": %d, \"samples\": %d, \"grad_seconds\": %.6f, "
           "\"hvp_seconds\": %.6f, \"hvp_over_grad\": %.3f",
           HS_PRECISION_NAME, omp_get_max_threads(), samples, grad_s, hvp_s, hvp_s / grad_s);
    if (block > 0) {
        double *vb = malloc(sizeof(double) * P * (size_t)block), *hb = malloc(sizeof(double) * P * (size_t)block);
        if (!vb || !hb) return fail("out of memory");
        for (size_t i = 0; i < P * (size_t)block; i++) vb[i] = sin(0.1 * (double)i);
        for (int r = -1; r < repeats; r++) {
            double t0 = hs_seconds();
            if (FN(curv_hvp)(m, &set, vb, block, CURVATURE_HESSIAN, hb, NULL) != 0) return fail("block hvp");
            if (r >= 0) th[r] = hs_seconds() - t0;
        }
        double tb = median(th, repeats);
        printf(", \"block\": %d, \"hvp_block_seconds\": %.6f, \"block_seconds_per_direction\": %.6f", block, tb,
               tb / block);
        free(vb);
        free(hb);
    }
    if (exact) {
        double *H = malloc(sizeof(double) * P * P), *eig = malloc(sizeof(double) * P);
        set.chunk = exact_chunk;
        ExactInfo info;
        if (FN(curv_exact)(m, &set, CURVATURE_HESSIAN, H, &info, NULL, NULL) != 0) return fail("exact");
        double t1 = hs_seconds();
        if (eigenvalues(H, P, eig) != 0) return fail("eigenvalues");
        double te = hs_seconds() - t1;
        printf(", \"exact_matrix_seconds\": %.3f, \"exact_eigen_seconds\": %.3f, \"exact_seconds\": %.3f, "
               "\"lambda_max\": %.6f, \"lambda_min\": %.6f",
               info.seconds, te, info.seconds + te, eig[P - 1], eig[0]);
        free(H);
        free(eig);
    }
    printf("}\n");
    free(g);
    free(v);
    free(hv);
    free(idx);
    FN(model_free)(m);
    samples_free(&train);
    return 0;
}

/* bench_model.c: hessian's side of the per-model benchmarks (bench/run_resnet.sh runs it beside
 * bench/torch_model_peer.py). One task per process, so the peak memory reported is the task's own:
 *   step: one SGD training step (batch norm in training mode: batch statistics, running-stat update)
 *   grad: loss and gradient (batch norm in eval mode)
 *   hvp:  one exact Hessian-vector product (batch norm in eval mode, as the study measures)
 * on training images 0..samples-1 of DIR; median of --repeats after one warm-up; one JSON line on stdout.
 * grad and hvp run the samples in chunks of --chunk (default: all of them in one pass), as `hessian` does.
 * Compiled once per precision (build/bench/bench_model_f32, _f64).
 *
 * usage: bench_model_f32 DIR --model resnet50 --task step|grad|hvp [--samples 100] [--chunk N] [--repeats 3] */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../src/curvature/curvature.h"
#include "../src/optim/sgd.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fail(const char *what) {
    fprintf(stderr, "bench_model: %s: %s\n", what, hs_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : NULL, *arch = "resnet50", *task = "step";
    int samples = 100, repeats = 3, chunk = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) arch = argv[++i];
        else if (!strcmp(argv[i], "--task") && i + 1 < argc) task = argv[++i];
        else if (!strcmp(argv[i], "--samples") && i + 1 < argc) samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_model: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (chunk <= 0 || chunk > samples) chunk = samples;
    if (!dir || samples <= 0 || repeats <= 0 || repeats > 64) {
        fprintf(stderr, "usage: bench_model DIR --model M --task step|grad|hvp [--samples N] [--chunk N] [--repeats R]\n");
        return 2;
    }
    SampleSource train;
    Model *m;
    if (samples_from_cifar10(dir, CIFAR10_TRAIN, &train) != 0) return fail("data");
    if (FN(model_create)(arch, 0, &m) != 0) return fail("model");
    size_t P = m->num_params;
    int *idx = malloc(sizeof(int) * (size_t)samples);
    for (int i = 0; i < samples; i++) idx[i] = i;
    real *x = malloc(sizeof(real) * (size_t)samples * CIFAR10_PIXELS), *g = calloc(P, sizeof(real));
    real *buf = calloc(P, sizeof(real));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)samples);
    double *gd = malloc(sizeof(double) * P), *v = malloc(sizeof(double) * P), *hv = malloc(sizeof(double) * P);
    if (!idx || !x || !g || !buf || !y || !gd || !v || !hv) return fail("memory");
    if (FN(samples_fill)(&train, idx, samples, x, y) != 0) return fail("data");
    for (size_t i = 0; i < P; i++) v[i] = sin(0.1 * (double)i);
    SampleSet set = {&train, idx, samples, chunk, 0};
    Sgd opt = {0.1, 0.9, 5e-4, 0};
    double t[64];
    for (int r = -1; r < repeats; r++) {
        double t0 = hs_seconds(), loss;
        int correct;
        if (!strcmp(task, "step")) {
            m->training = 1;
            memset(g, 0, sizeof(real) * P);
            if (FN(model_forward)(m, x, samples) || FN(model_loss)(m, y, 1.0 / samples, &loss, &correct) ||
                FN(model_backward)(m, y, 1.0 / samples, g))
                return fail("step");
            FN(sgd_step)(&opt, m->params, g, buf, P);
        } else if (!strcmp(task, "grad")) {
            if (FN(curv_loss_grad)(m, &set, &loss, NULL, gd) != 0) return fail("grad");
        } else if (!strcmp(task, "hvp")) {
            if (FN(curv_hvp)(m, &set, v, 1, CURVATURE_HESSIAN, hv, NULL) != 0) return fail("hvp");
        } else {
            fprintf(stderr, "bench_model: --task must be step, grad or hvp\n");
            return 2;
        }
        if (r >= 0) t[r] = hs_seconds() - t0;
    }
    qsort(t, (size_t)repeats, sizeof(double), cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"tool\": \"hessian\", \"model\": \"%s\", \"task\": \"%s\", \"precision\": \"%s\", \"threads\": %d, "
           "\"samples\": %d, \"chunk\": %d, \"seconds\": %.4f, \"peak_rss_mb\": %.0f}\n",
           arch, task, HS_PRECISION_NAME, omp_get_max_threads(), samples, chunk, t[repeats / 2],
           ru.ru_maxrss / 1024.0);
    return 0;
}

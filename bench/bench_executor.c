/* bench_executor.c: the executor (a built-in network run from its node table) against the hand-written passes
 * of the same network, same inputs, same thread count, in one process: "no speed lost" for issue 9.
 * For each network it times (median of --repeats after one warm-up) the gradient (forward, loss, backward)
 * and one Hessian-vector product (forward, loss, backward, tangent passes) on random images, and prints one
 * JSON line per network with both times and the ratio hand-written / executor (> 1: the executor is faster).
 *
 * usage: bench_executor_f32 [--models cnn,resnet50] [--cnn-samples 1000] [--resnet-samples 100] [--repeats 5] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/rng.h"
#include "../src/graph/graph.h"
#include "../src/models/model.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Seconds of one gradient (hvp = 0) or one product (hvp = 1) of m on (x, y), median of repeats. */
static int time_task(Model *m, const real *x, const int32_t *y, int N, const real *v, real *out, int hvp,
                     int repeats, double *seconds) {
    double t[64];
    for (int r = 0; r <= repeats && r < 64; r++) {
        double start = hs_seconds(), loss;
        int correct;
        memset(out, 0, sizeof(real) * m->num_params);
        HS_TRY(FN(model_forward)(m, x, N));
        HS_TRY(FN(model_loss)(m, y, 1.0 / N, &loss, &correct));
        HS_TRY(FN(model_backward)(m, y, 1.0 / N, hvp ? NULL : out));
        if (hvp) HS_TRY(FN(model_hvp_chunk)(m, v, 1, 0, CURVATURE_HESSIAN, out));
        if (r > 0) t[r - 1] = hs_seconds() - start;
    }
    *seconds = median(t, repeats);
    return 0;
}

static int bench(const char *name, int N, int repeats) {
    Model *hand = NULL, *table = NULL;
    Graph *g = malloc(sizeof *g);
    if (!g) return -1;
    HS_TRY(FN(model_create)(name, 1, &hand));
    if (graph_builtin(g, name) != 0) {
        free(g);
        return -1;
    }
    HS_TRY(FN(model_create_graph)(g, 1, &table));
    size_t P = hand->num_params;
    real *x = malloc(sizeof(real) * (size_t)N * 3072), *v = malloc(sizeof(real) * P), *out = malloc(sizeof(real) * P);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    if (!x || !v || !out || !y) return hs_error("out of memory");
    Rng rng;
    rng_seed(&rng, 3);
    for (size_t i = 0; i < (size_t)N * 3072; i++) x[i] = (real)rng_normal(&rng);
    for (size_t i = 0; i < P; i++) v[i] = (real)rng_normal(&rng);
    for (int i = 0; i < N; i++) y[i] = (int32_t)rng_below(&rng, 10);
    double hg, tg, hh, th;
    HS_TRY(time_task(hand, x, y, N, v, out, 0, repeats, &hg));
    HS_TRY(time_task(table, x, y, N, v, out, 0, repeats, &tg));
    HS_TRY(time_task(hand, x, y, N, v, out, 1, repeats, &hh));
    HS_TRY(time_task(table, x, y, N, v, out, 1, repeats, &th));
    printf("{\"model\": \"%s\", \"precision\": \"%s\", \"samples\": %d, \"grad_hand_s\": %.4f, \"grad_executor_s\": "
           "%.4f, \"grad_ratio\": %.2f, \"hvp_hand_s\": %.4f, \"hvp_executor_s\": %.4f, \"hvp_ratio\": %.2f}\n",
           name, HS_PRECISION_NAME, N, hg, tg, hg / tg, hh, th, hh / th);
    fflush(stdout);
    free(x);
    free(v);
    free(out);
    free(y);
    FN(model_free)(hand);
    FN(model_free)(table);
    return 0;
}

int main(int argc, char **argv) {
    const char *models = "cnn,resnet50";
    int cnn_samples = 1000, resnet_samples = 100, repeats = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
        else if (!strcmp(argv[i], "--cnn-samples") && i + 1 < argc) cnn_samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--resnet-samples") && i + 1 < argc) resnet_samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_executor [--models cnn,resnet50] [--cnn-samples N] [--resnet-samples N] "
                            "[--repeats R]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > 63 || cnn_samples < 1 || resnet_samples < 1) {
        fprintf(stderr, "bench_executor: out-of-range option\n");
        return 2;
    }
    char list[256];
    snprintf(list, sizeof list, "%s", models);
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        int N = strcmp(name, "cnn") == 0 ? cnn_samples : resnet_samples;
        if (bench(name, N, repeats) != 0) {
            fprintf(stderr, "bench_executor: %s: %s\n", name, hs_last_error());
            return 1;
        }
    }
    return 0;
}

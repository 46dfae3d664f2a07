/* test_threads.c: results do not depend on the thread count. The gradient, Hessian-vector products (K = 3
 * directions, Hessian and GGN) and the exact Hessian of the cnn, and the gradient and H v (K = 3) of ResNet-18 with
 * batch statistics and with running statistics, in float32 and float64, computed at 1, 2 and 3 OpenMP
 * threads, must agree bit for bit: every reduction (BLAS tiles, convolution weight gradients over fixed sample
 * blocks, the loss over samples) has an order fixed by the shapes alone. Before this was so, OpenBLAS's
 * threaded Haswell sgemm and per-thread accumulators made float32 results differ in the last bits between
 * 1 and 2 threads, and in ResNet-50 with batch statistics one ReLU then flipped (test_resnet_golden.c). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/curvature/curvature.h"
#include "check.h"
#include "model_check.h"

/* The float32 library: tests are compiled with HS_F64; f32 models are handled through these entry points. */
int model_create_f32(const char *arch, uint64_t seed, Model **out);
void model_free_f32(Model *m);
int curv_loss_grad_f32(Model *m, const SampleSet *set, double *loss, double *accuracy, double *grad);
int curv_hvp_f32(Model *m, const SampleSet *set, const double *v, int K, Curvature curvature, double *hv,
                 double *loss);
int curv_exact_f32(Model *m, const SampleSet *set, Curvature curvature, double *H, ExactInfo *info,
                   ExactProgress progress, void *user);
extern long gemm_serialized_calls_f32, gemm_serialized_calls_f64;

enum { K = 3 };
static const int thread_counts[3] = {1, 2, 3};

typedef struct {
    const char *arch;
    int f32, batch_stats, exact_and_ggn, samples;
} Case;

/* Everything the case computes, concatenated: loss, gradient (P), H v and GGN v (K,P each), [H (P,P)]. */
static double *compute(const Case *c, Model *m, const SampleSet *set, const double *v, size_t *length) {
    size_t P = m->num_params, n = 1 + P + 2 * K * P + (c->exact_and_ggn ? P * P : 0);
    double *out = calloc(n, sizeof(double));
    *length = n;
    double *loss = out, *g = out + 1, *hv = g + P, *gv = hv + K * P, *H = gv + K * P;
    m->training = c->batch_stats; /* gradient with batch statistics in training mode */
    m->bn_mode = BN_EVAL;
    int rc = c->f32 ? curv_loss_grad_f32(m, set, loss, NULL, g) : curv_loss_grad_f64(m, set, loss, NULL, g);
    m->training = 0;
    m->bn_mode = c->batch_stats ? BN_BATCH : BN_EVAL;
    for (int j = 0; j < (c->exact_and_ggn ? 2 : 1) && rc == 0; j++) {
        Curvature cv = j ? CURVATURE_GGN : CURVATURE_HESSIAN;
        double *dst = j ? gv : hv;
        rc = c->f32 ? curv_hvp_f32(m, set, v, K, cv, dst, NULL) : curv_hvp_f64(m, set, v, K, cv, dst, NULL);
    }
    if (rc == 0 && c->exact_and_ggn) {
        ExactInfo info;
        rc = c->f32 ? curv_exact_f32(m, set, CURVATURE_HESSIAN, H, &info, NULL, NULL)
                    : curv_exact_f64(m, set, CURVATURE_HESSIAN, H, &info, NULL, NULL);
    }
    CHECK(rc == 0, "%s: %s", c->arch, hs_last_error());
    if (rc != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void run_case(const Case *c, const SampleSource *data) {
    Model *m = NULL;
    int rc = c->f32 ? model_create_f32(c->arch, 7, &m) : model_create_f64(c->arch, 7, &m);
    CHECK(rc == 0, "create %s: %s", c->arch, hs_last_error());
    if (rc != 0) return;
    size_t P = m->num_params;
    double *v = malloc(sizeof(double) * K * P);
    random_vector(v, K * P, 11);
    int idx[12];
    for (int i = 0; i < 12; i++) idx[i] = i;
    SampleSet set = {data, idx, c->samples, 5, 0}; /* chunks of 5: a short last chunk too */
    double *first = NULL;
    size_t n = 0;
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(thread_counts[t]);
        size_t len;
        double *r = compute(c, m, &set, v, &len);
        if (!r) break;
        if (!first) {
            first = r;
            n = len;
            continue;
        }
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += memcmp(&r[i], &first[i], sizeof(double)) != 0;
        CHECK(differ == 0, "%s %s%s: %zu of %zu values differ between 1 and %d threads", c->arch,
              c->f32 ? "f32" : "f64", c->batch_stats ? " (batch statistics)" : "", differ, n, thread_counts[t]);
        free(r);
    }
    printf("%-9s %s%-20s %zu values at 1, 2 and 3 threads compared\n", c->arch, c->f32 ? "f32" : "f64",
           c->batch_stats ? " batch statistics" : "", n);
    free(first);
    free(v);
    if (c->f32) model_free_f32(m);
    else model_free_f64(m);
}

/* One direction (K = 1) through the cnn's linear layers on 128-sample chunks: their products (128 x 125 x 30)
 * are large enough for FN(gemm) to want two threads. The per-direction loops must not wrap them in a
 * serialized region (a false `if` clause), where FN(gemm)'s team would be a nested one that libgomp creates
 * anew on every call (it cost the cnn HVP 4-65 ms per product on 100-sample chunks). Bits at 1 and 2 threads
 * agree too. */
static void single_direction(const SampleSource *data, int f32) {
    Model *m = NULL;
    int rc = f32 ? model_create_f32("cnn", 7, &m) : model_create_f64("cnn", 7, &m);
    CHECK(rc == 0, "create cnn: %s", hs_last_error());
    if (rc != 0) return;
    size_t P = m->num_params;
    enum { N = 128 };
    int idx[N];
    for (int i = 0; i < N; i++) idx[i] = i;
    SampleSet set = {data, idx, N, N, 0};
    double *v = malloc(sizeof(double) * P), *hv = malloc(sizeof(double) * 2 * P);
    random_vector(v, P, 13);
    long before = f32 ? gemm_serialized_calls_f32 : gemm_serialized_calls_f64;
    for (int t = 0; t < 2 && rc == 0; t++) {
        omp_set_num_threads(t + 1);
        rc = f32 ? curv_hvp_f32(m, &set, v, 1, CURVATURE_HESSIAN, hv + t * P, NULL)
                 : curv_hvp_f64(m, &set, v, 1, CURVATURE_HESSIAN, hv + t * P, NULL);
        CHECK(rc == 0, "cnn K = 1: %s", hs_last_error());
    }
    long made = (f32 ? gemm_serialized_calls_f32 : gemm_serialized_calls_f64) - before;
    CHECK(made == 0, "cnn %s K = 1: %ld products asked for threads inside a serialized region", f32 ? "f32" : "f64",
          made);
    CHECK(rc != 0 || memcmp(hv, hv + P, sizeof(double) * P) == 0, "cnn %s K = 1: H v differs between 1 and 2 threads",
          f32 ? "f32" : "f64");
    printf("cnn       %s K = 1 on %d-sample chunks: no serialized threaded products, same bits at 1 and 2 threads\n",
           f32 ? "f32" : "f64", N);
    free(v);
    free(hv);
    if (f32) model_free_f32(m);
    else model_free_f64(m);
}

int main(void) {
    Cifar10 data = synthetic_data(128, 5);
    const Case cases[] = {
        {"cnn", 1, 0, 1, 12}, {"cnn", 0, 0, 1, 12}, {"resnet18", 1, 1, 0, 7}, {"resnet18", 1, 0, 0, 7},
        {"resnet18", 0, 1, 0, 7},
    };
    int threads = omp_get_max_threads();
    SampleSource src;
    CHECK(samples_wrap_cifar10(&data, "synthetic", &src) == 0, "source: %s", hs_last_error());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], &src);
    single_direction(&src, 1);
    single_direction(&src, 0);
    CHECK(gemm_serialized_calls_f32 + gemm_serialized_calls_f64 == 0,
          "%ld products (f32 %ld, f64 %ld) asked for threads inside a serialized region in the cases above",
          gemm_serialized_calls_f32 + gemm_serialized_calls_f64, gemm_serialized_calls_f32, gemm_serialized_calls_f64);
    omp_set_num_threads(threads);
    samples_free(&src);
    cifar10_free(&data);
    return check_summary("test_threads");
}

/* test_hvp_cache.c: the primal passes a fixed operator keeps between products (HvpCache, curv_hvp_cached) give
 * the same bits as recomputing them (curv_hvp), are really reused (the reuse counter moves), and are recomputed,
 * never served stale, when anything they depend on changes: a parameter, the batch-norm running statistics, the
 * batch-norm mode, the sample indices, the chunk size. Networks: the built-in cnn on synthetic CIFAR-10 and the
 * golden VGG-style ONNX net with batch norm (running statistics and batch statistics), float64, several
 * chunks (uneven), K = 1 and K = 3 directions. */
#include <stdlib.h>
#include <string.h>

#include "../src/curvature/curvature.h"
#include "check.h"
#include "model_check.h"

#define GOLD "tests/golden/onnx/"

/* One cached product against a fresh one: same bits (products and loss). */
static void same_as_fresh(const char *what, Model *m, const SampleSet *set, const double *v, int K, HvpCache *c) {
    size_t n = m->num_params * (size_t)K;
    double *a = malloc(sizeof(double) * n), *b = malloc(sizeof(double) * n), la = 0, lb = 0;
    int ra = curv_hvp_cached_f64(m, set, v, K, CURVATURE_HESSIAN, a, &la, c);
    int rb = curv_hvp_f64(m, set, v, K, CURVATURE_HESSIAN, b, &lb);
    CHECK(ra == 0 && rb == 0, "%s: %s", what, hs_last_error());
    if (ra == 0 && rb == 0)
        CHECK(memcmp(a, b, sizeof(double) * n) == 0 && la == lb, "%s: cached and fresh products differ", what);
    free(a);
    free(b);
}

static void run(const char *name, Model *m, SampleSource *src, int count, int chunk) {
    size_t P = m->num_params;
    int *idx = malloc(sizeof(int) * (size_t)count);
    for (int i = 0; i < count; i++) idx[i] = i;
    SampleSet set = {src, idx, count, chunk, 0};
    double *v = malloc(sizeof(double) * P * 3);
    random_vector(v, P * 3, 5);
    HvpCache c = {0};
    char what[200];
    for (int call = 0; call < 3; call++) { /* fill, then reuse twice (K = 1, then 3) */
        snprintf(what, sizeof what, "%s call %d", name, call + 1);
        same_as_fresh(what, m, &set, v + (call == 2 ? 0 : (size_t)call * P), call == 2 ? 3 : 1, &c);
    }
    CHECK(c.enabled && c.reused == 2, "%s: the primal passes were not reused (enabled %d, reused %lld)", name,
          c.enabled, (long long)c.reused);
    /* Every change below must be noticed: a stale cache would give the old product, not the fresh one. */
    m->params[P / 2] += 0.25;
    snprintf(what, sizeof what, "%s after a parameter change", name);
    same_as_fresh(what, m, &set, v, 1, &c);
    if (m->num_buffer_values) {
        m->buffer_values[0] += 0.5;
        snprintf(what, sizeof what, "%s after a running-statistics change", name);
        same_as_fresh(what, m, &set, v, 1, &c);
        m->bn_mode = BN_BATCH;
        snprintf(what, sizeof what, "%s in batch-statistics mode", name);
        same_as_fresh(what, m, &set, v, 1, &c);
        same_as_fresh(what, m, &set, v + P, 1, &c);
        m->bn_mode = BN_EVAL;
    }
    idx[0] = count; /* another sample, same count */
    snprintf(what, sizeof what, "%s with other samples", name);
    same_as_fresh(what, m, &set, v, 1, &c);
    set.chunk = chunk + 1;
    snprintf(what, sizeof what, "%s with another chunk size", name);
    same_as_fresh(what, m, &set, v, 1, &c);
    int64_t before = c.reused;
    same_as_fresh(what, m, &set, v + P, 1, &c);
    CHECK(c.reused == before + 1, "%s: not reused after the changes", name);
    hvp_cache_free_f64(&c);
    free(v);
    free(idx);
}

int main(void) {
    Cifar10 data = synthetic_data(9, 7);
    SampleSource src;
    Model *m = NULL;
    if (samples_wrap_cifar10(&data, "synthetic", &src) == 0 && model_create_f64("cnn", 3, &m) == 0) {
        for (size_t i = 0; i < m->num_params; i++) m->params[i] *= 1.5; /* active ReLUs */
        run("cnn", m, &src, 8, 3);
        model_free_f64(m);
    } else {
        CHECK(0, "cnn: %s", hs_last_error());
    }
    SampleSource vsrc;
    if (samples_from_npy(GOLD "vgg_x.npy", GOLD "vgg_y.npy", &vsrc) == 0 && model_create_f64(GOLD "vgg.onnx", 0, &m) == 0) {
        CHECK(m->num_buffer_values > 0, "vgg.onnx has no batch-norm buffers");
        run("vgg.onnx", m, &vsrc, (int)vsrc.count - 1, 2);
        model_free_f64(m);
        samples_free(&vsrc);
    } else {
        CHECK(0, "vgg.onnx: %s", hs_last_error());
    }
    return check_summary("test_hvp_cache");
}

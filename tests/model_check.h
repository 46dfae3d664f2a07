/* model_check.h: helpers shared by the whole-model tests (test_model.c, test_resnet.c, test_golden.c,
 * test_resnet_golden.c): seeded synthetic CIFAR-10 images, seeded normal vectors, and vector comparisons. */
#ifndef HS_MODEL_CHECK_H
#define HS_MODEL_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../src/core/rng.h"
#include "../src/data/cifar10.h"

/* n images with uniform random bytes and labels. */
static inline Cifar10 synthetic_data(int n, uint64_t seed) {
    Cifar10 d = {n, malloc((size_t)n), malloc((size_t)n * CIFAR10_PIXELS)};
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) d.labels[i] = (uint8_t)rng_below(&rng, 10);
    for (size_t i = 0; i < (size_t)n * CIFAR10_PIXELS; i++) d.pixels[i] = (uint8_t)rng_below(&rng, 256);
    return d;
}

/* v (n) standard normal. */
static inline void random_vector(double *v, size_t n, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) v[i] = rng_normal(&rng);
}

/* ||a - b|| / ||b||. */
static inline double rel_error(const double *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-300);
}

static inline double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

#endif

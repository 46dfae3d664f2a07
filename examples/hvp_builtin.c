/* hvp_builtin.c: a Hessian-vector product on the built-in CNN through <hessian.h> alone. Random weights (seed 1),
 * 32 synthetic CIFAR-shaped samples passed in as arrays, one product Hv for a random direction v, checked
 * against central differences of the gradient, (g(theta + eps v) - g(theta - eps v)) / (2 eps).
 *
 *   cc hvp_builtin.c $(pkg-config --cflags --libs hessian) -lm -o hvp_builtin && ./hvp_builtin
 *
 * Prints the loss, |Hv| and the relative difference; exits 0 when it is within the tolerance, 1 otherwise. */
#include <hessian.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 32 };

/* Uniform in [-1, 1) from a 64-bit xorshift: the same numbers on every platform. */
static double uniform(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return (double)(*s >> 11) / 9007199254740992.0 * 2 - 1;
}

static double norm(const double *x /* (n) */, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i] * x[i];
    return sqrt(s);
}

static int fail(const char *what) {
    fprintf(stderr, "hvp_builtin: %s: %s\n", what, hs_last_error());
    return 1;
}

int main(void) {
    printf("libhessian %s (header %d.%d.%d)\n", hs_version(), HS_VERSION_MAJOR, HS_VERSION_MINOR, HS_VERSION_PATCH);
    hs_model *m;
    if (hs_model_create("cnn", HS_FLOAT64, 1, &m)) return fail("model");
    int64_t in_shape[4], P = hs_model_num_params(m);
    int nd = hs_model_input_shape(m, in_shape), classes = hs_model_num_outputs(m);
    if (nd != 3 || P <= 0 || classes <= 0) return fail("model shape");

    /* Synthetic data: inputs (N, 3, 32, 32) uniform in [-1, 1), labels (N) in [0, classes). */
    int64_t shape[4] = {N, in_shape[0], in_shape[1], in_shape[2]}, per = in_shape[0] * in_shape[1] * in_shape[2];
    double *x = malloc(sizeof(double) * N * per);
    int32_t y[N];
    uint64_t seed = 42;
    for (int64_t i = 0; i < N * per; i++) x[i] = uniform(&seed);
    for (int i = 0; i < N; i++) y[i] = i % classes;
    int64_t y_shape[1] = {N};
    hs_data *d;
    if (hs_data_from_arrays(x, HS_FLOAT64, 4, shape, y, HS_LABELS_INT32, 1, y_shape, &d)) return fail("data");
    free(x); /* the data holds a copy */

    double loss;
    if (hs_loss(m, d, NULL, &loss, NULL)) return fail("loss");
    printf("parameters %lld, loss %.6f\n", (long long)P, loss);

    double *v = malloc(sizeof(double) * P), *hv = malloc(sizeof(double) * P), *theta = malloc(sizeof(double) * P);
    double *gp = malloc(sizeof(double) * P), *gm = malloc(sizeof(double) * P), *shifted = malloc(sizeof(double) * P);
    for (int64_t i = 0; i < P; i++) v[i] = uniform(&seed);
    if (hs_hvp(m, d, NULL, HS_HESSIAN, v, 1, hv)) return fail("hvp");
    printf("|v| %.6f, |Hv| %.6e\n", norm(v, P), norm(hv, P));

    /* Central differences in float64: truncation error O(eps^2 |third derivative|) ~ 1e-12 relative, rounding
     * about 1e-16 |g| / eps ~ 1e-10 |g| (and ReLU kinks crossed within eps |v| are rare at eps = 1e-6), so 1e-5
     * relative leaves a wide margin on any machine while a wrong product is off by order 1. */
    const double eps = 1e-6, tol = 1e-5;
    if (hs_model_get_params(m, theta)) return fail("get params");
    for (int64_t i = 0; i < P; i++) shifted[i] = theta[i] + eps * v[i];
    if (hs_model_set_params(m, shifted) || hs_gradient(m, d, NULL, gp, NULL)) return fail("gradient at theta + eps v");
    for (int64_t i = 0; i < P; i++) shifted[i] = theta[i] - eps * v[i];
    if (hs_model_set_params(m, shifted) || hs_gradient(m, d, NULL, gm, NULL)) return fail("gradient at theta - eps v");
    if (hs_model_set_params(m, theta)) return fail("restore params");
    double diff = 0;
    for (int64_t i = 0; i < P; i++) {
        double fd = (gp[i] - gm[i]) / (2 * eps);
        diff += (fd - hv[i]) * (fd - hv[i]);
    }
    double rel = sqrt(diff) / norm(hv, P);
    int ok = rel <= tol;
    printf("Hv vs gradient differences: relative error %.3e (%s, tolerance %.0e)\n", rel, ok ? "ok" : "FAILED", tol);

    free(v); free(hv); free(theta); free(gp); free(gm); free(shifted);
    hs_data_free(d);
    hs_model_free(m);
    return ok ? 0 : 1;
}

/* test_api.c: the public C API (include/hessian.h, src/api/) against the library it wraps, on the small ONNX
 * networks of tests/onnx/ (order.onnx: conv, batch norm, linear layers, 1,262 parameters; attrs.onnx: no
 * batch norm) and a few synthetic samples:
 *   hs_hvp equals curv_hvp bit for bit (float32 and float64 models), and central differences of hs_gradient;
 *   hs_operator_apply equals hs_hvp bit for bit; hs_lanczos's top eigenvalues equal hs_exact's to 1e-8
 *   (relative); Hutch++ with as many probes as 3 x the block's dimension gives the block's exact trace;
 *   the same data from arrays, a callback and .npy files gives the same bits;
 *   bad input is refused with a message (NaN, wrong input shape, index out of range, K = 0, bad enums);
 *   hs_train gives the same checkpoint as `hessian train` (HESSIAN_BIN) with the same settings, with and without
 *   batch norm (whole batches / replicas), class labels and real targets. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/hessian.h"
#include "../src/curvature/curvature.h"
#include "../src/data/samples.h"
#include "../src/io/npy.h"
#include "check.h"
#include "temp_dir.h"

/* The float32 half of the library, declared by hand (this test is built -DHS_F64): a Model_f32 is passed as
 * void*; SampleSet's layout does not depend on the precision. */
int model_create_f32(const char *arch, uint64_t seed, void **out);
void model_free_f32(void *m);
int curv_hvp_f32(void *m, const SampleSet *set, const double *v, int K, Curvature curvature, double *hv,
                 double *loss);

#define ORDER "tests/onnx/order.onnx"
#define ATTRS "tests/onnx/attrs.onnx"
enum { N = 12, IN = 3 * 8 * 8, CLASSES = 7 };

static double X[N * IN];
static int32_t Y[N];

static void make_data(void) {
    uint64_t s = 12345;
    for (int i = 0; i < N * IN; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        X[i] = (double)(s >> 11) / 9007199254740992.0 * 2 - 1;
    }
    for (int i = 0; i < N; i++) Y[i] = (int32_t)((i * 5 + 3) % CLASSES);
}

static int fill_cb(void *user, const int64_t *idx, int n, double *inputs, void *targets) {
    (void)user;
    for (int i = 0; i < n; i++) {
        memcpy(inputs + (size_t)i * IN, X + idx[i] * IN, sizeof(double) * IN);
        ((int32_t *)targets)[i] = Y[idx[i]];
    }
    return 0;
}

static int failing_cb(void *user, const int64_t *idx, int n, double *inputs, void *targets) {
    (void)user, (void)idx, (void)n, (void)inputs, (void)targets;
    return 3;
}

static hs_data *array_data(void) {
    int64_t xs[4] = {N, 3, 8, 8}, ys[1] = {N};
    hs_data *d = NULL;
    int rc = hs_data_from_arrays(X, HS_FLOAT64, 4, xs, Y, HS_LABELS_INT32, 1, ys, &d);
    CHECK(rc == 0, "hs_data_from_arrays: %s", hs_last_error());
    return d;
}

static void random_vector(double *v, int64_t n, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        v[i] = (double)(seed >> 11) / 9007199254740992.0 - 0.5;
    }
}

#define REFUSED(expr, text)                                                                                    \
    do {                                                                                                       \
        int refused_rc_ = (expr);                                                                              \
        CHECK(refused_rc_ == -1 && strstr(hs_last_error(), text) != NULL, "%s: expected -1 and '%s', got %d: '%s'", \
              #expr, text, refused_rc_, hs_last_error());                                                      \
    } while (0)

/* hs_hvp == curv_hvp bitwise, in both precisions; hs_operator_apply == hs_hvp; central differences. */
static void test_hvp(void) {
    hs_data *d = array_data();
    int idx[N];
    for (int i = 0; i < N; i++) idx[i] = i;
    for (int prec = 0; prec < 2; prec++) {
        hs_model *m = NULL;
        CHECK(hs_model_create(ORDER, prec ? HS_FLOAT64 : HS_FLOAT32, 0, &m) == 0, "create: %s", hs_last_error());
        if (!m || !d) return;
        int64_t P = hs_model_num_params(m);
        CHECK(P == 1262 && hs_model_num_outputs(m) == CLASSES && hs_model_precision(m) == (prec ? HS_FLOAT64 : HS_FLOAT32),
              "P %lld", (long long)P);
        const int K = 3;
        double *v = malloc(sizeof(double) * K * P), *hv = malloc(sizeof(double) * K * P);
        double *ref = malloc(sizeof(double) * K * P), *op_hv = malloc(sizeof(double) * K * P);
        random_vector(v, K * P, 7);
        hs_samples s = {NULL, 0, 0, 5}; /* every sample, chunks of 5 */
        CHECK(hs_hvp(m, d, &s, HS_HESSIAN, v, K, hv) == 0, "hs_hvp: %s", hs_last_error());
        /* the library directly, on the same samples */
        SampleSource src;
        int64_t xs[4] = {N, 3, 8, 8}, ys[1] = {N};
        CHECK(samples_from_arrays(X, NPY_F64, 4, xs, Y, NPY_I32, 1, ys, &src) == 0, "%s", hs_last_error());
        SampleSet set = {&src, idx, N, 5, 0};
        int rc;
        if (prec) {
            Model *lm = NULL;
            rc = model_create_f64(ORDER, 0, &lm);
            if (rc == 0) {
                lm->loss = LOSS_CROSS_ENTROPY;
                rc = curv_hvp_f64(lm, &set, v, K, CURVATURE_HESSIAN, ref, NULL);
            }
            model_free_f64(lm);
        } else {
            void *lm = NULL;
            rc = model_create_f32(ORDER, 0, &lm);
            if (rc == 0) rc = curv_hvp_f32(lm, &set, v, K, CURVATURE_HESSIAN, ref, NULL);
            model_free_f32(lm);
        }
        samples_free(&src);
        CHECK(rc == 0 && memcmp(hv, ref, sizeof(double) * K * P) == 0, "%s: hs_hvp differs from curv_hvp (%s)",
              prec ? "f64" : "f32", hs_last_error());
        /* the operator on the same samples */
        hs_operator *op = NULL;
        CHECK(hs_operator_create(m, d, &s, NULL, &op) == 0, "hs_operator_create: %s", hs_last_error());
        if (op) {
            CHECK(hs_operator_dim(op) == P, "operator dim");
            CHECK(hs_operator_apply(op, v, K, op_hv) == 0 && memcmp(op_hv, hv, sizeof(double) * K * P) == 0,
                  "operator apply differs from hs_hvp (%s)", hs_last_error());
            CHECK(hs_operator_products(op) == K, "products %lld", (long long)hs_operator_products(op));
            double loss;
            CHECK(hs_loss(m, d, &s, &loss, NULL) == 0 && fabs(hs_operator_last_loss(op) - loss) <= 1e-12 * loss,
                  "last loss %g vs %g", hs_operator_last_loss(op), loss);
        }
        hs_operator_free(op);
        if (prec) {
            /* Central differences of the gradient along v[0]: the error is h^2/6 |third derivative| (h = 1e-4:
             * ~1e-9 relative here) plus rounding eps |g| / h (~1e-12): 1e-6 relative to ||Hv|| leaves room on
             * any CPU. */
            double *theta = malloc(sizeof(double) * P), *gp = malloc(sizeof(double) * P),
                   *gm = malloc(sizeof(double) * P), *t = malloc(sizeof(double) * P);
            const double h = 1e-4;
            hs_model_get_params(m, theta);
            for (int64_t i = 0; i < P; i++) t[i] = theta[i] + h * v[i];
            int ok = hs_model_set_params(m, t) == 0 && hs_gradient(m, d, &s, gp, NULL) == 0;
            for (int64_t i = 0; i < P; i++) t[i] = theta[i] - h * v[i];
            ok = ok && hs_model_set_params(m, t) == 0 && hs_gradient(m, d, &s, gm, NULL) == 0;
            ok = ok && hs_model_set_params(m, theta) == 0;
            double err = 0, norm = 0;
            for (int64_t i = 0; i < P; i++) {
                double fd = (gp[i] - gm[i]) / (2 * h);
                err = fmax(err, fabs(fd - hv[i]));
                norm = fmax(norm, fabs(hv[i]));
            }
            CHECK(ok && norm > 0 && err <= 1e-6 * norm, "Hv vs central differences: max error %g, max |Hv| %g (%s)",
                  err, norm, hs_last_error());
            free(theta), free(gp), free(gm), free(t);
        }
        free(v), free(hv), free(ref), free(op_hv);
        hs_model_free(m);
    }
    hs_data_free(d);
}

/* Lanczos against the exact eigenvalues; Hutch++ against the exact trace of a block. */
static void test_spectral(void) {
    hs_data *d = array_data();
    hs_model *m = NULL;
    CHECK(hs_model_create(ORDER, HS_FLOAT64, 0, &m) == 0, "create: %s", hs_last_error());
    if (!m || !d) return;
    int64_t P = hs_model_num_params(m);
    double *H = malloc(sizeof(double) * P * P), *eig = malloc(sizeof(double) * P);
    CHECK(hs_exact(m, d, NULL, HS_HESSIAN, H, eig) == 0, "hs_exact: %s", hs_last_error());
    hs_operator *op = NULL;
    CHECK(hs_operator_create(m, d, NULL, NULL, &op) == 0, "operator: %s", hs_last_error());
    if (op) {
        hs_lanczos_options lo = hs_lanczos_defaults();
        CHECK(lo.k == 5 && lo.max_steps == 100 && lo.tol == 1e-6, "lanczos defaults");
        lo.k = 3;
        lo.max_steps = 400;
        lo.tol = 1e-10;
        double ev[3], res[3];
        hs_lanczos_info info;
        CHECK(hs_lanczos(op, &lo, ev, res, NULL, &info) == 0, "hs_lanczos: %s", hs_last_error());
        CHECK(info.count == 3 && info.converged, "lanczos count %d converged %d", info.count, info.converged);
        /* Ritz values converge quadratically in the residual: tol 1e-10 leaves the eigenvalues far below 1e-8. */
        for (int i = 0; i < 3; i++) CHECK_CLOSE(ev[i], eig[P - 3 + i], 1e-8, 0);
        double lambda, r;
        int steps;
        hs_power_options po = hs_power_defaults();
        CHECK(po.iters == 100 && po.tol == 1e-4, "power defaults");
        po.iters = 2000;
        po.tol = 1e-7;
        double dominant = fabs(eig[0]) > fabs(eig[P - 1]) ? eig[0] : eig[P - 1];
        CHECK(hs_power(op, &po, &lambda, &r, NULL, &steps) == 0, "hs_power: %s", hs_last_error());
        /* |lambda - lambda_true| <= residual^2 / gap roughly; 1e-5 relative is loose for tol 1e-7 */
        CHECK_CLOSE(lambda, dominant, 1e-5, 0);
        hs_density_options dopt = hs_density_defaults();
        CHECK(dopt.runs == 4 && dopt.steps == 80 && dopt.grid == 1000, "density defaults");
        dopt.grid = 64;
        dopt.steps = 20;
        double x[64], y[64], sigma;
        CHECK(hs_density(op, &dopt, x, y, &sigma) == 0 && sigma > 0, "hs_density: %s", hs_last_error());
        double integral = 0;
        for (int i = 1; i < 64; i++) integral += 0.5 * (y[i] + y[i - 1]) * (x[i] - x[i - 1]);
        CHECK(fabs(integral - 1) < 0.05, "density integrates to %g", integral);
    }
    hs_operator_free(op);
    /* The block "mm" (mm.weight, mm.bias): Hutch++ with products >= 3 x dim sketches the whole block. */
    hs_operator_options oo = {HS_HESSIAN, 0, 0, "mm"};
    op = NULL;
    CHECK(hs_operator_create(m, d, NULL, &oo, &op) == 0, "block operator: %s", hs_last_error());
    if (op) {
        int64_t n = hs_operator_dim(op);
        CHECK(n == 77, "block dim %lld", (long long)n);
        hs_tensor_info ti;
        double exact = 0;
        for (int t = 0; t < hs_model_num_tensors(m); t++)
            if (hs_model_tensor(m, t, &ti) == 0 && strncmp(ti.name, "mm.", 3) == 0)
                for (int64_t i = ti.offset; i < ti.offset + ti.numel; i++) exact += H[i * P + i];
        double tr, se;
        CHECK(hs_trace(op, HS_HUTCHPP, (int)(3 * n + 3), 5, &tr, &se) == 0, "hs_trace: %s", hs_last_error());
        CHECK_CLOSE(tr, exact, 1e-9, 1e-12);
        CHECK(hs_trace(op, HS_HUTCHINSON, 64, 5, &tr, &se) == 0 && fabs(tr - exact) < 6 * se + 1e-12,
              "Hutchinson %g +- %g vs %g", tr, se, exact);
    }
    hs_operator_free(op);
    free(H), free(eig);
    hs_model_free(m);
    hs_data_free(d);
}

static int write_labels_npy(const char *path, const int32_t *y, int n) {
    char dict[128];
    snprintf(dict, sizeof dict, "{'descr': '<i4', 'fortran_order': False, 'shape': (%d,), }", n);
    size_t dl = strlen(dict), hl = (10 + dl + 1 + 63) / 64 * 64 - 10;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xFF), (unsigned char)(hl >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(dict, 1, dl, f);
    for (size_t i = dl; i + 1 < hl; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(y, sizeof *y, (size_t)n, f);
    return fclose(f);
}

/* Arrays, callback and .npy files: the same gradient and product bits. */
static void test_sources(void) {
    hs_data *da = array_data(), *dc = NULL, *dn = NULL;
    int64_t shape[3] = {3, 8, 8};
    CHECK(hs_data_from_callback(N, 3, shape, HS_LABELS_INT32, CLASSES, 0, fill_cb, NULL, &dc) == 0, "callback: %s",
          hs_last_error());
    int64_t xs[4] = {N, 3, 8, 8};
    CHECK(npy_write_f64(temp_path("X.npy"), X, 4, xs) == 0 && write_labels_npy(temp_path("y.npy"), Y, N) == 0,
          "writing .npy");
    CHECK(hs_data_from_npy(temp_path("X.npy"), temp_path("y.npy"), &dn) == 0, "npy: %s", hs_last_error());
    hs_model *m = NULL;
    CHECK(hs_model_create(ORDER, HS_FLOAT32, 0, &m) == 0, "create: %s", hs_last_error());
    if (!da || !dc || !dn || !m) return;
    CHECK(hs_data_count(da) == N && hs_data_count(dc) == N && hs_data_count(dn) == N, "counts");
    int64_t P = hs_model_num_params(m);
    int64_t pick[5] = {7, 2, 11, 0, 5};
    hs_samples s = {pick, 0, 5, 2};
    double *g[3], *hv[3], loss[3], acc[3], *v = malloc(sizeof(double) * P);
    random_vector(v, P, 3);
    hs_data *ds[3] = {da, dc, dn};
    for (int k = 0; k < 3; k++) {
        g[k] = malloc(sizeof(double) * P);
        hv[k] = malloc(sizeof(double) * P);
        CHECK(hs_gradient(m, ds[k], &s, g[k], &loss[k]) == 0 && hs_hvp(m, ds[k], &s, HS_GGN, v, 1, hv[k]) == 0 &&
                  hs_loss(m, ds[k], &s, NULL, &acc[k]) == 0,
              "source %d: %s", k, hs_last_error());
    }
    for (int k = 1; k < 3; k++)
        CHECK(memcmp(g[0], g[k], sizeof(double) * P) == 0 && memcmp(hv[0], hv[k], sizeof(double) * P) == 0 &&
                  loss[0] == loss[k] && acc[0] == acc[k],
              "source %d differs from the arrays", k);
    CHECK(acc[0] >= 0 && acc[0] <= 1, "accuracy %g", acc[0]);
    /* a failing callback stops the computation with a message */
    hs_data *bad = NULL;
    CHECK(hs_data_from_callback(N, 3, shape, HS_LABELS_INT32, CLASSES, 0, failing_cb, NULL, &bad) == 0, "callback");
    REFUSED(hs_gradient(m, bad, &s, g[0], NULL), "callback returned 3");
    hs_data_free(bad);
    for (int k = 0; k < 3; k++) free(g[k]), free(hv[k]);
    free(v);
    hs_model_free(m);
    hs_data_free(da), hs_data_free(dc), hs_data_free(dn);
}

static void test_refusals(void) {
    hs_model *m = NULL, *other = NULL;
    hs_data *d = array_data(), *nd = NULL;
    CHECK(hs_model_create(ORDER, HS_FLOAT64, 0, &m) == 0 && hs_model_create(ATTRS, HS_FLOAT64, 0, &other) == 0,
          "create: %s", hs_last_error());
    if (!m || !other || !d) return;
    int64_t P = hs_model_num_params(m);
    double *v = calloc((size_t)P, sizeof(double)), *hv = calloc((size_t)P, sizeof(double));
    v[0] = 1;
    int64_t xs[4] = {N, 3, 8, 8}, ys[1] = {N}, ys_short[1] = {N - 1};
    X[5] = NAN;
    REFUSED(hs_data_from_arrays(X, HS_FLOAT64, 4, xs, Y, HS_LABELS_INT32, 1, ys, &nd), "NaN at sample 0");
    X[5] = 0.25;
    REFUSED(hs_data_from_arrays(X, HS_FLOAT64, 4, xs, Y, HS_LABELS_INT32, 1, ys_short, &nd), "same number of samples");
    Y[3] = -1;
    REFUSED(hs_data_from_arrays(X, HS_FLOAT64, 4, xs, Y, HS_LABELS_INT32, 1, ys, &nd), "negative");
    Y[3] = 1;
    REFUSED(hs_data_from_arrays(X, (hs_dtype)3, 4, xs, Y, HS_LABELS_INT32, 1, ys, &nd), "input_type");
    REFUSED(hs_data_from_npy("/nonexistent/X.npy", "/nonexistent/y.npy", &nd), "X.npy");
    CHECK(nd == NULL, "no data on failure");
    REFUSED(hs_hvp(other, d, NULL, HS_HESSIAN, v, 1, hv), "takes (4,9,9) per sample");
    REFUSED(hs_hvp(m, d, NULL, HS_HESSIAN, v, 0, hv), "K must be >= 1");
    REFUSED(hs_hvp(m, d, NULL, (hs_curvature)7, v, 1, hv), "curvature must be");
    REFUSED(hs_hvp(NULL, d, NULL, HS_HESSIAN, v, 1, hv), "model is NULL");
    REFUSED(hs_hvp(m, NULL, NULL, HS_HESSIAN, v, 1, hv), "data is NULL");
    int64_t bad_idx[2] = {3, N};
    hs_samples s = {bad_idx, 0, 2, 0};
    REFUSED(hs_hvp(m, d, &s, HS_HESSIAN, v, 1, hv), "outside [0, 12)");
    bad_idx[1] = 3;
    REFUSED(hs_hvp(m, d, &s, HS_HESSIAN, v, 1, hv), "appears twice");
    hs_samples off = {NULL, 10, 5, 0};
    REFUSED(hs_loss(m, d, &off, NULL, NULL), "does not fit");
    v[1] = INFINITY;
    REFUSED(hs_hvp(m, d, NULL, HS_HESSIAN, v, 1, hv), "not finite");
    v[1] = 0;
    memset(v, 0, sizeof(double) * (size_t)P);
    REFUSED(hs_model_create("nonet", HS_FLOAT64, 0, &other) == 0 ? 0 : -1, "nonet");
    other = NULL;
    REFUSED(hs_model_create("cnn", (hs_dtype)5, 0, &other), "precision");
    hs_operator *op = NULL;
    hs_operator_options oo = {HS_HESSIAN, 0, 0, "nosuch"};
    REFUSED(hs_operator_create(m, d, NULL, &oo, &op), "'nosuch' names no parameter");
    oo.params = NULL;
    oo.batch = N + 1;
    REFUSED(hs_operator_create(m, d, NULL, &oo, &op), "larger than");
    CHECK(hs_operator_create(m, d, NULL, NULL, &op) == 0, "operator: %s", hs_last_error());
    hs_lanczos_options lo = hs_lanczos_defaults();
    lo.k = 0;
    double ev[4];
    REFUSED(hs_lanczos(op, &lo, ev, NULL, NULL, NULL), "k must be >= 1");
    lo.k = 1;
    lo.which = (hs_which)9;
    REFUSED(hs_lanczos(op, &lo, ev, NULL, NULL, NULL), "which must be");
    double tr;
    REFUSED(hs_trace(op, HS_HUTCHPP, 3, 0, &tr, NULL), "probes >= 4");
    REFUSED(hs_trace(op, (hs_trace_method)4, 10, 0, &tr, NULL), "method must be");
    CHECK(hs_operator_apply(op, v, 1, hv) == 0 && hv[0] == 0 && hv[P - 1] == 0, "a zero direction: %s",
          hs_last_error());
    hs_operator_free(op);
    hs_train_options to = hs_train_defaults();
    CHECK(to.epochs == 1 && to.batch == 100 && to.lr == 0.01 && to.momentum == 0.9, "train defaults");
    REFUSED(hs_train(m, d, &to, NULL), "batch 100 is larger than the 12 training samples");
    to.batch = 4;
    to.augment = 1;
    REFUSED(hs_train(m, d, &to, NULL), "augment needs CIFAR-10");
    REFUSED(hs_set_threads(2000), "threads must be");
    REFUSED(hs_model_set_batch_stats(m, 2), "0 or 1");
    CHECK(strcmp(hs_version(), "0.2.0") == 0, "version %s", hs_version());
    free(v), free(hv);
    hs_model_free(m);
    hs_data_free(d);
}

/* hs_train against `hessian train` on .npy data with the same settings: the same parameters and buffers. */
static void test_train_matches_cli(const char *model, const char *precision, hs_dtype dtype, int batch,
                                   const char *xnpy, const char *ynpy) {
    const char *bin = getenv("HESSIAN_BIN") ? getenv("HESSIAN_BIN") : "bin/hessian";
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "test_api: %s not built; hs_train vs CLI skipped\n", bin);
        return;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s train --model %s --inputs %s --targets %s --epochs 2 --batch %d --lr 0.05 --momentum 0.9 "
             "--weight-decay 0.001 --seed 11 --precision %s --loss %s --out %s --quiet > /dev/null 2> %s",
             bin, model, temp_path(xnpy), temp_path(ynpy), batch, precision,
             strcmp(ynpy, "y2.npy") == 0 ? "mse" : "cross-entropy", temp_path("cli.safetensors"),
             temp_path("cli.log"));
    CHECK(system(cmd) == 0, "%s failed (see %s)", cmd, temp_path("cli.log"));
    hs_model *m = NULL, *cli = NULL;
    hs_data *d = NULL;
    CHECK(hs_model_create(model, dtype, 11, &m) == 0 && hs_model_create(model, dtype, 11, &cli) == 0 &&
              hs_data_from_npy(temp_path(xnpy), temp_path(ynpy), &d) == 0,
          "setup: %s", hs_last_error());
    if (!m || !cli || !d) return;
    hs_train_options o = hs_train_defaults();
    o.epochs = 2;
    o.batch = batch;
    o.lr = 0.05;
    o.weight_decay = 0.001;
    o.seed = 11;
    hs_train_info info;
    CHECK(hs_train(m, d, &o, &info) == 0, "hs_train: %s", hs_last_error());
    CHECK(info.steps == 2 * ((N + batch - 1) / batch) && isfinite(info.loss) &&
              (strcmp(ynpy, "y2.npy") == 0 ? isnan(info.accuracy) : info.accuracy >= 0),
          "train info: steps %lld loss %g acc %g", (long long)info.steps, info.loss, info.accuracy);
    CHECK(hs_model_load(cli, temp_path("cli.safetensors")) == 0, "load: %s", hs_last_error());
    /* both saved by hs_model_save: the same bytes (parameters and batch-norm buffers) */
    CHECK(hs_model_save(m, temp_path("api.safetensors")) == 0 && hs_model_save(cli, temp_path("cli2.safetensors")) == 0,
          "save: %s", hs_last_error());
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", temp_path("api.safetensors"), temp_path("cli2.safetensors"));
    CHECK(system(cmd) == 0, "%s %s: hs_train's checkpoint differs from hessian train's", model, precision);
    hs_model_free(m), hs_model_free(cli);
    hs_data_free(d);
}

int main(void) {
    if (temp_dir_create("hs_test_api") != 0) return 1;
    make_data();
    test_hvp();
    test_spectral();
    test_sources();
    test_refusals();
    test_train_matches_cli(ORDER, "f64", HS_FLOAT64, 5, "X.npy", "y.npy"); /* batch norm: whole batches */
    test_train_matches_cli(ORDER, "f32", HS_FLOAT32, 4, "X.npy", "y.npy");
    /* attrs.onnx has no batch norm: each batch is split over model replicas; targets as real values (MSE) */
    static double X2[N * 4 * 9 * 9], Y2[N * 5];
    for (int i = 0; i < N * 4 * 9 * 9; i++) X2[i] = X[i % (N * IN)] * 0.5;
    for (int i = 0; i < N * 5; i++) Y2[i] = X[7 * i] * 0.1;
    int64_t x2s[4] = {N, 4, 9, 9}, y2s[2] = {N, 5};
    CHECK(npy_write_f64(temp_path("X2.npy"), X2, 4, x2s) == 0 && npy_write_f64(temp_path("y2.npy"), Y2, 2, y2s) == 0,
          "writing .npy");
    test_train_matches_cli(ATTRS, "f32", HS_FLOAT32, 5, "X2.npy", "y2.npy");
    temp_dir_remove();
    return check_summary("test_api");
}

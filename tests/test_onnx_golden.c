/* test_onnx_golden.c: networks exported from PyTorch to ONNX (tests/golden/make_onnx_golden.py writes them and
 * their float64 goldens into tests/golden/onnx/) run through the importer and the executor, in float64 and
 * (built as test_onnx_golden_f32) float32:
 *   parameter count and names equal to the golden's parameter table (model.parameters() order);
 *   logits, loss, gradient and H v for the golden's fixed v; for the small networks every eigenvalue of the
 *   full Hessian (P products with unit directions, K at a time, then LAPACK);
 *   the train-mode variant: gradient and H v with batch statistics (bn_mode BN_BATCH), and the running
 *   statistics after one training forward pass;
 *   torchvision's ResNet-18 (float64 only; `make onnx-large` writes the 45 MB export): sampled goldens, and the
 *   same results as the built-in resnet18 table with the export's weights.
 * Tolerances. float64: logits, loss, gradient and H v 1e-10 relative (norm of the difference over the norm),
 * eigenvalues 1e-8 of the largest |eigenvalue|: PyTorch's float64 and ours differ only by rounding, measured
 * 1e-16 to 4e-13 and, with batch statistics (vgg_train: a variance of 8 samples per channel), up to 1.3e-11. float32: PyTorch's own float32 error on the same inputs (written by the
 * script as torch_f32_rel_err) times 20 plus 1e-6: two f32 computations that sum in different orders differ by a
 * few times either's error; eigenvalues are checked in float64 only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/io/json_reader.h"
#include "../src/io/npy.h"
#include "../src/models/model.h"
#include "../src/spectral/spectral.h"
#include "check.h"

#define DIR "tests/golden/onnx/"
/* written by `make onnx-large` (make_onnx_golden.py --large): resnet18.onnx (45 MB) and its inputs and v */
#define DIR_LARGE "tests/golden/onnx_large/"

/* A golden JSON file (NULL when missing or malformed, with the reason in hs_last_error()); json_free + free. */
static JsonValue *read_golden_json(const char *path) {
    JsonValue *v = malloc(sizeof *v);
    if (v && json_read_file(path, v) == 0) return v;
    free(v);
    return NULL;
}

static void free_golden_json(JsonValue *v) {
    json_free(v);
    free(v);
}

/* The number at key of the golden's top level; "grad" and "hv" (PyTorch's float32 errors) are in its
 * torch_f32_rel_err object. NAN when absent. */
static double json_number(const JsonValue *json, const char *key) {
    if (strcmp(key, "grad") == 0 || strcmp(key, "hv") == 0) json = json_get(json, "torch_f32_rel_err");
    return json_get_number(json, key, NAN);
}

static double *read_doubles(const char *name, const char *suffix, int64_t *count) {
    char path[256];
    snprintf(path, sizeof path, DIR "%s_%s.npy", name, suffix);
    NpyArray a;
    if (npy_read(path, &a) != 0) return NULL;
    if (count) *count = a.numel;
    return a.data; /* owned by the caller */
}

static double rel_diff(const double *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-300);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Every eigenvalue of the Hessian of m at the chunk of the last forward/backward pass. */
static int hessian_eigenvalues(Model *m, double *eig) {
    size_t P = m->num_params;
    enum { K = 32 };
    double *H = calloc(P * P, sizeof(double));
    real *v = calloc(K * P, sizeof(real)), *hv = calloc(K * P, sizeof(real));
    int rc = H && v && hv ? 0 : -1;
    for (size_t j0 = 0; j0 < P && rc == 0; j0 += K) {
        int k = (int)(P - j0 < K ? P - j0 : K);
        memset(v, 0, sizeof(real) * K * P);
        memset(hv, 0, sizeof(real) * K * P);
        for (int i = 0; i < k; i++) v[(size_t)i * P + j0 + (size_t)i] = 1;
        rc = FN(model_hvp_chunk)(m, v, k, 0, CURVATURE_HESSIAN, hv);
        for (int i = 0; i < k && rc == 0; i++)
            for (size_t r = 0; r < P; r++) H[(j0 + (size_t)i) * P + r] = (double)hv[(size_t)i * P + r];
    }
    for (size_t i = 0; i < P && rc == 0; i++) /* symmetrise the rounding */
        for (size_t j = i + 1; j < P; j++) H[i * P + j] = H[j * P + i] = 0.5 * (H[i * P + j] + H[j * P + i]);
    if (rc == 0) rc = eigen_symmetric_f64(H, (int64_t)P, eig, 0);
    free(H);
    free(v);
    free(hv);
    return rc;
}

static void check_network(const char *name) {
    char path[256];
    snprintf(path, sizeof path, DIR "%s.json", name);
    JsonValue *json = read_golden_json(path);
    CHECK(json != NULL, "%s: %s (run tests/golden/make_onnx_golden.py)", name, hs_last_error());
    if (!json) return;
    const char *loss_name = json_get_string(json, "loss");
    int is_mse = loss_name && strcmp(loss_name, "mse") == 0;
    int train = strstr(name, "_train") != NULL;
    snprintf(path, sizeof path, DIR "%s.onnx", name);
    Model *m = NULL;
    CHECK(FN(model_create)(path, 0, &m) == 0, "%s: %s", name, hs_last_error());
    if (!m) {
        free_golden_json(json);
        return;
    }
    size_t P = m->num_params;
    CHECK((double)P == json_number(json, "num_params"), "%s: %zu parameters, golden %g", name, P,
          json_number(json, "num_params"));
    int64_t nx = 0, ny = 0, nv = 0;
    double *x64 = read_doubles(name, "x", &nx), *v64 = read_doubles(name, "v", &nv);
    double *logits = read_doubles(name, "logits", NULL), *grad = read_doubles(name, "grad", NULL);
    double *hv_gold = read_doubles(name, "hv", NULL);
    snprintf(path, sizeof path, DIR "%s_y.npy", name);
    NpyRaw yraw = {0};
    int have_y = npy_read_raw(path, &yraw) == 0;
    CHECK(x64 && v64 && logits && grad && hv_gold && have_y && (size_t)nv == P, "%s: golden arrays: %s", name,
          hs_last_error());
    if (!(x64 && v64 && logits && grad && hv_gold && have_y && (size_t)nv == P)) goto done;
    int N = (int)yraw.shape[0];
    ny = yraw.numel;
    real *x = malloc(sizeof(real) * (size_t)nx), *v = malloc(sizeof(real) * P);
    real *g = calloc(P, sizeof(real)), *hv = calloc(P, sizeof(real));
    void *targets = NULL;
    for (int64_t i = 0; i < nx; i++) x[i] = (real)x64[i];
    for (size_t i = 0; i < P; i++) v[i] = (real)v64[i];
    if (is_mse) {
        m->loss = LOSS_MSE;
        real *t = malloc(sizeof(real) * (size_t)ny);
        for (int64_t i = 0; i < ny; i++)
            t[i] = (real)(yraw.dtype == NPY_F64 ? ((double *)yraw.data)[i] : ((float *)yraw.data)[i]);
        targets = t;
    } else {
        int32_t *t = malloc(sizeof(int32_t) * (size_t)ny);
        for (int64_t i = 0; i < ny; i++)
            t[i] = yraw.dtype == NPY_I64 ? (int32_t)((int64_t *)yraw.data)[i] : ((int32_t *)yraw.data)[i];
        targets = t;
    }
    if (train) m->bn_mode = BN_BATCH;
    double f64 = sizeof(real) == 8;
    double f32_grad = 20 * json_number(json, "grad") + 1e-6, f32_hv = 20 * json_number(json, "hv") + 1e-6;
    double tol_out = f64 ? 1e-10 : f32_grad, tol_grad = f64 ? 1e-10 : f32_grad, tol_hv = f64 ? 1e-10 : f32_hv;
    double loss;
    int correct;
    int ok = FN(model_forward)(m, x, N) == 0 && FN(model_loss)(m, targets, 1.0 / N, &loss, &correct) == 0 &&
             FN(model_backward)(m, targets, 1.0 / N, g) == 0 && FN(model_hvp_chunk)(m, v, 1, 0, CURVATURE_HESSIAN, hv) == 0;
    CHECK(ok, "%s: passes failed: %s", name, hs_last_error());
    if (ok) {
        size_t C = (size_t)m->classes;
        double *out = malloc(sizeof(double) * (size_t)N * C), *gd = malloc(sizeof(double) * P);
        double *hd = malloc(sizeof(double) * P);
        for (size_t i = 0; i < (size_t)N * C; i++) out[i] = (double)m->logits[i];
        for (size_t i = 0; i < P; i++) {
            gd[i] = (double)g[i];
            hd[i] = (double)hv[i];
        }
        double e_out = rel_diff(out, logits, (size_t)N * C), e_g = rel_diff(gd, grad, P), e_h = rel_diff(hd, hv_gold, P);
        CHECK(e_out <= tol_out, "%s: outputs differ from PyTorch by %.3g (tolerance %.3g)", name, e_out, tol_out);
        CHECK_CLOSE(loss, json_number(json, "loss_value"), tol_out, 0);
        CHECK(e_g <= tol_grad, "%s: gradient differs from PyTorch by %.3g (tolerance %.3g)", name, e_g, tol_grad);
        CHECK(e_h <= tol_hv, "%s: Hv differs from PyTorch by %.3g (tolerance %.3g)", name, e_h, tol_hv);
        printf("%s (%s): outputs %.2g, gradient %.2g, Hv %.2g relative to PyTorch float64\n", name,
               HS_PRECISION_NAME, e_out, e_g, e_h);
        int64_t ne;
        double *eig_gold = f64 ? read_doubles(name, "hessian_eigenvalues", &ne) : NULL;
        if (eig_gold && (size_t)ne == P) {
            double *eig = malloc(sizeof(double) * P), scale = 0, worst = 0;
            CHECK(hessian_eigenvalues(m, eig) == 0, "%s: eigenvalues: %s", name, hs_last_error());
            qsort(eig_gold, P, sizeof(double), cmp_double);
            for (size_t i = 0; i < P; i++) scale = fmax(scale, fabs(eig_gold[i]));
            for (size_t i = 0; i < P; i++) worst = fmax(worst, fabs(eig[i] - eig_gold[i]));
            CHECK(worst <= 1e-8 * scale, "%s: eigenvalues differ by %.3g (largest |eigenvalue| %.3g)", name, worst,
                  scale);
            printf("%s: %zu eigenvalues in [%.6g, %.6g], largest difference %.2g\n", name, P, eig[0], eig[P - 1], worst);
            free(eig);
        }
        free(eig_gold);
        if (train) { /* one training forward pass updates the running statistics as PyTorch's did */
            int64_t nr = 0;
            double *running = read_doubles(name, "running", &nr);
            m->training = 1;
            CHECK(running && (size_t)nr == m->num_buffer_values && FN(model_forward)(m, x, N) == 0,
                  "%s: running statistics golden (%lld values, model %zu)", name, (long long)nr, m->num_buffer_values);
            if (running && (size_t)nr == m->num_buffer_values) {
                double *rb = malloc(sizeof(double) * (size_t)nr);
                for (int64_t i = 0; i < nr; i++) rb[i] = (double)m->buffer_values[i];
                CHECK(rel_diff(rb, running, (size_t)nr) <= tol_grad, "%s: running statistics differ by %.3g", name,
                      rel_diff(rb, running, (size_t)nr));
                free(rb);
            }
            free(running);
        }
        free(out);
        free(gd);
        free(hd);
    }
    free(x);
    free(v);
    free(g);
    free(hv);
    free(targets);
done:
    npy_raw_free(&yraw);
    free(x64);
    free(v64);
    free(logits);
    free(grad);
    free(hv_gold);
    FN(model_free)(m);
    free_golden_json(json);
}

#ifdef HS_F64 /* the ResNet-18 check below, float64 only */
static double *read_large(const char *file, int64_t *count) {
    char path[256];
    snprintf(path, sizeof path, DIR_LARGE "%s", file);
    NpyArray a;
    if (npy_read(path, &a) != 0) return NULL;
    *count = a.numel;
    return a.data;
}

/* torchvision's ResNet-18 (10-way head) exported from PyTorch: the ONNX model against the sampled float64 goldens
 * (gradient and H v at 2000 indices, their full norms, logits, loss), and against the built-in table "resnet18"
 * given the same weights and statistics (the same network: agreement to rounding, 1e-12). float64 only (the passes
 * run on the float64 golden arrays directly), so compiled in the float64 build alone. */
static void check_resnet18(void) {
    Model *m = NULL, *b = NULL;
    CHECK(FN(model_create)(DIR_LARGE "resnet18.onnx", 0, &m) == 0 && FN(model_create)("resnet18", 0, &b) == 0,
          "resnet18: %s (run make onnx-large)", hs_last_error());
    JsonValue *json = read_golden_json(DIR "resnet18.json");
    int64_t nx = 0, nv = 0, ng = 0, nh = 0, nl = 0;
    double *x64 = read_large("resnet18_x.npy", &nx), *v64 = read_large("resnet18_v.npy", &nv);
    double *g_gold = read_doubles("resnet18", "grad", &ng), *h_gold = read_doubles("resnet18", "hv", &nh);
    double *logits = read_doubles("resnet18", "logits", &nl);
    NpyRaw iraw = {0}, yraw = {0};
    int have = npy_read_raw(DIR "resnet18_idx.npy", &iraw) == 0 && npy_read_raw(DIR_LARGE "resnet18_y.npy", &yraw) == 0;
    int ok = m && b && json && x64 && v64 && g_gold && h_gold && logits && have && iraw.dtype == NPY_I64 &&
             iraw.numel == ng && ng == nh && (size_t)nv == m->num_params;
    CHECK(ok, "resnet18: golden files (%s)", hs_last_error());
    if (ok) {
        size_t P = m->num_params;
        int N = (int)yraw.shape[0], same = b->num_params == P && b->num_tensors == m->num_tensors &&
                                              b->num_buffer_values == m->num_buffer_values;
        for (int t = 0; same && t < m->num_tensors; t++) same = strcmp(m->tensors[t].name, b->tensors[t].name) == 0;
        CHECK(same, "resnet18: the ONNX export's parameter table differs from the built-in one");
        memcpy(b->params, m->params, sizeof(real) * P);
        memcpy(b->buffer_values, m->buffer_values, sizeof(real) * m->num_buffer_values);
        double *g[2], *h[2], *z[2], loss[2];
        int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
        for (int i = 0; i < N; i++) y[i] = ((int32_t *)yraw.data)[i];
        for (int k = 0; k < 2 && same; k++) {
            Model *mk = k == 0 ? m : b;
            int correct;
            g[k] = calloc(P, sizeof(double));
            h[k] = calloc(P, sizeof(double));
            z[k] = malloc(sizeof(double) * (size_t)N * 10);
            CHECK(FN(model_forward)(mk, x64, N) == 0 && FN(model_loss)(mk, y, 1.0 / N, &loss[k], &correct) == 0 &&
                      FN(model_backward)(mk, y, 1.0 / N, g[k]) == 0 &&
                      FN(model_hvp_chunk)(mk, v64, 1, 0, CURVATURE_HESSIAN, h[k]) == 0,
                  "resnet18 passes: %s", hs_last_error());
            memcpy(z[k], mk->logits, sizeof(double) * (size_t)N * 10);
        }
        if (same) {
            CHECK(rel_diff(z[1], z[0], (size_t)N * 10) <= 1e-12 && rel_diff(g[1], g[0], P) <= 1e-12 &&
                      rel_diff(h[1], h[0], P) <= 1e-12,
                  "resnet18: built-in table and ONNX export differ: logits %.3g, gradient %.3g, Hv %.3g",
                  rel_diff(z[1], z[0], (size_t)N * 10), rel_diff(g[1], g[0], P), rel_diff(h[1], h[0], P));
            double *gs = malloc(sizeof(double) * (size_t)ng), *hs = malloc(sizeof(double) * (size_t)ng);
            double gn = 0, hn = 0;
            for (int64_t i = 0; i < ng; i++) {
                int64_t j = ((int64_t *)iraw.data)[i];
                gs[i] = j >= 0 && (size_t)j < P ? g[0][j] : NAN;
                hs[i] = j >= 0 && (size_t)j < P ? h[0][j] : NAN;
            }
            for (size_t i = 0; i < P; i++) {
                gn += g[0][i] * g[0][i];
                hn += h[0][i] * h[0][i];
            }
            double eg = rel_diff(gs, g_gold, (size_t)ng), eh = rel_diff(hs, h_gold, (size_t)ng);
            double ez = rel_diff(z[0], logits, (size_t)nl);
            CHECK(ez <= 1e-10 && eg <= 1e-10 && eh <= 1e-10,
                  "resnet18 vs PyTorch: logits %.3g, sampled gradient %.3g, sampled Hv %.3g (tolerance 1e-10)", ez, eg,
                  eh);
            CHECK_CLOSE(loss[0], json_number(json, "loss_value"), 1e-10, 0);
            CHECK_CLOSE(sqrt(gn), json_number(json, "grad_norm"), 1e-10, 0);
            CHECK_CLOSE(sqrt(hn), json_number(json, "hv_norm"), 1e-10, 0);
            printf("resnet18: logits %.2g, sampled gradient %.2g, sampled Hv %.2g relative to PyTorch float64; the "
                   "built-in table agrees to %.2g\n", ez, eg, eh, rel_diff(h[1], h[0], P));
            free(gs);
            free(hs);
            for (int k = 0; k < 2; k++) {
                free(g[k]);
                free(h[k]);
                free(z[k]);
            }
        }
        free(y);
    }
    npy_raw_free(&iraw);
    npy_raw_free(&yraw);
    free(x64);
    free(v64);
    free(g_gold);
    free(h_gold);
    free(logits);
    free_golden_json(json);
    FN(model_free)(m);
    FN(model_free)(b);
}
#endif

int main(void) {
    static const char *const names[] = {"tiny", "mlp", "lenet5", "vgg", "vgg_train", "mobilenet", "densenet", "cnn"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) check_network(names[i]);
#ifdef HS_F64
    check_resnet18();
#endif
    return check_summary(CHECK_NAME("test_onnx_golden"));
}

/* test_resnet_golden.c: ResNet-50 against PyTorch (tests/golden/resnet50_*, made by
 * `/usr/bin/python3 tests/golden/make_resnet_golden.py`; see that script for the weight formula both sides
 * use, so that no checkpoint is committed) on the first 4 training images of tests/golden/cnn_data:
 *   every parameter and buffer name and shape, in order, as torchvision's resnet50(num_classes=10);
 *   batch norm with running statistics (eval): logits and loss, the gradient and H v (v by formula) at 2,000
 *   sampled indices plus the full vectors' norms, g.v and v.Hv (on the scale |g| |v|, |Hv| |v|);
 *   training mode (batch statistics): logits, loss, gradient; running statistics and num_batches_tracked
 *   after one training-mode forward pass; H v with batch statistics (bn_mode BN_BATCH).
 * Tolerances (relative, against PyTorch's float64 values): f64 1e-8 (measured: 3e-13). f32: derived from PyTorch's
 * own float32 error on these inputs, which the golden script measures and records (*_torch_f32_rel_err_max:
 * the largest over the inputs and 8 rounding-level perturbations of them; see f32_tolerance below).
 * Thread count: the f32 gradient and H v at 1 and 3 threads are bitwise equal to those at the default count. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/curvature/curvature.h"
#include "../src/io/json_reader.h"
#include "../src/io/npy.h"
#include "check.h"
#include "model_check.h"

#define GOLDEN "tests/golden/"

/* The float32 library: tests are compiled with HS_F64, so an f32 Model's params, buffer_values and logits are
 * float arrays seen here through double pointers (cast before use). */
int model_create_f32(const char *arch, uint64_t seed, Model **out);
void model_free_f32(Model *m);
int model_forward_f32(Model *m, const float *x, int N);
int curv_loss_grad_f32(Model *m, const SampleSet *set, double *loss, double *accuracy, double *grad);
int curv_hvp_f32(Model *m, const SampleSet *set, const double *v, int K, Curvature curvature, double *hv,
                 double *loss);
int samples_fill_f32(const SampleSource *s, const int *indices, int count, float *x, void *targets);

/* ---------------------------------------------------------------- the weight formula (see the script) */

static double formula_r(uint64_t tag, uint64_t i) {
    uint64_t z = (tag << 32) | i;
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    double u = (double)(z >> 11) * (1.0 / 9007199254740992.0);
    return 2.0 * u - 1.0;
}

static int is_fc(const TensorInfo *t) { return strncmp(t->name, "fc.", 3) == 0; }
static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static double param_value(int t, const TensorInfo *ti, size_t i) {
    double r = formula_r(1 + (uint64_t)t, i);
    if (is_fc(ti)) return r / sqrt(2048.0);
    if (ti->ndim == 4) return r * sqrt(6.0 / (double)(ti->shape[0] * ti->shape[2] * ti->shape[3]));
    if (ends_with(ti->name, "bn3.weight")) return 0.1 + 0.05 * r;
    return ends_with(ti->name, ".weight") ? 0.5 + 0.25 * r : 0.1 * r;
}

static double direction_value(int t, const TensorInfo *ti, size_t i) {
    double r = formula_r(2001 + (uint64_t)t, i);
    if (is_fc(ti)) return r / sqrt(2048.0);
    if (ti->ndim == 4) return r * sqrt(2.0 / (double)(ti->shape[0] * ti->shape[2] * ti->shape[3]));
    return r * 0.1;
}

static double buffer_value(int b, const TensorInfo *ti, size_t i) {
    double r = formula_r(1001 + (uint64_t)b, i);
    return ends_with(ti->name, "running_mean") ? 0.1 * r : 1.0 + 0.5 * r;
}

/* Sets parameters and buffers by formula; f32: the arrays are float. */
static void set_weights(Model *m, int f32) {
    for (int t = 0; t < m->num_tensors; t++) {
        const TensorInfo *ti = &m->tensors[t];
        for (size_t i = 0; i < ti->numel; i++) {
            double v = param_value(t, ti, i);
            if (f32) ((float *)(void *)m->params)[ti->offset + i] = (float)v;
            else m->params[ti->offset + i] = v;
        }
    }
    for (int b = 0; b < m->num_buffers; b++) {
        const TensorInfo *ti = &m->buffers[b];
        for (size_t i = 0; i < ti->numel; i++) {
            double v = buffer_value(b, ti, i);
            if (f32) ((float *)(void *)m->buffer_values)[ti->offset + i] = (float)v;
            else m->buffer_values[ti->offset + i] = v;
        }
    }
    m->batches_tracked = 0;
}

/* ---------------------------------------------------------------- the golden file (io/json_reader.h) */

/* The number at key of the golden file's top level, NAN when absent. */
static double golden_number(const JsonValue *json, const char *key) { return json_get_number(json, key, NAN); }

/* The number at key inside the object at obj, NAN when absent. */
static double golden_member(const JsonValue *json, const char *obj, const char *key) {
    return json_get_number(json_get(json, obj), key, NAN);
}

/* The numbers of the (possibly nested) array at key, flattened: the count (at most max written), -1 when absent. */
static int golden_numbers(const JsonValue *json, const char *key, double *out, int max) {
    return json_numbers(json_get(json, key), out, max);
}

/* The i-th string of the array at key, NULL when there is none. */
static const char *golden_string(const JsonValue *json, const char *key, int i) {
    const JsonValue *s = json_at(json_get(json, key), i);
    return s && s->type == JSON_STRING ? s->string : NULL;
}

/* The float32 tolerance for quantity q ("loss", "logits", "grad", "hv") in mode tag ("eval", "train"): a
 * multiple of PyTorch's largest float32 error on the same inputs (golden JSON, *_torch_f32_rel_err_max).
 * Measured (PyTorch 1.13, 2 threads; max over the inputs and 8 perturbations of them by 2^-24 relative):
 *   eval:  loss 9.2e-8, logits 1.9e-7, gradient 1.7e-7, H v 1.9e-7: no ReLU flips matter, errors are
 *          rounding. hessian's f32 (OpenBLAS Haswell/Zen/SkylakeX kernels, native and x86-64-v2 builds)
 *          measured at most 2.4e-7, 3.1e-9, 2.5e-7, 3.5e-7: tolerance 10x PyTorch's (about 3 bits).
 *   train: loss 1.4e-6, logits 1.4e-5, gradient 4.7e-2, H v 1.4e-2. With batch statistics the gradient and
 *          H v are bimodal: 1.2e-4 and 2.3e-4..3.2e-4 when no ReLU input crosses zero, 4.7e-2 and 1.2e-2
 *          in 6 of 9 PyTorch runs where one does (a ReLU input within float32 rounding of zero; hessian
 *          showed the same, 4.8e-3, with OpenBLAS's thread-dependent Haswell sgemm before FN(gemm) was made
 *          thread-independent). hessian measured at most 1.2e-4 (gradient) and 1.0e-4 (H v) with every
 *          kernel and build: tolerance 3x PyTorch's, which admits a flipped ReLU and no more. The f64
 *          checks (1e-8) are what pin the train-mode formulas down. */
static double f32_tolerance(const JsonValue *json, const char *tag, const char *q) {
    char key[64];
    snprintf(key, sizeof key, "%s_torch_f32_rel_err_max", tag);
    double measured = golden_member(json, key, q);
    CHECK(measured > 0 && measured < 0.1, "golden %s.%s: PyTorch's f32 error %g missing or implausible", key, q,
          measured);
    return (strcmp(tag, "eval") == 0 ? 10 : 3) * measured;
}

/* ---------------------------------------------------------------- comparisons */

static double rel_vec(const double *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-300);
}
static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-300); }
static double norm(const double *a, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * a[i];
    return sqrt(s);
}

static double worst[2]; /* largest relative error seen, f64 and f32 */
static void expect(int f32, const char *what, double err, double tol) {
    CHECK(err <= tol && err == err, "%s %s: relative error %.3g > %g", f32 ? "f32" : "f64", what, err, tol);
    if (err > worst[f32]) worst[f32] = err;
    printf("  %-3s %-48s %.2e\n", f32 ? "f32" : "f64", what, err);
}

typedef struct {
    const JsonValue *json;
    NpyArray idx, buf_idx, eval_grad, eval_hv, train_grad, train_hv, running;
} Golden;

/* Compares a full vector (P) with the golden subset, its norm and its dot product with v. */
static void compare_vector(int f32, const char *name, const double *x, const double *v, size_t P, const Golden *gd,
                           const NpyArray *sub, const char *norm_key, const char *dot_key, double tol) {
    CHECK(sub->numel == gd->idx.numel && gd->idx.numel > 0, "%s: %lld golden values for %lld indices", name,
          (long long)sub->numel, (long long)gd->idx.numel);
    double *pick = malloc(sizeof(double) * (size_t)gd->idx.numel);
    for (int64_t i = 0; i < gd->idx.numel; i++) pick[i] = x[(size_t)gd->idx.data[i]];
    char what[96];
    snprintf(what, sizeof what, "%s at 2,000 indices", name);
    expect(f32, what, sub->numel == gd->idx.numel ? rel_vec(pick, sub->data, (size_t)sub->numel) : NAN, tol);
    snprintf(what, sizeof what, "%s norm", name);
    expect(f32, what, rel(norm(x, P), golden_number(gd->json, norm_key)), tol);
    /* x.v is compared on the scale |x| |v| (a dot product of nearly orthogonal vectors has no relative
     * accuracy of its own) */
    snprintf(what, sizeof what, "%s . v (relative to |%s| |v|)", name, name);
    expect(f32, what, fabs(dot(x, v, P) - golden_number(gd->json, dot_key)) / (golden_number(gd->json, norm_key) * norm(v, P)),
           tol);
    free(pick);
}

/* The f32 gradient and H v just computed (g, hv, at the default thread count) are recomputed at 1 and 3
 * threads: every reduction's order is fixed by the shapes alone, so the bits agree. batch: the gradient with
 * batch statistics in training mode and H v with batch statistics (as run() computes them); else eval mode. */
static void same_bits_at_other_thread_counts(Model *m, const SampleSet *set, const double *v, const double *g,
                                             const double *hv, int batch, const char *tag) {
    size_t P = m->num_params;
    int threads = omp_get_max_threads(), counts[2] = {1, 3};
    double *g2 = malloc(sizeof(double) * P), *hv2 = malloc(sizeof(double) * P);
    for (int i = 0; i < 2; i++) {
        omp_set_num_threads(counts[i]);
        m->training = batch;
        m->bn_mode = BN_EVAL;
        int rc = curv_loss_grad_f32(m, set, NULL, NULL, g2);
        m->training = 0;
        m->bn_mode = batch ? BN_BATCH : BN_EVAL;
        if (rc == 0) rc = curv_hvp_f32(m, set, v, 1, CURVATURE_HESSIAN, hv2, NULL);
        CHECK(rc == 0, "%s at %d threads: %s", tag, counts[i], hs_last_error());
        CHECK(rc != 0 || memcmp(g, g2, sizeof(double) * P) == 0, "f32 %s gradient at %d threads differs from %d threads",
              tag, counts[i], threads);
        CHECK(rc != 0 || memcmp(hv, hv2, sizeof(double) * P) == 0, "f32 %s H v at %d threads differs from %d threads",
              tag, counts[i], threads);
    }
    omp_set_num_threads(threads);
    printf("  f32 %s gradient and H v at 1 and 3 threads: the same bits as at %d\n", tag, threads);
    free(g2), free(hv2);
}

static void run(int f32, const Golden *gd, const SampleSource *data) {
    Model *m = NULL;
    int rc = f32 ? model_create_f32("resnet50", 0, &m) : model_create_f64("resnet50", 0, &m);
    CHECK(rc == 0, "create: %s", hs_last_error());
    if (!m) return;
    size_t P = m->num_params;
    /* names and shapes, in order */
    if (!f32) {
        CHECK(P == (size_t)golden_number(gd->json, "num_params"), "parameter count %zu", P);
        int bad = 0;
        static double shapes[1024];
        int ns = golden_numbers(gd->json, "param_shapes", shapes, 1024), k = 0;
        for (int t = 0; t < m->num_tensors; t++) {
            const char *name = golden_string(gd->json, "param_names", t);
            if (!name || strcmp(name, m->tensors[t].name)) {
                if (bad++ < 5) printf("parameter %d: '%s', PyTorch '%s'\n", t, m->tensors[t].name, name ? name : "(none)");
            }
            for (int d = 0; d < m->tensors[t].ndim; d++, k++)
                if (k >= ns || shapes[k] != (double)m->tensors[t].shape[d]) bad++;
        }
        CHECK(bad == 0 && k == ns && golden_string(gd->json, "param_names", m->num_tensors) == NULL,
              "parameter names/shapes differ from torchvision's resnet50 (%d mismatches)", bad);
        bad = 0;
        for (int b = 0; b < m->num_buffers; b++) {
            const char *name = golden_string(gd->json, "buffer_names", b);
            if (!name || strcmp(name, m->buffers[b].name))
                bad++;
        }
        CHECK(bad == 0 && golden_string(gd->json, "buffer_names", m->num_buffers) == NULL,
              "buffer names differ from torchvision's resnet50 (%d mismatches)", bad);
    }
    set_weights(m, f32);
    double *v = malloc(sizeof(double) * P), *g = malloc(sizeof(double) * P), *hv = malloc(sizeof(double) * P);
    for (int t = 0; t < m->num_tensors; t++)
        for (size_t i = 0; i < m->tensors[t].numel; i++) v[m->tensors[t].offset + i] = direction_value(t, &m->tensors[t], i);
    int idx[4] = {0, 1, 2, 3};
    SampleSet set = {data, idx, 4, 4, 0};
    double loss, ref_logits[40], got_logits[40];
    CHECK(golden_numbers(gd->json, "eval_logits", ref_logits, 40) == 40, "golden eval logits");

    for (int mode = 0; mode < 2; mode++) { /* 0: running statistics, 1: batch statistics */
        const char *tag = mode ? "train" : "eval";
        printf("%s, batch norm %s:\n", f32 ? "float32" : "float64", mode ? "with batch statistics" : "in eval mode");
        char key[64], what[96];
        double tol_loss = f32 ? f32_tolerance(gd->json, tag, "loss") : 1e-8;
        double tol_logits = f32 ? f32_tolerance(gd->json, tag, "logits") : 1e-8;
        double tol_grad = f32 ? f32_tolerance(gd->json, tag, "grad") : 1e-8;
        double tol_hv = f32 ? f32_tolerance(gd->json, tag, "hv") : 1e-8;
        m->training = mode;
        m->bn_mode = BN_EVAL;
        rc = f32 ? curv_loss_grad_f32(m, &set, &loss, NULL, g) : curv_loss_grad_f64(m, &set, &loss, NULL, g);
        CHECK(rc == 0, "%s grad: %s", tag, hs_last_error());
        for (int i = 0; i < 40; i++) got_logits[i] = f32 ? (double)((float *)(void *)m->logits)[i] : m->logits[i];
        snprintf(key, sizeof key, "%s_logits", tag);
        CHECK(golden_numbers(gd->json, key, ref_logits, 40) == 40, "golden %s", key);
        snprintf(what, sizeof what, "%s logits", tag);
        expect(f32, what, rel_vec(got_logits, ref_logits, 40), tol_logits);
        snprintf(key, sizeof key, "%s_loss", tag);
        snprintf(what, sizeof what, "%s loss", tag);
        expect(f32, what, rel(loss, golden_number(gd->json, key)), tol_loss);
        char nk[64], dk[64];
        snprintf(nk, sizeof nk, "%s_grad_norm", tag);
        snprintf(dk, sizeof dk, "%s_g_dot_v", tag);
        snprintf(what, sizeof what, "%s gradient", tag);
        compare_vector(f32, what, g, v, P, gd, mode ? &gd->train_grad : &gd->eval_grad, nk, dk, tol_grad);
        if (mode) {
            /* running statistics after this one training-mode forward pass */
            CHECK(m->batches_tracked == 1, "num_batches_tracked = %lld after one training forward",
                  (long long)m->batches_tracked);
            size_t nmean = 0;
            for (int b = 0; b < m->num_buffers; b++)
                if (m->buffers[b].kind == TENSOR_RUNNING_MEAN) nmean += m->buffers[b].numel;
            double *rm = malloc(sizeof(double) * nmean), *rv = malloc(sizeof(double) * nmean);
            size_t km = 0, kv = 0;
            for (int b = 0; b < m->num_buffers; b++) {
                const TensorInfo *ti = &m->buffers[b];
                for (size_t i = 0; i < ti->numel; i++) {
                    double x = f32 ? (double)((float *)(void *)m->buffer_values)[ti->offset + i]
                                   : m->buffer_values[ti->offset + i];
                    if (ti->kind == TENSOR_RUNNING_MEAN) rm[km++] = x;
                    else rv[kv++] = x;
                }
            }
            int64_t nb = gd->buf_idx.numel;
            CHECK(nb > 0 && gd->running.numel == 2 * nb, "%lld golden running statistics for %lld indices",
                  (long long)gd->running.numel, (long long)nb);
            double *pick = malloc(sizeof(double) * 2 * (size_t)nb);
            for (int64_t i = 0; i < nb; i++) {
                pick[i] = rm[(size_t)gd->buf_idx.data[i]];
                pick[nb + i] = rv[(size_t)gd->buf_idx.data[i]];
            }
            /* running statistics come from the forward pass, as the logits do */
            int sized = gd->running.numel == 2 * nb;
            expect(f32, "running_mean after one step", sized ? rel_vec(pick, gd->running.data, (size_t)nb) : NAN,
                   tol_logits);
            expect(f32, "running_var after one step",
                   sized ? rel_vec(pick + nb, gd->running.data + nb, (size_t)nb) : NAN, tol_logits);
            free(rm), free(rv), free(pick);
            m->training = 0;
            m->bn_mode = BN_BATCH;
        }
        rc = f32 ? curv_hvp_f32(m, &set, v, 1, CURVATURE_HESSIAN, hv, NULL)
                 : curv_hvp_f64(m, &set, v, 1, CURVATURE_HESSIAN, hv, NULL);
        CHECK(rc == 0, "%s hvp: %s", tag, hs_last_error());
        snprintf(nk, sizeof nk, "%s_hv_norm", tag);
        snprintf(dk, sizeof dk, "%s_v_hv", tag);
        snprintf(what, sizeof what, "%s H v", tag);
        compare_vector(f32, what, hv, v, P, gd, mode ? &gd->train_hv : &gd->eval_hv, nk, dk, tol_hv);
        if (f32) same_bits_at_other_thread_counts(m, &set, v, g, hv, mode, tag);
        m->bn_mode = BN_EVAL;
    }
    free(v), free(g), free(hv);
    if (f32) model_free_f32(m);
    else model_free_f64(m);
}

int main(void) {
    double t0 = hs_seconds();
    Golden gd = {0};
    JsonValue json;
    int have_json = json_read_file(GOLDEN "resnet50_golden.json", &json) == 0;
    gd.json = &json;
    int ok = have_json && npy_read(GOLDEN "resnet50_idx.npy", &gd.idx) == 0 &&
             npy_read(GOLDEN "resnet50_buf_idx.npy", &gd.buf_idx) == 0 &&
             npy_read(GOLDEN "resnet50_eval_grad.npy", &gd.eval_grad) == 0 &&
             npy_read(GOLDEN "resnet50_eval_hv.npy", &gd.eval_hv) == 0 &&
             npy_read(GOLDEN "resnet50_train_grad.npy", &gd.train_grad) == 0 &&
             npy_read(GOLDEN "resnet50_train_hv.npy", &gd.train_hv) == 0 &&
             npy_read(GOLDEN "resnet50_train_running.npy", &gd.running) == 0;
    CHECK(ok, "golden files (tests/golden/resnet50_*; run from the repository root): %s",
          hs_last_error());
    Cifar10 data;
    if (ok && cifar10_load(GOLDEN "cnn_data", CIFAR10_TRAIN, &data) != 0) {
        CHECK(0, "golden data: %s", hs_last_error());
        ok = 0;
    }
    if (ok) {
        double labels[4];
        CHECK(golden_numbers(&json, "labels", labels, 4) == 4, "golden labels");
        for (int i = 0; i < 4; i++) CHECK(labels[i] == data.labels[i], "image %d: label %d, PyTorch %g", i, data.labels[i], labels[i]);
        SampleSource src;
        CHECK(samples_wrap_cifar10(&data, "golden", &src) == 0, "source: %s", hs_last_error());
        run(0, &gd, &src);
        run(1, &gd, &src);
        samples_free(&src);
        printf("test_resnet_golden: largest relative error f64 %.2e, f32 %.2e\n", worst[0], worst[1]);
        cifar10_free(&data);
    }
    NpyArray *arrays[] = {&gd.idx, &gd.buf_idx, &gd.eval_grad, &gd.eval_hv, &gd.train_grad, &gd.train_hv, &gd.running};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) npy_free(arrays[i]);
    json_free(&json);
    printf("test_resnet_golden: %.1f s\n", hs_seconds() - t0);
    return check_summary("test_resnet_golden");
}

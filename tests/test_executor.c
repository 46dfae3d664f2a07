/* test_executor.c: the one executor (src/models/executor.c) in float64.
 *   The built-in tables (graph_builtin "cnn", "resnet18") run by the executor agree with the hand-written
 *   passes (cnn.c, resnet.c): same tensor table and initial values; logits, loss, gradient, Hessian- and
 *   Gauss-Newton-vector products for K = 2 directions, products whose directions touch only the last layer
 *   (start_layer pruning), batch norm with batch statistics and in training mode (running statistics). Both
 *   compute the same sums in different association orders (ReLU before or after max-pool, the ResNet's grouped
 *   convolution), so they agree to rounding: relative error <= 1e-11 (measured: about 1e-15).
 *   A small graph where one value feeds two nodes (a ReLU and a Linear, joined again by an Add): gradient against
 *   central differences of the loss and H v against central differences of the gradient (relative error
 *   <= 1e-6: the differences' truncation error at eps = 1e-5 is about 1e-9, rounding about 1e-10). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/rng.h"
#include "../src/graph/graph.h"
#include "../src/models/model.h"
#include "check.h"
#include "model_check.h"

#define AGREE 1e-11

typedef struct {
    double loss;
    double *logits, *grad, *hv, *ggn, *hv_late;
} Results;

static void random_images(double *x, size_t n, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&rng);
}

/* Loss, gradient and products of model m on (x, y) for directions v (2, P) and v_late (2, P) (nonzero only in
 * the last layer, with start_layer = that layer). */
static Results run_model(Model *m, const double *x, const int32_t *y, int N, const double *v, const double *v_late) {
    size_t P = m->num_params;
    Results r = {0, calloc((size_t)N * 10, sizeof(double)), calloc(P, sizeof(double)), calloc(2 * P, sizeof(double)),
                 calloc(2 * P, sizeof(double)), calloc(2 * P, sizeof(double))};
    int correct;
    int late = m->tensors[m->num_tensors - 1].layer;
    int ok = model_forward_f64(m, x, N) == 0 && model_loss_f64(m, y, 1.0 / N, &r.loss, &correct) == 0 &&
             model_backward_f64(m, y, 1.0 / N, r.grad) == 0 &&
             model_hvp_chunk_f64(m, v, 2, 0, CURVATURE_HESSIAN, r.hv) == 0 &&
             model_hvp_chunk_f64(m, v, 2, 0, CURVATURE_GGN, r.ggn) == 0 &&
             model_hvp_chunk_f64(m, v_late, 2, late, CURVATURE_HESSIAN, r.hv_late) == 0;
    CHECK(ok, "%s: passes failed: %s", m->arch->name, hs_last_error());
    memcpy(r.logits, m->logits, sizeof(double) * (size_t)N * 10);
    return r;
}

static void free_results(Results *r) {
    free(r->logits);
    free(r->grad);
    free(r->hv);
    free(r->ggn);
    free(r->hv_late);
}

/* Hand-written passes against the table of the same network. */
static void test_builtin(const char *name, int N, BatchNormMode bn_mode) {
    Model *hand = NULL, *table = NULL;
    Graph *g = malloc(sizeof *g);
    CHECK(model_create_f64(name, 7, &hand) == 0, "%s: %s", name, hs_last_error());
    CHECK(graph_builtin(g, name) == 0, "graph_builtin %s: %s", name, hs_last_error());
    CHECK(model_create_graph_f64(g, 7, &table) == 0, "%s table: %s", name, hs_last_error());
    if (!hand || !table) return;
    size_t P = hand->num_params;
    CHECK(table->num_params == P && table->num_tensors == hand->num_tensors &&
              table->num_buffers == hand->num_buffers,
          "%s: table has %zu parameters in %d tensors, %d buffers; hand-written %zu, %d, %d", name,
          table->num_params, table->num_tensors, table->num_buffers, P, hand->num_tensors, hand->num_buffers);
    if (table->num_params != P || table->num_tensors != hand->num_tensors) return;
    /* Layers: the executor numbers each node with parameters (a ResNet's conv and its batch norm are two), so
     * only their order is compared. */
    int same_table = 1;
    for (int t = 0; t < hand->num_tensors; t++)
        if (strcmp(hand->tensors[t].name, table->tensors[t].name) != 0 ||
            hand->tensors[t].offset != table->tensors[t].offset ||
            (t > 0 && table->tensors[t].layer < table->tensors[t - 1].layer))
            same_table = 0;
    CHECK(same_table, "%s: tensor names, offsets or layer order differ", name);
    CHECK(memcmp(hand->params, table->params, sizeof(double) * P) == 0, "%s: initial values differ", name);
    hand->bn_mode = table->bn_mode = bn_mode;

    double *x = malloc(sizeof(double) * (size_t)N * 3072), *v = calloc(2 * P, sizeof(double));
    double *v_late = calloc(2 * P, sizeof(double));
    int32_t y[8];
    random_images(x, (size_t)N * 3072, 11);
    for (int i = 0; i < N; i++) y[i] = (int32_t)((i * 7 + 3) % 10);
    random_vector(v, 2 * P, 12);
    const TensorInfo *fc_w = &hand->tensors[hand->num_tensors - 2];
    for (int k = 0; k < 2; k++)
        for (size_t j = fc_w->offset; j < P; j++) v_late[(size_t)k * P + j] = v[(size_t)k * P + j];

    Results a = run_model(hand, x, y, N, v, v_late), b = run_model(table, x, y, N, v, v_late);
    const char *mode = bn_mode == BN_BATCH ? "batch statistics" : "running statistics";
    CHECK(rel_error(b.logits, a.logits, (size_t)N * 10) <= AGREE, "%s (%s): logits differ by %.3g", name, mode,
          rel_error(b.logits, a.logits, (size_t)N * 10));
    CHECK_CLOSE(b.loss, a.loss, AGREE, 0);
    CHECK(rel_error(b.grad, a.grad, P) <= AGREE, "%s (%s): gradients differ by %.3g", name, mode,
          rel_error(b.grad, a.grad, P));
    CHECK(rel_error(b.hv, a.hv, 2 * P) <= AGREE, "%s (%s): Hv differ by %.3g", name, mode,
          rel_error(b.hv, a.hv, 2 * P));
    CHECK(rel_error(b.ggn, a.ggn, 2 * P) <= AGREE, "%s (%s): GGN products differ by %.3g", name, mode,
          rel_error(b.ggn, a.ggn, 2 * P));
    /* Rows below the start layer are not wanted (either engine may leave partial sums there). */
    double *la = a.hv_late, *lb = b.hv_late;
    double err = 0, den = 0;
    for (int k = 0; k < 2; k++)
        for (size_t j = fc_w->offset; j < P; j++) {
            double d = la[(size_t)k * P + j] - lb[(size_t)k * P + j];
            err += d * d;
            den += la[(size_t)k * P + j] * la[(size_t)k * P + j];
        }
    CHECK(sqrt(err) <= AGREE * sqrt(den) && den > 0, "%s (%s): last-layer products differ by %.3g", name, mode,
          sqrt(err / den));

    /* Training mode: batch statistics, running statistics and num_batches_tracked updated alike. */
    if (hand->num_buffers) {
        hand->training = table->training = 1;
        CHECK(model_forward_f64(hand, x, N) == 0 && model_forward_f64(table, x, N) == 0, "%s: training forward", name);
        CHECK(rel_error(table->buffer_values, hand->buffer_values, hand->num_buffer_values) <= AGREE &&
                  table->batches_tracked == hand->batches_tracked,
              "%s: running statistics differ after a training step", name);
        CHECK(rel_error(table->logits, hand->logits, (size_t)N * 10) <= AGREE, "%s: training logits differ", name);
    }
    free_results(&a);
    free_results(&b);
    free(x);
    free(v);
    free(v_late);
    model_free_f64(hand);
    model_free_f64(table);
}

/* x (6) -> u = Linear(6,8) -> { relu(u), Linear(8,8)(u) } -> Add -> ReLU -> Linear(8,3): u feeds two nodes. */
static Graph *branching_graph(void) {
    Graph *g = malloc(sizeof *g);
    graph_init(g, "branching", 1, (int64_t[]){6});
    int u = graph_linear(g, "a", GRAPH_INPUT, 8, 1);
    int r = graph_unary(g, GOP_RELU, u);
    int l = graph_linear(g, "b", u, 8, 1);
    int s = graph_add(g, r, l);
    int h = graph_unary(g, GOP_RELU, s);
    int o = graph_linear(g, "c", h, 3, 1);
    CHECK(o >= 0, "branching graph: %s", hs_last_error());
    return g;
}

static double loss_at(Model *m, const double *x, const int32_t *y, int N) {
    double loss = NAN;
    int correct;
    if (model_forward_f64(m, x, N) != 0 || model_loss_f64(m, y, 1.0 / N, &loss, &correct) != 0) return NAN;
    return loss;
}

static void test_branching(void) {
    Model *m = NULL;
    CHECK(model_create_graph_f64(branching_graph(), 3, &m) == 0, "branching model: %s", hs_last_error());
    if (!m) return;
    enum { N = 5 };
    size_t P = m->num_params;
    double x[N * 6], *grad = calloc(P, sizeof(double)), *gp = calloc(P, sizeof(double));
    double *gm = calloc(P, sizeof(double)), *v = malloc(sizeof(double) * P), *hv = calloc(P, sizeof(double));
    double *fd = malloc(sizeof(double) * P), *theta = malloc(sizeof(double) * P);
    int32_t y[N] = {0, 2, 1, 1, 0};
    random_images(x, N * 6, 5);
    random_vector(v, P, 6);
    memcpy(theta, m->params, sizeof(double) * P);
    double loss;
    int correct;
    CHECK(model_forward_f64(m, x, N) == 0 && model_loss_f64(m, y, 1.0 / N, &loss, &correct) == 0 &&
              model_backward_f64(m, y, 1.0 / N, grad) == 0 && model_hvp_chunk_f64(m, v, 1, 0, CURVATURE_HESSIAN, hv) == 0,
          "branching passes: %s", hs_last_error());
    const double eps = 1e-5;
    double max_err = 0;
    for (size_t i = 0; i < P; i++) { /* dL/dtheta_i by central differences */
        m->params[i] = theta[i] + eps;
        double lp = loss_at(m, x, y, N);
        m->params[i] = theta[i] - eps;
        double lm = loss_at(m, x, y, N);
        m->params[i] = theta[i];
        double e = fabs((lp - lm) / (2 * eps) - grad[i]);
        if (e > max_err) max_err = e;
    }
    CHECK(max_err <= 1e-6, "branching: gradient differs from central differences by %.3g", max_err);
    for (int sign = -1; sign <= 1; sign += 2) {
        for (size_t i = 0; i < P; i++) m->params[i] = theta[i] + sign * eps * v[i];
        double *g = sign > 0 ? gp : gm, l;
        CHECK(model_forward_f64(m, x, N) == 0 && model_loss_f64(m, y, 1.0 / N, &l, &correct) == 0 &&
                  model_backward_f64(m, y, 1.0 / N, g) == 0,
              "branching gradient");
    }
    memcpy(m->params, theta, sizeof(double) * P);
    for (size_t i = 0; i < P; i++) fd[i] = (gp[i] - gm[i]) / (2 * eps);
    CHECK(rel_error(hv, fd, P) <= 1e-6, "branching: Hv differs from differences of gradients by %.3g",
          rel_error(hv, fd, P));
    free(grad);
    free(gp);
    free(gm);
    free(v);
    free(hv);
    free(fd);
    free(theta);
    model_free_f64(m);
}

int main(void) {
    test_builtin("cnn", 4, BN_EVAL);
    test_builtin("resnet18", 2, BN_EVAL);
    test_builtin("resnet18", 4, BN_BATCH);
    test_branching();
    return check_summary("test_executor");
}

/* test_executor.c: the one executor (src/models/executor.c) in float64 on what the built-in networks do not
 * exercise (they are checked in test_model.c, test_resnet.c and against PyTorch in test_golden.c and
 * test_resnet_golden.c; every ONNX operator in test_onnx_golden.c):
 *   a small graph where one value feeds two nodes (a ReLU and a Linear, joined again by an Add): gradient against
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

static void random_inputs(double *x, size_t n, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&rng);
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
    random_inputs(x, N * 6, 5);
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
    test_branching();
    return check_summary("test_executor");
}

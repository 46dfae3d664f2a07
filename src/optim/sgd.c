/* sgd.c: SGD with momentum and weight decay, PyTorch semantics (see sgd.h). */
#include "sgd.h"

void FN(sgd_step)(Sgd *opt, real *params, const real *grad, real *buf, size_t P) {
    real lr = (real)opt->lr, mu = (real)opt->momentum, wd = (real)opt->weight_decay;
    int first = !opt->started;
#pragma omp parallel for schedule(static) if (P > 100000)
    for (size_t i = 0; i < P; i++) {
        real g = grad[i] + wd * params[i];
        real b = (first || mu == 0) ? g : mu * buf[i] + g;
        buf[i] = b;
        params[i] -= lr * b;
    }
    opt->started = 1;
}

/* sgd.h: stochastic gradient descent with PyTorch's semantics (torch.optim.SGD, dampening 0, no Nesterov):
 *   g = grad + wd * theta;  buf = first step ? g : mu * buf + g;  theta -= lr * buf */
#ifndef HS_SGD_H
#define HS_SGD_H

#include <stddef.h>

#include "../core/common.h"

typedef struct {
    double lr, momentum, weight_decay;
    int started; /* 0 until the first step (then buf = g) */
} Sgd;

void FN(sgd_step)(Sgd *opt, real *params /* (P) */, const real *grad /* (P) */, real *momentum_buf /* (P) */, size_t P);

#endif

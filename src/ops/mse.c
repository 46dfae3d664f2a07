/* mse.c: the squared-error loss on a network's outputs, loss = scale * sum_n sum_j (z_nj - y_nj)^2, and its
 * passes (see ops.h):
 *   d_z  = 2 scale (z - y)
 *   td_z = 2 scale t_z                  (the loss's own Hessian is 2 scale I; the same for the Gauss-Newton
 *                                        matrix, so the pass has no d_out)
 * With scale = 1/N this is PyTorch's MSELoss(reduction='mean') times C, the output width (PyTorch averages
 * over all N*C entries). The loss is summed in double in a fixed order (the same bits for any thread count). */
#include "ops.h"

void FN(mse_forward)(double *loss, const real *z, const real *y, double scale, int N, int C) {
    double total = 0;
    for (size_t i = 0; i < (size_t)N * (size_t)C; i++) {
        double d = (double)z[i] - (double)y[i];
        total += d * d;
    }
    *loss = scale * total;
}

void FN(mse_backward)(real *d_z, const real *z, const real *y, double scale, int N, int C) {
    for (size_t i = 0; i < (size_t)N * (size_t)C; i++) d_z[i] = (real)(2 * scale * ((double)z[i] - (double)y[i]));
}

void FN(mse_tangent_backward)(real *td_z, const real *t_z, double scale, int K, int N, int C) {
    size_t n = (size_t)N * (size_t)K * (size_t)C;
#pragma omp parallel for schedule(static) if (n > 100000)
    for (size_t i = 0; i < n; i++) td_z[i] = (real)(2 * scale * (double)t_z[i]);
}

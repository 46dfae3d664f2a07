/* relu.c: out = max(in, 0) and its four passes (see ops.h). The derivative mask is out > 0 (PyTorch's
 * threshold_backward); ReLU is piecewise linear, so tangents follow the same mask and it adds no
 * second-order term of its own. */
#include "ops.h"

void FN(relu_forward)(real *out, const real *in, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = in[i] <= 0 ? 0 : in[i]; /* NaN stays NaN, as in PyTorch */
}

void FN(relu_backward)(real *d_in, const real *d_out, const real *out, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) d_in[i] = out[i] > 0 ? d_out[i] : 0;
}

void FN(relu_tangent_forward)(real *t_out, const real *t_in, const real *out, int K, int N, size_t m) {
#pragma omp parallel for schedule(static) collapse(2) if ((size_t)K * N * m > 65536)
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            const real *mask = out + (size_t)n * m;
            size_t base = ((size_t)n * K + k) * m;
            for (size_t i = 0; i < m; i++) t_out[base + i] = mask[i] > 0 ? t_in[base + i] : 0;
        }
}

void FN(relu_tangent_backward)(real *td_in, const real *td_out, const real *out, int K, int N, size_t m) {
    FN(relu_tangent_forward)(td_in, td_out, out, K, N, m);
}

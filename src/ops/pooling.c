/* pooling.c: global average pooling (N,C,H,W) -> (N,C), the ResNet head, and its four passes (see ops.h).
 * It is linear, so the tangent forward pass is the forward pass on the N*K tangent samples, the tangent
 * backward pass is the backward pass on them, and there is no second-order term. */
#include "ops.h"

static void FN(plane_means)(real *out, const real *in, long planes, int HW) {
#pragma omp parallel for schedule(static) if (planes * HW > 65536)
    for (long p = 0; p < planes; p++) {
        const real *x = in + (size_t)p * HW;
        double sum = 0;
        for (int i = 0; i < HW; i++) sum += (double)x[i];
        out[p] = (real)(sum / HW);
    }
}

static void FN(plane_spread)(real *d_in, const real *d_out, long planes, int HW) {
#pragma omp parallel for schedule(static) if (planes * HW > 65536)
    for (long p = 0; p < planes; p++) {
        real v = (real)((double)d_out[p] / HW);
        real *dx = d_in + (size_t)p * HW;
        for (int i = 0; i < HW; i++) dx[i] = v;
    }
}

void FN(avgpool_forward)(real *out, const real *in, int N, int C, int HW) {
    FN(plane_means)(out, in, (long)N * C, HW);
}

void FN(avgpool_backward)(real *d_in, const real *d_out, int N, int C, int HW) {
    FN(plane_spread)(d_in, d_out, (long)N * C, HW);
}

void FN(avgpool_tangent_forward)(real *t_out, const real *t_in, int K, int N, int C, int HW) {
    FN(plane_means)(t_out, t_in, (long)N * K * C, HW);
}

void FN(avgpool_tangent_backward)(real *td_in, const real *td_out, int K, int N, int C, int HW) {
    FN(plane_spread)(td_in, td_out, (long)N * K * C, HW);
}

/* pooling.c: average pooling and its four passes (see ops.h): global (N,C,H,W) -> (N,C), the ResNet head, and
 * over the kh x kw windows of a PoolShape (ONNX AveragePool, PyTorch avg_pool2d). Both are linear, so the tangent
 * forward pass is the forward pass on the N*K tangent samples, the tangent backward pass is the backward pass on
 * them, and there is no second-order term. Each plane is summed in a fixed order (in double for the forward
 * passes), so results do not depend on the thread count. */
#include <string.h>

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

/* ---- windows of a PoolShape ---- */

/* The input cells [h0, h1) x [w0, w1) of output (oh, ow) and its divisor (PyTorch's avg_pool2d): the window
 * clipped to the padded input when count_include_pad, else the number of input cells (0: no cell). */
static inline double window(const PoolShape *s, int oh, int ow, int *h0, int *h1, int *w0, int *w1) {
    int hs = oh * s->stride_h - s->pad_t, ws = ow * s->stride_w - s->pad_l;
    int he = hs + s->kh, we = ws + s->kw;
    if (he > s->H + s->pad_b) he = s->H + s->pad_b;
    if (we > s->W + s->pad_r) we = s->W + s->pad_r;
    int padded_cells = (he - hs) * (we - ws);
    *h0 = hs > 0 ? hs : 0, *w0 = ws > 0 ? ws : 0;
    *h1 = he < s->H ? he : s->H, *w1 = we < s->W ? we : s->W;
    if (*h1 < *h0) *h1 = *h0;
    if (*w1 < *w0) *w1 = *w0;
    return s->count_include_pad ? padded_cells : (*h1 - *h0) * (*w1 - *w0);
}

static void FN(window_means)(real *out, const real *in, long planes, const PoolShape *s) {
    size_t in_plane = (size_t)s->H * s->W, out_plane = (size_t)s->Ho * s->Wo;
#pragma omp parallel for schedule(static) if (planes * (long)out_plane * s->kh * s->kw > 65536)
    for (long p = 0; p < planes; p++) {
        const real *x = in + (size_t)p * in_plane;
        real *y = out + (size_t)p * out_plane;
        for (int oh = 0; oh < s->Ho; oh++)
            for (int ow = 0; ow < s->Wo; ow++) {
                int h0, h1, w0, w1;
                double div = window(s, oh, ow, &h0, &h1, &w0, &w1), sum = 0;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) sum += (double)x[(size_t)h * s->W + w];
                y[oh * s->Wo + ow] = div > 0 ? (real)(sum / div) : 0;
            }
    }
}

static void FN(window_spread)(real *d_in, const real *d_out, long planes, const PoolShape *s) {
    size_t in_plane = (size_t)s->H * s->W, out_plane = (size_t)s->Ho * s->Wo;
#pragma omp parallel for schedule(static) if (planes * (long)out_plane * s->kh * s->kw > 65536)
    for (long p = 0; p < planes; p++) {
        real *dx = d_in + (size_t)p * in_plane;
        const real *dy = d_out + (size_t)p * out_plane;
        memset(dx, 0, sizeof(real) * in_plane);
        for (int oh = 0; oh < s->Ho; oh++)
            for (int ow = 0; ow < s->Wo; ow++) {
                int h0, h1, w0, w1;
                double div = window(s, oh, ow, &h0, &h1, &w0, &w1);
                if (div <= 0) continue;
                real g = (real)((double)dy[oh * s->Wo + ow] / div);
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) dx[(size_t)h * s->W + w] += g;
            }
    }
}

void FN(avgpool2d_forward)(real *out, const real *in, int N, const PoolShape *s) {
    FN(window_means)(out, in, (long)N * s->C, s);
}

void FN(avgpool2d_backward)(real *d_in, const real *d_out, int N, const PoolShape *s) {
    FN(window_spread)(d_in, d_out, (long)N * s->C, s);
}

void FN(avgpool2d_tangent_forward)(real *t_out, const real *t_in, int K, int N, const PoolShape *s) {
    FN(window_means)(t_out, t_in, (long)N * K * s->C, s);
}

void FN(avgpool2d_tangent_backward)(real *td_in, const real *td_out, int K, int N, const PoolShape *s) {
    FN(window_spread)(td_in, td_out, (long)N * K * s->C, s);
}

/* maxpool.c: max-pooling over kh x kw windows (PoolShape, shapes.h; per-axis stride, padding per side that
 * never wins, ceil mode) and its four passes (see ops.h). The forward pass records the winning input index of every output; the
 * other passes route values through it, so max-pool adds no second-order term. Ties go to the first
 * maximum in scan order, as in PyTorch. */
#include <string.h>

#include "ops.h"

void FN(maxpool_forward)(real *out, int32_t *argmax, const real *in, int N, const PoolShape *s) {
    size_t in_plane = (size_t)s->H * s->W, out_plane = (size_t)s->Ho * s->Wo;
    /* 2x2 windows at stride 2, no padding, all inside the input (ceil mode may leave one hanging out) */
    int fast = s->kh == 2 && s->kw == 2 && s->stride_h == 2 && s->stride_w == 2 && !s->pad_t && !s->pad_l &&
               2 * s->Ho <= s->H && 2 * s->Wo <= s->W;
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * s->C; nc++) {
        const real *x = in + (size_t)nc * in_plane;
        real *y = out + (size_t)nc * out_plane;
        int32_t *am = argmax + (size_t)nc * out_plane;
        if (fast) { /* the common case: no bounds checks, and comparisons turned into arithmetic (selects the
                     * compiler makes branch-free: a branch per comparison mispredicted half the time on real
                     * activations and took 12% of a cnn HVP) */
            const int Wi = s->W, Wo = s->Wo;
            for (int oh = 0; oh < s->Ho; oh++) {
                const real *r0 = x + (size_t)2 * oh * Wi, *r1 = r0 + Wi;
                real *restrict yo = y + (size_t)oh * Wo;
                int32_t *restrict ao = am + (size_t)oh * Wo, base = 2 * oh * Wi;
                for (int ow = 0; ow < Wo; ow++) {
                    real a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                    real vab = b > a ? b : a, vcd = d > c ? d : c;
                    int32_t gb = b > a, gd = d > c, take = vcd > vab;
                    yo[ow] = vcd > vab ? vcd : vab;
                    ao[ow] = base + 2 * ow + gb + take * (Wi + gd - gb);
                }
            }
            continue;
        }
        for (int oh = 0; oh < s->Ho; oh++)
            for (int ow = 0; ow < s->Wo; ow++) {
                int best = -1;
                real best_value = 0;
                for (int i = 0; i < s->kh; i++) {
                    int h = oh * s->stride_h - s->pad_t + i;
                    if (h < 0 || h >= s->H) continue;
                    for (int j = 0; j < s->kw; j++) {
                        int w = ow * s->stride_w - s->pad_l + j;
                        if (w < 0 || w >= s->W) continue;
                        real v = x[h * s->W + w];
                        if (best < 0 || v > best_value || v != v) {
                            best = h * s->W + w;
                            best_value = v;
                        }
                    }
                }
                y[oh * s->Wo + ow] = best_value;
                am[oh * s->Wo + ow] = best;
            }
    }
}

/* Plane p of a (N,K,C,...) tangent uses argmax plane (p / (K*C)) * C + p % C; K = 1 for primal tensors. */
static inline size_t argmax_plane(long p, int K, int C) { return (size_t)(p / ((long)K * C)) * C + (size_t)(p % C); }

/* d_in = 0, then d_out scattered through argmax, for N*K*C planes. */
static void FN(maxpool_scatter)(real *d_in, const real *d_out, const int32_t *argmax, int K, int N,
                                const PoolShape *s) {
    long planes = (long)N * K * s->C;
    size_t in_plane = (size_t)s->H * s->W, out_plane = (size_t)s->Ho * s->Wo;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        real *dx = d_in + (size_t)p * in_plane;
        const real *dy = d_out + (size_t)p * out_plane;
        const int32_t *am = argmax + argmax_plane(p, K, s->C) * out_plane;
        /* zeroed plane by plane, by the thread that scatters into it (one memset of the whole tensor on the
         * calling thread was half of this op's time for the cnn's first pool) */
        memset(dx, 0, sizeof(real) * in_plane);
        for (size_t i = 0; i < out_plane; i++)
            if (am[i] >= 0) dx[am[i]] += dy[i];
    }
}

/* t_out = t_in at argmax, for N*K*C planes. */
static void FN(maxpool_gather)(real *t_out, const real *t_in, const int32_t *argmax, int K, int N,
                               const PoolShape *s) {
    long planes = (long)N * K * s->C;
    size_t in_plane = (size_t)s->H * s->W, out_plane = (size_t)s->Ho * s->Wo;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const real *tx = t_in + (size_t)p * in_plane;
        real *ty = t_out + (size_t)p * out_plane;
        const int32_t *am = argmax + argmax_plane(p, K, s->C) * out_plane;
        for (size_t i = 0; i < out_plane; i++) ty[i] = am[i] >= 0 ? tx[am[i]] : 0;
    }
}

void FN(maxpool_backward)(real *d_in, const real *d_out, const int32_t *argmax, int N, const PoolShape *s) {
    FN(maxpool_scatter)(d_in, d_out, argmax, 1, N, s);
}

void FN(maxpool_tangent_forward)(real *t_out, const real *t_in, const int32_t *argmax, int K, int N,
                                 const PoolShape *s) {
    FN(maxpool_gather)(t_out, t_in, argmax, K, N, s);
}

void FN(maxpool_tangent_backward)(real *td_in, const real *td_out, const int32_t *argmax, int K, int N,
                                  const PoolShape *s) {
    FN(maxpool_scatter)(td_in, td_out, argmax, K, N, s);
}

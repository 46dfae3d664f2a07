/* conv2d.c: 2-D convolution (square kernel, stride, zero padding, optional bias) and its four passes
 * (see ops.h), by im2col + GEMM with OpenMP over samples.
 *
 * Per sample, col = im2col(in) is (C*k*k, Ho*Wo) and out = W col + b with W viewed as (O, C*k*k).
 * Convolution is bilinear in (in, W), so for direction k:
 *   t_out   = conv(t_in, W) + conv(in, t_W) + t_b
 *   td_in   = conv^T(td_out, W) + conv^T(d_out, t_W)
 *   td_W   += td_out (x) col(in) + d_out (x) col(t_in)
 *   td_b   += sum td_out
 * Tangents are (N, K, ...): the K directions of one sample form one (K*O, Ho*Wo) matrix, so the weight
 * terms of all directions are a single GEMM per sample. Parameter-gradient accumulators are per thread and
 * summed in thread order, so results are deterministic for a given thread count. */
#include <omp.h>
#include <string.h>

#include "../core/scratch.h"
#include "blas.h"
#include "ops.h"

/* Precision-independent, but this file is compiled twice (f32 and f64): define it in one of them only. */
#if defined(HS_F64)
ConvShape conv2d_shape(int C, int H, int W, int O, int k, int stride, int pad) {
    ConvShape s = {C, H, W, O, k, stride, pad, (H + 2 * pad - k) / stride + 1, (W + 2 * pad - k) / stride + 1};
    return s;
}
#endif

static inline int conv_rows(const ConvShape *s) { return s->C * s->k * s->k; } /* C*k*k */
static inline int conv_cols(const ConvShape *s) { return s->Ho * s->Wo; }      /* L */

static void FN(im2col)(real *restrict col /* (C*k*k, L) */, const real *restrict x /* (C,H,W) */, const ConvShape *s) {
    int L = conv_cols(s);
    for (int c = 0; c < s->C; c++)
        for (int i = 0; i < s->k; i++)
            for (int j = 0; j < s->k; j++) {
                real *row = col + (size_t)((c * s->k + i) * s->k + j) * L;
                const real *plane = x + (size_t)c * s->H * s->W;
                /* output columns [ow_lo, ow_hi) read inside the image; the others are padding */
                int ow_lo = 0, ow_hi = s->Wo;
                while (ow_lo < s->Wo && ow_lo * s->stride - s->pad + j < 0) ow_lo++;
                while (ow_hi > ow_lo && (ow_hi - 1) * s->stride - s->pad + j >= s->W) ow_hi--;
                for (int oh = 0; oh < s->Ho; oh++) {
                    int h = oh * s->stride - s->pad + i;
                    real *dst = row + oh * s->Wo;
                    if (h < 0 || h >= s->H) {
                        memset(dst, 0, sizeof(real) * (size_t)s->Wo);
                        continue;
                    }
                    const real *src = plane + (size_t)h * s->W; /* input column of output ow: ow*stride + j - pad */
                    int shift = j - s->pad;
                    for (int ow = 0; ow < ow_lo; ow++) dst[ow] = 0;
                    if (s->stride == 1) { /* rows are short: a plain loop beats a memcpy call */
                        const real *from = src + shift;
                        for (int ow = ow_lo; ow < ow_hi; ow++) dst[ow] = from[ow];
                    } else {
                        for (int ow = ow_lo; ow < ow_hi; ow++) dst[ow] = src[ow * s->stride + shift];
                    }
                    for (int ow = ow_hi; ow < s->Wo; ow++) dst[ow] = 0;
                }
            }
}

static void FN(col2im_add)(real *x /* (C,H,W) += */, const real *col /* (C*k*k, L) */, const ConvShape *s) {
    int L = conv_cols(s);
    for (int c = 0; c < s->C; c++)
        for (int i = 0; i < s->k; i++)
            for (int j = 0; j < s->k; j++) {
                const real *row = col + (size_t)((c * s->k + i) * s->k + j) * L;
                real *plane = x + (size_t)c * s->H * s->W;
                int ow_lo = 0, ow_hi = s->Wo;
                while (ow_lo < s->Wo && ow_lo * s->stride - s->pad + j < 0) ow_lo++;
                while (ow_hi > ow_lo && (ow_hi - 1) * s->stride - s->pad + j >= s->W) ow_hi--;
                for (int oh = 0; oh < s->Ho; oh++) {
                    int h = oh * s->stride - s->pad + i;
                    if (h < 0 || h >= s->H) continue;
                    real *dst = plane + (size_t)h * s->W;
                    const real *src = row + oh * s->Wo;
                    int shift = j - s->pad;
                    for (int ow = ow_lo; ow < ow_hi; ow++) dst[ow * s->stride + shift] += src[ow];
                }
            }
}

static inline int is_pointwise(const ConvShape *s) { return s->k == 1 && s->stride == 1 && s->pad == 0; }

/* out = conv(in, W) (+ bias) for `count` images. */
static int FN(conv_apply)(real *out, const real *in, const real *weight, const real *bias, long count,
                          const ConvShape *s) {
    int R = conv_rows(s), L = conv_cols(s), failed = 0;
    size_t in_size = (size_t)s->C * s->H * s->W, out_size = (size_t)s->O * L;
#pragma omp parallel
    {
        real *col = is_pointwise(s) ? NULL : scratch_get(0, sizeof(real) * (size_t)R * L);
        if (!col && !is_pointwise(s)) failed = 1;
#pragma omp for schedule(static)
        for (long n = 0; n < count; n++) {
            if (failed) continue;
            const real *x = in + (size_t)n * in_size;
            real *y = out + (size_t)n * out_size;
            if (col) FN(im2col)(col, x, s);
            if (bias)
                for (int o = 0; o < s->O; o++)
                    for (int l = 0; l < L; l++) y[(size_t)o * L + l] = bias[o];
            FN(gemm)(0, 0, s->O, L, R, 1, weight, R, col ? col : x, L, bias ? 1 : 0, y, L);
        }
    }
    return failed ? -1 : 0;
}

/* d_in = conv^T(d_out, W) for `count` images. */
static int FN(conv_apply_transposed)(real *d_in, const real *d_out, const real *weight, long count,
                                     const ConvShape *s) {
    int R = conv_rows(s), L = conv_cols(s), failed = 0;
    size_t in_size = (size_t)s->C * s->H * s->W, out_size = (size_t)s->O * L;
#pragma omp parallel
    {
        real *col = is_pointwise(s) ? NULL : scratch_get(0, sizeof(real) * (size_t)R * L);
        if (!col && !is_pointwise(s)) failed = 1;
#pragma omp for schedule(static)
        for (long n = 0; n < count; n++) {
            if (failed) continue;
            real *dx = d_in + (size_t)n * in_size;
            const real *dy = d_out + (size_t)n * out_size;
            if (!col) {
                FN(gemm)(1, 0, R, L, s->O, 1, weight, R, dy, L, 0, dx, L);
                continue;
            }
            FN(gemm)(1, 0, R, L, s->O, 1, weight, R, dy, L, 0, col, L);
            memset(dx, 0, sizeof(real) * in_size);
            FN(col2im_add)(dx, col, s);
        }
    }
    return failed ? -1 : 0;
}

int FN(conv2d_forward)(real *out, const real *in, const real *weight, const real *bias, int N, const ConvShape *s) {
    return FN(conv_apply)(out, in, weight, bias, N, s);
}

int FN(conv2d_backward)(real *d_in, real *d_weight, real *d_bias, const real *d_out, const real *in,
                        const real *weight, int N, const ConvShape *s) {
    return FN(conv2d_tangent_backward)(d_in, d_weight, d_bias, 0, d_out, NULL, NULL, NULL, in, weight, 1, N, s);
}

int FN(conv2d_tangent_forward)(real *t_out, const real *t_in, const real *t_weight, const real *t_bias, size_t ldw,
                               const real *in, const real *weight, int K, int N, const ConvShape *s) {
    int R = conv_rows(s), L = conv_cols(s), O = s->O, failed = 0;
    size_t in_size = (size_t)s->C * s->H * s->W, out_size = (size_t)O * L;
    if (t_in) {
        HS_TRY(FN(conv_apply)(t_out, t_in, weight, NULL, (long)N * K, s));
    } else {
        memset(t_out, 0, sizeof(real) * out_size * (size_t)N * K);
    }
    if (t_weight) {
        /* Stack the K weight tangents into one (K*O, R) matrix; when few entries are non-zero (unit directions,
         * as the exact Hessian uses), add their columns directly instead of multiplying by zeros. */
        size_t total = (size_t)K * O * R, nnz = 0;
        real *stacked = scratch_get(2, sizeof(real) * total);
        if (!stacked) return -1;
        for (int k = 0; k < K; k++) memcpy(stacked + (size_t)k * O * R, t_weight + (size_t)k * ldw, sizeof(real) * (size_t)O * R);
        for (size_t i = 0; i < total; i++) nnz += stacked[i] != 0;
        int sparse = nnz * 16 < total;
        int32_t *nz_index = NULL;
        if (sparse) {
            nz_index = scratch_get(3, sizeof(int32_t) * (nnz + 1));
            if (!nz_index) return -1;
            size_t j = 0;
            for (size_t i = 0; i < total; i++)
                if (stacked[i] != 0) nz_index[j++] = (int32_t)i;
        }
#pragma omp parallel
        {
            real *col = is_pointwise(s) ? NULL : scratch_get(0, sizeof(real) * (size_t)R * L);
            if (!col && !is_pointwise(s)) failed = 1;
#pragma omp for schedule(static)
            for (int n = 0; n < N; n++) {
                if (failed) continue;
                const real *x = in + (size_t)n * in_size;
                const real *c = x;
                if (col) {
                    FN(im2col)(col, x, s);
                    c = col;
                }
                real *tn = t_out + (size_t)n * K * out_size; /* (K*O, L) */
                if (!sparse) {
                    FN(gemm)(0, 0, K * O, L, R, 1, stacked, R, c, L, 1, tn, L);
                    continue;
                }
                for (size_t e = 0; e < nnz; e++) {
                    size_t i = (size_t)nz_index[e];
                    real w = stacked[i], *dst = tn + (i / (size_t)R) * L;
                    const real *src = c + (i % (size_t)R) * L;
                    for (int l = 0; l < L; l++) dst[l] += w * src[l];
                }
            }
        }
        if (failed) return -1;
    }
    if (t_bias) {
#pragma omp parallel for schedule(static) collapse(2)
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                const real *b = t_bias + (size_t)k * ldw;
                real *y = t_out + ((size_t)n * K + k) * out_size;
                for (int o = 0; o < O; o++)
                    for (int l = 0; l < L; l++) y[(size_t)o * L + l] += b[o];
            }
    }
    return 0;
}

int FN(conv2d_tangent_backward)(real *td_in, real *td_weight, real *td_bias, size_t ldw, const real *td_out,
                                const real *d_out, const real *t_in, const real *t_weight, const real *in,
                                const real *weight, int K, int N, const ConvShape *s) {
    int R = conv_rows(s), L = conv_cols(s), O = s->O, failed = 0;
    size_t in_size = (size_t)s->C * s->H * s->W, out_size = (size_t)O * L;
    size_t wsize = (size_t)O * R;
    if (ldw == 0) ldw = wsize; /* K == 1 primal call */
    int cross_in = d_out && t_weight && td_in, cross_w = d_out && t_in;

    if (td_in) HS_TRY(FN(conv_apply_transposed)(td_in, td_out, weight, (long)N * K, s));

    int threads = omp_get_max_threads();
    size_t acc_size = (size_t)K * (wsize + (size_t)O); /* per thread: K weight blocks then K bias blocks */
    real *acc_all = scratch_get(3, sizeof(real) * acc_size * (size_t)threads);
    if (!acc_all) return -1;
    memset(acc_all, 0, sizeof(real) * acc_size * (size_t)threads);

#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        real *acc = acc_all + (size_t)t * acc_size;
        real *acc_b = acc + (size_t)K * wsize;
        real *col = is_pointwise(s) ? NULL : scratch_get(0, sizeof(real) * (size_t)R * L);
        real *col2 = (cross_in || cross_w) ? scratch_get(1, sizeof(real) * (size_t)R * L) : NULL;
        if ((!col && !is_pointwise(s)) || ((cross_in || cross_w) && !col2)) failed = 1;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            if (failed) continue;
            const real *x = in + (size_t)n * in_size;
            const real *tdo = td_out + (size_t)n * K * out_size; /* (K*O, L) */
            if (col) FN(im2col)(col, x, s);
            FN(gemm)(0, 1, K * O, R, L, 1, tdo, L, col ? col : x, L, 1, acc, R);
            if (td_bias)
                for (int ko = 0; ko < K * O; ko++) {
                    const real *row = tdo + (size_t)ko * L;
                    real sum = 0;
                    for (int l = 0; l < L; l++) sum += row[l];
                    acc_b[ko] += sum;
                }
            if (!cross_in && !cross_w) continue;
            const real *dy = d_out + (size_t)n * out_size; /* (O, L) */
            for (int k = 0; k < K; k++) {
                if (cross_w) {
                    const real *tx = t_in + ((size_t)n * K + k) * in_size;
                    if (!is_pointwise(s)) FN(im2col)(col2, tx, s);
                    FN(gemm)(0, 1, O, R, L, 1, dy, L, is_pointwise(s) ? tx : col2, L, 1, acc + (size_t)k * wsize, R);
                }
                if (cross_in) {
                    real *tdx = td_in + ((size_t)n * K + k) * in_size;
                    const real *tw = t_weight + (size_t)k * ldw;
                    if (is_pointwise(s)) {
                        FN(gemm)(1, 0, R, L, O, 1, tw, R, dy, L, 1, tdx, L);
                    } else {
                        FN(gemm)(1, 0, R, L, O, 1, tw, R, dy, L, 0, col2, L);
                        FN(col2im_add)(tdx, col2, s);
                    }
                }
            }
        }
    }
    if (failed) return -1;
    for (int t = 0; t < threads; t++) {
        const real *acc = acc_all + (size_t)t * acc_size;
        const real *acc_b = acc + (size_t)K * wsize;
        for (int k = 0; k < K; k++) {
            real *dw = td_weight + (size_t)k * ldw;
            const real *a = acc + (size_t)k * wsize;
            for (size_t i = 0; i < wsize; i++) dw[i] += a[i];
            if (td_bias) {
                real *db = td_bias + (size_t)k * ldw;
                for (int o = 0; o < O; o++) db[o] += acc_b[(size_t)k * O + o];
            }
        }
    }
    return 0;
}

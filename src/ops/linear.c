/* linear.c: the fully connected layer and its four passes (see ops.h), for both weight layouts:
 *   linear_*: out = in W^T + b, W stored (O,In) (PyTorch nn.Linear, ONNX Gemm with transB = 1)
 *   matmul_*: out = in W + b,   W stored (In,O) (ONNX MatMul by an initializer, PyTorch x @ W)
 * One implementation serves both: `t` says the weight is stored (In,O); only the BLAS transpose flags, the
 * weight's leading dimension and the order of the weight-gradient product change.
 *
 * Tangent passes, for direction k with tangents t_in, t_W, t_b (tangents are (N,K,...), so direction k's
 * rows are a strided view with leading dimension K*width), written for the (O,In) layout:
 *   t_out      = t_in W^T + in t_W^T + t_b
 *   td_in      = td_out W + d_out t_W
 *   td_W      += td_out^T in + d_out^T t_in
 *   td_b      += sum_n td_out
 * The d_out terms are the second-order terms of the bilinear map (in, W) -> in W^T.
 * Diagonal pass: the gradient of sample n, vector k is td_out[n,k]^T in[n], whose squares sum to
 *   diag_W[o,i] += sum_n s[n,o] in[n,i]^2,   s[n,o] = sum_k td_out[n,k,o]^2,   diag_b[o] += sum_n s[n,o],
 * one GEMM of squares. */
#include <string.h>

#include "../core/scratch.h"
#include "blas.h"
#include "ops.h"

/* acc[o] += sum over N rows of x[n*ld + o]. */
static void FN(add_column_sums)(real *acc /* (O) += */, const real *x /* (N, ld) */, int N, int O, int ld) {
    for (int n = 0; n < N; n++) {
        const real *row = x + (size_t)n * ld;
        for (int o = 0; o < O; o++) acc[o] += row[o];
    }
}

/* dW += dout^T x in W's layout: (O,In) when !t, (In,O) when t; rows of dout (N,O) at stride ldo, x (N,In) at
 * stride ldx. */
static void FN(add_weight_product)(real *dW, const real *dout, int ldo, const real *x, int ldx, int N, int In, int O,
                                   int t) {
    if (t) FN(gemm)(1, 0, In, O, N, 1, x, ldx, dout, ldo, 1, dW, O);
    else FN(gemm)(1, 0, O, In, N, 1, dout, ldo, x, ldx, 1, dW, In);
}

static void FN(dense_forward)(real *out, const real *in, const real *weight, const real *bias, int N, int In, int O,
                              int t) {
    if (bias) {
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * O, bias, sizeof(real) * (size_t)O);
    }
    FN(gemm)(0, !t, N, O, In, 1, in, In, weight, t ? O : In, bias ? 1 : 0, out, O);
}

static void FN(dense_backward)(real *d_in, real *d_weight, real *d_bias, const real *d_out, const real *in,
                               const real *weight, int N, int In, int O, int t) {
    if (d_in) FN(gemm)(0, t, N, In, O, 1, d_out, O, weight, t ? O : In, 0, d_in, In);
    if (d_weight) FN(add_weight_product)(d_weight, d_out, O, in, In, N, In, O, t);
    if (d_bias) FN(add_column_sums)(d_bias, d_out, N, O, O);
}

/* Direction k's weight and bias terms of the tangent forward pass: t_out rows n at stride K*O += in t_W^T + t_b.
 * Per-direction work runs in a parallel region over k only when K > 1: a serialized region (an `if` clause that
 * is false) would make FN(gemm)'s own threads a nested team, which libgomp creates anew on every call (measured:
 * a thread created and ended per product, 4-65 ms stalls per cnn HVP on 100-sample chunks; 2-core Xeon with
 * AVX-512). */
static void FN(tangent_forward_direction)(real *t_out /* (N, K, O) */, const real *t_weight /* (K, ldw) */,
                                          const real *t_bias /* (K, ldw) */, size_t ldw, const real *in /* (N, In) */,
                                          int k, int K, int N, int In, int O, int t, int sparse) {
    int ldW = t ? O : In;
    size_t wsize = (size_t)O * In;
    real *tk = t_out + (size_t)k * O; /* rows n at stride K*O */
    const real *tw = t_weight ? t_weight + (size_t)k * ldw : NULL;
    if (tw && !sparse) FN(gemm)(0, !t, N, O, In, 1, in, In, tw, ldW, 1, tk, K * O);
    if (tw && sparse)
        for (size_t i = 0; i < wsize; i++) {
            if (tw[i] == 0) continue;
            size_t o = t ? i % (size_t)O : i / (size_t)In, c = t ? i / (size_t)O : i % (size_t)In;
            for (int n = 0; n < N; n++) tk[(size_t)n * K * O + o] += tw[i] * in[(size_t)n * In + c];
        }
    if (t_bias) {
        const real *b = t_bias + (size_t)k * ldw;
        for (int n = 0; n < N; n++)
            for (int o = 0; o < O; o++) tk[(size_t)n * K * O + o] += b[o];
    }
}

static void FN(dense_tangent_forward)(real *t_out, const real *t_in, const real *t_weight, const real *t_bias,
                                      size_t ldw, const real *in, const real *weight, int K, int N, int In, int O,
                                      int t) {
    int ldW = t ? O : In;
    if (t_in) {
        FN(gemm)(0, !t, N * K, O, In, 1, t_in, In, weight, ldW, 0, t_out, O);
    } else {
        memset(t_out, 0, sizeof(real) * (size_t)N * K * O);
    }
    if (!t_weight && !t_bias) return;
    /* Unit or very sparse weight tangents (the exact Hessian's directions): add single columns. */
    size_t wsize = (size_t)O * In, nnz = 0;
    if (t_weight)
        for (int k = 0; k < K; k++) {
            const real *tw = t_weight + (size_t)k * ldw;
            for (size_t i = 0; i < wsize; i++) nnz += tw[i] != 0;
        }
    int sparse = nnz * 16 < wsize * (size_t)K;
    /* One direction per thread; a single one runs outside any parallel region (see
     * tangent_forward_direction). */
    if (K > 1) {
#pragma omp parallel for schedule(static)
        for (int k = 0; k < K; k++)
            FN(tangent_forward_direction)(t_out, t_weight, t_bias, ldw, in, k, K, N, In, O, t, sparse);
    } else {
        FN(tangent_forward_direction)(t_out, t_weight, t_bias, ldw, in, 0, K, N, In, O, t, sparse);
    }
}

/* Direction k's terms of the tangent backward pass (everything but td_out W). */
static void FN(tangent_backward_direction)(real *td_in /* (N, K, In) */, real *td_weight /* (K, ldw) */,
                                           real *td_bias /* (K, ldw) */, size_t ldw, const real *td_out /* (N, K, O) */,
                                           const real *d_out /* (N, O) */, const real *t_in /* (N, K, In) */,
                                           const real *t_weight /* (K, ldw) */, const real *in /* (N, In) */, int k,
                                           int K, int N, int In, int O, int t) {
    int ldW = t ? O : In;
    const real *tdo = td_out + (size_t)k * O; /* rows n at stride K*O */
    real *tdw = td_weight ? td_weight + (size_t)k * ldw : NULL;
    if (tdw) FN(add_weight_product)(tdw, tdo, K * O, in, In, N, In, O, t);
    if (td_bias) FN(add_column_sums)(td_bias + (size_t)k * ldw, tdo, N, O, K * O);
    if (!d_out) return;
    if (td_in && t_weight)
        FN(gemm)(0, t, N, In, O, 1, d_out, O, t_weight + (size_t)k * ldw, ldW, 1, td_in + (size_t)k * In, K * In);
    if (tdw && t_in) FN(add_weight_product)(tdw, d_out, O, t_in + (size_t)k * In, K * In, N, In, O, t);
}

static void FN(dense_tangent_backward)(real *td_in, real *td_weight, real *td_bias, size_t ldw, const real *td_out,
                                       const real *d_out, const real *t_in, const real *t_weight, const real *in,
                                       const real *weight, int K, int N, int In, int O, int t) {
    int ldW = t ? O : In;
    if (td_in) FN(gemm)(0, t, N * K, In, O, 1, td_out, O, weight, ldW, 0, td_in, In);
    if (K > 1) { /* as in the tangent forward pass: no serialized region around FN(gemm) */
#pragma omp parallel for schedule(static)
        for (int k = 0; k < K; k++)
            FN(tangent_backward_direction)(td_in, td_weight, td_bias, ldw, td_out, d_out, t_in, t_weight, in, k, K, N,
                                           In, O, t);
    } else {
        FN(tangent_backward_direction)(td_in, td_weight, td_bias, ldw, td_out, d_out, t_in, t_weight, in, 0, K, N, In,
                                       O, t);
    }
}

void FN(linear_forward)(real *out, const real *in, const real *weight, const real *bias, int N, int In, int O) {
    FN(dense_forward)(out, in, weight, bias, N, In, O, 0);
}
void FN(linear_backward)(real *d_in, real *d_weight, real *d_bias, const real *d_out, const real *in,
                         const real *weight, int N, int In, int O) {
    FN(dense_backward)(d_in, d_weight, d_bias, d_out, in, weight, N, In, O, 0);
}
void FN(linear_tangent_forward)(real *t_out, const real *t_in, const real *t_weight, const real *t_bias, size_t ldw,
                                const real *in, const real *weight, int K, int N, int In, int O) {
    FN(dense_tangent_forward)(t_out, t_in, t_weight, t_bias, ldw, in, weight, K, N, In, O, 0);
}
void FN(linear_tangent_backward)(real *td_in, real *td_weight, real *td_bias, size_t ldw, const real *td_out,
                                 const real *d_out, const real *t_in, const real *t_weight, const real *in,
                                 const real *weight, int K, int N, int In, int O) {
    FN(dense_tangent_backward)(td_in, td_weight, td_bias, ldw, td_out, d_out, t_in, t_weight, in, weight, K, N, In, O,
                               0);
}

void FN(matmul_forward)(real *out, const real *in, const real *weight, const real *bias, int N, int In, int O) {
    FN(dense_forward)(out, in, weight, bias, N, In, O, 1);
}
void FN(matmul_backward)(real *d_in, real *d_weight, real *d_bias, const real *d_out, const real *in,
                         const real *weight, int N, int In, int O) {
    FN(dense_backward)(d_in, d_weight, d_bias, d_out, in, weight, N, In, O, 1);
}
void FN(matmul_tangent_forward)(real *t_out, const real *t_in, const real *t_weight, const real *t_bias, size_t ldw,
                                const real *in, const real *weight, int K, int N, int In, int O) {
    FN(dense_tangent_forward)(t_out, t_in, t_weight, t_bias, ldw, in, weight, K, N, In, O, 1);
}
void FN(matmul_tangent_backward)(real *td_in, real *td_weight, real *td_bias, size_t ldw, const real *td_out,
                                 const real *d_out, const real *t_in, const real *t_weight, const real *in,
                                 const real *weight, int K, int N, int In, int O) {
    FN(dense_tangent_backward)(td_in, td_weight, td_bias, ldw, td_out, d_out, t_in, t_weight, in, weight, K, N, In, O,
                               1);
}

/* ---- the diagonal pass ---- */

enum { SLOT_SQ_OUT = 5, SLOT_SQ_IN, SLOT_SQ_W }; /* calling-thread slots (scratch.h) */

static int FN(dense_diag)(double *diag_w, double *diag_b, const real *td_out, const real *in, int K, int N, int In,
                          int O, int t) {
    real *sq = scratch_get(SLOT_SQ_OUT, sizeof(real) * (size_t)N * O);
    real *x2 = scratch_get(SLOT_SQ_IN, sizeof(real) * (size_t)N * In);
    real *w = scratch_get(SLOT_SQ_W, sizeof(real) * (size_t)O * In);
    if (!sq || !x2 || !w) return -1;
#pragma omp parallel for schedule(static) if ((long)N * K * O > 65536)
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < O; o++) {
            real acc = 0;
            for (int k = 0; k < K; k++) {
                real v = td_out[((size_t)n * K + k) * O + o];
                acc += v * v;
            }
            sq[(size_t)n * O + o] = acc;
        }
        for (int i = 0; i < In; i++) x2[(size_t)n * In + i] = in[(size_t)n * In + i] * in[(size_t)n * In + i];
    }
    memset(w, 0, sizeof(real) * (size_t)O * In);
    FN(add_weight_product)(w, sq, O, x2, In, N, In, O, t);
    size_t wsize = (size_t)O * In;
#pragma omp parallel for schedule(static) if (wsize > 100000)
    for (size_t i = 0; i < wsize; i++) diag_w[i] += (double)w[i];
    if (diag_b)
        for (int o = 0; o < O; o++) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += (double)sq[(size_t)n * O + o];
            diag_b[o] += acc;
        }
    return 0;
}

int FN(linear_diag)(double *diag_w, double *diag_b, const real *td_out, const real *in, int K, int N, int In, int O) {
    return FN(dense_diag)(diag_w, diag_b, td_out, in, K, N, In, O, 0);
}
int FN(matmul_diag)(double *diag_w, double *diag_b, const real *td_out, const real *in, int K, int N, int In, int O) {
    return FN(dense_diag)(diag_w, diag_b, td_out, in, K, N, In, O, 1);
}

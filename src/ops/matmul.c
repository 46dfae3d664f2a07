/* matmul.c: out = in W + b with the weight stored (In,O) (ONNX MatMul by an initializer, PyTorch x @ W) and its
 * four passes, with linear's argument order and conventions (see ops.h and linear.c, which stores W as (O,In)).
 *
 * Tangent passes, for direction k (activation tangents are (N,K,...), so direction k's rows are a strided
 * view with leading dimension K*width; weight tangents are rows of (K,ldw)):
 *   t_out      = t_in W + in t_W + t_b
 *   td_in      = td_out W^T + d_out t_W^T
 *   td_W      += in^T td_out + t_in^T d_out
 *   td_b      += sum_n td_out
 * The d_out terms are the second-order terms of the bilinear map (in, W) -> in W. */
#include <string.h>

#include "blas.h"
#include "ops.h"

void FN(matmul_forward)(real *out, const real *in, const real *weight, const real *bias, int N, int In, int O) {
    if (bias) {
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * O, bias, sizeof(real) * (size_t)O);
    }
    FN(gemm)(0, 0, N, O, In, 1, in, In, weight, O, bias ? 1 : 0, out, O);
}

/* acc[o] += sum over N rows of x[n*ld + o], in row order. */
static void FN(mm_column_sums)(real *acc /* (O) += */, const real *x /* (N, ld) */, int N, int O, int ld) {
    for (int n = 0; n < N; n++) {
        const real *row = x + (size_t)n * ld;
        for (int o = 0; o < O; o++) acc[o] += row[o];
    }
}

void FN(matmul_backward)(real *d_in, real *d_weight, real *d_bias, const real *d_out, const real *in,
                         const real *weight, int N, int In, int O) {
    if (d_in) FN(gemm)(0, 1, N, In, O, 1, d_out, O, weight, O, 0, d_in, In);
    if (d_weight) FN(gemm)(1, 0, In, O, N, 1, in, In, d_out, O, 1, d_weight, O);
    if (d_bias) FN(mm_column_sums)(d_bias, d_out, N, O, O);
}

void FN(matmul_tangent_forward)(real *t_out, const real *t_in, const real *t_weight, const real *t_bias, size_t ldw,
                                const real *in, const real *weight, int K, int N, int In, int O) {
    if (t_in) {
        FN(gemm)(0, 0, N * K, O, In, 1, t_in, In, weight, O, 0, t_out, O);
    } else {
        memset(t_out, 0, sizeof(real) * (size_t)N * K * O);
    }
    if (!t_weight && !t_bias) return;
    /* Unit or very sparse weight tangents (the exact Hessian's directions): add single columns. */
    size_t wsize = (size_t)In * O, nnz = 0;
    if (t_weight)
        for (int k = 0; k < K; k++) {
            const real *tw = t_weight + (size_t)k * ldw;
            for (size_t i = 0; i < wsize; i++) nnz += tw[i] != 0;
        }
    int sparse = nnz * 16 < wsize * (size_t)K;
#pragma omp parallel for schedule(static) if (K > 1)
    for (int k = 0; k < K; k++) {
        real *tk = t_out + (size_t)k * O; /* rows n at stride K*O */
        const real *tw = t_weight ? t_weight + (size_t)k * ldw : NULL;
        if (tw && !sparse) FN(gemm)(0, 0, N, O, In, 1, in, In, tw, O, 1, tk, K * O);
        if (tw && sparse)
            for (size_t i = 0; i < wsize; i++) {
                if (tw[i] == 0) continue;
                size_t c = i / (size_t)O, o = i % (size_t)O;
                for (int n = 0; n < N; n++) tk[(size_t)n * K * O + o] += tw[i] * in[(size_t)n * In + c];
            }
        if (t_bias) {
            const real *b = t_bias + (size_t)k * ldw;
            for (int n = 0; n < N; n++)
                for (int o = 0; o < O; o++) tk[(size_t)n * K * O + o] += b[o];
        }
    }
}

void FN(matmul_tangent_backward)(real *td_in, real *td_weight, real *td_bias, size_t ldw, const real *td_out,
                                 const real *d_out, const real *t_in, const real *t_weight, const real *in,
                                 const real *weight, int K, int N, int In, int O) {
    if (td_in) FN(gemm)(0, 1, N * K, In, O, 1, td_out, O, weight, O, 0, td_in, In);
#pragma omp parallel for schedule(static) if (K > 1)
    for (int k = 0; k < K; k++) {
        const real *tdo = td_out + (size_t)k * O; /* rows n at stride K*O */
        real *tdw = td_weight ? td_weight + (size_t)k * ldw : NULL;
        if (tdw) FN(gemm)(1, 0, In, O, N, 1, in, In, tdo, K * O, 1, tdw, O);
        if (td_bias) FN(mm_column_sums)(td_bias + (size_t)k * ldw, tdo, N, O, K * O);
        if (!d_out) continue;
        if (td_in && t_weight)
            FN(gemm)(0, 1, N, In, O, 1, d_out, O, t_weight + (size_t)k * ldw, O, 1, td_in + (size_t)k * In, K * In);
        if (tdw && t_in) FN(gemm)(1, 0, In, O, N, 1, t_in + (size_t)k * In, K * In, d_out, O, 1, tdw, O);
    }
}

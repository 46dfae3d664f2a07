/* blas.h: precision-generic wrappers over CBLAS (row-major) for the kernels in src/ops/. */
#ifndef HS_OPS_BLAS_H
#define HS_OPS_BLAS_H

#include <cblas.h>

#include "../core/common.h"

/* C = alpha * op(A) op(B) + beta * C, row-major; ta/tb: 0 = as stored, 1 = transposed. */
static inline void FN(gemm)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda, const real *B,
                            int ldb, real beta, real *C, int ldc) {
#if defined(HS_F64)
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
#endif
}

#endif

/* blas.h: the one matrix product the kernels in src/ops/ and src/models/ use (precision-generic, row-major).
 *
 * Results never depend on the thread count: OpenBLAS's threaded sgemm/dgemm split the output by thread and
 * some of its kernels (measured: Haswell and Zen sgemm in OpenBLAS 0.3.21) then round differently, e.g.
 * 3,511 of the 16,384 entries of a 256x64x256 product change in the last bit between 1 and 2 threads. Such
 * a bit can move a ReLU input that sits within float32 rounding of zero to the other side (it did, in
 * ResNet-50 with batch statistics). FN(gemm) therefore cuts C into tiles fixed by the shape alone and runs
 * each tile as a single-threaded BLAS call, in parallel over tiles; inside an OpenMP region (per-sample
 * products) it calls BLAS directly, which is single-threaded there. */
#ifndef HS_OPS_BLAS_H
#define HS_OPS_BLAS_H

#include "../core/common.h"

/* C (M,N) = alpha * op(A) op(B) + beta * C, row-major; ta/tb: 0 = as stored, 1 = transposed; op(A) is (M,K). */
void FN(gemm)(int ta, int tb, int M, int N, int K, real alpha, const real *A /* op: (M,K) */, int lda,
              const real *B /* op: (K,N) */, int ldb, real beta, real *C /* (M,N) */, int ldc);

/* Calls that needed a threaded product from inside a serialized parallel region (a team of one), which costs a
 * nested team of new threads per call; kernels should make none (tests/test_threads.c checks). */
extern long FN(gemm_serialized_calls);

#endif

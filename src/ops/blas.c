/* blas.c: FN(gemm), a matrix product whose bits do not depend on the thread count (see blas.h). */
#include <cblas.h>
#include <omp.h>

#include "blas.h"

/* Products of at least GEMM_PARALLEL_MIN multiply-adds are cut along C's longer side (so that the smaller operand
 * is the one each tile packs again) into a power of two of tiles: one per GEMM_TILE_WORK multiply-adds, at least
 * 2, at most GEMM_TILES, each of at least GEMM_TILE_MIN rows (or columns); smaller products are one tile. Every
 * tile packs its whole other operand again, so few large tiles run faster: measured on a 2-core Xeon @ 2.80GHz
 * with AVX-512, f32, ResNet-50's products at 100 images ran at 112-143 GFLOP/s cut into 64-row tiles and at
 * 144-174 GFLOP/s in two tiles (OpenBLAS threading them itself: 147-192). */
#define GEMM_PARALLEL_MIN (1L << 20)
#define GEMM_TILE_WORK (1L << 27)
#define GEMM_TILE_MIN 64
#define GEMM_TILES 32
/* OpenBLAS runs products of at most this many multiply-adds on one thread (its SMP threshold 65536 times
 * GEMM_MULTITHREAD_THRESHOLD 4), inside an OpenMP region or not; tests/test_threads.c would notice otherwise. */
#define GEMM_SINGLE_THREADED (65536L * 4)

/* CBLAS's two precisions under the FN() names, so FN(cblas_gemm) picks the one this compilation needs. */
#define cblas_gemm_f32 cblas_sgemm
#define cblas_gemm_f64 cblas_dgemm

long FN(gemm_serialized_calls) = 0;

static void FN(blas_gemm)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda, const real *B,
                          int ldb, real beta, real *C, int ldc) {
    FN(cblas_gemm)(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                   lda, B, ldb, beta, C, ldc);
}

void FN(gemm)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda, const real *B, int ldb,
              real beta, real *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    /* The tiling depends on the shape only (one thread runs the same tiles in turn). */
    long work = (long)M * N * (K > 0 ? K : 1);
    int split_rows = M >= N, side = split_rows ? M : N, tiles = 1;
    if (work >= GEMM_PARALLEL_MIN) {
        int most = side / GEMM_TILE_MIN;
        if (most > GEMM_TILES) most = GEMM_TILES;
        tiles = 2;
        while (tiles * 2 <= most && (long)tiles * 2 * GEMM_TILE_WORK <= work) tiles *= 2;
        if (tiles > most) tiles = most > 1 ? most : 1;
    }
    if (tiles == 1 && (omp_in_parallel() || work <= GEMM_SINGLE_THREADED)) { /* single-threaded BLAS (see above) */
        FN(blas_gemm)(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Otherwise tiles run in a parallel region, even a single one (in a region of two threads), so that
     * OpenBLAS does not thread them; with one thread OpenBLAS does not either. Inside a serialized region (a
     * team of one: an `if` clause that was false) that region is a nested team, whose threads libgomp creates
     * anew on every call (slow, but OpenBLAS would thread the product itself otherwise, with other bits): such
     * calls are counted, and callers avoid them (tests/test_threads.c checks). */
    int threads = omp_get_max_threads();
    if (threads > tiles) threads = tiles > 1 ? tiles : 2;
    if (omp_get_level() > 0 && threads > 1 && !omp_in_parallel()) {
#pragma omp atomic
        FN(gemm_serialized_calls)++;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && !omp_in_parallel())
    for (int t = 0; t < tiles; t++) {
        int lo = (int)((long)side * t / tiles), hi = (int)((long)side * (t + 1) / tiles), n = hi - lo;
        if (split_rows) { /* rows lo..hi of C and of op(A) */
            const real *a = ta ? A + lo : A + (size_t)lo * lda;
            FN(blas_gemm)(ta, tb, n, N, K, alpha, a, lda, B, ldb, beta, C + (size_t)lo * ldc, ldc);
        } else { /* columns lo..hi of C and of op(B) */
            const real *b = tb ? B + (size_t)lo * ldb : B + lo;
            FN(blas_gemm)(ta, tb, M, n, K, alpha, A, lda, b, ldb, beta, C + lo, ldc);
        }
    }
}

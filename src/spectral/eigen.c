/* eigen.c: all eigenvalues (and optionally eigenvectors) of a dense symmetric matrix with LAPACKE dsyevd /
 * ssyevd (divide and conquer), row-major. Eigenvalues come back ascending. With want_vectors, `a` is
 * overwritten by the orthonormal eigenvectors stored as COLUMNS of the row-major matrix: eigenvector j is
 * a[i * n + j] for i = 0..n-1 and belongs to eigenvalues[j] (this is LAPACKE's row-major layout). Without
 * vectors `a` is destroyed. Only the upper triangle of `a` is read (the matrix is assumed symmetric). */
#include <cblas.h> /* OpenBLAS: openblas_get/set_num_threads */
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "../core/common.h"
#include "spectral.h"

static int check_size(int64_t n, const void *a, const void *w, const char *who) {
    if (!a || !w) return hs_error("%s: NULL matrix or eigenvalue array", who);
    if (n <= 0) return hs_error("%s: matrix order %lld must be positive", who, (long long)n);
    if (n > INT_MAX || n > INT64_MAX / n)
        return hs_error("%s: matrix order %lld is too large for LAPACK (32-bit integers)", who, (long long)n);
    return 0;
}

static int report_info(lapack_int info, const char *routine, int64_t n) {
    if (info < 0) return hs_error("%s: argument %d had an illegal value (n = %lld)", routine, (int)-info, (long long)n);
    return hs_error("%s failed to converge (info %d, n = %lld)", routine, (int)info, (long long)n);
}

/* One implementation for both precisions: f64 selects double (dsyevd) or float (ssyevd) storage. Only the
 * LAPACK routine and the element type differ; the checks, the thread handling and the messages are shared. */
static int eigen_symmetric(void *a /* (n,n) */, int64_t n, void *eigenvalues /* (n) */, int want_vectors, int f64) {
    const char *who = f64 ? "eigen_symmetric_f64" : "eigen_symmetric_f32";
    HS_TRY(check_size(n, a, eigenvalues, who));
    double *ad = a;
    float *af = a;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) {
            double x = f64 ? ad[i * n + j] : (double)af[i * n + j];
            if (!isfinite(x))
                return hs_error("%s: matrix entry (%lld, %lld) is not finite (%g)", who, (long long)i, (long long)j, x);
        }
    lapack_int info, ln = (lapack_int)n;
    if (!want_vectors) {
        /* Eigenvalues only: the two-stage reduction (mostly matrix-matrix work) is several times faster than
         * the one-stage one for large n. The matrix is symmetric, so column-major storage is the same memory
         * and LAPACKE need not transpose it. */
        int threads = openblas_get_num_threads();
        openblas_set_num_threads(1); /* with more, OpenBLAS's threads and LAPACK's OpenMP tasks fight: 10x slower */
        info = f64 ? LAPACKE_dsyevd_2stage(LAPACK_COL_MAJOR, 'N', 'L', ln, ad, ln, eigenvalues)
                   : LAPACKE_ssyevd_2stage(LAPACK_COL_MAJOR, 'N', 'L', ln, af, ln, eigenvalues);
        openblas_set_num_threads(threads);
        if (info != 0) return report_info(info, f64 ? "LAPACKE_dsyevd_2stage" : "LAPACKE_ssyevd_2stage", n);
        return 0;
    }
    info = f64 ? LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', ln, ad, ln, eigenvalues)
               : LAPACKE_ssyevd(LAPACK_ROW_MAJOR, 'V', 'U', ln, af, ln, eigenvalues);
    if (info != 0) return report_info(info, f64 ? "LAPACKE_dsyevd" : "LAPACKE_ssyevd", n);
    return 0;
}

int eigen_symmetric_f64(double *a /* (n,n) */, int64_t n, double *eigenvalues /* (n) */, int want_vectors) {
    return eigen_symmetric(a, n, eigenvalues, want_vectors, 1);
}

int eigen_symmetric_f32(float *a /* (n,n) */, int64_t n, float *eigenvalues /* (n) */, int want_vectors) {
    return eigen_symmetric(a, n, eigenvalues, want_vectors, 0);
}

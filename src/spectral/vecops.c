/* vecops.c: deterministic float64 vector kernels for the spectral methods (see spectral_internal.h):
 * dot products, norms, Gram-Schmidt projections and random probe vectors. Every reduction uses a partition
 * of the vector that depends on n alone and adds partial sums in a fixed order, so results are bitwise the
 * same for any number of OpenMP threads. */
#include <math.h>
#include <stdint.h>

#include "spectral_internal.h"

#define VEC_PARALLEL_MIN 32768

int vec_chunks(int64_t n) { return n < VEC_PARALLEL_MIN ? 1 : HS_VEC_CHUNKS; }

/* Start of chunk c of nc (the first n % nc chunks are one element longer). */
static inline int64_t chunk_lo(int64_t n, int nc, int c) {
    int64_t r = n % nc;
    return (n / nc) * c + (c < r ? c : r);
}

/* Sum of x[k] y[k] over [lo, hi) with four interleaved accumulators (fixed order). */
static double dot_range(const double *x, const double *y, int64_t lo, int64_t hi) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t k = lo;
    for (; k + 4 <= hi; k += 4) {
        s0 += x[k] * y[k];
        s1 += x[k + 1] * y[k + 1];
        s2 += x[k + 2] * y[k + 2];
        s3 += x[k + 3] * y[k + 3];
    }
    for (; k < hi; k++) s0 += x[k] * y[k];
    return (s0 + s1) + (s2 + s3);
}

double vec_dot(const double *x, const double *y, int64_t n) {
    int nc = vec_chunks(n);
    if (nc == 1) return dot_range(x, y, 0, n);
    double part[HS_VEC_CHUNKS];
#pragma omp parallel for schedule(static)
    for (int c = 0; c < nc; c++) part[c] = dot_range(x, y, chunk_lo(n, nc, c), chunk_lo(n, nc, c + 1));
    double s = 0.0;
    for (int c = 0; c < nc; c++) s += part[c];
    return s;
}

double vec_norm(const double *x, int64_t n) { return sqrt(vec_dot(x, x, n)); }

void vec_scale(double *x, double a, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= VEC_PARALLEL_MIN)
    for (int64_t k = 0; k < n; k++) x[k] *= a;
}

void vec_axpy(double *y, double a, const double *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= VEC_PARALLEL_MIN)
    for (int64_t k = 0; k < n; k++) y[k] += a * x[k];
}

int vec_all_finite(const double *x, int64_t n, int64_t *first_bad) {
    for (int64_t k = 0; k < n; k++) {
        if (!isfinite(x[k])) {
            if (first_bad) *first_bad = k;
            return 0;
        }
    }
    return 1;
}

void vec_project(const double *q, int rows, const double *w, int64_t n, double *h, double *work) {
    int nc = vec_chunks(n);
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int c = 0; c < nc; c++) {
        int64_t lo = chunk_lo(n, nc, c), hi = chunk_lo(n, nc, c + 1);
        for (int i = 0; i < rows; i++) work[(int64_t)c * rows + i] = dot_range(q + (int64_t)i * n, w, lo, hi);
    }
    for (int i = 0; i < rows; i++) {
        double s = 0.0;
        for (int c = 0; c < nc; c++) s += work[(int64_t)c * rows + i];
        h[i] = s;
    }
}

void vec_subtract_rows(const double *q, int rows, const double *h, double *w, int64_t n) {
    int nc = vec_chunks(n);
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int c = 0; c < nc; c++) {
        int64_t lo = chunk_lo(n, nc, c), hi = chunk_lo(n, nc, c + 1);
        for (int i = 0; i < rows; i++) {
            const double *qi = q + (int64_t)i * n;
            double hi_ = h[i];
            for (int64_t k = lo; k < hi; k++) w[k] -= hi_ * qi[k];
        }
    }
}

void vec_combine_rows(const double *q, int rows, const double *c, double *y, int64_t n) {
    int nc = vec_chunks(n);
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int ch = 0; ch < nc; ch++) {
        int64_t lo = chunk_lo(n, nc, ch), hi = chunk_lo(n, nc, ch + 1);
        for (int64_t k = lo; k < hi; k++) y[k] = 0.0;
        for (int i = 0; i < rows; i++) {
            const double *qi = q + (int64_t)i * n;
            double ci = c[i];
            for (int64_t k = lo; k < hi; k++) y[k] += ci * qi[k];
        }
    }
}

/* w -= sum_i h1[i] q_i, then h2[i] = q_i . w, fused: each chunk is processed in blocks small enough that
 * the block of every q_i is still in cache when the new w is projected on it (the basis is read once for
 * both). Partial sums accumulate block by block within a chunk, chunks are added in order. */
#define VEC_FUSE_BLOCK 512
static void subtract_project(const double *q, int rows, const double *h1, double *w, int64_t n, double *h2,
                             double *work) {
    int nc = vec_chunks(n);
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int c = 0; c < nc; c++) {
        double *part = work + (int64_t)c * rows;
        for (int i = 0; i < rows; i++) part[i] = 0.0;
        int64_t lo = chunk_lo(n, nc, c), end = chunk_lo(n, nc, c + 1);
        for (; lo < end; lo += VEC_FUSE_BLOCK) {
            int64_t hi = end - lo < VEC_FUSE_BLOCK ? end : lo + VEC_FUSE_BLOCK;
            for (int i = 0; i < rows; i++) {
                const double *qi = q + (int64_t)i * n;
                double hv = h1[i];
                for (int64_t k = lo; k < hi; k++) w[k] -= hv * qi[k];
            }
            for (int i = 0; i < rows; i++) part[i] += dot_range(q + (int64_t)i * n, w, lo, hi);
        }
    }
    for (int i = 0; i < rows; i++) {
        double s = 0.0;
        for (int c = 0; c < nc; c++) s += work[(int64_t)c * rows + i];
        h2[i] = s;
    }
}

void vec_orthogonalise(const double *q, int rows, double *w, int64_t n, double *h, double *tmp, double *work) {
    if (h)
        for (int i = 0; i < rows; i++) h[i] = 0.0;
    if (rows <= 0) return;
    /* Pass 1: h1 = Q w. Then w -= Q^T h1 fused with pass 2's h2 = Q w. Then w -= Q^T h2. */
    double *h1 = tmp;
    vec_project(q, rows, w, n, h1, work);
    if (h)
        for (int i = 0; i < rows; i++) h[i] += h1[i];
    subtract_project(q, rows, h1, w, n, h1, work); /* h1 is read before it is overwritten */
    vec_subtract_rows(q, rows, h1, w, n);
    if (h)
        for (int i = 0; i < rows; i++) h[i] += h1[i];
}

void fill_rademacher(Rng *rng, double *v, int64_t n, double scale) {
    for (int64_t k = 0; k < n; k += 64) {
        uint64_t bits = rng_next_u64(rng);
        int64_t lim = n - k < 64 ? n - k : 64;
        for (int64_t j = 0; j < lim; j++) v[k + j] = ((bits >> j) & 1u) ? scale : -scale;
    }
}

void fill_normal(Rng *rng, double *v, int64_t n) {
    for (int64_t k = 0; k < n; k++) v[k] = rng_normal(rng);
}

int batch_size(int64_t n, int wanted) {
    int64_t b = ((int64_t)1 << 24) / (n > 0 ? n : 1); /* about 256 MiB for inputs plus outputs */
    if (b > 32) b = 32;
    if (b < 1) b = 1;
    if (b > wanted) b = wanted;
    return b < 1 ? 1 : (int)b;
}

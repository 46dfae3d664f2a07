/* exact.c: the full Hessian (or Gauss-Newton matrix) of a small model over a sample set, or the block of it
 * on a subset of the parameters, from batched Hessian-vector products with unit directions (see curvature.h).
 *
 * For each chunk of samples the primal forward and backward passes run once; then, layer by layer, up to
 * EXACT_MAX_DIRECTIONS unit directions of that layer's selected parameters are propagated together. A direction
 * in layer l has no tangent below l, so the tangent passes start at l and only the selected rows of parameters
 * in layers >= l are formed: the block of layer l with itself is computed twice (that gives the measured
 * asymmetry), blocks below it are filled in from the transposed blocks. Accumulation over chunks is in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../parallel/dist.h"
#include "curvature.h"

/* Rows of the selected positions, per layer: positions [begin[l], begin[l+1]) of sel are layer l's (tensors are
 * in layer order; a tensor out of order makes the layer ranges overlap and is caught by curv_layers_ordered).
 * begin: (L+1), allocated here. */
static size_t *FN(layer_ranges)(const Model *m, const int64_t *sel, size_t n) {
    size_t P = m->num_params;
    int L = m->num_layers;
    size_t *begin = hs_calloc((size_t)L + 1, sizeof(size_t));
    if (!begin) return NULL;
    for (int l = 0; l <= L; l++) begin[l] = P;
    for (int t = m->num_tensors - 1; t >= 0; t--) begin[m->tensors[t].layer] = m->tensors[t].offset;
    for (int l = L - 1; l >= 0; l--)
        if (begin[l] > begin[l + 1]) begin[l] = begin[l + 1];
    for (size_t p = 0, l = 0; l <= (size_t)L; l++) {
        while (p < n && (size_t)(sel ? sel[p] : (int64_t)p) < begin[l]) p++;
        begin[l] = p;
    }
    return begin;
}

int FN(curv_layers_ordered)(const Model *m) {
    for (int t = 0; t < m->num_tensors; t++)
        for (int u = 0; u < m->num_tensors; u++)
            if (m->tensors[u].offset > m->tensors[t].offset && m->tensors[u].layer < m->tensors[t].layer) return 0;
    return 1;
}

int FN(curv_exact_columns)(Model *m, const SampleSet *set, Curvature curvature, const int64_t *sel, size_t n,
                           const int64_t *cols, size_t ncols, int full, double *C, size_t ldc, ExactInfo *info,
                           ExactProgress progress, void *user) {
    if (set->count <= 0) return hs_error("no samples selected");
    HS_TRY(FN(curv_check_source)(m, set->source));
    for (size_t i = 0; i < ncols; i++)
        if (cols[i] < 0 || (size_t)cols[i] >= n || (i > 0 && cols[i] <= cols[i - 1]))
            return hs_error("exact columns: column positions must be ascending and below %zu", n);
    if (ldc < n) return hs_error("exact columns: leading dimension %zu below %zu rows", ldc, n);
    double t0 = hs_seconds();
    size_t P = m->num_params;
    int L = m->num_layers;
    size_t *layer_begin = FN(layer_ranges)(m, sel, n);
    if (!layer_begin) return -1;
    /* the layer of each column and the first column of each layer */
    size_t *col_begin = hs_calloc((size_t)L + 1, sizeof(size_t));
    int chunk = set->chunk > 0 ? set->chunk : 64;
    if (chunk > set->count) chunk = set->count;
    int Kmax = EXACT_MAX_DIRECTIONS;
    real *x = hs_malloc(sizeof(real) * (size_t)chunk * set->source->in_size);
    void *y = hs_malloc(FN(curv_target_bytes)(set->source) * (size_t)chunk);
    real *grad = hs_malloc(sizeof(real) * P);
    real *V = hs_calloc(P * (size_t)Kmax, sizeof(real));
    real *HV = hs_malloc(sizeof(real) * P * (size_t)Kmax);
    int rc = (col_begin && x && y && grad && V && HV) ? 0 : -1;
    if (rc == 0)
        for (size_t q = 0, l = 0; l <= (size_t)L; l++) {
            while (q < ncols && (size_t)cols[q] < layer_begin[l]) q++;
            col_begin[l] = q;
        }
    for (size_t k = 0; k < ncols && rc == 0; k++) memset(C + k * ldc, 0, sizeof(double) * n);
    double scale = 1.0 / set->count, loss = 0;
    int64_t chunks = (set->count + chunk - 1) / chunk, done = 0, total = chunks * (int64_t)ncols;

    for (int start = 0; start < set->count && rc == 0; start += chunk) {
        int count = set->count - start < chunk ? set->count - start : chunk;
        double part;
        rc = FN(samples_fill)(set->source, set->indices + start, count, x, y);
        if (rc == 0) rc = FN(model_forward)(m, x, count);
        if (rc == 0) rc = FN(model_loss)(m, y, scale, &part, NULL);
        if (rc == 0) rc = FN(model_backward)(m, y, scale, m->arch->grad_optional ? NULL : grad);
        if (rc == 0 && dist_fault_injected()) /* a test hook (tests/test_cli_scalapack.sh) */
            rc = hs_error("fault injected on rank %d of %d (HESSIAN_TEST_FAIL_RANK, a test hook)", dist_rank(),
                          dist_size());
        if (rc != 0) break;
        loss += part;
        for (int l = 0; l < L && rc == 0; l++) {
            for (size_t q0 = col_begin[l]; q0 < col_begin[l + 1] && rc == 0; q0 += (size_t)Kmax) {
                int K = (int)(col_begin[l + 1] - q0 < (size_t)Kmax ? col_begin[l + 1] - q0 : (size_t)Kmax);
#define EXACT_PARAM(k) ((size_t)(sel ? sel[cols[q0 + (size_t)(k)]] : cols[q0 + (size_t)(k)]))
                for (int k = 0; k < K; k++) V[(size_t)k * P + EXACT_PARAM(k)] = 1;
                memset(HV, 0, sizeof(real) * P * (size_t)K);
                rc = FN(model_hvp_chunk)(m, V, K, full ? 0 : l, curvature, HV);
                for (int k = 0; k < K; k++) V[(size_t)k * P + EXACT_PARAM(k)] = 0;
#undef EXACT_PARAM
                size_t c0 = full ? 0 : layer_begin[l];
#pragma omp parallel for schedule(static)
                for (int k = 0; k < K; k++) {
                    double *col = C + (q0 + (size_t)k) * ldc;
                    const real *hv = HV + (size_t)k * P;
                    if (sel)
                        for (size_t c = c0; c < n; c++) col[c] += (double)hv[sel[c]];
                    else
                        for (size_t c = c0; c < n; c++) col[c] += (double)hv[c];
                }
                done += K;
                if (progress) progress(user, done, total);
            }
        }
    }
    free(layer_begin);
    free(col_begin);
    free(x);
    free(y);
    free(grad);
    free(V);
    free(HV);
    if (rc != 0) return -1;
    if (info) {
        info->loss = loss;
        info->asymmetry = 0;
        info->seconds = hs_seconds() - t0;
        info->directions = total;
    }
    return 0;
}

/* The (n,n) matrix B of rows and columns sel (ascending) of the curvature; sel = all indices: the full matrix.
 * Column j of the curvature is row j of B (B is symmetric once done). */
static int FN(exact_rows)(Model *m, const SampleSet *set, Curvature curvature, const int64_t *sel, size_t n,
                          double *B, ExactInfo *info, ExactProgress progress, void *user) {
    int64_t *cols = hs_malloc(sizeof(int64_t) * n);
    size_t *layer_begin = FN(layer_ranges)(m, sel, n);
    int rc = cols && layer_begin ? 0 : -1;
    for (size_t i = 0; i < n && rc == 0; i++) cols[i] = (int64_t)i;
    if (rc == 0) rc = FN(curv_exact_columns)(m, set, curvature, sel, n, cols, n, 0, B, n, info, progress, user);
    free(cols);
    int L = m->num_layers;
    double asym = 0;
    if (rc == 0) {
        /* Same-layer blocks were computed from both sides: measure, then average. Other blocks: mirror. */
        for (int l = 0; l < L; l++)
            for (size_t i = layer_begin[l]; i < layer_begin[l + 1]; i++)
                for (size_t j = i + 1; j < layer_begin[l + 1]; j++) {
                    double a = B[i * n + j], b = B[j * n + i];
                    if (fabs(a - b) > asym) asym = fabs(a - b);
                    B[i * n + j] = B[j * n + i] = 0.5 * (a + b);
                }
        for (int l = 1; l < L; l++)
            for (size_t j = layer_begin[l]; j < layer_begin[l + 1]; j++)
                for (size_t c = 0; c < layer_begin[l]; c++) B[j * n + c] = B[c * n + j];
        double norm = 0;
        int finite = 1;
        for (size_t i = 0; i < n * n; i++) {
            if (!isfinite(B[i])) finite = 0;
            norm += fabs(B[i]);
        }
        if (!finite) rc = hs_error("the Hessian has non-finite entries (diverged model or bad input)");
        else if (norm == 0 && n < m->num_params)
            rc = hs_error("the Hessian block (d = %zu) is exactly zero: the loss does not depend on those parameters "
                          "here (or their units are inactive); refusing to return a silent zero", n);
        else if (norm == 0)
            rc = hs_error("the Hessian is exactly zero: the loss does not depend on the parameters (or every unit is "
                          "inactive); refusing to return a silent zero");
    }
    free(layer_begin);
    if (rc != 0) return -1;
    if (info) info->asymmetry = asym;
    return 0;
}

int FN(curv_exact)(Model *m, const SampleSet *set, Curvature curvature, double *H, ExactInfo *info,
                   ExactProgress progress, void *user) {
    size_t P = m->num_params;
    int64_t *all = hs_malloc(sizeof(int64_t) * P);
    if (!all) return -1;
    for (size_t i = 0; i < P; i++) all[i] = (int64_t)i;
    int rc = FN(exact_rows)(m, set, curvature, all, P, H, info, progress, user);
    free(all);
    return rc;
}

int FN(curv_exact_block)(Model *m, const SampleSet *set, Curvature curvature, const int64_t *sel, int64_t n,
                         double *B, ExactInfo *info, ExactProgress progress, void *user) {
    if (n <= 0) return hs_error("exact block: no parameters selected");
    for (int64_t i = 0; i < n; i++)
        if (sel[i] < 0 || (size_t)sel[i] >= m->num_params || (i > 0 && sel[i] <= sel[i - 1]))
            return hs_error("exact block: parameter indices must be ascending and below %zu (index %lld is %lld)",
                            m->num_params, (long long)i, (long long)sel[i]);
    return FN(exact_rows)(m, set, curvature, sel, (size_t)n, B, info, progress, user);
}

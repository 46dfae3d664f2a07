/* diag.c: the exact diagonal of the generalised Gauss-Newton matrix (and, for networks piecewise linear in each
 * parameter, of the Hessian) over a sample set, chunk by chunk, accumulated in double in chunk order (see
 * curvature.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/scratch.h"
#include "curvature.h"

enum { SLOT_X = 8, SLOT_Y }; /* the curvature slots of scratch.h, as hvp.c */

int FN(curv_diag)(Model *m, const SampleSet *set, Curvature curvature, double *diag, DiagInfo *info) {
    DiagInfo local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    if (set->count <= 0) return hs_error("no samples selected");
    HS_TRY(FN(curv_check_source)(m, set->source));
    int exact = FN(model_diag_exact)(m, info->why, sizeof info->why);
    if (exact < 0) return -1;
    info->exact_hessian = exact;
    if (curvature == CURVATURE_HESSIAN && !exact)
        return hs_error("the Hessian's diagonal is not the Gauss-Newton diagonal for this network: %s; ask for the "
                        "Gauss-Newton diagonal (ggn) instead",
                        info->why);
    size_t P = m->num_params;
    int chunk = set->chunk > 0 ? set->chunk : 250;
    if (chunk > set->count) chunk = set->count;
    const SampleSource *src = set->source;
    real *x = scratch_get(SLOT_X, sizeof(real) * (size_t)chunk * src->in_size);
    void *y = scratch_get(SLOT_Y, FN(curv_target_bytes)(src) * (size_t)chunk);
    if (!x || !y) return -1;
    memset(diag, 0, sizeof(double) * P);
    double t0 = hs_seconds(), total = 0, scale = 1.0 / set->count;
    for (int start = 0; start < set->count; start += chunk) {
        int n = set->count - start < chunk ? set->count - start : chunk;
        double part;
        HS_TRY(FN(samples_fill)(src, set->indices + start, n, x, y));
        HS_TRY(FN(model_forward)(m, x, n));
        HS_TRY(FN(model_loss)(m, y, scale, &part, NULL));
        HS_TRY(FN(model_diag_chunk)(m, scale, diag));
        total += part;
    }
    double sum = 0;
    for (size_t i = 0; i < P; i++) sum += fabs(diag[i]);
    if (!isfinite(sum))
        for (size_t i = 0; i < P; i++)
            if (!isfinite(diag[i])) return hs_error("the diagonal is not finite at parameter %zu", i);
    if (P > 0 && sum == 0)
        return hs_error("the diagonal is exactly zero: the loss does not depend on the parameters here (or every "
                        "unit is inactive); refusing to return a silent zero");
    info->loss = total;
    info->seconds = hs_seconds() - t0;
    return 0;
}

/* exact_scalapack.c: `hessian exact` past one machine's memory: the d x d Hessian spread over the MPI group in
 * ScaLAPACK's block-cyclic layout (parallel/scalapack.h, a 1 x R grid of whole block-columns), each rank
 * computing exactly the columns it holds (unit directions over the whole sample set, curv_exact_columns), then
 * all eigenvalues by pdsyev. No communication until the eigen-solver; the per-rank memory plan is printed, and
 * checked against MemAvailable shared by the ranks on the host, before anything large is allocated.
 *
 * Columns: when parameter order follows layer order (curv_layers_ordered: the built-in models), a column of
 * layer l starts its tangents at layer l and gets the rows of layers >= l, which hold the lower triangle pdsyev
 * reads (UPLO = 'L'); otherwise, and for --save-matrix (which writes whole columns), every column is computed
 * from layer 0. Same-layer entries are not computed twice, so no asymmetry is measured. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/progress.h"
#include "../parallel/dist.h"
#include "../parallel/scalapack.h"
#include "exact_scalapack.h"

#define EXACT_SCALAPACK_NB 64

static void progress_cb(void *user, int64_t done, int64_t total) { (void)total; progress_update(user, done, NULL); }

int FN(exact_scalapack)(Model *m, const SampleSet *set, Curvature curvature, const char *save_matrix, double *eig,
                        ExactInfo *info, double *t_matrix, double *t_eig) {
    size_t P = m->num_params;
    int R = dist_size();
    DistMatrix A;
    int64_t *cols = NULL;
    int rc = -1;
    if (dmat_plan(&A, (int64_t)P, EXACT_SCALAPACK_NB) != 0) goto done;
    /* Memory per rank: the matrix part, pdsyev's workspace, the unit directions and their products (K x P each),
     * the tangent activations of a chunk (K directions x the model's values per sample, an estimate), and what
     * the process holds already (model, data). */
    double ws = 0;
    if (dmat_eig_workspace_bytes(&A, &ws) != 0) goto done;
    int chunk = set->chunk > 0 ? set->chunk : 64;
    if (chunk > set->count) chunk = set->count;
    double K = P < EXACT_MAX_DIRECTIONS ? (double)P : EXACT_MAX_DIRECTIONS, values = 0;
    if (m->graph)
        for (int i = 0; i < m->graph->num_nodes; i++) values += (double)m->graph->nodes[i].size;
    double local = dmat_local_bytes(&A), dirs = 2.0 * K * (double)P * sizeof(real),
           tangents = values * chunk * K * sizeof(real), held = dmat_resident_bytes();
    double need = local + ws + dirs + tangents + held, avail = dmat_mem_available();
    int on_host = dmat_ranks_on_host();
    const double GB = 1e9;
    printf("exact over %d rank%s (ScaLAPACK, 1 x %d grid, %d-column blocks): d = %zu, this rank holds %d columns\n", R,
           R > 1 ? "s" : "", R, A.nb, P, A.local_cols);
    printf("memory per rank: matrix %.2f GB + pdsyev workspace %.2f GB + directions %.2f GB + tangents ~%.2f GB "
           "+ held %.2f GB = %.2f GB; available %.2f GB (MemAvailable / %d rank%s on this host)\n",
           local / GB, ws / GB, dirs / GB, tangents / GB, held / GB, need / GB, avail / on_host / GB, on_host,
           on_host > 1 ? "s" : "");
    fflush(stdout);
    if (avail > 0 && need > 0.95 * avail / on_host) {
        hs_error("exact: a rank needs about %.2f GB but %.2f GB are available per rank (MemAvailable %.2f GB over %d "
                 "ranks on this host); use more ranks or hosts, or a smaller --chunk",
                 need / GB, avail / on_host / GB, avail / GB, on_host);
        goto done;
    }
    cols = hs_malloc(sizeof(int64_t) * (size_t)(A.local_cols > 0 ? A.local_cols : 1));
    if (!cols || dmat_alloc(&A) != 0) goto done;
    for (int j = 0; j < A.local_cols; j++) cols[j] = dmat_global_column(&A, j);
    int full = save_matrix != NULL || !FN(curv_layers_ordered)(m);
    Progress pr;
    progress_begin(&pr, "Hessian columns (rank 0)", "dir",
                   (int64_t)A.local_cols * ((set->count + chunk - 1) / chunk));
    double t0 = hs_seconds();
    int crc = FN(curv_exact_columns)(m, set, curvature, NULL, P, cols, (size_t)A.local_cols, full, A.a,
                                     (size_t)A.lld, info, progress_cb, &pr);
    progress_end(&pr);
    if (crc != 0) goto done;
    double mine = hs_seconds() - t0;
    *t_matrix = dmat_max(mine);
    int finite = 0, nonzero = 0;
    if (dmat_check(&A, &finite, &nonzero) != 0) goto done;
    if (!finite) {
        hs_error("the Hessian has non-finite entries (diverged model or bad input)");
        goto done;
    }
    if (!nonzero) {
        hs_error("the Hessian is exactly zero: the loss does not depend on the parameters (or every unit is "
                 "inactive); refusing to return a silent zero");
        goto done;
    }
    printf("columns: %.2f s on the slowest rank (%s, %s)\n", *t_matrix,
           full ? "whole columns from layer 0" : "lower triangle: each column from its own layer on",
           R > 1 ? "no communication" : "one rank");
    if (save_matrix && dmat_write_npy(&A, save_matrix) != 0) goto done;
    double t1 = hs_seconds();
    if (dmat_eigenvalues(&A, eig) != 0) goto done;
    *t_eig = dmat_max(hs_seconds() - t1);
    info->asymmetry = NAN;
    rc = 0;
done:
    free(cols);
    dmat_free(&A);
    return rc;
}

/* scalapack.c: a d x d float64 matrix in ScaLAPACK's block-cyclic layout over a 1 x R BLACS grid, its
 * eigenvalues (pdsyev) and its .npy file by MPI-IO (see scalapack.h). The ScaLAPACK and BLACS entry points are
 * declared here (Debian's libscalapack-openmpi ships no C header): Fortran calling convention, 32-bit INTEGER,
 * character arguments followed by their hidden lengths. */
#include "scalapack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/common.h"

/* Bytes MemAvailable reports, or -1. */
double dmat_mem_available(void) {
    const char *test = getenv("HESSIAN_TEST_MEM_AVAILABLE"); /* a test hook: bytes to assume */
    if (test && *test) return atof(test);
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024.0;
}

double dmat_resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long size = 0, resident = 0;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return n == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : 0;
}

#ifdef HS_MPI
#include <mpi.h>

void Cblacs_get(int ictxt, int what, int *val);
void Cblacs_gridinit(int *ictxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ictxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ictxt);
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *ictxt, const int *lld, int *info);
void pdsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *ia, const int *ja,
             const int *desca, double *w, double *z, const int *iz, const int *jz, const int *descz, double *work,
             const int *lwork, int *info, size_t jobz_len, size_t uplo_len);

int dmat_available(void) { return 1; }

int dmat_ranks_on_host(void) {
    MPI_Comm host;
    int n = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host) != MPI_SUCCESS) return 1;
    MPI_Comm_size(host, &n);
    MPI_Comm_free(&host);
    return n;
}

int dmat_plan(DistMatrix *A, int64_t n, int nb) {
    memset(A, 0, sizeof *A);
    A->ctxt = -1;
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (n < 1 || nb < 1) return hs_error("distributed matrix: order %lld and block %d must be positive", (long long)n, nb);
    /* ScaLAPACK (LP64) indexes with 32-bit INTEGERs: the order and each rank's local element count must fit. */
    int64_t local_max = ((n + nb - 1) / nb + size - 1) / size * nb;
    if (n > 2147483647 / 2 || n * (local_max < n ? local_max : n) > 2147483647)
        return hs_error("distributed matrix: d = %lld over %d ranks leaves %lld x %lld local entries per rank, past "
                        "ScaLAPACK's 32-bit indices (2^31); use more ranks",
                        (long long)n, size, (long long)n, (long long)local_max);
    Cblacs_get(-1, 0, &A->ctxt);
    Cblacs_gridinit(&A->ctxt, "Row", 1, size);
    Cblacs_gridinfo(A->ctxt, &A->nprow, &A->npcol, &A->myrow, &A->mycol);
    if (A->nprow != 1 || A->npcol != size || A->mycol < 0) {
        A->ctxt = -1;
        return hs_error("BLACS: could not make a 1 x %d process grid", size);
    }
    A->n = (int)n;
    A->nb = nb;
    int zero = 0, info = 0;
    A->local_cols = numroc_(&A->n, &A->nb, &A->mycol, &zero, &A->npcol);
    A->lld = A->n;
    descinit_(A->desc, &A->n, &A->n, &A->nb, &A->nb, &zero, &zero, &A->ctxt, &A->lld, &info);
    if (info != 0) return hs_error("ScaLAPACK descinit: argument %d is illegal", -info);
    return 0;
}

int64_t dmat_global_column(const DistMatrix *A, int j) {
    return ((int64_t)(j / A->nb) * A->npcol + A->mycol) * A->nb + j % A->nb;
}

double dmat_local_bytes(const DistMatrix *A) { return 8.0 * (double)A->lld * (double)A->local_cols; }

int dmat_eig_workspace_bytes(DistMatrix *A, double *bytes) {
    int one = 1, lwork = -1, info = 0;
    double query = 0, w1 = 0, a1 = 0;
    double *a = A->a ? A->a : &a1, *w = &w1;
    /* a workspace query reads neither A nor W */
    pdsyev_("N", "L", &A->n, a, &one, &one, A->desc, w, a, &one, &one, A->desc, &query, &lwork, &info, 1, 1);
    if (info != 0) return hs_error("ScaLAPACK pdsyev workspace query: INFO = %d", info);
    *bytes = 8.0 * query;
    return 0;
}

int dmat_alloc(DistMatrix *A) {
    size_t count = (size_t)A->lld * (size_t)(A->local_cols > 0 ? A->local_cols : 1);
    A->a = hs_calloc(count, sizeof(double));
    return A->a ? 0 : -1;
}

int dmat_eigenvalues(DistMatrix *A, double *w) {
    int one = 1, lwork = -1, info = 0;
    double query = 0;
    pdsyev_("N", "L", &A->n, A->a, &one, &one, A->desc, w, A->a, &one, &one, A->desc, &query, &lwork, &info, 1, 1);
    if (info != 0) return hs_error("ScaLAPACK pdsyev workspace query: INFO = %d", info);
    lwork = (int)query + 1;
    double *work = hs_malloc(sizeof(double) * (size_t)lwork);
    if (!work) return -1;
    pdsyev_("N", "L", &A->n, A->a, &one, &one, A->desc, w, A->a, &one, &one, A->desc, work, &lwork, &info, 1, 1);
    free(work);
    if (info < 0) return hs_error("ScaLAPACK pdsyev: argument %d is illegal", -info);
    if (info > 0) return hs_error("ScaLAPACK pdsyev: INFO = %d (the eigenvalues did not converge, or ranks got "
                                  "different eigenvalues)", info);
    return 0;
}

int dmat_write_npy(const DistMatrix *A, const char *path) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    /* .npy version 1.0: magic, 2-byte header length, the header dict padded with spaces to 64 bytes, '\n' */
    char header[128];
    int len = snprintf(header + 10, sizeof header - 10,
                       "{'descr': '<f8', 'fortran_order': False, 'shape': (%d, %d), }", A->n, A->n);
    int total = 10 + len + 1;
    int padded = (total + 63) / 64 * 64;
    memcpy(header, "\x93NUMPY\x01\x00", 8);
    memset(header + 10 + len, ' ', (size_t)(padded - 10 - len));
    header[padded - 1] = '\n';
    header[8] = (char)((padded - 10) & 0xff);
    header[9] = (char)((padded - 10) >> 8);
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.part", path) >= (int)sizeof tmp) return hs_error("%s: path too long", path);
    MPI_File fh;
    int rc = MPI_File_open(MPI_COMM_WORLD, tmp, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
    int ok = rc == MPI_SUCCESS, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        if (ok) MPI_File_close(&fh);
        return hs_error("%s: cannot open for writing with MPI-IO", tmp);
    }
    MPI_File_set_size(fh, 0);
    MPI_Status st;
    if (rank == 0 && MPI_File_write_at(fh, 0, header, padded, MPI_BYTE, &st) != MPI_SUCCESS) ok = 0;
    /* whole blocks of nb consecutive global columns = consecutive rows of the file */
    for (int j = 0; j < A->local_cols && ok; j += A->nb) {
        int cols = A->local_cols - j < A->nb ? A->local_cols - j : A->nb;
        MPI_Offset at = (MPI_Offset)padded + (MPI_Offset)dmat_global_column(A, j) * A->n * 8;
        /* at most nb x n doubles per call: counted in columns of n doubles (an MPI datatype) */
        MPI_Datatype column;
        MPI_Type_contiguous(A->n, MPI_DOUBLE, &column);
        MPI_Type_commit(&column);
        if (MPI_File_write_at(fh, at, A->a + (size_t)j * A->lld, cols, column, &st) != MPI_SUCCESS) ok = 0;
        MPI_Type_free(&column);
    }
    MPI_File_close(&fh);
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        if (rank == 0) unlink(tmp);
        return hs_error("%s: MPI-IO write failed", tmp);
    }
    ok = rank != 0 || rename(tmp, path) == 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all_ok ? 0 : hs_error("%s: cannot rename the written file into place", path);
}

int dmat_check(const DistMatrix *A, int *finite, int *nonzero) {
    int flags[2] = {1, 0}, all[2];
    size_t count = (size_t)A->lld * (size_t)A->local_cols;
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(A->a[i])) flags[0] = 0;
        if (A->a[i] != 0) flags[1] = 1;
    }
    flags[0] = -flags[0]; /* min of finite = -(max of -finite) */
    MPI_Allreduce(flags, all, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    *finite = -all[0];
    *nonzero = all[1];
    return 0;
}

double dmat_max(double x) {
    double y = x;
    MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return y;
}

void dmat_free(DistMatrix *A) {
    free(A->a);
    A->a = NULL;
    if (A->ctxt >= 0) Cblacs_gridexit(A->ctxt);
    A->ctxt = -1;
}

#else /* the default build: no MPI, no ScaLAPACK */

int dmat_available(void) { return 0; }
int dmat_ranks_on_host(void) { return 1; }
static int no_scalapack(void) { return hs_error("this build has no ScaLAPACK (build with make MPI=1)"); }
int dmat_plan(DistMatrix *A, int64_t n, int nb) {
    memset(A, 0, sizeof *A);
    A->ctxt = -1;
    (void)n, (void)nb;
    return no_scalapack();
}
int64_t dmat_global_column(const DistMatrix *A, int j) { return j; }
double dmat_local_bytes(const DistMatrix *A) { return 0; }
int dmat_eig_workspace_bytes(DistMatrix *A, double *bytes) {
    *bytes = 0;
    return no_scalapack();
}
int dmat_alloc(DistMatrix *A) { return no_scalapack(); }
int dmat_eigenvalues(DistMatrix *A, double *w) { return no_scalapack(); }
int dmat_write_npy(const DistMatrix *A, const char *path) { return no_scalapack(); }
int dmat_check(const DistMatrix *A, int *finite, int *nonzero) { return no_scalapack(); }
double dmat_max(double x) { return x; }
void dmat_free(DistMatrix *A) {
    free(A->a);
    A->a = NULL;
}

#endif

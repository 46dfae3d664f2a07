/* scalapack.h: a symmetric d x d matrix in float64 spread over the MPI group (parallel/dist.h) in ScaLAPACK's
 * 2-D block-cyclic layout on a 1 x R BLACS grid, and all its eigenvalues by ScaLAPACK (make MPI=1 links Debian's
 * libscalapack-openmpi; its Fortran symbols are declared in scalapack.c, since Debian ships no C header).
 *
 * Layout: blocks of nb whole columns go round the R ranks (block b to rank b mod R), so a rank holds whole
 * columns: local column j (0 <= j < local_cols) is global column dmat_global_column(A, j), its d rows contiguous
 * at a + j * lld (column-major, lld = d). A rank computes exactly the Hessian columns it holds (unit directions),
 * with no communication until the eigen-solver.
 *
 * Eigenvalues: pdsyev with JOBZ = 'N' and UPLO = 'L' (Householder tridiagonalisation pdsytrd, then the
 * tridiagonal eigenvalues, replicated): only the lower triangle is read, and its workspace is O(d nb), not the
 * two further d x d matrices pdsyevd (eigenvectors, divide and conquer) needs: peak memory stays ~ d^2 8 / R.
 *
 * Without HS_MPI (the default build) every call fails with a message (dmat_available() is 0). */
#ifndef HS_SCALAPACK_H
#define HS_SCALAPACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int ctxt, nprow, npcol, myrow, mycol; /* BLACS context and grid (1 x R) */
    int n, nb;                            /* global order, block size */
    int local_cols, lld;                  /* this rank's columns; leading dimension (= n) */
    int desc[9];                          /* the ScaLAPACK array descriptor */
    double *a;                            /* (local_cols, lld) column-major: this rank's columns, or NULL */
} DistMatrix;

/* Whether this build has ScaLAPACK (make MPI=1). */
int dmat_available(void);

/* Sets up the grid over the whole group and the layout of an n x n matrix in blocks of nb columns; allocates
 * nothing. 0, or -1 with a message (n too large for ScaLAPACK's 32-bit indices, no BLACS). */
int dmat_plan(DistMatrix *A, int64_t n, int nb);
/* The global index of local column j. */
int64_t dmat_global_column(const DistMatrix *A, int j);
/* Bytes of this rank's matrix part, and of pdsyev's workspace (queried from ScaLAPACK, collective). */
double dmat_local_bytes(const DistMatrix *A);
int dmat_eig_workspace_bytes(DistMatrix *A, double *bytes);
/* Allocates A->a (zeroed). 0 or -1 with a message. */
int dmat_alloc(DistMatrix *A);

/* All n eigenvalues, ascending, into w (n) on every rank, from the lower triangle; overwrites A->a.
 * Collective. 0, or -1 with a message (ScaLAPACK's INFO). */
int dmat_eigenvalues(DistMatrix *A, double *w);

/* Writes the matrix as one .npy file (n x n float64, C order) at path with MPI-IO: rank 0 writes the header,
 * every rank its columns (as rows j: the matrix is symmetric) at their offsets. Collective. */
int dmat_write_npy(const DistMatrix *A, const char *path);

/* Collective checks of the computed columns: whether every entry is finite, and whether any is non-zero. */
int dmat_check(const DistMatrix *A, int *finite, int *nonzero);
/* The largest x over the group (a barrier too); x itself without MPI. */
double dmat_max(double x);

/* Releases A->a and the BLACS grid. */
void dmat_free(DistMatrix *A);

/* Memory: bytes MemAvailable (/proc/meminfo; -1 if unknown) and the number of ranks on this host (MPI shared
 * memory split; 1 without MPI), and the process's resident bytes now (/proc/self/statm; 0 if unknown).
 * HESSIAN_TEST_MEM_AVAILABLE=BYTES replaces MemAvailable (a test hook for the refusal). */
double dmat_mem_available(void);
int dmat_ranks_on_host(void);
double dmat_resident_bytes(void);

#endif

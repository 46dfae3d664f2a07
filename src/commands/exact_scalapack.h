/* exact_scalapack.h: `hessian exact` over an MPI group with ScaLAPACK (exact_scalapack.c). */
#ifndef HS_EXACT_SCALAPACK_H
#define HS_EXACT_SCALAPACK_H

#include "../curvature/curvature.h"

/* The whole Hessian (or GGN) of m over set, spread over the group, and all its d = P eigenvalues (ascending)
 * into eig (P) on every rank, by pdsyev; --save-matrix's file (whole columns) when save_matrix is set. Prints
 * the per-rank memory plan first and refuses (-1 with a message) when a rank would run out. info gets the
 * loss and this rank's directions (asymmetry NaN: not measured); t_matrix and t_eig are the slowest rank's
 * seconds. Collective: every rank calls it with the same arguments. */
int FN(exact_scalapack)(Model *m, const SampleSet *set, Curvature curvature, const char *save_matrix, double *eig,
                        ExactInfo *info, double *t_matrix, double *t_eig);

#endif

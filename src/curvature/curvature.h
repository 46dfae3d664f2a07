/* curvature.h: loss, gradient, Hessian-vector products and the exact Hessian of a model over a set of
 * samples (precision-generic). Samples are processed in chunks; chunk results are accumulated in double in
 * a fixed order, and every reduction in the kernels has an order fixed by the shapes alone, so the same inputs
 * give the same bits for any thread count (tests/test_threads.c). The loss is the mean over the whole set
 * of the model's per-sample loss (m->loss: cross-entropy with class labels, or squared error with real
 * targets); samples come from a SampleSource (src/data/samples.h), whose input shape and targets must suit
 * the model (curv_check_source; every function here checks it first).
 *
 * Curvature is the Hessian, or the generalised Gauss-Newton matrix (CURVATURE_GGN, positive semi-definite).
 * "No silent zeros": results that come out non-finite, or exactly zero for a non-zero direction, are errors.
 *
 * Data parallelism (parallel/dist.h): in a group of R > 1 processes (mpirun, make MPI=1) curv_loss_grad and
 * curv_hvp split the set's chunks over the ranks as contiguous ranges of whole chunks (unless set->local) and
 * combine the per-chunk sums by the ordered chain, so every rank returns the single-process bits. A rank r > 0
 * keeps its chunks' partial results until the running sum arrives: (its chunks) x K x P values in the working
 * precision beside the usual buffers. Every rank must make the same calls; a rank whose call fails must end
 * the group (dist_abort; the CLI does), since the others wait for its sum. */
#ifndef HS_CURVATURE_H
#define HS_CURVATURE_H

#include "../data/samples.h"
#include "../models/model.h"

/* The samples a computation runs on: samples indices[0..count) of source, never augmented. */
typedef struct {
    const SampleSource *source;
    const int *indices; /* (count) */
    int count;
    int chunk;          /* samples per pass (memory vs. speed); <= 0: automatic (128 for models without batch norm
                            of at most 16,384 primal values per sample, 250 for others; see hvp.c) */
    int local;          /* 1: this process computes the whole set alone, also in a data-parallel (MPI) run */
} SampleSet;

/* Whether the source's samples fit the model: the same per-sample input shape; cross-entropy needs class
 * labels below m->classes, squared error real targets of m->classes values per sample. 0, or -1 with a
 * message naming the files and both shapes. */
int FN(curv_check_source)(const Model *m, const SampleSource *s);

/* Bytes of one sample's targets in the working precision: 4 (int32 label) or sizeof(real) * target_size. */
size_t FN(curv_target_bytes)(const SampleSource *s);

/* Loss (mean), accuracy (fraction correct; NaN for a squared-error loss) and gradient (P, may be NULL) over
 * the set. */
int FN(curv_loss_grad)(Model *m, const SampleSet *set, double *loss, double *accuracy, double *grad);

/* hv (K,P) = C v for K directions v (K,P), C = Hessian or GGN of the mean loss over the set. Also returns the
 * loss (may be NULL). */
int FN(curv_hvp)(Model *m, const SampleSet *set, const double *v, int K, Curvature curvature, double *hv,
                 double *loss);

/* Primal passes kept between products over the same fixed sample set (a fixed operator's Lanczos, power
 * iteration, trace or density): each chunk of this process has its own model replica (sharing m's parameters)
 * holding its inputs, activations and their gradients, so a product runs only the tangent passes. The result
 * is the same bits as curv_hvp's (same chunks, same operations). The replicas are reused only while m's
 * parameters, batch-norm buffers and modes, the sample set and the chunk size are those they ran with (all
 * compared on every call); otherwise they are recomputed. Kept when the chunks of this process take at most
 * HVP_CACHE_BYTES; beyond that curv_hvp_cached is curv_hvp. Zero-initialise; hvp_cache_free releases it. */
#define HVP_CACHE_BYTES ((size_t)1 << 30)
typedef struct {
    int decided, enabled; /* whether caching was considered for this model and set, and is on */
    int valid;            /* the replicas hold the primal passes of the chunks below */
    Model **replicas;     /* (count) one per chunk lo..lo+count-1 */
    real **x;             /* (count) each chunk's inputs (chunk, in_size) */
    double *loss;         /* (count) each chunk's share of the mean loss */
    int count, lo, chunk;
    const SampleSource *source;
    int *indices;         /* (set_count) the set it was computed for */
    int set_count;
    real *params;         /* (P) the parameters it ran with */
    real *buffers;        /* (num_buffer_values) and the batch-norm running statistics */
    int training, bn_mode;
    int64_t reused;       /* products served from the replicas (tests check it moves) */
} HvpCache;
int FN(curv_hvp_cached)(Model *m, const SampleSet *set, const double *v, int K, Curvature curvature, double *hv,
                        double *loss, HvpCache *cache);
void FN(hvp_cache_free)(HvpCache *cache);

typedef struct {
    double loss;
    double asymmetry;     /* max |H_ij - H_ji| over the entries computed twice (same-layer blocks) */
    double seconds;
    int64_t directions;   /* unit directions propagated */
} ExactInfo;

typedef void (*ExactProgress)(void *user, int64_t done, int64_t total);

/* Unit directions propagated together per tangent pass by the exact matrix builders below. 256 rather than 512:
 * the study cnn's full Hessian on 1,000 images (chunks of 64) builds in 12.9-14.0 s against 14.0-15.2 s
 * (bench_cnn, 3 runs each, Intel Xeon AVX-512, 2 threads) with half the tangent memory; 128 gave 13.6 s.
 * Overridable (-D) for such experiments. */
#ifndef EXACT_MAX_DIRECTIONS
#define EXACT_MAX_DIRECTIONS 256
#endif

/* The full P x P matrix (row-major, double) of the Hessian or GGN over the set, from batched HVPs with unit
 * directions: a direction in layer l has zero tangents below l, so only rows of layers >= l are computed;
 * the rest follows by symmetry. H is symmetrised on return. */
int FN(curv_exact)(Model *m, const SampleSet *set, Curvature curvature, double *H, ExactInfo *info,
                   ExactProgress progress, void *user);

/* The (n,n) block (row-major, double) of that matrix on rows and columns sel (n strictly ascending parameter
 * indices): only the n unit directions are propagated (info->directions = n per sample chunk), each from its
 * own layer on; same-layer entries are computed twice (info->asymmetry), then B is symmetrised. Equals the
 * block of curv_exact's matrix. */
int FN(curv_exact_block)(Model *m, const SampleSet *set, Curvature curvature, const int64_t *sel, int64_t n,
                         double *B, ExactInfo *info, ExactProgress progress, void *user);

/* Columns cols (ncols strictly ascending positions in 0..n) of the (n,n) matrix of rows and columns sel (n strictly
 * ascending parameter indices; NULL: all P, n = P), summed over the set in double: column k (n rows) at
 * C + k * ldc (C: (ncols, ldc), ldc >= n). full = 1: every row, the tangents starting at layer 0. full = 0: a
 * column of layer l starts its tangents at l and gets only the rows of layers >= l (the others are 0); when
 * curv_layers_ordered(m), those include every row at or below the column's position (the lower triangle).
 * info->asymmetry is 0 (nothing is computed twice). curv_exact and curv_exact_block are built on this. */
int FN(curv_exact_columns)(Model *m, const SampleSet *set, Curvature curvature, const int64_t *sel, size_t n,
                           const int64_t *cols, size_t ncols, int full, double *C, size_t ldc, ExactInfo *info,
                           ExactProgress progress, void *user);

/* 1 when parameter order follows layer order (a parameter at a higher offset never belongs to an earlier
 * layer), as in the built-in models; ONNX files may differ. */
int FN(curv_layers_ordered)(const Model *m);

typedef struct {
    double loss;
    int exact_hessian;  /* 1: the diagonal is the Hessian's as well as the Gauss-Newton matrix's */
    char why[200];      /* when not: the first node that curves (model_diag_exact) */
    double seconds;
} DiagInfo;

/* The exact diagonal (P, double) of the generalised Gauss-Newton matrix of the mean loss over the set, by
 * carrying `classes` vectors per sample back through the linearised network and summing squared per-sample
 * gradients (model_diag_chunk), chunk after chunk in order. With curvature CURVATURE_HESSIAN it is refused
 * (hs_error) unless it equals the Hessian's diagonal (info->exact_hessian; the condition is in
 * model_diag_exact); CURVATURE_GGN always runs. Batch norm must use running statistics. Non-finite entries, or
 * a diagonal that is exactly zero, are errors. */
int FN(curv_diag)(Model *m, const SampleSet *set, Curvature curvature, double *diag, DiagInfo *info);

/* Fills inputs x (count, in_size) and targets (int32 labels (count) or reals (count, target_size)) of samples
 * indices (count), unaugmented. */
int FN(samples_fill)(const SampleSource *s, const int *indices, int count, real *x, void *targets);

#endif

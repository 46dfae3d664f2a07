/* samples.h: where the curvature and training code gets its samples: a SampleSource fills chunks of inputs
 * and targets for any list of sample indices, in float or double, whatever the data set behind it:
 *   samples_from_cifar10  CIFAR-10 (train or test split), normalised images (3,32,32), int32 labels, with the
 *                         study's augmentation (random crop with padding 4, horizontal flip) on request;
 *   samples_from_npy      NumPy arrays: inputs X (N, ...) float32/float64, targets Y either int32/int64 class
 *                         labels (N,) or float32/float64 values (N, ...); never augmented.
 * A SampleLoader walks over a source in shuffled (optionally augmented) batches, as training needs.
 * Precision-independent (compiled once); errors go through hs_error().
 *
 * Usage:
 *   SampleSource s;
 *   samples_from_npy("X.npy", "Y.npy", &s);          or samples_from_cifar10("data", CIFAR10_TRAIN, &s)
 *   s.fill(&s, indices, NULL, n, x, sizeof(float), y);   x (n, s.in_size) floats, y (n) int32 labels
 *   samples_free(&s); */
#ifndef HS_SAMPLES_H
#define HS_SAMPLES_H

#include <stddef.h>
#include <stdint.h>

#include "../core/rng.h"
#include "../io/npy.h"
#include "cifar10.h"

#define SAMPLES_MAX_DIMS 4

typedef enum { TARGET_LABELS, TARGET_VALUES } TargetKind;

/* One augmentation of one sample (CIFAR-10: crop offsets dy, dx in [0, 8], 4 = none; flip 0 or 1). */
typedef struct {
    int dy, dx, flip;
} SampleAug;

typedef struct SampleSource {
    long count;                         /* samples (at most INT_MAX) */
    int in_ndim;                        /* per-sample input shape, e.g. (3,32,32) */
    int64_t in_shape[SAMPLES_MAX_DIMS];
    size_t in_size;                     /* per-sample input count */
    TargetKind target_kind;
    int num_classes;    /* labels: the data set's class count (CIFAR-10: 10; .npy: max label + 1); values: 0 */
    size_t target_size; /* values per sample (labels: 1) */
    int target_ndim;    /* per-sample target shape (labels: 0, i.e. a scalar) */
    int64_t target_shape[SAMPLES_MAX_DIMS];
    char inputs_name[512], targets_name[512]; /* for messages: the files (or the CIFAR-10 folder and split) */
    const char *unit;   /* what a sample is called in messages: "images" (CIFAR-10) or "samples" */
    /* x (n, in_size) in elem_size (4: float, 8: double) and targets (int32 (n) labels, or (n, target_size)
     * values in elem_size; may be NULL) of samples indices[0..n). aug (n) or NULL: augmentation per sample;
     * only sources with draw_augment take it. Parallel inside (OpenMP); the result does not depend on the
     * thread count. 0 or -1 (bad elem_size, index out of range, aug given to a source without augmentation). */
    int (*fill)(const struct SampleSource *s, const int *indices /* (n) */, const SampleAug *aug /* (n) or NULL */,
                int n, void *x /* (n, in_size) */, size_t elem_size, void *targets /* (n) or (n, target_size) */);
    /* Draws one random augmentation; NULL: the source has no augmentation. */
    void (*draw_augment)(Rng *rng, SampleAug *aug);
    void (*free)(struct SampleSource *s);
    void *impl;
} SampleSource;

/* CIFAR-10 split `split` from dir (see cifar10_load); the source owns the data. */
int samples_from_cifar10(const char *dir, Cifar10Split split, SampleSource *s);
/* The same over data loaded by the caller (borrowed: it must outlive the source). */
int samples_wrap_cifar10(const Cifar10 *data, const char *name, SampleSource *s);

/* Inputs X (N, d1, ..., dk), 1 <= k <= 4, float32 or float64; targets Y with the same N: int32/int64 labels of
 * shape (N,) (TARGET_LABELS, every label >= 0 and below 2^31 - 1; num_classes = max label + 1) or
 * float32/float64 values (N, ...) (TARGET_VALUES, up to 4 dimensions after N). Both files are read once and
 * kept as stored (converted per chunk by fill). Refused, with the file named: fortran_order, another dtype,
 * N mismatch, N = 0, NaN or infinite values (naming the first bad sample and its element), negative labels. */
int samples_from_npy(const char *inputs_path, const char *targets_path, SampleSource *s);
/* The same over arrays in memory (copied, checked the same way): inputs x (x_shape) of x_dtype NPY_F32/NPY_F64,
 * targets y (y_shape) of y_dtype NPY_I32/NPY_I64 (labels) or NPY_F32/NPY_F64 (values). */
int samples_from_arrays(const void *x, NpyDtype x_dtype, int x_ndim, const int64_t *x_shape, const void *y,
                        NpyDtype y_dtype, int y_ndim, const int64_t *y_shape, SampleSource *s);

void samples_free(SampleSource *s);

/* "(3,32,32)": the per-sample input shape; with count >= 0, "(count,3,32,32)". */
void samples_shape_text(const SampleSource *s, long count, char *out, size_t size);
/* The same for the targets: labels "(N,)", values "(N,10)". */
void samples_target_shape_text(const SampleSource *s, char *out, size_t size);

/* Batches over samples offset..offset+count-1 of a source:
 *   shuffle: each epoch shuffles the identity permutation with the loader's rng (seeded: runs repeat);
 *   augment: then one augmentation per sample in batch order from the same rng (needs draw_augment), drawn
 *   serially, so a batch does not depend on the number of OpenMP threads.
 * Setting position to -1 makes the next call start a new (reshuffled) epoch. */
typedef struct {
    const SampleSource *src;
    int offset, count, batch;
    int shuffle, augment;
    int drop_last; /* ignore a final partial batch (init sets 0; set it after init) */
    Rng rng;
    int *order;    /* (count) */
    int *indices;  /* (batch) */
    SampleAug *aug; /* (batch) */
    int position;  /* next index into order; -1: the next call starts a new epoch */
    int epoch;     /* epochs started so far */
} SampleLoader;

int sample_loader_init(SampleLoader *ld, const SampleSource *src, int offset, int count, int batch, int shuffle,
                       int augment, uint64_t seed);
void sample_loader_free(SampleLoader *ld);
int sample_loader_batches(const SampleLoader *ld);
/* Fills the next batch; returns its size, 0 at the end of an epoch (the next call starts a new one), -1 on
 * error. targets may be NULL. */
int sample_loader_next(SampleLoader *ld, void *x /* (B, in_size) */, size_t elem_size, void *targets);

#endif

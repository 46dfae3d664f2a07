/* cifar10.h: the CIFAR-10 data set in the official binary layout (cifar-10-batches-bin/data_batch_1..5.bin,
 * test_batch.bin: records of 1 label byte + 3,072 pixel bytes, R, G, B planes of 32x32, row-major),
 * normalisation, torchvision-style augmentation and seeded batch loaders. Errors go through hs_error(). */
#ifndef HS_CIFAR10_H
#define HS_CIFAR10_H

#include <stdint.h>

#include "../core/rng.h"

#define CIFAR10_SIDE 32
#define CIFAR10_CHANNELS 3
#define CIFAR10_PIXELS (CIFAR10_CHANNELS * CIFAR10_SIDE * CIFAR10_SIDE) /* 3072 */
#define CIFAR10_RECORD (1 + CIFAR10_PIXELS)                               /* 3073 */
#define CIFAR10_CLASSES 10

extern const float cifar10_mean[3]; /* 0.4914, 0.4822, 0.4465 */
extern const float cifar10_std[3];  /* 0.2023, 0.1994, 0.2010 */

typedef struct {
    int n;
    uint8_t *labels; /* (n) */
    uint8_t *pixels; /* (n, 3, 32, 32) raw bytes */
} Cifar10;

typedef enum { CIFAR10_TRAIN, CIFAR10_TEST } Cifar10Split;

/* dir is either the folder holding cifar-10-batches-bin/ or that folder itself. Training = data_batch_1..5
 * in that order (50,000 images), test = test_batch (10,000). Errors: missing file (the message says how to
 * get the data), size not a multiple of 3,073, label >= 10. */
int cifar10_load(const char *dir, Cifar10Split split, Cifar10 *data);
/* Reads exactly the records of one file (used by cifar10_load and tests); an empty file is an error. */
int cifar10_load_file(const char *path, Cifar10 *data);
void cifar10_free(Cifar10 *data);

/* Writes image `index`, normalised, as (3, 32, 32) floats/doubles. With augmentation: the raw image is
 * padded by 4 zero pixels on each side, a 32x32 window at offset (dy, dx) in [0, 8] is cut out (dy = dx = 4
 * is the un-augmented image), then flipped horizontally if flip != 0, then normalised. Zero padding is on the
 * raw bytes, so padded pixels normalise to -mean/std as in torchvision (RandomCrop before Normalize). */
void cifar10_image_f32(const Cifar10 *data, int index, int dy, int dx, int flip, float *out /* (3,32,32) */);
void cifar10_image_f64(const Cifar10 *data, int index, int dy, int dx, int flip, double *out /* (3,32,32) */);

/* Draws one augmentation (dy, dx uniform in [0, 8], flip with probability 0.5). */
void cifar10_draw_augmentation(Rng *rng, int *dy, int *dx, int *flip);

/* A loader walks over a subset of images in batches.
 *   shuffle: a new seeded permutation each epoch (epoch e uses the stream of seed, so runs repeat).
 *   augment: random crop + flip per image.
 * Selection: images offset..offset+count-1 in file order. */
typedef struct {
    const Cifar10 *data;
    int offset, count;
    int batch;
    int shuffle, augment;
    int drop_last; /* ignore a final partial batch (init sets 0; set it after init) */
    Rng rng;
    int *order; /* (count) */
    int position; /* next index into order; -1: the next call starts a new epoch */
    int epoch;    /* epochs started so far (0 before the first batch) */
} Cifar10Loader;

int cifar10_loader_init(Cifar10Loader *ld, const Cifar10 *data, int offset, int count, int batch, int shuffle,
                        int augment, uint64_t seed);
void cifar10_loader_free(Cifar10Loader *ld);
/* Batches per epoch. */
int cifar10_loader_batches(const Cifar10Loader *ld);
/* Fills the next batch (float or double images, int32 labels); returns its size, 0 at the end of an epoch
 * (then the next call starts a new epoch, reshuffled). elem_size is 4 (float) or 8 (double); anything else
 * returns -1 with hs_error. labels may be NULL. Each epoch shuffles the identity permutation with the loader's
 * rng, then draws (dy, dx, flip) per image in batch order from the same rng (serially, so the result does not
 * depend on the number of OpenMP threads). */
int cifar10_loader_next(Cifar10Loader *ld, void *images /* (B,3,32,32) */, int elem_size, int32_t *labels /* (B) */);
/* Makes the loader start a new epoch at the next call (reshuffles). */
void cifar10_loader_restart(Cifar10Loader *ld);

#endif

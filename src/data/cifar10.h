/* cifar10.h: the CIFAR-10 data set in the official binary layout (cifar-10-batches-bin/data_batch_1..5.bin,
 * test_batch.bin: records of 1 label byte + 3,072 pixel bytes, R, G, B planes of 32x32, row-major),
 * normalisation and torchvision-style augmentation (batches: samples.h's SampleLoader). Errors go through
 * hs_error(). */
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

#endif

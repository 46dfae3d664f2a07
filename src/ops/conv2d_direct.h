/* conv2d_direct.h: direct (patch-free) kernels for narrow stride-1 convolutions, used by conv2d.c in place of
 * "patch matrix x weights" GEMMs when a layer has few output channels (the study CNN: 5), where a GEMM with
 * 5 rows spends its time building and reading a patch matrix 25 to 75 times the size of the image.
 *
 * Geometry (the "wide" layout of conv2d.c): an image is zero-padded to xp (C, Hp, Wp), stored with `slack`
 * readable zeros after it; output column l = oh*Wp + ow, l < cols = (Ho-1)*Wp + Wo (columns with ow >= Wo are
 * gaps that belong to no output). Patch row r = (c, i, j) is the run of xp starting at
 * off(r) = c*Hp*Wp + i*dh*Wp + j*dw, so with rows of output-shaped values Y (rows, cols):
 *   forward        Y[b, l]   = sum_r w[b, r] xp[off(r) + l]
 *   weight grad    dw[b, r] (+)= sum_l dy[b, l] xp[off(r) + l]     (dy zero in the gaps and past cols)
 *   backward data  dxp[c, q] = sum_{o, i, j} w[o, c, i, j] dy[o, q - i*dh*Wp - j*dw]   (dy zero outside [0, cols))
 * Gradient-side rows dy are held "padded": row stride ld, the values at offset `front`, zeros in front, in the
 * gaps and behind (direct_spread writes them so). Each kernel sums in a fixed order: results do not depend on
 * the thread count. */
#ifndef HS_OPS_CONV2D_DIRECT_H
#define HS_OPS_CONV2D_DIRECT_H

#include <stddef.h>

#include "../core/common.h"
#include "shapes.h"


typedef struct {
    int C, kh, kw, dh, dw; /* input channels, kernel, dilation */
    int Hp, Wp;            /* padded input size */
    int pad_t, pad_l;      /* where the image sits in the padded plane */
    int H, W, Ho, Wo;      /* image and output size */
    size_t plane;          /* Hp*Wp */
    int cols;              /* (Ho-1)*Wp + Wo */
    int R;                 /* C*kh*kw */
    size_t front;          /* zeros before a padded dy row: (kh-1)*dh*Wp + (kw-1)*dw */
    size_t ld;             /* padded dy row stride */
    size_t input_size;     /* values of a padded input buffer: C*plane + slack */
} DirectShape;

DirectShape FN(conv_direct_shape)(const ConvShape *s);

/* Where patch row r = (c, i, j) starts in a padded input. */
static inline size_t direct_row_offset(const DirectShape *d, size_t r) {
    size_t c = r / (size_t)(d->kh * d->kw), i = r / (size_t)d->kw % (size_t)d->kh, j = r % (size_t)d->kw;
    return c * d->plane + i * (size_t)d->dh * d->Wp + j * (size_t)d->dw;
}

/* xp (C, Hp, Wp) + slack = x (C, H, W) zero-padded; returns xp. */
const real *FN(direct_input)(real *xp /* (input_size) */, const real *x /* (C,H,W) */, const DirectShape *d);

/* dst (rows, ld) = the rows of out (rows, Ho*Wo) in padded wide form (zeros elsewhere). */
void FN(direct_spread)(real *dst /* (rows, ld) */, const real *out /* (rows, Ho*Wo) */, int rows,
                       const DirectShape *d);

/* Y (rows, cols) = w (rows, R) x patches(xp). */
void FN(direct_forward)(real *Y /* (rows, cols) */, const real *w /* (rows, R) */, int rows,
                        const real *xp /* (input_size) */, const DirectShape *d);

/* dw (rows, R) = (accumulate: +=) dy x patches(xp)^T; dy: padded rows (rows, ld). */
void FN(direct_weight_grad)(real *dw /* (rows, R) */, int accumulate, const real *dy /* (rows, ld) */, int rows,
                            const real *xp /* (input_size) */, const DirectShape *d);

/* The weight gradient summed over many samples without a lane reduction per sample: acc (rows, R, VL) += the
 * lane vectors of dy x patches(xp)^T; direct_lanes_reduce(dw, acc, rows * R) then adds each entry's VL lanes
 * (a pairwise tree) to dw (rows * R). VL = direct_lanes(). */
int FN(direct_lanes)(void);
void FN(direct_weight_grad_lanes)(real *acc /* (rows, R, VL) += */, const real *dy /* (rows, ld) */, int rows,
                                  const real *xp /* (input_size) */, const DirectShape *d);
void FN(direct_lanes_reduce)(real *dw /* (n) += */, const real *acc /* (n, VL) */, size_t n);
/* acc (rows, VL) += the lane vectors of each padded row's sum (dy zero outside its values): a bias gradient in lane
 * form, summed by direct_lanes_reduce like the weights (a scalar sum per row was a chain of dependent additions as
 * long as the row, as slow as the weight gradient itself for the cnn's first layer on a Xeon with AVX-512). */
void FN(direct_row_sums_lanes)(real *acc /* (rows, VL) += */, const real *dy /* (rows, ld) */, int rows,
                               const DirectShape *d);

/* dx (C, H, W) = (accumulate: +=) conv^T(dy, w), dy: padded rows (O, ld); dxp: scratch (input_size). */
void FN(direct_backward_data)(real *dx /* (C,H,W) */, int accumulate, const real *w /* (O, R) */, int O,
                              const real *dy /* (O, ld) */, real *dxp /* (input_size) */, const DirectShape *d);

#endif

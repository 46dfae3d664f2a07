/* shapes.h: the precision-independent part of the ops (ops.h): the geometry of convolution and pooling
 * windows (ConvShape, PoolShape) and the broadcasting plan of the binary ops (Binary), with the functions that
 * fill them. Defined once in shapes.c (compiled once, not per precision); ops.h includes this header and
 * documents the passes that use these structs. */
#ifndef HS_OPS_SHAPES_H
#define HS_OPS_SHAPES_H

#include <stddef.h>
#include <stdint.h>

/* ---- conv2d (ONNX Conv / PyTorch Conv2d; see ops.h) ---- */
typedef struct {
    int C, H, W;      /* input channels and size */
    int O, k;         /* output channels; k, stride, pad: the square case's values (= kh, stride_h, pad_t) */
    int stride, pad;
    int Ho, Wo;       /* output size (filled by conv2d_shape / conv2d_shape_general) */
    int kh, kw, groups;
    int stride_h, stride_w, dil_h, dil_w;
    int pad_t, pad_l, pad_b, pad_r;
} ConvShape;

/* Square kernel, equal strides and pads, groups 1, dilation 1. */
ConvShape conv2d_shape(int C, int H, int W, int O, int k, int stride, int pad);
/* Ho = floor((H + pad_t + pad_b - dil_h*(kh-1) - 1) / stride_h) + 1 (0 when the window does not fit), Wo alike.
 * The passes reject (hs_error) shapes with C or O not divisible by groups, or sizes, strides or dilations < 1. */
ConvShape conv2d_shape_general(int C, int H, int W, int O, int kh, int kw, int groups, int stride_h, int stride_w,
                               int dil_h, int dil_w, int pad_t, int pad_l, int pad_b, int pad_r);

/* ---- pooling windows, shared by max-pool and average pool (see ops.h for the output-size rule) ---- */
typedef struct {
    int C, H, W;
    int k, stride, pad; /* the square case's values (= kh, stride_h, pad_t) */
    int Ho, Wo;
    int kh, kw, stride_h, stride_w;
    int pad_t, pad_l, pad_b, pad_r;
    int ceil_mode, count_include_pad;
} PoolShape;

/* Square window, equal strides and pads, floor mode. */
PoolShape maxpool_shape(int C, int H, int W, int k, int stride, int pad);
PoolShape pool_shape_general(int C, int H, int W, int kh, int kw, int stride_h, int stride_w, int pad_t, int pad_l,
                             int pad_b, int pad_r, int ceil_mode, int count_include_pad);

/* ---- binary Add/Sub/Mul/Div with numpy broadcasting (see ops.h) ---- */
typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV } BinaryKind;
typedef struct {
    BinaryKind kind;
    int ndim;                         /* output dimensions per sample: max(a_ndim, b_ndim) */
    int64_t out_shape[4];             /* per-sample output shape (first ndim entries) */
    size_t out_size, a_size, b_size;  /* per-sample element counts */
    int a_batched, b_batched;
    int64_t a_stride[4], b_stride[4]; /* element strides of a and b per output dimension, 0 on broadcast dims */
} Binary;

int binary_setup(Binary *op, BinaryKind kind, int a_ndim, const int64_t *a_shape /* (a_ndim) */, int a_batched,
                 int b_ndim, const int64_t *b_shape /* (b_ndim) */, int b_batched);

#endif

/* conv2d.c: 2-D convolution (kernel kh x kw, groups, per-axis stride and dilation, zero padding per side,
 * optional bias; ONNX Conv) and its four passes (see ops.h), as patch matrices times weights (GEMM), with
 * OpenMP over samples.
 *
 * Per image the patch matrix `col` has one row per (c, i, j), c < C, i < kh, j < kw: R = C*kh*kw rows. With
 * G groups of Cg = C/G input and Og = O/G output channels, group g's rows are the contiguous block
 * g*Rg .. (g+1)*Rg, Rg = Cg*kh*kw, W viewed as (O, Rg), and out[g*Og..] = W[g*Og..] col[g*Rg..] + b: one
 * GEMM per group (a single GEMM for G = 1, as before groups existed). Three patch layouts, chosen by shape:
 *   pointwise (1x1, stride 1, no padding): col is the input itself, (C, H*W); nothing is copied.
 *   wide (stride 1 on both axes): the input is zero-padded to (C, Hp, Wp) if needed, and row (c, i, j) is the
 *     contiguous run of Lw = (Ho-1)*Wp + Wo values starting at (c, i*dil_h, j*dil_w): one copy per row instead
 *     of one per output row. Column l = oh*Wp + ow; the columns with ow >= Wo are "gaps" that belong to no
 *     output: outputs are gathered from the valid columns and gradients enter with zeros in the gaps.
 *   general (a stride > 1): classic im2col, (C*kh*kw, Ho*Wo).
 * Narrow layers (groups 1, stride 1, at most conv2d_direct_max_channels output channels and DIRECT_MAX_ROWS
 * output-shaped rows per product; the study CNN's 5-channel layers) skip the patch matrix: conv2d_direct.c's
 * kernels read the (padded) image in the wide layout's geometry directly ("direct" below), so col holds the
 * padded image and the weight gradients are summed in lane form over a block of samples.
 * Small output planes (Ho*Wo < conv2d_batch_below, groups 1; ResNet's late stages: 4x4, 2x2, 1x1 at 32x32)
 * would make the per-sample GEMM a matrix-vector product that packs the whole weight matrix for a handful of
 * columns; there the im2col columns of a batch of samples sit side by side, (C*kh*kw, B*L), and each pass is
 * one GEMM per batch (threaded by FN(gemm)'s tiles), with B*L about conv2d_batch_columns (see "batched"); planes
 * with no more pixels than the kernel has taps (ResNet's 2x2 and 1x1) multiply by the convolution's dense matrix
 * instead, on the images as they lie (see "tiny input planes").
 * Convolution is bilinear in (in, W), so for direction k:
 *   t_out   = conv(t_in, W) + conv(in, t_W) + t_b
 *   td_in   = conv^T(td_out, W) + conv^T(d_out, t_W)
 *   td_W   += td_out (x) col(in) + d_out (x) col(t_in)
 *   td_b   += sum td_out
 * With one direction (an HVP) the two terms of td_in, and those of td_W, are one GEMM each: the operands side by
 * side along the inner dimension ("paired" products; GEMMs on ResNet's small planes gain from the longer sums).
 * Tangents are (N, K, ...): the K directions of one sample form one (K*O, Ho*Wo) matrix, so the weight
 * terms of all directions are a single GEMM per sample (per direction and group when G > 1). Parameter
 * gradients are summed over fixed blocks of samples, so results are the same bits for any thread count. */
#include <omp.h>
#include <string.h>

#include "../core/scratch.h"
#include "blas.h"
#include "conv2d_direct.h"
#include "ops.h"

/* Scratch slots: per thread inside parallel regions, then on the calling thread. */
enum { SLOT_COL, SLOT_COL2, SLOT_PAD, SLOT_WIDE, SLOT_WIDE2, SLOT_STACKED, SLOT_ACC, SLOT_INDEX };
/* The stacked bias tangents of conv2d_tangent_forward's dense path share the sparse path's index slot (a call takes
 * one path or the other; slots past 7 belong to src/curvature, see scratch.h). */
#define SLOT_BIAS SLOT_INDEX

/* Parameter-gradient accumulators: at most this many sample blocks, and at most this many values in all. */
#define CONV_ACC_BLOCKS 16
#define CONV_ACC_VALUES ((size_t)16 << 20)

static int conv_check(const ConvShape *s) {
    if (s->C < 1 || s->H < 1 || s->W < 1 || s->O < 1 || s->kh < 1 || s->kw < 1 || s->groups < 1 ||
        s->C % s->groups || s->O % s->groups || s->stride_h < 1 || s->stride_w < 1 || s->dil_h < 1 || s->dil_w < 1 ||
        s->pad_t < 0 || s->pad_l < 0 || s->pad_b < 0 || s->pad_r < 0 || s->Ho < 1 || s->Wo < 1)
        return hs_error("conv2d: invalid shape C=%d H=%d W=%d O=%d kernel %dx%d groups %d stride %d,%d dilation %d,%d "
                        "pads %d,%d,%d,%d (output %dx%d)",
                        s->C, s->H, s->W, s->O, s->kh, s->kw, s->groups, s->stride_h, s->stride_w, s->dil_h, s->dil_w,
                        s->pad_t, s->pad_l, s->pad_b, s->pad_r, s->Ho, s->Wo);
    return 0;
}

/* Layers with groups 1, stride 1 and at most this many output channels run conv2d_direct.c's kernels (measured,
 * the study CNN's 5-channel layers on 1,000 images: gradient 0.064 -> 0.048 s, HVP 0.140 -> 0.099 s, f32, 2 threads,
 * Xeon with AVX-512); wider layers keep the GEMMs. Tests set it to 0 to run the GEMM path on narrow layers. */
int FN(conv2d_direct_max_channels) = 16;

typedef enum { LAYOUT_POINTWISE, LAYOUT_WIDE, LAYOUT_GENERAL } PatchLayout;

typedef struct {
    PatchLayout layout;
    int G, Og;   /* groups, output channels per group */
    int R;       /* C*kh*kw: rows of the patch matrix */
    int Rg;      /* (C/G)*kh*kw: rows per group, the length of a weight row */
    int L;       /* Ho*Wo, outputs per channel */
    int cols;    /* columns of the patch matrix: L, or Lw for the wide layout */
    int Hp, Wp;  /* padded input size (wide layout) */
    int padded;  /* any padding */
    size_t in_size, out_size;
    int direct;  /* few output channels, wide layout, groups 1: conv2d_direct.c's kernels, no patch matrix */
    DirectShape d;
} Patches;

static Patches patches_for(const ConvShape *s) {
    Patches p;
    p.G = s->groups;
    p.Og = s->O / s->groups;
    p.R = s->C * s->kh * s->kw;
    p.Rg = p.R / s->groups;
    p.L = s->Ho * s->Wo;
    p.Hp = s->H + s->pad_t + s->pad_b;
    p.Wp = s->W + s->pad_l + s->pad_r;
    p.padded = s->pad_t || s->pad_l || s->pad_b || s->pad_r;
    p.in_size = (size_t)s->C * s->H * s->W;
    p.out_size = (size_t)s->O * p.L;
    if (s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 && !p.padded) {
        p.layout = LAYOUT_POINTWISE;
        p.cols = p.L;
    } else if (s->stride_h == 1 && s->stride_w == 1) {
        p.layout = LAYOUT_WIDE;
        p.cols = (s->Ho - 1) * p.Wp + s->Wo;
    } else {
        p.layout = LAYOUT_GENERAL;
        p.cols = p.L;
    }
    p.direct = p.layout == LAYOUT_WIDE && p.G == 1 && s->O <= FN(conv2d_direct_max_channels);
    if (p.direct) p.d = FN(conv_direct_shape)(s);
    return p;
}

/* The patches for products with `rows` output-shaped rows (K directions x O channels): a direct layer goes back to
 * the GEMMs past DIRECT_MAX_ROWS rows, where a GEMM reuses each patch value across many rows (the exact Hessian's
 * 64 directions: 320 rows for the cnn) and the direct kernels would stream the input once per 6 rows. */
#ifndef DIRECT_MAX_ROWS /* (settable on the command line for tests of the direct kernels at any row count) */
#define DIRECT_MAX_ROWS 32
#endif
static Patches patches_for_rows(const ConvShape *s, size_t rows) {
    Patches p = patches_for(s);
    if (rows > DIRECT_MAX_ROWS) p.direct = 0;
    return p;
}

/* ---- patch matrices ---- */

static void FN(im2col)(real *restrict col /* (C*kh*kw, L), rows ld apart */, size_t ld,
                       const real *restrict x /* (C,H,W) */, const ConvShape *s) {
    /* Per kernel column j the outputs ow whose input column w = ow*stride_w - pad_l + j*dil_w lies inside the
     * image are one range [ow_lo, ow_hi): zeros outside it, a strided copy inside, no test per value. */
    for (int j = 0; j < s->kw; j++) {
        int off = j * s->dil_w - s->pad_l, sw = s->stride_w;
        int ow_lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
        int ow_hi = s->W - 1 - off < 0 ? 0 : (s->W - 1 - off) / sw + 1;
        if (ow_hi > s->Wo) ow_hi = s->Wo;
        if (ow_lo > ow_hi) ow_lo = ow_hi;
        for (int c = 0; c < s->C; c++)
            for (int i = 0; i < s->kh; i++) {
                real *row = col + (size_t)((c * s->kh + i) * s->kw + j) * ld;
                const real *plane = x + (size_t)c * s->H * s->W;
                for (int oh = 0; oh < s->Ho; oh++) {
                    int h = oh * s->stride_h - s->pad_t + i * s->dil_h;
                    real *dst = row + oh * s->Wo;
                    if (h < 0 || h >= s->H) {
                        memset(dst, 0, sizeof(real) * (size_t)s->Wo);
                        continue;
                    }
                    const real *src = plane + (size_t)h * s->W; /* (W) */
                    for (int ow = 0; ow < ow_lo; ow++) dst[ow] = 0;
                    for (int ow = ow_lo; ow < ow_hi; ow++) dst[ow] = src[ow * sw + off];
                    for (int ow = ow_hi; ow < s->Wo; ow++) dst[ow] = 0;
                }
            }
    }
}

static void FN(col2im_add)(real *x /* (C,H,W) += */, const real *col /* (C*kh*kw, L) */, const ConvShape *s) {
    int L = s->Ho * s->Wo;
    for (int c = 0; c < s->C; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                const real *row = col + (size_t)((c * s->kh + i) * s->kw + j) * L;
                real *plane = x + (size_t)c * s->H * s->W;
                for (int oh = 0; oh < s->Ho; oh++) {
                    int h = oh * s->stride_h - s->pad_t + i * s->dil_h;
                    if (h < 0 || h >= s->H) continue;
                    for (int ow = 0; ow < s->Wo; ow++) {
                        int w = ow * s->stride_w - s->pad_l + j * s->dil_w;
                        if (w >= 0 && w < s->W) plane[(size_t)h * s->W + w] += row[oh * s->Wo + ow];
                    }
                }
            }
}

/* col (R, cols), rows ld apart (ld >= cols) = the patch matrix of one image x (C,H,W), copied in every layout.
 * pad_buf: (C,Hp,Wp) scratch for padded wide inputs. */
static void FN(patches_into)(real *col, size_t ld, real *pad_buf, const real *x, const ConvShape *s,
                             const Patches *p) {
    if (p->layout == LAYOUT_POINTWISE) {
        for (int c = 0; c < s->C; c++) memcpy(col + (size_t)c * ld, x + (size_t)c * p->L, sizeof(real) * (size_t)p->L);
        return;
    }
    if (p->layout == LAYOUT_GENERAL) {
        FN(im2col)(col, ld, x, s);
        return;
    }
    const real *src = x;
    if (p->padded) {
        memset(pad_buf, 0, sizeof(real) * (size_t)s->C * p->Hp * p->Wp);
        for (int c = 0; c < s->C; c++)
            for (int h = 0; h < s->H; h++)
                memcpy(pad_buf + ((size_t)c * p->Hp + h + s->pad_t) * p->Wp + s->pad_l,
                       x + ((size_t)c * s->H + h) * s->W, sizeof(real) * (size_t)s->W);
        src = pad_buf;
    }
    for (int c = 0; c < s->C; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++)
                memcpy(col + (size_t)((c * s->kh + i) * s->kw + j) * ld,
                       src + ((size_t)c * p->Hp + i * s->dil_h) * p->Wp + j * s->dil_w, sizeof(real) * (size_t)p->cols);
}

/* The patch matrix of one image x (C,H,W): returns col (R, cols), or x itself for the pointwise layout. */
static const real *FN(patches)(real *col, real *pad_buf, const real *x, const ConvShape *s, const Patches *p) {
    if (p->layout == LAYOUT_POINTWISE) return x;
    FN(patches_into)(col, (size_t)p->cols, pad_buf, x, s, p);
    return col;
}

/* dx (C,H,W) += the image-space sum of a patch-shaped gradient dcol (R, cols). */
static void FN(patches_add_back)(real *dx, const real *dcol, real *pad_buf, const ConvShape *s, const Patches *p) {
    if (p->layout == LAYOUT_POINTWISE) {
        for (size_t i = 0; i < p->in_size; i++) dx[i] += dcol[i];
        return;
    }
    if (p->layout == LAYOUT_GENERAL) {
        FN(col2im_add)(dx, dcol, s);
        return;
    }
    real *dst = dx;
    if (p->padded) {
        dst = pad_buf;
        memset(pad_buf, 0, sizeof(real) * (size_t)s->C * p->Hp * p->Wp);
    }
    for (int c = 0; c < s->C; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                real *restrict d = dst + ((size_t)c * p->Hp + i * s->dil_h) * p->Wp + j * s->dil_w;
                const real *restrict g = dcol + (size_t)((c * s->kh + i) * s->kw + j) * p->cols;
                for (int l = 0; l < p->cols; l++) d[l] += g[l];
            }
    if (p->padded)
        for (int c = 0; c < s->C; c++)
            for (int h = 0; h < s->H; h++) {
                real *d = dx + ((size_t)c * s->H + h) * s->W;
                const real *g = pad_buf + ((size_t)c * p->Hp + h + s->pad_t) * p->Wp + s->pad_l;
                for (int w = 0; w < s->W; w++) d[w] += g[w];
            }
}

/* out (rows, L) = (bias: + bias[r]) or += the valid columns of wide (rows, cols). The bias is added in the same
 * pass (a row of a few outputs is too short for a memcpy call to pay). */
static void FN(gather_outputs)(real *restrict out, const real *restrict wide, int rows, int accumulate,
                               const real *bias /* (rows) or NULL; not with accumulate */, const ConvShape *s,
                               const Patches *p) {
    const int Wo = s->Wo;
    for (int r = 0; r < rows; r++) {
        real add = bias ? bias[r] : 0;
        for (int oh = 0; oh < s->Ho; oh++) {
            real *restrict d = out + (size_t)r * p->L + (size_t)oh * Wo;
            const real *restrict g = wide + (size_t)r * p->cols + (size_t)oh * p->Wp;
            if (accumulate)
                for (int ow = 0; ow < Wo; ow++) d[ow] += g[ow];
            else if (bias)
                for (int ow = 0; ow < Wo; ow++) d[ow] = g[ow] + add;
            else
                for (int ow = 0; ow < Wo; ow++) d[ow] = g[ow];
        }
    }
}

/* wide (rows, cols), rows ld apart (ld >= cols) = out (rows, L) in the patch layout's columns: with zeros in the
 * gap columns of the wide layout, a copy in the others. */
static void FN(spread_outputs)(real *wide, size_t ld, const real *out, int rows, const ConvShape *s,
                               const Patches *p) {
    if (p->layout != LAYOUT_WIDE) {
        for (int r = 0; r < rows; r++)
            memcpy(wide + (size_t)r * ld, out + (size_t)r * p->L, sizeof(real) * (size_t)p->L);
        return;
    }
    for (int r = 0; r < rows; r++) {
        real *row = wide + (size_t)r * ld;
        memset(row, 0, sizeof(real) * (size_t)p->cols);
        for (int oh = 0; oh < s->Ho; oh++)
            memcpy(row + (size_t)oh * p->Wp, out + (size_t)r * p->L + (size_t)oh * s->Wo, sizeof(real) * (size_t)s->Wo);
    }
}

/* Output-shaped gradient rows (rows, L) in the patch layout's columns: itself, or spread into buf. */
static const real *FN(as_columns)(real *buf, const real *out, int rows, const ConvShape *s, const Patches *p) {
    if (p->layout != LAYOUT_WIDE) return out;
    FN(spread_outputs)(buf, (size_t)p->cols, out, rows, s, p);
    return buf;
}

/* Per-thread buffers for one image. */
typedef struct {
    real *col, *col2, *pad, *wide, *wide2;
} ConvBuffers;

/* wide_rows: rows of the wide output buffers needed (0: none). */
static int FN(buffers_get)(ConvBuffers *b, const ConvShape *s, const Patches *p, int second_col, int wide_rows) {
    memset(b, 0, sizeof *b);
    if (p->direct) { /* col, col2: padded inputs (or dxp); wide, wide2: rows in padded wide form (d.ld apart) */
        size_t in = sizeof(real) * p->d.input_size;
        if (!(b->col = scratch_get(SLOT_COL, in)) || (second_col && !(b->col2 = scratch_get(SLOT_COL2, in)))) return -1;
        if (wide_rows && (!(b->wide = scratch_get(SLOT_WIDE, sizeof(real) * (size_t)wide_rows * p->d.ld)) ||
                          !(b->wide2 = scratch_get(SLOT_WIDE2, sizeof(real) * (size_t)s->O * p->d.ld))))
            return -1;
        return 0;
    }
    if (p->layout != LAYOUT_POINTWISE) {
        b->col = scratch_get(SLOT_COL, sizeof(real) * (size_t)p->R * p->cols);
        if (!b->col) return -1;
        if (second_col && !(b->col2 = scratch_get(SLOT_COL2, sizeof(real) * (size_t)p->R * p->cols))) return -1;
    } else if (second_col) {
        b->col2 = scratch_get(SLOT_COL2, sizeof(real) * (size_t)p->R * p->cols); /* dcol for cross terms */
        if (!b->col2) return -1;
    }
    if (p->layout == LAYOUT_WIDE) {
        if (p->padded && !(b->pad = scratch_get(SLOT_PAD, sizeof(real) * (size_t)s->C * p->Hp * p->Wp))) return -1;
        if (wide_rows) {
            b->wide = scratch_get(SLOT_WIDE, sizeof(real) * (size_t)wide_rows * p->cols);
            b->wide2 = scratch_get(SLOT_WIDE2, sizeof(real) * (size_t)s->O * p->cols);
            if (!b->wide || !b->wide2) return -1;
        }
    }
    return 0;
}

/* Per-thread buffers of conv2d_tangent_backward's paired products (see there): col (R, 2*cols), col2 (R, cols),
 * wide (O, 2*cols), pad. */
static int FN(buffers_paired)(ConvBuffers *b, const ConvShape *s, const Patches *p) {
    memset(b, 0, sizeof *b);
    size_t cols = (size_t)p->cols;
    b->col = scratch_get(SLOT_COL, sizeof(real) * (size_t)p->R * 2 * cols);
    b->col2 = scratch_get(SLOT_COL2, sizeof(real) * (size_t)p->R * cols);
    b->wide = scratch_get(SLOT_WIDE, sizeof(real) * (size_t)s->O * 2 * cols);
    if (!b->col || !b->col2 || !b->wide) return -1;
    if (p->layout == LAYOUT_WIDE && p->padded &&
        !(b->pad = scratch_get(SLOT_PAD, sizeof(real) * (size_t)s->C * p->Hp * p->Wp)))
        return -1;
    return 0;
}

/* Wp (2O, R) = the rows of W and t_W (O, R) alternating: row 2o is W's row o, row 2o+1 t_W's. */
static void FN(interleave_rows)(real *Wp, const real *W, const real *t_W, int O, int R) {
    for (int o = 0; o < O; o++) {
        memcpy(Wp + (size_t)2 * o * R, W + (size_t)o * R, sizeof(real) * (size_t)R);
        memcpy(Wp + (size_t)(2 * o + 1) * R, t_W + (size_t)o * R, sizeof(real) * (size_t)R);
    }
}

/* ---- products with the block-diagonal (grouped) weight matrix: one GEMM per group, a single one for G = 1 ---- */

/* Y (O, cols) = W col + beta Y; W (O, Rg), col (R, cols). */
static void FN(gemm_groups)(const Patches *p, const real *W, const real *col, real beta, real *Y) {
    for (int g = 0; g < p->G; g++)
        FN(gemm)(0, 0, p->Og, p->cols, p->Rg, 1, W + (size_t)g * p->Og * p->Rg, p->Rg,
                 col + (size_t)g * p->Rg * p->cols, p->cols, beta, Y + (size_t)g * p->Og * p->cols, p->cols);
}

/* dcol (R, cols) = W^T Y + beta dcol; Y (O, cols). */
static void FN(gemm_groups_t)(const Patches *p, const real *W, const real *Y, real beta, real *dcol) {
    for (int g = 0; g < p->G; g++)
        FN(gemm)(1, 0, p->Rg, p->cols, p->Og, 1, W + (size_t)g * p->Og * p->Rg, p->Rg,
                 Y + (size_t)g * p->Og * p->cols, p->cols, beta, dcol + (size_t)g * p->Rg * p->cols, p->cols);
}

/* dW (O, Rg) += Y col^T, group by group; Y (O, cols), col (R, cols). */
static void FN(gemm_groups_w)(const Patches *p, const real *Y, const real *col, real *dW) {
    for (int g = 0; g < p->G; g++)
        FN(gemm)(0, 1, p->Og, p->Rg, p->cols, 1, Y + (size_t)g * p->Og * p->cols, p->cols,
                 col + (size_t)g * p->Rg * p->cols, p->cols, 1, dW + (size_t)g * p->Og * p->Rg, p->Rg);
}

/* ---- small output planes: the patch columns of several samples side by side, one GEMM per batch ----
 * Runs on the calling thread (its GEMMs and copies thread themselves); scratch: SLOT_COL, SLOT_COL2 (patch
 * columns), SLOT_WIDE (output-shaped rows), SLOT_STACKED (stacked weight tangents). Weight gradients accumulate
 * batch after batch in sample order: the same bits for any thread count. */

/* Columns per batch; planes of at least conv2d_batch_below outputs use the per-sample GEMMs (efficient there,
 * parallel over samples). Tests change them to exercise the batch boundaries. */
int FN(conv2d_batch_columns) = 512;
int FN(conv2d_batch_below) = 64;
#define PARALLEL_MIN 32768 /* values moved by a gather or scatter below which one thread does it */

static int FN(batched)(const ConvShape *s) { return s->groups == 1 && s->Ho * s->Wo < FN(conv2d_batch_below); }

/* Samples per batch for `count` images with `rows` rows in the largest batch matrix. */
static int FN(batch_size)(const ConvShape *s, long count, size_t rows) {
    long L = (long)s->Ho * s->Wo, B = FN(conv2d_batch_columns) / L;
    long budget = (long)((size_t)(1 << 23) / (rows * (size_t)L)); /* 8M values per buffer */
    if (B > budget) B = budget;
    if (B < 1) B = 1;
    if (B > count) B = count;
    return (int)B;
}

/* The links of a small plane: output position p < L reads input position q < H*W through kernel tap i*kw + j, in
 * (tap, p) order (so that col2im adds each input's terms in the order of a loop over taps, then outputs). The
 * batched patch copies and the dense matrices below are loops over them. */
typedef struct {
    int p, q, tap;
} PlaneLink;

typedef struct {
    const PlaneLink *link; /* (count) */
    int count;
    int complete; /* every (tap, p) reads an input: the patch rows hold no padding zeros */
    int plain_rows; /* one tap, and output p reads input p (1x1, stride 1, no padding): the copies are plain rows */
} PlaneLinks;

/* Fills pl in scratch slot SLOT_WIDE2 (free on every batched path). */
static int plane_links(PlaneLinks *pl, const ConvShape *s) {
    int L = s->Ho * s->Wo, T = s->kh * s->kw;
    PlaneLink *link = scratch_get(SLOT_WIDE2, sizeof(PlaneLink) * (size_t)L * T);
    if (!link) return -1;
    int n = 0;
    for (int i = 0; i < s->kh; i++)
        for (int j = 0; j < s->kw; j++)
            for (int oh = 0; oh < s->Ho; oh++)
                for (int ow = 0; ow < s->Wo; ow++) {
                    int h = oh * s->stride_h - s->pad_t + i * s->dil_h, w = ow * s->stride_w - s->pad_l + j * s->dil_w;
                    if (h >= 0 && h < s->H && w >= 0 && w < s->W)
                        link[n++] = (PlaneLink){oh * s->Wo + ow, h * s->W + w, i * s->kw + j};
                }
    pl->link = link, pl->count = n, pl->complete = n == L * T;
    pl->plain_rows = T == 1 && n == L && L == s->H * s->W;
    for (int e = 0; e < n && pl->plain_rows; e++) pl->plain_rows = link[e].p == link[e].q;
    return 0;
}

/* col (C*kh*kw, bn*L), rows ld apart (ld >= bn*L) = im2col of the images x0 + n*stride, n < bn: padding entries
 * zeroed row by row first. */
static void FN(gather_cols)(real *col, size_t ld, const real *x0, size_t stride, int bn, const PlaneLinks *pl,
                            const ConvShape *s) {
    size_t L = (size_t)s->Ho * s->Wo, HW = (size_t)s->H * s->W;
    int T = s->kh * s->kw, rows = s->C * T;
#pragma omp parallel if (bn > 1 && (size_t)bn * L * rows > PARALLEL_MIN)
    {
        if (!pl->complete) {
#pragma omp for schedule(static)
            for (int r = 0; r < rows; r++) memset(col + (size_t)r * ld, 0, sizeof(real) * (size_t)bn * L);
        }
#pragma omp for schedule(static)
        for (int n = 0; n < bn; n++)
            for (int c = 0; c < s->C; c++) {
                const real *x = x0 + (size_t)n * stride + (size_t)c * HW; /* (H*W) */
                real *dst = col + (size_t)c * T * ld + (size_t)n * L;     /* rows (tap) at stride ld */
                if (pl->plain_rows) {
                    for (size_t l = 0; l < L; l++) dst[l] = x[l];
                    continue;
                }
                for (int e = 0; e < pl->count; e++) {
                    const PlaneLink *k = &pl->link[e];
                    dst[(size_t)k->tap * ld + k->p] = x[k->q];
                }
            }
    }
}

/* Y (O, bn*L), rows ld apart (ld >= bn*L) = the images y0 + n*stride (O, L). */
static void FN(gather_out)(real *Y, size_t ld, const real *y0, size_t stride, int bn, int O, size_t L) {
#pragma omp parallel for schedule(static) if (bn > 1 && (size_t)bn * L * O > PARALLEL_MIN)
    for (int n = 0; n < bn; n++)
        for (int o = 0; o < O; o++) { /* rows of a few values: a loop, not a memcpy call */
            real *restrict dst = Y + o * ld + n * L;
            const real *restrict src = y0 + n * stride + o * L;
            for (size_t l = 0; l < L; l++) dst[l] = src[l];
        }
}

/* images y0 + n*stride (O, L) = (add: +=) Y (O, bn*L). */
static void FN(scatter_out)(real *y0, size_t stride, const real *Y, int bn, int O, size_t L, int add) {
    size_t ld = (size_t)bn * L;
#pragma omp parallel for schedule(static) if (bn > 1 && ld * O > PARALLEL_MIN)
    for (int n = 0; n < bn; n++)
        for (int o = 0; o < O; o++) {
            real *restrict dst = y0 + n * stride + o * L;
            const real *restrict src = Y + o * ld + n * L;
            if (add) {
                for (size_t l = 0; l < L; l++) dst[l] += src[l];
            } else {
                for (size_t l = 0; l < L; l++) dst[l] = src[l];
            }
        }
}

/* images x0 + n*stride (C, H, W) = (add: +=) col2im(col (C*kh*kw, bn*L)). */
static void FN(scatter_cols)(real *x0, size_t stride, const real *col, int bn, const PlaneLinks *pl,
                             const ConvShape *s, int add) {
    size_t L = (size_t)s->Ho * s->Wo, ld = (size_t)bn * L, HW = (size_t)s->H * s->W;
    int T = s->kh * s->kw;
#pragma omp parallel for schedule(static) if (bn > 1 && ld * s->C * T > PARALLEL_MIN)
    for (int n = 0; n < bn; n++) {
        real *x = x0 + (size_t)n * stride;
        if (!add) memset(x, 0, sizeof(real) * (size_t)s->C * HW);
        for (int c = 0; c < s->C; c++) {
            real *xc = x + (size_t)c * HW;                                  /* (H*W) */
            const real *src = col + (size_t)c * T * ld + (size_t)n * L;     /* rows (tap) at stride ld */
            if (pl->plain_rows) {
                for (size_t l = 0; l < L; l++) xc[l] += src[l];
                continue;
            }
            for (int e = 0; e < pl->count; e++) {
                const PlaneLink *k = &pl->link[e];
                xc[k->q] += src[(size_t)k->tap * ld + k->p];
            }
        }
    }
}

/* ---- tiny input planes: the convolution as one dense matrix ----
 * When an input plane has no more pixels than the kernel has taps (H*W <= kh*kw, groups 1; ResNet's 2x2 and 1x1
 * stages at 32x32, whose 3x3 kernels mostly read padding), the convolution of one sample is the dense matrix
 * Wd (O*L, C*H*W), Wd[(o,p),(c,q)] = W[o,c,i,j] for the one tap (i,j) that joins output p to input q (0 where none
 * does), and the images already are the rows of an (N, C*H*W) matrix. Each pass is then a GEMM on the tensors as
 * they lie: no patch copies, and at most im2col's multiply-adds (L*H*W <= L*kh*kw per channel pair; a 3x3 kernel
 * on a 1x1 plane does 1/9 of them). The weight gradient is gathered tap by tap from Wd's ("fold"). A 1x1 kernel on
 * a 1x1 plane is a plain matrix product with W itself. Runs on the calling thread; scratch: SLOT_COL and SLOT_COL2
 * (dense matrices), SLOT_WIDE (a dense gradient), SLOT_WIDE2 (the links). */
int FN(conv2d_dense_always) = 0; /* tests: the dense path for every small-plane shape with groups 1 */
#define DENSE_MAX_VALUES ((size_t)1 << 24) /* entries of Wd past which the im2col batches are kept */

typedef struct {
    PlaneLinks pl;
    int P, Q;     /* O*L and C*H*W: Wd's rows and columns */
    int identity; /* 1x1 kernel, 1x1 input and output: Wd is W */
    int full;     /* every (output, input) pair is joined by a tap (3x3 kernels, padding 1, on 2x2 and 1x1 planes):
                   * Wd has no zeros to clear */
} Dense;

static int FN(dense)(const ConvShape *s) {
    size_t values = (size_t)s->O * s->Ho * s->Wo * (size_t)s->C * s->H * s->W;
    return values <= DENSE_MAX_VALUES && (FN(conv2d_dense_always) || s->H * s->W <= s->kh * s->kw);
}

static int dense_prepare(Dense *d, const ConvShape *s) {
    HS_TRY(plane_links(&d->pl, s));
    d->P = s->O * s->Ho * s->Wo, d->Q = s->C * s->H * s->W;
    d->identity = s->Ho * s->Wo == 1 && s->H * s->W == 1 && s->kh * s->kw == 1 && d->pl.count == 1;
    d->full = d->pl.count == s->Ho * s->Wo * s->H * s->W; /* (a pair has at most one tap) */
    return 0;
}

/* The dense matrix (P, Q) of the weights W (O, C*kh*kw): W itself, or expanded into scratch slot `slot`. */
static const real *FN(dense_weights)(const Dense *d, int slot, const real *W, const ConvShape *s) {
    if (d->identity) return W;
    real *Wd = scratch_get(slot, sizeof(real) * (size_t)d->P * d->Q);
    if (!Wd) return NULL;
    int L = s->Ho * s->Wo, HW = s->H * s->W, T = s->kh * s->kw;
    size_t rows = (size_t)L * d->Q; /* Wd values per output channel */
#pragma omp parallel for schedule(static) if ((size_t)s->O * rows > PARALLEL_MIN)
    for (int o = 0; o < s->O; o++) {
        real *block = Wd + (size_t)o * rows; /* (L, Q) */
        if (!d->full) memset(block, 0, sizeof(real) * rows);
        for (int c = 0; c < s->C; c++) {
            const real *w = W + ((size_t)o * s->C + c) * T; /* (kh*kw) */
            real *dst = block + (size_t)c * HW;
            for (int e = 0; e < d->pl.count; e++) {
                const PlaneLink *k = &d->pl.link[e];
                dst[(size_t)k->p * d->Q + k->q] = w[k->tap];
            }
        }
    }
    return Wd;
}

/* dW (O, C*kh*kw) += the weight gradient gathered from the dense gradient dWd (P, Q), links in order. */
static void FN(dense_fold)(real *dW, const real *dWd, const Dense *d, const ConvShape *s) {
    int L = s->Ho * s->Wo, HW = s->H * s->W, T = s->kh * s->kw;
    size_t rows = (size_t)L * d->Q;
#pragma omp parallel for schedule(static) if ((size_t)s->O * rows > PARALLEL_MIN)
    for (int o = 0; o < s->O; o++)
        for (int c = 0; c < s->C; c++) {
            real *dw = dW + ((size_t)o * s->C + c) * T;
            const real *src = dWd + (size_t)o * rows + (size_t)c * HW;
            for (int e = 0; e < d->pl.count; e++) {
                const PlaneLink *k = &d->pl.link[e];
                dw[k->tap] += src[(size_t)k->p * d->Q + k->q];
            }
        }
}

/* The convolution of `count` images, or (transposed) its transpose:
 *   out (count, O*L) = in (count, C*H*W) Wd^T;   transposed: d_in (count, C*H*W) = d_out (count, O*L) Wd. */
static int FN(dense_apply)(real *y, const real *x, const real *W, long count, int transposed, const ConvShape *s) {
    Dense d;
    HS_TRY(dense_prepare(&d, s));
    const real *Wd = FN(dense_weights)(&d, SLOT_COL, W, s);
    if (!Wd) return -1;
    int in = transposed ? d.P : d.Q, out = transposed ? d.Q : d.P;
    FN(gemm)(0, !transposed, (int)count, out, in, 1, x, in, Wd, d.Q, 0, y, out);
    return 0;
}

/* t_out (N,K,O*L) += in (N, C*H*W) Wd(t_W[k])^T for the K weight tangents. */
static int FN(dense_tangent_weights)(real *t_out, const real *t_W, size_t ldw, const real *in, int K, int N,
                                     const ConvShape *s) {
    Dense d;
    HS_TRY(dense_prepare(&d, s));
    for (int k = 0; k < K; k++) {
        const real *Wd = FN(dense_weights)(&d, SLOT_COL, t_W + (size_t)k * ldw, s);
        if (!Wd) return -1;
        FN(gemm)(0, 1, N, d.P, d.Q, 1, in, d.Q, Wd, d.Q, 1, t_out + (size_t)k * d.P, K * d.P);
    }
    return 0;
}

/* batched_tangent_backward's passes with the dense matrices:
 *   td_in[:,k] = td_out[:,k] Wd + d_out Wd(t_W[k]);   td_W[k] += fold(td_out[:,k]^T in + d_out^T t_in[:,k]) */
static int FN(dense_tangent_backward)(real *td_in, real *td_W, size_t ldw, const real *td_out, const real *d_out,
                                      const real *t_in, const real *t_W, const real *in, const real *W, int K, int N,
                                      const ConvShape *s) {
    int cross_in = d_out && t_W && td_in, cross_w = d_out && t_in;
    if (td_in) HS_TRY(FN(dense_apply)(td_in, td_out, W, (long)N * K, 1, s));
    if (!td_W) return 0; /* activation gradients only, as on the other paths */
    Dense d;
    HS_TRY(dense_prepare(&d, s));
    real *dWd = NULL; /* (P, Q) */
    if (!d.identity && !(dWd = scratch_get(SLOT_WIDE, sizeof(real) * (size_t)d.P * d.Q))) return -1;
    for (int k = 0; k < K; k++) {
        real *dst = d.identity ? td_W + (size_t)k * ldw : dWd;
        FN(gemm)(1, 0, d.P, d.Q, N, 1, td_out + (size_t)k * d.P, K * d.P, in, d.Q, d.identity ? 1 : 0, dst, d.Q);
        if (cross_w) FN(gemm)(1, 0, d.P, d.Q, N, 1, d_out, d.P, t_in + (size_t)k * d.Q, K * d.Q, 1, dst, d.Q);
        if (!d.identity) FN(dense_fold)(td_W + (size_t)k * ldw, dWd, &d, s);
        if (cross_in) {
            const real *Wd = FN(dense_weights)(&d, SLOT_COL2, t_W + (size_t)k * ldw, s);
            if (!Wd) return -1;
            FN(gemm)(0, 0, N, d.Q, d.P, 1, d_out, d.P, Wd, d.Q, 1, td_in + (size_t)k * d.Q, K * d.Q);
        }
    }
    return 0;
}

/* out = conv(in, W) for `count` contiguous images (no bias). */
static int FN(batched_forward)(real *out, const real *in, const real *W, long count, const ConvShape *s) {
    if (FN(dense)(s)) return FN(dense_apply)(out, in, W, count, 0, s);
    int R = s->C * s->kh * s->kw, O = s->O;
    size_t L = (size_t)s->Ho * s->Wo, in_size = (size_t)s->C * s->H * s->W, out_size = (size_t)O * L;
    int B = FN(batch_size)(s, count, (size_t)(R > O ? R : O));
    real *col = scratch_get(SLOT_COL, sizeof(real) * (size_t)R * B * L);
    real *Y = scratch_get(SLOT_WIDE, sizeof(real) * (size_t)O * B * L);
    PlaneLinks pl;
    if (!col || !Y || plane_links(&pl, s) != 0) return -1;
    for (long b0 = 0; b0 < count; b0 += B) {
        int bn = (int)(count - b0 < B ? count - b0 : B), nc = bn * (int)L;
        FN(gather_cols)(col, (size_t)nc, in + b0 * in_size, in_size, bn, &pl, s);
        FN(gemm)(0, 0, O, nc, R, 1, W, R, col, nc, 0, Y, nc);
        FN(scatter_out)(out + b0 * out_size, out_size, Y, bn, O, L, 0);
    }
    return 0;
}

/* d_in = conv^T(d_out, W) for `count` contiguous images. */
static int FN(batched_backward_data)(real *d_in, const real *d_out, const real *W, long count, const ConvShape *s) {
    if (FN(dense)(s)) return FN(dense_apply)(d_in, d_out, W, count, 1, s);
    int R = s->C * s->kh * s->kw, O = s->O;
    size_t L = (size_t)s->Ho * s->Wo, in_size = (size_t)s->C * s->H * s->W, out_size = (size_t)O * L;
    int B = FN(batch_size)(s, count, (size_t)(R > O ? R : O));
    real *col = scratch_get(SLOT_COL, sizeof(real) * (size_t)R * B * L);
    real *Y = scratch_get(SLOT_WIDE, sizeof(real) * (size_t)O * B * L);
    PlaneLinks pl;
    if (!col || !Y || plane_links(&pl, s) != 0) return -1;
    for (long b0 = 0; b0 < count; b0 += B) {
        int bn = (int)(count - b0 < B ? count - b0 : B), nc = bn * (int)L;
        FN(gather_out)(Y, (size_t)nc, d_out + b0 * out_size, out_size, bn, O, L);
        FN(gemm)(1, 0, R, nc, O, 1, W, R, Y, nc, 0, col, nc);
        FN(scatter_cols)(d_in + b0 * in_size, in_size, col, bn, &pl, s, 0);
    }
    return 0;
}

/* t_out (N,K,O,L) += conv(in, t_W[k]) for the K weight tangents. */
static int FN(batched_tangent_weights)(real *t_out, const real *t_W, size_t ldw, const real *in, int K, int N,
                                       const ConvShape *s) {
    if (FN(dense)(s)) return FN(dense_tangent_weights)(t_out, t_W, ldw, in, K, N, s);
    int R = s->C * s->kh * s->kw, O = s->O;
    size_t L = (size_t)s->Ho * s->Wo, in_size = (size_t)s->C * s->H * s->W, out_size = (size_t)O * L;
    size_t KO = (size_t)K * O;
    int B = FN(batch_size)(s, N, KO > (size_t)R ? KO : (size_t)R);
    real *col = scratch_get(SLOT_COL, sizeof(real) * (size_t)R * B * L);
    real *Y = scratch_get(SLOT_WIDE, sizeof(real) * KO * B * L);
    real *stacked = scratch_get(SLOT_STACKED, sizeof(real) * KO * R);
    PlaneLinks pl;
    if (!col || !Y || !stacked || plane_links(&pl, s) != 0) return -1;
    for (int k = 0; k < K; k++) memcpy(stacked + (size_t)k * O * R, t_W + (size_t)k * ldw, sizeof(real) * O * R);
    for (int b0 = 0; b0 < N; b0 += B) {
        int bn = N - b0 < B ? N - b0 : B, nc = bn * (int)L;
        FN(gather_cols)(col, (size_t)nc, in + b0 * in_size, in_size, bn, &pl, s);
        FN(gemm)(0, 0, (int)KO, nc, R, 1, stacked, R, col, nc, 0, Y, nc);
        for (int k = 0; k < K; k++)
            FN(scatter_out)(t_out + ((size_t)b0 * K + k) * out_size, K * out_size, Y + (size_t)k * O * nc, bn, O, L, 1);
    }
    return 0;
}

/* Two products of one direction in one GEMM of twice the inner size (K = 1 with both cross terms: an HVP; see
 * "paired" in conv2d_tangent_backward):
 *   Yp (O, 2nc): row o = [td_out row o | d_out row o]; read as (2O, nc), its rows alternate td_out and d_out;
 *   cp (R, 2nc): row r = [col(in) row r | col(t_in) row r];
 *   Wp (2O, R):  rows alternate W and t_W, matching Yp read as (2O, nc);
 *   td_W += Yp cp^T (inner size 2nc);   td_in = col2im(Wp^T Yp) (inner size 2*O). */
static int FN(batched_tangent_backward_paired)(real *td_in, real *td_W, const real *td_out, const real *d_out,
                                               const real *t_in, const real *t_W, const real *in, const real *W, int N,
                                               const ConvShape *s) {
    int R = s->C * s->kh * s->kw, O = s->O;
    size_t L = (size_t)s->Ho * s->Wo, in_size = (size_t)s->C * s->H * s->W, out_size = (size_t)O * L;
    int B = FN(batch_size)(s, N, 2 * (size_t)(R > O ? R : O));
    real *cp = scratch_get(SLOT_COL, sizeof(real) * (size_t)R * 2 * B * L);
    real *dcol = scratch_get(SLOT_COL2, sizeof(real) * (size_t)R * B * L);
    real *Yp = scratch_get(SLOT_WIDE, sizeof(real) * (size_t)O * 2 * B * L);
    real *Wp = scratch_get(SLOT_STACKED, sizeof(real) * 2 * (size_t)O * R);
    PlaneLinks pl;
    if (!cp || !dcol || !Yp || !Wp || plane_links(&pl, s) != 0) return -1;
    FN(interleave_rows)(Wp, W, t_W, O, R);
    for (int b0 = 0; b0 < N; b0 += B) {
        int bn = N - b0 < B ? N - b0 : B, nc = bn * (int)L;
        size_t ld = 2 * (size_t)nc;
        FN(gather_cols)(cp, ld, in + (size_t)b0 * in_size, in_size, bn, &pl, s);
        FN(gather_cols)(cp + nc, ld, t_in + (size_t)b0 * in_size, in_size, bn, &pl, s);
        FN(gather_out)(Yp, ld, td_out + (size_t)b0 * out_size, out_size, bn, O, L);
        FN(gather_out)(Yp + nc, ld, d_out + (size_t)b0 * out_size, out_size, bn, O, L);
        FN(gemm)(0, 1, O, R, 2 * nc, 1, Yp, 2 * nc, cp, 2 * nc, 1, td_W, R);
        FN(gemm)(1, 0, R, nc, 2 * O, 1, Wp, R, Yp, nc, 0, dcol, nc);
        FN(scatter_cols)(td_in + (size_t)b0 * in_size, in_size, dcol, bn, &pl, s, 0);
    }
    return 0;
}

/* The R-operator of the backward pass without the bias (see conv2d_tangent_backward):
 *   td_in[n,k] = conv^T(td_out[n,k], W) + conv^T(d_out[n], t_W[k])
 *   td_W[k]   += td_out[:,k] (x) col(in) + d_out (x) col(t_in[:,k])   (when td_W != NULL) */
static int FN(batched_tangent_backward)(real *td_in, real *td_W, size_t ldw, const real *td_out, const real *d_out,
                                        const real *t_in, const real *t_W, const real *in, const real *W, int K, int N,
                                        const ConvShape *s) {
    if (FN(dense)(s)) return FN(dense_tangent_backward)(td_in, td_W, ldw, td_out, d_out, t_in, t_W, in, W, K, N, s);
    int R = s->C * s->kh * s->kw, O = s->O;
    size_t L = (size_t)s->Ho * s->Wo, in_size = (size_t)s->C * s->H * s->W, out_size = (size_t)O * L;
    int cross_in = d_out && t_W && td_in, cross_w = d_out && t_in;
    if (K == 1 && cross_in && cross_w && td_W)
        return FN(batched_tangent_backward_paired)(td_in, td_W, td_out, d_out, t_in, t_W, in, W, N, s);
    if (td_in) HS_TRY(FN(batched_backward_data)(td_in, td_out, W, (long)N * K, s));
    if (!td_W) return 0;
    int B = FN(batch_size)(s, N, (size_t)(R > O ? R : O));
    real *col = scratch_get(SLOT_COL, sizeof(real) * (size_t)R * B * L);
    real *Y = scratch_get(SLOT_WIDE, sizeof(real) * (size_t)O * B * L);
    real *col2 = (cross_in || cross_w) ? scratch_get(SLOT_COL2, sizeof(real) * (size_t)R * B * L) : col;
    PlaneLinks pl;
    if (!col || !Y || !col2 || plane_links(&pl, s) != 0) return -1;
    for (int b0 = 0; b0 < N; b0 += B) {
        int bn = N - b0 < B ? N - b0 : B, nc = bn * (int)L;
        FN(gather_cols)(col, (size_t)nc, in + b0 * in_size, in_size, bn, &pl, s);
        for (int k = 0; k < K; k++) {
            FN(gather_out)(Y, (size_t)nc, td_out + ((size_t)b0 * K + k) * out_size, K * out_size, bn, O, L);
            FN(gemm)(0, 1, O, R, nc, 1, Y, nc, col, nc, 1, td_W + (size_t)k * ldw, R);
        }
        if (!cross_in && !cross_w) continue;
        FN(gather_out)(Y, (size_t)nc, d_out + (size_t)b0 * out_size, out_size, bn, O, L);
        for (int k = 0; k < K; k++) {
            if (cross_w) {
                FN(gather_cols)(col2, (size_t)nc, t_in + ((size_t)b0 * K + k) * in_size, K * in_size, bn, &pl, s);
                FN(gemm)(0, 1, O, R, nc, 1, Y, nc, col2, nc, 1, td_W + (size_t)k * ldw, R);
            }
            if (cross_in) {
                FN(gemm)(1, 0, R, nc, O, 1, t_W + (size_t)k * ldw, R, Y, nc, 0, col2, nc);
                FN(scatter_cols)(td_in + ((size_t)b0 * K + k) * in_size, K * in_size, col2, bn, &pl, s, 1);
            }
        }
    }
    return 0;
}

/* ---- convolution and its transpose over many images ---- */

/* out = conv(in, W) (+ bias) for `count` images. */
static int FN(conv_apply)(real *out, const real *in, const real *weight, const real *bias, long count,
                          const ConvShape *s) {
    Patches p = patches_for(s);
    int failed = 0;
    if (FN(batched)(s)) {
        HS_TRY(FN(batched_forward)(out, in, weight, count, s));
        if (!bias) return 0;
#pragma omp parallel for schedule(static) if (count * (long)p.out_size > PARALLEL_MIN)
        for (long n = 0; n < count; n++)
            for (int o = 0; o < s->O; o++)
                for (int l = 0; l < p.L; l++) out[(size_t)n * p.out_size + (size_t)o * p.L + l] += bias[o];
        return 0;
    }
#pragma omp parallel
    {
        ConvBuffers b;
        if (FN(buffers_get)(&b, s, &p, 0, s->O) != 0) failed = 1;
#pragma omp for schedule(static)
        for (long n = 0; n < count; n++) {
            if (failed) continue;
            real *y = out + (size_t)n * p.out_size;
            real *dst = p.layout == LAYOUT_WIDE ? b.wide : y;
            if (p.direct) {
                FN(direct_forward)(dst, weight, s->O, FN(direct_input)(b.col, in + (size_t)n * p.in_size, &p.d), &p.d);
            } else {
                FN(gemm_groups)(&p, weight, FN(patches)(b.col, b.pad, in + (size_t)n * p.in_size, s, &p), 0, dst);
            }
            if (p.layout == LAYOUT_WIDE) {
                FN(gather_outputs)(y, dst, s->O, 0, bias, s, &p);
                continue;
            }
            if (bias)
                for (int o = 0; o < s->O; o++)
                    for (int l = 0; l < p.L; l++) y[(size_t)o * p.L + l] += bias[o];
        }
    }
    return failed ? -1 : 0;
}

/* d_in = conv^T(d_out, W) for `count` images. */
static int FN(conv_apply_transposed)(real *d_in, const real *d_out, const real *weight, long count,
                                     const ConvShape *s) {
    if (FN(batched)(s)) return FN(batched_backward_data)(d_in, d_out, weight, count, s);
    Patches p = patches_for(s);
    int failed = 0;
#pragma omp parallel
    {
        ConvBuffers b;
        if (FN(buffers_get)(&b, s, &p, 1, s->O) != 0) failed = 1;
#pragma omp for schedule(static)
        for (long n = 0; n < count; n++) {
            if (failed) continue;
            real *dx = d_in + (size_t)n * p.in_size;
            if (p.direct) {
                FN(direct_spread)(b.wide, d_out + (size_t)n * p.out_size, s->O, &p.d);
                FN(direct_backward_data)(dx, 0, weight, s->O, b.wide, b.col, &p.d);
                continue;
            }
            const real *dy = FN(as_columns)(b.wide, d_out + (size_t)n * p.out_size, s->O, s, &p);
            if (p.layout == LAYOUT_POINTWISE) {
                FN(gemm_groups_t)(&p, weight, dy, 0, dx);
                continue;
            }
            FN(gemm_groups_t)(&p, weight, dy, 0, b.col);
            memset(dx, 0, sizeof(real) * p.in_size);
            FN(patches_add_back)(dx, b.col, b.pad, s, &p);
        }
    }
    return failed ? -1 : 0;
}

int FN(conv2d_forward)(real *out, const real *in, const real *weight, const real *bias, int N, const ConvShape *s) {
    HS_TRY(conv_check(s));
    return FN(conv_apply)(out, in, weight, bias, N, s);
}

int FN(conv2d_backward)(real *d_in, real *d_weight, real *d_bias, const real *d_out, const real *in,
                        const real *weight, int N, const ConvShape *s) {
    return FN(conv2d_tangent_backward)(d_in, d_weight, d_bias, 0, d_out, NULL, NULL, NULL, in, weight, 1, N, s);
}

/* ---- tangent passes ---- */

int FN(conv2d_tangent_forward)(real *t_out, const real *t_in, const real *t_weight, const real *t_bias, size_t ldw,
                               const real *in, const real *weight, int K, int N, const ConvShape *s) {
    HS_TRY(conv_check(s));
    Patches p = patches_for_rows(s, (size_t)K * s->O);
    int R = p.Rg, L = p.L, O = s->O, failed = 0;
    int batched = FN(batched)(s);
    /* Stack the K weight tangents into one (K*O, Rg) matrix; when few entries are non-zero (unit directions, as the
     * exact Hessian uses), add their patch rows directly instead of multiplying by zeros. */
    size_t total = (size_t)K * O * R, nnz = 0;
    real *stacked = NULL;
    if (t_weight && !batched) {
        if (!(stacked = scratch_get(SLOT_STACKED, sizeof(real) * total))) return -1;
        for (int k = 0; k < K; k++)
            memcpy(stacked + (size_t)k * O * R, t_weight + (size_t)k * ldw, sizeof(real) * (size_t)O * R);
        for (size_t i = 0; i < total; i++) nnz += stacked[i] != 0;
    }
    int sparse = stacked && nnz * 16 < total;
    /* Without an input tangent, a dense weight tangent in the wide layout writes t_out itself, its bias added in
     * the same pass ((0 + conv) + b and conv + b are the same values): no zeroing and no separate bias pass over
     * t_out, which for the cnn's first layer (16 MB per 1,000 images) took more time than the convolution (Xeon
     * with AVX-512, 2 threads). */
    int assign = !t_in && stacked && !sparse && p.layout == LAYOUT_WIDE;
    if (t_in) {
        HS_TRY(FN(conv_apply)(t_out, t_in, weight, NULL, (long)N * K, s));
    } else if (!assign) {
        memset(t_out, 0, sizeof(real) * p.out_size * (size_t)N * K);
    }
    if (t_weight && batched) {
        HS_TRY(FN(batched_tangent_weights)(t_out, t_weight, ldw, in, K, N, s));
    } else if (t_weight) {
        real *stacked_bias = NULL; /* (K*O) the bias tangents of the rows of a sample's t_out, when assigning */
        if (assign && t_bias) {
            if (!(stacked_bias = scratch_get(SLOT_BIAS, sizeof(real) * (size_t)K * O))) return -1;
            for (int k = 0; k < K; k++)
                memcpy(stacked_bias + (size_t)k * O, t_bias + (size_t)k * ldw, sizeof(real) * (size_t)O);
        }
        int32_t *nz_index = NULL;
        if (sparse) {
            nz_index = scratch_get(SLOT_INDEX, sizeof(int32_t) * (nnz + 1));
            if (!nz_index) return -1;
            size_t j = 0;
            for (size_t i = 0; i < total; i++)
                if (stacked[i] != 0) nz_index[j++] = (int32_t)i;
        }
#pragma omp parallel
        {
            ConvBuffers b;
            if (FN(buffers_get)(&b, s, &p, 0, sparse ? 0 : K * O) != 0) failed = 1;
#pragma omp for schedule(static)
            for (int n = 0; n < N; n++) {
                if (failed) continue;
                const real *col = p.direct ? FN(direct_input)(b.col, in + (size_t)n * p.in_size, &p.d)
                                           : FN(patches)(b.col, b.pad, in + (size_t)n * p.in_size, s, &p);
                real *tn = t_out + (size_t)n * K * p.out_size; /* (K*O, L) */
                if (sparse) {
                    for (size_t e = 0; e < nnz; e++) {
                        size_t i = (size_t)nz_index[e], row = i / (size_t)R; /* k*O + o */
                        size_t group = (row % (size_t)O) / (size_t)p.Og;
                        real w = stacked[i], *dst = tn + row * L;
                        size_t rr = group * (size_t)R + i % (size_t)R; /* patch row (c, i, j) */
                        const real *src = p.direct ? col + direct_row_offset(&p.d, rr) : col + rr * p.cols;
                        if (p.layout == LAYOUT_WIDE) {
                            for (int oh = 0; oh < s->Ho; oh++)
                                for (int ow = 0; ow < s->Wo; ow++) dst[oh * s->Wo + ow] += w * src[oh * p.Wp + ow];
                        } else {
                            for (int l = 0; l < L; l++) dst[l] += w * src[l];
                        }
                    }
                } else {
                    int wide = p.layout == LAYOUT_WIDE;
                    real *dst = wide ? b.wide : tn, beta = wide ? 0 : 1; /* (K*O, cols) */
                    if (p.direct) {
                        FN(direct_forward)(dst, stacked, K * O, col, &p.d);
                    } else if (p.G == 1) {
                        FN(gemm)(0, 0, K * O, p.cols, R, 1, stacked, R, col, p.cols, beta, dst, p.cols);
                    } else {
                        for (int k = 0; k < K; k++)
                            FN(gemm_groups)(&p, stacked + (size_t)k * O * R, col, beta, dst + (size_t)k * O * p.cols);
                    }
                    if (wide) FN(gather_outputs)(tn, b.wide, K * O, !assign, stacked_bias, s, &p);
                }
            }
        }
        if (failed) return -1;
    }
    if (t_bias && !assign) {
#pragma omp parallel for schedule(static) collapse(2)
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                const real *bk = t_bias + (size_t)k * ldw;
                real *y = t_out + ((size_t)n * K + k) * p.out_size;
                for (int o = 0; o < O; o++)
                    for (int l = 0; l < L; l++) y[(size_t)o * L + l] += bk[o];
            }
    }
    return 0;
}

/* acc (rows) += the sum of each row of x (rows, L): the bias terms of a sample's weight gradients. */
static void FN(add_row_sums)(real *acc, const real *x, int rows, int L) {
    for (int r = 0; r < rows; r++) {
        const real *row = x + (size_t)r * L;
        real sum = 0;
        for (int l = 0; l < L; l++) sum += row[l];
        acc[r] += sum;
    }
}

/* Sample n of conv2d_tangent_backward with the direct kernels: acc (K, O*Rg, lanes), in lane form (see
 * conv2d_direct.h), += td_out[n] (x) col(in[n]) and the cross terms; acc_b (K*O, lanes), also in lane form, += the
 * sums of td_out[n]'s rows (NULL: no bias). */
static void FN(direct_tangent_backward_sample)(const Patches *p, int n, int K, real *acc, real *acc_b, real *td_in,
                                               const real *tdo /* (K*O, L) */, const real *d_out, const real *t_in,
                                               const real *t_weight, size_t ldw, const real *in, int cross_in,
                                               int cross_w, ConvBuffers *b) {
    const DirectShape *d = &p->d;
    int O = p->Og;
    size_t wsize = (size_t)O * p->R, lanes = (size_t)FN(direct_lanes)();
    const real *xp = FN(direct_input)(b->col, in + (size_t)n * p->in_size, d);
    FN(direct_spread)(b->wide, tdo, K * O, d);
    FN(direct_weight_grad_lanes)(acc, b->wide, K * O, xp, d);
    if (acc_b) FN(direct_row_sums_lanes)(acc_b, b->wide, K * O, d);
    if (!cross_in && !cross_w) return;
    FN(direct_spread)(b->wide2, d_out + (size_t)n * p->out_size, O, d);
    for (int k = 0; k < K; k++) {
        if (cross_w) {
            const real *tx = FN(direct_input)(b->col2, t_in + ((size_t)n * K + k) * p->in_size, d);
            FN(direct_weight_grad_lanes)(acc + (size_t)k * wsize * lanes, b->wide2, O, tx, d);
        }
        if (cross_in)
            FN(direct_backward_data)(td_in + ((size_t)n * K + k) * p->in_size, 1, t_weight + (size_t)k * ldw, O,
                                     b->wide2, b->col2, d);
    }
}

int FN(conv2d_tangent_backward)(real *td_in, real *td_weight, real *td_bias, size_t ldw, const real *td_out,
                                const real *d_out, const real *t_in, const real *t_weight, const real *in,
                                const real *weight, int K, int N, const ConvShape *s) {
    HS_TRY(conv_check(s));
    Patches p = patches_for_rows(s, (size_t)K * s->O);
    int R = p.Rg, L = p.L, O = s->O, failed = 0;
    size_t wsize = (size_t)O * R;
    if (ldw == 0) ldw = wsize; /* K == 1 primal call */
    int cross_in = d_out && t_weight && td_in, cross_w = d_out && t_in;

    if (FN(batched)(s)) {
        HS_TRY(FN(batched_tangent_backward)(td_in, td_weight, ldw, td_out, d_out, t_in, t_weight, in, weight, K, N,
                                            s));
        if (!td_weight || !td_bias) return 0;
        /* per (direction, channel), samples in order */
#pragma omp parallel for schedule(static) if ((long)N * K * (long)p.out_size > PARALLEL_MIN)
        for (int ko = 0; ko < K * O; ko++) {
            real sum = 0;
            for (int n = 0; n < N; n++) {
                const real *row = td_out + ((size_t)n * K * O + ko) * L;
                for (int l = 0; l < L; l++) sum += row[l];
            }
            td_bias[(size_t)(ko / O) * ldw + ko % O] += sum;
        }
        return 0;
    }
    /* Paired products: one direction with both cross terms (an HVP) on the per-sample GEMMs. The two products of
     * each gradient share one GEMM of twice the inner size, and td_in is written once (OpenBLAS on one core of a
     * Xeon with AVX-512: ResNet-50's products with 64-78 inner terms ran at 62-83 GFLOP/s, at 70-100 with twice
     * that):
     *   Yp (O, 2*cols): row o = [td_out row o | d_out row o]; read as (2O, cols), its rows alternate the two;
     *   cp (R, 2*cols): row r = [col(in) row r | col(t_in) row r];  Wp (2O, R): rows alternate W and t_W;
     *   td_W += Yp cp^T;   td_in = patches added back (Wp^T Yp). */
    int paired = K == 1 && cross_in && cross_w && td_weight && !p.direct && p.G == 1;
    real *Wp = NULL; /* (2O, R) */
    if (paired) {
        if (!(Wp = scratch_get(SLOT_STACKED, sizeof(real) * 2 * wsize))) return -1;
        FN(interleave_rows)(Wp, weight, t_weight, O, R);
    } else if (td_in) {
        HS_TRY(FN(conv_apply_transposed)(td_in, td_out, weight, (long)N * K, s));
    }
    if (!td_weight) return 0; /* activation gradients only (a backward pass for an HVP) */

    /* Samples are summed in blocks fixed by N and the shape alone (not by the thread count), each block in
     * sample order into its own accumulator, and the blocks in order: the same bits for any thread count. */
    /* Direct layers accumulate the weight blocks in lane form (VL values per entry, reduced once per block). */
    size_t lanes = p.direct ? (size_t)FN(direct_lanes)() : 1;
    size_t acc_size = (size_t)K * (wsize + (size_t)O) * lanes; /* per block: K weight blocks then K bias blocks */
    acc_size = (acc_size + 63) & ~(size_t)63; /* blocks 64 values apart: threads share no cache line (measured:
                                                * 15% slower cnn HVPs without) */
    int blocks = N < CONV_ACC_BLOCKS ? N : CONV_ACC_BLOCKS;
    while (blocks > 1 && acc_size * (size_t)blocks > CONV_ACC_VALUES) blocks--;
    real *acc_all = scratch_get(SLOT_ACC, sizeof(real) * acc_size * (size_t)blocks);
    if (!acc_all) return -1;
    memset(acc_all, 0, sizeof(real) * acc_size * (size_t)blocks);

#pragma omp parallel
    {
        ConvBuffers b;
        if ((paired ? FN(buffers_paired)(&b, s, &p) : FN(buffers_get)(&b, s, &p, cross_in || cross_w, K * O)) != 0)
            failed = 1;
#pragma omp for schedule(static)
        for (int blk = 0; blk < blocks; blk++) {
            real *acc = acc_all + (size_t)blk * acc_size;
            real *acc_b = acc + (size_t)K * wsize * lanes;
            for (int n = (int)((long)N * blk / blocks); n < (int)((long)N * (blk + 1) / blocks); n++) {
                if (failed) continue;
                const real *tdo = td_out + (size_t)n * K * p.out_size; /* (K*O, L) */
                if (p.direct) {
                    FN(direct_tangent_backward_sample)(&p, n, K, acc, td_bias ? acc_b : NULL, td_in, tdo, d_out, t_in,
                                                       t_weight, ldw, in, cross_in, cross_w, &b);
                    continue;
                }
                if (paired) {
                    size_t ld = 2 * (size_t)p.cols;
                    real *tdx = td_in + (size_t)n * p.in_size;
                    FN(patches_into)(b.col, ld, b.pad, in + (size_t)n * p.in_size, s, &p);
                    FN(patches_into)(b.col + p.cols, ld, b.pad, t_in + (size_t)n * p.in_size, s, &p);
                    FN(spread_outputs)(b.wide, ld, tdo, O, s, &p);
                    FN(spread_outputs)(b.wide + p.cols, ld, d_out + (size_t)n * p.out_size, O, s, &p);
                    FN(gemm)(0, 1, O, R, 2 * p.cols, 1, b.wide, 2 * p.cols, b.col, 2 * p.cols, 1, acc, R);
                    if (p.layout == LAYOUT_POINTWISE) {
                        FN(gemm)(1, 0, R, p.cols, 2 * O, 1, Wp, R, b.wide, p.cols, 0, tdx, p.cols);
                    } else {
                        FN(gemm)(1, 0, R, p.cols, 2 * O, 1, Wp, R, b.wide, p.cols, 0, b.col2, p.cols);
                        memset(tdx, 0, sizeof(real) * p.in_size);
                        FN(patches_add_back)(tdx, b.col2, b.pad, s, &p);
                    }
                    if (td_bias) FN(add_row_sums)(acc_b, tdo, O, L);
                    continue;
                }
                const real *col = FN(patches)(b.col, b.pad, in + (size_t)n * p.in_size, s, &p);
                const real *tdo_cols = FN(as_columns)(b.wide, tdo, K * O, s, &p);
                if (p.G == 1) {
                    FN(gemm)(0, 1, K * O, R, p.cols, 1, tdo_cols, p.cols, col, p.cols, 1, acc, R);
                } else {
                    for (int k = 0; k < K; k++)
                        FN(gemm_groups_w)(&p, tdo_cols + (size_t)k * O * p.cols, col, acc + (size_t)k * wsize);
                }
                if (td_bias) FN(add_row_sums)(acc_b, tdo, K * O, L);
                if (!cross_in && !cross_w) continue;
                const real *dy = FN(as_columns)(b.wide2, d_out + (size_t)n * p.out_size, O, s, &p); /* (O, cols) */
                for (int k = 0; k < K; k++) {
                    if (cross_w) {
                        const real *tcol = FN(patches)(b.col2, b.pad, t_in + ((size_t)n * K + k) * p.in_size, s, &p);
                        FN(gemm_groups_w)(&p, dy, tcol, acc + (size_t)k * wsize);
                    }
                    if (cross_in) {
                        real *tdx = td_in + ((size_t)n * K + k) * p.in_size;
                        const real *tw = t_weight + (size_t)k * ldw;
                        if (p.layout == LAYOUT_POINTWISE) {
                            FN(gemm_groups_t)(&p, tw, dy, 1, tdx);
                        } else {
                            FN(gemm_groups_t)(&p, tw, dy, 0, b.col2);
                            FN(patches_add_back)(tdx, b.col2, b.pad, s, &p);
                        }
                    }
                }
            }
        }
    }
    if (failed) return -1;
    for (int blk = 0; blk < blocks; blk++) {
        const real *acc = acc_all + (size_t)blk * acc_size;
        const real *acc_b = acc + (size_t)K * wsize * lanes;
        for (int k = 0; k < K; k++) {
            real *dw = td_weight + (size_t)k * ldw;
            const real *a = acc + (size_t)k * wsize * lanes;
            if (p.direct) {
                FN(direct_lanes_reduce)(dw, a, wsize);
            } else {
                for (size_t i = 0; i < wsize; i++) dw[i] += a[i];
            }
            if (td_bias && p.direct) {
                FN(direct_lanes_reduce)(td_bias + (size_t)k * ldw, acc_b + (size_t)k * O * lanes, (size_t)O);
            } else if (td_bias) {
                real *db = td_bias + (size_t)k * ldw;
                for (int o = 0; o < O; o++) db[o] += acc_b[(size_t)k * O + o];
            }
        }
    }
    return 0;
}

/* ---- the diagonal pass ----
 * Per sample n, the K*O gradient rows G (K*O, Rg) = td_out[n] (K*O, L) x col(in[n])^T in one GEMM (per direction and
 * group when G > 1), then diag_W += sum_k G_k^2 and diag_b[o] += sum_k (sum_l td_out[n,k,o,l])^2. Samples are
 * summed in blocks fixed by N (double accumulators, 64-value aligned), then the blocks in order, as in
 * conv2d_tangent_backward: the same bits for any thread count. Every layout uses the per-sample path. */
int FN(conv2d_diag)(double *diag_w, double *diag_b, const real *td_out, const real *in, int K, int N,
                    const ConvShape *s) {
    HS_TRY(conv_check(s));
    Patches p = patches_for_rows(s, (size_t)K * s->O);
    int R = p.Rg, L = p.L, O = s->O, failed = 0;
    size_t wsize = (size_t)O * R;
    size_t acc_size = (wsize + (size_t)O + 7) & ~(size_t)7; /* doubles: 64 bytes apart */
    int blocks = N < CONV_ACC_BLOCKS ? N : CONV_ACC_BLOCKS;
    double *acc_all = scratch_get(SLOT_ACC, sizeof(double) * acc_size * (size_t)blocks);
    if (!acc_all) return -1;
    memset(acc_all, 0, sizeof(double) * acc_size * (size_t)blocks);
#pragma omp parallel
    {
        ConvBuffers b;
        real *G = NULL;
        if (FN(buffers_get)(&b, s, &p, 0, K * O) != 0 ||
            !(G = scratch_get(SLOT_COL2, sizeof(real) * (size_t)K * wsize)))
            failed = 1;
#pragma omp for schedule(static)
        for (int blk = 0; blk < blocks; blk++) {
            double *acc = acc_all + (size_t)blk * acc_size, *acc_b = acc + wsize;
            for (int n = (int)((long)N * blk / blocks); n < (int)((long)N * (blk + 1) / blocks); n++) {
                if (failed) continue;
                const real *tdo = td_out + (size_t)n * K * p.out_size; /* (K*O, L) */
                if (p.direct) {
                    FN(direct_spread)(b.wide, tdo, K * O, &p.d);
                    FN(direct_weight_grad)(G, 0, b.wide, K * O, FN(direct_input)(b.col, in + (size_t)n * p.in_size, &p.d),
                                           &p.d);
                } else if (p.G == 1) {
                    const real *col = FN(patches)(b.col, b.pad, in + (size_t)n * p.in_size, s, &p);
                    const real *tdo_cols = FN(as_columns)(b.wide, tdo, K * O, s, &p);
                    FN(gemm)(0, 1, K * O, R, p.cols, 1, tdo_cols, p.cols, col, p.cols, 0, G, R);
                } else {
                    const real *col = FN(patches)(b.col, b.pad, in + (size_t)n * p.in_size, s, &p);
                    const real *tdo_cols = FN(as_columns)(b.wide, tdo, K * O, s, &p);
                    memset(G, 0, sizeof(real) * (size_t)K * wsize);
                    for (int k = 0; k < K; k++)
                        FN(gemm_groups_w)(&p, tdo_cols + (size_t)k * O * p.cols, col, G + (size_t)k * wsize);
                }
                for (int k = 0; k < K; k++) {
                    const real *g = G + (size_t)k * wsize;
                    for (size_t i = 0; i < wsize; i++) acc[i] += (double)g[i] * (double)g[i];
                }
                if (diag_b)
                    for (int ko = 0; ko < K * O; ko++) {
                        const real *row = tdo + (size_t)ko * L;
                        double sum = 0;
                        for (int l = 0; l < L; l++) sum += (double)row[l];
                        acc_b[ko % O] += sum * sum;
                    }
            }
        }
    }
    if (failed) return -1;
    for (int blk = 0; blk < blocks; blk++) {
        const double *acc = acc_all + (size_t)blk * acc_size;
        for (size_t i = 0; i < wsize; i++) diag_w[i] += acc[i];
        if (diag_b)
            for (int o = 0; o < O; o++) diag_b[o] += acc[wsize + (size_t)o];
    }
    return 0;
}

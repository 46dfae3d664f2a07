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
 * Convolution is bilinear in (in, W), so for direction k:
 *   t_out   = conv(t_in, W) + conv(in, t_W) + t_b
 *   td_in   = conv^T(td_out, W) + conv^T(d_out, t_W)
 *   td_W   += td_out (x) col(in) + d_out (x) col(t_in)
 *   td_b   += sum td_out
 * Tangents are (N, K, ...): the K directions of one sample form one (K*O, Ho*Wo) matrix, so the weight
 * terms of all directions are a single GEMM per sample (per direction and group when G > 1). Parameter gradients are summed over fixed blocks of
 * samples, so results are the same bits for any thread count. */
#include <omp.h>
#include <string.h>

#include "../core/scratch.h"
#include "blas.h"
#include "ops.h"

/* Scratch slots: per thread inside parallel regions, then on the calling thread. */
enum { SLOT_COL, SLOT_COL2, SLOT_PAD, SLOT_WIDE, SLOT_WIDE2, SLOT_STACKED, SLOT_ACC, SLOT_INDEX };

/* Parameter-gradient accumulators: at most this many sample blocks, and at most this many values in all. */
#define CONV_ACC_BLOCKS 16
#define CONV_ACC_VALUES ((size_t)16 << 20)

/* Precision-independent, but this file is compiled twice (f32 and f64): define them in one of them only. */
#if defined(HS_F64)
/* floor((in + pads - extent) / stride) + 1 output positions, 0 when the window does not fit. */
static int conv_out_size(int in, int extent, int stride, int pads) {
    int span = in + pads - extent;
    return span < 0 || stride < 1 ? 0 : span / stride + 1;
}

ConvShape conv2d_shape_general(int C, int H, int W, int O, int kh, int kw, int groups, int stride_h, int stride_w,
                               int dil_h, int dil_w, int pad_t, int pad_l, int pad_b, int pad_r) {
    ConvShape s;
    memset(&s, 0, sizeof s);
    s.C = C, s.H = H, s.W = W, s.O = O;
    s.kh = kh, s.kw = kw, s.groups = groups;
    s.stride_h = stride_h, s.stride_w = stride_w, s.dil_h = dil_h, s.dil_w = dil_w;
    s.pad_t = pad_t, s.pad_l = pad_l, s.pad_b = pad_b, s.pad_r = pad_r;
    s.k = kh, s.stride = stride_h, s.pad = pad_t;
    s.Ho = conv_out_size(H, dil_h * (kh - 1) + 1, stride_h, pad_t + pad_b);
    s.Wo = conv_out_size(W, dil_w * (kw - 1) + 1, stride_w, pad_l + pad_r);
    return s;
}

ConvShape conv2d_shape(int C, int H, int W, int O, int k, int stride, int pad) {
    return conv2d_shape_general(C, H, W, O, k, k, 1, stride, stride, 1, 1, pad, pad, pad, pad);
}
#endif

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
    return p;
}

/* ---- patch matrices ---- */

static void FN(im2col)(real *restrict col /* (C*kh*kw, L) */, const real *restrict x /* (C,H,W) */,
                       const ConvShape *s) {
    int L = s->Ho * s->Wo;
    for (int c = 0; c < s->C; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                real *row = col + (size_t)((c * s->kh + i) * s->kw + j) * L;
                const real *plane = x + (size_t)c * s->H * s->W;
                for (int oh = 0; oh < s->Ho; oh++) {
                    int h = oh * s->stride_h - s->pad_t + i * s->dil_h;
                    real *dst = row + oh * s->Wo;
                    for (int ow = 0; ow < s->Wo; ow++) {
                        int w = ow * s->stride_w - s->pad_l + j * s->dil_w;
                        dst[ow] = (h >= 0 && h < s->H && w >= 0 && w < s->W) ? plane[(size_t)h * s->W + w] : 0;
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

/* The patch matrix of one image x (C,H,W): returns col, or x itself for the pointwise layout.
 * pad_buf: (C,Hp,Wp) scratch for padded wide inputs. */
static const real *FN(patches)(real *col, real *pad_buf, const real *x, const ConvShape *s, const Patches *p) {
    if (p->layout == LAYOUT_POINTWISE) return x;
    if (p->layout == LAYOUT_GENERAL) {
        FN(im2col)(col, x, s);
        return col;
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
                memcpy(col + (size_t)((c * s->kh + i) * s->kw + j) * p->cols,
                       src + ((size_t)c * p->Hp + i * s->dil_h) * p->Wp + j * s->dil_w, sizeof(real) * (size_t)p->cols);
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

/* out (rows, L) = or += the valid columns of wide (rows, cols). */
static void FN(gather_outputs)(real *out, const real *wide, int rows, int accumulate, const ConvShape *s,
                               const Patches *p) {
    for (int r = 0; r < rows; r++)
        for (int oh = 0; oh < s->Ho; oh++) {
            real *d = out + (size_t)r * p->L + (size_t)oh * s->Wo;
            const real *g = wide + (size_t)r * p->cols + (size_t)oh * p->Wp;
            if (accumulate)
                for (int ow = 0; ow < s->Wo; ow++) d[ow] += g[ow];
            else
                memcpy(d, g, sizeof(real) * (size_t)s->Wo);
        }
}

/* wide (rows, cols) = out (rows, L) with zeros in the gap columns. */
static void FN(spread_outputs)(real *wide, const real *out, int rows, const ConvShape *s, const Patches *p) {
    memset(wide, 0, sizeof(real) * (size_t)rows * p->cols);
    for (int r = 0; r < rows; r++)
        for (int oh = 0; oh < s->Ho; oh++)
            memcpy(wide + (size_t)r * p->cols + (size_t)oh * p->Wp, out + (size_t)r * p->L + (size_t)oh * s->Wo,
                   sizeof(real) * (size_t)s->Wo);
}

/* Output-shaped gradient rows (rows, L) in the patch layout's columns: itself, or spread into buf. */
static const real *FN(as_columns)(real *buf, const real *out, int rows, const ConvShape *s, const Patches *p) {
    if (p->layout != LAYOUT_WIDE) return out;
    FN(spread_outputs)(buf, out, rows, s, p);
    return buf;
}

/* Per-thread buffers for one image. */
typedef struct {
    real *col, *col2, *pad, *wide, *wide2;
} ConvBuffers;

/* wide_rows: rows of the wide output buffers needed (0: none). */
static int FN(buffers_get)(ConvBuffers *b, const ConvShape *s, const Patches *p, int second_col, int wide_rows) {
    memset(b, 0, sizeof *b);
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

/* ---- convolution and its transpose over many images ---- */

/* out = conv(in, W) (+ bias) for `count` images. */
static int FN(conv_apply)(real *out, const real *in, const real *weight, const real *bias, long count,
                          const ConvShape *s) {
    Patches p = patches_for(s);
    int failed = 0;
#pragma omp parallel
    {
        ConvBuffers b;
        if (FN(buffers_get)(&b, s, &p, 0, s->O) != 0) failed = 1;
#pragma omp for schedule(static)
        for (long n = 0; n < count; n++) {
            if (failed) continue;
            real *y = out + (size_t)n * p.out_size;
            const real *col = FN(patches)(b.col, b.pad, in + (size_t)n * p.in_size, s, &p);
            real *dst = p.layout == LAYOUT_WIDE ? b.wide : y;
            FN(gemm_groups)(&p, weight, col, 0, dst);
            if (p.layout == LAYOUT_WIDE) FN(gather_outputs)(y, dst, s->O, 0, s, &p);
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
    Patches p = patches_for(s);
    int R = p.Rg, L = p.L, O = s->O, failed = 0;
    if (t_in) {
        HS_TRY(FN(conv_apply)(t_out, t_in, weight, NULL, (long)N * K, s));
    } else {
        memset(t_out, 0, sizeof(real) * p.out_size * (size_t)N * K);
    }
    if (t_weight) {
        /* Stack the K weight tangents into one (K*O, Rg) matrix; when few entries are non-zero (unit directions,
         * as the exact Hessian uses), add their patch rows directly instead of multiplying by zeros. */
        size_t total = (size_t)K * O * R, nnz = 0;
        real *stacked = scratch_get(SLOT_STACKED, sizeof(real) * total);
        if (!stacked) return -1;
        for (int k = 0; k < K; k++)
            memcpy(stacked + (size_t)k * O * R, t_weight + (size_t)k * ldw, sizeof(real) * (size_t)O * R);
        for (size_t i = 0; i < total; i++) nnz += stacked[i] != 0;
        int sparse = nnz * 16 < total;
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
                const real *col = FN(patches)(b.col, b.pad, in + (size_t)n * p.in_size, s, &p);
                real *tn = t_out + (size_t)n * K * p.out_size; /* (K*O, L) */
                if (sparse) {
                    for (size_t e = 0; e < nnz; e++) {
                        size_t i = (size_t)nz_index[e], row = i / (size_t)R; /* k*O + o */
                        size_t group = (row % (size_t)O) / (size_t)p.Og;
                        real w = stacked[i], *dst = tn + row * L;
                        const real *src = col + (group * (size_t)R + i % (size_t)R) * p.cols;
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
                    if (p.G == 1) {
                        FN(gemm)(0, 0, K * O, p.cols, R, 1, stacked, R, col, p.cols, beta, dst, p.cols);
                    } else {
                        for (int k = 0; k < K; k++)
                            FN(gemm_groups)(&p, stacked + (size_t)k * O * R, col, beta, dst + (size_t)k * O * p.cols);
                    }
                    if (wide) FN(gather_outputs)(tn, b.wide, K * O, 1, s, &p);
                }
            }
        }
        if (failed) return -1;
    }
    if (t_bias) {
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

int FN(conv2d_tangent_backward)(real *td_in, real *td_weight, real *td_bias, size_t ldw, const real *td_out,
                                const real *d_out, const real *t_in, const real *t_weight, const real *in,
                                const real *weight, int K, int N, const ConvShape *s) {
    HS_TRY(conv_check(s));
    Patches p = patches_for(s);
    int R = p.Rg, L = p.L, O = s->O, failed = 0;
    size_t wsize = (size_t)O * R;
    if (ldw == 0) ldw = wsize; /* K == 1 primal call */
    int cross_in = d_out && t_weight && td_in, cross_w = d_out && t_in;

    if (td_in) HS_TRY(FN(conv_apply_transposed)(td_in, td_out, weight, (long)N * K, s));
    if (!td_weight) return 0; /* activation gradients only (a backward pass for an HVP) */

    /* Samples are summed in blocks fixed by N and the shape alone (not by the thread count), each block in
     * sample order into its own accumulator, and the blocks in order: the same bits for any thread count. */
    size_t acc_size = (size_t)K * (wsize + (size_t)O); /* per block: K weight blocks then K bias blocks */
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
        if (FN(buffers_get)(&b, s, &p, cross_in || cross_w, K * O) != 0) failed = 1;
#pragma omp for schedule(static)
        for (int blk = 0; blk < blocks; blk++) {
            real *acc = acc_all + (size_t)blk * acc_size;
            real *acc_b = acc + (size_t)K * wsize;
            for (int n = (int)((long)N * blk / blocks); n < (int)((long)N * (blk + 1) / blocks); n++) {
                if (failed) continue;
                const real *tdo = td_out + (size_t)n * K * p.out_size; /* (K*O, L) */
                const real *col = FN(patches)(b.col, b.pad, in + (size_t)n * p.in_size, s, &p);
                const real *tdo_cols = FN(as_columns)(b.wide, tdo, K * O, s, &p);
                if (p.G == 1) {
                    FN(gemm)(0, 1, K * O, R, p.cols, 1, tdo_cols, p.cols, col, p.cols, 1, acc, R);
                } else {
                    for (int k = 0; k < K; k++)
                        FN(gemm_groups_w)(&p, tdo_cols + (size_t)k * O * p.cols, col, acc + (size_t)k * wsize);
                }
                if (td_bias)
                    for (int ko = 0; ko < K * O; ko++) {
                        const real *row = tdo + (size_t)ko * L;
                        real sum = 0;
                        for (int l = 0; l < L; l++) sum += row[l];
                        acc_b[ko] += sum;
                    }
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
        const real *acc_b = acc + (size_t)K * wsize;
        for (int k = 0; k < K; k++) {
            real *dw = td_weight + (size_t)k * ldw;
            const real *a = acc + (size_t)k * wsize;
            for (size_t i = 0; i < wsize; i++) dw[i] += a[i];
            if (td_bias) {
                real *db = td_bias + (size_t)k * ldw;
                for (int o = 0; o < O; o++) db[o] += acc_b[(size_t)k * O + o];
            }
        }
    }
    return 0;
}

/* conv2d_direct.c: direct (patch-free) kernels for narrow stride-1 convolutions (see conv2d_direct.h).
 *
 * The kernels run on GCC/Clang vector types as wide as one register of the build's instruction set (see
 * VEC_BYTES), so the same code serves every CPU of this project. Register blocking: the forward and backward-data
 * kernels keep up to DIRECT_BLOCK output rows (or input channels) times NV vectors of columns in registers and
 * stream the patch rows past them; the weight-gradient kernel keeps, per output row, one vector accumulator for each
 * of NV patch rows, and its lanes are summed in a fixed order (per entry, or once per block of samples in lane
 * form). NV is 4 where the instruction set has 32 vector registers (AVX-512) and 2 where it has 16: more
 * multiply-adds per load (the kernels were load-bound, their loads mostly straddling cache lines), and the sums
 * are the same, in the same order, for any NV. Loads past the last column read the zero slack of the padded
 * buffers. */
#include <string.h>

#include "conv2d_direct.h"

/* The widest vector the build's instruction set has (AVX-512: 64 bytes, AVX: 32, else SSE's 16), so that a
 * register block (NV * DIRECT_BLOCK accumulators) fits the register file without spills on every build. */
#if defined(VEC_BYTES) /* set on the command line (measurements) */
#elif defined(__AVX512F__)
#define VEC_BYTES 64
#elif defined(__AVX__)
#define VEC_BYTES 32
#else
#define VEC_BYTES 16
#endif
typedef real vec __attribute__((vector_size(VEC_BYTES)));
#define VL ((int)(sizeof(vec) / sizeof(real)))
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(vec))
#define VSTORE(p, v) memcpy((p), &(v), sizeof(vec))
#define DIRECT_BLOCK 6 /* rows (or channels) per register block */
#if VEC_BYTES == 64
#define NV 4 /* vectors per register block: 24 accumulators + 5 registers fit AVX-512's 32 */
#else
#define NV 2 /* 12 accumulators + 3 registers fit AVX2's 16 */
#endif
#define SLACK (NV * VL) /* readable zeros after a padded buffer: the kernels load NV vectors past a column */

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

DirectShape FN(conv_direct_shape)(const ConvShape *s) {
    DirectShape d;
    d.C = s->C, d.kh = s->kh, d.kw = s->kw, d.dh = s->dil_h, d.dw = s->dil_w;
    d.Hp = s->H + s->pad_t + s->pad_b, d.Wp = s->W + s->pad_l + s->pad_r;
    d.pad_t = s->pad_t, d.pad_l = s->pad_l;
    d.H = s->H, d.W = s->W, d.Ho = s->Ho, d.Wo = s->Wo;
    d.plane = (size_t)d.Hp * d.Wp;
    d.cols = (s->Ho - 1) * d.Wp + s->Wo;
    d.R = s->C * s->kh * s->kw;
    d.front = (size_t)(s->kh - 1) * s->dil_h * d.Wp + (size_t)(s->kw - 1) * s->dil_w;
    size_t span = (size_t)d.cols > d.plane ? (size_t)d.cols : d.plane;
    d.ld = d.front + round_up(span, (size_t)SLACK) + SLACK;
    d.input_size = (size_t)d.C * d.plane + SLACK;
    return d;
}

const real *FN(direct_input)(real *xp, const real *x, const DirectShape *d) {
    if (d->Hp == d->H && d->Wp == d->W) {
        memcpy(xp, x, sizeof(real) * (size_t)d->C * d->plane);
        memset(xp + (size_t)d->C * d->plane, 0, sizeof(real) * SLACK);
        return xp;
    }
    memset(xp, 0, sizeof(real) * d->input_size);
    for (int c = 0; c < d->C; c++)
        for (int h = 0; h < d->H; h++)
            memcpy(xp + (size_t)c * d->plane + (size_t)(h + d->pad_t) * d->Wp + d->pad_l,
                   x + ((size_t)c * d->H + h) * d->W, sizeof(real) * (size_t)d->W);
    return xp;
}

void FN(direct_spread)(real *dst, const real *out, int rows, const DirectShape *d) {
    memset(dst, 0, sizeof(real) * (size_t)rows * d->ld);
    for (int r = 0; r < rows; r++)
        for (int oh = 0; oh < d->Ho; oh++)
            memcpy(dst + (size_t)r * d->ld + d->front + (size_t)oh * d->Wp, out + ((size_t)r * d->Ho + oh) * d->Wo,
                   sizeof(real) * (size_t)d->Wo);
}

/* ---- forward: nb (<= DIRECT_BLOCK, a constant after inlining) rows of Y ---- */

static inline __attribute__((always_inline)) void FN(forward_block)(real *Y, const real *w, const real *xp,
                                                                     const DirectShape *d, const int nb) {
    const int R = d->R;
    for (int l0 = 0; l0 < d->cols; l0 += NV * VL) {
        vec a[DIRECT_BLOCK][NV];
        _Pragma("GCC unroll 6")
        for (int b = 0; b < nb; b++)
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) a[b][v] = (vec){0};
        int r = 0;
        for (int c = 0; c < d->C; c++)
            for (int i = 0; i < d->kh; i++) {
                const real *xr = xp + (size_t)c * d->plane + (size_t)i * d->dh * d->Wp + l0;
                for (int j = 0; j < d->kw; j++, r++) {
                    vec x[NV];
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) VLOAD(x[v], xr + (size_t)j * d->dw + v * VL);
                    _Pragma("GCC unroll 6")
                    for (int b = 0; b < nb; b++) {
                        real wv = w[(size_t)b * R + r];
                        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) a[b][v] += x[v] * wv;
                    }
                }
            }
        int n = d->cols - l0 < NV * VL ? d->cols - l0 : NV * VL;
        _Pragma("GCC unroll 6")
        for (int b = 0; b < nb; b++) {
            real *y = Y + (size_t)b * d->cols + l0;
            if (n == NV * VL) {
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) VSTORE(y + v * VL, a[b][v]);
            } else {
                real tmp[NV * VL];
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) VSTORE(tmp + v * VL, a[b][v]);
                memcpy(y, tmp, sizeof(real) * (size_t)n);
            }
        }
    }
}

void FN(direct_forward)(real *Y, const real *w, int rows, const real *xp, const DirectShape *d) {
    for (int b0 = 0; b0 < rows; b0 += DIRECT_BLOCK) {
        int nb = rows - b0 < DIRECT_BLOCK ? rows - b0 : DIRECT_BLOCK;
        real *y = Y + (size_t)b0 * d->cols;
        const real *wb = w + (size_t)b0 * d->R;
        switch (nb) {
        case 1: FN(forward_block)(y, wb, xp, d, 1); break;
        case 2: FN(forward_block)(y, wb, xp, d, 2); break;
        case 3: FN(forward_block)(y, wb, xp, d, 3); break;
        case 4: FN(forward_block)(y, wb, xp, d, 4); break;
        case 5: FN(forward_block)(y, wb, xp, d, 5); break;
        default: FN(forward_block)(y, wb, xp, d, DIRECT_BLOCK); break;
        }
    }
}

/* ---- weight gradient: nb rows of dw, NV patch rows per pass ---- */

/* The sum of the VL lanes at t (overwritten) as a pairwise tree, a fixed order: depth log2(VL) instead of a chain
 * of VL dependent additions, which took a quarter of the weight-gradient kernel's time. */
static inline real FN(lane_sum)(real *t) {
    _Pragma("GCC unroll 8") for (int w = VL / 2; w >= 1; w /= 2)
        _Pragma("GCC unroll 16") for (int i = 0; i < w; i++) t[i] += t[i + w];
    return t[0];
}

/* mode: WG_SET, WG_ADD (dw (nb, R) = or += the sums) or WG_LANES (dw (nb, R, VL) += the lane vectors, summed later
 * by direct_lanes_reduce: no reduction per sample). */
enum { WG_SET, WG_ADD, WG_LANES };
/* Entry (b, r) of the block: the lane vector a added (WG_LANES) or its lane sum stored or added. */
static inline __attribute__((always_inline)) void FN(weight_grad_store)(real *dw, int mode, int R, int b, int r,
                                                                         const vec *a) {
    if (mode == WG_LANES) {
        real *dst = dw + ((size_t)b * R + r) * VL;
        vec v;
        VLOAD(v, dst);
        v += *a;
        VSTORE(dst, v);
        return;
    }
    real t[VL];
    VSTORE(t, *a);
    real sum = FN(lane_sum)(t);
    real *dst = dw + (size_t)b * R + r;
    *dst = mode == WG_ADD ? *dst + sum : sum;
}

/* NV patch rows r.. r + NV - 1 per pass (past the end, repeats of row r, not stored), so each load of a dy row
 * feeds NV multiply-adds: NV nb accumulators + nb + NV values in registers. */
static inline __attribute__((always_inline)) void FN(weight_grad_block)(real *dw, int mode, const real *dy,
                                                                         const real *xp, const DirectShape *d,
                                                                         const int nb) {
    const int R = d->R, span = (int)round_up((size_t)d->cols, (size_t)VL);
    const real *g = dy + d->front;
    for (int r = 0; r < R; r += NV) {
        const real *x[NV];
        _Pragma("GCC unroll 4")
        for (int v = 0; v < NV; v++) x[v] = xp + direct_row_offset(d, (size_t)(r + v < R ? r + v : r));
        vec a[DIRECT_BLOCK][NV];
        _Pragma("GCC unroll 6")
        for (int b = 0; b < nb; b++)
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) a[b][v] = (vec){0};
        for (int l0 = 0; l0 < span; l0 += VL) {
            vec u[NV];
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) VLOAD(u[v], x[v] + l0);
            _Pragma("GCC unroll 6")
            for (int b = 0; b < nb; b++) {
                vec gv;
                VLOAD(gv, g + (size_t)b * d->ld + l0);
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) a[b][v] += gv * u[v];
            }
        }
        _Pragma("GCC unroll 6")
        for (int b = 0; b < nb; b++)
            _Pragma("GCC unroll 4")
            for (int v = 0; v < NV; v++)
                if (r + v < R) FN(weight_grad_store)(dw, mode, R, b, r + v, &a[b][v]);
    }
}

static void FN(weight_grad)(real *dw, int mode, const real *dy, int rows, const real *xp, const DirectShape *d) {
    for (int b0 = 0; b0 < rows; b0 += DIRECT_BLOCK) {
        int nb = rows - b0 < DIRECT_BLOCK ? rows - b0 : DIRECT_BLOCK;
        real *dwb = dw + (size_t)b0 * d->R * (mode == WG_LANES ? VL : 1);
        const real *g = dy + (size_t)b0 * d->ld;
        switch (nb) {
        case 1: FN(weight_grad_block)(dwb, mode, g, xp, d, 1); break;
        case 2: FN(weight_grad_block)(dwb, mode, g, xp, d, 2); break;
        case 3: FN(weight_grad_block)(dwb, mode, g, xp, d, 3); break;
        case 4: FN(weight_grad_block)(dwb, mode, g, xp, d, 4); break;
        case 5: FN(weight_grad_block)(dwb, mode, g, xp, d, 5); break;
        default: FN(weight_grad_block)(dwb, mode, g, xp, d, DIRECT_BLOCK); break;
        }
    }
}

void FN(direct_weight_grad)(real *dw, int accumulate, const real *dy, int rows, const real *xp, const DirectShape *d) {
    FN(weight_grad)(dw, accumulate ? WG_ADD : WG_SET, dy, rows, xp, d);
}

int FN(direct_lanes)(void) { return VL; }

void FN(direct_weight_grad_lanes)(real *acc, const real *dy, int rows, const real *xp, const DirectShape *d) {
    FN(weight_grad)(acc, WG_LANES, dy, rows, xp, d);
}

void FN(direct_lanes_reduce)(real *dw, const real *acc, size_t n) {
    for (size_t i = 0; i < n; i++) {
        real t[VL];
        memcpy(t, acc + i * VL, sizeof t);
        dw[i] += FN(lane_sum)(t);
    }
}

void FN(direct_row_sums_lanes)(real *acc, const real *dy, int rows, const DirectShape *d) {
    const int span = (int)round_up((size_t)d->cols, (size_t)VL);
    for (int b = 0; b < rows; b++) {
        const real *g = dy + (size_t)b * d->ld + d->front;
        vec s0 = (vec){0}, s1 = (vec){0}; /* two chains, even and odd vectors, added at the end: a fixed order */
        int l0 = 0;
        for (; l0 + VL < span; l0 += 2 * VL) {
            vec u0, u1;
            VLOAD(u0, g + l0);
            VLOAD(u1, g + l0 + VL);
            s0 += u0;
            s1 += u1;
        }
        if (l0 < span) {
            vec u0;
            VLOAD(u0, g + l0);
            s0 += u0;
        }
        vec a;
        VLOAD(a, acc + (size_t)b * VL);
        a += s0 + s1;
        VSTORE(acc + (size_t)b * VL, a);
    }
}

/* ---- backward data: nb input channels c0.. of dxp (the padded plane) ---- */

static inline __attribute__((always_inline)) void FN(backward_block)(real *dxp, const real *w, int O, int c0,
                                                                      const real *dy, const DirectShape *d,
                                                                      const int nb) {
    const int khw = d->kh * d->kw, R = d->R;
    for (size_t q0 = 0; q0 < d->plane; q0 += NV * VL) {
        vec a[DIRECT_BLOCK][NV];
        _Pragma("GCC unroll 6")
        for (int b = 0; b < nb; b++)
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) a[b][v] = (vec){0};
        for (int o = 0; o < O; o++) {
            const real *g = dy + (size_t)o * d->ld + d->front + q0;
            const real *wo = w + (size_t)o * R + (size_t)c0 * khw;
            for (int i = 0; i < d->kh; i++)
                for (int j = 0; j < d->kw; j++) {
                    const real *src = g - ((size_t)i * d->dh * d->Wp + (size_t)j * d->dw);
                    vec y[NV];
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) VLOAD(y[v], src + v * VL);
                    _Pragma("GCC unroll 6")
                    for (int b = 0; b < nb; b++) {
                        real wv = wo[b * khw + i * d->kw + j];
                        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) a[b][v] += y[v] * wv;
                    }
                }
        }
        size_t n = d->plane - q0 < (size_t)(NV * VL) ? d->plane - q0 : (size_t)(NV * VL);
        _Pragma("GCC unroll 6")
        for (int b = 0; b < nb; b++) {
            real tmp[NV * VL];
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) VSTORE(tmp + v * VL, a[b][v]);
            memcpy(dxp + (size_t)(c0 + b) * d->plane + q0, tmp, sizeof(real) * n);
        }
    }
}

void FN(direct_backward_data)(real *dx, int accumulate, const real *w, int O, const real *dy, real *dxp,
                              const DirectShape *d) {
    for (int c0 = 0; c0 < d->C; c0 += DIRECT_BLOCK) {
        int nb = d->C - c0 < DIRECT_BLOCK ? d->C - c0 : DIRECT_BLOCK;
        switch (nb) {
        case 1: FN(backward_block)(dxp, w, O, c0, dy, d, 1); break;
        case 2: FN(backward_block)(dxp, w, O, c0, dy, d, 2); break;
        case 3: FN(backward_block)(dxp, w, O, c0, dy, d, 3); break;
        case 4: FN(backward_block)(dxp, w, O, c0, dy, d, 4); break;
        case 5: FN(backward_block)(dxp, w, O, c0, dy, d, 5); break;
        default: FN(backward_block)(dxp, w, O, c0, dy, d, DIRECT_BLOCK); break;
        }
    }
    for (int c = 0; c < d->C; c++)
        for (int h = 0; h < d->H; h++) {
            real *dst = dx + ((size_t)c * d->H + h) * d->W;
            const real *src = dxp + (size_t)c * d->plane + (size_t)(h + d->pad_t) * d->Wp + d->pad_l;
            if (accumulate)
                for (int x = 0; x < d->W; x++) dst[x] += src[x];
            else
                memcpy(dst, src, sizeof(real) * (size_t)d->W);
        }
}

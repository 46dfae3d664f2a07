/* test_ops.c: derivative tests of every op in src/ops/ against naive references and central differences, built
 * in both precisions (test_ops: float64, test_ops_f32: float32). The references are computed in double from the
 * same inputs (tests/derivative_check.h): direct loops, and central differences of the float64 ops; the
 * tolerances of each precision are stated there.
 *
 * For linear and conv2d (with and without bias, several shapes; conv2d also with rectangular kernels, groups,
 * depthwise and channel-multiplier groups, dilation, per-axis strides and asymmetric padding):
 *   1. forward against a direct-loop reference;
 *   2. backward (d_in, d_weight, d_bias) against central differences of sum(r * forward) for a random r,
 *      element by element; parameter gradients must accumulate (+=), d_in must be overwritten (=);
 *   3. tangent forward (K directions; t_in, t_weight, t_bias each also NULL) against central differences of
 *      the forward pass along each direction;
 *   4. tangent backward (K directions; every NULL combination of t_in, t_weight, d_out, td_in, td_bias)
 *      against central differences of the backward pass along (t_in, t_weight, td_out); with d_out == NULL
 *      (Gauss-Newton) against backward(td_out) at the unperturbed point.
 *   Weight tangents live in a (K, ldw) matrix at an offset, with padding that must stay untouched.
 *   conv2d also: the adjoint identity <conv(x), y> = <x, conv^T(y)>, and the tangent forward pass with sparse
 *   (unit) weight directions, which takes its own path.
 * relu, maxpool, avgpool2d and cross-entropy get the analogous checks; the pools' output sizes and values also
 * against PyTorch 1.13 results (ceil mode, count_include_pad). Inputs avoid kinks: ReLU inputs have |x| > 0.05,
 * max-pool inputs are distinct by 0.02 (so every window has a unique maximum by a margin far above eps), as
 * ggml's test-backend-ops does. Finally results must not depend on the OpenMP thread count beyond rounding.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ops/ops.h"
#include "check.h"

#define EPS 1e-6 /* central-difference step */

/* conv2d.c's tuning of its batched small-plane path (planes below `below` outputs, groups 1; `columns` per GEMM). */
extern int FN(conv2d_batch_columns), FN(conv2d_batch_below), FN(conv2d_direct_max_channels), FN(conv2d_dense_always);

#include "derivative_check.h"

/* ---------------------------------------------------------------- utilities */

enum { OP_LINEAR, OP_CONV, OP_RELU, OP_POOL, OP_AVGPOOL, OP_CE, OP_THREADS, OP_COUNT };
static const char *op_names[OP_COUNT] = {"linear", "conv2d", "relu", "maxpool", "avgpool2d", "cross_entropy",
                                         "threads"};
static double worst_fd[OP_COUNT], worst_exact[OP_COUNT];
static int rc_failures;

/* Random values with 0.05 <= |x| <= 1 (away from the ReLU kink). */
static void fill_away(real *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double u = 0.05 + 0.95 * urand();
        x[i] = (real)(urand() < 0.5 ? -u : u);
    }
}
static double compare(int op, int exact, const char *what, const real *got, const double *ref, size_t n,
                      double rtol) {
    return compare_values(exact ? &worst_exact[op] : &worst_fd[op], what, got, ref, n, rtol);
}
static double compare_r(int op, const char *what, const real *got, const real *ref, size_t n) {
    return compare_reals(&worst_exact[op], what, got, ref, n, RTOL_EXACT);
}

/* ---------------------------------------------------------------- linear and conv2d: one generic test */

typedef struct {
    char name[192];
    int op, is_conv, N, has_bias;
    int In, O;    /* linear */
    ConvShape cs; /* conv2d */
    size_t in_size, out_size, wsize, bsize; /* per sample / total */
} Layer;

static Layer make_linear(int N, int In, int O, int bias) {
    Layer L = {0};
    snprintf(L.name, sizeof L.name, "linear N=%d In=%d O=%d bias=%d", N, In, O, bias);
    L.op = OP_LINEAR, L.N = N, L.has_bias = bias, L.In = In, L.O = O;
    L.in_size = (size_t)In, L.out_size = (size_t)O, L.wsize = (size_t)O * In, L.bsize = (size_t)O;
    return L;
}

static size_t conv_wsize(const ConvShape *s) { return (size_t)s->O * (s->C / s->groups) * s->kh * s->kw; }

static Layer make_conv_shape(int N, ConvShape cs, int bias) {
    Layer L = {0};
    L.cs = cs;
    snprintf(L.name, sizeof L.name,
             "conv2d N=%d C=%d H=%d W=%d O=%d k=%dx%d g=%d s=%d,%d d=%d,%d p=%d,%d,%d,%d (Ho=%d Wo=%d) bias=%d", N,
             cs.C, cs.H, cs.W, cs.O, cs.kh, cs.kw, cs.groups, cs.stride_h, cs.stride_w, cs.dil_h, cs.dil_w, cs.pad_t,
             cs.pad_l, cs.pad_b, cs.pad_r, cs.Ho, cs.Wo, bias);
    L.op = OP_CONV, L.is_conv = 1, L.N = N, L.has_bias = bias;
    L.in_size = (size_t)cs.C * cs.H * cs.W, L.out_size = (size_t)cs.O * cs.Ho * cs.Wo;
    L.wsize = conv_wsize(&cs), L.bsize = (size_t)cs.O;
    return L;
}

static Layer make_conv(int N, int C, int H, int W, int O, int k, int stride, int pad, int bias) {
    return make_conv_shape(N, conv2d_shape(C, H, W, O, k, stride, pad), bias);
}

static void L_fwd(const Layer *L, real *out, const real *in, const real *w, const real *b, int N) {
    if (L->is_conv) {
        if (FN(conv2d_forward)(out, in, w, b, N, &L->cs) != 0) rc_failures++;
    } else {
        FN(linear_forward)(out, in, w, b, N, L->In, L->O);
    }
}
static void L_bwd(const Layer *L, real *d_in, real *d_w, real *d_b, const real *d_out, const real *in, const real *w,
                  int N) {
    if (L->is_conv) {
        if (FN(conv2d_backward)(d_in, d_w, d_b, d_out, in, w, N, &L->cs) != 0) rc_failures++;
    } else {
        FN(linear_backward)(d_in, d_w, d_b, d_out, in, w, N, L->In, L->O);
    }
}
static void L_tfwd(const Layer *L, real *t_out, const real *t_in, const real *t_w, const real *t_b, size_t ldw,
                   const real *in, const real *w, int K, int N) {
    if (L->is_conv) {
        if (FN(conv2d_tangent_forward)(t_out, t_in, t_w, t_b, ldw, in, w, K, N, &L->cs) != 0) rc_failures++;
    } else {
        FN(linear_tangent_forward)(t_out, t_in, t_w, t_b, ldw, in, w, K, N, L->In, L->O);
    }
}
static void L_tbwd(const Layer *L, real *td_in, real *td_w, real *td_b, size_t ldw, const real *td_out,
                   const real *d_out, const real *t_in, const real *t_w, const real *in, const real *w, int K, int N) {
    if (L->is_conv) {
        if (FN(conv2d_tangent_backward)(td_in, td_w, td_b, ldw, td_out, d_out, t_in, t_w, in, w, K, N, &L->cs) != 0)
            rc_failures++;
    } else {
        FN(linear_tangent_backward)(td_in, td_w, td_b, ldw, td_out, d_out, t_in, t_w, in, w, K, N, L->In, L->O);
    }
}

/* The reference passes: the float64 ops. */
static void ref_fwd(const Layer *L, double *out, const double *in, const double *w, const double *b, int N) {
    if (L->is_conv) {
        if (conv2d_forward_f64(out, in, w, b, N, &L->cs) != 0) rc_failures++;
    } else {
        linear_forward_f64(out, in, w, b, N, L->In, L->O);
    }
}
static void ref_bwd(const Layer *L, double *d_in, double *d_w, double *d_b, const double *d_out, const double *in,
                    const double *w, int N) {
    if (L->is_conv) {
        if (conv2d_backward_f64(d_in, d_w, d_b, d_out, in, w, N, &L->cs) != 0) rc_failures++;
    } else {
        linear_backward_f64(d_in, d_w, d_b, d_out, in, w, N, L->In, L->O);
    }
}

/* Direct loops in double. */
static void L_ref(const Layer *L, double *out, const real *in, const real *w, const real *b, int N) {
    if (!L->is_conv) {
        for (int n = 0; n < N; n++)
            for (int o = 0; o < L->O; o++) {
                double acc = b ? b[o] : 0;
                for (int i = 0; i < L->In; i++) acc += (double)in[(size_t)n * L->In + i] * w[(size_t)o * L->In + i];
                out[(size_t)n * L->O + o] = acc;
            }
        return;
    }
    /* out[n,o,oh,ow] = b[o] + sum over the input channels c of o's group, i < kh, j < kw, of
     * in[n, c, oh*stride_h - pad_t + i*dil_h, ow*stride_w - pad_l + j*dil_w] (zero outside)
     * times w[o, c - group start, i, j] */
    const ConvShape *s = &L->cs;
    const int Cg = s->C / s->groups, Og = s->O / s->groups;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < s->O; o++)
            for (int oh = 0; oh < s->Ho; oh++)
                for (int ow = 0; ow < s->Wo; ow++) {
                    double acc = b ? b[o] : 0;
                    for (int cg = 0; cg < Cg; cg++)
                        for (int i = 0; i < s->kh; i++)
                            for (int j = 0; j < s->kw; j++) {
                                int c = (o / Og) * Cg + cg;
                                int h = oh * s->stride_h - s->pad_t + i * s->dil_h;
                                int x = ow * s->stride_w - s->pad_l + j * s->dil_w;
                                if (h < 0 || h >= s->H || x < 0 || x >= s->W) continue;
                                acc += (double)in[(((size_t)n * s->C + c) * s->H + h) * s->W + x] *
                                       w[(((size_t)o * Cg + cg) * s->kh + i) * s->kw + j];
                            }
                    out[(((size_t)n * s->O + o) * s->Ho + oh) * s->Wo + ow] = acc;
                }
}

typedef struct {
    const Layer *L;
    double *in, *w, *b, *d_out;
} LayerCtx;

static void eval_layer_fwd(void *c, double *out) {
    LayerCtx *x = c;
    ref_fwd(x->L, out, x->in, x->w, x->b, x->L->N);
}
/* out = [d_in | d_w | d_b] of the backward pass at (in, w, d_out). */
static void eval_layer_bwd(void *c, double *out) {
    LayerCtx *x = c;
    const Layer *L = x->L;
    size_t nin = (size_t)L->N * L->in_size, nb = L->has_bias ? L->bsize : 0;
    double *d_w = out + nin, *d_b = d_w + L->wsize;
    memset(d_w, 0, sizeof(double) * (L->wsize + nb));
    ref_bwd(L, out, d_w, nb ? d_b : NULL, x->d_out, x->in, x->w, L->N);
}

static void test_layer(const Layer *L, int K) {
    const int N = L->N, op = L->op;
    const size_t nin = (size_t)N * L->in_size, nout = (size_t)N * L->out_size, nw = L->wsize;
    const size_t nb = L->has_bias ? L->bsize : 0;
    const size_t tin_n = (size_t)K * nin, tout_n = (size_t)K * nout;
    /* Parameter vector layout of the (K, ldw) tangent matrices: pad | weight | pad | bias | pad. */
    const size_t offw = 3, offb = offw + nw + 2, ldw = offb + L->bsize + 5;
    char what[448];

    real *in = vec(nin), *w = vec(nw), *b = nb ? vec(nb) : NULL;
    fill_away(in, nin);
    fill(w, nw);
    if (b) fill(b, nb);
    /* the references' inputs (perturbed and restored) and their unperturbed values */
    double *in_d = dvec_of(in, nin), *w_d = dvec_of(w, nw), *b_d = dvec_of(b, nb);
    double *in0 = dvec_of(in, nin), *w0 = dvec_of(w, nw), *b0 = dvec_of(b, nb);
    LayerCtx ctx = {L, in_d, w_d, b_d, NULL};

    /* 1. forward */
    real *out = vec(nout);
    double *ref = dvec(nout);
    fill_nan(out, nout);
    L_fwd(L, out, in, w, b, N);
    L_ref(L, ref, in, w, b, N);
    snprintf(what, sizeof what, "%s: forward vs direct loops", L->name);
    compare(op, 1, what, out, ref, nout, RTOL_EXACT);

    /* 2. backward */
    real *r = vec(nout);
    fill(r, nout);
    real *d_in = vec(nin), *d_in2 = vec(nin), *d_w = vec(nw), *d_b = vec(L->bsize);
    fill_nan(d_in, nin);
    fill(d_w, nw);
    fill(d_b, L->bsize);
    real *d_w0 = vec_copy(d_w, nw), *d_b0 = vec_copy(d_b, L->bsize);
    L_bwd(L, d_in, d_w, nb ? d_b : NULL, r, in, w, N);
    double *g_in = dvec(nin), *g_w = dvec(nw), *g_b = dvec(L->bsize);
    real *inc_w = vec(nw), *inc_b = vec(L->bsize);
    fd_grad(g_in, in_d, nin, r, nout, eval_layer_fwd, &ctx);
    fd_grad(g_w, w_d, nw, r, nout, eval_layer_fwd, &ctx);
    if (nb) fd_grad(g_b, b_d, nb, r, nout, eval_layer_fwd, &ctx);
    snprintf(what, sizeof what, "%s: backward d_in vs central differences", L->name);
    compare(op, 0, what, d_in, g_in, nin, RTOL_FD);
    for (size_t i = 0; i < nw; i++) inc_w[i] = d_w[i] - d_w0[i];
    snprintf(what, sizeof what, "%s: backward d_weight vs central differences", L->name);
    compare(op, 0, what, inc_w, g_w, nw, RTOL_FD);
    if (nb) {
        for (size_t i = 0; i < nb; i++) inc_b[i] = d_b[i] - d_b0[i];
        snprintf(what, sizeof what, "%s: backward d_bias vs central differences", L->name);
        compare(op, 0, what, inc_b, g_b, nb, RTOL_FD);
    }
    /* Second call: d_in overwritten (same value), parameter gradients accumulate to twice the increment. */
    fill_nan(d_in2, nin);
    L_bwd(L, d_in2, d_w, nb ? d_b : NULL, r, in, w, N);
    snprintf(what, sizeof what, "%s: backward d_in is overwritten, not accumulated", L->name);
    compare_r(op, what, d_in2, d_in, nin);
    {
        real *acc = vec(nw), *two = vec(nw);
        for (size_t i = 0; i < nw; i++) acc[i] = d_w[i] - d_w0[i], two[i] = 2 * inc_w[i];
        snprintf(what, sizeof what, "%s: backward d_weight accumulates (+=)", L->name);
        compare_r(op, what, acc, two, nw);
        /* Third call with d_in == NULL and d_bias == NULL: weight gradient still accumulates, bias untouched. */
        real *d_b_before = vec_copy(d_b, L->bsize);
        L_bwd(L, NULL, d_w, NULL, r, in, w, N);
        for (size_t i = 0; i < nw; i++) acc[i] = d_w[i] - d_w0[i], two[i] = 3 * inc_w[i];
        snprintf(what, sizeof what, "%s: backward with d_in = d_bias = NULL", L->name);
        compare_r(op, what, acc, two, nw);
        CHECK(memcmp(d_b_before, d_b, sizeof(real) * L->bsize) == 0, "%s: d_bias modified although NULL was passed",
              L->name);
        if (nb) {
            for (size_t i = 0; i < nb; i++) acc[i] = d_b[i] - d_b0[i], two[i] = 2 * inc_b[i];
            snprintf(what, sizeof what, "%s: backward d_bias accumulates (+=)", L->name);
            compare_r(op, what, acc, two, nb);
        }
        free(acc);
        free(two);
        free(d_b_before);
    }

    /* Adjoint identity <conv(x), y> = <x, conv^T(y)> (no bias), both sides summed in double: the two sides are
     * the same sum of products in different orders, so they agree to the rounding of the op's results, a few
     * epsilon of sum |x| |conv^T(y)| (RTOL_EXACT relative to that scale). */
    if (L->is_conv) {
        real *cx = vec(nout), *cty = vec(nin);
        L_fwd(L, cx, in, w, NULL, N);
        L_bwd(L, cty, NULL, NULL, r, in, w, N);
        double lhs = 0, rhs = 0, scale = 0;
        for (size_t i = 0; i < nout; i++) lhs += (double)cx[i] * r[i], scale += fabs((double)cx[i] * r[i]);
        for (size_t i = 0; i < nin; i++) rhs += (double)in[i] * cty[i], scale += fabs((double)in[i] * cty[i]);
        CHECK(fabs(lhs - rhs) <= RTOL_EXACT * scale,
              "%s: adjoint identity <conv(x), y> = %.17g, <x, conv^T(y)> = %.17g", L->name, lhs, rhs);
        free(cx), free(cty);
    }

    /* 3. tangent forward */
    real *t_in = vec(tin_n), *tp = vec((size_t)K * ldw), *t_out = vec(tout_n);
    fill(t_in, tin_n);
    fill(tp, (size_t)K * ldw);
    real *tp_copy = vec_copy(tp, (size_t)K * ldw);
    real *tin_k = vec(nin), *got_k = vec(nout);
    double *ref_k = dvec(nout);
    for (int mask = 0; mask < 8; mask++) {
        int use_tin = mask & 1, use_tw = (mask >> 1) & 1, use_tb = (mask >> 2) & 1;
        if (use_tb && !nb) continue;
        fill_nan(t_out, tout_n);
        L_tfwd(L, t_out, use_tin ? t_in : NULL, use_tw ? tp + offw : NULL, use_tb ? tp + offb : NULL, ldw, in, w, K, N);
        for (int k = 0; k < K; k++) {
            get_dir(tin_k, t_in, N, K, nin / N, k);
            Pert p[3] = {{in_d, in0, use_tin ? tin_k : NULL, nin},
                         {w_d, w0, use_tw ? tp + (size_t)k * ldw + offw : NULL, nw},
                         {b_d, b0, use_tb ? tp + (size_t)k * ldw + offb : NULL, nb}};
            fd_dir(ref_k, nout, p, 3, eval_layer_fwd, &ctx);
            get_dir(got_k, t_out, N, K, nout / N, k);
            snprintf(what, sizeof what, "%s: tangent_forward K=%d dir %d [t_in%s t_weight%s t_bias%s]", L->name, K, k,
                     use_tin ? "" : "=NULL", use_tw ? "" : "=NULL", use_tb ? "" : "=NULL");
            compare(op, 0, what, got_k, ref_k, nout, RTOL_FD);
        }
    }
    CHECK(memcmp(tp, tp_copy, sizeof(real) * (size_t)K * ldw) == 0, "%s: tangent_forward modified its input", L->name);
    /* Unit weight directions (one non-zero per direction, as the exact Hessian uses): conv2d's sparse path. */
    if (L->is_conv && nw >= 32) {
        real *tu = vec((size_t)K * ldw);
        for (int k = 0; k < K; k++) tu[(size_t)k * ldw + offw + (size_t)(urand() * (double)nw)] = (real)(1 + k);
        fill_nan(t_out, tout_n);
        L_tfwd(L, t_out, NULL, tu + offw, NULL, ldw, in, w, K, N);
        for (int k = 0; k < K; k++) {
            Pert p[1] = {{w_d, w0, tu + (size_t)k * ldw + offw, nw}};
            fd_dir(ref_k, nout, p, 1, eval_layer_fwd, &ctx);
            get_dir(got_k, t_out, N, K, nout / N, k);
            snprintf(what, sizeof what, "%s: tangent_forward K=%d dir %d, unit weight direction", L->name, K, k);
            compare(op, 0, what, got_k, ref_k, nout, RTOL_FD);
        }
        free(tu);
    }

    /* 4. tangent backward */
    real *d_out = vec(nout), *td_out = vec(tout_n), *td_in = vec(tin_n);
    real *tdm = vec((size_t)K * ldw), *tdm0 = vec((size_t)K * ldw);
    real *tdout_k = vec(nout);
    size_t nref = nin + nw + nb;
    real *inc = vec(nw + L->bsize), *tdin_k = vec(nin);
    double *refb = dvec(nref), *dout_buf = dvec(nout), *dout0 = NULL, *tdout_kd = dvec(nout);
    fill(d_out, nout);
    fill(td_out, tout_n);
    dout0 = dvec_of(d_out, nout);
    for (int mask = 0; mask < 32; mask++) {
        int use_tin = mask & 1, use_tw = (mask >> 1) & 1, use_dout = (mask >> 2) & 1;
        int want_tdin = (mask >> 3) & 1, want_tdb = (mask >> 4) & 1;
        if (want_tdb && !nb) continue;
        fill_nan(td_in, tin_n);
        fill(tdm0, (size_t)K * ldw);
        memcpy(tdm, tdm0, sizeof(real) * (size_t)K * ldw);
        L_tbwd(L, want_tdin ? td_in : NULL, tdm + offw, want_tdb ? tdm + offb : NULL, ldw, td_out,
               use_dout ? d_out : NULL, use_tin ? t_in : NULL, use_tw ? tp + offw : NULL, in, w, K, N);
        char cfg[160];
        snprintf(cfg, sizeof cfg, "[t_in%s t_weight%s d_out%s td_in%s td_bias%s]", use_tin ? "" : "=NULL",
                 use_tw ? "" : "=NULL", use_dout ? "" : "=NULL (GGN)", want_tdin ? "" : "=NULL",
                 want_tdb ? "" : "=NULL");
        size_t untouched_bad = 0;
        for (int k = 0; k < K; k++) {
            get_dir(tin_k, t_in, N, K, nin / N, k);
            get_dir(tdout_k, td_out, N, K, nout / N, k);
            int exact = !use_dout;
            if (use_dout) {
                ctx.d_out = dout_buf;
                Pert p[3] = {{in_d, in0, use_tin ? tin_k : NULL, nin},
                             {w_d, w0, use_tw ? tp + (size_t)k * ldw + offw : NULL, nw},
                             {dout_buf, dout0, tdout_k, nout}};
                fd_dir(refb, nref, p, 3, eval_layer_bwd, &ctx);
            } else {
                for (size_t i = 0; i < nout; i++) tdout_kd[i] = (double)tdout_k[i];
                ctx.d_out = tdout_kd; /* Gauss-Newton: backward(td_out) at the unperturbed point */
                eval_layer_bwd(&ctx, refb);
            }
            double rtol = exact ? RTOL_EXACT : RTOL_FD;
            if (want_tdin) {
                get_dir(tdin_k, td_in, N, K, nin / N, k);
                snprintf(what, sizeof what, "%s: tangent_backward K=%d dir %d %s td_in", L->name, K, k, cfg);
                compare(op, exact, what, tdin_k, refb, nin, rtol);
            }
            const real *row = tdm + (size_t)k * ldw, *row0 = tdm0 + (size_t)k * ldw;
            for (size_t i = 0; i < nw; i++) inc[i] = row[offw + i] - row0[offw + i];
            snprintf(what, sizeof what, "%s: tangent_backward K=%d dir %d %s td_weight", L->name, K, k, cfg);
            compare(op, exact, what, inc, refb + nin, nw, rtol);
            if (want_tdb) {
                for (size_t i = 0; i < nb; i++) inc[i] = row[offb + i] - row0[offb + i];
                snprintf(what, sizeof what, "%s: tangent_backward K=%d dir %d %s td_bias", L->name, K, k, cfg);
                compare(op, exact, what, inc, refb + nin + nw, nb, rtol);
            }
            for (size_t j = 0; j < ldw; j++) {
                int in_w = j >= offw && j < offw + nw, in_b = want_tdb && j >= offb && j < offb + nb;
                if (!in_w && !in_b && memcmp(&row[j], &row0[j], sizeof(real)) != 0) untouched_bad++;
            }
        }
        CHECK(untouched_bad == 0, "%s: tangent_backward K=%d %s wrote %zu entries of the (K, ldw) matrix outside "
              "its blocks", L->name, K, cfg, untouched_bad);
    }

    free(in), free(w), free(b), free(in0), free(w0), free(b0), free(out), free(ref), free(r);
    free(d_in), free(d_in2), free(d_w), free(d_b), free(d_w0), free(d_b0), free(g_in), free(g_w), free(g_b);
    free(inc_w), free(inc_b), free(t_in), free(tp), free(tp_copy), free(t_out), free(tin_k), free(got_k), free(ref_k);
    free(d_out), free(td_out), free(td_in), free(tdm), free(tdm0), free(dout_buf), free(tdout_k), free(refb);
    free(inc), free(tdin_k), free(in_d), free(w_d), free(b_d), free(dout0), free(tdout_kd);
}

/* ---------------------------------------------------------------- relu */

typedef struct {
    int N, K;
    size_t m;
    double *in, *d_out;
} ReluCtx;

static void eval_relu_fwd(void *c, double *out) {
    ReluCtx *x = c;
    relu_forward_f64(out, x->in, (size_t)x->N * x->m);
}
static void eval_relu_bwd(void *c, double *d_in) {
    ReluCtx *x = c;
    size_t n = (size_t)x->N * x->m;
    double *out = dvec(n);
    relu_forward_f64(out, x->in, n);
    relu_backward_f64(d_in, x->d_out, out, n);
    free(out);
}

static void test_relu(int N, int K, size_t m) {
    const size_t n = (size_t)N * m, tn = (size_t)K * n;
    char what[200];
    real *in = vec(n), *out = vec(n), *ref = vec(n);
    fill_away(in, n);
    double *in_d = dvec_of(in, n), *in0 = dvec_of(in, n);
    ReluCtx ctx = {N, K, m, in_d, NULL};

    /* 1. forward (exact), also in place */
    fill_nan(out, n);
    FN(relu_forward)(out, in, n);
    for (size_t i = 0; i < n; i++) ref[i] = in[i] > 0 ? in[i] : 0;
    CHECK(memcmp(out, ref, sizeof(real) * n) == 0, "relu N=%d m=%zu: forward differs from max(x, 0)", N, m);
    real *inplace = vec_copy(in, n);
    FN(relu_forward)(inplace, inplace, n);
    CHECK(memcmp(inplace, ref, sizeof(real) * n) == 0, "relu N=%d m=%zu: in-place forward differs", N, m);
    /* NaN propagates (PyTorch's relu keeps it): a NaN weight must not become a finite loss */
    real nan_in[2] = {(real)NAN, (real)-1}, nan_out[2] = {0, 7};
    FN(relu_forward)(nan_out, nan_in, 2);
    CHECK(isnan((double)nan_out[0]) && nan_out[1] == 0, "relu of NaN is %g (want NaN), of -1 is %g",
          (double)nan_out[0], (double)nan_out[1]);

    /* 2. backward */
    real *r = vec(n), *d_in = vec(n);
    double *g = dvec(n);
    fill(r, n);
    fill_nan(d_in, n);
    FN(relu_backward)(d_in, r, out, n);
    fd_grad(g, in_d, n, r, n, eval_relu_fwd, &ctx);
    snprintf(what, sizeof what, "relu N=%d m=%zu: backward vs central differences", N, m);
    compare(OP_RELU, 0, what, d_in, g, n, RTOL_FD);

    /* 3. tangent forward (also in place, as the models call it) */
    real *t_in = vec(tn), *t_out = vec(tn), *tk = vec(n), *gk = vec(n);
    double *rk = dvec(n);
    fill(t_in, tn);
    fill_nan(t_out, tn);
    FN(relu_tangent_forward)(t_out, t_in, out, K, N, m);
    for (int k = 0; k < K; k++) {
        get_dir(tk, t_in, N, K, m, k);
        Pert p[1] = {{in_d, in0, tk, n}};
        fd_dir(rk, n, p, 1, eval_relu_fwd, &ctx);
        get_dir(gk, t_out, N, K, m, k);
        snprintf(what, sizeof what, "relu N=%d K=%d m=%zu: tangent_forward dir %d", N, K, m, k);
        compare(OP_RELU, 0, what, gk, rk, n, RTOL_FD);
    }
    real *t_inplace = vec_copy(t_in, tn);
    FN(relu_tangent_forward)(t_inplace, t_inplace, out, K, N, m);
    CHECK(memcmp(t_inplace, t_out, sizeof(real) * tn) == 0, "relu: in-place tangent_forward differs");

    /* 4. tangent backward: derivative of relu_backward(d_out, relu(in)) along (t_in, td_out) */
    real *d_out = vec(n), *td_out = vec(tn), *td_in = vec(tn), *tdk = vec(n);
    fill(d_out, n);
    fill(td_out, tn);
    fill_nan(td_in, tn);
    double *dbuf = dvec(n), *dout0 = dvec_of(d_out, n);
    FN(relu_tangent_backward)(td_in, td_out, out, K, N, m);
    ctx.d_out = dbuf;
    for (int k = 0; k < K; k++) {
        get_dir(tk, t_in, N, K, m, k);
        get_dir(tdk, td_out, N, K, m, k);
        Pert p[2] = {{in_d, in0, tk, n}, {dbuf, dout0, tdk, n}};
        fd_dir(rk, n, p, 2, eval_relu_bwd, &ctx);
        get_dir(gk, td_in, N, K, m, k);
        snprintf(what, sizeof what, "relu N=%d K=%d m=%zu: tangent_backward dir %d", N, K, m, k);
        compare(OP_RELU, 0, what, gk, rk, n, RTOL_FD);
    }
    memcpy(t_inplace, td_out, sizeof(real) * tn);
    FN(relu_tangent_backward)(t_inplace, t_inplace, out, K, N, m);
    CHECK(memcmp(t_inplace, td_in, sizeof(real) * tn) == 0, "relu: in-place tangent_backward differs");

    free(in), free(out), free(ref), free(in0), free(inplace), free(r), free(d_in), free(g), free(t_in), free(t_out);
    free(tk), free(gk), free(rk), free(t_inplace), free(d_out), free(dbuf), free(td_out), free(td_in), free(tdk);
    free(in_d), free(dout0);
}

/* Large sizes take the OpenMP paths (> 65536 elements); every pass is exact there. */
static void test_relu_large(void) {
    const int N = 3, K = 2;
    const size_t m = 30011, n = (size_t)N * m, tn = (size_t)K * n;
    real *in = vec(n), *out = vec(n), *d = vec(n), *dx = vec(n), *t = vec(tn), *tt = vec(tn);
    fill(in, n);
    fill(d, n);
    fill(t, tn);
    FN(relu_forward)(out, in, n);
    FN(relu_backward)(dx, d, out, n);
    FN(relu_tangent_forward)(tt, t, out, K, N, m);
    size_t bad_f = 0, bad_b = 0, bad_t = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i] != (in[i] > 0 ? in[i] : 0)) bad_f++;
        if (dx[i] != (in[i] > 0 ? d[i] : 0)) bad_b++;
    }
    for (int nn = 0; nn < N; nn++)
        for (int k = 0; k < K; k++)
            for (size_t i = 0; i < m; i++) {
                size_t ti = ((size_t)nn * K + k) * m + i;
                if (tt[ti] != (in[(size_t)nn * m + i] > 0 ? t[ti] : 0)) bad_t++;
            }
    CHECK(bad_f == 0 && bad_b == 0 && bad_t == 0,
          "relu large (n=%zu): %zu forward, %zu backward, %zu tangent mismatches", n, bad_f, bad_b, bad_t);
    free(in), free(out), free(d), free(dx), free(t), free(tt);
}

/* ---------------------------------------------------------------- maxpool */

typedef struct {
    const PoolShape *s;
    int N;
    double *in, *d_out;
} PoolCtx;

static void eval_pool_fwd(void *c, double *out) {
    PoolCtx *x = c;
    int32_t *am = malloc(sizeof(int32_t) * (size_t)x->N * x->s->C * x->s->Ho * x->s->Wo);
    maxpool_forward_f64(out, am, x->in, x->N, x->s);
    free(am);
}
static void eval_pool_bwd(void *c, double *d_in) {
    PoolCtx *x = c;
    size_t no = (size_t)x->N * x->s->C * x->s->Ho * x->s->Wo;
    int32_t *am = malloc(sizeof(int32_t) * no);
    double *out = dvec(no);
    maxpool_forward_f64(out, am, x->in, x->N, x->s);
    maxpool_backward_f64(d_in, x->d_out, am, x->N, x->s);
    free(am);
    free(out);
}

/* Output size along one axis by PyTorch's rule, written out window by window: window o starts at o*stride - lo
 * (input coordinates). Floor mode keeps the windows that end inside the padded input; ceil mode adds windows
 * while the previous one did not reach the end of the padded input, but only those that start inside the input
 * or the low padding. */
static int pool_size_ref(int in, int k, int stride, int lo, int hi, int ceil_mode) {
    if (in + lo + hi < k) return 0;
    int n = 0;
    for (int o = 0;; o++) {
        int start = o * stride - lo;
        if (!ceil_mode && start + k > in + hi) break;
        if (ceil_mode && (start >= in || (o > 0 && (o - 1) * stride + k >= in + lo + hi))) break;
        n++;
    }
    return n;
}

static void pool_name(char *name, size_t size, const char *op, int N, const PoolShape *s, int K) {
    snprintf(name, size, "%s N=%d C=%d H=%d W=%d k=%dx%d s=%d,%d p=%d,%d,%d,%d ceil=%d cip=%d (Ho=%d Wo=%d) K=%d", op,
             N, s->C, s->H, s->W, s->kh, s->kw, s->stride_h, s->stride_w, s->pad_t, s->pad_l, s->pad_b, s->pad_r,
             s->ceil_mode, s->count_include_pad, s->Ho, s->Wo, K);
}

static void test_maxpool(int N, PoolShape s, int K) {
    const int C = s.C, H = s.H, W = s.W;
    const size_t pin = (size_t)H * W, pout = (size_t)s.Ho * s.Wo;
    const size_t nin = (size_t)N * C * pin, nout = (size_t)N * C * pout;
    char name[200], what[320];
    pool_name(name, sizeof name, "maxpool", N, &s, K);
    CHECK(s.Ho == pool_size_ref(H, s.kh, s.stride_h, s.pad_t, s.pad_b, s.ceil_mode) &&
              s.Wo == pool_size_ref(W, s.kw, s.stride_w, s.pad_l, s.pad_r, s.ceil_mode),
          "%s: shape", name);

    /* Distinct values 0.02 apart (a random permutation), every window's maximum unique by >= 0.02; the last
     * plane is entirely negative so that a padded cell counted as 0 would win there. */
    real *in = vec(nin);
    size_t *perm = malloc(sizeof(size_t) * nin);
    for (size_t i = 0; i < nin; i++) perm[i] = i;
    for (size_t i = nin - 1; i > 0; i--) {
        size_t j = (size_t)(urand() * (double)(i + 1)), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    for (size_t i = 0; i < nin; i++) in[i] = (real)(0.02 * ((double)perm[i] - 0.5 * (double)nin));
    for (size_t i = nin - pin; i < nin; i++) in[i] -= (real)(0.03 * (double)nin);
    free(perm);
    double *in_d = dvec_of(in, nin), *in0 = dvec_of(in, nin);

    /* 1. forward: values and argmax against direct loops (exact) */
    real *out = vec(nout), *ref = vec(nout);
    int32_t *am = malloc(sizeof(int32_t) * nout), *am_ref = malloc(sizeof(int32_t) * nout);
    fill_nan(out, nout);
    FN(maxpool_forward)(out, am, in, N, &s);
    for (int p = 0; p < N * C; p++)
        for (int oh = 0; oh < s.Ho; oh++)
            for (int ow = 0; ow < s.Wo; ow++) {
                int best = -1;
                double bv = -INFINITY;
                for (int i = 0; i < s.kh; i++)
                    for (int j = 0; j < s.kw; j++) {
                        int h = oh * s.stride_h - s.pad_t + i, x = ow * s.stride_w - s.pad_l + j;
                        if (h < 0 || h >= H || x < 0 || x >= W) continue;
                        double v = in[(size_t)p * pin + (size_t)h * W + x];
                        if (v > bv) bv = v, best = h * W + x;
                    }
                size_t o = (size_t)p * pout + (size_t)oh * s.Wo + ow;
                ref[o] = (real)bv;
                am_ref[o] = best;
            }
    CHECK(memcmp(out, ref, sizeof(real) * nout) == 0, "%s: forward values differ from direct loops", name);
    CHECK(memcmp(am, am_ref, sizeof(int32_t) * nout) == 0, "%s: forward argmax differs from direct loops", name);
    /* Ties (values in {-1, 0, 1}): the first maximum in scan order wins, as in PyTorch. Forward only. */
    {
        real *tie = vec(nin), *tout = vec(nout);
        int32_t *tam = malloc(sizeof(int32_t) * nout);
        for (size_t i = 0; i < nin; i++) tie[i] = (real)((int)(urand() * 3) - 1);
        FN(maxpool_forward)(tout, tam, tie, N, &s);
        size_t bad = 0;
        for (int p = 0; p < N * C; p++)
            for (int oh = 0; oh < s.Ho; oh++)
                for (int ow = 0; ow < s.Wo; ow++) {
                    int best = -1;
                    for (int i = 0; i < s.kh; i++)
                        for (int j = 0; j < s.kw; j++) {
                            int h = oh * s.stride_h - s.pad_t + i, x = ow * s.stride_w - s.pad_l + j;
                            if (h < 0 || h >= H || x < 0 || x >= W) continue;
                            if (best < 0 || tie[(size_t)p * pin + (size_t)h * W + x] > tie[(size_t)p * pin + best])
                                best = h * W + x;
                        }
                    size_t o = (size_t)p * pout + (size_t)oh * s.Wo + ow;
                    if (tam[o] != best || tout[o] != tie[(size_t)p * pin + best]) bad++;
                }
        CHECK(bad == 0, "%s: %zu outputs with ties do not pick the first maximum", name, bad);
        free(tie), free(tout), free(tam);
    }

    PoolCtx ctx = {&s, N, in_d, NULL};
    /* 2. backward */
    real *r = vec(nout), *d_in = vec(nin);
    double *g = dvec(nin);
    fill(r, nout);
    fill_nan(d_in, nin);
    FN(maxpool_backward)(d_in, r, am, N, &s);
    fd_grad(g, in_d, nin, r, nout, eval_pool_fwd, &ctx);
    snprintf(what, sizeof what, "%s: backward vs central differences", name);
    compare(OP_POOL, 0, what, d_in, g, nin, RTOL_FD);

    /* 3. tangent forward */
    real *t_in = vec((size_t)K * nin), *t_out = vec((size_t)K * nout);
    real *tk = vec(nin), *gk = vec(nout);
    double *rk = dvec(nout);
    fill(t_in, (size_t)K * nin);
    fill_nan(t_out, (size_t)K * nout);
    FN(maxpool_tangent_forward)(t_out, t_in, am, K, N, &s);
    for (int k = 0; k < K; k++) {
        get_dir(tk, t_in, N, K, nin / N, k);
        Pert p[1] = {{in_d, in0, tk, nin}};
        fd_dir(rk, nout, p, 1, eval_pool_fwd, &ctx);
        get_dir(gk, t_out, N, K, nout / N, k);
        snprintf(what, sizeof what, "%s: tangent_forward dir %d", name, k);
        compare(OP_POOL, 0, what, gk, rk, nout, RTOL_FD);
    }

    /* 4. tangent backward: derivative of maxpool_backward(d_out, argmax(in)) along (t_in, td_out) */
    real *d_out = vec(nout), *td_out = vec((size_t)K * nout), *td_in = vec((size_t)K * nin);
    real *tdk = vec(nout), *gi = vec(nin);
    fill(d_out, nout);
    fill(td_out, (size_t)K * nout);
    fill_nan(td_in, (size_t)K * nin);
    double *ri = dvec(nin), *dbuf = dvec(nout), *dout0 = dvec_of(d_out, nout);
    FN(maxpool_tangent_backward)(td_in, td_out, am, K, N, &s);
    ctx.d_out = dbuf;
    for (int k = 0; k < K; k++) {
        get_dir(tk, t_in, N, K, nin / N, k);
        get_dir(tdk, td_out, N, K, nout / N, k);
        Pert p[2] = {{in_d, in0, tk, nin}, {dbuf, dout0, tdk, nout}};
        fd_dir(ri, nin, p, 2, eval_pool_bwd, &ctx);
        get_dir(gi, td_in, N, K, nin / N, k);
        snprintf(what, sizeof what, "%s: tangent_backward dir %d", name, k);
        compare(OP_POOL, 0, what, gi, ri, nin, RTOL_FD);
    }

    free(in), free(in0), free(out), free(ref), free(am), free(am_ref), free(r), free(d_in), free(g), free(t_in);
    free(t_out), free(tk), free(gk), free(rk), free(d_out), free(dbuf), free(td_out), free(td_in), free(tdk);
    free(gi), free(ri), free(in_d), free(dout0);
}

/* ---------------------------------------------------------------- avgpool2d */

static void eval_avgpool_fwd(void *c, double *out) {
    PoolCtx *x = c;
    avgpool2d_forward_f64(out, x->in, x->N, x->s);
}

/* Direct loops in double: every window cell (i, j) < (kh, kw) that lies in the input, divided by kh*kw less the
 * cells beyond the padded input (count_include_pad) or by the number of input cells. */
static void avgpool_ref(double *out, const real *in, int N, const PoolShape *s) {
    for (int p = 0; p < N * s->C; p++)
        for (int oh = 0; oh < s->Ho; oh++)
            for (int ow = 0; ow < s->Wo; ow++) {
                double sum = 0;
                int cells = 0, padded = 0;
                for (int i = 0; i < s->kh; i++)
                    for (int j = 0; j < s->kw; j++) {
                        int h = oh * s->stride_h - s->pad_t + i, x = ow * s->stride_w - s->pad_l + j;
                        if (h < s->H + s->pad_b && x < s->W + s->pad_r) padded++;
                        if (h < 0 || h >= s->H || x < 0 || x >= s->W) continue;
                        sum += (double)in[((size_t)p * s->H + h) * s->W + x];
                        cells++;
                    }
                int div = s->count_include_pad ? padded : cells;
                out[((size_t)p * s->Ho + oh) * s->Wo + ow] = div ? sum / div : 0;
            }
}

static void test_avgpool(int N, PoolShape s, int K) {
    const int C = s.C;
    const size_t nin = (size_t)N * C * s.H * s.W, nout = (size_t)N * C * s.Ho * s.Wo;
    char name[200], what[320];
    pool_name(name, sizeof name, "avgpool2d", N, &s, K);
    real *in = vec(nin), *out = vec(nout);
    double *ref = dvec(nout);
    fill(in, nin);
    double *in_d = dvec_of(in, nin), *in0 = dvec_of(in, nin);
    PoolCtx ctx = {&s, N, in_d, NULL};

    /* 1. forward against direct loops */
    fill_nan(out, nout);
    FN(avgpool2d_forward)(out, in, N, &s);
    avgpool_ref(ref, in, N, &s);
    snprintf(what, sizeof what, "%s: forward vs direct loops", name);
    compare(OP_AVGPOOL, 1, what, out, ref, nout, RTOL_EXACT);

    /* 2. backward against central differences of sum(r * forward), and the adjoint identity (exact: linear) */
    real *r = vec(nout), *d_in = vec(nin);
    double *g = dvec(nin);
    fill(r, nout);
    fill_nan(d_in, nin);
    FN(avgpool2d_backward)(d_in, r, N, &s);
    fd_grad(g, in_d, nin, r, nout, eval_avgpool_fwd, &ctx);
    snprintf(what, sizeof what, "%s: backward vs central differences", name);
    compare(OP_AVGPOOL, 0, what, d_in, g, nin, RTOL_FD);

    /* 3. tangent forward = forward of each direction; 4. tangent backward = backward of each direction (linear,
     * no second-order term: the derivative of backward along t_in is zero, so td_in depends on td_out only) */
    real *t_in = vec((size_t)K * nin), *t_out = vec((size_t)K * nout), *td_out = vec((size_t)K * nout);
    real *td_in = vec((size_t)K * nin), *tk = vec(nin), *gk = vec(nout), *ok = vec(nout), *ik = vec(nin);
    double *rk = dvec(nout);
    fill(t_in, (size_t)K * nin);
    fill(td_out, (size_t)K * nout);
    fill_nan(t_out, (size_t)K * nout);
    fill_nan(td_in, (size_t)K * nin);
    FN(avgpool2d_tangent_forward)(t_out, t_in, K, N, &s);
    FN(avgpool2d_tangent_backward)(td_in, td_out, K, N, &s);
    for (int k = 0; k < K; k++) {
        get_dir(tk, t_in, N, K, nin / N, k);
        Pert p[1] = {{in_d, in0, tk, nin}};
        fd_dir(rk, nout, p, 1, eval_avgpool_fwd, &ctx);
        get_dir(gk, t_out, N, K, nout / N, k);
        snprintf(what, sizeof what, "%s: tangent_forward dir %d", name, k);
        compare(OP_AVGPOOL, 0, what, gk, rk, nout, RTOL_FD);
        get_dir(ok, td_out, N, K, nout / N, k);
        FN(avgpool2d_backward)(ik, ok, N, &s);
        get_dir(tk, td_in, N, K, nin / N, k);
        snprintf(what, sizeof what, "%s: tangent_backward dir %d vs backward", name, k);
        compare_r(OP_AVGPOOL, what, tk, ik, nin);
    }
    free(in), free(out), free(ref), free(in_d), free(in0), free(r), free(d_in), free(g), free(t_in), free(t_out);
    free(td_out), free(td_in), free(tk), free(gk), free(ok), free(ik), free(rk);
}

/* Output sizes and values of max and average pooling against PyTorch 1.13 (F.max_pool2d, F.avg_pool2d, float64)
 * on the 5x6 plane x[h][w] = 0.25 (6h + w) - 3 (exact in binary). PyTorch pads symmetrically: (ph, pw). */
static void test_pool_pytorch(void) {
    static const struct {
        int kh, kw, sh, sw, ph, pw, ceil, cip, Ho, Wo;
        double avg[12], max[12];
    } cases[5] = {
        {3, 2, 2, 3, 1, 1, 1, 1, 3, 3,
         {-0.75, -1.0833333333333333, -0.3333333333333333, 0.0, 0.625, 0.625, 0.75, 1.9166666666666667,
          1.1666666666666667},
         {-1.5, -0.75, -0.25, 1.5, 2.25, 2.75, 3.0, 3.75, 4.25}},
        {3, 2, 2, 3, 1, 1, 1, 0, 3, 3,
         {-2.25, -1.625, -1.0, 0.0, 0.625, 1.25, 2.25, 2.875, 3.5},
         {-1.5, -0.75, -0.25, 1.5, 2.25, 2.75, 3.0, 3.75, 4.25}},
        {2, 3, 2, 2, 1, 0, 0, 1, 3, 2, {-1.375, -1.125, -0.5, 0.0, 2.5, 3.0}, {-2.5, -2.0, 0.5, 1.0, 3.5, 4.0}},
        {3, 3, 2, 2, 1, 1, 1, 1, 3, 4,
         {-0.9444444444444444, -1.1666666666666667, -0.8333333333333334, -0.3333333333333333, 0.08333333333333333,
          0.5, 1.0, 0.625, 1.0555555555555556, 1.8333333333333333, 2.1666666666666665, 1.1666666666666667},
         {-1.25, -0.75, -0.25, -0.25, 1.75, 2.25, 2.75, 2.75, 3.25, 3.75, 4.25, 4.25}},
        {2, 2, 3, 3, 0, 1, 1, 0, 2, 3, {-2.25, -1.625, -1.0, 2.25, 2.875, 3.5}, {-1.5, -0.75, -0.25, 3.0, 3.75, 4.25}},
    };
    real x[30], y[12];
    int32_t am[12];
    for (int i = 0; i < 30; i++) x[i] = (real)(0.25 * i - 3);
    for (int c = 0; c < 5; c++) {
        PoolShape s = pool_shape_general(1, 5, 6, cases[c].kh, cases[c].kw, cases[c].sh, cases[c].sw, cases[c].ph,
                                         cases[c].pw, cases[c].ph, cases[c].pw, cases[c].ceil, cases[c].cip);
        char name[200], what[320];
        pool_name(name, sizeof name, "pool vs PyTorch", 1, &s, 1);
        CHECK(s.Ho == cases[c].Ho && s.Wo == cases[c].Wo, "%s: output %dx%d, PyTorch %dx%d", name, s.Ho, s.Wo,
              cases[c].Ho, cases[c].Wo);
        if (s.Ho != cases[c].Ho || s.Wo != cases[c].Wo) continue;
        size_t n = (size_t)s.Ho * s.Wo;
        FN(avgpool2d_forward)(y, x, 1, &s);
        snprintf(what, sizeof what, "%s: avgpool2d", name);
        compare(OP_AVGPOOL, 1, what, y, cases[c].avg, n, RTOL_EXACT);
        FN(maxpool_forward)(y, am, x, 1, &s);
        snprintf(what, sizeof what, "%s: maxpool", name);
        compare(OP_POOL, 1, what, y, cases[c].max, n, RTOL_EXACT);
    }
}

/* ---------------------------------------------------------------- cross-entropy */

typedef struct {
    int N, C;
    double scale;
    double *logits;
    const int32_t *labels;
} CeCtx;

static void eval_ce_loss(void *c, double *out) {
    CeCtx *x = c;
    double *probs = dvec((size_t)x->N * x->C), loss = NAN;
    if (cross_entropy_forward_f64(&loss, probs, NULL, x->logits, x->labels, x->scale, x->N, x->C) != 0) rc_failures++;
    out[0] = loss;
    free(probs);
}
static void eval_ce_grad(void *c, double *d) {
    CeCtx *x = c;
    double *probs = dvec((size_t)x->N * x->C), loss;
    if (cross_entropy_forward_f64(&loss, probs, NULL, x->logits, x->labels, x->scale, x->N, x->C) != 0) rc_failures++;
    cross_entropy_backward_f64(d, probs, x->labels, x->scale, x->N, x->C);
    free(probs);
}

/* The direct formula in double, with the maximum logit subtracted first: loss, probs (N, C), correct count. */
static double ce_reference(const real *z, const int32_t *labels, double scale, int N, int C, double *probs,
                           int *correct) {
    double loss = 0;
    *correct = 0;
    for (int s = 0; s < N; s++) {
        const real *zs = z + (size_t)s * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (zs[c] > zs[best]) best = c;
        double sum = 0;
        for (int c = 0; c < C; c++) sum += exp((double)zs[c] - (double)zs[best]);
        for (int c = 0; c < C; c++) probs[(size_t)s * C + c] = exp((double)zs[c] - (double)zs[best]) / sum;
        loss += log(sum) + (double)zs[best] - (double)zs[labels[s]];
        *correct += labels[s] == best;
    }
    return scale * loss;
}

static void test_cross_entropy(int N, int C, int K, double scale) {
    const size_t n = (size_t)N * C, tn = (size_t)K * n;
    char name[96], what[200];
    snprintf(name, sizeof name, "cross_entropy N=%d C=%d K=%d scale=%g", N, C, K, scale);
    real *z = vec(n), *probs = vec(n);
    double *pref = dvec(n);
    int32_t *labels = malloc(sizeof(int32_t) * N);
    for (size_t i = 0; i < n; i++) z[i] = (real)(6 * urand() - 3);
    for (int s = 0; s < N; s++) { /* every other sample labelled with its argmax */
        const real *zs = z + (size_t)s * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (zs[c] > zs[best]) best = c;
        labels[s] = s % 2 == 0 ? best : (int32_t)(urand() * C);
    }
    int correct_ref;
    double loss_ref[1] = {ce_reference(z, labels, scale, N, C, pref, &correct_ref)};
    double *z_d = dvec_of(z, n), *z0 = dvec_of(z, n);
    CeCtx ctx = {N, C, scale, z_d, labels};

    /* 1. forward */
    double loss = NAN;
    int correct = -1;
    fill_nan(probs, n);
    int rc = FN(cross_entropy_forward)(&loss, probs, &correct, z, labels, scale, N, C);
    CHECK(rc == 0, "%s: forward failed: %s", name, hs_last_error());
    real lg[1] = {(real)loss};
    snprintf(what, sizeof what, "%s: forward loss vs direct formula", name);
    compare(OP_CE, 1, what, lg, loss_ref, 1, RTOL_EXACT);
    snprintf(what, sizeof what, "%s: forward probs vs softmax", name);
    compare(OP_CE, 1, what, probs, pref, n, RTOL_EXACT);
    CHECK(correct == correct_ref, "%s: correct = %d, expected %d", name, correct, correct_ref);
    /* Logits far beyond exp's range (a stable log-sum-exp is needed): z + 1000, rounded to real, against the
     * direct formula on those same values. */
    {
        real *zs = vec(n), *ps = vec(n);
        double *ps_ref = dvec(n), loss_s = NAN;
        int correct_s;
        for (size_t i = 0; i < n; i++) zs[i] = z[i] + 1000;
        double ls_ref[1] = {ce_reference(zs, labels, scale, N, C, ps_ref, &correct_s)};
        rc = FN(cross_entropy_forward)(&loss_s, ps, NULL, zs, labels, scale, N, C);
        CHECK(rc == 0, "%s: forward of logits + 1000 failed: %s", name, hs_last_error());
        real lgs[1] = {(real)loss_s};
        snprintf(what, sizeof what, "%s: loss of logits + 1000", name);
        compare(OP_CE, 1, what, lgs, ls_ref, 1, RTOL_EXACT);
        snprintf(what, sizeof what, "%s: probs of logits + 1000", name);
        compare(OP_CE, 1, what, ps, ps_ref, n, RTOL_EXACT);
        free(zs), free(ps), free(ps_ref);
    }
    /* Invalid labels are reported. */
    {
        int32_t saved = labels[N - 1];
        double l2 = 0;
        real *scratch = vec(n);
        labels[N - 1] = C;
        CHECK(FN(cross_entropy_forward)(&l2, scratch, NULL, z, labels, scale, N, C) == -1 && hs_last_error()[0],
              "%s: label C not rejected", name);
        labels[N - 1] = -1;
        CHECK(FN(cross_entropy_forward)(&l2, scratch, NULL, z, labels, scale, N, C) == -1,
              "%s: label -1 not rejected", name);
        labels[N - 1] = saved;
        free(scratch);
    }

    /* 2. backward: d_logits vs central differences of the loss */
    real *d = vec(n), one[1] = {1};
    double *g = dvec(n);
    fill_nan(d, n);
    FN(cross_entropy_backward)(d, probs, labels, scale, N, C);
    fd_grad(g, z_d, n, one, 1, eval_ce_loss, &ctx);
    snprintf(what, sizeof what, "%s: backward vs central differences of the loss", name);
    compare(OP_CE, 0, what, d, g, n, RTOL_FD);

    /* 3. tangent backward: derivative of cross_entropy_backward(probs(z)) along t */
    real *t = vec(tn), *td = vec(tn), *tk = vec(n), *gk = vec(n);
    double *rk = dvec(n);
    fill(t, tn);
    fill_nan(td, tn);
    FN(cross_entropy_tangent_backward)(td, t, probs, scale, K, N, C);
    for (int k = 0; k < K; k++) {
        get_dir(tk, t, N, K, (size_t)C, k);
        Pert p[1] = {{z_d, z0, tk, n}};
        fd_dir(rk, n, p, 1, eval_ce_grad, &ctx);
        get_dir(gk, td, N, K, (size_t)C, k);
        snprintf(what, sizeof what, "%s: tangent_backward dir %d", name, k);
        compare(OP_CE, 0, what, gk, rk, n, RTOL_FD);
    }

    free(z), free(probs), free(pref), free(labels), free(z_d), free(z0), free(d), free(g), free(t), free(td), free(tk);
    free(gk), free(rk);
}

/* ---------------------------------------------------------------- thread-count independence */

static void run_conv_passes(const ConvShape *s, int N, int K, size_t ldw, const real *in, const real *w,
                            const real *d_out, const real *td_out, const real *t_in, const real *tp, real *res) {
    /* res = [d_in | d_w | d_b | t_out | td_in | td (K, ldw)] */
    size_t nin = (size_t)N * s->C * s->H * s->W, nout = (size_t)N * s->O * s->Ho * s->Wo;
    size_t nw = conv_wsize(s);
    real *d_in = res, *d_w = d_in + nin, *d_b = d_w + nw, *t_out = d_b + s->O, *td_in = t_out + (size_t)K * nout;
    real *td = td_in + (size_t)K * nin;
    memset(d_w, 0, sizeof(real) * (nw + s->O));
    memset(td, 0, sizeof(real) * (size_t)K * ldw);
    if (FN(conv2d_backward)(d_in, d_w, d_b, d_out, in, w, N, s) != 0) rc_failures++;
    if (FN(conv2d_tangent_forward)(t_out, t_in, tp, tp + nw, ldw, in, w, K, N, s) != 0) rc_failures++;
    if (FN(conv2d_tangent_backward)(td_in, td, td + nw, ldw, td_out, d_out, t_in, tp, in, w, K, N, s) != 0)
        rc_failures++;
}

static void test_threads(void) {
    /* 1 thread, then the initial team size (2 under make test; 2 when that is 1). The team never shrinks to
     * a size above 1: libgomp would end the extra worker threads, whose per-thread scratch buffers are never
     * freed, and LeakSanitizer (make DEBUG=1) would report them. */
    const int max_threads = omp_get_max_threads(), many = max_threads > 1 ? max_threads : 2;
    const ConvShape shapes[6] = {
        conv2d_shape(3, 9, 8, 4, 3, 1, 1), conv2d_shape(5, 6, 7, 6, 1, 1, 0),
        conv2d_shape_general(4, 9, 8, 6, 3, 2, 2, 2, 1, 2, 1, 1, 0, 2, 1),  /* groups 2, im2col layout */
        conv2d_shape_general(4, 7, 6, 8, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1), /* multiplier 2, wide layout */
        conv2d_shape(64, 2, 2, 96, 3, 1, 1),                                /* dense matrix: 3x3 on 2x2 */
        conv2d_shape(24, 4, 4, 40, 3, 1, 1)};                               /* batched patches: 4x4 */
    for (int si = 0; si < 6; si++) {
        ConvShape s = shapes[si];
        const int N = 13, K = 3;
        size_t nin = (size_t)N * s.C * s.H * s.W, nout = (size_t)N * s.O * s.Ho * s.Wo;
        size_t nw = conv_wsize(&s), ldw = nw + s.O + 1;
        size_t nres = nin + nw + s.O + (size_t)K * nout + (size_t)K * nin + (size_t)K * ldw;
        real *in = vec(nin), *w = vec(nw), *d_out = vec(nout), *td_out = vec((size_t)K * nout);
        real *t_in = vec((size_t)K * nin), *tp = vec((size_t)K * ldw), *r1 = vec(nres), *rn = vec(nres);
        fill(in, nin), fill(w, nw), fill(d_out, nout), fill(td_out, (size_t)K * nout), fill(t_in, (size_t)K * nin);
        fill(tp, (size_t)K * ldw);
        omp_set_num_threads(1);
        run_conv_passes(&s, N, K, ldw, in, w, d_out, td_out, t_in, tp, r1);
        omp_set_num_threads(many);
        run_conv_passes(&s, N, K, ldw, in, w, d_out, td_out, t_in, tp, rn);
        char what[160];
        snprintf(what, sizeof what, "conv2d k=%dx%d g=%d N=%d K=%d: results with %d threads vs 1 thread", s.kh, s.kw,
                 s.groups, N, K, many);
        compare_r(OP_THREADS, what, rn, r1, nres);
        omp_set_num_threads(max_threads);
        free(in), free(w), free(d_out), free(td_out), free(t_in), free(tp), free(r1), free(rn);
    }
    /* linear's tangent passes parallelise over directions. */
    {
        const int N = 7, In = 11, O = 6, K = 4;
        size_t ldw = (size_t)O * In + O + 2, nres = (size_t)N * K * O + (size_t)N * K * In + (size_t)K * ldw;
        real *in = vec((size_t)N * In), *w = vec((size_t)O * In), *d_out = vec((size_t)N * O);
        real *t_in = vec((size_t)N * K * In), *tp = vec((size_t)K * ldw), *td_out = vec((size_t)N * K * O);
        real *r1 = vec(nres), *rn = vec(nres);
        fill(in, (size_t)N * In), fill(w, (size_t)O * In), fill(d_out, (size_t)N * O), fill(t_in, (size_t)N * K * In);
        fill(tp, (size_t)K * ldw), fill(td_out, (size_t)N * K * O);
        for (int pass = 0; pass < 2; pass++) {
            real *res = pass ? rn : r1;
            omp_set_num_threads(pass ? many : 1);
            real *t_out = res, *td_in = t_out + (size_t)N * K * O, *td = td_in + (size_t)N * K * In;
            memset(td, 0, sizeof(real) * (size_t)K * ldw);
            FN(linear_tangent_forward)(t_out, t_in, tp, tp + (size_t)O * In, ldw, in, w, K, N, In, O);
            FN(linear_tangent_backward)(td_in, td, td + (size_t)O * In, ldw, td_out, d_out, t_in, tp, in, w, K, N, In,
                                        O);
        }
        omp_set_num_threads(max_threads);
        compare_r(OP_THREADS, "linear tangent passes: several threads vs 1 thread", rn, r1, nres);
        free(in), free(w), free(d_out), free(t_in), free(tp), free(td_out), free(r1), free(rn);
    }
}

/* ---------------------------------------------------------------- main */

int main(void) {
    double t0 = hs_seconds();

    /* linear */
    const int lin[3][4] = {{3, 5, 4, 3}, {1, 7, 3, 2}, {4, 2, 6, 1}}; /* N In O K */
    for (int i = 0; i < 3; i++)
        for (int bias = 1; bias >= 0; bias--) {
            Layer L = make_linear(lin[i][0], lin[i][1], lin[i][2], bias);
            test_layer(&L, lin[i][3]);
        }

    /* conv2d: N C H W O k stride pad K */
    const int conv[8][9] = {
        {2, 2, 9, 8, 3, 5, 1, 0, 2}, /* k=5 s=1 p=0 */
        {3, 3, 6, 7, 4, 3, 1, 1, 3}, /* k=3 s=1 p=1 */
        {2, 2, 7, 8, 3, 3, 2, 1, 3}, /* k=3 s=2 p=1 */
        {3, 4, 5, 6, 3, 1, 1, 0, 2}, /* k=1 s=1 p=0: pointwise fast path */
        {2, 3, 7, 6, 2, 1, 2, 0, 3}, /* k=1 s=2 p=0 */
        {2, 2, 9, 10, 3, 7, 2, 3, 2}, /* k=7 s=2 p=3 */
        {3, 1, 4, 4, 2, 3, 1, 0, 1}, /* k=3 s=1 p=0, C=1, K=1 */
        {2, 2, 3, 5, 5, 2, 1, 1, 3}, /* even k with padding */
    };
    /* general conv2d: N C H W O kh kw groups stride_h stride_w dil_h dil_w pad_t pad_l pad_b pad_r K */
    const int gconv[12][17] = {
        {2, 4, 7, 6, 6, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2},  /* groups 2, wide layout */
        {2, 4, 6, 7, 4, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 2},  /* depthwise C = O = groups = 4 */
        {2, 3, 6, 5, 6, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2},  /* channel multiplier O = 2C, stride 2 */
        {2, 2, 7, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 2},  /* kernel 3x1 */
        {2, 2, 5, 7, 3, 1, 3, 1, 1, 1, 1, 1, 0, 1, 0, 1, 2},  /* kernel 1x3 */
        {2, 2, 8, 9, 3, 3, 3, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2},  /* dilation 2, wide layout */
        {2, 2, 8, 7, 3, 3, 2, 1, 2, 1, 1, 1, 1, 0, 2, 1, 3},  /* stride (2,1), pads (1,0,2,1) */
        {2, 4, 9, 8, 4, 3, 2, 2, 2, 1, 2, 1, 1, 0, 2, 1, 2},  /* all at once: im2col layout */
        {2, 4, 7, 6, 8, 3, 3, 4, 1, 1, 2, 1, 1, 0, 2, 1, 3},  /* multiplier 2, dilation, pads (1,0,2,1): wide */
        {2, 4, 5, 6, 6, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0, 0, 2},  /* grouped pointwise */
        {2, 2, 6, 9, 3, 2, 3, 1, 1, 2, 1, 2, 0, 1, 1, 2, 2},  /* stride (1,2), dilation (1,2) */
        {3, 6, 5, 5, 4, 2, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1},  /* groups 2, only bottom/right padding */
    };
    /* Each four times: per sample with the direct kernels for narrow stride-1 layers (groups 1, up to 16 output
     * channels: most shapes here), per-sample GEMMs (every layout), and, for groups 1, the batched small-plane
     * path with batches of 1 or 2 samples (columns 50: batch boundaries inside N), and the dense-matrix path of
     * tiny planes, forced on every groups-1 shape (by default it takes planes of at most kh*kw pixels: the
     * tiny-plane shapes below). */
    for (int path = 0; path < 4; path++) {
        const int columns = FN(conv2d_batch_columns), below = FN(conv2d_batch_below);
        const int direct = FN(conv2d_direct_max_channels);
        FN(conv2d_batch_below) = path >= 2 ? 1 << 30 : 0;
        FN(conv2d_batch_columns) = path == 2 ? 50 : columns;
        FN(conv2d_direct_max_channels) = path == 0 ? 1 << 30 : 0;
        FN(conv2d_dense_always) = path == 3;
        const char *tag = path == 0 ? " [direct]" : path == 1 ? " [per sample]" : path == 2 ? " [batched]" : " [dense]";
        for (int i = 0; i < 8; i++)
            for (int bias = 1; bias >= 0; bias--) {
                const int *c = conv[i];
                Layer L = make_conv(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], bias);
                strncat(L.name, tag, sizeof L.name - strlen(L.name) - 1);
                test_layer(&L, c[8]);
            }
        for (int i = 0; i < 12; i++)
            for (int bias = 1; bias >= 0; bias--) {
                const int *c = gconv[i];
                if (path >= 2 && c[7] != 1) continue; /* groups > 1: per-sample GEMMs only */
                ConvShape cs = conv2d_shape_general(c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10],
                                                    c[11], c[12], c[13], c[14], c[15]);
                Layer L = make_conv_shape(c[0], cs, bias);
                strncat(L.name, tag, sizeof L.name - strlen(L.name) - 1);
                test_layer(&L, c[16]);
            }
        FN(conv2d_batch_below) = below, FN(conv2d_batch_columns) = columns, FN(conv2d_direct_max_channels) = direct;
        FN(conv2d_dense_always) = 0;
    }
    /* tiny planes, default settings: the dense path (H*W <= kh*kw), and the batched patches beside it */
    const int tiny[6][17] = {
        {3, 4, 2, 2, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}, /* 3x3 on 2x2, pads 1: ResNet's 2x2 stage (dense) */
        {3, 6, 1, 1, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}, /* 3x3 on 1x1, pads 1: only the centre tap (dense) */
        {4, 5, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 3}, /* 1x1 on 1x1: W itself (dense) */
        {3, 4, 2, 2, 4, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 1, 2}, /* 3x3 stride 2 on 2x2 -> 1x1 (dense) */
        {3, 3, 2, 3, 4, 2, 3, 1, 1, 2, 1, 1, 1, 0, 0, 1, 1}, /* 2x3, odd pads and strides (dense) */
        {3, 4, 4, 4, 5, 1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 2}, /* 1x1 stride 2 on 4x4: batched patches */
    };
    for (int i = 0; i < 6; i++)
        for (int bias = 1; bias >= 0; bias--) {
            const int *c = tiny[i];
            ConvShape cs = conv2d_shape_general(c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11],
                                                c[12], c[13], c[14], c[15]);
            Layer L = make_conv_shape(c[0], cs, bias);
            strncat(L.name, " [tiny plane]", sizeof L.name - strlen(L.name) - 1);
            test_layer(&L, c[16]);
        }
    /* the square shape fills the general fields */
    {
        ConvShape a = conv2d_shape(3, 9, 8, 4, 3, 2, 1);
        ConvShape b = conv2d_shape_general(3, 9, 8, 4, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 1);
        CHECK(memcmp(&a, &b, sizeof a) == 0 && a.Ho == 5 && a.Wo == 4 && a.k == 3 && a.stride == 2 && a.pad == 1,
              "conv2d_shape does not match conv2d_shape_general");
        /* invalid shapes are refused: channels not divisible by groups; a window larger than the input */
        real buf[4096] = {0};
        ConvShape bad = conv2d_shape_general(3, 5, 5, 4, 3, 3, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        CHECK(FN(conv2d_forward)(buf, buf, buf, NULL, 1, &bad) == -1, "conv2d: C=3 groups=2 not refused");
        bad = conv2d_shape_general(2, 3, 3, 2, 5, 5, 1, 1, 1, 1, 1, 0, 0, 0, 0);
        CHECK(bad.Ho == 0 && FN(conv2d_forward)(buf, buf, buf, NULL, 1, &bad) == -1,
              "conv2d: a 5x5 window on a 3x3 input not refused");
    }

    /* relu */
    test_relu(3, 3, 37);
    test_relu(2, 1, 10);
    test_relu_large();

    /* maxpool */
    test_maxpool(2, maxpool_shape(2, 6, 7, 2, 2, 0), 3);
    test_maxpool(2, maxpool_shape(3, 7, 6, 3, 2, 1), 3);
    test_maxpool(3, maxpool_shape(2, 5, 5, 3, 1, 1), 2);
    /* C H W kh kw stride_h stride_w pad_t pad_l pad_b pad_r ceil_mode count_include_pad, N, K */
    const int pools[8][15] = {
        {2, 7, 7, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 2, 2}, /* 2x2/2 ceil: the last window hangs out (no fast path) */
        {2, 7, 6, 3, 2, 2, 3, 1, 1, 1, 1, 1, 1, 2, 2}, /* ceil, count_include_pad */
        {2, 7, 6, 3, 2, 2, 3, 1, 1, 1, 1, 1, 0, 2, 2}, /* ceil, count real cells */
        {2, 6, 7, 3, 2, 2, 1, 1, 0, 2, 1, 0, 1, 2, 3}, /* asymmetric pads (1,0,2,1), stride (2,1) */
        {2, 6, 7, 3, 2, 2, 1, 1, 0, 2, 1, 0, 0, 2, 3}, /* the same, count real cells */
        {3, 5, 8, 1, 3, 1, 2, 0, 1, 0, 1, 1, 1, 2, 2}, /* 1x3 window */
        {2, 8, 5, 3, 3, 3, 3, 1, 1, 1, 1, 1, 0, 2, 2}, /* windows clipped by the border on both sides */
        {2, 6, 6, 2, 2, 2, 2, 0, 0, 1, 1, 0, 1, 3, 2}, /* only bottom/right padding, 2x2/2 fast path */
    };
    for (int i = 0; i < 8; i++) {
        const int *q = pools[i];
        PoolShape ps = pool_shape_general(q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9], q[10], q[11],
                                          q[12]);
        test_maxpool(q[13], ps, q[14]);
        test_avgpool(q[13], ps, q[14]);
    }
    test_avgpool(2, maxpool_shape(3, 6, 5, 3, 2, 1), 2);
    test_pool_pytorch();

    /* cross-entropy */
    test_cross_entropy(5, 7, 3, 1.0 / 5);
    test_cross_entropy(3, 10, 2, 1.0 / 3);
    test_cross_entropy(4, 4, 2, 1.0 / 64); /* scale of a chunk of a larger data set */

    test_threads();

    CHECK(rc_failures == 0, "%d op calls returned an error (last: %s)", rc_failures, hs_last_error());
    printf("%s: max relative errors (central differences | exact-order comparisons):\n", CHECK_NAME("test_ops"));
    for (int op = 0; op < OP_COUNT; op++)
        printf("  %-14s %9.2e | %9.2e\n", op_names[op], worst_fd[op], worst_exact[op]);
    printf("%s: %.2f s\n", CHECK_NAME("test_ops"), hs_seconds() - t0);
    return check_summary(CHECK_NAME("test_ops"));
}

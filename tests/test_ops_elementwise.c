/* test_ops_elementwise.c: derivative tests of the ONNX executor's elementwise ops (pointwise activations,
 * broadcasting Add/Sub/Mul/Div, concat, matmul by an (In,O) parameter), built in both precisions
 * (test_ops_elementwise: float64, test_ops_elementwise_f32: float32). References are computed in double from the
 * same inputs (tests/derivative_check.h): direct loops, and central differences of the float64 ops.
 *
 * For every op:
 *   1. forward against direct loops in double;
 *   2. backward against central differences of sum(r * forward) for a random r, element by element; activation
 *      gradients must be overwritten (=), parameter gradients must accumulate (+=);
 *   3. tangent forward (K directions, each tangent input also NULL) against central differences of the forward
 *      pass along each direction;
 *   4. tangent backward against central differences of the backward pass along (t_in, t_weights, td_out) with
 *      d_out, and with d_out == NULL (Gauss-Newton) against backward(td_out) at the unperturbed point.
 * Parameter tangents live in a (K, ldw) matrix at offsets, with padding that must stay untouched.
 * Inputs avoid kinks by a margin far above the step (LeakyRelu |x| > 0.05, Clip 0.05 from its bounds, Softplus
 * 0.5 from its threshold 20) and divisors stay away from zero (|b| >= 0.5).
 *
 * Tolerances (derivative_check.h): float64 RTOL_FD 1e-6 against central differences (step 1e-6: truncation
 * ~1e-12, rounding ~1e-10 of the largest terms), RTOL_EXACT 1e-11 against direct loops; float32 2^14 float32
 * epsilons (2.0e-3) of the relative error floored at 1e-3 max|ref|, i.e. about 2 epsilons of the largest entry
 * in absolute terms: these ops round once per entry (the smooth activations and the Mul/Div tangent terms are
 * evaluated in double and rounded once; broadcast sums accumulate in double), matmul sums In <= 7 products. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ops/ops.h"
#include "check.h"

#define EPS 1e-6 /* central-difference step */

#include "derivative_check.h"

/* The float64 ops the references evaluate (repeats of ops.h in the float64 build, the only declarations in the
 * float32 build). */
void pointwise_forward_f64(double *out, const double *in, size_t n, const Pointwise *f);
void pointwise_backward_f64(double *d_in, const double *d_out, const double *in, size_t n, const Pointwise *f);
void binary_forward_f64(double *out, const double *a, const double *b, int N, const Binary *op);
void binary_backward_f64(double *d_a, double *d_b, const double *d_out, const double *a, const double *b, int N,
                         const Binary *op);
void concat_forward_f64(double *out, const double *const *ins, const size_t *inner, int n_in, size_t outer, int N);
void concat_backward_f64(double *const *d_ins, const double *d_out, const size_t *inner, int n_in, size_t outer,
                         int N);
void matmul_forward_f64(double *out, const double *in, const double *weight, const double *bias, int N, int In,
                        int O);
void matmul_backward_f64(double *d_in, double *d_weight, double *d_bias, const double *d_out, const double *in,
                         const double *weight, int N, int In, int O);

enum { OP_POINTWISE, OP_BINARY, OP_CONCAT, OP_MATMUL, OP_THREADS, OP_COUNT };
static const char *op_names[OP_COUNT] = {"pointwise", "binary", "concat", "matmul", "threads"};
static double worst_fd[OP_COUNT], worst_exact[OP_COUNT];

static double compare(int op, int exact, const char *what, const real *got, const double *ref, size_t n,
                      double rtol) {
    return compare_values(exact ? &worst_exact[op] : &worst_fd[op], what, got, ref, n, rtol);
}
/* got - before, entrywise (the increment of an accumulated gradient). */
static void increment(real *inc, const real *got, const real *before, size_t n) {
    for (size_t i = 0; i < n; i++) inc[i] = got[i] - before[i];
}
/* Values with lo <= |x| <= hi and a random sign. */
static void fill_mag(real *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) {
        double u = lo + (hi - lo) * urand();
        x[i] = (real)(urand() < 0.5 ? -u : u);
    }
}

/* ---------------------------------------------------------------- pointwise */

static double pw_ref(double x, const Pointwise *f) {
    switch (f->kind) {
    case PW_LEAKY_RELU: return x > 0 ? x : (double)(real)f->alpha * x;
    case PW_CLIP: return fmin(fmax(x, f->lo), f->hi);
    case PW_SIGMOID: return 1 / (1 + exp(-x));
    case PW_TANH: return tanh(x);
    case PW_SOFTPLUS: return x > 20 ? x : log(1 + exp(x));
    case PW_ERF: return erf(x);
    }
    return NAN;
}

typedef struct {
    const Pointwise *f;
    size_t n;
    double *in, *d_out;
} PwCtx;

static void eval_pw_fwd(void *c, double *out) {
    PwCtx *x = c;
    pointwise_forward_f64(out, x->in, x->n, x->f);
}
static void eval_pw_bwd(void *c, double *out) {
    PwCtx *x = c;
    pointwise_backward_f64(out, x->d_out, x->in, x->n, x->f);
}

static void test_pointwise(const char *name, Pointwise f, int N, int K, size_t m) {
    const size_t n = (size_t)N * m, tn = (size_t)K * n;
    char what[256];
    real *in = vec(n);
    /* inputs in [-3, 3] away from the kinks */
    for (size_t i = 0; i < n; i++) {
        double x;
        do x = 6 * urand() - 3;
        while ((f.kind == PW_LEAKY_RELU && fabs(x) < 0.05) ||
               (f.kind == PW_CLIP && (fabs(x - f.lo) < 0.05 || fabs(x - f.hi) < 0.05)));
        in[i] = (real)x;
    }
    if (f.kind == PW_SOFTPLUS) /* both sides of the threshold 20 */
        for (size_t i = 0; i < n; i += 4) in[i] = (real)(i % 8 ? 20.5 + 3 * urand() : 15 + 4.5 * urand());
    double *in_d = dvec_of(in, n), *in0 = dvec_of(in, n);
    PwCtx ctx = {&f, n, in_d, NULL};

    /* 1. forward, also in place */
    real *out = vec(n);
    double *ref = dvec(n);
    fill_nan(out, n);
    FN(pointwise_forward)(out, in, n, &f);
    for (size_t i = 0; i < n; i++) ref[i] = pw_ref((double)in[i], &f);
    snprintf(what, sizeof what, "pointwise %s: forward vs direct formula", name);
    compare(OP_POINTWISE, 1, what, out, ref, n, RTOL_EXACT);
    real *inplace = vec_copy(in, n);
    FN(pointwise_forward)(inplace, inplace, n, &f);
    CHECK(memcmp(inplace, out, sizeof(real) * n) == 0, "pointwise %s: in-place forward differs", name);

    /* 2. backward, also in place (d_in aliasing d_out) */
    real *r = vec(n), *d_in = vec(n);
    double *g = dvec(n);
    fill(r, n);
    fill_nan(d_in, n);
    FN(pointwise_backward)(d_in, r, in, n, &f);
    fd_grad(g, in_d, n, r, n, eval_pw_fwd, &ctx);
    snprintf(what, sizeof what, "pointwise %s: backward vs central differences", name);
    compare(OP_POINTWISE, 0, what, d_in, g, n, RTOL_FD);
    real *alias = vec_copy(r, n);
    FN(pointwise_backward)(alias, alias, in, n, &f);
    CHECK(memcmp(alias, d_in, sizeof(real) * n) == 0, "pointwise %s: in-place backward differs", name);

    /* 3. tangent forward (t_in NULL: zeros) */
    real *t_in = vec(tn), *t_out = vec(tn), *tk = vec(n), *gk = vec(n);
    double *rk = dvec(n);
    fill(t_in, tn);
    fill_nan(t_out, tn);
    FN(pointwise_tangent_forward)(t_out, t_in, in, K, N, m, &f);
    for (int k = 0; k < K; k++) {
        get_dir(tk, t_in, N, K, m, k);
        Pert p[1] = {{in_d, in0, tk, n}};
        fd_dir(rk, n, p, 1, eval_pw_fwd, &ctx);
        get_dir(gk, t_out, N, K, m, k);
        snprintf(what, sizeof what, "pointwise %s: tangent_forward K=%d dir %d", name, K, k);
        compare(OP_POINTWISE, 0, what, gk, rk, n, RTOL_FD);
    }
    fill_nan(t_out, tn);
    FN(pointwise_tangent_forward)(t_out, NULL, in, K, N, m, &f);
    size_t nonzero = 0;
    for (size_t i = 0; i < tn; i++) nonzero += t_out[i] != 0;
    CHECK(nonzero == 0, "pointwise %s: tangent_forward with t_in = NULL left %zu non-zero entries", name, nonzero);

    /* 4. tangent backward: with d_out against central differences of backward along (in: t_in, d_out: td_out);
     *    without (GGN) against backward(td_out); t_in NULL drops the second-order term too. Also in place. */
    real *d_out = vec(n), *td_out = vec(tn), *td_in = vec(tn);
    double *dout_buf = dvec(n), *dout0 = NULL;
    fill(d_out, n);
    fill(td_out, tn);
    dout0 = dvec_of(d_out, n);
    for (int mask = 0; mask < 4; mask++) {
        int use_dout = mask & 1, use_tin = (mask >> 1) & 1;
        fill_nan(td_in, tn);
        FN(pointwise_tangent_backward)(td_in, td_out, use_dout ? d_out : NULL, use_tin ? t_in : NULL, in, K, N, m, &f);
        real *alias2 = vec_copy(td_out, tn);
        FN(pointwise_tangent_backward)(alias2, alias2, use_dout ? d_out : NULL, use_tin ? t_in : NULL, in, K, N, m,
                                       &f);
        CHECK(memcmp(alias2, td_in, sizeof(real) * tn) == 0, "pointwise %s: in-place tangent_backward differs",
              name);
        free(alias2);
        for (int k = 0; k < K; k++) {
            get_dir(tk, td_out, N, K, m, k);
            int exact = !(use_dout && use_tin);
            if (!exact) {
                real *tik = vec(n);
                get_dir(tik, t_in, N, K, m, k);
                ctx.d_out = dout_buf;
                Pert p[2] = {{in_d, in0, tik, n}, {dout_buf, dout0, tk, n}};
                fd_dir(rk, n, p, 2, eval_pw_bwd, &ctx);
                free(tik);
            } else {
                double *tkd = dvec_of(tk, n);
                ctx.d_out = tkd;
                eval_pw_bwd(&ctx, rk);
                free(tkd);
            }
            get_dir(gk, td_in, N, K, m, k);
            snprintf(what, sizeof what, "pointwise %s: tangent_backward K=%d dir %d [d_out%s t_in%s]", name, K, k,
                     use_dout ? "" : "=NULL (GGN)", use_tin ? "" : "=NULL");
            compare(OP_POINTWISE, exact, what, gk, rk, n, exact ? RTOL_EXACT : RTOL_FD);
        }
    }
    free(in), free(in_d), free(in0), free(out), free(ref), free(inplace), free(r), free(d_in), free(g), free(alias);
    free(t_in), free(t_out), free(tk), free(gk), free(rk), free(d_out), free(td_out), free(td_in), free(dout_buf);
    free(dout0);
}

/* Kinks and special values, as PyTorch defines them. */
static void test_pointwise_kinks(void) {
    Pointwise clip = {PW_CLIP, 0, -0.5, 0.25}, leaky = {PW_LEAKY_RELU, 0.125, 0, 0};
    real x[6] = {(real)-0.5, (real)0.25, (real)-0.75, (real)0.5, 0, (real)NAN}, d[6], ones[6] = {1, 1, 1, 1, 1, 1};
    FN(pointwise_backward)(d, ones, x, 5, &clip);
    CHECK(d[0] == 1 && d[1] == 1 && d[2] == 0 && d[3] == 0 && d[4] == 1,
          "clip gradient at lo, hi, below, above, inside: %g %g %g %g %g (want 1 1 0 0 1, torch.clamp)", (double)d[0],
          (double)d[1], (double)d[2], (double)d[3], (double)d[4]);
    real y[6];
    FN(pointwise_forward)(y, x, 6, &clip);
    CHECK(y[2] == (real)-0.5 && y[3] == (real)0.25 && isnan((double)y[5]), "clip forward: %g %g %g", (double)y[2],
          (double)y[3], (double)y[5]);
    FN(pointwise_backward)(d, ones, x, 5, &leaky);
    CHECK(d[4] == (real)0.125 && d[1] == 1 && d[0] == (real)0.125,
          "leaky_relu gradient at 0 is %g (want alpha = 0.125, torch: x > 0 ? 1 : alpha)", (double)d[4]);
    /* Clip with infinite bounds (ONNX Clip without min or max) and lo > hi (hi everywhere, gradient 0) */
    Pointwise relu6 = {PW_CLIP, 0, 0, 6}, upper = {PW_CLIP, 0, -INFINITY, 1}, crossed = {PW_CLIP, 0, 1, -1};
    real z[3] = {-2, 3, 8}, w[3];
    FN(pointwise_forward)(w, z, 3, &relu6);
    CHECK(w[0] == 0 && w[1] == 3 && w[2] == 6, "clip(0, 6): %g %g %g", (double)w[0], (double)w[1], (double)w[2]);
    FN(pointwise_forward)(w, z, 3, &upper);
    CHECK(w[0] == -2 && w[1] == 1 && w[2] == 1, "clip(-inf, 1): %g %g %g", (double)w[0], (double)w[1],
          (double)w[2]);
    FN(pointwise_forward)(w, z, 3, &crossed);
    FN(pointwise_backward)(d, ones, z, 3, &crossed);
    CHECK(w[0] == -1 && w[1] == -1 && w[2] == -1 && d[0] == 0 && d[1] == 0 && d[2] == 0,
          "clip(1, -1): %g %g %g, gradients %g %g %g", (double)w[0], (double)w[1], (double)w[2], (double)d[0],
          (double)d[1], (double)d[2]);
    /* softplus saturates exactly as PyTorch (threshold 20): f(30) = 30, f'(30) = 1 */
    Pointwise sp = {PW_SOFTPLUS, 0, 0, 0};
    real big = 30, fb, db;
    FN(pointwise_forward)(&fb, &big, 1, &sp);
    FN(pointwise_backward)(&db, ones, &big, 1, &sp);
    CHECK(fb == 30 && db == 1, "softplus(30) = %g, gradient %g", (double)fb, (double)db);
}

/* ---------------------------------------------------------------- binary */

enum { R_BATCH, R_PARAM, R_CONST }; /* operand roles */
static const char *role_names[3] = {"batched", "param", "const"};

typedef struct {
    int nd[2];
    int64_t shape[2][4];
    int role[2];
} BinCase;

typedef struct {
    const Binary *op;
    int N;
    double *x[2], *d_out; /* a, b */
    int grad[2];          /* operand has a gradient (not a constant) */
    size_t len[2];        /* entries of a, b: N*size if batched, else size */
} BinCtx;

static void eval_bin_fwd(void *c, double *out) {
    BinCtx *x = c;
    binary_forward_f64(out, x->x[0], x->x[1], x->N, x->op);
}
/* out = [d_a | d_b] (constant operands contribute no block). */
static void eval_bin_bwd(void *c, double *out) {
    BinCtx *x = c;
    double *da = x->grad[0] ? out : NULL, *db = x->grad[1] ? out + (x->grad[0] ? x->len[0] : 0) : NULL;
    memset(out, 0, sizeof(double) * ((x->grad[0] ? x->len[0] : 0) + (x->grad[1] ? x->len[1] : 0)));
    binary_backward_f64(da, db, x->d_out, x->x[0], x->x[1], x->N, x->op);
}

/* Direct-loop forward: explicit right-aligned broadcasting over multi-indices (independent of the strides). */
static void binary_ref(double *out, const BinCase *c, const real *a, const real *b, int N, const Binary *op) {
    int nd = op->ndim;
    for (int n = 0; n < N; n++)
        for (size_t i = 0; i < op->out_size; i++) {
            int64_t idx[4] = {0, 0, 0, 0};
            size_t rem = i;
            for (int d = nd - 1; d >= 0; d--) idx[d] = (int64_t)(rem % (size_t)op->out_shape[d]), rem /= (size_t)op->out_shape[d];
            size_t off[2];
            for (int s = 0; s < 2; s++) {
                size_t o = 0;
                for (int e = 0; e < c->nd[s]; e++) {
                    int64_t sz = c->shape[s][e];
                    o = o * (size_t)sz + (size_t)(sz == 1 ? 0 : idx[e + nd - c->nd[s]]);
                }
                off[s] = o;
            }
            double av = a[(op->a_batched ? (size_t)n * op->a_size : 0) + off[0]];
            double bv = b[(op->b_batched ? (size_t)n * op->b_size : 0) + off[1]];
            double v = op->kind == BIN_ADD ? av + bv : op->kind == BIN_SUB ? av - bv : op->kind == BIN_MUL ? av * bv : av / bv;
            out[(size_t)n * op->out_size + i] = v;
        }
}

static void shape_name(char *buf, size_t size, int nd, const int64_t *sh) {
    size_t len = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < nd; d++) len += (size_t)snprintf(buf + len, size - len, d ? ",%lld" : "%lld", (long long)sh[d]);
    snprintf(buf + len, size - len, ")");
}

static void test_binary(const BinCase *c, BinaryKind kind, int N, int K) {
    static const char *kinds[4] = {"Add", "Sub", "Mul", "Div"};
    char name[200], what[400], sa[64], sb[64];
    shape_name(sa, sizeof sa, c->nd[0], c->shape[0]), shape_name(sb, sizeof sb, c->nd[1], c->shape[1]);
    snprintf(name, sizeof name, "%s a%s %s, b%s %s, N=%d K=%d", kinds[kind], sa, role_names[c->role[0]], sb,
             role_names[c->role[1]], N, K);
    Binary op;
    int rc = binary_setup(&op, kind, c->nd[0], c->shape[0], c->role[0] == R_BATCH, c->nd[1], c->shape[1],
                          c->role[1] == R_BATCH);
    CHECK(rc == 0, "%s: binary_setup failed: %s", name, hs_last_error());
    if (rc) return;

    size_t size[2] = {op.a_size, op.b_size}, len[2], nout = (size_t)N * op.out_size;
    int batched[2] = {op.a_batched, op.b_batched}, grad[2];
    real *x[2];
    double *xd[2], *x0[2];
    for (int s = 0; s < 2; s++) {
        len[s] = batched[s] ? (size_t)N * size[s] : size[s];
        grad[s] = c->role[s] != R_CONST;
        x[s] = vec(len[s]);
        if (s == 1) fill_mag(x[s], len[s], 0.5, 1.5); /* divisors away from zero */
        else fill(x[s], len[s]);
        xd[s] = dvec_of(x[s], len[s]), x0[s] = dvec_of(x[s], len[s]);
    }
    BinCtx ctx = {&op, N, {xd[0], xd[1]}, NULL, {grad[0], grad[1]}, {len[0], len[1]}};
    /* parameter tangent matrix (K, ldw): pad | a | pad | b | pad (only parameter operands live there) */
    size_t off[2] = {2, 2 + size[0] + 3}, ldw = off[1] + size[1] + 4;

    /* 1. forward */
    real *out = vec(nout);
    double *ref = dvec(nout);
    fill_nan(out, nout);
    FN(binary_forward)(out, x[0], x[1], N, &op);
    binary_ref(ref, c, x[0], x[1], N, &op);
    snprintf(what, sizeof what, "%s: forward vs direct loops", name);
    compare(OP_BINARY, 1, what, out, ref, nout, RTOL_EXACT);
    if (kind == BIN_ADD && op.a_batched && op.b_batched && op.a_size == op.out_size && op.b_size == op.out_size) {
        real *sum = vec(nout); /* the residual case agrees with the existing add op */
        FN(add_forward)(sum, x[0], x[1], nout);
        snprintf(what, sizeof what, "%s: forward vs add_forward", name);
        compare_reals(&worst_exact[OP_BINARY], what, out, sum, nout, 0);
        free(sum);
    }

    /* 2. backward: batched gradients written, parameter gradients accumulated, constants NULL */
    real *r = vec(nout);
    fill(r, nout);
    real *dx[2], *dx0[2], *inc[2];
    for (int s = 0; s < 2; s++) {
        dx[s] = grad[s] ? vec(len[s]) : NULL, inc[s] = vec(len[s]);
        if (!grad[s]) {
            dx0[s] = NULL;
            continue;
        }
        if (batched[s]) fill_nan(dx[s], len[s]);
        else fill(dx[s], len[s]);
        dx0[s] = vec_copy(dx[s], len[s]);
    }
    FN(binary_backward)(dx[0], dx[1], r, x[0], x[1], N, &op);
    for (int s = 0; s < 2; s++) {
        if (!grad[s]) continue;
        double *g = dvec(len[s]);
        fd_grad(g, xd[s], len[s], r, nout, eval_bin_fwd, &ctx);
        if (batched[s]) memcpy(inc[s], dx[s], sizeof(real) * len[s]);
        else increment(inc[s], dx[s], dx0[s], len[s]);
        snprintf(what, sizeof what, "%s: backward d_%c vs central differences", name, "ab"[s]);
        compare(OP_BINARY, 0, what, inc[s], g, len[s], RTOL_FD);
        free(g);
    }

    /* 3. tangent forward: every NULL combination of the operands' tangents (constants always NULL) */
    real *t[2], *tp = vec((size_t)K * ldw), *t_out = vec((size_t)K * nout), *got = vec(nout), *dir[2];
    double *refk = dvec(nout);
    fill(tp, (size_t)K * ldw);
    for (int s = 0; s < 2; s++) {
        t[s] = NULL, dir[s] = vec(len[s]);
        if (c->role[s] == R_BATCH) t[s] = vec((size_t)K * len[s]), fill(t[s], (size_t)K * len[s]);
        if (c->role[s] == R_PARAM) t[s] = tp + off[s];
    }
    /* direction k of operand s's tangent, NULL if unused */
    #define DIR(s, k, use) ((use) && t[s] ? (batched[s] ? (get_dir(dir[s], t[s], N, K, size[s], (k)), dir[s]) \
                                                         : tp + (size_t)(k) * ldw + off[s]) : NULL)
    for (int mask = 0; mask < 4; mask++) {
        int use[2] = {mask & 1, (mask >> 1) & 1};
        if ((use[0] && !t[0]) || (use[1] && !t[1])) continue;
        fill_nan(t_out, (size_t)K * nout);
        FN(binary_tangent_forward)(t_out, use[0] ? t[0] : NULL, use[1] ? t[1] : NULL, ldw, x[0], x[1], K, N, &op);
        for (int k = 0; k < K; k++) {
            Pert p[2] = {{xd[0], x0[0], DIR(0, k, use[0]), len[0]}, {xd[1], x0[1], DIR(1, k, use[1]), len[1]}};
            fd_dir(refk, nout, p, 2, eval_bin_fwd, &ctx);
            get_dir(got, t_out, N, K, op.out_size, k);
            snprintf(what, sizeof what, "%s: tangent_forward dir %d [t_a%s t_b%s]", name, k, use[0] ? "" : "=NULL",
                     use[1] ? "" : "=NULL");
            compare(OP_BINARY, 0, what, got, refk, nout, RTOL_FD);
        }
    }

    /* 4. tangent backward: every NULL combination of t_a, t_b, d_out, and of the outputs td_a, td_b */
    real *d_out = vec(nout), *td_out = vec((size_t)K * nout), *tdm = vec((size_t)K * ldw), *tdm0 = vec((size_t)K * ldw);
    real *tdb[2], *tdk = vec(len[0] + len[1]);
    size_t nref = (grad[0] ? len[0] : 0) + (grad[1] ? len[1] : 0), refoff[2] = {0, grad[0] ? len[0] : 0};
    double *refb = dvec(nref + 1), *dout_buf = dvec(nout), *dout0, *tdout_kd = dvec(nout);
    real *tdout_k = vec(nout);
    fill(d_out, nout);
    fill(td_out, (size_t)K * nout);
    dout0 = dvec_of(d_out, nout);
    for (int s = 0; s < 2; s++) tdb[s] = batched[s] && grad[s] ? vec((size_t)K * len[s]) : NULL;
    for (int mask = 0; mask < 32; mask++) {
        int use[2] = {mask & 1, (mask >> 1) & 1}, use_dout = (mask >> 2) & 1, want[2] = {(mask >> 3) & 1, (mask >> 4) & 1};
        if ((use[0] && !t[0]) || (use[1] && !t[1]) || (want[0] && !grad[0]) || (want[1] && !grad[1])) continue;
        fill(tdm0, (size_t)K * ldw);
        memcpy(tdm, tdm0, sizeof(real) * (size_t)K * ldw);
        real *outp[2];
        for (int s = 0; s < 2; s++) {
            outp[s] = NULL;
            if (!want[s]) continue;
            if (batched[s]) fill_nan(tdb[s], (size_t)K * len[s]), outp[s] = tdb[s];
            else outp[s] = tdm + off[s];
        }
        FN(binary_tangent_backward)(outp[0], outp[1], ldw, td_out, use_dout ? d_out : NULL, use[0] ? t[0] : NULL,
                                    use[1] ? t[1] : NULL, x[0], x[1], K, N, &op);
        char cfg[160];
        snprintf(cfg, sizeof cfg, "[t_a%s t_b%s d_out%s td_a%s td_b%s]", use[0] ? "" : "=NULL", use[1] ? "" : "=NULL",
                 use_dout ? "" : "=NULL (GGN)", want[0] ? "" : "=NULL", want[1] ? "" : "=NULL");
        size_t untouched_bad = 0;
        for (int k = 0; k < K; k++) {
            get_dir(tdout_k, td_out, N, K, op.out_size, k);
            if (use_dout) {
                ctx.d_out = dout_buf;
                Pert p[3] = {{xd[0], x0[0], DIR(0, k, use[0]), len[0]},
                             {xd[1], x0[1], DIR(1, k, use[1]), len[1]},
                             {dout_buf, dout0, tdout_k, nout}};
                fd_dir(refb, nref, p, 3, eval_bin_bwd, &ctx);
            } else {
                for (size_t i = 0; i < nout; i++) tdout_kd[i] = (double)tdout_k[i];
                ctx.d_out = tdout_kd;
                eval_bin_bwd(&ctx, refb);
            }
            for (int s = 0; s < 2; s++) {
                if (!want[s]) continue;
                if (batched[s]) get_dir(tdk, tdb[s], N, K, size[s], k);
                else increment(tdk, tdm + (size_t)k * ldw + off[s], tdm0 + (size_t)k * ldw + off[s], size[s]);
                snprintf(what, sizeof what, "%s: tangent_backward dir %d %s td_%c", name, k, cfg, "ab"[s]);
                compare(OP_BINARY, !use_dout, what, tdk, refb + refoff[s], len[s], use_dout ? RTOL_FD : RTOL_EXACT);
            }
            const real *row = tdm + (size_t)k * ldw, *row0 = tdm0 + (size_t)k * ldw;
            for (size_t j = 0; j < ldw; j++) {
                int inside = 0;
                for (int s = 0; s < 2; s++)
                    inside |= want[s] && !batched[s] && j >= off[s] && j < off[s] + size[s];
                if (!inside && memcmp(&row[j], &row0[j], sizeof(real)) != 0) untouched_bad++;
            }
        }
        CHECK(untouched_bad == 0, "%s: tangent_backward %s wrote %zu entries of the (K, ldw) matrix outside its blocks",
              name, cfg, untouched_bad);
    }
    #undef DIR
    for (int s = 0; s < 2; s++) {
        free(x[s]), free(xd[s]), free(x0[s]), free(dx[s]), free(dx0[s]), free(inc[s]), free(dir[s]), free(tdb[s]);
        if (c->role[s] == R_BATCH) free(t[s]);
    }
    free(out), free(ref), free(r), free(tp), free(t_out), free(got), free(refk), free(d_out), free(td_out);
    free(tdm), free(tdm0), free(tdk), free(refb), free(dout_buf), free(dout0), free(tdout_kd), free(tdout_k);
}

static void test_binary_setup(void) {
    Binary op;
    const int64_t chw[3] = {3, 4, 5}, c11[3] = {3, 1, 1}, bad[1] = {4}, five[5] = {1, 2, 3, 4, 5}, zero[1] = {0};
    CHECK(binary_setup(&op, BIN_MUL, 3, chw, 1, 3, c11, 0) == 0, "setup (3,4,5) x (3,1,1): %s", hs_last_error());
    CHECK(op.ndim == 3 && op.out_size == 60 && op.a_size == 60 && op.b_size == 3 && op.b_stride[0] == 1 &&
              op.b_stride[1] == 0 && op.b_stride[2] == 0 && op.a_stride[0] == 20 && op.a_batched && !op.b_batched,
          "setup (3,4,5) x (3,1,1): ndim %d out %zu a %zu b %zu b_stride %lld %lld %lld", op.ndim, op.out_size,
          op.a_size, op.b_size, (long long)op.b_stride[0], (long long)op.b_stride[1], (long long)op.b_stride[2]);
    CHECK(binary_setup(&op, BIN_ADD, 0, NULL, 0, 3, chw, 1) == 0 && op.ndim == 3 && op.a_size == 1 &&
              op.out_size == 60,
          "setup scalar + (3,4,5)");
    CHECK(binary_setup(&op, BIN_ADD, 3, chw, 1, 1, bad, 1) == -1 && strstr(hs_last_error(), "broadcast"),
          "setup (3,4,5) + (4) must fail (got '%s')", hs_last_error());
    CHECK(binary_setup(&op, BIN_ADD, 5, five, 1, 1, bad, 1) == -1, "setup with 5 dimensions must fail");
    CHECK(binary_setup(&op, BIN_ADD, 1, zero, 1, 1, bad, 1) == -1, "setup with a zero dimension must fail");
}

/* Reductions into unbatched operands are summed in a fixed order: bitwise identical on 1 and many threads. */
static void test_binary_threads(void) {
    const int N = 6, K = 3, many = omp_get_max_threads() > 1 ? omp_get_max_threads() : 4;
    const int64_t act[3] = {16, 24, 32}, per_c[3] = {16, 1, 1};
    Binary op;
    if (binary_setup(&op, BIN_DIV, 3, act, 1, 3, per_c, 0) != 0) {
        CHECK(0, "setup: %s", hs_last_error());
        return;
    }
    size_t na = (size_t)N * op.a_size, nout = (size_t)N * op.out_size, ldw = op.b_size + 1;
    size_t nres = op.b_size + (size_t)K * ldw + (size_t)K * na;
    real *a = vec(na), *b = vec(op.b_size), *d_out = vec(nout), *td_out = vec((size_t)K * nout);
    real *t_a = vec((size_t)K * na), *t_b = vec((size_t)K * ldw), *res[2] = {vec(nres), vec(nres)};
    fill(a, na), fill_mag(b, op.b_size, 0.5, 1.5), fill(d_out, nout), fill(td_out, (size_t)K * nout);
    fill(t_a, (size_t)K * na), fill(t_b, (size_t)K * ldw);
    int saved = omp_get_max_threads();
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(pass ? many : 1);
        real *db = res[pass], *tdb = db + op.b_size, *tda = tdb + (size_t)K * ldw;
        memset(db, 0, sizeof(real) * (op.b_size + (size_t)K * ldw));
        FN(binary_backward)(NULL, db, d_out, a, b, N, &op);
        FN(binary_tangent_backward)(tda, tdb, ldw, td_out, d_out, t_a, t_b, a, b, K, N, &op);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(res[0], res[1], sizeof(real) * nres) == 0,
          "binary Div (16,24,32) / (16,1,1) param: backward and tangent backward differ between 1 and %d threads",
          many);
    free(a), free(b), free(d_out), free(td_out), free(t_a), free(t_b), free(res[0]), free(res[1]);
}

/* ---------------------------------------------------------------- concat */

typedef struct {
    int n_in, N;
    size_t outer, total;
    const size_t *inner;
    double *ins[4], *d_out;
} CatCtx;

static void eval_cat_fwd(void *c, double *out) {
    CatCtx *x = c;
    concat_forward_f64(out, (const double *const *)x->ins, x->inner, x->n_in, x->outer, x->N);
}
static void eval_cat_bwd(void *c, double *out) { /* out = [d_in0 | d_in1 | ...] */
    CatCtx *x = c;
    double *d[4];
    size_t o = 0;
    for (int i = 0; i < x->n_in; i++) d[i] = out + o, o += (size_t)x->N * x->outer * x->inner[i];
    concat_backward_f64(d, x->d_out, x->inner, x->n_in, x->outer, x->N);
}

/* Per-sample shapes (rows[i], cols) along axis 0 or (rows, cols[i]) along axis 1, as outer/inner. */
static void test_concat(int axis, int n_in, const size_t *inner, size_t outer, int N, int K) {
    char what[200];
    size_t total = 0, len[4], all = 0;
    for (int i = 0; i < n_in; i++) total += inner[i], len[i] = (size_t)N * outer * inner[i], all += len[i];
    const size_t nout = (size_t)N * outer * total;
    real *in[4];
    double *ind[4], *in0[4];
    for (int i = 0; i < n_in; i++) in[i] = vec(len[i]), fill(in[i], len[i]), ind[i] = dvec_of(in[i], len[i]), in0[i] = dvec_of(in[i], len[i]);
    CatCtx ctx = {n_in, N, outer, total, inner, {ind[0], ind[1], ind[2], ind[3]}, NULL};

    /* 1. forward against direct loops */
    real *out = vec(nout);
    double *ref = dvec(nout);
    fill_nan(out, nout);
    FN(concat_forward)(out, (const real *const *)in, inner, n_in, outer, N);
    for (int n = 0; n < N; n++)
        for (size_t o = 0; o < outer; o++) {
            size_t col = 0;
            for (int i = 0; i < n_in; i++)
                for (size_t j = 0; j < inner[i]; j++, col++)
                    ref[((size_t)n * outer + o) * total + col] = in[i][((size_t)n * outer + o) * inner[i] + j];
        }
    snprintf(what, sizeof what, "concat axis %d, %d inputs: forward vs direct loops", axis, n_in);
    compare(OP_CONCAT, 1, what, out, ref, nout, RTOL_EXACT);

    /* 2. backward against central differences (one d_in NULL in a second call) */
    real *r = vec(nout), *d[4];
    fill(r, nout);
    for (int i = 0; i < n_in; i++) d[i] = vec(len[i]), fill_nan(d[i], len[i]);
    FN(concat_backward)(d, r, inner, n_in, outer, N);
    for (int i = 0; i < n_in; i++) {
        double *g = dvec(len[i]);
        fd_grad(g, ind[i], len[i], r, nout, eval_cat_fwd, &ctx);
        snprintf(what, sizeof what, "concat axis %d: backward d_in[%d] vs central differences", axis, i);
        compare(OP_CONCAT, 0, what, d[i], g, len[i], RTOL_FD);
        free(g);
    }
    if (n_in > 1) {
        real *keep = vec_copy(d[1], len[1]), *saved1 = d[1];
        fill_nan(d[0], len[0]);
        d[1] = NULL;
        FN(concat_backward)(d, r, inner, n_in, outer, N);
        d[1] = saved1;
        CHECK(memcmp(keep, d[1], sizeof(real) * len[1]) == 0 && !isnan((double)d[0][0]),
              "concat: backward with a NULL entry");
        free(keep);
    }

    /* 3. tangent forward: input 1's tangent NULL (zeros) in the second round */
    real *t[4], *t_out = vec((size_t)K * nout), *got = vec(nout), *dir[4];
    double *refk = dvec(nout);
    for (int i = 0; i < n_in; i++) t[i] = vec((size_t)K * len[i]), fill(t[i], (size_t)K * len[i]), dir[i] = vec(len[i]);
    for (int round = 0; round < 2; round++) {
        real *tu[4];
        for (int i = 0; i < n_in; i++) tu[i] = round && i == 1 ? NULL : t[i];
        fill_nan(t_out, (size_t)K * nout);
        FN(concat_tangent_forward)(t_out, (const real *const *)tu, inner, n_in, outer, K, N);
        for (int k = 0; k < K; k++) {
            Pert p[4];
            for (int i = 0; i < n_in; i++) {
                if (tu[i]) get_dir(dir[i], tu[i], N, K, outer * inner[i], k);
                p[i] = (Pert){ind[i], in0[i], tu[i] ? dir[i] : NULL, len[i]};
            }
            fd_dir(refk, nout, p, n_in, eval_cat_fwd, &ctx);
            get_dir(got, t_out, N, K, outer * total, k);
            snprintf(what, sizeof what, "concat axis %d: tangent_forward dir %d%s", axis, k, round ? " (t_in[1] NULL)" : "");
            compare(OP_CONCAT, 0, what, got, refk, nout, RTOL_FD);
        }
    }

    /* 4. tangent backward against central differences of backward along td_out (concat is linear: no d_out term) */
    real *td_out = vec((size_t)K * nout), *td[4], *tdk = vec(all), *tdo_k = vec(nout);
    double *refb = dvec(all), *dout_buf = dvec(nout), *zero = dvec(nout);
    fill(td_out, (size_t)K * nout);
    for (int i = 0; i < n_in; i++) td[i] = vec((size_t)K * len[i]), fill_nan(td[i], (size_t)K * len[i]);
    FN(concat_tangent_backward)(td, td_out, inner, n_in, outer, K, N);
    ctx.d_out = dout_buf;
    for (int k = 0; k < K; k++) {
        get_dir(tdo_k, td_out, N, K, outer * total, k);
        Pert p[1] = {{dout_buf, zero, tdo_k, nout}};
        fd_dir(refb, all, p, 1, eval_cat_bwd, &ctx);
        size_t o = 0;
        for (int i = 0; i < n_in; i++) get_dir(tdk + o, td[i], N, K, outer * inner[i], k), o += len[i];
        snprintf(what, sizeof what, "concat axis %d: tangent_backward dir %d", axis, k);
        compare(OP_CONCAT, 0, what, tdk, refb, all, RTOL_FD);
    }
    for (int i = 0; i < n_in; i++) free(in[i]), free(ind[i]), free(in0[i]), free(d[i]), free(t[i]), free(dir[i]), free(td[i]);
    free(out), free(ref), free(r), free(t_out), free(got), free(refk), free(td_out), free(tdk), free(tdo_k);
    free(refb), free(dout_buf), free(zero);
}

/* ---------------------------------------------------------------- matmul */

typedef struct {
    int N, In, O, bias;
    double *in, *w, *b, *d_out;
} MmCtx;

static void eval_mm_fwd(void *c, double *out) {
    MmCtx *x = c;
    matmul_forward_f64(out, x->in, x->w, x->bias ? x->b : NULL, x->N, x->In, x->O);
}
static void eval_mm_bwd(void *c, double *out) { /* [d_in | d_w | d_b] */
    MmCtx *x = c;
    size_t nin = (size_t)x->N * x->In, nw = (size_t)x->In * x->O;
    memset(out + nin, 0, sizeof(double) * (nw + (size_t)x->O));
    matmul_backward_f64(out, out + nin, x->bias ? out + nin + nw : NULL, x->d_out, x->in, x->w, x->N, x->In, x->O);
}

static void test_matmul(int N, int In, int O, int bias, int K) {
    char name[100], what[400];
    snprintf(name, sizeof name, "matmul N=%d In=%d O=%d bias=%d K=%d", N, In, O, bias, K);
    const size_t nin = (size_t)N * In, nout = (size_t)N * O, nw = (size_t)In * O, nb = bias ? (size_t)O : 0;
    const size_t offw = 3, offb = offw + nw + 2, ldw = offb + (size_t)O + 5;
    real *in = vec(nin), *w = vec(nw), *b = vec((size_t)O);
    fill(in, nin), fill(w, nw), fill(b, (size_t)O);
    double *ind = dvec_of(in, nin), *wd = dvec_of(w, nw), *bd = dvec_of(b, (size_t)O);
    double *in0 = dvec_of(in, nin), *w0 = dvec_of(w, nw), *b0 = dvec_of(b, (size_t)O);
    MmCtx ctx = {N, In, O, bias, ind, wd, bd, NULL};

    /* 1. forward */
    real *out = vec(nout);
    double *ref = dvec(nout);
    fill_nan(out, nout);
    FN(matmul_forward)(out, in, w, bias ? b : NULL, N, In, O);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double acc = bias ? b[o] : 0;
            for (int i = 0; i < In; i++) acc += (double)in[(size_t)n * In + i] * w[(size_t)i * O + o];
            ref[(size_t)n * O + o] = acc;
        }
    snprintf(what, sizeof what, "%s: forward vs direct loops", name);
    compare(OP_MATMUL, 1, what, out, ref, nout, RTOL_EXACT);

    /* 2. backward: d_in written, d_w and d_b accumulated */
    real *r = vec(nout), *d_in = vec(nin), *d_w = vec(nw), *d_b = vec((size_t)O), *inc = vec(nw + (size_t)O);
    fill(r, nout), fill_nan(d_in, nin), fill(d_w, nw), fill(d_b, (size_t)O);
    real *d_w0 = vec_copy(d_w, nw), *d_b0 = vec_copy(d_b, (size_t)O);
    FN(matmul_backward)(d_in, d_w, bias ? d_b : NULL, r, in, w, N, In, O);
    double *g = dvec(nin + nw + (size_t)O);
    fd_grad(g, ind, nin, r, nout, eval_mm_fwd, &ctx);
    snprintf(what, sizeof what, "%s: backward d_in vs central differences", name);
    compare(OP_MATMUL, 0, what, d_in, g, nin, RTOL_FD);
    fd_grad(g, wd, nw, r, nout, eval_mm_fwd, &ctx);
    increment(inc, d_w, d_w0, nw);
    snprintf(what, sizeof what, "%s: backward d_weight (+=) vs central differences", name);
    compare(OP_MATMUL, 0, what, inc, g, nw, RTOL_FD);
    if (bias) {
        fd_grad(g, bd, nb, r, nout, eval_mm_fwd, &ctx);
        increment(inc, d_b, d_b0, nb);
        snprintf(what, sizeof what, "%s: backward d_bias (+=) vs central differences", name);
        compare(OP_MATMUL, 0, what, inc, g, nb, RTOL_FD);
    }

    /* 3. tangent forward: every NULL combination; unit weight tangents exercise the sparse path */
    real *t_in = vec((size_t)K * nin), *tp = vec((size_t)K * ldw), *t_out = vec((size_t)K * nout), *got = vec(nout);
    real *tin_k = vec(nin);
    double *refk = dvec(nout);
    fill(t_in, (size_t)K * nin);
    for (int unit = 0; unit < 2; unit++) {
        if (unit) {
            memset(tp, 0, sizeof(real) * (size_t)K * ldw);
            for (int k = 0; k < K; k++) tp[(size_t)k * ldw + offw + (size_t)(k * 5) % nw] = 1;
        } else {
            fill(tp, (size_t)K * ldw);
        }
        for (int mask = 0; mask < 8; mask++) {
            int use_tin = mask & 1, use_tw = (mask >> 1) & 1, use_tb = (mask >> 2) & 1;
            if ((use_tb && !bias) || (unit && mask != 2)) continue;
            fill_nan(t_out, (size_t)K * nout);
            FN(matmul_tangent_forward)(t_out, use_tin ? t_in : NULL, use_tw ? tp + offw : NULL, use_tb ? tp + offb : NULL,
                                       ldw, in, w, K, N, In, O);
            for (int k = 0; k < K; k++) {
                get_dir(tin_k, t_in, N, K, (size_t)In, k);
                Pert p[3] = {{ind, in0, use_tin ? tin_k : NULL, nin},
                             {wd, w0, use_tw ? tp + (size_t)k * ldw + offw : NULL, nw},
                             {bd, b0, use_tb ? tp + (size_t)k * ldw + offb : NULL, (size_t)O}};
                fd_dir(refk, nout, p, 3, eval_mm_fwd, &ctx);
                get_dir(got, t_out, N, K, (size_t)O, k);
                snprintf(what, sizeof what, "%s: tangent_forward dir %d [t_in%s t_weight%s%s t_bias%s]", name, k,
                         use_tin ? "" : "=NULL", use_tw ? "" : "=NULL", unit ? " unit" : "", use_tb ? "" : "=NULL");
                compare(OP_MATMUL, 0, what, got, refk, nout, RTOL_FD);
            }
        }
    }
    fill(tp, (size_t)K * ldw);

    /* 4. tangent backward: every NULL combination of t_in, t_weight, d_out, td_in, td_bias */
    real *d_out = vec(nout), *td_out = vec((size_t)K * nout), *td_in = vec((size_t)K * nin);
    real *tdm = vec((size_t)K * ldw), *tdm0 = vec((size_t)K * ldw), *tdout_k = vec(nout), *tdin_k = vec(nin);
    size_t nref = nin + nw + (size_t)O;
    double *refb = dvec(nref), *dout_buf = dvec(nout), *dout0, *tdout_kd = dvec(nout);
    fill(d_out, nout), fill(td_out, (size_t)K * nout);
    dout0 = dvec_of(d_out, nout);
    for (int mask = 0; mask < 32; mask++) {
        int use_tin = mask & 1, use_tw = (mask >> 1) & 1, use_dout = (mask >> 2) & 1;
        int want_tdin = (mask >> 3) & 1, want_tdb = (mask >> 4) & 1;
        if (want_tdb && !bias) continue;
        fill_nan(td_in, (size_t)K * nin);
        fill(tdm0, (size_t)K * ldw);
        memcpy(tdm, tdm0, sizeof(real) * (size_t)K * ldw);
        FN(matmul_tangent_backward)(want_tdin ? td_in : NULL, tdm + offw, want_tdb ? tdm + offb : NULL, ldw, td_out,
                                    use_dout ? d_out : NULL, use_tin ? t_in : NULL, use_tw ? tp + offw : NULL, in, w,
                                    K, N, In, O);
        char cfg[160];
        snprintf(cfg, sizeof cfg, "[t_in%s t_weight%s d_out%s td_in%s td_bias%s]", use_tin ? "" : "=NULL",
                 use_tw ? "" : "=NULL", use_dout ? "" : "=NULL (GGN)", want_tdin ? "" : "=NULL",
                 want_tdb ? "" : "=NULL");
        size_t untouched_bad = 0;
        for (int k = 0; k < K; k++) {
            get_dir(tin_k, t_in, N, K, (size_t)In, k);
            get_dir(tdout_k, td_out, N, K, (size_t)O, k);
            if (use_dout) {
                ctx.d_out = dout_buf;
                Pert p[3] = {{ind, in0, use_tin ? tin_k : NULL, nin},
                             {wd, w0, use_tw ? tp + (size_t)k * ldw + offw : NULL, nw},
                             {dout_buf, dout0, tdout_k, nout}};
                fd_dir(refb, nref, p, 3, eval_mm_bwd, &ctx);
            } else {
                for (size_t i = 0; i < nout; i++) tdout_kd[i] = (double)tdout_k[i];
                ctx.d_out = tdout_kd;
                eval_mm_bwd(&ctx, refb);
            }
            double rtol = use_dout ? RTOL_FD : RTOL_EXACT;
            if (want_tdin) {
                get_dir(tdin_k, td_in, N, K, (size_t)In, k);
                snprintf(what, sizeof what, "%s: tangent_backward dir %d %s td_in", name, k, cfg);
                compare(OP_MATMUL, !use_dout, what, tdin_k, refb, nin, rtol);
            }
            const real *row = tdm + (size_t)k * ldw, *row0 = tdm0 + (size_t)k * ldw;
            increment(inc, row + offw, row0 + offw, nw);
            snprintf(what, sizeof what, "%s: tangent_backward dir %d %s td_weight", name, k, cfg);
            compare(OP_MATMUL, !use_dout, what, inc, refb + nin, nw, rtol);
            if (want_tdb) {
                increment(inc, row + offb, row0 + offb, nb);
                snprintf(what, sizeof what, "%s: tangent_backward dir %d %s td_bias", name, k, cfg);
                compare(OP_MATMUL, !use_dout, what, inc, refb + nin + nw, nb, rtol);
            }
            for (size_t j = 0; j < ldw; j++) {
                int in_w = j >= offw && j < offw + nw, in_b = want_tdb && j >= offb && j < offb + nb;
                if (!in_w && !in_b && memcmp(&row[j], &row0[j], sizeof(real)) != 0) untouched_bad++;
            }
        }
        CHECK(untouched_bad == 0, "%s: tangent_backward %s wrote %zu entries outside its blocks", name, cfg,
              untouched_bad);
    }
    free(in), free(w), free(b), free(ind), free(wd), free(bd), free(in0), free(w0), free(b0), free(out), free(ref);
    free(r), free(d_in), free(d_w), free(d_b), free(inc), free(d_w0), free(d_b0), free(g), free(t_in), free(tp);
    free(t_out), free(got), free(tin_k), free(refk), free(d_out), free(td_out), free(td_in), free(tdm), free(tdm0);
    free(tdout_k), free(tdin_k), free(refb), free(dout_buf), free(dout0), free(tdout_kd);
}

/* ---------------------------------------------------------------- main */

int main(void) {
    double t0 = hs_seconds();

    /* pointwise: each kind on (N=3, m=23) and (N=2, m=300: more than one block of 256 entries) */
    const struct {
        const char *name;
        Pointwise f;
    } pws[] = {
        {"leaky_relu(0.1)", {PW_LEAKY_RELU, 0.1, 0, 0}}, {"clip(-0.5, 0.3)", {PW_CLIP, 0, -0.5, 0.3}},
        {"clip(-inf, 0.2)", {PW_CLIP, 0, -INFINITY, 0.2}}, {"clip(0, +inf)", {PW_CLIP, 0, 0, INFINITY}},
        {"sigmoid", {PW_SIGMOID, 0, 0, 0}}, {"tanh", {PW_TANH, 0, 0, 0}},
        {"softplus", {PW_SOFTPLUS, 0, 0, 0}}, {"erf", {PW_ERF, 0, 0, 0}},
    };
    for (size_t i = 0; i < sizeof pws / sizeof pws[0]; i++) {
        rng_state = 0x1234567ull + i;
        test_pointwise(pws[i].name, pws[i].f, 3, 3, 23);
        test_pointwise(pws[i].name, pws[i].f, 2, 2, 300);
    }
    test_pointwise_kinks();

    /* binary: broadcast patterns x roles x kinds */
    test_binary_setup();
    const BinCase cases[] = {
        {{3, 3}, {{2, 3, 4}, {2, 3, 4}}, {R_BATCH, R_BATCH}}, /* same shape: the residual case */
        {{3, 3}, {{2, 3, 4}, {2, 1, 1}}, {R_BATCH, R_PARAM}}, /* per-channel parameter on the right */
        {{3, 3}, {{2, 1, 1}, {2, 3, 4}}, {R_PARAM, R_BATCH}}, /* ... and on the left */
        {{3, 3}, {{2, 3, 4}, {2, 1, 1}}, {R_BATCH, R_CONST}}, /* per-channel constant */
        {{0, 3}, {{0}, {2, 3, 4}}, {R_CONST, R_BATCH}},       /* scalar constant on the left */
        {{3, 1}, {{2, 3, 4}, {1}}, {R_BATCH, R_PARAM}},       /* scalar parameter */
        {{3, 1}, {{2, 3, 4}, {4}}, {R_BATCH, R_PARAM}},       /* lower-rank parameter (last dim) */
        {{3, 3}, {{2, 3, 4}, {2, 3, 4}}, {R_PARAM, R_BATCH}}, /* full-shape parameter */
        {{3, 3}, {{2, 1, 4}, {1, 3, 1}}, {R_BATCH, R_BATCH}}, /* both batched, both broadcast */
        {{3, 2}, {{2, 3, 4}, {3, 4}}, {R_BATCH, R_BATCH}},    /* batched, lower rank */
        {{2, 3}, {{3, 1}, {2, 1, 4}}, {R_BATCH, R_PARAM}},    /* output larger than both */
        {{1, 1}, {{5}, {5}}, {R_BATCH, R_BATCH}},             /* vectors (after a Flatten) */
        {{4, 4}, {{2, 1, 3, 2}, {1, 2, 1, 2}}, {R_BATCH, R_PARAM}}, /* 4 dimensions */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int kind = BIN_ADD; kind <= BIN_DIV; kind++) {
            rng_state = 0xABCDEFull + 16 * i + (uint64_t)kind;
            test_binary(&cases[i], (BinaryKind)kind, i % 2 ? 2 : 3, i % 3 ? 2 : 1);
        }
    test_binary_threads();

    /* concat: axis 0 of (2,3)+(1,3)+(4,3), axis 1 of (2,3)+(2,1)+(2,5)+(2,2), a single input */
    const size_t in_axis0[3] = {6, 3, 12}, in_axis1[4] = {3, 1, 5, 2}, in_one[1] = {7};
    test_concat(0, 3, in_axis0, 1, 3, 2);
    test_concat(1, 4, in_axis1, 2, 2, 3);
    test_concat(0, 1, in_one, 1, 2, 1);

    /* matmul */
    test_matmul(3, 5, 4, 1, 3);
    test_matmul(3, 5, 4, 0, 2);
    test_matmul(1, 7, 3, 1, 1);
    test_matmul(4, 2, 6, 0, 2);

    printf("%s: max relative errors (central differences | direct loops):\n", CHECK_NAME("test_ops_elementwise"));
    for (int op = 0; op < OP_COUNT; op++)
        printf("  %-10s %9.2e | %9.2e\n", op_names[op], worst_fd[op], worst_exact[op]);
    printf("%s: %.2f s\n", CHECK_NAME("test_ops_elementwise"), hs_seconds() - t0);
    return check_summary(CHECK_NAME("test_ops_elementwise"));
}

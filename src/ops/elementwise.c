/* elementwise.c: binary Add/Sub/Mul/Div with numpy broadcasting between batched operands (activations) and
 * unbatched ones (parameters, constants), and their four passes (see ops.h for the layouts and the Div terms).
 *
 * Iteration. Each call first coalesces the per-sample output shape into at most 4 dimensions where a and b
 * each either run contiguously or are broadcast (size-1 dimensions dropped, neighbours with the same pattern
 * merged): same-shape operands become one dimension, a (C,1,1) operand against (C,H,W) becomes (C, H*W).
 * Forward-style passes walk the output in rows of the last dimension (a and b advance by 0 or 1 per entry).
 * A gradient into an operand x is either elementwise (x batched with the output's shape: written row by row)
 * or a reduction: each entry j of x sums over the output positions it was broadcast to (and over the batch
 * when x is unbatched), in a fixed order with a double accumulator, one entry per loop iteration, so results
 * do not depend on the thread count.
 *
 * Per output position, with the operand values a, b, tangents t_a, t_b (0 when NULL), incoming g (d_out in
 * backward, td_out in tangent backward) and d (d_out in tangent backward, 0 otherwise):
 *   grad_a = g df/da + d (d/deps df/da),   grad_b = g df/db + d (d/deps df/db)   (bin_grad below). */
#include <stdio.h>
#include <string.h>

#include "../core/scratch.h"
#include "ops.h"

/* ---------------------------------------------------------------- iteration plan */

typedef struct {
    int D;                                 /* >= 1 */
    size_t shape[4], os[4], st[2][4];      /* output strides; a (st[0]) and b (st[1]) strides, 0 = broadcast */
} Plan;

static void make_plan(Plan *p, const Binary *op) {
    size_t ostr[4], acc = 1;
    for (int d = op->ndim - 1; d >= 0; d--) ostr[d] = acc, acc *= (size_t)op->out_shape[d];
    p->D = 0;
    for (int d = 0; d < op->ndim; d++) {
        size_t n = (size_t)op->out_shape[d], sa = (size_t)op->a_stride[d], sb = (size_t)op->b_stride[d];
        if (n == 1) continue;
        int e = p->D - 1;
        if (e >= 0 && p->st[0][e] == sa * n && p->st[1][e] == sb * n) { /* same pattern: merge into e */
            p->shape[e] *= n, p->os[e] = ostr[d], p->st[0][e] = sa, p->st[1][e] = sb;
            continue;
        }
        p->shape[p->D] = n, p->os[p->D] = ostr[d], p->st[0][p->D] = sa, p->st[1][p->D] = sb;
        p->D++;
    }
    if (p->D == 0) p->D = 1, p->shape[0] = 1, p->os[0] = 1, p->st[0][0] = p->st[1][0] = 0;
}

/* Offsets of a and b at the start of output row r (rows: all dimensions but the last). */
static void row_offsets(const Plan *p, size_t r, size_t *ao, size_t *bo) {
    size_t oa = 0, ob = 0;
    for (int d = p->D - 2; d >= 0; d--) {
        size_t i = r % p->shape[d];
        r /= p->shape[d];
        oa += i * p->st[0][d], ob += i * p->st[1][d];
    }
    *ao = oa, *bo = ob;
}

/* ---------------------------------------------------------------- per-entry formulas (in double) */

static inline double bin_tangent(BinaryKind kind, double a, double b, double ta, double tb) {
    switch (kind) {
    case BIN_ADD: return ta + tb;
    case BIN_SUB: return ta - tb;
    case BIN_MUL: return ta * b + a * tb;
    case BIN_DIV: {
        double q = 1 / b;
        return q * ta - a * q * q * tb;
    }
    }
    return 0;
}

/* g df/dx + d d/deps(df/dx) for x = a (side 0) or b (side 1). */
static inline double bin_grad(BinaryKind kind, int side, double a, double b, double g, double d, double ta,
                              double tb) {
    switch (kind) {
    case BIN_ADD: return g;
    case BIN_SUB: return side ? -g : g;
    case BIN_MUL: return side ? g * a + d * ta : g * b + d * tb;
    case BIN_DIV: {
        double q = 1 / b, q2 = q * q;
        if (!side) return q * g - q2 * tb * d;
        return -a * q2 * g + (2 * a * q * tb - ta) * q2 * d;
    }
    }
    return 0;
}

/* ---------------------------------------------------------------- forward */

void FN(binary_forward)(real *out, const real *a, const real *b, int N, const Binary *op) {
    Plan p;
    make_plan(&p, op);
    const size_t L = p.shape[p.D - 1], rows = op->out_size / L, ia = p.st[0][p.D - 1], ib = p.st[1][p.D - 1];
    const size_t jobs = (size_t)N * rows;
#pragma omp parallel for schedule(static) if ((size_t)N * op->out_size > 65536)
    for (size_t job = 0; job < jobs; job++) {
        size_t n = job / rows, r = job % rows, ao, bo;
        row_offsets(&p, r, &ao, &bo);
        const real *A = a + (op->a_batched ? n * op->a_size : 0) + ao;
        const real *B = b + (op->b_batched ? n * op->b_size : 0) + bo;
        real *o = out + n * op->out_size + r * L;
        switch (op->kind) {
        case BIN_ADD:
            for (size_t i = 0; i < L; i++) o[i] = A[i * ia] + B[i * ib];
            break;
        case BIN_SUB:
            for (size_t i = 0; i < L; i++) o[i] = A[i * ia] - B[i * ib];
            break;
        case BIN_MUL:
            for (size_t i = 0; i < L; i++) o[i] = A[i * ia] * B[i * ib];
            break;
        case BIN_DIV:
            for (size_t i = 0; i < L; i++) o[i] = A[i * ia] / B[i * ib];
            break;
        }
    }
}

/* ---------------------------------------------------------------- tangent forward */

static const real FN(zero_entry) = 0; /* a NULL tangent reads as this entry with stride 0 */

void FN(binary_tangent_forward)(real *t_out, const real *t_a, const real *t_b, size_t ldw, const real *a,
                                const real *b, int K, int N, const Binary *op) {
    Plan p;
    make_plan(&p, op);
    const size_t L = p.shape[p.D - 1], rows = op->out_size / L, ia = p.st[0][p.D - 1], ib = p.st[1][p.D - 1];
    const size_t jobs = (size_t)N * K * rows;
#pragma omp parallel for schedule(static) if ((size_t)N * K * op->out_size > 65536)
    for (size_t job = 0; job < jobs; job++) {
        size_t nk = job / rows, r = job % rows, n = nk / (size_t)K, k = nk % (size_t)K, ao, bo;
        row_offsets(&p, r, &ao, &bo);
        const real *A = a + (op->a_batched ? n * op->a_size : 0) + ao;
        const real *B = b + (op->b_batched ? n * op->b_size : 0) + bo;
        const real *TA = &FN(zero_entry), *TB = &FN(zero_entry);
        size_t ita = 0, itb = 0;
        if (t_a) TA = t_a + (op->a_batched ? nk * op->a_size : k * ldw) + ao, ita = ia;
        if (t_b) TB = t_b + (op->b_batched ? nk * op->b_size : k * ldw) + bo, itb = ib;
        real *o = t_out + nk * op->out_size + r * L;
        switch (op->kind) {
        case BIN_ADD:
            for (size_t i = 0; i < L; i++) o[i] = TA[i * ita] + TB[i * itb];
            break;
        case BIN_SUB:
            for (size_t i = 0; i < L; i++) o[i] = TA[i * ita] - TB[i * itb];
            break;
        case BIN_MUL:
            for (size_t i = 0; i < L; i++)
                o[i] = (real)((double)TA[i * ita] * B[i * ib] + (double)A[i * ia] * TB[i * itb]);
            break;
        case BIN_DIV:
            for (size_t i = 0; i < L; i++) o[i] = (real)bin_tangent(BIN_DIV, A[i * ia], B[i * ib], TA[i * ita], TB[i * itb]);
            break;
        }
    }
}

/* ---------------------------------------------------------------- gradients into one operand */

/* A run of output positions: each operand's first entry and stride (0: broadcast along the run, or absent:
 * a NULL tangent reads zero_entry). g: the incoming gradient (d_out or td_out); d: d_out in tangent backward,
 * NULL otherwise (then the tangents are not read). */
typedef struct {
    const real *a, *b, *ta, *tb, *g, *d;
    size_t sa, sb, sta, stb, sg, sd;
} Run;

/* The gradient terms (bin_grad) of L positions into x = a (side 0) or b (side 1): written to out[i] when out
 * is not NULL, else summed (in double) and returned. The kind is resolved outside the loops. */
static double FN(grad_run)(BinaryKind kind, int side, const Run *r, size_t L, real *out) {
    const real *A = r->a, *B = r->b, *TA = r->ta, *TB = r->tb, *G = r->g, *D = r->d;
    const size_t sa = r->sa, sb = r->sb, sta = r->sta, stb = r->stb, sg = r->sg, sd = r->sd;
    double acc = 0;
#define GRAD_LOOP(expr)                                                  \
    do {                                                                 \
        if (out)                                                         \
            for (size_t i = 0; i < L; i++) out[i] = (real)(expr);        \
        else                                                             \
            for (size_t i = 0; i < L; i++) acc += (expr);                \
    } while (0)
    switch (kind) {
    case BIN_ADD: GRAD_LOOP((double)G[i * sg]); break;
    case BIN_SUB:
        if (side) GRAD_LOOP(-(double)G[i * sg]);
        else GRAD_LOOP((double)G[i * sg]);
        break;
    case BIN_MUL:
        if (!D && side) GRAD_LOOP((double)G[i * sg] * A[i * sa]);
        else if (!D) GRAD_LOOP((double)G[i * sg] * B[i * sb]);
        else if (side) GRAD_LOOP((double)G[i * sg] * A[i * sa] + (double)D[i * sd] * TA[i * sta]);
        else GRAD_LOOP((double)G[i * sg] * B[i * sb] + (double)D[i * sd] * TB[i * stb]);
        break;
    case BIN_DIV:
        if (!D && side) GRAD_LOOP(bin_grad(BIN_DIV, 1, A[i * sa], B[i * sb], G[i * sg], 0, 0, 0));
        else if (!D) GRAD_LOOP((double)G[i * sg] / B[i * sb]);
        else GRAD_LOOP(bin_grad(BIN_DIV, side, A[i * sa], B[i * sb], G[i * sg], D[i * sd], TA[i * sta], TB[i * stb]));
        break;
    }
#undef GRAD_LOOP
    return acc;
}

/* Everything a gradient into one operand depends on. Kd directions: 1 in backward (G (N,out)), K in tangent
 * backward (G (N,K,out), dx batched (N,K,x) or unbatched rows of (K,ldw)). */
typedef struct {
    int side, Kd, N;
    const real *a, *b, *ta, *tb, *G, *D;
    size_t ldw;
    const Binary *op;
} GradArgs;

/* The run of sample n, direction k starting at output position po with a at offset ao and b at bo; strides
 * along the run: ia, ib for a and b, io for the output. */
static Run FN(run_at)(const GradArgs *g, size_t n, size_t k, size_t ao, size_t bo, size_t po, size_t ia, size_t ib,
                      size_t io) {
    const Binary *op = g->op;
    size_t nk = n * (size_t)g->Kd + k;
    Run r;
    r.a = g->a + (op->a_batched ? n * op->a_size : 0) + ao, r.sa = ia;
    r.b = g->b + (op->b_batched ? n * op->b_size : 0) + bo, r.sb = ib;
    r.ta = &FN(zero_entry), r.sta = 0, r.tb = &FN(zero_entry), r.stb = 0;
    if (g->ta) r.ta = g->ta + (op->a_batched ? nk * op->a_size : k * g->ldw) + ao, r.sta = ia;
    if (g->tb) r.tb = g->tb + (op->b_batched ? nk * op->b_size : k * g->ldw) + bo, r.stb = ib;
    r.g = g->G + nk * op->out_size + po, r.sg = io;
    r.d = g->D ? g->D + n * op->out_size + po : NULL, r.sd = io;
    return r;
}

static void FN(grad_into)(real *dx, const GradArgs *g) {
    const Binary *op = g->op;
    Plan p;
    make_plan(&p, op);
    const int s = g->side;
    const int x_batched = s ? op->b_batched : op->a_batched;
    const size_t x_size = s ? op->b_size : op->a_size, out_size = op->out_size;
    const size_t N = (size_t)g->N, Kd = (size_t)g->Kd;

    if (x_batched && x_size == out_size) { /* elementwise: x has the output's layout */
        const size_t L = p.shape[p.D - 1], rows = out_size / L, jobs = N * Kd * rows;
        const size_t ia = p.st[0][p.D - 1], ib = p.st[1][p.D - 1];
#pragma omp parallel for schedule(static) if (N * Kd * out_size > 65536)
        for (size_t job = 0; job < jobs; job++) {
            size_t nk = job / rows, r = job % rows, ao, bo;
            row_offsets(&p, r, &ao, &bo);
            Run run = FN(run_at)(g, nk / Kd, nk % Kd, ao, bo, r * L, ia, ib, 1);
            FN(grad_run)(op->kind, s, &run, L, dx + nk * x_size + r * L);
        }
        return;
    }

    /* Reduction: split the dimensions into x's own (kept) and those x is broadcast along (reduced). */
    int nkept = 0, nred = 0;
    size_t kshape[4], kos[4], kst[2][4], rshape[4], ros[4], rst[2][4];
    for (int d = 0; d < p.D; d++) {
        if (p.st[s][d] != 0) {
            kshape[nkept] = p.shape[d], kos[nkept] = p.os[d], kst[0][nkept] = p.st[0][d], kst[1][nkept] = p.st[1][d];
            nkept++;
        } else {
            rshape[nred] = p.shape[d], ros[nred] = p.os[d], rst[0][nred] = p.st[0][d], rst[1][nred] = p.st[1][d];
            nred++;
        }
    }
    if (nred == 0) rshape[0] = 1, ros[0] = rst[0][0] = rst[1][0] = 0, nred = 1;
    const size_t Lr = rshape[nred - 1], Rout = out_size / x_size / Lr; /* inner reduced run, outer runs */
    const size_t rio = ros[nred - 1], ria = rst[0][nred - 1], rib = rst[1][nred - 1];
    /* batched: one entry per (n, k, j), written; unbatched: one per (k, j), summed over n, added */
    const size_t jobs = (x_batched ? N : 1) * Kd * x_size;
#pragma omp parallel for schedule(static) if (N * Kd * out_size > 65536)
    for (size_t job = 0; job < jobs; job++) {
        size_t j = job % x_size, nk = job / x_size;
        size_t k = x_batched ? nk % Kd : nk, n0 = x_batched ? nk / Kd : 0, n1 = x_batched ? n0 + 1 : N;
        size_t po0 = 0, o0[2] = {0, 0}, rem = j;
        for (int d = nkept - 1; d >= 0; d--) {
            size_t i = rem % kshape[d];
            rem /= kshape[d];
            po0 += i * kos[d], o0[0] += i * kst[0][d], o0[1] += i * kst[1][d];
        }
        double acc = 0;
        for (size_t n = n0; n < n1; n++)
            for (size_t q = 0; q < Rout; q++) {
                size_t po = po0, ao = o0[0], bo = o0[1], rq = q;
                for (int d = nred - 2; d >= 0; d--) {
                    size_t i = rq % rshape[d];
                    rq /= rshape[d];
                    po += i * ros[d], ao += i * rst[0][d], bo += i * rst[1][d];
                }
                Run run = FN(run_at)(g, n, k, ao, bo, po, ria, rib, rio);
                acc += FN(grad_run)(op->kind, s, &run, Lr, NULL);
            }
        if (x_batched)
            dx[nk * x_size + j] = (real)acc;
        else
            dx[k * g->ldw + j] += (real)acc;
    }
}

void FN(binary_backward)(real *d_a, real *d_b, const real *d_out, const real *a, const real *b, int N,
                         const Binary *op) {
    GradArgs g = {0, 1, N, a, b, NULL, NULL, d_out, NULL, 0, op};
    if (d_a) FN(grad_into)(d_a, &g);
    g.side = 1;
    if (d_b) FN(grad_into)(d_b, &g);
}

void FN(binary_tangent_backward)(real *td_a, real *td_b, size_t ldw, const real *td_out, const real *d_out,
                                 const real *t_a, const real *t_b, const real *a, const real *b, int K, int N,
                                 const Binary *op) {
    GradArgs g = {0, K, N, a, b, d_out ? t_a : NULL, d_out ? t_b : NULL, td_out, d_out, ldw, op};
    if (td_a) FN(grad_into)(td_a, &g);
    g.side = 1;
    if (td_b) FN(grad_into)(td_b, &g);
}

/* Diagonal pass: for each sample in order, the K per-sample gradients of each unbatched operand (the tangent
 * backward pass on that sample alone, into a (K, size) scratch), squared into the double accumulators. */
int FN(binary_diag)(double *diag_a, double *diag_b, const real *td_out, const real *a, const real *b, int K, int N,
                    const Binary *op) {
    for (int side = 0; side < 2; side++) {
        double *diag = side ? diag_b : diag_a;
        int batched = side ? op->b_batched : op->a_batched;
        size_t size = side ? op->b_size : op->a_size;
        if (!diag || batched) continue;
        real *g = scratch_get(5, sizeof(real) * (size_t)K * size); /* a calling-thread slot (scratch.h) */
        if (!g) return -1;
        for (int n = 0; n < N; n++) {
            const real *an = a + (op->a_batched ? (size_t)n * op->a_size : 0);
            const real *bn = b + (op->b_batched ? (size_t)n * op->b_size : 0);
            memset(g, 0, sizeof(real) * (size_t)K * size);
            FN(binary_tangent_backward)(side ? NULL : g, side ? g : NULL, size,
                                        td_out + (size_t)n * K * op->out_size, NULL, NULL, NULL, an, bn, K, 1, op);
            for (int k = 0; k < K; k++)
                for (size_t j = 0; j < size; j++) {
                    double v = (double)g[(size_t)k * size + j];
                    diag[j] += v * v;
                }
        }
    }
    return 0;
}

/* batchnorm.c: 2-D batch normalisation in eval mode (running statistics: an affine map per channel) and in
 * train mode (batch statistics), each with the four passes of ops.h.
 *
 * Notation per channel c: M = N*HW values, s = invstd, xhat = (x - mu) s, y = gamma xhat + beta.
 *
 * Eval (mu, s from the running statistics, constants): with a = gamma s
 *   forward          y       = a x + (beta - mu a)
 *   backward         dx      = a dy,  dgamma += sum dy xhat,  dbeta += sum dy
 *   tangent forward  t_y     = a t_x + t_gamma xhat + t_beta
 *   tangent backward td_x    = a td_y + t_gamma s dy
 *                    td_gamma += sum td_y xhat + s sum dy t_x,  td_beta += sum td_y
 *
 * Train (mu = mean x, var = mean (x-mu)^2, both over the M values of the chunk):
 *   backward         dx = gamma s (dy - A - xhat B),  A = mean dy,  B = mean dy xhat
 *   tangent forward  t_mu = mean t_x,  t_sigma = mean xhat t_x  (sigma = 1/s),
 *                    t_xhat = s (t_x - t_mu - xhat t_sigma),  t_y = gamma t_xhat + t_gamma xhat + t_beta
 *   tangent backward (R-operator of the backward along (t_x, t_gamma, t_dy = td_out)):
 *                    t_s = -s^2 t_sigma,  t_A = mean t_dy,  t_B = mean (t_dy xhat + dy t_xhat),
 *                    td_x = gamma s (t_dy - t_A - t_xhat B - xhat t_B) + (t_gamma s + gamma t_s)(dy - A - xhat B)
 *                    td_gamma += M t_B,  td_beta += M t_A
 *   with mean dy t_xhat = s (mean dy t_x - t_mu A - t_sigma B). d_out == NULL (Gauss-Newton) sets dy = 0
 *   in these formulas: the pass is then the backward pass applied to td_out.
 * Diagonal pass (eval only): per sample and vector, g_gamma = sum_hw td_y xhat and g_beta = sum_hw td_y, squared.
 * Sums are in double and per channel (or per direction and channel), in a fixed order: a channel's terms, samples
 * then positions, go round SUM_LANES lanes (see lanes_add below). */
#include <math.h>
#include <string.h>

#include "../core/scratch.h"
#include "ops.h"

/* Element (n, c, hw) of a (N, C, HW) tensor; of direction k of a (N, K, C, HW) tangent use n*K + k as n. */
#define AT(n, c) (((size_t)(n) * C + (size_t)(c)) * (size_t)HW)
#define TAT(n, k, c) ((((size_t)(n) * K + (size_t)(k)) * C + (size_t)(c)) * (size_t)HW)

static inline double inv_std(real var, double eps) { return 1.0 / sqrt((double)var + eps); }

/* Channel sums in SUM_LANES independent chains: term j of a channel's run (samples, then positions) goes to lane
 * j % SUM_LANES, and lanes_total adds the lanes in order. One chain of dependent double additions is bound by the
 * adder's latency (4 cycles a term: this file's reductions took 10% of a ResNet-50 HVP on a Xeon with AVX-512);
 * eight independent ones are not, and where a row's length is a multiple of SUM_LANES every row starts at lane 0
 * and the compiler vectorises the lanes. The order depends on the shape alone. Each lanes_* call adds the terms
 * i < n of one row to lanes from lane `at` on and returns the lane where the next row starts. */
#define SUM_LANES 8

static inline double lanes_total(const double *lanes) {
    double t = 0;
    for (int l = 0; l < SUM_LANES; l++) t += lanes[l];
    return t;
}

/* lanes += a[i] */
static inline int FN(lanes_add)(double *restrict lanes, int at, const real *restrict a, int n) {
    if (at == 0 && n % SUM_LANES == 0) {
        for (int i = 0; i < n; i += SUM_LANES)
            for (int l = 0; l < SUM_LANES; l++) lanes[l] += (double)a[i + l];
        return 0;
    }
    for (int i = 0; i < n; i++, at = (at + 1) % SUM_LANES) lanes[at] += (double)a[i];
    return at;
}

/* lanes += a[i] b[i] */
static inline int FN(lanes_add_dot)(double *restrict lanes, int at, const real *restrict a, const real *restrict b,
                                    int n) {
    if (at == 0 && n % SUM_LANES == 0) {
        for (int i = 0; i < n; i += SUM_LANES)
            for (int l = 0; l < SUM_LANES; l++) lanes[l] += (double)a[i + l] * (double)b[i + l];
        return 0;
    }
    for (int i = 0; i < n; i++, at = (at + 1) % SUM_LANES) lanes[at] += (double)a[i] * (double)b[i];
    return at;
}

/* lanes += a[i] xhat[i], xhat = (x - mu) s computed in double (the eval passes, with the running statistics) */
static inline int FN(lanes_add_xhat)(double *restrict lanes, int at, const real *restrict a, const real *restrict x,
                                     double mu, double s, int n) {
    if (at == 0 && n % SUM_LANES == 0) {
        for (int i = 0; i < n; i += SUM_LANES)
            for (int l = 0; l < SUM_LANES; l++) lanes[l] += (double)a[i + l] * (((double)x[i + l] - mu) * s);
        return 0;
    }
    for (int i = 0; i < n; i++, at = (at + 1) % SUM_LANES) lanes[at] += (double)a[i] * (((double)x[i] - mu) * s);
    return at;
}

/* lanes += a[i] xhat[i], xhat = (x - mu) s computed in real (the train passes, with the batch's statistics) */
static inline int FN(lanes_add_xhat_real)(double *restrict lanes, int at, const real *restrict a,
                                          const real *restrict x, real mu, real s, int n) {
    if (at == 0 && n % SUM_LANES == 0) {
        for (int i = 0; i < n; i += SUM_LANES)
            for (int l = 0; l < SUM_LANES; l++) lanes[l] += (double)a[i + l] * (double)((x[i + l] - mu) * s);
        return 0;
    }
    for (int i = 0; i < n; i++, at = (at + 1) % SUM_LANES) lanes[at] += (double)a[i] * (double)((x[i] - mu) * s);
    return at;
}

/* ---------------------------------------------------------------- eval */

void FN(batchnorm_eval_forward)(real *out, const real *in, const real *gamma, const real *beta,
                                const real *running_mean, const real *running_var, double eps, int N, int C, int HW) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = inv_std(running_var[c], eps);
            real a = (real)(gamma[c] * s), b = (real)(beta[c] - running_mean[c] * (gamma[c] * s));
            const real *x = in + AT(n, c);
            real *y = out + AT(n, c);
            for (int i = 0; i < HW; i++) y[i] = a * x[i] + b;
        }
}

void FN(batchnorm_eval_backward)(real *d_in, real *d_gamma, real *d_beta, const real *d_out, const real *in,
                                 const real *gamma, const real *running_mean, const real *running_var, double eps,
                                 int N, int C, int HW) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double s = inv_std(running_var[c], eps), mu = running_mean[c];
        real a = (real)(gamma[c] * s);
        double sg[SUM_LANES] = {0}, sb[SUM_LANES] = {0};
        int at = 0;
        for (int n = 0; n < N; n++) {
            const real *x = in + AT(n, c), *dy = d_out + AT(n, c);
            FN(lanes_add_xhat)(sg, at, dy, x, mu, s, HW);
            at = FN(lanes_add)(sb, at, dy, HW);
            if (d_in) {
                real *dx = d_in + AT(n, c);
                for (int i = 0; i < HW; i++) dx[i] = a * dy[i];
            }
        }
        if (d_gamma) d_gamma[c] += (real)lanes_total(sg);
        if (d_beta) d_beta[c] += (real)lanes_total(sb);
    }
}

void FN(batchnorm_eval_tangent_forward)(real *t_out, const real *t_in, const real *t_gamma, const real *t_beta,
                                        size_t ldw, const real *in, const real *gamma, const real *running_mean,
                                        const real *running_var, double eps, int K, int N, int C, int HW) {
#pragma omp parallel for collapse(3) schedule(static)
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < C; c++) {
                double s = inv_std(running_var[c], eps);
                real a = (real)(gamma[c] * s), mu = running_mean[c], rs = (real)s;
                real tg = t_gamma ? t_gamma[(size_t)k * ldw + c] : 0, tb = t_beta ? t_beta[(size_t)k * ldw + c] : 0;
                const real *x = in + AT(n, c);
                real *ty = t_out + TAT(n, k, c);
                if (t_in) {
                    const real *tx = t_in + TAT(n, k, c);
                    for (int i = 0; i < HW; i++) ty[i] = a * tx[i] + tg * ((x[i] - mu) * rs) + tb;
                } else {
                    for (int i = 0; i < HW; i++) ty[i] = tg * ((x[i] - mu) * rs) + tb;
                }
            }
}

void FN(batchnorm_eval_tangent_backward)(real *td_in, real *td_gamma, real *td_beta, size_t ldw, const real *td_out,
                                         const real *d_out, const real *t_in, const real *t_gamma, const real *in,
                                         const real *gamma, const real *running_mean, const real *running_var,
                                         double eps, int K, int N, int C, int HW) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            double s = inv_std(running_var[c], eps), mu = running_mean[c];
            real a = (real)(gamma[c] * s);
            real cross = (d_out && t_gamma) ? (real)(t_gamma[(size_t)k * ldw + c] * s) : 0;
            double sg[SUM_LANES] = {0}, sb[SUM_LANES] = {0}, sx[SUM_LANES] = {0};
            int at = 0;
            for (int n = 0; n < N; n++) {
                const real *x = in + AT(n, c), *tdy = td_out + TAT(n, k, c);
                const real *dy = d_out ? d_out + AT(n, c) : NULL, *tx = t_in ? t_in + TAT(n, k, c) : NULL;
                FN(lanes_add_xhat)(sg, at, tdy, x, mu, s, HW);
                if (dy && tx) FN(lanes_add_dot)(sx, at, dy, tx, HW);
                at = FN(lanes_add)(sb, at, tdy, HW);
                if (!td_in) continue;
                real *tdx = td_in + TAT(n, k, c);
                if (dy && cross != 0) {
                    for (int i = 0; i < HW; i++) tdx[i] = a * tdy[i] + cross * dy[i];
                } else {
                    for (int i = 0; i < HW; i++) tdx[i] = a * tdy[i];
                }
            }
            if (td_gamma) td_gamma[(size_t)k * ldw + c] += (real)(lanes_total(sg) + s * lanes_total(sx));
            if (td_beta) td_beta[(size_t)k * ldw + c] += (real)lanes_total(sb);
        }
}

/* Diagonal pass: per channel, samples and vectors in order, in double. */
void FN(batchnorm_eval_diag)(double *diag_gamma, double *diag_beta, const real *td_out, const real *in,
                             const real *running_mean, const real *running_var, double eps, int K, int N, int C,
                             int HW) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double s = inv_std(running_var[c], eps), mu = running_mean[c], dg = 0, db = 0;
        for (int n = 0; n < N; n++) {
            const real *x = in + AT(n, c);
            for (int k = 0; k < K; k++) {
                const real *tdy = td_out + TAT(n, k, c);
                double sg = 0, sb = 0;
                for (int i = 0; i < HW; i++) {
                    sg += (double)tdy[i] * (((double)x[i] - mu) * s);
                    sb += (double)tdy[i];
                }
                dg += sg * sg;
                db += sb * sb;
            }
        }
        diag_gamma[c] += dg;
        diag_beta[c] += db;
    }
}

/* ---------------------------------------------------------------- train */

/* Per channel c of a (N,C,HW) tensor, in a fixed order (samples, then positions), in double. */
static double FN(channel_sum)(const real *in, int c, int N, int C, int HW) {
    double sum[SUM_LANES] = {0};
    for (int n = 0, at = 0; n < N; n++) at = FN(lanes_add)(sum, at, in + AT(n, c), HW);
    return lanes_total(sum);
}

static double FN(channel_centred_squares)(const real *in, double mu, int c, int N, int C, int HW) {
    double sq[SUM_LANES] = {0};
    int at = 0;
    for (int n = 0; n < N; n++) {
        const real *x = in + AT(n, c);
        if (at == 0 && HW % SUM_LANES == 0) {
            for (int i = 0; i < HW; i += SUM_LANES)
                for (int l = 0; l < SUM_LANES; l++) sq[l] += ((double)x[i + l] - mu) * ((double)x[i + l] - mu);
            continue;
        }
        for (int i = 0; i < HW; i++, at = (at + 1) % SUM_LANES) sq[at] += ((double)x[i] - mu) * ((double)x[i] - mu);
    }
    return lanes_total(sq);
}

/* From channel c's sum and centred squares over M values: the cache, the running statistics, and y. */
static void FN(channel_normalise)(real *out, real *mean, real *invstd, const real *in, const real *gamma,
                                  const real *beta, real *running_mean, real *running_var, double momentum, double eps,
                                  double sum, double sq, double M, int c, int N, int C, int HW) {
    double mu = sum / M, var = sq / M;
    mean[c] = (real)mu;
    invstd[c] = (real)(1.0 / sqrt(var + eps));
    if (running_mean && running_var) {
        running_mean[c] = (real)((1 - momentum) * (double)running_mean[c] + momentum * mu);
        running_var[c] = (real)((1 - momentum) * (double)running_var[c] + momentum * sq / (M - 1));
    }
    real m = mean[c], s = invstd[c], g = gamma[c], b = beta[c];
    for (int n = 0; n < N; n++) {
        const real *x = in + AT(n, c);
        real *y = out + AT(n, c);
        for (int i = 0; i < HW; i++) y[i] = g * ((x[i] - m) * s) + b;
    }
}

int FN(batchnorm_train_forward)(real *out, real *mean, real *invstd, const real *in, const real *gamma,
                                const real *beta, real *running_mean, real *running_var, double momentum, double eps,
                                int N, int C, int HW, const BatchStatsGroup *group) {
    double M = (double)N * HW;
    if (!group) { /* one pass per channel while its values are in cache */
        if (M < 2) return hs_error("batch norm in training mode needs more than 1 value per channel (got %.0f)", M);
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) {
            double sum = FN(channel_sum)(in, c, N, C, HW);
            double sq = FN(channel_centred_squares)(in, sum / M, c, N, C, HW);
            FN(channel_normalise)(out, mean, invstd, in, gamma, beta, running_mean, running_var, momentum, eps, sum,
                                  sq, M, c, N, C, HW);
        }
        return 0;
    }
    /* Over a group: the sums of every channel, then the group's; the centred squares about the whole batch's
     * mean, then the group's; then normalise. The same operations per channel as above. */
    /* (C) sums, M, then (C) centred squares: a calling-thread slot (scratch.h), no allocation per step */
    double *sums = scratch_get(5, sizeof(double) * (2 * (size_t)C + 1));
    if (!sums) return -1;
    double *sq = sums + C + 1;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) sums[c] = FN(channel_sum)(in, c, N, C, HW);
    sums[C] = M;
    int rc = group->sum(sums, (size_t)C + 1, group->user);
    M = sums[C];
    if (rc == 0 && M < 2) rc = hs_error("batch norm in training mode needs more than 1 value per channel (got %.0f "
                                        "over the group)", M);
    if (rc == 0) {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) sq[c] = FN(channel_centred_squares)(in, sums[c] / M, c, N, C, HW);
        rc = group->sum(sq, (size_t)C, group->user);
    }
    if (rc == 0) {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++)
            FN(channel_normalise)(out, mean, invstd, in, gamma, beta, running_mean, running_var, momentum, eps,
                                  sums[c], sq[c], M, c, N, C, HW);
    }
    return rc;
}

/* Channel c's sums of dy and dy xhat, in a fixed order, in double. */
static void FN(channel_dy_sums)(double *sdy, double *sdyx, const real *d_out, const real *in, real mu, real s, int c,
                                int N, int C, int HW) {
    double a[SUM_LANES] = {0}, b[SUM_LANES] = {0};
    for (int n = 0, at = 0; n < N; n++) {
        const real *x = in + AT(n, c), *dy = d_out + AT(n, c);
        FN(lanes_add_xhat_real)(b, at, dy, x, mu, s, HW);
        at = FN(lanes_add)(a, at, dy, HW);
    }
    *sdy = lanes_total(a);
    *sdyx = lanes_total(b);
}

/* dx of channel c from the batch's sums over M values. */
static void FN(channel_dx)(real *d_in, const real *d_out, const real *in, real gamma, real mu, real s, double sdy,
                           double sdyx, double M, int c, int N, int C, int HW) {
    real A = (real)(sdy / M), B = (real)(sdyx / M), gs = gamma * s;
    for (int n = 0; n < N; n++) {
        const real *x = in + AT(n, c), *dy = d_out + AT(n, c);
        real *dx = d_in + AT(n, c);
        for (int i = 0; i < HW; i++) dx[i] = gs * (dy[i] - A - ((x[i] - mu) * s) * B);
    }
}

int FN(batchnorm_train_backward)(real *d_in, real *d_gamma, real *d_beta, const real *d_out, const real *in,
                                 const real *gamma, const real *mean, const real *invstd, int N, int C, int HW,
                                 const BatchStatsGroup *group) {
    double M = (double)N * HW;
    if (!group) {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) {
            double sdy, sdyx;
            FN(channel_dy_sums)(&sdy, &sdyx, d_out, in, mean[c], invstd[c], c, N, C, HW);
            if (d_gamma) d_gamma[c] += (real)sdyx;
            if (d_beta) d_beta[c] += (real)sdy;
            if (d_in) FN(channel_dx)(d_in, d_out, in, gamma[c], mean[c], invstd[c], sdy, sdyx, M, c, N, C, HW);
        }
        return 0;
    }
    double *sums = scratch_get(5, sizeof(double) * (2 * (size_t)C + 1)); /* (C) sums of dy, (C) of dy xhat, M */
    if (!sums) return -1;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        FN(channel_dy_sums)(&sums[c], &sums[C + c], d_out, in, mean[c], invstd[c], c, N, C, HW);
        if (d_gamma) d_gamma[c] += (real)sums[C + c]; /* this slice's share of the parameter gradients */
        if (d_beta) d_beta[c] += (real)sums[c];
    }
    sums[2 * C] = M;
    int rc = group->sum(sums, 2 * (size_t)C + 1, group->user);
    if (rc == 0 && d_in) {
        M = sums[2 * C];
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++)
            FN(channel_dx)(d_in, d_out, in, gamma[c], mean[c], invstd[c], sums[c], sums[C + c], M, c, N, C, HW);
    }
    return rc;
}

void FN(batchnorm_train_tangent_forward)(real *t_out, const real *t_in, const real *t_gamma, const real *t_beta,
                                         size_t ldw, const real *in, const real *gamma, const real *mean,
                                         const real *invstd, int K, int N, int C, int HW) {
    double M = (double)N * HW;
#pragma omp parallel for collapse(2) schedule(static)
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            real mu = mean[c], s = invstd[c], g = gamma[c];
            real tg = t_gamma ? t_gamma[(size_t)k * ldw + c] : 0, tb = t_beta ? t_beta[(size_t)k * ldw + c] : 0;
            real tm = 0, tsig = 0;
            if (t_in) {
                double s1[SUM_LANES] = {0}, s2[SUM_LANES] = {0};
                for (int n = 0, at = 0; n < N; n++) {
                    const real *x = in + AT(n, c), *tx = t_in + TAT(n, k, c);
                    FN(lanes_add_xhat_real)(s2, at, tx, x, mu, s, HW);
                    at = FN(lanes_add)(s1, at, tx, HW);
                }
                tm = (real)(lanes_total(s1) / M);
                tsig = (real)(lanes_total(s2) / M);
            }
            real gs = g * s;
            for (int n = 0; n < N; n++) {
                const real *x = in + AT(n, c);
                real *ty = t_out + TAT(n, k, c);
                if (t_in) {
                    const real *tx = t_in + TAT(n, k, c);
                    for (int i = 0; i < HW; i++) {
                        real xh = (x[i] - mu) * s;
                        ty[i] = gs * (tx[i] - tm - xh * tsig) + tg * xh + tb;
                    }
                } else {
                    for (int i = 0; i < HW; i++) ty[i] = tg * ((x[i] - mu) * s) + tb;
                }
            }
        }
}

int FN(batchnorm_train_tangent_backward)(real *td_in, real *td_gamma, real *td_beta, size_t ldw, const real *td_out,
                                         const real *d_out, const real *t_in, const real *t_gamma, const real *in,
                                         const real *gamma, const real *mean, const real *invstd, int K, int N, int C,
                                         int HW) {
    double M = (double)N * HW;
    /* per channel: A = mean dy, B = mean dy xhat (zero without d_out) */
    double *AB = scratch_get(2, sizeof(double) * 2 * (size_t)C);
    if (!AB) return -1;
    if (d_out) {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) {
            real mu = mean[c], s = invstd[c];
            double sa, sb;
            FN(channel_dy_sums)(&sa, &sb, d_out, in, mu, s, c, N, C, HW);
            AB[2 * c] = sa / M;
            AB[2 * c + 1] = sb / M;
        }
    } else {
        memset(AB, 0, sizeof(double) * 2 * (size_t)C);
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            real mu = mean[c], s = invstd[c], g = gamma[c];
            double A = AB[2 * c], B = AB[2 * c + 1];
            double l1[SUM_LANES] = {0}, l2[SUM_LANES] = {0}, l3[SUM_LANES] = {0}, l4[SUM_LANES] = {0};
            double l5[SUM_LANES] = {0};
            for (int n = 0, at = 0; n < N; n++) {
                const real *x = in + AT(n, c), *tdy = td_out + TAT(n, k, c);
                if (t_in) {
                    const real *tx = t_in + TAT(n, k, c);
                    FN(lanes_add)(l1, at, tx, HW);
                    FN(lanes_add_xhat_real)(l2, at, tx, x, mu, s, HW);
                    if (d_out) FN(lanes_add_dot)(l3, at, d_out + AT(n, c), tx, HW);
                }
                FN(lanes_add_xhat_real)(l5, at, tdy, x, mu, s, HW);
                at = FN(lanes_add)(l4, at, tdy, HW);
            }
            double s1 = lanes_total(l1), s2 = lanes_total(l2), s3 = lanes_total(l3), s4 = lanes_total(l4);
            double s5 = lanes_total(l5);
            double tm = s1 / M, tsig = s2 / M, ts = -(double)s * s * tsig, tA = s4 / M;
            double tB = s5 / M + (d_out && t_in ? (double)s * (s3 / M - tm * A - tsig * B) : 0);
            td_gamma[(size_t)k * ldw + c] += (real)(M * tB);
            td_beta[(size_t)k * ldw + c] += (real)s4;
            if (!td_in) continue;
            double tg = t_gamma ? (double)t_gamma[(size_t)k * ldw + c] : 0;
            real gs = g * s, rtA = (real)tA, rtB = (real)tB, rB = (real)B, rA = (real)A, rtm = (real)tm;
            real rtsig = (real)tsig, cross = (real)(tg * s + (double)g * ts);
            for (int n = 0; n < N; n++) {
                const real *x = in + AT(n, c), *tdy = td_out + TAT(n, k, c);
                real *tdx = td_in + TAT(n, k, c);
                if (d_out) {
                    const real *dy = d_out + AT(n, c), *tx = t_in ? t_in + TAT(n, k, c) : NULL;
                    for (int i = 0; i < HW; i++) {
                        real xh = (x[i] - mu) * s;
                        real txh = tx ? s * (tx[i] - rtm - xh * rtsig) : 0;
                        tdx[i] = gs * (tdy[i] - rtA - txh * rB - xh * rtB) + cross * (dy[i] - rA - xh * rB);
                    }
                } else {
                    for (int i = 0; i < HW; i++) tdx[i] = gs * (tdy[i] - rtA - ((x[i] - mu) * s) * rtB);
                }
            }
        }
    return 0;
}

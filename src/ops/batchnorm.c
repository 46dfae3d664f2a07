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
 * Sums are in double and per channel (or per direction and channel), in a fixed order: samples in order, each
 * sample's row of positions in SUM_LANES lanes (see ROW_SUM below). */
#include <math.h>
#include <string.h>

#include "../core/scratch.h"
#include "ops.h"

/* Element (n, c, hw) of a (N, C, HW) tensor; of direction k of a (N, K, C, HW) tangent use n*K + k as n. */
#define AT(n, c) (((size_t)(n) * C + (size_t)(c)) * (size_t)HW)
#define TAT(n, k, c) ((((size_t)(n) * K + (size_t)(k)) * C + (size_t)(c)) * (size_t)HW)

static inline double inv_std(real var, double eps) { return 1.0 / sqrt((double)var + eps); }

/* Channel sums: each sample's row of HW terms is summed in SUM_LANES lanes (term i to lane i % SUM_LANES, the lanes
 * then added pairwise) when it has at least SUM_LANES terms, in one chain when shorter; the rows' sums in sample
 * order. One chain of dependent double additions is bound by the adder's latency (4 cycles a term); eight
 * independent ones are not, and the compiler vectorises them. The order depends on the shape alone. */
#define SUM_LANES 8
#define ROW_SUM(expr)                                                                                                 \
    if (n < SUM_LANES) {                                                                                              \
        double t = 0;                                                                                                 \
        for (int j = 0; j < n; j++) t += (expr);                                                                      \
        return t;                                                                                                     \
    }                                                                                                                 \
    double lanes[SUM_LANES] = {0};                                                                                    \
    int i = 0;                                                                                                        \
    for (; i + SUM_LANES <= n; i += SUM_LANES)                                                                        \
        for (int l = 0; l < SUM_LANES; l++) {                                                                         \
            int j = i + l;                                                                                            \
            lanes[l] += (expr);                                                                                       \
        }                                                                                                             \
    for (int l = 0; i < n; i++, l++) {                                                                                \
        int j = i;                                                                                                    \
        lanes[l] += (expr);                                                                                           \
    }                                                                                                                 \
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))

/* sum a[j] */
static inline double FN(row_sum)(const real *restrict a, int n) { ROW_SUM((double)a[j]); }
/* sum a[j] b[j] */
static inline double FN(row_dot)(const real *restrict a, const real *restrict b, int n) {
    ROW_SUM((double)a[j] * (double)b[j]);
}
/* sum a[j] xhat[j], xhat = (x - mu) s in double (the eval passes: running statistics) */
static inline double FN(row_xhat)(const real *restrict a, const real *restrict x, double mu, double s, int n) {
    ROW_SUM((double)a[j] * (((double)x[j] - mu) * s));
}
/* sum a[j] xhat[j], xhat = (x - mu) s in real (the train passes: the batch's statistics) */
static inline double FN(row_xhat_real)(const real *restrict a, const real *restrict x, real mu, real s, int n) {
    ROW_SUM((double)a[j] * (double)((x[j] - mu) * s));
}
/* sum (x[j] - mu)^2 */
static inline double FN(row_centred_squares)(const real *restrict x, double mu, int n) {
    ROW_SUM(((double)x[j] - mu) * ((double)x[j] - mu));
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

/* The per-channel passes below walk blocks of CHANNEL_BLOCK channels sample by sample: each sample's rows of a
 * block lie side by side in memory, where a walk channel by channel reads one short row per sample, C*HW values
 * apart (ResNet-50's 2x2 and 4x4 planes at 32x32: rows of 16 and 64 bytes, 16-32 KB apart). Measured (perf
 * samples, Xeon with AVX-512, 2 threads), this order and the lanes above took the eval backward pass from 8% to
 * 4.6% of a ResNet-50 gradient. Each channel's sums still run over the samples in order. */
#define CHANNEL_BLOCK 16
#define BLOCKS(C) (((C) + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK) /* blocks of a tensor's C channels */
#define BLOCK_SIZE(blk, C) ((C) - (blk) * CHANNEL_BLOCK < CHANNEL_BLOCK ? (C) - (blk) * CHANNEL_BLOCK : CHANNEL_BLOCK)

void FN(batchnorm_eval_backward)(real *d_in, real *d_gamma, real *d_beta, const real *d_out, const real *in,
                                 const real *gamma, const real *running_mean, const real *running_var, double eps,
                                 int N, int C, int HW) {
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < BLOCKS(C); blk++) {
        int c0 = blk * CHANNEL_BLOCK, nc = BLOCK_SIZE(blk, C);
        double s[CHANNEL_BLOCK], mu[CHANNEL_BLOCK], sg[CHANNEL_BLOCK] = {0}, sb[CHANNEL_BLOCK] = {0};
        real a[CHANNEL_BLOCK];
        for (int j = 0; j < nc; j++) {
            s[j] = inv_std(running_var[c0 + j], eps), mu[j] = running_mean[c0 + j];
            a[j] = (real)(gamma[c0 + j] * s[j]);
        }
        for (int n = 0; n < N; n++)
            for (int j = 0; j < nc; j++) {
                const real *x = in + AT(n, c0 + j), *dy = d_out + AT(n, c0 + j);
                if (d_gamma) sg[j] += FN(row_xhat)(dy, x, mu[j], s[j], HW);
                if (d_beta) sb[j] += FN(row_sum)(dy, HW);
                if (d_in) {
                    real *dx = d_in + AT(n, c0 + j);
                    for (int i = 0; i < HW; i++) dx[i] = a[j] * dy[i];
                }
            }
        for (int j = 0; j < nc; j++) {
            if (d_gamma) d_gamma[c0 + j] += (real)sg[j];
            if (d_beta) d_beta[c0 + j] += (real)sb[j];
        }
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
        for (int blk = 0; blk < BLOCKS(C); blk++) {
            int c0 = blk * CHANNEL_BLOCK, nc = BLOCK_SIZE(blk, C);
            double s[CHANNEL_BLOCK], mu[CHANNEL_BLOCK];
            double sg[CHANNEL_BLOCK] = {0}, sb[CHANNEL_BLOCK] = {0}, sx[CHANNEL_BLOCK] = {0};
            real a[CHANNEL_BLOCK], cross[CHANNEL_BLOCK];
            for (int j = 0; j < nc; j++) {
                int c = c0 + j;
                s[j] = inv_std(running_var[c], eps), mu[j] = running_mean[c];
                a[j] = (real)(gamma[c] * s[j]);
                cross[j] = (d_out && t_gamma) ? (real)(t_gamma[(size_t)k * ldw + c] * s[j]) : 0;
            }
            for (int n = 0; n < N; n++)
                for (int j = 0; j < nc; j++) {
                    int c = c0 + j;
                    const real *x = in + AT(n, c), *tdy = td_out + TAT(n, k, c);
                    const real *dy = d_out ? d_out + AT(n, c) : NULL, *tx = t_in ? t_in + TAT(n, k, c) : NULL;
                    sg[j] += FN(row_xhat)(tdy, x, mu[j], s[j], HW);
                    sb[j] += FN(row_sum)(tdy, HW);
                    if (dy && tx) sx[j] += FN(row_dot)(dy, tx, HW);
                    if (!td_in) continue;
                    real *tdx = td_in + TAT(n, k, c);
                    if (dy && cross[j] != 0) {
                        for (int i = 0; i < HW; i++) tdx[i] = a[j] * tdy[i] + cross[j] * dy[i];
                    } else {
                        for (int i = 0; i < HW; i++) tdx[i] = a[j] * tdy[i];
                    }
                }
            for (int j = 0; j < nc; j++) {
                if (td_gamma) td_gamma[(size_t)k * ldw + c0 + j] += (real)(sg[j] + s[j] * sx[j]);
                if (td_beta) td_beta[(size_t)k * ldw + c0 + j] += (real)sb[j];
            }
        }
}

/* Diagonal pass: per channel, samples and vectors in order, each row's sums as ROW_SUM's, in double. */
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
                double sg = FN(row_xhat)(tdy, x, mu, s, HW), sb = FN(row_sum)(tdy, HW);
                dg += sg * sg;
                db += sb * sb;
            }
        }
        diag_gamma[c] += dg;
        diag_beta[c] += db;
    }
}

/* ---------------------------------------------------------------- train */

/* Blocks of channels c0 .. c0+nc-1 (nc <= CHANNEL_BLOCK) of a (N,C,HW) tensor, walked sample by sample; each
 * channel's sums in double over the samples in order. */

/* sum[j] = the sum of channel c0 + j */
static void FN(block_sums)(double *sum, const real *in, int c0, int nc, int N, int C, int HW) {
    for (int j = 0; j < nc; j++) sum[j] = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < nc; j++) sum[j] += FN(row_sum)(in + AT(n, c0 + j), HW);
}

/* sq[j] = the sum of channel c0 + j's squares about sum[j] / M */
static void FN(block_centred_squares)(double *sq, const double *sum, double M, const real *in, int c0, int nc, int N,
                                      int C, int HW) {
    for (int j = 0; j < nc; j++) sq[j] = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < nc; j++) sq[j] += FN(row_centred_squares)(in + AT(n, c0 + j), sum[j] / M, HW);
}

/* From the block's sums and centred squares over M values: the cache, the running statistics, and y. */
static void FN(block_normalise)(real *out, real *mean, real *invstd, const real *in, const real *gamma,
                                const real *beta, real *running_mean, real *running_var, double momentum, double eps,
                                const double *sum, const double *sq, double M, int c0, int nc, int N, int C, int HW) {
    for (int j = 0; j < nc; j++) {
        int c = c0 + j;
        double mu = sum[j] / M, var = sq[j] / M;
        mean[c] = (real)mu;
        invstd[c] = (real)(1.0 / sqrt(var + eps));
        if (running_mean && running_var) {
            running_mean[c] = (real)((1 - momentum) * (double)running_mean[c] + momentum * mu);
            running_var[c] = (real)((1 - momentum) * (double)running_var[c] + momentum * sq[j] / (M - 1));
        }
    }
    for (int n = 0; n < N; n++)
        for (int c = c0; c < c0 + nc; c++) {
            real m = mean[c], s = invstd[c], g = gamma[c], b = beta[c];
            const real *x = in + AT(n, c);
            real *y = out + AT(n, c);
            for (int i = 0; i < HW; i++) y[i] = g * ((x[i] - m) * s) + b;
        }
}

int FN(batchnorm_train_forward)(real *out, real *mean, real *invstd, const real *in, const real *gamma,
                                const real *beta, real *running_mean, real *running_var, double momentum, double eps,
                                int N, int C, int HW, const BatchStatsGroup *group) {
    double M = (double)N * HW;
    if (!group) { /* one block at a time while its values are in cache */
        if (M < 2) return hs_error("batch norm in training mode needs more than 1 value per channel (got %.0f)", M);
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < BLOCKS(C); blk++) {
            int c0 = blk * CHANNEL_BLOCK, nc = BLOCK_SIZE(blk, C);
            double sum[CHANNEL_BLOCK], sq[CHANNEL_BLOCK];
            FN(block_sums)(sum, in, c0, nc, N, C, HW);
            FN(block_centred_squares)(sq, sum, M, in, c0, nc, N, C, HW);
            FN(block_normalise)(out, mean, invstd, in, gamma, beta, running_mean, running_var, momentum, eps, sum, sq,
                                M, c0, nc, N, C, HW);
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
    for (int blk = 0; blk < BLOCKS(C); blk++)
        FN(block_sums)(sums + blk * CHANNEL_BLOCK, in, blk * CHANNEL_BLOCK, BLOCK_SIZE(blk, C), N, C, HW);
    sums[C] = M;
    int rc = group->sum(sums, (size_t)C + 1, group->user);
    M = sums[C];
    if (rc == 0 && M < 2) rc = hs_error("batch norm in training mode needs more than 1 value per channel (got %.0f "
                                        "over the group)", M);
    if (rc == 0) {
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < BLOCKS(C); blk++) {
            int c0 = blk * CHANNEL_BLOCK;
            FN(block_centred_squares)(sq + c0, sums + c0, M, in, c0, BLOCK_SIZE(blk, C), N, C, HW);
        }
        rc = group->sum(sq, (size_t)C, group->user);
    }
    if (rc == 0) {
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < BLOCKS(C); blk++) {
            int c0 = blk * CHANNEL_BLOCK;
            FN(block_normalise)(out, mean, invstd, in, gamma, beta, running_mean, running_var, momentum, eps, sums + c0,
                                sq + c0, M, c0, BLOCK_SIZE(blk, C), N, C, HW);
        }
    }
    return rc;
}

/* sdy[j], sdyx[j] = channel c0 + j's sums of dy and dy xhat (the batch's mean and invstd) */
static void FN(block_dy_sums)(double *sdy, double *sdyx, const real *d_out, const real *in, const real *mean,
                              const real *invstd, int c0, int nc, int N, int C, int HW) {
    for (int j = 0; j < nc; j++) sdy[j] = 0, sdyx[j] = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < nc; j++) {
            int c = c0 + j;
            const real *x = in + AT(n, c), *dy = d_out + AT(n, c);
            sdy[j] += FN(row_sum)(dy, HW);
            sdyx[j] += FN(row_xhat_real)(dy, x, mean[c], invstd[c], HW);
        }
}

/* dx of the block's channels from the batch's sums over M values. */
static void FN(block_dx)(real *d_in, const real *d_out, const real *in, const real *gamma, const real *mean,
                         const real *invstd, const double *sdy, const double *sdyx, double M, int c0, int nc, int N,
                         int C, int HW) {
    for (int n = 0; n < N; n++)
        for (int j = 0; j < nc; j++) {
            int c = c0 + j;
            real A = (real)(sdy[j] / M), B = (real)(sdyx[j] / M), mu = mean[c], s = invstd[c], gs = gamma[c] * s;
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
        for (int blk = 0; blk < BLOCKS(C); blk++) {
            int c0 = blk * CHANNEL_BLOCK, nc = BLOCK_SIZE(blk, C);
            double sdy[CHANNEL_BLOCK], sdyx[CHANNEL_BLOCK];
            FN(block_dy_sums)(sdy, sdyx, d_out, in, mean, invstd, c0, nc, N, C, HW);
            for (int j = 0; j < nc; j++) {
                if (d_gamma) d_gamma[c0 + j] += (real)sdyx[j];
                if (d_beta) d_beta[c0 + j] += (real)sdy[j];
            }
            if (d_in) FN(block_dx)(d_in, d_out, in, gamma, mean, invstd, sdy, sdyx, M, c0, nc, N, C, HW);
        }
        return 0;
    }
    double *sums = scratch_get(5, sizeof(double) * (2 * (size_t)C + 1)); /* (C) sums of dy, (C) of dy xhat, M */
    if (!sums) return -1;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < BLOCKS(C); blk++) {
        int c0 = blk * CHANNEL_BLOCK, nc = BLOCK_SIZE(blk, C);
        FN(block_dy_sums)(sums + c0, sums + C + c0, d_out, in, mean, invstd, c0, nc, N, C, HW);
        for (int c = c0; c < c0 + nc; c++) { /* this slice's share of the parameter gradients */
            if (d_gamma) d_gamma[c] += (real)sums[C + c];
            if (d_beta) d_beta[c] += (real)sums[c];
        }
    }
    sums[2 * C] = M;
    int rc = group->sum(sums, 2 * (size_t)C + 1, group->user);
    if (rc == 0 && d_in) {
        M = sums[2 * C];
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < BLOCKS(C); blk++) {
            int c0 = blk * CHANNEL_BLOCK;
            FN(block_dx)(d_in, d_out, in, gamma, mean, invstd, sums + c0, sums + C + c0, M, c0, BLOCK_SIZE(blk, C), N,
                         C, HW);
        }
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
                double s1 = 0, s2 = 0;
                for (int n = 0; n < N; n++) {
                    const real *x = in + AT(n, c), *tx = t_in + TAT(n, k, c);
                    s1 += FN(row_sum)(tx, HW);
                    s2 += FN(row_xhat_real)(tx, x, mu, s, HW);
                }
                tm = (real)(s1 / M);
                tsig = (real)(s2 / M);
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
            double sa, sb;
            FN(block_dy_sums)(&sa, &sb, d_out, in, mean, invstd, c, 1, N, C, HW);
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
            double s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0;
            for (int n = 0; n < N; n++) {
                const real *x = in + AT(n, c), *tdy = td_out + TAT(n, k, c);
                if (t_in) {
                    const real *tx = t_in + TAT(n, k, c);
                    s1 += FN(row_sum)(tx, HW);
                    s2 += FN(row_xhat_real)(tx, x, mu, s, HW);
                    if (d_out) s3 += FN(row_dot)(d_out + AT(n, c), tx, HW);
                }
                s4 += FN(row_sum)(tdy, HW);
                s5 += FN(row_xhat_real)(tdy, x, mu, s, HW);
            }
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

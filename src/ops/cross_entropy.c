/* cross_entropy.c: mean cross-entropy from logits, loss = scale * sum_n (logsumexp(z_n) - z_n[y_n]), and
 * its passes (see ops.h). With p = softmax(z):
 *   d_z  = scale (p - onehot(y))
 *   td_z = scale (diag(p) - p p^T) t_z = scale p * (t_z - <p, t_z>)      (the loss's own Hessian)
 * Softmax and the loss are computed in double whatever the precision. */
#include <math.h>

#include "../core/scratch.h"

#include "ops.h"

int FN(cross_entropy_forward)(double *loss, real *probs, int *correct, const real *logits, const int32_t *labels,
                              double scale, int N, int C) {
    /* per-sample losses, summed in sample order below (the same bits for any thread count) */
    double *terms = scratch_get(5, sizeof(double) * (size_t)(N > 0 ? N : 1)); /* a calling-thread slot */
    if (!terms) return -1;
    int right = 0, bad_label = -1;
#pragma omp parallel for schedule(static) reduction(+ : right)
    for (int n = 0; n < N; n++) {
        terms[n] = 0;
        const real *z = logits + (size_t)n * C;
        real *p = probs + (size_t)n * C;
        int y = labels[n];
        if (y < 0 || y >= C) {
            bad_label = n;
            continue;
        }
        double zmax = z[0];
        int best = 0;
        for (int c = 1; c < C; c++)
            if (z[c] > zmax) zmax = z[c], best = c;
        double sum = 0;
        for (int c = 0; c < C; c++) sum += exp((double)z[c] - zmax);
        double lse = zmax + log(sum);
        for (int c = 0; c < C; c++) p[c] = (real)(exp((double)z[c] - lse));
        terms[n] = lse - (double)z[y];
        right += best == y;
    }
    double total = 0;
    for (int n = 0; n < N; n++) total += terms[n];
    if (bad_label >= 0) return hs_error("label %d of sample %d is outside [0, %d)", labels[bad_label], bad_label, C);
    *loss = scale * total;
    if (correct) *correct = right;
    return 0;
}

void FN(cross_entropy_backward)(real *d_logits, const real *probs, const int32_t *labels, double scale, int N, int C) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)n * C + c;
            d_logits[i] = (real)(scale * ((double)probs[i] - (c == labels[n])));
        }
}

void FN(cross_entropy_tangent_backward)(real *td_logits, const real *t_logits, const real *probs, double scale, int K,
                                        int N, int C) {
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            const real *p = probs + (size_t)n * C;
            const real *t = t_logits + ((size_t)n * K + k) * C;
            real *td = td_logits + ((size_t)n * K + k) * C;
            double dot = 0;
            for (int c = 0; c < C; c++) dot += (double)p[c] * t[c];
            for (int c = 0; c < C; c++) td[c] = (real)(scale * (double)p[c] * ((double)t[c] - dot));
        }
}
